//! Builders the tests share.

use autodocs_domain::MissionId;
use autodocs_domain::activity_log::{Activity, NewActivity};
use autodocs_domain::document::{
    AllowedContentType, Document, DocumentName, DocumentType, NewDocument, OriginalFilename,
    StorageKey,
};
use autodocs_domain::mission::{Description, Mission, MissionType, NewMission, Priority, Title};
use autodocs_domain::plan_step::{NewPlanStep, PlanStep, StepAction};
use autodocs_domain::ports::{Repositories, UnitOfWork, read, transaction};
use autodocs_domain::user::{Email, NewUser, PersonName, User, UserId, Username};
use autodocs_domain::{Error, RepoError};
use chrono::{DateTime, Duration, TimeZone, Utc};

/// The suite's "now": 2026-12-01 09:00:00 UTC (whole seconds, which every
/// backend stores exactly).
pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0)
        .single()
        .expect("a valid instant")
}

/// `seconds` after [`t0`].
pub(crate) fn at(seconds: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(seconds)
}

/// Runs `work` in a transaction that must commit.
pub(crate) fn tx<T>(
    uow: &dyn UnitOfWork,
    work: impl FnOnce(&mut dyn Repositories) -> Result<T, Error>,
) -> T {
    transaction(uow, work).expect("the transaction commits")
}

/// Runs read-only `work`, which must succeed.
pub(crate) fn get<T>(
    uow: &dyn UnitOfWork,
    work: impl FnOnce(&mut dyn Repositories) -> Result<T, Error>,
) -> T {
    read(uow, work).expect("the read succeeds")
}

/// The repository error of a transaction that must fail with one.
pub(crate) fn repo_error<T: std::fmt::Debug>(
    uow: &dyn UnitOfWork,
    work: impl FnOnce(&mut dyn Repositories) -> Result<T, Error>,
) -> RepoError {
    match transaction(uow, work) {
        Err(Error::Repository(error)) => error,
        other => panic!("expected a repository error, got {other:?}"),
    }
}

pub(crate) fn new_user(username: &str, email: &str) -> NewUser {
    NewUser {
        username: Username::parse(username).expect("a valid username"),
        email: Email::parse(email).expect("a valid email"),
        first_name: PersonName::parse("Ada").expect("a valid name"),
        last_name: PersonName::parse("Lovelace").expect("a valid name"),
        password_hash: format!("hash-of-{username}"),
        is_staff: false,
        is_superuser: false,
    }
}

/// A user `username` with email `username@example.com`, joined at `t0`.
pub(crate) fn user(uow: &dyn UnitOfWork, username: &str) -> User {
    let new = new_user(username, &format!("{username}@example.com"));
    tx(uow, |repos| Ok(repos.users().create(&new, t0())?))
}

pub(crate) fn new_mission(title: &str) -> NewMission {
    NewMission {
        title: Title::parse(title).expect("a valid title"),
        description: Description::default(),
        kind: MissionType::DocumentRetrieval,
        priority: Priority::Medium,
        deadline: None,
    }
}

/// A pending mission of `owner` created at `created`.
pub(crate) fn mission_at(
    uow: &dyn UnitOfWork,
    owner: UserId,
    new: NewMission,
    created: DateTime<Utc>,
) -> Mission {
    tx(uow, |repos| {
        Ok(repos.missions().create(owner, &new, created)?)
    })
}

/// A pending mission `title` of `owner` created at `t0`.
pub(crate) fn mission(uow: &dyn UnitOfWork, owner: UserId, title: &str) -> Mission {
    mission_at(uow, owner, new_mission(title), t0())
}

/// A manual step of `mission` under `parent`.
pub(crate) fn step(
    uow: &dyn UnitOfWork,
    mission: MissionId,
    parent: Option<&PlanStep>,
    order: i32,
) -> PlanStep {
    let new = NewPlanStep {
        mission,
        parent: parent.map(|parent| parent.id),
        title: Title::parse(&format!("Step {order}")).expect("a valid title"),
        description: Description::default(),
        order,
        depth: parent.map_or(1, |parent| parent.depth + 1),
        action: StepAction::Manual,
    };
    tx(uow, |repos| Ok(repos.steps().create(&new, t0())?))
}

pub(crate) fn new_document(
    owner: UserId,
    mission: Option<MissionId>,
    name: &str,
    key: &str,
) -> NewDocument {
    NewDocument {
        name: DocumentName::parse(name).expect("a valid name"),
        kind: DocumentType::Other,
        mission,
        owner,
        original_filename: OriginalFilename::sanitize(&format!("{name}.pdf")),
        content_type: AllowedContentType::Pdf,
        size: 1024,
        sha256: "0".repeat(64),
        storage_key: StorageKey::parse(key).expect("a valid key"),
    }
}

/// A document of `owner` uploaded at `uploaded`.
pub(crate) fn document_at(
    uow: &dyn UnitOfWork,
    new: NewDocument,
    uploaded: DateTime<Utc>,
) -> Document {
    tx(uow, |repos| Ok(repos.documents().create(&new, uploaded)?))
}

pub(crate) fn note(user: Option<UserId>, kind: &str, message: &str) -> NewActivity {
    NewActivity {
        kind: kind.to_owned(),
        message: message.to_owned(),
        details: serde_json::Map::new(),
        user,
        mission: None,
        document: None,
    }
}

/// Records an activity at `when`.
pub(crate) fn activity_at(uow: &dyn UnitOfWork, new: NewActivity, when: DateTime<Utc>) -> Activity {
    tx(uow, |repos| Ok(repos.activities().record(&new, when)?))
}

/// The ids of `items`.
pub(crate) fn ids<T, I>(items: &[T], id: impl Fn(&T) -> I) -> Vec<I> {
    items.iter().map(id).collect()
}
