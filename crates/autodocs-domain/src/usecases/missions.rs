//! Missions: create with a nested plan, edit, delete, and the lifecycle actions.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::activity::SystemActivity;
use crate::activity_log::NewActivity;
use crate::error::{MissionError, MissionRefusal, RepoError};
use crate::ids::{MissionId, StepId};
use crate::mission::{
    Description, InvalidTransition, Mission, MissionAction, MissionChanges, MissionQuery,
    MissionStatus, MissionTransition, MissionType, NewMission, Priority, Progress, Title,
};
use crate::paging::Page;
use crate::plan_step::{
    NewPlanStep, PlanStep, PlanStepTree, StepAction, StepChanges, StepStatus, check_depth,
};
use crate::ports::{self, Repositories};
use crate::user::{Principal, UserId};
use crate::validation::ValidationErrors;

/// One step of a plan given at creation, with its children.
///
/// ```
/// use autodocs_domain::mission::Title;
/// use autodocs_domain::usecases::missions::PlannedStep;
///
/// let plan = PlannedStep::new(Title::parse("Gather the forms")?)
///     .with_children(vec![PlannedStep::new(Title::parse("W-2")?)]);
/// assert_eq!(plan.count(), 2);
/// # Ok::<(), autodocs_domain::validation::InvalidValue>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedStep {
    /// Title.
    pub title: Title,
    /// Description.
    pub description: Description,
    /// Action.
    pub action: StepAction,
    /// Children, in order.
    pub children: Vec<PlannedStep>,
}

impl PlannedStep {
    /// A manual step with no description and no children.
    pub fn new(title: Title) -> Self {
        Self {
            title,
            description: Description::default(),
            action: StepAction::default(),
            children: Vec::new(),
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

    /// This step with `children`, in order.
    pub fn with_children(self, children: Vec<PlannedStep>) -> Self {
        Self { children, ..self }
    }

    /// This step and every step under it.
    pub fn count(&self) -> u64 {
        1 + self.children.iter().map(PlannedStep::count).sum::<u64>()
    }

    /// How many levels deep this step's subtree goes (1 for a leaf).
    pub fn depth(&self) -> usize {
        1 + self
            .children
            .iter()
            .map(PlannedStep::depth)
            .max()
            .unwrap_or(0)
    }
}

/// The command to create a mission (`pending`) with its nested plan.
///
/// ```
/// use autodocs_domain::mission::{MissionType, Priority, Title};
/// use autodocs_domain::usecases::missions::{CreateMission, PlannedStep};
///
/// let command = CreateMission::new(Title::parse("Retrieve Tax Documents")?, MissionType::DocumentRetrieval)
///     .with_priority(Priority::High)
///     .with_plan(vec![PlannedStep::new(Title::parse("Download the W-2")?)]);
/// assert_eq!(command.mission.priority, Priority::High);
/// # Ok::<(), autodocs_domain::validation::InvalidValue>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CreateMission {
    /// The mission.
    pub mission: NewMission,
    /// Its plan: the root steps, in order.
    pub plan: Vec<PlannedStep>,
}

impl CreateMission {
    /// A mission of `kind` titled `title`, with the default priority, no
    /// description, no deadline and no plan.
    pub fn new(title: Title, kind: MissionType) -> Self {
        Self {
            mission: NewMission {
                title,
                description: Description::default(),
                kind,
                priority: Priority::default(),
                deadline: None,
            },
            plan: Vec::new(),
        }
    }

    /// This mission with `description`.
    pub fn with_description(mut self, description: Description) -> Self {
        self.mission.description = description;
        self
    }

    /// This mission with `priority`.
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.mission.priority = priority;
        self
    }

    /// This mission due at `deadline`.
    pub fn with_deadline(mut self, deadline: DateTime<Utc>) -> Self {
        self.mission.deadline = Some(deadline);
        self
    }

    /// This mission with `plan` (root steps, in order).
    pub fn with_plan(self, plan: Vec<PlannedStep>) -> Self {
        Self { plan, ..self }
    }
}

/// A mission with its step tree, for the detail view.
#[derive(Debug, Clone)]
pub struct MissionDetail {
    /// The mission.
    pub mission: Mission,
    /// Its steps as a tree, by `order`.
    pub plan: PlanStepTree<PlanStep>,
    /// Its documents, newest first.
    pub documents: Vec<crate::document::Document>,
}

super::service!(
    /// Missions: create, list, read, edit, delete, and their state machine.
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
    /// use autodocs_domain::mission::{MissionAction, MissionQuery, MissionStatus, MissionType, Priority, Title};
    /// use autodocs_domain::usecases::missions::CreateMission;
    ///
    /// let draft = CreateMission::new(Title::parse("Retrieve Tax Documents")?, MissionType::DocumentRetrieval)
    ///     .with_priority(Priority::High);
    /// let created = services.missions().create(anna, draft)?;
    /// let started = services.missions().act(anna, created.mission.id, MissionAction::Start)?;
    /// assert_eq!(started.mission.status, MissionStatus::InProgress);
    /// // Starting twice is refused by the state machine.
    /// assert!(services.missions().act(anna, created.mission.id, MissionAction::Start).is_err());
    /// let page = services.missions().list(anna, MissionQuery::default())?;
    /// assert_eq!(page.count, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    MissionService
);

