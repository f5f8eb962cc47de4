//! Background workers: threads that claim jobs from the database queue,
//! run them through the use cases, and record the outcome.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use autodocs_domain::Services;
use autodocs_domain::jobs::{ClaimedJob, JobOutcome, retry_delay};

/// How workers claim and wait.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    /// Worker threads.
    pub count: usize,
    /// How long a claimed job is leased before another worker may take it over.
    pub lease: chrono::Duration,
    /// How long an idle worker sleeps before looking for work again.
    pub idle_poll: Duration,
}

impl WorkerSettings {
    pub fn from_settings(jobs: &crate::settings::JobSettings) -> Self {
        Self {
            count: jobs.workers.max(1),
            lease: chrono::Duration::seconds(jobs.lease_seconds),
            idle_poll: Duration::from_millis(jobs.poll_interval_ms),
        }
    }
}
/// How often maintenance jobs are scheduled.
const MAINTENANCE_PERIOD: chrono::Duration = chrono::Duration::minutes(5);

/// A pool of worker threads; dropping it (or [`Workers::shutdown`]) lets
/// running jobs finish and stops the threads.
pub struct Workers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts the workers, named after `process`.
    pub fn start(
        services: Services,
        settings: WorkerSettings,
        process: &str,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::with_capacity(settings.count);
        for index in 0..settings.count {
            let services = services.clone();
            let stop = Arc::clone(&stop);
            let name = format!("{process}-worker-{index}");
            let schedules = index == 0;
            threads.push(
                std::thread::Builder::new()
                    .name(format!("worker-{index}"))
                    .spawn(move || work(&services, &name, &stop, schedules, settings))?,
            );
        }
        Ok(Self { stop, threads })
    }

    /// Asks every worker to stop after its current job, and waits for them.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

fn work(
    services: &Services,
    name: &str,
    stop: &AtomicBool,
    schedules: bool,
    settings: WorkerSettings,
) {
    let mut next_schedule = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if schedules && Instant::now() >= next_schedule {
            if let Err(error) = services.schedule_maintenance(MAINTENANCE_PERIOD) {
                tracing::warn!(%error, "could not schedule maintenance jobs");
            }
            next_schedule = Instant::now() + Duration::from_secs(60);
        }
        match services.claim_job(name, settings.lease) {
            Ok(Some(job)) => run_one(services, name, &job),
            Ok(None) => sleep_unless_stopped(stop, settings.idle_poll),
            Err(error) => {
                tracing::warn!(%error, "could not claim a job");
                sleep_unless_stopped(stop, Duration::from_secs(1));
            }
        }
    }
}

fn run_one(services: &Services, worker: &str, job: &ClaimedJob) {
    let span =
        tracing::info_span!("job", id = job.id, kind = %job.kind_name, attempt = job.attempt);
    let _entered = span.enter();
    let outcome =
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| services.run_job(job))) {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(error)) => JobOutcome::Failed(error.to_string()),
            Err(_) => JobOutcome::Failed("the job panicked".to_owned()),
        };
    let jitter = f64::from(subsec_jitter()) / f64::from(u32::MAX);
    let delay = retry_delay(job.attempt, jitter);
    if let Err(error) = services.settle_job(job, worker, outcome, delay) {
        // The lease runs out and another worker takes the job again.
        tracing::warn!(%error, "could not record a job's outcome");
    }
}

/// A cheap jitter source: the sub-second part of the clock.
fn subsec_jitter() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos().wrapping_mul(2_654_435_761))
        .unwrap_or_default()
}

fn sleep_unless_stopped(stop: &AtomicBool, duration: Duration) {
    let until = Instant::now() + duration;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50).min(duration));
    }
}
