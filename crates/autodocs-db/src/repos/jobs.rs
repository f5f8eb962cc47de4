use autodocs_domain::jobs::{ClaimedJob, JobKey, JobKind, JobQuery, JobRecord, JobStatus, NewJob};
use autodocs_domain::paging::PageResult;
use autodocs_domain::ports::{JobQueue, RepoResult};
use autodocs_domain::{JobId, MissionId, StepId};
use chrono::{DateTime, Duration, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::paging::paginate;
use super::{Db, contains_pattern, lower};
use crate::connection::AnyConnection;
use crate::error::{OrRepoError, repo_error};
use crate::schema::jobs_job as job;
use crate::schema::missions_mission as mission;
use crate::time::{StoredTime, from_db, to_db};
use crate::uow::DieselRepos;

/// Stored prefix of [`JobKey::Pending`] keys: claiming a job releases them
/// (see `RELEASE_PENDING_KEY`), while period keys stay with the job.
const PENDING_PREFIX: &str = "pending:";

/// The column value after a claim: a pending key is released so the next
/// change can queue another look; a period key is kept.
const RELEASE_PENDING_KEY: &str =
    "CASE WHEN unique_key LIKE 'pending:%' THEN NULL ELSE unique_key END";

/// What an operator's list shows of a job.
#[derive(Queryable, Selectable)]
#[diesel(table_name = job)]
struct RecordRow {
    id: i64,
    kind: String,
    status: String,
    attempts: i32,
    max_attempts: i32,
    run_at: StoredTime,
    last_error: Option<String>,
    mission_id: Option<i64>,
}

fn to_record(row: RecordRow) -> JobRecord {
    JobRecord {
        id: JobId(row.id),
        kind: row.kind,
        // The CHECK constraint allows only the four names.
        status: JobStatus::parse(&row.status).unwrap_or(JobStatus::Dead),
        attempts: row.attempts,
        max_attempts: row.max_attempts,
        run_at: from_db(row.run_at),
        last_error: row.last_error,
        mission: row.mission_id.map(MissionId),
    }
}

fn stored_key(key: &JobKey) -> String {
    match key {
        JobKey::Pending(key) => format!("{PENDING_PREFIX}{key}"),
        JobKey::Period(key) => key.clone(),
    }
}

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

/// Jobs that belong to none of `$owners` (maintenance jobs belong to no
/// user at all).
macro_rules! not_of_owners {
    ($owners:expr) => {
        job::mission_id.is_null().or(diesel::dsl::not(
            job::mission_id.eq_any(
                mission::table
                    .filter(mission::owner_id.eq_any($owners))
                    .select(mission::id.nullable()),
            ),
        ))
    };
}

/// The id of the next due job on `$conn`, after `$lock` (PostgreSQL's
/// row-locking clauses, or nothing).
macro_rules! next_due_job {
    ($conn:expr, $now:expr, $busy:expr, |$query:ident| $lock:expr) => {{
        let base = job::table.filter(due!($now));
        if !$busy.is_empty() {
            let $query = base
                .filter(not_of_owners!($busy))
                .order((job::run_at.asc(), job::id.asc()))
                .select(job::id)
                .limit(1);
            $lock.first::<i64>($conn).optional().repo()?
        } else {
            let $query = base
                .order((job::run_at.asc(), job::id.asc()))
                .select(job::id)
                .limit(1);
            $lock.first::<i64>($conn).optional().repo()?
        }
    }};
}

impl JobQueue for DieselRepos<'_> {
    fn enqueue(&mut self, new: &NewJob, now: DateTime<Utc>) -> RepoResult<Option<JobId>> {
        let key = new.unique_key.as_ref().map(stored_key);
        let row = JobRow {
            kind: new.kind.name(),
            payload: new.kind.payload().to_string(),
            status: QUEUED,
            attempts: 0,
            max_attempts: new.max_attempts,
            run_at: to_db(new.run_at),
            unique_key: key.as_deref(),
            mission_id: new.kind.mission().map(|mission| mission.0),
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
        Ok(ids.into_iter().next().map(JobId))
    }

    fn claim(
        &mut self,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
        spare_busy_users: bool,
    ) -> RepoResult<Option<ClaimedJob>> {
        let stamp = to_db(now);
        // The users with a job running under a live lease: at most one per
        // running job, so a short list.
        let busy: Vec<i64> = if spare_busy_users {
            mission::table
                .filter(
                    mission::id.nullable().eq_any(
                        job::table
                            .filter(job::status.eq(RUNNING))
                            .filter(job::locked_until.ge(stamp))
                            .select(job::mission_id),
                    ),
                )
                .select(mission::owner_id)
                .distinct()
                .load(self.conn)
                .repo()?
        } else {
            Vec::new()
        };
        let candidate: Option<i64> = match &mut *self.conn {
            // Other workers' locked rows are skipped, not waited for.
            AnyConnection::Postgresql(pg) => {
                next_due_job!(pg, stamp, busy, |query| query.for_update().skip_locked())
            }
            // SQLite: the caller's transaction is BEGIN IMMEDIATE, which
            // already excludes every other writer.
            AnyConnection::Sqlite(sqlite) => next_due_job!(sqlite, stamp, busy, |query| query),
        };
        let Some(id) = candidate else { return Ok(None) };
        let claimed = diesel::update(job::table.filter(job::id.eq(id)).filter(due!(stamp)))
            .set((
                job::status.eq(RUNNING),
                job::attempts.eq(job::attempts + 1),
                job::locked_by.eq(Some(worker)),
                job::locked_until.eq(Some(to_db(now + lease))),
                job::unique_key.eq(diesel::dsl::sql::<
                    diesel::sql_types::Nullable<diesel::sql_types::Text>,
                >(RELEASE_PENDING_KEY)),
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
            id: JobId(id),
            kind: JobKind::from_stored(&kind_name, &payload),
            kind_name,
            attempt,
            max_attempts,
            lease,
        }))
    }

    fn finish(&mut self, id: JobId, worker: &str, now: DateTime<Utc>) -> RepoResult<bool> {
        let id = id.0;
        let updated = diesel::update(held(id, worker))
            .set((
                job::status.eq(DONE),
                job::locked_by.eq(None::<String>),
                job::locked_until.eq(None::<chrono::NaiveDateTime>),
                job::step_id.eq(None::<i64>),
                job::updated_at.eq(to_db(now)),
            ))
            .execute(self.conn)
            .repo()?;
        Ok(updated == 1)
    }

    fn requeue(
        &mut self,
        id: JobId,
        worker: &str,
        run_at: DateTime<Utc>,
        error: Option<String>,
        count_attempt: bool,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let id = id.0;
        let give_back = i32::from(!count_attempt);
        let updated = diesel::update(held(id, worker))
            .set((
                job::status.eq(QUEUED),
                job::run_at.eq(to_db(run_at)),
                job::attempts.eq(job::attempts - give_back),
                job::last_error.eq(error),
                job::locked_by.eq(None::<String>),
                job::locked_until.eq(None::<chrono::NaiveDateTime>),
                job::step_id.eq(None::<i64>),
                job::updated_at.eq(to_db(now)),
            ))
            .execute(self.conn)
            .repo()?;
        Ok(updated == 1)
    }

    fn bury(
        &mut self,
        id: JobId,
        worker: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let id = id.0;
        let updated = diesel::update(held(id, worker))
            .set((
                job::status.eq(DEAD),
                job::last_error.eq(Some(error)),
                job::locked_by.eq(None::<String>),
                job::locked_until.eq(None::<chrono::NaiveDateTime>),
                job::step_id.eq(None::<i64>),
                job::updated_at.eq(to_db(now)),
            ))
            .execute(self.conn)
            .repo()?;
        Ok(updated == 1)
    }

    fn next_due(&mut self) -> RepoResult<Option<DateTime<Utc>>> {
        let queued: Option<StoredTime> = job::table
            .filter(job::status.eq(QUEUED))
            .order(job::run_at.asc())
            .select(job::run_at)
            .first(self.conn)
            .optional()
            .repo()?;
        let lease_ends: Option<Option<StoredTime>> = job::table
            .filter(job::status.eq(RUNNING))
            .filter(job::locked_until.is_not_null())
            .order(job::locked_until.asc())
            .select(job::locked_until)
            .first(self.conn)
            .optional()
            .repo()?;
        Ok([queued, lease_ends.flatten()]
            .into_iter()
            .flatten()
            .map(from_db)
            .min())
    }

    fn renew(
        &mut self,
        id: JobId,
        worker: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let id = id.0;
        let updated = diesel::update(held(id, worker))
            .set((
                job::locked_until.eq(Some(to_db(until))),
                job::updated_at.eq(to_db(now)),
            ))
            .execute(self.conn)
            .repo()?;
        Ok(updated == 1)
    }

    fn reschedule(
        &mut self,
        id: JobId,
        worker: &str,
        run_at: DateTime<Utc>,
        key: &JobKey,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let id = id.0;
        let key = stored_key(key);
        let waiting: Option<(i64, StoredTime)> = job::table
            .filter(job::unique_key.eq(&key))
            .filter(job::status.eq(QUEUED))
            .filter(job::id.ne(id))
            .select((job::id, job::run_at))
            .first(self.conn)
            .optional()
            .repo()?;
        if let Some((other, other_run_at)) = waiting {
            // Another job already waits to look at the same subject: it
            // takes over this one's appointment, and this one is done.
            if from_db(other_run_at) > run_at {
                diesel::update(job::table.find(other))
                    .set((
                        job::run_at.eq(to_db(run_at)),
                        job::updated_at.eq(to_db(now)),
                    ))
                    .execute(self.conn)
                    .repo()?;
            }
            return self.finish(JobId(id), worker, now);
        }
        // A concurrent enqueue on PostgreSQL may take the key first; the
        // savepoint keeps that conflict from aborting the whole transaction.
        self.conn.batch_execute("SAVEPOINT reschedule").repo()?;
        let keyed = diesel::update(held(id, worker))
            .set((
                job::status.eq(QUEUED),
                job::run_at.eq(to_db(run_at)),
                job::attempts.eq(job::attempts - 1),
                job::unique_key.eq(Some(&key)),
                job::locked_by.eq(None::<String>),
                job::locked_until.eq(None::<chrono::NaiveDateTime>),
                job::step_id.eq(None::<i64>),
                job::updated_at.eq(to_db(now)),
            ))
            .execute(self.conn);
        match keyed {
            Ok(updated) => {
                self.conn
                    .batch_execute("RELEASE SAVEPOINT reschedule")
                    .repo()?;
                Ok(updated == 1)
            }
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                self.conn
                    .batch_execute("ROLLBACK TO SAVEPOINT reschedule; RELEASE SAVEPOINT reschedule")
                    .repo()?;
                self.requeue(JobId(id), worker, run_at, None, false, now)
            }
            Err(error) => Err(repo_error(error)),
        }
    }

    fn take_step(&mut self, id: JobId, step: StepId, now: DateTime<Utc>) -> RepoResult<bool> {
        let id = id.0;
        let step = step.0;
        let stamp = to_db(now);
        let holder: Option<Option<i64>> = job::table
            .find(id)
            .select(job::step_id)
            .first(self.conn)
            .optional()
            .repo()?;
        if holder == Some(Some(step)) {
            return Ok(true);
        }
        // A holder whose worker died (lease lapsed) gives the step up.
        diesel::update(
            job::table
                .filter(job::step_id.eq(step))
                .filter(job::id.ne(id))
                .filter(
                    job::status
                        .ne(RUNNING)
                        .or(job::locked_until.lt(stamp))
                        .or(job::locked_until.is_null()),
                ),
        )
        .set(job::step_id.eq(None::<i64>))
        .execute(self.conn)
        .repo()?;
        // A live holder keeps it: the unique index refuses a second one,
        // also against a concurrent transaction on PostgreSQL (the savepoint
        // keeps that refusal from aborting the caller's transaction).
        self.conn.batch_execute("SAVEPOINT take_step").repo()?;
        let taken = diesel::update(
            job::table
                .filter(job::id.eq(id))
                .filter(job::status.eq(RUNNING)),
        )
        .set(job::step_id.eq(Some(step)))
        .execute(self.conn);
        match taken {
            Ok(updated) => {
                self.conn
                    .batch_execute("RELEASE SAVEPOINT take_step")
                    .repo()?;
                Ok(updated == 1)
            }
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                self.conn
                    .batch_execute("ROLLBACK TO SAVEPOINT take_step; RELEASE SAVEPOINT take_step")
                    .repo()?;
                Ok(false)
            }
            Err(error) => Err(repo_error(error)),
        }
    }

    fn list(&mut self, status: Option<JobStatus>, limit: i64) -> RepoResult<Vec<JobRecord>> {
        let mut query = job::table
            .select(RecordRow::as_select())
            .order(job::id.desc())
            .limit(limit.max(0))
            .into_boxed();
        if let Some(status) = status {
            query = query.filter(job::status.eq(status.as_str()));
        }
        let rows: Vec<RecordRow> = query.load(self.conn).repo()?;
        Ok(rows.into_iter().map(to_record).collect())
    }

    fn search(&mut self, query: &JobQuery) -> RepoResult<PageResult<JobRecord>> {
        let filtered = || {
            let mut select = job::table.into_boxed::<Db>();
            if let Some(status) = query.status {
                select = select.filter(job::status.eq(status.as_str()));
            }
            if let Some(search) = query.search.as_deref().filter(|search| !search.is_empty()) {
                select =
                    select.filter(lower(job::kind).like(contains_pattern(search)).escape('\\'));
            }
            select
        };
        let rows = filtered()
            .order(job::id.desc())
            .select(RecordRow::as_select());
        paginate(
            self.conn,
            &query.page,
            filtered().count(),
            rows,
            |row: RecordRow| Ok(to_record(row)),
        )
    }

    fn delete_finished(&mut self, id: JobId) -> RepoResult<bool> {
        let deleted = diesel::delete(
            job::table
                .filter(job::id.eq(id.0))
                .filter(job::status.eq_any([DONE, DEAD])),
        )
        .execute(self.conn)
        .repo()?;
        Ok(deleted == 1)
    }

    fn retry(&mut self, id: JobId, now: DateTime<Utc>) -> RepoResult<bool> {
        let id = id.0;
        let retryable = job::status
            .eq(DEAD)
            .or(job::status.eq(QUEUED).and(job::last_error.is_not_null()));
        let updated = diesel::update(job::table.filter(job::id.eq(id)).filter(retryable))
            .set((
                job::status.eq(QUEUED),
                job::run_at.eq(to_db(now)),
                job::attempts.eq(0),
                job::locked_by.eq(None::<String>),
                job::locked_until.eq(None::<chrono::NaiveDateTime>),
                job::step_id.eq(None::<i64>),
                job::updated_at.eq(to_db(now)),
            ))
            .execute(self.conn)
            .repo()?;
        Ok(updated == 1)
    }

    fn purge(&mut self, before: DateTime<Utc>, dead: bool) -> RepoResult<u64> {
        let statuses: &[&str] = if dead { &[DONE, DEAD] } else { &[DONE] };
        let deleted = diesel::delete(
            job::table
                .filter(job::status.eq_any(statuses))
                .filter(job::updated_at.lt(to_db(before))),
        )
        .execute(self.conn)
        .repo()?;
        Ok(deleted as u64)
    }

    fn count(&mut self, status: JobStatus) -> RepoResult<u64> {
        let count: i64 = job::table
            .filter(job::status.eq(status.as_str()))
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
