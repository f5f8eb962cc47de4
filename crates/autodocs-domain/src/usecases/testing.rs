//! A unit of work over mockall mocks, for use-case tests.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};

use crate::error::Error;
use crate::ports::{
    ActivityRepository, MissionRepository, MockActivityRepository, MockClock,
    MockMissionRepository, MockPasswordHasher, MockPlanStepRepository, MockRefreshTokenRepository,
    MockTokenService, MockUserRepository, PlanStepRepository, RefreshTokenRepository, Repositories,
    UnitOfWork, UserRepository,
};

use super::Services;

/// The mocks one test sets expectations on.
#[derive(Default)]
pub struct MockRepos {
    pub users: MockUserRepository,
    pub refresh_tokens: MockRefreshTokenRepository,
    pub activities: MockActivityRepository,
    pub missions: MockMissionRepository,
    pub steps: MockPlanStepRepository,
}

impl Repositories for MockRepos {
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
        work: &mut dyn FnMut(&mut dyn Repositories) -> Result<(), Error>,
    ) -> Result<(), Error> {
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
        work: &mut dyn FnMut(&mut dyn Repositories) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut repos = self.repos.lock().expect("mock repos poisoned");
        work(&mut *repos)
    }
}

pub fn fixed_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0)
        .single()
        .expect("valid date")
}

/// Services over the given mocks, with a clock frozen at [`fixed_now`].
pub fn services(
    uow: Arc<MockUow>,
    hasher: MockPasswordHasher,
    tokens: MockTokenService,
) -> Services {
    let mut clock = MockClock::new();
    clock.expect_now().returning(fixed_now);
    Services {
        uow,
        hasher: Arc::new(hasher),
        tokens: Arc::new(tokens),
        clock: Arc::new(clock),
    }
}
