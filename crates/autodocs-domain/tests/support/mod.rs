//! What the use-case tests on the in-memory adapter share: registering
//! users, drafting missions, uploading, and reading back the activity log,
//! the events and the job queue.

#![allow(dead_code)] // Each test binary uses its own share of these.

use autodocs_domain::activity_log::{Activity, ActivityQuery};
use autodocs_domain::error::Error;
use autodocs_domain::events::EventPayload;
use autodocs_domain::mission::{MissionAction, MissionType, Title};
use autodocs_domain::plan_step::{PlanStep, StepAction};
use autodocs_domain::usecases::auth::{RegisterInput, Registration};
use autodocs_domain::usecases::documents::{UploadDocument, UploadedPart};
use autodocs_domain::usecases::missions::{CreateMission, MissionDetail, PlannedStep};
use autodocs_domain::user::Principal;
use autodocs_domain::{DocumentId, MissionId, StepId};
use autodocs_memory::MemoryServices;
use serde_json::Value;

pub const PASSWORD: &str = "violet-Harbor-1987";

/// Registers `username` (email `username@example.com`, [`PASSWORD`]) and
/// returns them as a non-staff principal.
pub fn register(memory: &MemoryServices, username: &str) -> Principal {
    let input = RegisterInput {
        username: username.into(),
        email: format!("{username}@example.com"),
        password: PASSWORD.into(),
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
    };
    let registration = Registration::parse(&input).expect("a valid registration");
    let session = memory
        .services
        .accounts()
        .register(registration)
        .expect("registered");
    Principal {
        user_id: session.user.id,
        is_staff: false,
    }
}

/// Creates the superuser `username` and returns them as a staff principal.
pub fn staff(memory: &MemoryServices, username: &str) -> Principal {
    let user = memory
        .services
        .accounts()
        .create_superuser(username, &format!("{username}@example.com"), PASSWORD)
        .expect("a superuser");
    assert!(user.is_staff);
    Principal {
        user_id: user.id,
        is_staff: true,
    }
}

pub fn title(text: &str) -> Title {
    Title::parse(text).expect("a valid title")
}

pub fn action(raw: Value) -> StepAction {
    StepAction::parse(&raw).expect("a valid action")
}

/// A manual planned step titled `text`.
pub fn planned(text: &str) -> PlannedStep {
    PlannedStep::new(title(text))
}

/// Creates a mission titled `name` with `plan` for `owner`.
pub fn mission_with(
    memory: &MemoryServices,
    owner: Principal,
    name: &str,
    plan: Vec<PlannedStep>,
) -> MissionDetail {
    let draft = CreateMission::new(title(name), MissionType::DocumentRetrieval).with_plan(plan);
    memory
        .services
        .missions()
        .create(owner, draft)
        .expect("created")
}

/// Creates a mission without steps for `owner`.
pub fn mission(memory: &MemoryServices, owner: Principal) -> MissionId {
    mission_with(memory, owner, "Retrieve Tax Documents", Vec::new())
        .mission
        .id
}

pub fn act(memory: &MemoryServices, owner: Principal, id: MissionId, action: MissionAction) {
    memory
        .services
        .missions()
        .act(owner, id, action)
        .expect("the action is allowed");
}

/// The mission's steps, depth first, as stored.
pub fn steps(memory: &MemoryServices, owner: Principal, id: MissionId) -> Vec<PlanStep> {
    let detail = memory.services.missions().get(owner, id).expect("visible");
    detail
        .plan
        .depth_first()
        .map(|(node, _)| node.item.clone())
        .collect()
}

/// The id of the step titled `text` in the mission.
pub fn step_id(memory: &MemoryServices, owner: Principal, id: MissionId, text: &str) -> StepId {
    steps(memory, owner, id)
        .into_iter()
        .find(|step| step.title.as_str() == text)
        .unwrap_or_else(|| panic!("no step titled {text}"))
        .id
}

/// Uploads `bytes` as `name` for `owner`, in `mission` if given.
pub fn upload(
    memory: &MemoryServices,
    owner: Principal,
    bytes: &[u8],
    name: &str,
    mission: Option<MissionId>,
) -> DocumentId {
    let mut sink = memory.services.documents().begin_upload().expect("a sink");
    sink.write(bytes).expect("written");
    let staged = sink.finish().expect("received");
    let part = UploadedPart {
        filename: name.into(),
        declared_type: None,
        staged,
    };
    let mut command = UploadDocument::new(part);
    if let Some(mission) = mission {
        command = command.in_mission(mission);
    }
    memory
        .services
        .documents()
        .upload(owner, command)
        .expect("uploaded")
        .id
}

/// Every activity visible to `whom` matching `query`, oldest first.
pub fn activities_where(
    memory: &MemoryServices,
    whom: Principal,
    query: ActivityQuery,
) -> Vec<Activity> {
    let mut items = memory
        .services
        .activities()
        .list(whom, query)
        .expect("listed")
        .items;
    items.reverse();
    items
}

/// The activities of `mission`, oldest first.
pub fn mission_activities(
    memory: &MemoryServices,
    owner: Principal,
    mission: MissionId,
) -> Vec<Activity> {
    activities_where(
        memory,
        owner,
        ActivityQuery {
            mission: Some(mission),
            ..ActivityQuery::default()
        },
    )
}

/// The types of `owner`'s activities, oldest first.
pub fn kinds(memory: &MemoryServices, owner: Principal) -> Vec<String> {
    activities_where(memory, owner, ActivityQuery::default())
        .into_iter()
        .map(|activity| activity.kind)
        .collect()
}

pub fn kinds_of(activities: &[Activity]) -> Vec<&str> {
    activities.iter().map(|a| a.kind.as_str()).collect()
}

/// The activity types carried by the events published so far, in order.
pub fn published_activity_kinds(memory: &MemoryServices) -> Vec<String> {
    memory
        .events
        .events()
        .into_iter()
        .filter_map(|event| match event.payload {
            EventPayload::ActivityCreated(activity) => Some(activity.kind),
            _ => None,
        })
        .collect()
}

/// The request-wide refusals of a validation error; panics on any other error.
pub fn general_errors<E: Clone + Into<Error>>(error: &E) -> Vec<String> {
    match error.clone().into() {
        Error::Validation(errors) => errors.general().iter().map(ToString::to_string).collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

/// The refusals of `field` in a validation error; panics on any other error.
pub fn field_errors<E: Clone + Into<Error>>(error: &E, field: &str) -> Vec<String> {
    match error.clone().into() {
        Error::Validation(errors) => errors
            .field(field)
            .map(|refusals| refusals.iter().map(ToString::to_string).collect())
            .unwrap_or_default(),
        other => panic!("expected a validation error on `{field}`, got {other:?}"),
    }
}