impl MissionService {
    /// Creates a mission and its nested plan, recording `mission_created`.
    pub fn create(
        &self,
        principal: Principal,
        command: CreateMission,
    ) -> Result<MissionDetail, MissionError> {
        let height = command.plan.iter().map(PlannedStep::depth).max();
        if let Some(height) = height {
            check_depth(1, height)
                .map_err(|error| ValidationErrors::single("plan_steps", error))?;
        }
        self.context
            .max_steps
            .check_plan(command.plan.iter().map(PlannedStep::count).sum())?;
        let now = self.context.clock.now();
        self.context.write(|repos| {
            let mut mission = repos
                .missions()
                .create(principal.user_id, &command.mission, now)?;
            let mut steps = Vec::new();
            create_plan(repos, mission.id, None, 1, &command.plan, now, &mut steps)?;
            let activity = NewActivity::system(SystemActivity::MissionCreated, principal.user_id)
                .with_mission(mission.id);
            repos.activities().record(&activity, now)?;
            // Everything the detail shows was just written here: no need to
            // read it back inside the write lock. A new mission has no
            // documents and no step done yet.
            mission.steps_total = steps.len() as u64;
            Ok(MissionDetail {
                mission,
                plan: PlanStepTree::of_steps(steps),
                documents: Vec::new(),
            })
        })
    }

    /// A page of the missions the principal can see.
    pub fn list(
        &self,
        principal: Principal,
        mut query: MissionQuery,
    ) -> Result<Page<Mission>, MissionError> {
        if !principal.is_staff {
            query.owner = Some(principal.user_id);
        }
        let found = ports::read(&*self.context.uow, |repos| repos.missions().list(&query))?;
        Ok(found.found()?)
    }

    /// One mission with its plan.
    pub fn get(&self, principal: Principal, id: MissionId) -> Result<MissionDetail, MissionError> {
        ports::read(&*self.context.uow, |repos| {
            load_detail(repos, id, principal.visible_owner())
        })
    }

    /// Edits a mission, recording `mission_updated` with the changed fields.
    pub fn update(
        &self,
        principal: Principal,
        id: MissionId,
        changes: MissionChanges,
    ) -> Result<MissionDetail, MissionError> {
        let now = self.context.clock.now();
        self.context.write(|repos| {
            let mission = repos
                .missions()
                .lock(id, principal.visible_owner())?
                .ok_or(MissionError::NotFound)?;
            if !changes.is_empty() {
                repos.missions().update(id, &changes, now)?;
                let activity = acted(SystemActivity::MissionUpdated, principal.user_id, &mission)
                    .with_detail("fields", changes.changed_fields());
                repos.activities().record(&activity, now)?;
            }
            load_detail(repos, id, None)
        })
    }

    /// Deletes a mission (not while it is in progress), recording `mission_deleted`.
    pub fn delete(&self, principal: Principal, id: MissionId) -> Result<(), MissionError> {
        let now = self.context.clock.now();
        self.context.write(|repos| {
            let mission = repos
                .missions()
                .lock(id, principal.visible_owner())?
                .ok_or(MissionError::NotFound)?;
            if !mission.status.can_delete() {
                return Err(
                    InvalidTransition::new("mission", "delete", mission.status.as_str()).into(),
                );
            }
            // The activity outlives the mission: its id and title go in the details.
            let mut activity =
                NewActivity::system(SystemActivity::MissionDeleted, principal.user_id)
                    .with_detail("mission_id", id)
                    .with_detail("title", mission.title.as_str());
            if principal.user_id != mission.owner {
                activity = activity.with_detail("owner", mission.owner.0);
            }
            repos.activities().record(&activity, now)?;
            if !repos.missions().delete(id, MissionStatus::InProgress)? {
                // It was started between the read and the delete.
                return Err(InvalidTransition::new(
                    "mission",
                    "delete",
                    MissionStatus::InProgress.as_str(),
                )
                .into());
            }
            Ok(())
        })
    }

    /// Applies a lifecycle action; of racing requests only one can win.
    pub fn act(
        &self,
        principal: Principal,
        id: MissionId,
        action: MissionAction,
    ) -> Result<MissionDetail, MissionError> {
        let now = self.context.clock.now();
        self.context.write(|repos| {
            let mission = repos
                .missions()
                .lock(id, principal.visible_owner())?
                .ok_or(MissionError::NotFound)?;
            apply_action::<MissionError>(repos, &mission, principal.user_id, action, now, None)?;
            load_detail(repos, id, None)
        })
    }
}

/// The activity of `actor`'s change to `mission`: it names who acted. A
/// staff member acting on someone else's mission is its `user`, and the
/// owner goes in `details.owner` (as for documents).
pub(crate) fn acted(kind: SystemActivity, actor: UserId, mission: &Mission) -> NewActivity {
    let activity = NewActivity::system(kind, actor).with_mission(mission.id);
    if actor == mission.owner {
        activity
    } else {
        activity.with_detail("owner", mission.owner.0)
    }
}

