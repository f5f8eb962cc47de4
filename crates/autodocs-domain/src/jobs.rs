//! Durable background jobs: what they are, how they retry.
//!
//! Jobs live in the application's database and are enqueued through the
//! same unit of work as the change that causes them, so a rolled-back change
//! leaves no job and a committed change always has its job. Workers claim
//! them with a lease; a worker that dies loses its lease and the job runs
//! again, so every handler is idempotent.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use crate::ids::{JobId, MissionId};

/// What a job does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKind {
    /// Run the next automated step of an in-progress mission.
    AdvanceMission {
        /// The mission.
        mission: MissionId,
    },
    /// Delete expired refresh tokens.
    PurgeRefreshTokens,
    /// Remove stored files no document references, and stale temp files.
    SweepFiles,
    /// Record `mission_overdue` once for each open mission past its deadline.
    FlagOverdueMissions,
    /// Delete finished jobs older than this (`jobs.retain_finished_hours`);
    /// dead jobs are kept until an operator handles them.
    PurgeFinishedJobs {
        /// How long a finished job is kept, in seconds.
        retain_seconds: i64,
    },
}

impl JobKind {
    /// The stored kind name.
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::AdvanceMission { .. } => "advance_mission",
            JobKind::PurgeRefreshTokens => "purge_refresh_tokens",
            JobKind::SweepFiles => "sweep_files",
            JobKind::FlagOverdueMissions => "flag_overdue_missions",
            JobKind::PurgeFinishedJobs { .. } => "purge_finished_jobs",
        }
    }

    /// The stored payload.
    pub fn payload(&self) -> Value {
        match self {
            JobKind::AdvanceMission { mission } => json!({ "mission": mission }),
            JobKind::PurgeFinishedJobs { retain_seconds } => {
                json!({ "retain_seconds": retain_seconds })
            }
            _ => json!({}),
        }
    }

    /// Rebuilds a kind from its stored name and payload.
    pub fn from_stored(name: &str, payload: &Value) -> Option<Self> {
        match name {
            "advance_mission" => {
                payload
                    .get("mission")?
                    .as_i64()
                    .map(|mission| JobKind::AdvanceMission {
                        mission: MissionId(mission),
                    })
            }
            "purge_refresh_tokens" => Some(JobKind::PurgeRefreshTokens),
            "sweep_files" => Some(JobKind::SweepFiles),
            "flag_overdue_missions" => Some(JobKind::FlagOverdueMissions),
            "purge_finished_jobs" => payload
                .get("retain_seconds")?
                .as_i64()
                .map(|retain_seconds| JobKind::PurgeFinishedJobs { retain_seconds }),
            _ => None,
        }
    }

    /// The mission a job concerns, if any.
    pub fn mission(&self) -> Option<MissionId> {
        match self {
            JobKind::AdvanceMission { mission } => Some(*mission),
            _ => None,
        }
    }

    /// The key under which at most one job of this kind waits in the queue:
    /// many changes to one mission while nothing runs it coalesce into one
    /// run. `None` for kinds that are not coalesced this way.
    pub fn pending_key(&self) -> Option<JobKey> {
        match self {
            JobKind::AdvanceMission { mission } => {
                Some(JobKey::Pending(format!("advance_mission:{mission}")))
            }
            _ => None,
        }
    }
}

/// How a job is deduplicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKey {
    /// At most one *queued* job per key. Claiming the job releases the key,
    /// so a change made while it runs queues another look.
    Pending(String),
    /// At most one job per key, whatever its state, for as long as the row
    /// is kept: periodic jobs run once per period even after they finished.
    Period(String),
}

