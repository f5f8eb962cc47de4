//! Plan steps: the tree of work a mission is broken into.
//!
//! This module holds the step status state machine ([`StepStatus`]), the
//! validated step actions ([`StepAction`], [`HttpUrl`]), the tree rules
//! (same mission, no cycles, at most [`MAX_DEPTH`] levels: [`check_parent`])
//! and an in-memory tree ([`PlanStepTree`]) for rendering, progress and the
//! job engine's execution order. Step titles are [`Title`](crate::mission::Title)s.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::ids::{MissionId, StepId};
use crate::mission::{InvalidTransition, Progress};
use crate::validation::InvalidValue;

mod url;

pub use url::HttpUrl;

/// Where a plan step is in its lifecycle.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not started; the status of every new step.
    #[default]
    Pending,
    /// Being worked on (by the user or a worker).
    InProgress,
    /// Done.
    Completed,
    /// Tried and failed; may be retried.
    Failed,
    /// Will not be done; counts as done for progress.
    Skipped,
}

impl StepStatus {
    /// Every status.
    pub const ALL: [StepStatus; 5] = [
        StepStatus::Pending,
        StepStatus::InProgress,
        StepStatus::Completed,
        StepStatus::Failed,
        StepStatus::Skipped,
    ];

    /// The statuses of open steps: those that become `skipped` when their
    /// mission is completed (for `UPDATE ... WHERE status IN (...)`).
    pub const OPEN: [StepStatus; 3] = [
        StepStatus::Pending,
        StepStatus::InProgress,
        StepStatus::Failed,
    ];

    /// The wire name: `pending`, `in_progress`, `completed`, `failed` or `skipped`.
    pub const fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::InProgress => "in_progress",
            StepStatus::Completed => "completed",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }

    /// The status with this exact wire name.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == raw)
            .ok_or_else(|| InvalidValue::invalid_choice(raw))
    }

    /// Whether the step counts as done for progress: `completed` or `skipped`.
    pub const fn is_done(self) -> bool {
        matches!(self, StepStatus::Completed | StepStatus::Skipped)
    }

    /// Whether the step is still open: `pending`, `in_progress` or `failed`.
    pub const fn is_open(self) -> bool {
        !self.is_done()
    }

    /// The status of this step once its mission is completed: open steps
    /// (`pending`, `in_progress`, `failed`) become `skipped`; done ones stay.
    pub const fn skip_open(self) -> StepStatus {
        if self.is_done() {
            self
        } else {
            StepStatus::Skipped
        }
    }

    /// The verb naming a move to `self`, used in [`InvalidTransition`] messages.
    const fn verb(self) -> &'static str {
        match self {
            StepStatus::Pending => "reset",
            StepStatus::InProgress => "start",
            StepStatus::Completed => "complete",
            StepStatus::Failed => "fail",
            StepStatus::Skipped => "skip",
        }
    }

    /// Whether a step may move from `self` to `target`; see [`transition_to`](Self::transition_to).
    pub const fn can_transition_to(self, target: StepStatus) -> bool {
        use StepStatus::*;
        match (self, target) {
            // Same status: an idempotent no-op, always allowed.
            (Pending, Pending)
            | (InProgress, InProgress)
            | (Completed, Completed)
            | (Failed, Failed)
            | (Skipped, Skipped) => true,
            (Pending, InProgress | Completed | Skipped | Failed) => true,
            (InProgress, Completed | Failed | Pending | Skipped) => true,
            (Failed, Pending | InProgress | Skipped) => true,
            _ => false,
        }
    }

    /// The status after a change of `status` to `target` (a PATCH by a user,
    /// or the job engine).
    ///
    /// The rules:
    ///
    /// | from          | allowed targets                                        |
    /// |---------------|--------------------------------------------------------|
    /// | `pending`     | `in_progress`, `completed`, `skipped`, `failed`        |
    /// | `in_progress` | `completed`, `failed`, `skipped`, `pending` (paused or retried) |
    /// | `failed`      | `pending`, `in_progress` (retry), `skipped`            |
    /// | `completed`   | — (final)                                              |
    /// | `skipped`     | — (final)                                              |
    ///
    /// Setting the status a step already has is always allowed (an idempotent
    /// no-op). Anything else is an [`InvalidTransition`] whose verb names the
    /// target: `reset` (→ pending), `start`, `complete`, `fail`, `skip`, e.g.
    /// `Cannot reset a step that is completed.`
    pub fn transition_to(self, target: StepStatus) -> Result<StepStatus, InvalidTransition> {
        if self.can_transition_to(target) {
            Ok(target)
        } else {
            Err(InvalidTransition::new("step", target.verb(), self.as_str()))
        }
    }
}

impl fmt::Display for StepStatus {
    /// The wire name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StepStatus {
    type Err = InvalidValue;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}

/// The progress of a mission from the statuses of its leaf steps: the share
/// that is done (`completed` or `skipped`), rounded down; 0 with no leaves.
///
/// (A completed mission is at 100 whatever this says; the caller sees to that.)
pub fn progress_of(leaves: impl IntoIterator<Item = StepStatus>) -> Progress {
    let (done, total) = count_done(leaves);
    Progress::from_leaves(done, total)
}

/// Whether there is at least one leaf and every leaf is done (`completed` or
/// `skipped`): the condition for an `in_progress` mission to complete by itself.
///
/// False for no leaves at all: a mission without steps never completes on its own.
pub fn all_leaves_done(leaves: impl IntoIterator<Item = StepStatus>) -> bool {
    let (done, total) = count_done(leaves);
    total > 0 && done == total
}

fn count_done(leaves: impl IntoIterator<Item = StepStatus>) -> (usize, usize) {
    leaves.into_iter().fold((0, 0), |(done, total), status| {
        (done + usize::from(status.is_done()), total + 1)
    })
}

// ---------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------

