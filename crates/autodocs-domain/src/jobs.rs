//! Durable background jobs: what they are, how they retry.
//!
//! Jobs live in the application's database and are enqueued through the
//! same unit of work as the change that causes them, so a rolled-back change
//! leaves no job and a committed change always has its job. Workers claim
//! them with a lease; a worker that dies loses its lease and the job runs
//! again, so every handler is idempotent.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

/// What a job does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKind {
    /// Run the next automated step of an in-progress mission.
    AdvanceMission {
        /// The mission.
        mission: i64,
    },
    /// Delete expired refresh tokens.
    PurgeRefreshTokens,
    /// Remove stored files no document references, and stale temp files.
    SweepFiles,
    /// Record `mission_overdue` once for each open mission past its deadline.
    FlagOverdueMissions,
}

impl JobKind {
    /// The stored kind name.
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::AdvanceMission { .. } => "advance_mission",
            JobKind::PurgeRefreshTokens => "purge_refresh_tokens",
            JobKind::SweepFiles => "sweep_files",
            JobKind::FlagOverdueMissions => "flag_overdue_missions",
        }
    }

    /// The stored payload.
    pub fn payload(&self) -> Value {
        match self {
            JobKind::AdvanceMission { mission } => json!({ "mission": mission }),
            _ => json!({}),
        }
    }

    /// Rebuilds a kind from its stored name and payload.
    pub fn from_stored(name: &str, payload: &Value) -> Option<Self> {
        match name {
            "advance_mission" => payload
                .get("mission")?
                .as_i64()
                .map(|mission| JobKind::AdvanceMission { mission }),
            "purge_refresh_tokens" => Some(JobKind::PurgeRefreshTokens),
            "sweep_files" => Some(JobKind::SweepFiles),
            "flag_overdue_missions" => Some(JobKind::FlagOverdueMissions),
            _ => None,
        }
    }

    /// The mission a job concerns, if any.
    pub fn mission(&self) -> Option<i64> {
        match self {
            JobKind::AdvanceMission { mission } => Some(*mission),
            _ => None,
        }
    }
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
    /// At most one live job per key (the queue ignores duplicates).
    pub unique_key: Option<String>,
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

    /// Deduplicates it under `key`.
    pub fn unique(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }
}

/// A job a worker holds the lease of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    /// Its id.
    pub id: i64,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in [
            JobKind::AdvanceMission { mission: 7 },
            JobKind::PurgeRefreshTokens,
            JobKind::SweepFiles,
            JobKind::FlagOverdueMissions,
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
