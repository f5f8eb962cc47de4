//! Plan steps: the tree under a mission, kept consistent with its progress.

use serde_json::Value;

use crate::activity::SystemActivity;
use crate::activity_log::NewActivity;
use crate::error::{Error, Result};
use crate::ids::{MissionId, StepId};
use crate::mission::{Description, Mission, Title};
use crate::plan_step::{
    NewPlanStep, PlanStep, PlanStepTree, StepAction, StepChanges, StepNode, StepStatus,
};
use crate::ports::{self, Repositories};
use crate::user::Principal;
use crate::validation::{InvalidValue, ValidationErrors};

use super::missions::refresh_progress;

/// The most steps one mission may hold (`missions.max_steps`): a plan is
/// loaded whole on every change of a step and shown whole in the detail
/// view, so its size is what one request costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxSteps(u32);

impl MaxSteps {
    /// The default limit.
    pub const DEFAULT: MaxSteps = MaxSteps(1000);

    /// A limit of `steps` (at least one); `None` for zero.
    pub fn new(steps: u32) -> Option<Self> {
        (steps > 0).then_some(Self(steps))
    }

    /// The limit.
    pub fn get(self) -> u32 {
        self.0
    }

    fn message(self) -> String {
        format!("A mission can have at most {} plan steps.", self.0)
    }

    /// Refuses a plan of `steps` steps given at creation (on `plan_steps`).
    pub fn check_plan(self, steps: u64) -> Result<()> {
        if steps > u64::from(self.0) {
            return Err(Error::field(
                "plan_steps",
                InvalidValue::rule("max_steps", self.message()),
            ));
        }
        Ok(())
    }

    /// Refuses adding `adding` steps to a mission holding `existing`.
    pub fn check_room(self, existing: u64, adding: u64) -> Result<()> {
        if existing.saturating_add(adding) > u64::from(self.0) {
            return Err(Error::Validation(ValidationErrors::single_general(
                InvalidValue::rule("max_steps", self.message()),
            )));
        }
        Ok(())
    }
}

impl Default for MaxSteps {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The raw fields of a step create or update; `None` means absent.
#[derive(Debug, Clone, Default)]
pub struct StepInput {
    /// Title.
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Parent id: `Some(None)` is an explicit null (top level).
    pub parent: Option<Option<i64>>,
    /// Position among siblings.
    pub order: Option<i64>,
    /// Action (create only).
    pub action: Option<Value>,
    /// Status (update only).
    pub status: Option<String>,
}

fn parse_order(raw: i64) -> Result<i32, InvalidValue> {
    if raw < 0 {
        return Err(InvalidValue::at_least(0));
    }
    i32::try_from(raw).map_err(|_| InvalidValue::at_most(i64::from(i32::MAX)))
}

/// A step's position in the tree after a change, checked against the tree rules.
fn placement(
    tree: &PlanStepTree<PlanStep>,
    step: Option<StepId>,
    parent: Option<StepId>,
) -> Result<u8> {
    let depth = tree
        .check_parent(step, parent)
        .map_err(|error| Error::field("parent", error))?;
    u8::try_from(depth).map_err(|_| Error::field("parent", "Plan steps are nested too deeply."))
}

super::service!(
    /// A mission's plan steps.
    ///
    /// ```
    /// # let memory = autodocs_memory::services();
    /// # let services = &memory.services;
    /// # let session = services.accounts().register(
    /// #     autodocs_domain::usecases::auth::Registration::parse(
    /// #         &autodocs_domain::usecases::auth::RegisterInput {
    /// #             username: "anna".into(),
    /// #             email: "anna@example.com".into(),
    /// #             password: "violet-Harbor-1987".into(),
    /// #             first_name: "Anna".into(),
    /// #             last_name: "Berg".into(),
    /// #         },
    /// #     )?,
    /// # )?;
    /// # let anna = autodocs_domain::user::Principal { user_id: session.user.id, is_staff: false };
    /// # let created = services.missions().create(anna, autodocs_domain::usecases::missions::MissionInput {
    /// #     title: Some("Retrieve Tax Documents".into()),
    /// #     kind: Some("document_retrieval".into()),
    /// #     ..Default::default()
    /// # }.parse_new()?)?;
    /// # let mission = created.mission.id;
    /// use autodocs_domain::usecases::steps::StepInput;
    /// use serde_json::json;
    ///
    /// let download = StepInput {
    ///     title: Some("Download the W-2".into()),
    ///     action: Some(json!({"kind": "fetch_url", "url": "https://payroll.example.com/w2.pdf"})),
    ///     ..StepInput::default()
    /// };
    /// let step = services.steps().create(anna, mission, &download)?;
    /// let tree = services.steps().list(anna, mission)?;
    /// assert_eq!(tree.roots()[0].id, step.id);
    /// // A URL that is not http(s) is refused, field by field.
    /// let bad = StepInput {
    ///     title: Some("Read a file".into()),
    ///     action: Some(json!({"kind": "fetch_url", "url": "file:///etc/passwd"})),
    ///     ..StepInput::default()
    /// };
    /// assert!(services.steps().create(anna, mission, &bad).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    StepService
);

impl StepService {
    /// The step tree of a mission.
    pub fn list(&self, principal: Principal, mission: MissionId) -> Result<PlanStepTree<PlanStep>> {
        ports::read(&*self.context.uow, |repos| {
            visible_mission(repos, principal, mission)?;
            Ok(PlanStepTree::of_steps(repos.steps().list(mission)?))
        })
    }

