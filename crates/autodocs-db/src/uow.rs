//! The unit of work: every repository of one call shares one transaction.

use autodocs_domain::Error;
use autodocs_domain::RepoError;
use autodocs_domain::ports::{
    ActivityRepository, MissionRepository, PlanStepRepository, RefreshTokenRepository,
    Repositories, UnitOfWork, UserRepository,
};
use diesel::connection::SimpleConnection;

use crate::connection::{AnyConnection, Backend, Database};
use crate::error::repo_error;

/// The repositories, bound to one connection (and its open transaction).
pub(crate) struct DieselRepos<'c> {
    pub(crate) conn: &'c mut AnyConnection,
    /// Activities recorded in this unit of work, for post-commit events.
    pub(crate) recorded: Vec<autodocs_domain::activity_log::Activity>,
}

impl<'c> DieselRepos<'c> {
    pub(crate) fn new(conn: &'c mut AnyConnection) -> Self {
        Self {
            conn,
            recorded: Vec::new(),
        }
    }
}

impl Repositories for DieselRepos<'_> {
    fn jobs(&mut self) -> &mut dyn autodocs_domain::ports::JobQueue {
        self
    }
    fn take_recorded(&mut self) -> Vec<autodocs_domain::activity_log::Activity> {
        std::mem::take(&mut self.recorded)
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
    fn documents(&mut self) -> &mut dyn autodocs_domain::ports::DocumentRepository {
        self
    }
}

/// [`UnitOfWork`] over a [`Database`].
#[derive(Clone)]
pub struct DieselUnitOfWork {
    database: Database,
}

impl DieselUnitOfWork {
    /// A unit of work over the pool.
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// The database behind it.
    pub fn database(&self) -> &Database {
        &self.database
    }
}

fn unavailable(error: impl ToString) -> Error {
    Error::Repository(RepoError::Unavailable(error.to_string()))
}

/// Rolls back if the transaction body panicked, so the connection goes back
/// to the pool clean.
struct RollbackOnDrop<'c> {
    conn: Option<&'c mut AnyConnection>,
}

impl Drop for RollbackOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.batch_execute("ROLLBACK");
        }
    }
}

impl DieselUnitOfWork {
    /// A lost connection seen here makes the pool test its connections
    /// before handing them out, so the dead ones go instead of failing a
    /// request each once the database is back.
    fn noting_unavailability(&self, outcome: Result<(), Error>) -> Result<(), Error> {
        if let Err(Error::Repository(RepoError::Unavailable(reason))) = &outcome {
            tracing::warn!(%reason, "the database is unavailable");
            self.database.note_unavailable();
        }
        outcome
    }

    fn transaction(
        &self,
        work: &mut dyn FnMut(&mut dyn Repositories) -> Result<(), Error>,
    ) -> Result<(), Error> {
        // SQLite: one writer per process at a time (see `Database::write_lock`).
        // The mutex guards no data, so a panic that poisoned it left nothing broken.
        let _writer = self.database.write_lock().map(|lock| {
            lock.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        });
        let mut conn = self.database.connection().map_err(unavailable)?;
        // SQLite: take the write lock up front (BEGIN IMMEDIATE) so a
        // transaction that reads then writes never fails on lock upgrade.
        let begin = match self.database.backend() {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        conn.batch_execute(begin)
            .map_err(|error| Error::Repository(repo_error(error)))?;
        let mut guard = RollbackOnDrop {
            conn: Some(&mut conn),
        };
        let Some(tx_conn) = guard.conn.as_deref_mut() else {
            return Err(unavailable("transaction connection missing"));
        };
        let outcome = work(&mut DieselRepos::new(tx_conn));
        let Some(tx_conn) = guard.conn.take() else {
            return Err(unavailable("transaction connection missing"));
        };
        match outcome {
            Ok(()) => match tx_conn.batch_execute("COMMIT") {
                Ok(()) => Ok(()),
                Err(error) => {
                    let _ = tx_conn.batch_execute("ROLLBACK");
                    Err(Error::Repository(repo_error(error)))
                }
            },
            Err(error) => {
                tx_conn
                    .batch_execute("ROLLBACK")
                    .map_err(|error| Error::Repository(repo_error(error)))?;
                Err(error)
            }
        }
    }
}

impl UnitOfWork for DieselUnitOfWork {
    fn run_in_transaction(
        &self,
        work: &mut dyn FnMut(&mut dyn Repositories) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.noting_unavailability(self.transaction(work))
    }

    fn run_read(
        &self,
        work: &mut dyn FnMut(&mut dyn Repositories) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let outcome = self
            .database
            .connection()
            .map_err(unavailable)
            .and_then(|mut conn| work(&mut DieselRepos::new(&mut conn)));
        self.noting_unavailability(outcome)
    }
}