/// What a step does when the mission runs.
///
/// JSON: `{"kind": "manual"}`, `{"kind": "wait", "seconds": N}`,
/// `{"kind": "verify_documents"}`, `{"kind": "fetch_url", "url": "https://..."}`.
/// Deserialising goes through [`StepAction::parse`], so every value is valid:
/// `seconds` within 1..=86 400, `url` an [`HttpUrl`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepAction {
    /// Done by the user; the workers wait for it. The default.
    #[default]
    Manual,
    /// A timer of `seconds` (1..=86 400).
    Wait {
        /// How long to wait, 1..=86 400 seconds.
        seconds: u32,
    },
    /// Verify every document of the mission.
    VerifyDocuments,
    /// Download a document from `url` into the mission.
    FetchUrl {
        /// Where to download from.
        url: HttpUrl,
    },
}

impl StepAction {
    /// Every `kind`, as written in JSON.
    pub const KINDS: [&'static str; 4] = ["manual", "wait", "verify_documents", "fetch_url"];

    /// The longest `wait`, in seconds (one day).
    pub const MAX_WAIT_SECONDS: u32 = 86_400;

    /// Validates a JSON action, e.g. `{"kind": "wait", "seconds": 30}`.
    ///
    /// Fields that the kind does not use are ignored, like every unknown body field.
    pub fn parse(value: &Value) -> Result<StepAction, InvalidValue> {
        let object = match value {
            Value::Object(object) => object,
            Value::Null => return Err(InvalidValue::null()),
            _ => {
                return Err(InvalidValue::new(
                    "Expected a JSON object with a \"kind\", e.g. {\"kind\": \"manual\"}.",
                ));
            }
        };
        let kinds = Self::KINDS.join(", ");
        let kind = match object.get("kind") {
            None | Some(Value::Null) => {
                return Err(InvalidValue::new(format!(
                    "\"kind\" is required; choose from {kinds}."
                )));
            }
            Some(Value::String(kind)) => kind.as_str(),
            Some(_) => {
                return Err(InvalidValue::new(format!(
                    "\"kind\" must be a string; choose from {kinds}."
                )));
            }
        };
        match kind {
            "manual" => Ok(StepAction::Manual),
            "verify_documents" => Ok(StepAction::VerifyDocuments),
            "wait" => Ok(StepAction::Wait {
                seconds: parse_seconds(object)?,
            }),
            "fetch_url" => {
                let url = match object.get("url") {
                    None | Some(Value::Null) => {
                        return Err(InvalidValue::new(
                            "\"url\" is required for a fetch_url action.",
                        ));
                    }
                    Some(Value::String(url)) => url,
                    Some(_) => return Err(InvalidValue::new("\"url\" must be a string.")),
                };
                Ok(StepAction::FetchUrl {
                    url: HttpUrl::parse(url)?,
                })
            }
            other => {
                let shown: String = other.chars().take(50).collect();
                Err(InvalidValue::new(format!(
                    "\"{shown}\" is not a valid action kind; choose from {kinds}."
                )))
            }
        }
    }

    /// The `kind`: `manual`, `wait`, `verify_documents` or `fetch_url`.
    pub const fn kind(&self) -> &'static str {
        match self {
            StepAction::Manual => "manual",
            StepAction::Wait { .. } => "wait",
            StepAction::VerifyDocuments => "verify_documents",
            StepAction::FetchUrl { .. } => "fetch_url",
        }
    }

    /// Whether the background workers run this step (everything but `manual`).
    pub const fn is_automated(&self) -> bool {
        !matches!(self, StepAction::Manual)
    }

    /// The JSON form, e.g. `{"kind": "wait", "seconds": 30}`.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("kind".to_owned(), Value::from(self.kind()));
        match self {
            StepAction::Wait { seconds } => {
                object.insert("seconds".to_owned(), Value::from(*seconds));
            }
            StepAction::FetchUrl { url } => {
                object.insert("url".to_owned(), Value::from(url.as_str()));
            }
            StepAction::Manual | StepAction::VerifyDocuments => {}
        }
        Value::Object(object)
    }
}

fn parse_seconds(object: &Map<String, Value>) -> Result<u32, InvalidValue> {
    let max = StepAction::MAX_WAIT_SECONDS;
    let range = || InvalidValue::new(format!("\"seconds\" must be between 1 and {max}."));
    match object.get("seconds") {
        None | Some(Value::Null) => Err(InvalidValue::new(
            "\"seconds\" is required for a wait action.",
        )),
        Some(Value::Number(number)) => {
            if let Some(seconds) = number.as_u64() {
                match u32::try_from(seconds) {
                    Ok(seconds) if (1..=max).contains(&seconds) => Ok(seconds),
                    _ => Err(range()),
                }
            } else if number.as_i64().is_some() {
                // Negative.
                Err(range())
            } else {
                Err(InvalidValue::new("\"seconds\" must be an integer."))
            }
        }
        Some(_) => Err(InvalidValue::new("\"seconds\" must be an integer.")),
    }
}

impl<'de> serde::Deserialize<'de> for StepAction {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        StepAction::parse(&value).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------
// Tree rules
// ---------------------------------------------------------------------------

/// The most levels a plan can have: a root step is at depth 1, its
/// grandchildren at depth 3, and nothing deeper than depth 5.
pub const MAX_DEPTH: usize = 5;

/// What [`check_parent`] needs to know about a proposed parent step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParentInfo<'a> {
    /// The parent's id.
    pub id: StepId,
    /// The mission the parent belongs to.
    pub mission_id: MissionId,
    /// The ids of the parent's own ancestors, from its parent up to the root
    /// (any order; empty for a root step). Its length is the parent's depth − 1.
    pub ancestor_ids: &'a [StepId],
}

impl ParentInfo<'_> {
    /// The parent's depth: 1 for a root step.
    pub fn depth(&self) -> usize {
        self.ancestor_ids.len() + 1
    }
}