    /// One step with its subtree.
    pub fn get(
        &self,
        principal: Principal,
        mission: MissionId,
        step: StepId,
    ) -> Result<StepNode<PlanStep>> {
        ports::read(&*self.context.uow, |repos| {
            visible_mission(repos, principal, mission)?;
            subtree(repos, mission, step)
        })
    }

    /// Adds a step (appended last among its siblings unless `order` is given).
    pub fn create(
        &self,
        principal: Principal,
        mission_id: MissionId,
        input: &StepInput,
    ) -> Result<StepNode<PlanStep>> {
        let mut errors = ValidationErrors::new();
        let title = match &input.title {
            Some(raw) => errors.check("title", Title::parse(raw)),
            None => errors.check("title", Err(InvalidValue::required())),
        };
        let description = errors.check(
            "description",
            Description::parse(input.description.as_deref().unwrap_or("")),
        );
        let order = input
            .order
            .map(|raw| errors.check("order", parse_order(raw)));
        let action = match &input.action {
            Some(raw) => errors.check("action", StepAction::parse(raw)),
            None => Some(StepAction::default()),
        };
        errors.into_result()?;
        let (Some(title), Some(description), Some(action)) = (title, description, action) else {
            return Err(Error::field("title", InvalidValue::required()));
        };
        let parent = input.parent.flatten().map(StepId);
        let now = self.context.clock.now();
        self.context.write(|repos| {
            let mission = locked_mission(repos, principal, mission_id)?;
            // Counted under the mission's lock: two racing creates cannot
            // both take the last place.
            self.context.max_steps.check_room(mission.steps_total, 1)?;
            let tree = PlanStepTree::of_steps(repos.steps().list(mission_id)?);
            let depth = placement(&tree, None, parent)?;
            let order = match order.flatten() {
                Some(order) => order,
                None => repos.steps().next_order(mission_id, parent)?,
            };
            let step = repos.steps().create(
                &NewPlanStep {
                    mission: mission_id,
                    parent,
                    title,
                    description,
                    order,
                    depth,
                    action,
                },
                now,
            )?;
            let activity = NewActivity::system(SystemActivity::StepCreated, mission.owner)
                .with_mission(mission_id)
                .with_detail("step_id", step.id);
            repos.activities().record(&activity, now)?;
            refresh_progress(repos, mission_id, now)?;
            subtree(repos, mission_id, step.id)
        })
    }

