//! The unit of work: a transaction works on a copy of the whole state and
//! replaces the shared state only when it commits.

use std::sync::{Arc, Mutex, MutexGuard};

use autodocs_domain::RepoError;
use autodocs_domain::instance::DatabaseIdentity;
use autodocs_domain::ports::{
    ActivityRepository, AdminSessionRepository, DocumentRepository, InstanceRepository, JobQueue,
    MissionRepository, PlanStepRepository, RefreshTokenRepository, Repositories, Rollback,
    UnitOfWork, UserRepository,
};

use crate::state::{State, random_hex};

/// [`UnitOfWork`] over an in-memory database.
///
/// Transactions run one at a time (like SQLite's writers); each works on a
/// copy of the state, which replaces the shared state only when the
/// closure returns `Ok`, so a failed (or panicking) transaction leaves
/// nothing behind in any repository. Reads work on a copy of the committed
/// state and never wait for a transaction to end: like a read on another
/// connection, a read made while a transaction is open (even from inside
/// it) sees what was committed before it. Clones share the same database.
#[derive(Clone)]
pub struct MemoryUnitOfWork {
    /// The committed state; locked only to copy or replace it.
    state: Arc<Mutex<State>>,
    /// Held for the whole of a transaction: one writer at a time.
    writer: Arc<Mutex<()>>,
}

impl std::fmt::Debug for MemoryUnitOfWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryUnitOfWork").finish_non_exhaustive()
    }
}

impl Default for MemoryUnitOfWork {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryUnitOfWork {
    /// An empty database with a fresh random identity.
    pub fn new() -> Self {
        let identity =
            DatabaseIdentity::parse(&random_hex(16)).unwrap_or_else(|_| Self::fallback_identity());
        Self::with_identity(identity)
    }

    /// An empty database with the given identity (see
    /// [`InstanceRepository::database_identity`]).
    pub fn with_identity(identity: DatabaseIdentity) -> Self {
        Self {
            state: Arc::new(Mutex::new(State::new(identity))),
            writer: Arc::new(Mutex::new(())),
        }
    }

    fn fallback_identity() -> DatabaseIdentity {
        // "memory" is a valid identity: letters only.
        match DatabaseIdentity::parse("memory") {
            Ok(identity) => identity,
            Err(_) => unreachable_identity(),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, RepoError> {
        self.state.lock().map_err(|_| {
            RepoError::Other("the in-memory database is poisoned (a transaction panicked)".into())
        })
    }
}

#[allow(clippy::panic)]
fn unreachable_identity() -> DatabaseIdentity {
    panic!("\"memory\" is a valid database identity")
}

impl UnitOfWork for MemoryUnitOfWork {
    fn run_in_transaction(
        &self,
        work: &mut dyn FnMut(&mut dyn Repositories) -> Result<(), Rollback>,
    ) -> Result<(), Rollback> {
        // The writer mutex guards no data: a transaction that panicked
        // while holding it changed nothing shared.
        let _writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let copy = self.lock()?.clone();
        let mut repos = MemoryRepos::new(copy);
        work(&mut repos)?;
        // Only writers replace the state, one at a time: nothing committed
        // since the copy was taken.
        *self.lock()? = repos.state;
        Ok(())
    }

    fn run_read(
        &self,
        work: &mut dyn FnMut(&mut dyn Repositories) -> Result<(), Rollback>,
    ) -> Result<(), Rollback> {
        // A read works on a copy too: whatever it might write is dropped.
        let copy = self.lock()?.clone();
        work(&mut MemoryRepos::new(copy))
    }
}

/// Every repository, over one transaction's copy of the state.
pub(crate) struct MemoryRepos {
    pub(crate) state: State,
}

impl MemoryRepos {
    fn new(state: State) -> Self {
        Self { state }
    }
}

impl Repositories for MemoryRepos {
    fn jobs(&mut self) -> &mut dyn JobQueue {
        self
    }
    fn missions(&mut self) -> &mut dyn MissionRepository {
        self
    }
    fn steps(&mut self) -> &mut dyn PlanStepRepository {
        self
    }
    fn users(&mut self) -> &mut dyn UserRepository {
        self
    }
    fn refresh_tokens(&mut self) -> &mut dyn RefreshTokenRepository {
        self
    }
    fn activities(&mut self) -> &mut dyn ActivityRepository {
        self
    }
    fn documents(&mut self) -> &mut dyn DocumentRepository {
        self
    }
    fn instance(&mut self) -> &mut dyn InstanceRepository {
        self
    }
    fn admin_sessions(&mut self) -> &mut dyn AdminSessionRepository {
        self
    }
}

impl InstanceRepository for MemoryRepos {
    fn database_identity(
        &mut self,
    ) -> autodocs_domain::ports::RepoResult<Option<DatabaseIdentity>> {
        Ok(Some(self.state.identity.clone()))
    }
}