/// Checks where a step may go and returns its depth there (1 for a root step).
///
/// - `mission_id`: the mission of the step being created or moved;
/// - `step_id`: the step being moved, or `None` for a new step;
/// - `parent`: the proposed parent, or `None` for the top level;
/// - `subtree_height`: the levels of the moved subtree counting the step
///   itself (1 for a leaf or a new step; 0 is treated as 1).
///
/// Refuses (message for the `parent` field) a parent of another mission
/// (`Parent step must belong to the same mission.`), a cycle: the step itself
/// or one of its descendants as parent (`A step cannot be its own ancestor.`),
/// and a step or descendant ending deeper than [`MAX_DEPTH`]
/// (`Plan steps can be nested at most 5 levels deep.`).
pub fn check_parent(
    mission_id: MissionId,
    step_id: Option<StepId>,
    parent: Option<ParentInfo<'_>>,
    subtree_height: usize,
) -> Result<usize, InvalidValue> {
    let Some(parent) = parent else {
        return check_depth(1, subtree_height);
    };
    if parent.mission_id != mission_id {
        return Err(InvalidValue::new(
            "Parent step must belong to the same mission.",
        ));
    }
    if step_id.is_some_and(|id| parent.id == id || parent.ancestor_ids.contains(&id)) {
        return Err(InvalidValue::new("A step cannot be its own ancestor."));
    }
    check_depth(parent.depth() + 1, subtree_height)
}

/// Checks that a step at `depth` (1 for a root) holding a subtree
/// `subtree_height` levels high (1 for a leaf) ends within [`MAX_DEPTH`];
/// returns `depth`.
pub fn check_depth(depth: usize, subtree_height: usize) -> Result<usize, InvalidValue> {
    let deepest = depth.saturating_add(subtree_height.max(1) - 1);
    if deepest > MAX_DEPTH {
        Err(InvalidValue::rule(
            "max_depth",
            format!("Plan steps can be nested at most {MAX_DEPTH} levels deep."),
        ))
    } else {
        Ok(depth)
    }
}

// ---------------------------------------------------------------------------
// In-memory tree
// ---------------------------------------------------------------------------

/// Anything that has a step status (implement it for a step row to use
/// [`PlanStepTree::next_runnable`] and friends).
pub trait HasStepStatus {
    /// The step's status.
    fn step_status(&self) -> StepStatus;
}

impl HasStepStatus for StepStatus {
    fn step_status(&self) -> StepStatus {
        *self
    }
}

/// One step of a [`PlanStepTree`] with its children, sorted by `order` then id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepNode<T> {
    /// The step's id.
    pub id: StepId,
    /// The parent's id, as given (even for an orphan promoted to the top).
    pub parent_id: Option<StepId>,
    /// Position among siblings.
    pub order: i64,
    /// The caller's data for this step.
    pub item: T,
    /// The children, by `order` then id.
    pub children: Vec<StepNode<T>>,
}

impl<T> StepNode<T> {
    /// Whether the step has no children.
    pub fn is_leaf(&self) -> bool {
        self.children.is_empty()
    }

    /// The levels of this subtree, counting this step (1 for a leaf).
    pub fn height(&self) -> usize {
        DepthFirst::new(std::slice::from_ref(self))
            .map(|(_, depth)| depth)
            .max()
            .unwrap_or(1)
    }
}

/// The plan of one mission as a tree, built from flat rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanStepTree<T> {
    roots: Vec<StepNode<T>>,
}

impl<T> Default for PlanStepTree<T> {
    fn default() -> Self {
        Self { roots: Vec::new() }
    }
}

impl<T> PlanStepTree<T> {
    /// Builds the tree from `(id, parent_id, order, item)` rows in any order.
    ///
    /// Siblings are sorted by `order`, then id. A row whose parent is not
    /// among the rows is put at the top level. Rows that only a cycle of
    /// parents leads to (corrupt data) are left out. Duplicate ids keep the
    /// first row.
    pub fn build(rows: impl IntoIterator<Item = (StepId, Option<StepId>, i64, T)>) -> Self {
        let mut nodes: Vec<Option<StepNode<T>>> = Vec::new();
        let mut index: HashMap<StepId, usize> = HashMap::new();
        for (id, parent_id, order, item) in rows {
            if index.contains_key(&id) {
                continue;
            }
            index.insert(id, nodes.len());
            nodes.push(Some(StepNode {
                id,
                parent_id,
                order,
                item,
                children: Vec::new(),
            }));
        }

        // Children of each node (by index) and the roots, sorted.
        let key = |i: &usize, nodes: &[Option<StepNode<T>>]| {
            nodes[*i].as_ref().map(|node| (node.order, node.id))
        };
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
        let mut roots: Vec<usize> = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            let parent = node
                .as_ref()
                .and_then(|node| node.parent_id)
                .and_then(|parent_id| index.get(&parent_id).copied())
                .filter(|parent| *parent != i);
            match parent {
                Some(parent) => children[parent].push(i),
                None => roots.push(i),
            }
        }
        roots.sort_by_key(|i| key(i, &nodes));
        for list in &mut children {
            list.sort_by_key(|i| key(i, &nodes));
        }

        // Pre-order of the reachable nodes (iterative: corrupt data cannot blow the stack).
        let mut preorder: Vec<usize> = Vec::with_capacity(nodes.len());
        let mut stack: Vec<usize> = roots.iter().rev().copied().collect();
        let mut seen: HashSet<usize> = HashSet::new();
        while let Some(i) = stack.pop() {
            if !seen.insert(i) {
                continue;
            }
            preorder.push(i);
            stack.extend(children[i].iter().rev().copied());
        }