    /// Edits a step; a status change moves the mission's progress in the same transaction.
    pub fn update(
        &self,
        principal: Principal,
        mission_id: MissionId,
        step_id: StepId,
        input: &StepInput,
    ) -> Result<StepNode<PlanStep>> {
        let mut errors = ValidationErrors::new();
        let mut changes = StepChanges {
            title: input
                .title
                .as_deref()
                .and_then(|raw| errors.check("title", Title::parse(raw))),
            description: input
                .description
                .as_deref()
                .and_then(|raw| errors.check("description", Description::parse(raw))),
            order: input
                .order
                .and_then(|raw| errors.check("order", parse_order(raw))),
            ..StepChanges::default()
        };
        let status = input
            .status
            .as_deref()
            .and_then(|raw| errors.check("status", StepStatus::parse(raw)));
        errors.into_result()?;
        let now = self.context.clock.now();
        self.context.write(|repos| {
            let mission = locked_mission(repos, principal, mission_id)?;
            let tree = PlanStepTree::of_steps(repos.steps().list(mission_id)?);
            let node = tree.find(step_id).ok_or(Error::NotFound)?;
            let step = &node.item;
            let mut moved = None;
            if let Some(parent) = input.parent.map(|parent| parent.map(StepId))
                && parent != step.parent
            {
                let depth = placement(&tree, Some(step_id), parent)?;
                changes.parent = Some((parent, depth));
                moved = Some(i32::from(depth) - i32::from(step.depth));
            }
            if let Some(target) = status {
                let status_change =
                    StepChanges::status(step.status, step.status.transition_to(target)?, now);
                changes.status = status_change.status;
                changes.started_at = status_change.started_at;
                changes.completed_at = status_change.completed_at;
            }
            if changes == StepChanges::default() {
                return subtree(repos, mission_id, step_id);
            }
            repos.steps().update(step_id, &changes, now)?;
            if let Some(shift) = moved.filter(|shift| *shift != 0) {
                shift_descendants(repos, node, shift)?;
            }
            let activity = NewActivity::system(SystemActivity::StepUpdated, mission.owner)
                .with_mission(mission_id)
                .with_detail("step_id", step_id)
                .with_detail("fields", changes.changed_fields());
            let activity = match changes.status {
                Some(status) => activity.with_detail("status", status.as_str()),
                None => activity,
            };
            repos.activities().record(&activity, now)?;
            refresh_progress(repos, mission_id, now)?;
            subtree(repos, mission_id, step_id)
        })
    }

    /// Deletes a step and its subtree.
    pub fn delete(
        &self,
        principal: Principal,
        mission_id: MissionId,
        step_id: StepId,
    ) -> Result<()> {
        let now = self.context.clock.now();
        self.context.write(|repos| {
            let mission = locked_mission(repos, principal, mission_id)?;
            repos
                .steps()
                .find(mission_id, step_id)?
                .ok_or(Error::NotFound)?;
            let removed = repos.steps().delete(step_id)?;
            let activity = NewActivity::system(SystemActivity::StepDeleted, mission.owner)
                .with_mission(mission_id)
                .with_detail("step_id", step_id)
                .with_detail("removed", removed);
            repos.activities().record(&activity, now)?;
            refresh_progress(repos, mission_id, now)
        })
    }
}

/// The mission, if the principal may see it.
fn visible_mission(
    repos: &mut dyn Repositories,
    principal: Principal,
    id: MissionId,
) -> Result<Mission> {
    repos
        .missions()
        .find(id, principal.visible_owner())?
        .ok_or(Error::NotFound)
}

/// The mission, if the principal may see it, locked until the commit: a
/// transaction that writes steps takes the mission's lock before any
/// step's (see [`crate::ports::MissionRepository::lock`]).
fn locked_mission(
    repos: &mut dyn Repositories,
    principal: Principal,
    id: MissionId,
) -> Result<Mission> {
    repos
        .missions()
        .lock(id, principal.visible_owner())?
        .ok_or(Error::NotFound)
}

/// A step with its children, freshly read.
fn subtree(
    repos: &mut dyn Repositories,
    mission: MissionId,
    step: StepId,
) -> Result<StepNode<PlanStep>> {
    let tree = PlanStepTree::of_steps(repos.steps().list(mission)?);
    tree.find(step).cloned().ok_or(Error::NotFound)
}

/// Moves the stored depth of every descendant of `node` by `shift`.
fn shift_descendants(
    repos: &mut dyn Repositories,
    node: &StepNode<PlanStep>,
    shift: i32,
) -> Result<()> {
    for child in &node.children {
        let depth = u8::try_from(i32::from(child.item.depth) + shift)
            .map_err(|_| Error::field("parent", "Plan steps are nested too deeply."))?;
        repos.steps().set_depth(child.id, depth)?;
        shift_descendants(repos, child, shift)?;
    }
    Ok(())
}
