//! Missions: create with a nested plan, edit, delete, and the lifecycle actions.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::activity::SystemActivity;
use crate::activity_log::NewActivity;
use crate::error::{Error, Result};
use crate::ids::{MissionId, StepId};
use crate::mission::{
    Description, InvalidTransition, Mission, MissionAction, MissionChanges, MissionQuery,
    MissionStatus, MissionTransition, MissionType, NewMission, Priority, Progress, Title,
};
use crate::paging::Page;
use crate::plan_step::{
    MAX_DEPTH, NewPlanStep, PlanStep, PlanStepTree, StepAction, StepChanges, StepStatus,
};
use crate::ports::{self, Repositories};
use crate::user::Principal;
use crate::validation::{InvalidValue, ValidationErrors, json_type_name, parse_timestamp};

/// The raw fields of a mission create or update; `None` means absent.
#[derive(Debug, Clone, Default)]
pub struct MissionInput {
    /// Title.
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Type.
    pub kind: Option<String>,
    /// Priority.
    pub priority: Option<String>,
    /// Deadline: `Some(None)` is an explicit null.
    pub deadline: Option<Option<String>>,
    /// The nested plan, on create only.
    pub plan_steps: Option<Value>,
}

/// One step of a plan given at creation, with its children.
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
    /// This step and every step under it.
    pub fn count(&self) -> u64 {
        1 + self.children.iter().map(PlannedStep::count).sum::<u64>()
    }
}

/// A parsed mission creation.
#[derive(Debug, Clone, PartialEq)]
pub struct MissionDraft {
    /// The mission.
    pub mission: NewMission,
    /// Its plan.
    pub plan: Vec<PlannedStep>,
}

fn parse_deadline(raw: &Option<String>) -> Result<Option<DateTime<Utc>>, InvalidValue> {
    raw.as_deref().map(parse_timestamp).transpose()
}

/// Parses a nested plan (`[{title, description?, action?, children?}]`);
/// errors are keyed `plan_steps` with the path of the faulty item.
pub fn parse_plan(value: &Value, errors: &mut ValidationErrors) -> Vec<PlannedStep> {
    fn walk(
        value: &Value,
        depth: usize,
        path: &str,
        errors: &mut ValidationErrors,
    ) -> Vec<PlannedStep> {
        let Value::Array(items) = value else {
            errors.add(
                "plan_steps",
                format!(
                    "{path}Expected a list of items but got type \"{}\".",
                    json_type_name(value)
                ),
            );
            return Vec::new();
        };
        if depth > MAX_DEPTH {
            errors.add(
                "plan_steps",
                format!("Plan steps can be nested at most {MAX_DEPTH} levels deep."),
            );
            return Vec::new();
        }
        let mut steps = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let here = format!("{path}[{index}] ");
            let Value::Object(fields) = item else {
                errors.add(
                    "plan_steps",
                    format!(
                        "{here}Invalid data. Expected a dictionary, but got {}.",
                        json_type_name(item)
                    ),
                );
                continue;
            };
            let title = match fields.get("title") {
                Some(Value::String(raw)) => Title::parse(raw),
                Some(Value::Null) => Err(InvalidValue::null()),
                Some(_) => Err(InvalidValue::new("Not a valid string.")),
                None => Err(InvalidValue::required()),
            };
            let description = match fields.get("description") {
                Some(Value::String(raw)) => Description::parse(raw),
                None | Some(Value::Null) => Ok(Description::default()),
                Some(_) => Err(InvalidValue::new("Not a valid string.")),
            };
            let action = match fields.get("action") {
                Some(raw) => StepAction::parse(raw),
                None => Ok(StepAction::default()),
            };
            let children = match fields.get("children") {
                None | Some(Value::Null) => Vec::new(),
                Some(children) => walk(children, depth + 1, &format!("{here}children"), errors),
            };
            match (title, description, action) {
                (Ok(title), Ok(description), Ok(action)) => {
                    steps.push(PlannedStep {
                        title,
                        description,
                        action,
                        children,
                    });
                }
                (title, description, action) => {
                    for (field, error) in [
                        ("title", title.err()),
                        ("description", description.err()),
                        ("action", action.err()),
                    ] {
                        if let Some(error) = error {
                            errors.add("plan_steps", format!("{here}{field}: {error}"));
                        }
                    }
                }
            }
        }
        steps
    }
    walk(value, 1, "", errors)
}

