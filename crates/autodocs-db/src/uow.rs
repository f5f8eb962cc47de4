//! The unit of work: every repository of one call shares one transaction.

use autodocs_domain::RepoError;
use autodocs_domain::ports::{
    ActivityRepository, MissionRepository, PlanStepRepository, RefreshTokenRepository,
    Repositories, Rollback, UnitOfWork, UserRepository,
};
use diesel::connection::SimpleConnection;

use crate::access_cache::AccessCache;
use crate::connection::{AnyConnection, Backend, Database};
use crate::error::repo_error;

/// The repositories, bound to one connection (and its open transaction).
pub(crate) struct DieselRepos<'c> {
    pub(crate) conn: &'c mut AnyConnection,
    /// In a PostgreSQL write transaction: which mission rows it holds.
    pub(crate) lock_order: Option<LockOrder>,
    /// Outside transactions: the account checks kept for a second.
    pub(crate) access_cache: Option<&'c AccessCache>,
    /// Accounts this transaction changed: their cached checks are evicted
    /// once it commits.
    pub(crate) changed_accounts: Vec<i64>,
}

/// The lock order of a PostgreSQL write transaction: a mission's row is
/// locked before any of its steps is written (the steps' triggers update
/// the mission row, so a step-first writer would lock step then mission
/// while a mission action locks mission then steps: a deadlock). Use cases
/// lock the mission explicitly (`MissionRepository::lock`); the step writes
/// check here and lock it themselves for any caller that did not. SQLite
/// needs none of this: its writers run one at a time.
#[derive(Debug, Default)]
pub(crate) struct LockOrder {
    /// Missions whose row this transaction locked (or updated).
    pub(crate) locked: Vec<i64>,
    /// The mission of each step read in this transaction.
    pub(crate) step_missions: std::collections::HashMap<i64, i64>,
}

impl<'c> DieselRepos<'c> {
    pub(crate) fn new(conn: &'c mut AnyConnection) -> Self {
        Self {
            conn,
            lock_order: None,
            access_cache: None,
            changed_accounts: Vec::new(),
        }
    }

    /// Repositories for reads outside a transaction, answering account
    /// checks from `cache` while fresh.
    pub(crate) fn reading(conn: &'c mut AnyConnection, cache: &'c AccessCache) -> Self {
        Self {
            access_cache: Some(cache),
            ..Self::new(conn)
        }
    }

    /// Repositories for a write transaction on `backend`.
    pub(crate) fn in_transaction(conn: &'c mut AnyConnection, backend: Backend) -> Self {
        Self {
            lock_order: (backend == Backend::Postgres).then(LockOrder::default),
            ..Self::new(conn)
        }
    }

    /// Locks a mission's row for the rest of the transaction, once.
    pub(crate) fn lock_mission_row(&mut self, mission: i64) -> Result<(), RepoError> {
        let Some(order) = &mut self.lock_order else {
            return Ok(());
        };
        if order.locked.contains(&mission) {
            return Ok(());
        }
        if let AnyConnection::Postgresql(pg) = &mut *self.conn {
            use diesel::RunQueryDsl;
            diesel::sql_query("SELECT id FROM missions_mission WHERE id = $1 FOR UPDATE")
                .bind::<diesel::sql_types::BigInt, _>(mission)
                .execute(pg)
                .map_err(repo_error)?;
        }
        order.locked.push(mission);
        Ok(())
    }

    /// Records that this transaction updated a mission's row (which locks it).
    pub(crate) fn mission_row_locked(&mut self, mission: i64) {
        if let Some(order) = &mut self.lock_order
            && !order.locked.contains(&mission)
        {
            order.locked.push(mission);
        }
    }

    /// Remembers which mission steps belong to, to lock it before writing one.
    pub(crate) fn steps_seen(&mut self, steps: impl IntoIterator<Item = (i64, i64)>) {
        if let Some(order) = &mut self.lock_order {
            order.step_missions.extend(steps);
        }
    }