impl JobKey {
    /// The key itself.
    pub fn as_str(&self) -> &str {
        match self {
            JobKey::Pending(key) | JobKey::Period(key) => key,
        }
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Waiting for its `run_at` (a failed job waits here for its retry).
    Queued,
    /// Leased by a worker.
    Running,
    /// Finished; deleted after `jobs.retain_finished_hours`.
    Done,
    /// Out of attempts; kept until an operator retries or purges it.
    Dead,
}

impl JobStatus {
    /// Every status, in life order.
    pub const ALL: [JobStatus; 4] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Done,
        JobStatus::Dead,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Dead => "dead",
        }
    }

    /// Parses a stored or typed name.
    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == raw.trim())
            .ok_or_else(|| format!("{raw:?} is not a job status (queued, running, done or dead)"))
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job as an operator sees it (`autodocs jobs list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// Its id.
    pub id: JobId,
    /// The stored kind name.
    pub kind: String,
    /// Where it is in its life.
    pub status: JobStatus,
    /// Attempts made so far.
    pub attempts: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Due at (queued), or when it was last scheduled.
    pub run_at: DateTime<Utc>,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// The mission it concerns, if any.
    pub mission: Option<MissionId>,
}

/// What an operator's list of jobs asks for: newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobQuery {
    /// Only jobs of this status.
    pub status: Option<JobStatus>,
    /// Only jobs whose kind name contains this (case-insensitive).
    pub search: Option<String>,
    /// Which page.
    pub page: crate::paging::PageRequest,
}

impl JobStatus {
    /// A job that will not run again unless an operator retries it: done
    /// or dead. Only these may be deleted by hand.
    pub fn is_finished(self) -> bool {
        matches!(self, JobStatus::Done | JobStatus::Dead)
    }
}

/// How the queue stands, for an operator's metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    /// How many jobs are in each status, every status listed.
    pub counts: Vec<(JobStatus, u64)>,
    /// When the next job falls due (the earliest `run_at` of a queued job
    /// or lease end of a running one); in the past when a due job waits.
    pub next_due: Option<DateTime<Utc>>,
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// What it does.
    pub kind: JobKind,
    /// Not before this instant.
    pub run_at: DateTime<Utc>,
    /// Attempts before the job is declared dead.
    pub max_attempts: i32,
    /// Deduplication: a job whose key is taken is not enqueued.
    pub unique_key: Option<JobKey>,
}

impl NewJob {
    /// Default attempts of a job.
    pub const DEFAULT_MAX_ATTEMPTS: i32 = 5;

    /// A job to run now.
    pub fn now(kind: JobKind, now: DateTime<Utc>) -> Self {
        Self {
            kind,
            run_at: now,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            unique_key: None,
        }
    }

    /// Runs it at `run_at` instead.
    pub fn at(mut self, run_at: DateTime<Utc>) -> Self {
        self.run_at = run_at;
        self
    }

    /// Deduplicates it under `key` for as long as the job is kept (periodic jobs).
    pub fn unique(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(JobKey::Period(key.into()));
        self
    }

    /// Deduplicates it with the other queued jobs of its kind and subject
    /// (see [`JobKind::pending_key`]).
    pub fn coalesced(mut self) -> Self {
        self.unique_key = self.kind.pending_key();
        self
    }
}

/// A job a worker holds the lease of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    /// Its id.
    pub id: JobId,
    /// What it does (`None`: an unknown stored kind, buried at once).
    pub kind: Option<JobKind>,
    /// The stored kind name.
    pub kind_name: String,
    /// This attempt's number, from 1.
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// How long the lease lasts: a step started longer ago than this by
    /// another run was abandoned by a dead worker.
    pub lease: Duration,
}

/// Delay before retry number `attempt` (1-based): exponential from 2 s,
/// capped at 10 minutes, with up to 25% jitter from `jitter` in `0.0..1.0`.
pub fn retry_delay(attempt: i32, jitter: f64) -> Duration {
    let exponent = attempt.clamp(1, 20) - 1;
    let base_ms = (2_000i64 << exponent).min(600_000);
    let jitter_ms = (base_ms as f64 * 0.25 * jitter.clamp(0.0, 1.0)) as i64;
    Duration::milliseconds(base_ms + jitter_ms)
}

/// What a worker does with a job after running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Finished: delete or mark done.
    Done,
    /// Run the same job again at this instant (not a failure: e.g. a timer).
    RunAgainAt(DateTime<Utc>),
    /// Failed; retried with backoff until the attempts run out.
    Failed(String),
}

/// Wakes the idle workers sharing a [`crate::Services`] when a change that
/// enqueued a job has committed, so an idle worker can sleep long and still
/// start new work at once. Other processes notice on their next look at the
/// queue.
#[derive(Debug, Default)]
pub struct JobSignal {
    generation: std::sync::Mutex<u64>,
    changed: std::sync::Condvar,
}

std::thread_local! {
    /// Whether the transaction running on this thread enqueued a job: the
    /// signal is sent after its commit, never for a rolled-back one.
    static ENQUEUED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl JobSignal {
    /// The number of signals so far; pass it to [`JobSignal::wait`].
    pub fn generation(&self) -> u64 {
        *self
            .generation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wakes every waiting worker.
    pub fn notify(&self) {
        let mut generation = self
            .generation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *generation = generation.wrapping_add(1);
        self.changed.notify_all();
    }

    /// Sleeps until a signal newer than `seen` or `timeout`, whichever is first.
    pub fn wait(&self, seen: u64, timeout: std::time::Duration) {
        let generation = self
            .generation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Spurious wakeups only cost one more look at the queue.
        let _ = self
            .changed
            .wait_timeout_while(generation, timeout, |current| *current == seen);
    }

    /// Notes that the current transaction enqueued a job.
    pub(crate) fn note_enqueued() {
        ENQUEUED.with(|flag| flag.set(true));
    }

    /// Forgets what a previous (rolled-back) transaction of this thread noted.
    pub(crate) fn reset_thread() {
        ENQUEUED.with(|flag| flag.set(false));
    }

    /// Called after a commit: wakes the workers if that transaction enqueued.
    pub(crate) fn committed(&self) {
        if ENQUEUED.with(|flag| flag.replace(false)) {
            self.notify();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in [
            JobKind::AdvanceMission {
                mission: MissionId(7),
            },
            JobKind::PurgeRefreshTokens,
            JobKind::SweepFiles,
            JobKind::FlagOverdueMissions,
            JobKind::PurgeFinishedJobs {
                retain_seconds: 86_400,
            },
        ] {
            assert_eq!(
                JobKind::from_stored(kind.name(), &kind.payload()),
                Some(kind)
            );
        }
        assert_eq!(JobKind::from_stored("advance_mission", &json!({})), None);
        assert_eq!(JobKind::from_stored("nope", &json!({})), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(retry_delay(1, 0.0), Duration::seconds(2));
        assert_eq!(retry_delay(2, 0.0), Duration::seconds(4));
        assert_eq!(retry_delay(3, 0.0), Duration::seconds(8));
        assert_eq!(retry_delay(30, 0.0), Duration::minutes(10));
        assert_eq!(retry_delay(1, 1.0), Duration::milliseconds(2_500));
        assert!(retry_delay(0, 0.5) >= Duration::seconds(2));
    }
}
