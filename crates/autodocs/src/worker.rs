//! Background workers: threads that claim jobs from the database queue,
//! run them through the use cases, and record the outcome.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use autodocs_domain::Services;
use autodocs_domain::jobs::{ClaimedJob, JobOutcome, JobSignal, retry_delay};

/// How workers claim and wait.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    /// Worker threads.
    pub count: usize,
    /// How long a claimed job is leased before another worker may take it over.
    pub lease: chrono::Duration,
    /// The longest an idle worker sleeps before looking at the queue again
    /// (jobs enqueued by this process wake it at once).
    pub idle_poll: Duration,
    /// How long finished jobs are kept (`jobs.retain_finished_hours`).
    pub retain_finished: chrono::Duration,
}

impl WorkerSettings {
    pub fn from_settings(jobs: &crate::settings::JobSettings) -> Self {
        Self {
            count: jobs.workers.max(1),
            lease: chrono::Duration::seconds(jobs.lease_seconds),
            idle_poll: Duration::from_millis(jobs.poll_interval_ms),
            retain_finished: chrono::Duration::hours(jobs.retain_finished_hours),
        }
    }
}
/// How often maintenance jobs run (once per period, whatever the number of
/// processes: see `Services::schedule_maintenance`).
const MAINTENANCE_PERIOD: chrono::Duration = chrono::Duration::minutes(5);

/// How often the scheduling worker offers the current period's maintenance
/// jobs; the period's keys make all but the first offer a no-op.
const SCHEDULE_EVERY: Duration = Duration::from_secs(60);

/// A pool of worker threads; dropping it (or [`Workers::shutdown`]) lets
/// running jobs finish and stops the threads.
pub struct Workers {
    stop: Arc<AtomicBool>,
    /// Wakes idle workers so they see `stop` at once.
    signal: Arc<JobSignal>,
    threads: Vec<JoinHandle<()>>,
}

/// What the threads of one pool share.
struct Pool {
    stop: Arc<AtomicBool>,
    /// Threads of this process claiming or running a job.
    busy: AtomicUsize,
    settings: WorkerSettings,
}

impl Workers {
    /// Starts the workers, named after `process`.
    pub fn start(
        services: Services,
        settings: WorkerSettings,
        process: &str,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let signal = Arc::clone(services.job_signal());
        let pool = Arc::new(Pool {
            stop: Arc::clone(&stop),
            busy: AtomicUsize::new(0),
            settings,
        });
        let mut threads = Vec::with_capacity(settings.count);
        for index in 0..settings.count {
            let services = services.clone();
            let pool = Arc::clone(&pool);
            let name = format!("{process}-worker-{index}");
            let schedules = index == 0;
            threads.push(
                std::thread::Builder::new()
                    .name(format!("worker-{index}"))
                    .spawn(move || work(&services, &name, &pool, schedules))?,
            );
        }
        Ok(Self {
            stop,
            signal,
            threads,
        })
    }

