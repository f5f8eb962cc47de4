//! A unit of work over mockall mocks, for the use cases' interaction checks
//! (their behaviour is tested on the in-memory adapter, in `tests/`).

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};

use crate::ports::{
    ActivityRepository, MissionRepository, MockActivityRepository, MockClock,
    MockMissionRepository, MockPasswordHasher, MockPlanStepRepository, MockRefreshTokenRepository,
    MockTokenService, MockUserRepository, PlanStepRepository, RefreshTokenRepository, Repositories,
    Rollback, UnitOfWork, UserRepository,
};

use super::{Limits, Ports, Services};

/// The mocks one test sets expectations on.
pub struct MockRepos {
    pub users: MockUserRepository,
    pub refresh_tokens: MockRefreshTokenRepository,
    pub activities: MockActivityRepository,
    pub missions: MockMissionRepository,
    pub steps: MockPlanStepRepository,
    pub jobs: crate::ports::MockJobQueue,
    pub documents: crate::ports::MockDocumentRepository,
    pub instance: crate::ports::MockInstanceRepository,
    pub admin_sessions: crate::ports::MockAdminSessionRepository,
}

impl Default for MockRepos {
    /// No expectations, except that missions have no documents (every
    /// mission detail lists them).
    fn default() -> Self {
        let mut documents = crate::ports::MockDocumentRepository::new();
        documents
            .expect_list_for_mission()
            .returning(|_| Ok(Vec::new()));
        Self {
            users: MockUserRepository::default(),
            refresh_tokens: MockRefreshTokenRepository::default(),
            activities: MockActivityRepository::default(),
            missions: MockMissionRepository::default(),
            steps: MockPlanStepRepository::default(),
            jobs: crate::ports::MockJobQueue::default(),
            documents,
            instance: crate::ports::MockInstanceRepository::default(),
            admin_sessions: crate::ports::MockAdminSessionRepository::default(),
        }
    }
}

impl Repositories for MockRepos {
    fn jobs(&mut self) -> &mut dyn crate::ports::JobQueue {
        &mut self.jobs
    }
    fn missions(&mut self) -> &mut dyn MissionRepository {
        &mut self.missions
    }
    fn steps(&mut self) -> &mut dyn PlanStepRepository {
        &mut self.steps
    }
    fn users(&mut self) -> &mut dyn UserRepository {
        &mut self.users
    }
    fn refresh_tokens(&mut self) -> &mut dyn RefreshTokenRepository {
        &mut self.refresh_tokens
    }
    fn activities(&mut self) -> &mut dyn ActivityRepository {
        &mut self.activities
    }
    fn documents(&mut self) -> &mut dyn crate::ports::DocumentRepository {
        &mut self.documents
    }
    fn instance(&mut self) -> &mut dyn crate::ports::InstanceRepository {
        &mut self.instance
    }
    fn admin_sessions(&mut self) -> &mut dyn crate::ports::AdminSessionRepository {
        &mut self.admin_sessions
    }
}

/// Counts commits and rollbacks so tests can assert what a use case did.
#[derive(Default)]
pub struct MockUow {
    pub repos: Mutex<MockRepos>,
    pub commits: Mutex<u32>,
    pub rollbacks: Mutex<u32>,
}

impl UnitOfWork for MockUow {
    fn run_in_transaction(
        &self,
        work: &mut dyn FnMut(&mut dyn Repositories) -> Result<(), Rollback>,
    ) -> Result<(), Rollback> {
        let mut repos = self.repos.lock().expect("mock repos poisoned");
        let result = work(&mut *repos);
        let counter = if result.is_ok() {
            &self.commits
        } else {
            &self.rollbacks
        };
        *counter.lock().expect("counter poisoned") += 1;
        result
    }

    fn run_read(
        &self,
        work: &mut dyn FnMut(&mut dyn Repositories) -> Result<(), Rollback>,
    ) -> Result<(), Rollback> {
        let mut repos = self.repos.lock().expect("mock repos poisoned");
        work(&mut *repos)
    }
}

pub fn fixed_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0)
        .single()
        .expect("valid date")
}

/// Ports over the given mocks, with a clock frozen at [`fixed_now`].
pub fn ports(uow: Arc<MockUow>, hasher: MockPasswordHasher, tokens: MockTokenService) -> Ports {
    let mut clock = MockClock::new();
    clock.expect_now().returning(fixed_now);
    Ports {
        uow,
        hasher: Arc::new(hasher),
        tokens: Arc::new(tokens),
        clock: Arc::new(clock),
        events: Arc::new(crate::events::DiscardEvents),
        fetcher: Arc::new(crate::ports::MockUrlFetcher::new()),
        storage: Arc::new(crate::ports::MockFileStorage::new()),
    }
}

/// Services over the given mocks, with a clock frozen at [`fixed_now`].
pub fn services(
    uow: Arc<MockUow>,
    hasher: MockPasswordHasher,
    tokens: MockTokenService,
) -> Services {
    Services::new(ports(uow, hasher, tokens), Limits::default())
}

/// An active, non-staff user with id `id`, joined at [`fixed_now`].
pub fn sample_user(id: i64) -> crate::user::User {
    crate::user::User {
        id: crate::user::UserId(id),
        username: format!("user{id}"),
        email: format!("user{id}@example.com"),
        first_name: "Ada".to_owned(),
        last_name: "Lovelace".to_owned(),
        is_staff: false,
        is_superuser: false,
        is_active: true,
        date_joined: fixed_now(),
        last_login: None,
        profile: crate::user::UserProfile::default(),
    }
}

/// A mission `id` of `owner` in `status`, progress 0, without steps.
pub fn sample_mission(
    id: crate::ids::MissionId,
    owner: crate::user::UserId,
    status: crate::mission::MissionStatus,
) -> crate::mission::Mission {
    crate::mission::Mission {
        id,
        title: crate::mission::Title::parse("Retrieve Tax Documents").expect("valid title"),
        description: crate::mission::Description::default(),
        kind: crate::mission::MissionType::DocumentRetrieval,
        status,
        priority: crate::mission::Priority::default(),
        progress: crate::mission::Progress::ZERO,
        owner,
        deadline: None,
        started_at: None,
        completed_at: None,
        created_at: fixed_now(),
        updated_at: fixed_now(),
        steps_total: 0,
        steps_completed: 0,
        document_count: 0,
    }
}

/// A manual step `id` of `mission` under `parent` (step ids given as plain numbers for brevity) (depth 1 at the top
/// level, 2 otherwise: override `depth` for deeper steps).
pub fn sample_step(
    id: i64,
    mission: crate::ids::MissionId,
    parent: Option<i64>,
    order: i32,
    status: crate::plan_step::StepStatus,
) -> crate::plan_step::PlanStep {
    crate::plan_step::PlanStep {
        id: crate::ids::StepId(id),
        mission,
        parent: parent.map(crate::ids::StepId),
        title: crate::mission::Title::parse(&format!("Step {id}")).expect("valid title"),
        description: crate::mission::Description::default(),
        order,
        depth: if parent.is_some() { 2 } else { 1 },
        status,
        action: crate::plan_step::StepAction::Manual,
        last_error: None,
        started_at: None,
        completed_at: None,
        created_at: fixed_now(),
        updated_at: fixed_now(),
    }
}
