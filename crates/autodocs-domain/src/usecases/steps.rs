//! Plan steps: the tree under a mission, kept consistent with its progress.

use crate::activity::SystemActivity;
use crate::error::StepError;
use crate::ids::{MissionId, StepId};
use crate::mission::{Description, Mission, Title};
use crate::paging::Page;
use crate::plan_step::{
    NewPlanStep, PlanStep, PlanStepTree, StepAction, StepChanges, StepNode, StepOrder, StepQuery,
    StepStatus,
};
use crate::ports::{self, Repositories};
use crate::user::Principal;
use crate::validation::{InvalidValue, ValidationErrors};

use super::missions::{acted, refresh_progress};

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
    pub fn check_plan(self, steps: u64) -> Result<(), ValidationErrors> {
        if steps > u64::from(self.0) {
            return Err(ValidationErrors::single(
                "plan_steps",
                InvalidValue::rule("max_steps", self.message()),
            ));
        }
        Ok(())
    }

    /// Refuses adding `adding` steps to a mission holding `existing`.
    pub fn check_room(self, existing: u64, adding: u64) -> Result<(), ValidationErrors> {
        if existing.saturating_add(adding) > u64::from(self.0) {
            return Err(ValidationErrors::single_general(InvalidValue::rule(
                "max_steps",
                self.message(),
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

/// The command to add a step to a mission's plan.
///
/// ```
/// use autodocs_domain::StepId;
/// use autodocs_domain::mission::Title;
/// use autodocs_domain::plan_step::StepOrder;
/// use autodocs_domain::usecases::steps::CreateStep;
///
/// let first = StepOrder::new(0)?;
/// let step = CreateStep::new(Title::parse("Download the W-2")?).under(StepId(7)).at(first);
/// assert_eq!((step.parent, step.order), (Some(StepId(7)), Some(first)));
/// # Ok::<(), autodocs_domain::validation::InvalidValue>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CreateStep {
    /// Title.
    pub title: Title,
    /// Description.
    pub description: Description,
    /// The parent step (of the same mission); `None` for a root step.
    pub parent: Option<StepId>,
    /// Position among its siblings; `None` appends it last.
    pub order: Option<StepOrder>,
    /// What the step does when the mission runs.
    pub action: StepAction,
}

impl CreateStep {
    /// A manual root step appended last, with no description.
    pub fn new(title: Title) -> Self {
        Self {
            title,
            description: Description::default(),
            parent: None,
            order: None,
            action: StepAction::default(),
        }
    }

    /// This step with `description`.
    pub fn with_description(self, description: Description) -> Self {
        Self {
            description,
            ..self
        }
    }

    /// This step performing `action`.
    pub fn with_action(self, action: StepAction) -> Self {
        Self { action, ..self }
    }

    /// This step as a child of `parent`.
    pub fn under(self, parent: StepId) -> Self {
        Self {
            parent: Some(parent),
            ..self
        }
    }

    /// This step at position `order` among its siblings.
    pub fn at(self, order: StepOrder) -> Self {
        Self {
            order: Some(order),
            ..self
        }
    }
}

/// The command to edit a step; `None` leaves a field as it is.
///
/// ```
/// use autodocs_domain::plan_step::StepStatus;
/// use autodocs_domain::usecases::steps::UpdateStep;
///
/// let done = UpdateStep::status(StepStatus::Completed);
/// assert_eq!(done.title, None);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateStep {
    /// New title.
    pub title: Option<Title>,
    /// New description.
    pub description: Option<Description>,
    /// New parent: `Some(None)` moves the step to the top level.
    pub parent: Option<Option<StepId>>,
    /// New position among its siblings.
    pub order: Option<StepOrder>,
    /// New status, through the step's state machine.
    pub status: Option<StepStatus>,
}

impl UpdateStep {
    /// A change of status only.
    pub fn status(status: StepStatus) -> Self {
        Self {
            status: Some(status),
            ..Self::default()
        }
    }
}

/// A step's position in the tree after a change, checked against the tree rules.
fn placement(
    tree: &PlanStepTree<PlanStep>,
    step: Option<StepId>,
    parent: Option<StepId>,
) -> Result<u8, StepError> {
    let depth = tree
        .check_parent(step, parent)
        .map_err(|error| StepError::field("parent", error))?;
    u8::try_from(depth).map_err(|_| StepError::field("parent", "Plan steps are nested too deeply."))
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
    /// # use autodocs_domain::mission::{MissionType, Title};
    /// # let created = services.missions().create(anna, autodocs_domain::usecases::missions::CreateMission::new(
    /// #     Title::parse("Retrieve Tax Documents")?,
    /// #     MissionType::DocumentRetrieval,
    /// # ))?;
    /// # let mission = created.mission.id;
    /// use autodocs_domain::plan_step::StepAction;
    /// use autodocs_domain::usecases::steps::CreateStep;
    /// use serde_json::json;
    ///
    /// let fetch = StepAction::parse(&json!({"kind": "fetch_url", "url": "https://payroll.example.com/w2.pdf"}))?;
    /// let download = CreateStep::new(Title::parse("Download the W-2")?).with_action(fetch);
    /// let step = services.steps().create(anna, mission, download)?;
    /// let tree = services.steps().list(anna, mission)?;
    /// assert_eq!(tree.roots()[0].id, step.id);
    /// // A URL that is not http(s) cannot even be made into an action.
    /// assert!(StepAction::parse(&json!({"kind": "fetch_url", "url": "file:///etc/passwd"})).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    StepService
);

impl StepService {
    /// The step tree of a mission.
    pub fn list(
        &self,
        principal: Principal,
        mission: MissionId,
    ) -> Result<PlanStepTree<PlanStep>, StepError> {
        ports::read(&*self.context.uow, |repos| {
            visible_mission(repos, principal, mission)?;
            Ok(PlanStepTree::of_steps(repos.steps().list(mission)?))
        })
    }

    /// The mission a step belongs to, if the principal may see it (for
    /// callers that know a step only by its id).
    pub fn mission_of(&self, principal: Principal, step: StepId) -> Result<MissionId, StepError> {
        ports::read(&*self.context.uow, |repos| {
            let mission = repos.steps().mission_of(step)?.ok_or(StepError::NotFound)?;
            visible_mission(repos, principal, mission)?;
            Ok(mission)
        })
    }

    /// One page of steps across the missions the principal may see (their
    /// own; staff: every one), newest mission first; within a mission, by
    /// depth, then order.
    pub fn search(
        &self,
        principal: Principal,
        mut query: StepQuery,
    ) -> Result<Page<PlanStep>, StepError> {
        query.owner = principal.visible_owner();
        let found = ports::read(&*self.context.uow, |repos| repos.steps().search(&query))?;
        Ok(found.found()?)
    }

    /// One step with its subtree.
    pub fn get(
        &self,
        principal: Principal,
        mission: MissionId,
        step: StepId,
    ) -> Result<StepNode<PlanStep>, StepError> {
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
        command: CreateStep,
    ) -> Result<StepNode<PlanStep>, StepError> {
        let CreateStep {
            title,
            description,
            parent,
            order,
            action,
        } = command;
        let now = self.context.clock.now();
        self.context.write(|repos| {
            let mission = locked_mission(repos, principal, mission_id)?;
            // Counted under the mission's lock: two racing creates cannot
            // both take the last place.
            self.context.max_steps.check_room(mission.steps_total, 1)?;
            let tree = PlanStepTree::of_steps(repos.steps().list(mission_id)?);
            let depth = placement(&tree, None, parent)?;
            let order = match order {
                Some(order) => order.get(),
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
            let activity = acted(SystemActivity::StepCreated, principal.user_id, &mission)
                .with_detail("step_id", step.id);
            repos.activities().record(&activity, now)?;
            refresh_progress::<StepError>(repos, mission_id, now)?;
            subtree(repos, mission_id, step.id)
        })
    }

    /// Edits a step; a status change moves the mission's progress in the same transaction.
    pub fn update(
        &self,
        principal: Principal,
        mission_id: MissionId,
        step_id: StepId,
        command: UpdateStep,
    ) -> Result<StepNode<PlanStep>, StepError> {
        let mut changes = StepChanges {
            title: command.title,
            description: command.description,
            order: command.order.map(StepOrder::get),
            ..StepChanges::default()
        };
        let now = self.context.clock.now();
        self.context.write(|repos| {
            let mission = locked_mission(repos, principal, mission_id)?;
            let tree = PlanStepTree::of_steps(repos.steps().list(mission_id)?);
            let node = tree.find(step_id).ok_or(StepError::NotFound)?;
            let step = &node.item;
            let mut moved = None;
            if let Some(parent) = command.parent
                && parent != step.parent
            {
                let depth = placement(&tree, Some(step_id), parent)?;
                changes.parent = Some((parent, depth));
                moved = Some(i32::from(depth) - i32::from(step.depth));
            }
            if let Some(target) = command.status {
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
            let activity = acted(SystemActivity::StepUpdated, principal.user_id, &mission)
                .with_detail("step_id", step_id)
                .with_detail("fields", changes.changed_fields());
            let activity = match changes.status {
                Some(status) => activity.with_detail("status", status.as_str()),
                None => activity,
            };
            repos.activities().record(&activity, now)?;
            refresh_progress::<StepError>(repos, mission_id, now)?;
            subtree(repos, mission_id, step_id)
        })
    }

    /// Deletes a step and its subtree.
    pub fn delete(
        &self,
        principal: Principal,
        mission_id: MissionId,
        step_id: StepId,
    ) -> Result<(), StepError> {
        let now = self.context.clock.now();
        self.context.write(|repos| {
            let mission = locked_mission(repos, principal, mission_id)?;
            repos
                .steps()
                .find(mission_id, step_id)?
                .ok_or(StepError::NotFound)?;
            let removed = repos.steps().delete(step_id)?;
            let activity = acted(SystemActivity::StepDeleted, principal.user_id, &mission)
                .with_detail("step_id", step_id)
                .with_detail("removed", removed);
            repos.activities().record(&activity, now)?;
            refresh_progress::<StepError>(repos, mission_id, now)
        })
    }
}

/// The mission, if the principal may see it.
fn visible_mission(
    repos: &mut dyn Repositories,
    principal: Principal,
    id: MissionId,
) -> Result<Mission, StepError> {
    repos
        .missions()
        .find(id, principal.visible_owner())?
        .ok_or(StepError::NotFound)
}

/// The mission, if the principal may see it, locked until the commit: a
/// transaction that writes steps takes the mission's lock before any
/// step's (see [`crate::ports::MissionRepository::lock`]).
fn locked_mission(
    repos: &mut dyn Repositories,
    principal: Principal,
    id: MissionId,
) -> Result<Mission, StepError> {
    repos
        .missions()
        .lock(id, principal.visible_owner())?
        .ok_or(StepError::NotFound)
}

/// A step with its children, freshly read.
fn subtree(
    repos: &mut dyn Repositories,
    mission: MissionId,
    step: StepId,
) -> Result<StepNode<PlanStep>, StepError> {
    let tree = PlanStepTree::of_steps(repos.steps().list(mission)?);
    tree.find(step).cloned().ok_or(StepError::NotFound)
}

/// Moves the stored depth of every descendant of `node` by `shift`.
fn shift_descendants(
    repos: &mut dyn Repositories,
    node: &StepNode<PlanStep>,
    shift: i32,
) -> Result<(), StepError> {
    for child in &node.children {
        let depth = u8::try_from(i32::from(child.item.depth) + shift)
            .map_err(|_| StepError::field("parent", "Plan steps are nested too deeply."))?;
        repos.steps().set_depth(child.id, depth)?;
        shift_descendants(repos, child, shift)?;
    }
    Ok(())
}