        // Attach children bottom-up: in reverse pre-order every node comes
        // after all of its descendants, so its children are complete.
        for &i in preorder.iter().rev() {
            let kids: Vec<StepNode<T>> = children[i]
                .iter()
                .filter_map(|&child| nodes[child].take())
                .collect();
            if let Some(node) = nodes[i].as_mut() {
                node.children = kids;
            }
        }
        let roots = roots.iter().filter_map(|&i| nodes[i].take()).collect();
        Self { roots }
    }

    /// The top-level steps, by `order`.
    pub fn roots(&self) -> &[StepNode<T>] {
        &self.roots
    }

    /// The top-level steps, owned (e.g. to render them as nested JSON).
    pub fn into_roots(mut self) -> Vec<StepNode<T>> {
        std::mem::take(&mut self.roots)
    }

    /// Whether the plan has no steps.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// Every step with its depth (1 for a root), in depth-first pre-order by `order`:
    /// the order in which the workers run a plan.
    pub fn depth_first(&self) -> DepthFirst<'_, T> {
        DepthFirst::new(&self.roots)
    }

    /// The leaf steps, in depth-first order.
    pub fn leaves(&self) -> impl Iterator<Item = &StepNode<T>> {
        self.depth_first()
            .map(|(node, _)| node)
            .filter(|node| node.is_leaf())
    }

    /// The step with this id.
    pub fn find(&self, id: StepId) -> Option<&StepNode<T>> {
        self.depth_first()
            .map(|(node, _)| node)
            .find(|node| node.id == id)
    }

    /// The ids of the ancestors of step `id`, from its parent up to the root;
    /// `None` if the step is not in the tree.
    pub fn ancestor_ids(&self, id: StepId) -> Option<Vec<StepId>> {
        let mut path: Vec<StepId> = Vec::new();
        let mut stack: Vec<(&StepNode<T>, usize)> =
            self.roots.iter().rev().map(|node| (node, 1)).collect();
        while let Some((node, depth)) = stack.pop() {
            path.truncate(depth - 1);
            if node.id == id {
                path.reverse();
                return Some(path);
            }
            path.push(node.id);
            stack.extend(node.children.iter().rev().map(|child| (child, depth + 1)));
        }
        None
    }

    /// Checks moving step `step_id` (or a new step, `None`) under `parent_id`
    /// (or to the top level, `None`) within this tree, as [`check_parent`]
    /// does, and returns the new depth. A `parent_id` that is not in this
    /// tree is refused as belonging to another mission: check first that it
    /// exists at all.
    pub fn check_parent(
        &self,
        step_id: Option<StepId>,
        parent_id: Option<StepId>,
    ) -> Result<usize, InvalidValue> {
        const SELF_MISSION: MissionId = MissionId(0);
        const OTHER_MISSION: MissionId = MissionId(1);
        let height = step_id
            .and_then(|id| self.find(id))
            .map_or(1, StepNode::height);
        let Some(parent_id) = parent_id else {
            return check_parent(SELF_MISSION, step_id, None, height);
        };
        match self.ancestor_ids(parent_id) {
            Some(ancestors) => check_parent(
                SELF_MISSION,
                step_id,
                Some(ParentInfo {
                    id: parent_id,
                    mission_id: SELF_MISSION,
                    ancestor_ids: &ancestors,
                }),
                height,
            ),
            None => check_parent(
                SELF_MISSION,
                step_id,
                Some(ParentInfo {
                    id: parent_id,
                    mission_id: OTHER_MISSION,
                    ancestor_ids: &[],
                }),
                height,
            ),
        }
    }
}

impl<T> Drop for PlanStepTree<T> {
    /// Drops the nodes one by one, so that even a corrupt, very deep chain
    /// cannot overflow the stack.
    fn drop(&mut self) {
        let mut pending = std::mem::take(&mut self.roots);
        while let Some(mut node) = pending.pop() {
            pending.append(&mut node.children);
        }
    }
}

impl<T: HasStepStatus> PlanStepTree<T> {
    /// The step the job engine should look at next: the first leaf, in
    /// depth-first order by `order`, that is not done (`completed`/`skipped`).
    /// `None` when every leaf is done (or there are none).
    pub fn next_runnable(&self) -> Option<StepId> {
        self.leaves()
            .find(|node| !node.item.step_status().is_done())
            .map(|node| node.id)
    }

    /// The mission's progress from this plan's leaves; see [`progress_of`].
    pub fn progress(&self) -> Progress {
        progress_of(self.leaves().map(|node| node.item.step_status()))
    }

    /// Whether there is a leaf and every leaf is done; see [`all_leaves_done`].
    pub fn all_leaves_done(&self) -> bool {
        all_leaves_done(self.leaves().map(|node| node.item.step_status()))
    }
}

/// Depth-first pre-order walk of a [`PlanStepTree`], yielding each step with
/// its depth (1 for a root).
#[derive(Debug, Clone)]
pub struct DepthFirst<'a, T> {
    stack: Vec<(&'a StepNode<T>, usize)>,
}

impl<'a, T> DepthFirst<'a, T> {
    fn new(roots: &'a [StepNode<T>]) -> Self {
        Self {
            stack: roots.iter().rev().map(|node| (node, 1)).collect(),
        }
    }
}

