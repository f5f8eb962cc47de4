//! The durable job queue, in memory, with the semantics of `jobs_job`.

use std::collections::BTreeSet;

use autodocs_domain::jobs::{ClaimedJob, JobKey, JobKind, JobQuery, JobRecord, JobStatus, NewJob};
use autodocs_domain::paging::PageResult;
use autodocs_domain::ports::{JobQueue, RepoResult};
use autodocs_domain::{JobId, MissionId, StepId};
use chrono::{DateTime, Duration, Utc};

use crate::state::{JobRow, contains_folded, missing, page_of};
use crate::uow::MemoryRepos;

/// Stored prefix of [`JobKey::Pending`] keys (claiming a job releases them).
const PENDING_PREFIX: &str = "pending:";

const QUEUED: &str = "queued";
const RUNNING: &str = "running";
const DONE: &str = "done";
const DEAD: &str = "dead";

fn to_record(job: &JobRow) -> JobRecord {
    JobRecord {
        id: job.id,
        kind: job.kind.clone(),
        status: JobStatus::parse(job.status).unwrap_or(JobStatus::Dead),
        attempts: job.attempts,
        max_attempts: job.max_attempts,
        run_at: job.run_at,
        last_error: job.last_error.clone(),
        mission: job.mission,
    }
}

fn stored_key(key: &JobKey) -> String {
    match key {
        JobKey::Pending(key) => format!("{PENDING_PREFIX}{key}"),
        JobKey::Period(key) => key.clone(),
    }
}

/// Queued and due, or running with a lapsed lease (its worker died).
fn is_due(job: &JobRow, now: DateTime<Utc>) -> bool {
    (job.status == QUEUED && job.run_at <= now)
        || (job.status == RUNNING && job.locked_until.is_some_and(|until| until < now))
}

impl MemoryRepos {
    /// A job still leased by `worker`.
    fn held(&mut self, id: JobId, worker: &str) -> Option<&mut JobRow> {
        self.state
            .jobs
            .get_mut(&id)
            .filter(|job| job.status == RUNNING && job.locked_by.as_deref() == Some(worker))
    }

    fn key_taken(&self, key: &str, except: JobId) -> bool {
        self.state
            .jobs
            .values()
            .any(|job| job.id != except && job.unique_key.as_deref() == Some(key))
    }
}

/// Leaves `running`: the lease and the step go.
fn release(job: &mut JobRow, status: &'static str, now: DateTime<Utc>) {
    job.status = status;
    job.locked_by = None;
    job.locked_until = None;
    job.step = None;
    job.updated_at = now;
}

impl JobQueue for MemoryRepos {
    fn enqueue(&mut self, new: &NewJob, now: DateTime<Utc>) -> RepoResult<Option<JobId>> {
        let key = new.unique_key.as_ref().map(stored_key);
        if let Some(key) = &key
            && self.key_taken(key, JobId(0))
        {
            return Ok(None);
        }
        let mission = new.kind.mission();
        if mission.is_some_and(|mission| !self.state.missions.contains_key(&mission)) {
            return Err(missing("the job's mission"));
        }
        self.state.ids.jobs += 1;
        let id = JobId(self.state.ids.jobs);
        self.state.jobs.insert(
            id,
            JobRow {
                id,
                kind: new.kind.name().to_owned(),
                payload: new.kind.payload(),
                status: QUEUED,
                attempts: 0,
                max_attempts: new.max_attempts,
                run_at: new.run_at,
                locked_by: None,
                locked_until: None,
                last_error: None,
                unique_key: key,
                mission,
                step: None,
                updated_at: now,
            },
        );
        Ok(Some(id))
    }

    fn claim(
        &mut self,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
        spare_busy_users: bool,
    ) -> RepoResult<Option<ClaimedJob>> {
        let state = &self.state;
        let owner_of =
            |mission: MissionId| state.missions.get(&mission).map(|row| row.mission.owner);
        // The users with a job running under a live lease.
        let busy: BTreeSet<i64> = if spare_busy_users {
            state
                .jobs
                .values()
                .filter(|job| job.status == RUNNING && job.locked_until.is_some_and(|u| u >= now))
                .filter_map(|job| job.mission.and_then(owner_of))
                .map(|owner| owner.0)
                .collect()
        } else {
            BTreeSet::new()
        };
        let candidate = state
            .jobs
            .values()
            .filter(|job| is_due(job, now))
            .filter(|job| match job.mission {
                None => true,
                Some(mission) => owner_of(mission).is_none_or(|owner| !busy.contains(&owner.0)),
            })
            .min_by_key(|job| (job.run_at, job.id))
            .map(|job| job.id);
        let Some(job) = candidate.and_then(|id| self.state.jobs.get_mut(&id)) else {
            return Ok(None);
        };
        job.status = RUNNING;
        job.attempts += 1;
        job.locked_by = Some(worker.to_owned());
        job.locked_until = Some(now + lease);
        if job
            .unique_key
            .as_deref()
            .is_some_and(|key| key.starts_with(PENDING_PREFIX))
        {
            job.unique_key = None;
        }
        job.updated_at = now;
        Ok(Some(ClaimedJob {
            id: job.id,
            kind: JobKind::from_stored(&job.kind, &job.payload),
            kind_name: job.kind.clone(),
            attempt: job.attempts,
            max_attempts: job.max_attempts,
            lease,
        }))
    }

