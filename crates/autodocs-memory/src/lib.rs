//! In-memory implementations of every port of `autodocs-domain`.
//!
//! For other services' tests and for demos: a [`Services`] wired with
//! [`services()`] does no I/O at all (no database, no files, no network),
//! yet its repositories behave as the diesel adapter's do on SQLite and
//! PostgreSQL: the same unique keys, foreign keys and cascades, the same
//! conditional updates, the same list filters, ordering and paging. The
//! `autodocs-conformance` suite runs against this crate and against the
//! diesel adapter to keep it so.
//!
//! - [`MemoryUnitOfWork`]: every repository and the job queue. A
//!   transaction works on a copy of the state and replaces it only when it
//!   commits, so a failed transaction leaves nothing behind.
//! - [`MemoryFileStorage`]: document bytes in a map.
//! - [`ManualClock`], [`PlainPasswordHasher`] (**not for production**),
//!   [`MemoryTokenService`], [`MemoryUrlFetcher`], [`CollectingEvents`].
//! - [`InProcessRateWindows`]: the throttle and lockout counters (the
//!   domain's own in-process adapter, re-exported).
#![warn(missing_docs)]

mod adapters;
mod documents;
mod jobs;
mod missions;
mod state;
mod storage;
mod uow;
mod users;

use std::sync::Arc;

use autodocs_domain::jobs::{JobOutcome, retry_delay};
use autodocs_domain::{Limits, Ports, Services};
use chrono::{DateTime, TimeZone, Utc};

pub use adapters::{
    CollectingEvents, ManualClock, MemoryTokenService, MemoryUrlFetcher, PlainPasswordHasher,
};
pub use autodocs_domain::rate_window::InProcessRateWindows;
pub use storage::MemoryFileStorage;
pub use uow::MemoryUnitOfWork;

/// A [`Services`] wired with the in-memory ports, and handles on the ports
/// a test drives or inspects.
#[derive(Clone)]
pub struct MemoryServices {
    /// The use cases.
    pub services: Services,
    /// The database behind `services.uow`.
    pub uow: MemoryUnitOfWork,
    /// The clock behind `services.clock`; it moves only when told to.
    pub clock: Arc<ManualClock>,
    /// Every event the use cases published.
    pub events: Arc<CollectingEvents>,
    /// Serves the URLs of `fetch_url` steps.
    pub fetcher: Arc<MemoryUrlFetcher>,
    /// The document bytes.
    pub storage: MemoryFileStorage,
}

impl std::fmt::Debug for MemoryServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryServices").finish_non_exhaustive()
    }
}

/// The instant a [`services()`] clock starts at: 2026-12-01 09:00:00 UTC.
pub fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// A fully wired in-memory [`Services`]: an empty database, a clock
/// standing at [`epoch()`], 25 MiB uploads, the default step limit and
/// sweep policy.
pub fn services() -> MemoryServices {
    services_at(epoch())
}

/// Like [`services()`], with the clock standing at `now`.
pub fn services_at(now: DateTime<Utc>) -> MemoryServices {
    let uow = MemoryUnitOfWork::new();
    let clock = Arc::new(ManualClock::new(now));
    let events = Arc::new(CollectingEvents::new());
    let fetcher = Arc::new(MemoryUrlFetcher::new());
    let storage = MemoryFileStorage::new(clock.clone());
    let ports = Ports {
        uow: Arc::new(uow.clone()),
        hasher: Arc::new(PlainPasswordHasher),
        tokens: Arc::new(MemoryTokenService::new(clock.clone())),
        clock: clock.clone(),
        fetcher: fetcher.clone(),
        events: events.clone(),
        storage: Arc::new(storage.clone()),
    };
    let services = Services::new(ports, Limits::default());
    MemoryServices {
        services,
        uow,
        clock,
        events,
        fetcher,
        storage,
    }
}

/// What [`MemoryServices::drain_jobs`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// Jobs run.
    pub runs: usize,
    /// Whether the queue ended empty (nothing queued or running).
    pub idle: bool,
}

impl MemoryServices {
    /// Runs the job engine as a single worker would, through the domain's
    /// own `claim_job`, `run_job` and `settle_job`, until nothing is queued
    /// or `max_runs` jobs ran. When the next job is not due yet (a retry
    /// backing off, a timer), the clock jumps to it instead of waiting.
    pub fn drain_jobs(&self, worker: &str, max_runs: usize) -> autodocs_domain::Result<Drained> {
        let lease = chrono::Duration::minutes(5);
        let mut drained = Drained::default();
        // Looks that found a due job but could not claim it (another
        // worker holds its user's jobs): bounded like the runs.
        let mut misses = 0;
        while drained.runs < max_runs && misses < max_runs {
            let Some(due) = self.services.engine().next_job_due()? else {
                drained.idle = true;
                break;
            };
            self.clock.advance_to(due);
            let Some(job) = self.services.engine().claim_job(worker, lease, true)? else {
                // Due but not claimable at this instant: a lease ends just
                // now, or another worker runs a job of the same user.
                self.clock.advance(chrono::Duration::milliseconds(1));
                misses += 1;
                continue;
            };
            let outcome = match self.services.engine().run_job(&job) {
                Ok(outcome) => outcome,
                Err(error) => JobOutcome::Failed(error.to_string()),
            };
            self.services.engine().settle_job(
                &job,
                worker,
                outcome,
                retry_delay(job.attempt, 0.0),
            )?;
            drained.runs += 1;
        }
        Ok(drained)
    }
}