impl<'a, T> Iterator for DepthFirst<'a, T> {
    type Item = (&'a StepNode<T>, usize);

    fn next(&mut self) -> Option<Self::Item> {
        let (node, depth) = self.stack.pop()?;
        self.stack
            .extend(node.children.iter().rev().map(|child| (child, depth + 1)));
        Some((node, depth))
    }
}

// ---------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------

/// A plan step as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanStep {
    /// Primary key.
    pub id: StepId,
    /// The mission it belongs to.
    pub mission: MissionId,
    /// Its parent step, if any.
    pub parent: Option<StepId>,
    /// Title.
    pub title: crate::mission::Title,
    /// Description.
    pub description: crate::mission::Description,
    /// Position among its siblings.
    pub order: i32,
    /// Depth in the tree, 1 for a top-level step.
    pub depth: u8,
    /// Lifecycle status.
    pub status: StepStatus,
    /// What runs it.
    pub action: StepAction,
    /// The last failure of an automated run.
    pub last_error: Option<String>,
    /// When it started.
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it finished.
    pub completed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Creation time.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Last change.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl HasStepStatus for PlanStep {
    fn step_status(&self) -> StepStatus {
        self.status
    }
}

impl PlanStepTree<PlanStep> {
    /// The tree of a mission's steps.
    pub fn of_steps(steps: Vec<PlanStep>) -> Self {
        Self::build(
            steps
                .into_iter()
                .map(|step| (step.id, step.parent, i64::from(step.order), step)),
        )
    }
}

/// A step's position among its siblings, from 0 to `i32::MAX` (the
/// column's range); siblings are shown by ascending order, then id.
///
/// ```
/// use autodocs_domain::plan_step::StepOrder;
/// use autodocs_domain::validation::InvalidValue;
///
/// assert_eq!(StepOrder::new(3).map(StepOrder::get), Ok(3));
/// assert_eq!(StepOrder::new(-1), Err(InvalidValue::AtLeast { min: 0 }));
/// assert!(StepOrder::new(i64::from(i32::MAX) + 1).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StepOrder(i32);

impl StepOrder {
    /// The position `raw`, refused below 0 and above `i32::MAX`.
    pub fn new(raw: i64) -> Result<Self, InvalidValue> {
        if raw < 0 {
            return Err(InvalidValue::at_least(0));
        }
        i32::try_from(raw)
            .map(Self)
            .map_err(|_| InvalidValue::at_most(i64::from(i32::MAX)))
    }

    /// The position.
    pub fn get(self) -> i32 {
        self.0
    }
}

/// What a search across the steps of many missions asks for (an
/// operator's view): newest mission first; within a mission, by depth,
/// then order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepQuery {
    /// Only steps of this owner's missions (set by the use case for a
    /// caller who is not staff).
    pub owner: Option<crate::ids::UserId>,
    /// Only the steps of this mission.
    pub mission: Option<MissionId>,
    /// Only steps of these statuses (empty: any).
    pub statuses: Vec<StepStatus>,
    /// Only steps whose title contains this (case-insensitive).
    pub search: Option<String>,
    /// Which page.
    pub page: crate::paging::PageRequest,
}

/// A step to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPlanStep {
    /// The mission.
    pub mission: MissionId,
    /// Parent step, already checked to be of the same mission.
    pub parent: Option<StepId>,
    /// Title.
    pub title: crate::mission::Title,
    /// Description.
    pub description: crate::mission::Description,
    /// Position among siblings.
    pub order: i32,
    /// Depth, already checked against [`MAX_DEPTH`].
    pub depth: u8,
    /// What runs it.
    pub action: StepAction,
}

/// Changes to a step; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepChanges {
    /// New title.
    pub title: Option<crate::mission::Title>,
    /// New description.
    pub description: Option<crate::mission::Description>,
    /// New position.
    pub order: Option<i32>,
    /// New parent (`Some(None)`: move to the top level) with the new depth.
    pub parent: Option<(Option<StepId>, u8)>,
    /// New status.
    pub status: Option<StepStatus>,
    /// New `started_at`.
    pub started_at: Option<Option<chrono::DateTime<chrono::Utc>>>,
    /// New `completed_at`.
    pub completed_at: Option<Option<chrono::DateTime<chrono::Utc>>>,
    /// New `last_error`.
    pub last_error: Option<Option<String>>,
}

impl StepChanges {
    /// The status change `to` with the timestamps it implies at `now`.
    pub fn status(from: StepStatus, to: StepStatus, now: chrono::DateTime<chrono::Utc>) -> Self {
        let mut changes = Self {
            status: Some(to),
            ..Self::default()
        };
        if from != to {
            match to {
                StepStatus::InProgress => changes.started_at = Some(Some(now)),
                StepStatus::Completed | StepStatus::Skipped | StepStatus::Failed => {
                    changes.completed_at = Some(Some(now))
                }
                StepStatus::Pending => {
                    changes.started_at = Some(None);
                    changes.completed_at = Some(None);
                }
            }
        }
        changes
    }

    /// The names of the fields that change, for the activity's details.
    pub fn changed_fields(&self) -> Vec<&'static str> {
        let mut fields = Vec::new();
        if self.title.is_some() {
            fields.push("title");
        }
        if self.description.is_some() {
            fields.push("description");
        }
        if self.order.is_some() {
            fields.push("order");
        }
        if self.parent.is_some() {
            fields.push("parent");
        }
        if self.status.is_some() {
            fields.push("status");
        }
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StepStatus as S;
    use serde_json::json;

    fn expected(from: StepStatus, to: StepStatus) -> bool {
        matches!(
            (from, to),
            (S::Pending, S::Pending)
                | (S::Pending, S::InProgress)
                | (S::Pending, S::Completed)
                | (S::Pending, S::Skipped)
                | (S::Pending, S::Failed)
                | (S::InProgress, S::InProgress)
                | (S::InProgress, S::Completed)
                | (S::InProgress, S::Failed)
                | (S::InProgress, S::Pending)
                | (S::InProgress, S::Skipped)
                | (S::Failed, S::Failed)
                | (S::Failed, S::Pending)
                | (S::Failed, S::InProgress)
                | (S::Failed, S::Skipped)
                | (S::Completed, S::Completed)
                | (S::Skipped, S::Skipped)
        )
    }

    #[test]
    fn every_status_times_every_target() {
        let mut legal = 0;
        for from in S::ALL {
            for to in S::ALL {
                let got = from.transition_to(to);
                if expected(from, to) {
                    legal += 1;
                    assert_eq!(got, Ok(to), "{from:?} -> {to:?}");
                } else {
                    let error = got.expect_err("should be refused");
                    assert_eq!(error.entity, "step");
                    assert_eq!(error.from, from.as_str());
                }
            }
        }
        assert_eq!(legal, 16);
        assert_eq!(
            S::Completed
                .transition_to(S::Pending)
                .expect_err("final")
                .to_string(),
            "Cannot reset a step that is completed."
        );
        assert_eq!(
            S::Skipped
                .transition_to(S::InProgress)
                .expect_err("final")
                .to_string(),
            "Cannot start a step that is skipped."
        );
        assert_eq!(
            S::Failed
                .transition_to(S::Completed)
                .expect_err("refused")
                .to_string(),
            "Cannot complete a step that is failed."
        );
    }