impl MissionInput {
    /// Parses a creation: `title` and `type` are required.
    pub fn parse_new(&self) -> Result<MissionDraft, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let title = match &self.title {
            Some(raw) => errors.check("title", Title::parse(raw)),
            None => errors.check("title", Err(InvalidValue::required())),
        };
        let kind = match &self.kind {
            Some(raw) => errors.check("type", MissionType::parse(raw)),
            None => errors.check("type", Err(InvalidValue::required())),
        };
        let description = errors.check(
            "description",
            Description::parse(self.description.as_deref().unwrap_or("")),
        );
        let priority = match &self.priority {
            Some(raw) => errors.check("priority", Priority::parse(raw)),
            None => Some(Priority::default()),
        };
        let deadline = match &self.deadline {
            Some(raw) => errors.check("deadline", parse_deadline(raw)),
            None => Some(None),
        };
        let plan = match &self.plan_steps {
            None | Some(Value::Null) => Vec::new(),
            Some(value) => parse_plan(value, &mut errors),
        };
        match (title, kind, description, priority, deadline) {
            (Some(title), Some(kind), Some(description), Some(priority), Some(deadline))
                if errors.is_empty() =>
            {
                Ok(MissionDraft {
                    mission: NewMission {
                        title,
                        description,
                        kind,
                        priority,
                        deadline,
                    },
                    plan,
                })
            }
            _ => Err(errors),
        }
    }

    /// Parses an update; with `full` (PUT) `title` and `type` are required.
    pub fn parse_changes(&self, full: bool) -> Result<MissionChanges, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if full {
            for (field, value) in [("title", &self.title), ("type", &self.kind)] {
                if value.is_none() {
                    errors.add(field, InvalidValue::required());
                }
            }
        }
        let changes = MissionChanges {
            title: self
                .title
                .as_deref()
                .and_then(|raw| errors.check("title", Title::parse(raw))),
            description: self
                .description
                .as_deref()
                .and_then(|raw| errors.check("description", Description::parse(raw))),
            kind: self
                .kind
                .as_deref()
                .and_then(|raw| errors.check("type", MissionType::parse(raw))),
            priority: self
                .priority
                .as_deref()
                .and_then(|raw| errors.check("priority", Priority::parse(raw))),
            deadline: self
                .deadline
                .as_ref()
                .and_then(|raw| errors.check("deadline", parse_deadline(raw))),
        };
        errors.into_result().map(|()| changes)
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
    /// use autodocs_domain::mission::{MissionAction, MissionQuery, MissionStatus};
    /// use autodocs_domain::usecases::missions::MissionInput;
    ///
    /// let draft = MissionInput {
    ///     title: Some("Retrieve Tax Documents".into()),
    ///     kind: Some("document_retrieval".into()),
    ///     priority: Some("high".into()),
    ///     ..MissionInput::default()
    /// }
    /// .parse_new()?;
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
    pub fn create(&self, principal: Principal, draft: MissionDraft) -> Result<MissionDetail> {
        self.context
            .max_steps
            .check_plan(draft.plan.iter().map(PlannedStep::count).sum())?;
        let now = self.context.clock.now();
        self.context.write(|repos| {
            let mut mission = repos
                .missions()
                .create(principal.user_id, &draft.mission, now)?;
            let mut steps = Vec::new();
            create_plan(repos, mission.id, None, 1, &draft.plan, now, &mut steps)?;
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
    pub fn list(&self, principal: Principal, mut query: MissionQuery) -> Result<Page<Mission>> {
        if !principal.is_staff {
            query.owner = Some(principal.user_id);
        }
        ports::read(&*self.context.uow, |repos| {
            Ok(repos.missions().list(&query)?.found()?)
        })
    }

    /// One mission with its plan.
    pub fn get(&self, principal: Principal, id: MissionId) -> Result<MissionDetail> {
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
    ) -> Result<MissionDetail> {
        let now = self.context.clock.now();
        self.context.write(|repos| {
            let mission = repos
                .missions()
                .lock(id, principal.visible_owner())?
                .ok_or(Error::NotFound)?;
            if !changes.is_empty() {
                repos.missions().update(id, &changes, now)?;
                let activity = NewActivity::system(SystemActivity::MissionUpdated, mission.owner)
                    .with_mission(id)
                    .with_detail("fields", changes.changed_fields());
                repos.activities().record(&activity, now)?;
            }
            load_detail(repos, id, None)
        })
    }

    /// Deletes a mission (not while it is in progress), recording `mission_deleted`.
    pub fn delete(&self, principal: Principal, id: MissionId) -> Result<()> {
        let now = self.context.clock.now();
        self.context.write(|repos| {
            let mission = repos
                .missions()
                .lock(id, principal.visible_owner())?
                .ok_or(Error::NotFound)?;
            if !mission.status.can_delete() {
                return Err(
                    InvalidTransition::new("mission", "delete", mission.status.as_str()).into(),
                );
            }
            // The activity outlives the mission: its id and title go in the details.
            let activity = NewActivity::system(SystemActivity::MissionDeleted, mission.owner)
                .with_detail("mission_id", id)
                .with_detail("title", mission.title.as_str());
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
    ) -> Result<MissionDetail> {
        let now = self.context.clock.now();
        self.context.write(|repos| {
            let mission = repos
                .missions()
                .lock(id, principal.visible_owner())?
                .ok_or(Error::NotFound)?;
            apply_action(repos, &mission, action, now, None)?;
            load_detail(repos, id, None)
        })
    }
}

/// Applies `action` to `mission` with a conditional update, then its side
/// effects and activity. `details` go into the activity.
pub(crate) fn apply_action(
    repos: &mut dyn Repositories,
    mission: &Mission,
    action: MissionAction,
    now: DateTime<Utc>,
    details: Option<serde_json::Map<String, Value>>,
) -> Result<()> {
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
            .ok_or(Error::NotFound)?;
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
    let mut activity =
        NewActivity::system(SystemActivity::from(action), mission.owner).with_mission(mission.id);
    if let Some(details) = details {
        activity.details = details;
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
) -> Result<()> {
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
) -> Result<MissionDetail> {
    let mission = repos.missions().find(id, owner)?.ok_or(Error::NotFound)?;
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
pub(crate) fn refresh_progress(
    repos: &mut dyn Repositories,
    mission_id: MissionId,
    now: DateTime<Utc>,
) -> Result<()> {
    if recompute_progress(repos, mission_id, now)? == MissionStatus::InProgress {
        super::engine::wake_if_runnable(repos, mission_id, now)?;
    }
    Ok(())
}

/// [`refresh_progress`] without queuing anything: the engine itself decides
/// whether it runs again. Returns the mission's status afterwards.
pub(crate) fn recompute_progress(
    repos: &mut dyn Repositories,
    mission_id: MissionId,
    now: DateTime<Utc>,
) -> Result<MissionStatus> {
    let mission = repos
        .missions()
        .find(mission_id, None)?
        .ok_or(Error::NotFound)?;
    if mission.status == MissionStatus::Completed {
        return Ok(mission.status);
    }
    let plan = PlanStepTree::of_steps(repos.steps().list(mission_id)?);
    if mission.status == MissionStatus::InProgress && plan.all_leaves_done() {
        apply_action(repos, &mission, MissionAction::Complete, now, None)?;
        return Ok(MissionStatus::Completed);
    }
    let progress: Progress = plan.progress();
    if progress != mission.progress {
        repos.missions().set_progress(mission_id, progress, now)?;
    }
    Ok(mission.status)
}