    /// Locks the mission of a step before the step is written.
    pub(crate) fn lock_mission_of_step(&mut self, step: i64) -> Result<(), RepoError> {
        let Some(order) = &self.lock_order else {
            return Ok(());
        };
        let mission = match order.step_missions.get(&step) {
            Some(mission) => Some(*mission),
            None => {
                use crate::schema::missions_planstep as plan_step;
                use diesel::prelude::*;
                plan_step::table
                    .find(step)
                    .select(plan_step::mission_id)
                    .first::<i64>(self.conn)
                    .optional()
                    .map_err(repo_error)?
            }
        };
        match mission {
            Some(mission) => self.lock_mission_row(mission),
            None => Ok(()),
        }
    }
}

impl Repositories for DieselRepos<'_> {
    fn instance(&mut self) -> &mut dyn autodocs_domain::ports::InstanceRepository {
        self
    }
    fn jobs(&mut self) -> &mut dyn autodocs_domain::ports::JobQueue {
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
    fn documents(&mut self) -> &mut dyn autodocs_domain::ports::DocumentRepository {
        self
    }
    fn admin_sessions(&mut self) -> &mut dyn autodocs_domain::ports::AdminSessionRepository {
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

fn unavailable(error: impl ToString) -> Rollback {
    Rollback::Storage(RepoError::Unavailable(error.to_string()))
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
    fn noting_unavailability(&self, outcome: Result<(), Rollback>) -> Result<(), Rollback> {
        if let Err(Rollback::Storage(RepoError::Unavailable(reason))) = &outcome {
            tracing::warn!(%reason, "the database is unavailable");
            self.database.note_unavailable();
        }
        outcome
    }

    fn transaction(
        &self,
        work: &mut dyn FnMut(&mut dyn Repositories) -> Result<(), Rollback>,
    ) -> Result<(), Rollback> {
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
            .map_err(|error| Rollback::Storage(repo_error(error)))?;
        let mut guard = RollbackOnDrop {
            conn: Some(&mut conn),
        };
        let Some(tx_conn) = guard.conn.as_deref_mut() else {
            return Err(unavailable("transaction connection missing"));
        };
        let mut repos = DieselRepos::in_transaction(tx_conn, self.database.backend());
        let outcome = work(&mut repos);
        let changed_accounts = std::mem::take(&mut repos.changed_accounts);
        drop(repos);
        let Some(tx_conn) = guard.conn.take() else {
            return Err(unavailable("transaction connection missing"));
        };
        match outcome {
            Ok(()) => match tx_conn.batch_execute("COMMIT") {
                Ok(()) => {
                    self.database.access_cache().evict(&changed_accounts);
                    Ok(())
                }
                Err(error) => {
                    let _ = tx_conn.batch_execute("ROLLBACK");
                    Err(Rollback::Storage(repo_error(error)))
                }
            },
            Err(error) => {
                tx_conn
                    .batch_execute("ROLLBACK")
                    .map_err(|error| Rollback::Storage(repo_error(error)))?;
                Err(error)
            }
        }
    }
}

impl UnitOfWork for DieselUnitOfWork {
    fn run_in_transaction(
        &self,
        work: &mut dyn FnMut(&mut dyn Repositories) -> Result<(), Rollback>,
    ) -> Result<(), Rollback> {
        self.noting_unavailability(self.transaction(work))
    }

    fn run_read(
        &self,
        work: &mut dyn FnMut(&mut dyn Repositories) -> Result<(), Rollback>,
    ) -> Result<(), Rollback> {
        let outcome = self
            .database
            .connection()
            .map_err(unavailable)
            .and_then(|mut conn| {
                work(&mut DieselRepos::reading(
                    &mut conn,
                    self.database.access_cache(),
                ))
            });
        self.noting_unavailability(outcome)
    }
}