    #[test]
    fn status_names_and_predicates() {
        for (status, name) in
            S::ALL
                .into_iter()
                .zip(["pending", "in_progress", "completed", "failed", "skipped"])
        {
            assert_eq!(status.as_str(), name);
            assert_eq!(S::parse(name), Ok(status));
            assert_eq!(
                serde_json::to_value(status).expect("serialise"),
                json!(name)
            );
        }
        assert!(S::parse("done").is_err());
        assert!(S::parse("Completed").is_err());
        for status in S::ALL {
            assert_eq!(
                status.is_done(),
                matches!(status, S::Completed | S::Skipped)
            );
            assert_eq!(status.is_open(), S::OPEN.contains(&status));
            let after = status.skip_open();
            if status.is_done() {
                assert_eq!(after, status);
            } else {
                assert_eq!(after, S::Skipped);
                // And the move is legal.
                assert_eq!(status.transition_to(S::Skipped), Ok(S::Skipped));
            }
        }
    }

    #[test]
    fn progress_and_completion() {
        assert_eq!(progress_of([]).value(), 0);
        assert_eq!(
            progress_of([S::Completed, S::Pending, S::Failed]).value(),
            33
        );
        assert_eq!(
            progress_of([S::Completed, S::Skipped, S::Failed]).value(),
            66
        );
        assert_eq!(
            progress_of([S::Completed, S::Skipped, S::Skipped]).value(),
            100
        );
        assert!(!all_leaves_done([]));
        assert!(all_leaves_done([S::Completed, S::Skipped]));
        assert!(!all_leaves_done([S::Completed, S::InProgress]));
    }

    fn parse(value: Value) -> Result<StepAction, String> {
        StepAction::parse(&value).map_err(|error| error.to_string())
    }

    #[test]
    fn valid_actions() {
        assert_eq!(parse(json!({"kind": "manual"})), Ok(StepAction::Manual));
        assert_eq!(
            parse(json!({"kind": "verify_documents"})),
            Ok(StepAction::VerifyDocuments)
        );
        assert_eq!(
            parse(json!({"kind": "wait", "seconds": 1})),
            Ok(StepAction::Wait { seconds: 1 })
        );
        assert_eq!(
            parse(json!({"kind": "wait", "seconds": 86_400})),
            Ok(StepAction::Wait { seconds: 86_400 })
        );
        let fetch = parse(json!({"kind": "fetch_url", "url": "https://example.com/a.pdf?x=1"}))
            .expect("valid");
        assert!(fetch.is_automated());
        assert_eq!(fetch.kind(), "fetch_url");
        assert_eq!(
            fetch.to_json(),
            json!({"kind": "fetch_url", "url": "https://example.com/a.pdf?x=1"})
        );
        // Serialize agrees with to_json, and deserialising validates.
        assert_eq!(
            serde_json::to_value(&fetch).expect("serialise"),
            fetch.to_json()
        );
        let back: StepAction = serde_json::from_value(fetch.to_json()).expect("deserialise");
        assert_eq!(back, fetch);
        assert!(
            serde_json::from_value::<StepAction>(json!({"kind": "wait", "seconds": 0})).is_err()
        );
        // Unknown fields are ignored.
        assert_eq!(
            parse(json!({"kind": "manual", "url": "file:///etc/passwd"})),
            Ok(StepAction::Manual)
        );
        assert_eq!(StepAction::default(), StepAction::Manual);
        assert!(!StepAction::Manual.is_automated());
        assert_eq!(StepAction::Manual.to_json(), json!({"kind": "manual"}));
        assert_eq!(
            StepAction::Wait { seconds: 5 }.to_json(),
            json!({"kind": "wait", "seconds": 5})
        );
        assert_eq!(
            serde_json::to_value(StepAction::Wait { seconds: 5 }).expect("serialise"),
            json!({"kind": "wait", "seconds": 5})
        );
    }