    /// Asks every worker to stop after its current job, and waits for them.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.signal.notify();
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

fn work(services: &Services, name: &str, pool: &Pool, schedules: bool) {
    let settings = pool.settings;
    let mut next_schedule = Instant::now();
    while !pool.stop.load(Ordering::Relaxed) {
        if schedules && Instant::now() >= next_schedule {
            match services
                .engine()
                .schedule_maintenance(MAINTENANCE_PERIOD, settings.retain_finished)
            {
                Ok(enqueued) if enqueued > 0 => {
                    tracing::debug!(enqueued, "scheduled this period's maintenance jobs");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "could not schedule maintenance jobs"),
            }
            next_schedule = Instant::now() + SCHEDULE_EVERY;
        }
        // Read the queue before claiming: an idle worker costs one indexed
        // read per look and never takes the write lock.
        let seen = services.job_signal().generation();
        let mut nap = settings.idle_poll;
        if schedules {
            nap = nap.min(next_schedule.saturating_duration_since(Instant::now()));
        }
        match services.engine().next_job_due() {
            Ok(Some(due)) => {
                let wait = (due - chrono::Utc::now()).to_std().unwrap_or_default();
                if !wait.is_zero() {
                    services.job_signal().wait(seen, wait.min(nap));
                    continue;
                }
            }
            Ok(None) => {
                services.job_signal().wait(seen, nap);
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "could not read the job queue");
                sleep_unless_stopped(&pool.stop, Duration::from_secs(1));
                continue;
            }
        }
        // The last free worker of the process keeps out of the jobs of users
        // who already have one running: it stays available to the others.
        let others = pool.busy.fetch_add(1, Ordering::SeqCst);
        let last_free = others + 1 >= settings.count;
        let claimed = services.engine().claim_job(name, settings.lease, last_free);
        match claimed {
            Ok(Some(job)) => {
                run_one(services, name, &job);
                pool.busy.fetch_sub(1, Ordering::SeqCst);
            }
            Ok(None) => {
                pool.busy.fetch_sub(1, Ordering::SeqCst);
                // Due jobs exist, but another worker took them or they wait
                // for their user's running job to end.
                services.job_signal().wait(seen, nap);
            }
            Err(error) => {
                pool.busy.fetch_sub(1, Ordering::SeqCst);
                tracing::warn!(%error, "could not claim a job");
                sleep_unless_stopped(&pool.stop, Duration::from_secs(1));
            }
        }
    }
}

fn run_one(services: &Services, worker: &str, job: &ClaimedJob) {
    // At WARN, so that the span is kept under the default test filter
    // (`warn`) too: every warning logged while the job runs (a failed
    // fetch's details, say) carries the job's id.
    let span =
        tracing::warn_span!("job", id = job.id.0, kind = %job.kind_name, attempt = job.attempt);
    let _entered = span.enter();
    let outcome = std::thread::scope(|scope| {
        // Renews the lease while the handler runs, so a long job is never
        // taken over by another worker while this one is alive; stops as
        // soon as the handler returns (the sender is dropped).
        let (done, finished) = channel::<()>();
        let every = (job.lease / 3)
            .to_std()
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_millis(100));
        scope.spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = finished.recv_timeout(every) {
                match services.engine().renew_lease(job, worker) {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(
                            job_id = job.id.0,
                            kind = %job.kind_name,
                            "lost the lease of a running job"
                        );
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(job_id = job.id.0, %error, "could not renew a job's lease");
                    }
                }
            }
        });
        let outcome = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match job.kind {
                // Run here rather than in the domain so the sweep's report
                // (a refusal and its reason) reaches the log.
                Some(autodocs_domain::jobs::JobKind::SweepFiles) => {
                    crate::wiring::sweep_and_log(services)
                        .map(|_| JobOutcome::Done)
                        .map_err(autodocs_domain::EngineError::from)
                }
                _ => services.engine().run_job(job),
            }
        })) {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(error)) => JobOutcome::Failed(error.to_string()),
            Err(_) => JobOutcome::Failed("the job panicked".to_owned()),
        };
        drop(done);
        outcome
    });
    if let JobOutcome::Failed(error) = &outcome {
        let dead = job.attempt >= job.max_attempts || job.kind.is_none();
        tracing::warn!(
            job_id = job.id.0,
            kind = %job.kind_name,
            attempt = job.attempt,
            max_attempts = job.max_attempts,
            dead,
            %error,
            "job failed"
        );
    }
    let jitter = f64::from(subsec_jitter()) / f64::from(u32::MAX);
    let delay = retry_delay(job.attempt, jitter);
    if let Err(error) = services.engine().settle_job(job, worker, outcome, delay) {
        // The lease runs out and another worker takes the job again.
        tracing::warn!(job_id = job.id.0, kind = %job.kind_name, %error, "could not record a job's outcome");
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
