use autodocs_domain::jobs::{ClaimedJob, JobKind, NewJob};
use autodocs_domain::ports::{JobQueue, RepoResult};
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;

use crate::connection::AnyConnection;
use crate::error::OrRepoError;
use crate::schema::jobs_job as job;
use crate::time::to_db;
use crate::uow::DieselRepos;

const QUEUED: &str = "queued";
const RUNNING: &str = "running";
const DONE: &str = "done";
const DEAD: &str = "dead";

#[derive(Insertable)]
#[diesel(table_name = job)]
struct JobRow<'a> {
    kind: &'a str,
    payload: String,
    status: &'a str,
    attempts: i32,
    max_attempts: i32,
    run_at: chrono::NaiveDateTime,
    unique_key: Option<&'a str>,
    mission_id: Option<i64>,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
}

/// Due jobs: queued and due, or running with a lapsed lease (its worker died).
macro_rules! due {
    ($now:expr) => {
        job::status
            .eq(QUEUED)
            .and(job::run_at.le($now))
            .or(job::status.eq(RUNNING).and(job::locked_until.lt($now)))
    };
}

impl JobQueue for DieselRepos<'_> {
    fn enqueue(&mut self, new: &NewJob, now: DateTime<Utc>) -> RepoResult<Option<i64>> {
        let row = JobRow {
            kind: new.kind.name(),
            payload: new.kind.payload().to_string(),
            status: QUEUED,
            attempts: 0,
            max_attempts: new.max_attempts,
            run_at: to_db(new.run_at),
            unique_key: new.unique_key.as_deref(),
            mission_id: new.kind.mission(),
            created_at: to_db(now),
            updated_at: to_db(now),
        };
        // A duplicate unique key is skipped, not an error: on PostgreSQL an
        // error would abort the caller's whole transaction.
        let ids: Vec<i64> = match &mut *self.conn {
            AnyConnection::Postgresql(pg) => diesel::insert_into(job::table)
                .values(&row)
                .on_conflict_do_nothing()
                .returning(job::id)
                .get_results(pg)
                .repo()?,
            AnyConnection::Sqlite(sqlite) => diesel::insert_or_ignore_into(job::table)
                .values(&row)
                .returning(job::id)
                .get_results(sqlite)
                .repo()?,
        };
        Ok(ids.into_iter().next())
    }

    fn claim(
        &mut self,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> RepoResult<Option<ClaimedJob>> {
        let stamp = to_db(now);
        let candidate: Option<i64> = match &mut *self.conn {
            // Other workers' locked rows are skipped, not waited for.
            AnyConnection::Postgresql(pg) => job::table
                .filter(due!(stamp))
                .order((job::run_at.asc(), job::id.asc()))
                .select(job::id)
                .limit(1)
                .for_update()
                .skip_locked()
                .first(pg)
                .optional()
                .repo()?,
            // SQLite: the caller's transaction is BEGIN IMMEDIATE, which
            // already excludes every other writer.
            AnyConnection::Sqlite(sqlite) => job::table
                .filter(due!(stamp))
                .order((job::run_at.asc(), job::id.asc()))
                .select(job::id)
                .first(sqlite)
                .optional()
                .repo()?,
        };
        let Some(id) = candidate else { return Ok(None) };
        let claimed = diesel::update(job::table.filter(job::id.eq(id)).filter(due!(stamp)))
            .set((
                job::status.eq(RUNNING),
                job::attempts.eq(job::attempts + 1),
                job::locked_by.eq(Some(worker)),
                job::locked_until.eq(Some(to_db(now + lease))),
                job::updated_at.eq(stamp),
            ))
            .execute(self.conn)
            .repo()?;
        if claimed != 1 {
            return Ok(None);
        }
        let (kind_name, payload, attempt, max_attempts): (String, String, i32, i32) = job::table
            .find(id)
            .select((job::kind, job::payload, job::attempts, job::max_attempts))
            .first(self.conn)
            .repo()?;
        let payload = serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null);
        Ok(Some(ClaimedJob {
            id,
            kind: JobKind::from_stored(&kind_name, &payload),
            kind_name,
            attempt,
            max_attempts,
            lease,
        }))
    }

    fn finish(&mut self, id: i64, worker: &str, now: DateTime<Utc>) -> RepoResult<bool> {
        let updated = diesel::update(held(id, worker))
            .set((
                job::status.eq(DONE),
                job::locked_by.eq(None::<String>),
                job::locked_until.eq(None::<chrono::NaiveDateTime>),
                job::unique_key.eq(None::<String>),
                job::updated_at.eq(to_db(now)),
            ))
            .execute(self.conn)
            .repo()?;
        Ok(updated == 1)
    }

    fn requeue(
        &mut self,
        id: i64,
        worker: &str,
        run_at: DateTime<Utc>,
        error: Option<String>,
        count_attempt: bool,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let give_back = i32::from(!count_attempt);
        let updated = diesel::update(held(id, worker))
            .set((
                job::status.eq(QUEUED),
                job::run_at.eq(to_db(run_at)),
                job::attempts.eq(job::attempts - give_back),
                job::last_error.eq(error),
                job::locked_by.eq(None::<String>),
                job::locked_until.eq(None::<chrono::NaiveDateTime>),
                job::updated_at.eq(to_db(now)),
            ))
            .execute(self.conn)
            .repo()?;
        Ok(updated == 1)
    }

    fn bury(&mut self, id: i64, worker: &str, error: &str, now: DateTime<Utc>) -> RepoResult<bool> {
        let updated = diesel::update(held(id, worker))
            .set((
                job::status.eq(DEAD),
                job::last_error.eq(Some(error)),
                job::locked_by.eq(None::<String>),
                job::locked_until.eq(None::<chrono::NaiveDateTime>),
                job::unique_key.eq(None::<String>),
                job::updated_at.eq(to_db(now)),
            ))
            .execute(self.conn)
            .repo()?;
        Ok(updated == 1)
    }

    fn count(&mut self, status: &str) -> RepoResult<u64> {
        let count: i64 = job::table
            .filter(job::status.eq(status))
            .count()
            .get_result(self.conn)
            .repo()?;
        Ok(super::as_count(count))
    }
}

/// A job still leased by `worker`.
type HeldJob = diesel::dsl::Filter<
    diesel::dsl::Filter<
        diesel::dsl::Filter<job::table, diesel::dsl::Eq<job::id, i64>>,
        diesel::dsl::Eq<job::status, &'static str>,
    >,
    diesel::dsl::Eq<job::locked_by, String>,
>;

/// A job still leased by `worker` (a worker whose lease lapsed and was
/// taken over can no longer end the job).
fn held(id: i64, worker: &str) -> HeldJob {
    job::table
        .filter(job::id.eq(id))
        .filter(job::status.eq(RUNNING))
        .filter(job::locked_by.eq(worker.to_owned()))
}