/// Applies `action` to `mission` with a conditional update, then its side
/// effects and the activity naming `actor`. `details` go into the activity.
pub(crate) fn apply_action<E: MissionRefusal>(
    repos: &mut dyn Repositories,
    mission: &Mission,
    actor: UserId,
    action: MissionAction,
    now: DateTime<Utc>,
    details: Option<serde_json::Map<String, Value>>,
) -> Result<(), E> {
    let to = mission.status.apply(action)?;
    let change = MissionTransition::for_action(action, to, now);
    if !repos.missions().transition(
        mission.id,
        MissionStatus::allowed_from(action),
        &change,
        now,
    )? {
        // Another request changed the status since we read it: report the status it left.
        let current = repos
            .missions()
            .find(mission.id, None)?
            .ok_or_else(E::mission_not_found)?;
        return Err(
            InvalidTransition::new("mission", action.as_str(), current.status.as_str()).into(),
        );
    }
    match action {
        MissionAction::Complete => {
            repos.steps().skip_open(mission.id, now)?;
        }
        MissionAction::Start | MissionAction::Resume => {
            if mission.status == MissionStatus::Failed {
                // Retry from the failed step.
                for step in repos.steps().list(mission.id)? {
                    if step.status == StepStatus::Failed {
                        let changes = StepChanges {
                            last_error: Some(None),
                            ..StepChanges::status(step.status, StepStatus::Pending, now)
                        };
                        repos.steps().update(step.id, &changes, now)?;
                    }
                }
            }
            super::engine::wake_if_runnable(repos, mission.id, now)?;
        }
        MissionAction::Pause | MissionAction::Cancel | MissionAction::Fail => {}
    }
    let mut activity = acted(SystemActivity::from(action), actor, mission);
    if let Some(details) = details {
        activity.details.extend(details);
    }
    repos.activities().record(&activity, now)?;
    Ok(())
}

fn create_plan(
    repos: &mut dyn Repositories,
    mission: MissionId,
    parent: Option<StepId>,
    depth: u8,
    plan: &[PlannedStep],
    now: DateTime<Utc>,
    created_steps: &mut Vec<PlanStep>,
) -> Result<(), RepoError> {
    for (order, planned) in plan.iter().enumerate() {
        let step = NewPlanStep {
            mission,
            parent,
            title: planned.title.clone(),
            description: planned.description.clone(),
            order: i32::try_from(order).unwrap_or(i32::MAX),
            depth,
            action: planned.action.clone(),
        };
        let created = repos.steps().create(&step, now)?;
        let id = created.id;
        created_steps.push(created);
        create_plan(
            repos,
            mission,
            Some(id),
            depth + 1,
            &planned.children,
            now,
            created_steps,
        )?;
    }
    Ok(())
}

/// A mission with its plan, if `owner` (when given) owns it.
pub(crate) fn load_detail(
    repos: &mut dyn Repositories,
    id: MissionId,
    owner: Option<crate::user::UserId>,
) -> Result<MissionDetail, MissionError> {
    let mission = repos
        .missions()
        .find(id, owner)?
        .ok_or(MissionError::NotFound)?;
    let steps = repos.steps().list(id)?;
    let documents = repos.documents().list_for_mission(id)?;
    Ok(MissionDetail {
        mission,
        plan: PlanStepTree::of_steps(steps),
        documents,
    })
}

/// Recomputes a mission's progress from its leaf steps, in the caller's
/// transaction; an `in_progress` mission whose last open leaf is done
/// completes by itself. The plan changed (a user's edit): if that gives a
/// running mission automated work, its run is queued.
pub(crate) fn refresh_progress<E: MissionRefusal>(
    repos: &mut dyn Repositories,
    mission_id: MissionId,
    now: DateTime<Utc>,
) -> Result<(), E> {
    if recompute_progress::<E>(repos, mission_id, now)? == MissionStatus::InProgress {
        super::engine::wake_if_runnable(repos, mission_id, now)?;
    }
    Ok(())
}

/// [`refresh_progress`] without queuing anything: the engine itself decides
/// whether it runs again. Returns the mission's status afterwards.
pub(crate) fn recompute_progress<E: MissionRefusal>(
    repos: &mut dyn Repositories,
    mission_id: MissionId,
    now: DateTime<Utc>,
) -> Result<MissionStatus, E> {
    let mission = repos
        .missions()
        .find(mission_id, None)?
        .ok_or_else(E::mission_not_found)?;
    if mission.status == MissionStatus::Completed {
        return Ok(mission.status);
    }
    let plan = PlanStepTree::of_steps(repos.steps().list(mission_id)?);
    if mission.status == MissionStatus::InProgress && plan.all_leaves_done() {
        apply_action::<E>(
            repos,
            &mission,
            mission.owner,
            MissionAction::Complete,
            now,
            None,
        )?;
        return Ok(MissionStatus::Completed);
    }
    let progress: Progress = plan.progress();
    if progress != mission.progress {
        repos.missions().set_progress(mission_id, progress, now)?;
    }
    Ok(mission.status)
}