    #[test]
    fn hostile_actions() {
        let kinds = "choose from manual, wait, verify_documents, fetch_url.";
        let cases: Vec<(Value, String)> = vec![
            (json!(null), InvalidValue::Null.to_string()),
            (
                json!([{"kind": "manual"}]),
                "Expected a JSON object with a \"kind\", e.g. {\"kind\": \"manual\"}.".into(),
            ),
            (
                json!("manual"),
                "Expected a JSON object with a \"kind\", e.g. {\"kind\": \"manual\"}.".into(),
            ),
            (json!({}), format!("\"kind\" is required; {kinds}")),
            (
                json!({"kind": null}),
                format!("\"kind\" is required; {kinds}"),
            ),
            (
                json!({"kind": 1}),
                format!("\"kind\" must be a string; {kinds}"),
            ),
            (
                json!({"kind": "Manual"}),
                format!("\"Manual\" is not a valid action kind; {kinds}"),
            ),
            (
                json!({"kind": "shell", "cmd": "rm -rf /"}),
                format!("\"shell\" is not a valid action kind; {kinds}"),
            ),
            (
                json!({"kind": "wait"}),
                "\"seconds\" is required for a wait action.".into(),
            ),
            (
                json!({"kind": "wait", "seconds": -1}),
                "\"seconds\" must be between 1 and 86400.".into(),
            ),
            (
                json!({"kind": "wait", "seconds": 0}),
                "\"seconds\" must be between 1 and 86400.".into(),
            ),
            (
                json!({"kind": "wait", "seconds": 86_401}),
                "\"seconds\" must be between 1 and 86400.".into(),
            ),
            (
                json!({"kind": "wait", "seconds": u64::MAX}),
                "\"seconds\" must be between 1 and 86400.".into(),
            ),
            (
                json!({"kind": "wait", "seconds": 4_294_967_297_u64}),
                "\"seconds\" must be between 1 and 86400.".into(),
            ),
            (
                json!({"kind": "wait", "seconds": 1.5}),
                "\"seconds\" must be an integer.".into(),
            ),
            (
                json!({"kind": "wait", "seconds": 1e300}),
                "\"seconds\" must be an integer.".into(),
            ),
            (
                json!({"kind": "wait", "seconds": "10"}),
                "\"seconds\" must be an integer.".into(),
            ),
            (
                json!({"kind": "fetch_url"}),
                "\"url\" is required for a fetch_url action.".into(),
            ),
            (
                json!({"kind": "fetch_url", "url": ["https://a.com"]}),
                "\"url\" must be a string.".into(),
            ),
            (
                json!({"kind": "fetch_url", "url": "file:///etc/passwd"}),
                "Only http and https URLs are allowed.".into(),
            ),
            (
                json!({"kind": "fetch_url", "url": "javascript:alert(1)"}),
                "Only http and https URLs are allowed.".into(),
            ),
            (
                json!({"kind": "fetch_url", "url": "http://"}),
                "Enter a valid URL.".into(),
            ),
            (
                json!({"kind": "fetch_url", "url": "http://exa mple.com/"}),
                "Enter a valid URL.".into(),
            ),
            (
                json!({"kind": "fetch_url", "url": "https://user:pw@example.com/"}),
                "URLs with credentials are not allowed.".into(),
            ),
            (
                json!({"kind": "fetch_url", "url": ""}),
                InvalidValue::Blank.to_string(),
            ),
        ];
        for (value, message) in cases {
            assert_eq!(parse(value.clone()), Err(message), "{value}");
        }
        // A huge kind is not echoed whole.
        let long = "k".repeat(10_000);
        let error = parse(json!({"kind": long})).expect_err("refused");
        assert!(error.len() < 200);
    }