    fn next_due(&mut self) -> RepoResult<Option<DateTime<Utc>>> {
        Ok(self
            .state
            .jobs
            .values()
            .filter_map(|job| match job.status {
                QUEUED => Some(job.run_at),
                RUNNING => job.locked_until,
                _ => None,
            })
            .min())
    }

    fn renew(
        &mut self,
        id: JobId,
        worker: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        Ok(match self.held(id, worker) {
            Some(job) => {
                job.locked_until = Some(until);
                job.updated_at = now;
                true
            }
            None => false,
        })
    }

    fn reschedule(
        &mut self,
        id: JobId,
        worker: &str,
        run_at: DateTime<Utc>,
        key: &JobKey,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let key = stored_key(key);
        let waiting = self.state.jobs.values_mut().find(|job| {
            job.id != id && job.status == QUEUED && job.unique_key.as_ref() == Some(&key)
        });
        if let Some(other) = waiting {
            // The waiting job takes over this one's appointment.
            if other.run_at > run_at {
                other.run_at = run_at;
                other.updated_at = now;
            }
            return self.finish(id, worker, now);
        }
        if self.held(id, worker).is_none() {
            return Ok(false);
        }
        if self.key_taken(&key, id) {
            return self.requeue(id, worker, run_at, None, false, now);
        }
        let Some(job) = self.held(id, worker) else {
            return Ok(false);
        };
        release(job, QUEUED, now);
        job.run_at = run_at;
        job.attempts -= 1;
        job.unique_key = Some(key);
        Ok(true)
    }

    fn take_step(&mut self, id: JobId, step: StepId, now: DateTime<Utc>) -> RepoResult<bool> {
        let Some(job) = self.state.jobs.get(&id) else {
            return Ok(false);
        };
        if job.step == Some(step) {
            return Ok(true);
        }
        // A holder whose lease lapsed (or that no longer runs) gives it up.
        for other in self.state.jobs.values_mut() {
            let live = other.status == RUNNING && other.locked_until.is_some_and(|u| u >= now);
            if other.id != id && other.step == Some(step) && !live {
                other.step = None;
            }
        }
        let held_elsewhere = self
            .state
            .jobs
            .values()
            .any(|other| other.id != id && other.step == Some(step));
        let step_exists = self.state.steps.contains_key(&step);
        match self.state.jobs.get_mut(&id) {
            Some(job) if job.status == RUNNING => {
                if held_elsewhere {
                    Ok(false)
                } else if !step_exists {
                    Err(missing("the job's step"))
                } else {
                    job.step = Some(step);
                    Ok(true)
                }
            }
            _ => Ok(false),
        }
    }

    fn list(&mut self, status: Option<JobStatus>, limit: i64) -> RepoResult<Vec<JobRecord>> {
        let limit = usize::try_from(limit.max(0)).unwrap_or(usize::MAX);
        Ok(self
            .state
            .jobs
            .values()
            .rev()
            .filter(|job| status.is_none_or(|status| job.status == status.as_str()))
            .take(limit)
            .map(to_record)
            .collect())
    }

    fn search(&mut self, query: &JobQuery) -> RepoResult<PageResult<JobRecord>> {
        let search = query.search.as_deref().filter(|search| !search.is_empty());
        let jobs = self
            .state
            .jobs
            .values()
            .rev()
            .filter(|job| {
                query
                    .status
                    .is_none_or(|status| job.status == status.as_str())
            })
            .filter(|job| search.is_none_or(|term| contains_folded(&job.kind, term)))
            .map(to_record)
            .collect();
        Ok(page_of(jobs, query.page))
    }

    fn delete_finished(&mut self, id: JobId) -> RepoResult<bool> {
        let finished = self
            .state
            .jobs
            .get(&id)
            .is_some_and(|job| job.status == DONE || job.status == DEAD);
        Ok(finished && self.state.jobs.remove(&id).is_some())
    }

    fn retry(&mut self, id: JobId, now: DateTime<Utc>) -> RepoResult<bool> {
        match self.state.jobs.get_mut(&id) {
            Some(job)
                if job.status == DEAD || (job.status == QUEUED && job.last_error.is_some()) =>
            {
                release(job, QUEUED, now);
                job.run_at = now;
                job.attempts = 0;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn purge(&mut self, before: DateTime<Utc>, dead: bool) -> RepoResult<u64> {
        let count = self.state.jobs.len();
        self.state.jobs.retain(|_, job| {
            let finished = job.status == DONE || (dead && job.status == DEAD);
            !(finished && job.updated_at < before)
        });
        Ok((count - self.state.jobs.len()) as u64)
    }

    fn finish(&mut self, id: JobId, worker: &str, now: DateTime<Utc>) -> RepoResult<bool> {
        Ok(match self.held(id, worker) {
            Some(job) => {
                release(job, DONE, now);
                true
            }
            None => false,
        })
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
        Ok(match self.held(id, worker) {
            Some(job) => {
                release(job, QUEUED, now);
                job.run_at = run_at;
                job.attempts -= i32::from(!count_attempt);
                job.last_error = error;
                true
            }
            None => false,
        })
    }

    fn bury(
        &mut self,
        id: JobId,
        worker: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        Ok(match self.held(id, worker) {
            Some(job) => {
                release(job, DEAD, now);
                job.last_error = Some(error.to_owned());
                true
            }
            None => false,
        })
    }

    fn count(&mut self, status: JobStatus) -> RepoResult<u64> {
        Ok(self
            .state
            .jobs
            .values()
            .filter(|job| job.status == status.as_str())
            .count() as u64)
    }
}