    fn parent(id: i64, mission_id: i64, ancestor_ids: &[StepId]) -> ParentInfo<'_> {
        ParentInfo {
            id: StepId(id),
            mission_id: MissionId(mission_id),
            ancestor_ids,
        }
    }

    fn ids(raw: &[i64]) -> Vec<StepId> {
        raw.iter().copied().map(StepId).collect()
    }

    fn build<T>(rows: impl IntoIterator<Item = (i64, Option<i64>, i64, T)>) -> PlanStepTree<T> {
        PlanStepTree::build(
            rows.into_iter()
                .map(|(id, parent, order, item)| (StepId(id), parent.map(StepId), order, item)),
        )
    }

    #[test]
    fn parent_rules() {
        let too_deep = Err(InvalidValue::rule(
            "max_depth",
            "Plan steps can be nested at most 5 levels deep.",
        ));
        let cycle = Err(InvalidValue::new("A step cannot be its own ancestor."));
        let other = Err(InvalidValue::new(
            "Parent step must belong to the same mission.",
        ));
        // Top level.
        assert_eq!(check_parent(MissionId(1), None, None, 1), Ok(1));
        assert_eq!(check_parent(MissionId(1), Some(StepId(9)), None, 5), Ok(1));
        assert_eq!(
            check_parent(MissionId(1), Some(StepId(9)), None, 6),
            too_deep
        );
        assert_eq!(check_parent(MissionId(1), None, None, 0), Ok(1));
        // Under a root (depth 1) -> depth 2.
        assert_eq!(
            check_parent(MissionId(1), None, Some(parent(10, 1, &[])), 1),
            Ok(2)
        );
        // Under a step at depth 4 -> depth 5: fine for a leaf, not for a subtree.
        assert_eq!(
            check_parent(
                MissionId(1),
                Some(StepId(99)),
                Some(parent(10, 1, &ids(&[1, 2, 3]))),
                1
            ),
            Ok(5)
        );
        assert_eq!(
            check_parent(
                MissionId(1),
                Some(StepId(99)),
                Some(parent(10, 1, &ids(&[1, 2, 3]))),
                2
            ),
            too_deep
        );
        // Under a step at depth 5.
        assert_eq!(
            check_parent(
                MissionId(1),
                None,
                Some(parent(10, 1, &ids(&[1, 2, 3, 4]))),
                1
            ),
            too_deep
        );
        // Another mission.
        assert_eq!(
            check_parent(MissionId(1), None, Some(parent(10, 2, &[])), 1),
            other
        );
        // Under itself, under a descendant.
        assert_eq!(
            check_parent(MissionId(1), Some(StepId(10)), Some(parent(10, 1, &[])), 1),
            cycle
        );
        assert_eq!(
            check_parent(
                MissionId(1),
                Some(StepId(3)),
                Some(parent(10, 1, &ids(&[5, 3, 1]))),
                2
            ),
            cycle
        );
        // A sibling is fine.
        assert_eq!(
            check_parent(
                MissionId(1),
                Some(StepId(3)),
                Some(parent(4, 1, &ids(&[1]))),
                2
            ),
            Ok(3)
        );
        // Huge heights do not overflow.
        assert_eq!(check_parent(MissionId(1), None, None, usize::MAX), too_deep);
    }

    /// 1
    /// ├── 2 (order 0)
    /// │   ├── 4 (order 5)
    /// │   └── 3 (order 1)   -> 3 before 4
    /// └── 5 (order 1)
    /// 6 (order 2, root)
    /// 7 (orphan: parent 999 missing) -> top level
    fn sample() -> PlanStepTree<StepStatus> {
        build(vec![
            (5, Some(1), 1, S::Pending),
            (4, Some(2), 5, S::Pending),
            (6, None, 2, S::Pending),
            (1, None, 0, S::Pending),
            (2, Some(1), 0, S::Pending),
            (3, Some(2), 1, S::Completed),
            (7, Some(999), 3, S::Pending),
        ])
    }

    #[test]
    fn tree_shape_and_order() {
        let tree = sample();
        let order: Vec<(i64, usize)> = tree
            .depth_first()
            .map(|(node, depth)| (node.id.0, depth))
            .collect();
        assert_eq!(
            order,
            vec![(1, 1), (2, 2), (3, 3), (4, 3), (5, 2), (6, 1), (7, 1)]
        );
        let leaves: Vec<i64> = tree.leaves().map(|node| node.id.0).collect();
        assert_eq!(leaves, vec![3, 4, 5, 6, 7]);
        assert_eq!(tree.roots().len(), 3);
        assert_eq!(tree.find(StepId(1)).map(StepNode::height), Some(3));
        assert_eq!(tree.find(StepId(3)).map(StepNode::height), Some(1));
        assert_eq!(tree.ancestor_ids(StepId(4)), Some(ids(&[2, 1])));
        assert_eq!(tree.ancestor_ids(StepId(1)), Some(vec![]));
        assert_eq!(tree.ancestor_ids(StepId(5)), Some(ids(&[1])));
        assert_eq!(tree.ancestor_ids(StepId(42)), None);
        // Ties in order fall back to the id.
        let tied = build(vec![(9, None, 0, S::Pending), (8, None, 0, S::Pending)]);
        let ids: Vec<i64> = tied.roots().iter().map(|n| n.id.0).collect();
        assert_eq!(ids, vec![8, 9]);
        assert!(build::<StepStatus>(Vec::new()).is_empty());
    }

    #[test]
    fn next_runnable_and_progress() {
        let tree = sample();
        // 3 is completed, so the first open leaf is 4.
        assert_eq!(tree.next_runnable(), Some(StepId(4)));
        assert_eq!(tree.progress().value(), 20);
        assert!(!tree.all_leaves_done());

        let done = build(vec![
            (1, None, 0, S::Pending),
            (2, Some(1), 0, S::Completed),
            (3, Some(1), 1, S::Skipped),
        ]);
        // The parent is not a leaf; its own status does not count.
        assert_eq!(done.next_runnable(), None);
        assert_eq!(done.progress(), Progress::COMPLETE);
        assert!(done.all_leaves_done());

        let failed_first = build(vec![(1, None, 0, S::Failed), (2, None, 1, S::Pending)]);
        assert_eq!(failed_first.next_runnable(), Some(StepId(1)));
        let empty = PlanStepTree::<StepStatus>::default();
        assert_eq!(empty.next_runnable(), None);
        assert_eq!(empty.progress(), Progress::ZERO);
        assert!(!empty.all_leaves_done());
    }

    #[test]
    fn corrupt_rows_terminate() {
        // 1 <-> 2 cycle, 3 its own parent, duplicate id 4.
        let tree = build(vec![
            (1, Some(2), 0, S::Pending),
            (2, Some(1), 0, S::Pending),
            (3, Some(3), 0, S::Pending),
            (4, None, 0, S::Pending),
            (4, None, 1, S::Completed),
        ]);
        let ids: Vec<i64> = tree.depth_first().map(|(node, _)| node.id.0).collect();
        assert_eq!(ids, vec![3, 4]);
        assert_eq!(tree.find(StepId(4)).map(|n| n.item), Some(S::Pending));

        // A very deep chain is built without recursion.
        let deep = build(
            (1..=100_000_i64)
                .map(|id| (id, if id == 1 { None } else { Some(id - 1) }, 0, S::Pending)),
        );
        assert_eq!(deep.depth_first().count(), 100_000);
        assert_eq!(deep.next_runnable(), Some(StepId(100_000)));
        // Dropping it must not overflow the stack either (see Drop below).
        drop(deep);
    }

    #[test]
    fn tree_check_parent() {
        let tree = sample();
        let cycle = Err(InvalidValue::new("A step cannot be its own ancestor."));
        assert_eq!(tree.check_parent(Some(StepId(1)), Some(StepId(4))), cycle);
        assert_eq!(tree.check_parent(Some(StepId(2)), Some(StepId(2))), cycle);
        assert_eq!(tree.check_parent(Some(StepId(6)), Some(StepId(4))), Ok(4));
        // Subtree of 1 has height 3: under 6 (depth 1) ends at depth 4.
        assert_eq!(tree.check_parent(Some(StepId(1)), Some(StepId(6))), Ok(2));
        assert_eq!(tree.check_parent(None, None), Ok(1));
        assert_eq!(
            tree.check_parent(None, Some(StepId(12345))),
            Err(InvalidValue::new(
                "Parent step must belong to the same mission."
            ))
        );
        // A chain 1..=5: nothing may go under 5, and 2's subtree (height 4)
        // cannot go under 3 (cycle) nor stay deeper than 5.
        let chain = build(
            (1..=5_i64).map(|id| (id, if id == 1 { None } else { Some(id - 1) }, 0, S::Pending)),
        );
        assert!(chain.check_parent(None, Some(StepId(5))).is_err());
        assert_eq!(chain.check_parent(None, Some(StepId(4))), Ok(5));
        assert_eq!(chain.check_parent(Some(StepId(5)), None), Ok(1));
        let extra = build(vec![
            (1, None, 0, S::Pending),
            (2, Some(1), 0, S::Pending),
            (10, None, 1, S::Pending),
            (11, Some(10), 0, S::Pending),
            (12, Some(11), 0, S::Pending),
            (13, Some(12), 0, S::Pending),
        ]);
        // 10's subtree has height 4: under 2 (depth 2) it would reach depth 6.
        assert!(
            extra
                .check_parent(Some(StepId(10)), Some(StepId(2)))
                .is_err()
        );
        assert_eq!(extra.check_parent(Some(StepId(10)), Some(StepId(1))), Ok(2));
    }
}
