//! Bounds how many password hashes run at once, and at what priority.
//!
//! PBKDF2 at a million iterations holds a core for a quarter of a second;
//! a burst of logins on the shared blocking pool would take every core and
//! stall the database calls of all other requests. Hashes run instead on a
//! few dedicated threads (one per core but one), queued, and those threads
//! run under Linux's `SCHED_IDLE` policy: they use the CPU time no request
//! wants, and a waking request thread preempts them at once, so a login
//! storm no longer shows in the latency of everyone else's requests; on an
//! idle machine a login runs at full speed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use autodocs_domain::ports::{PasswordCheck, PasswordHasher};

type Job = Box<dyn FnOnce() + Send>;

/// A [`PasswordHasher`] that runs at most `permits` hashes at once, on
/// low-priority threads of its own.
pub struct BoundedHasher<H> {
    inner: Arc<H>,
    jobs: flume::Sender<Job>,
}

impl<H: PasswordHasher + Send + Sync + 'static> BoundedHasher<H> {
    /// Wraps `inner`, with `permits` (at least 1) hashing threads.
    pub fn new(inner: H, permits: usize) -> Self {
        let (jobs, queue) = flume::unbounded::<Job>();
        for index in 0..permits.max(1) {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("autodocs-hash-{index}"))
                .spawn(move || {
                    lower_this_threads_priority();
                    while let Ok(job) = queue.recv() {
                        // A panicking hash fails its own caller only.
                        let _ = catch_unwind(AssertUnwindSafe(job));
                    }
                });
            if let Err(error) = spawned {
                // Callers then hash on their own thread (see `run`).
                tracing::warn!(%error, "cannot start a password hashing thread");
            }
        }
        Self {
            inner: Arc::new(inner),
            jobs,
        }
    }

    /// The permits for a machine: one core is left for everything else.
    pub fn permits_for_this_machine() -> usize {
        std::thread::available_parallelism().map_or(1, |cores| cores.get().saturating_sub(1).max(1))
    }

    /// Runs `work` on a hashing thread and waits for it; on the calling
    /// thread if no hashing thread could take it.
    fn run<T: Send + 'static>(&self, work: impl Fn(&H) -> T + Send + Sync + 'static) -> T {
        let work = Arc::new(work);
        let (reply, answer) = flume::bounded(1);
        let inner = Arc::clone(&self.inner);
        let queued = Arc::clone(&work);
        let job: Job = Box::new(move || {
            let _ = reply.send(queued(&inner));
        });
        if self.jobs.send(job).is_ok()
            && let Ok(value) = answer.recv()
        {
            return value;
        }
        work(&self.inner)
    }
}

/// The scheduling policy of hashing threads.
#[cfg(target_os = "linux")]
const HASHING_POLICY: thread_priority::ThreadSchedulePolicy =
    thread_priority::ThreadSchedulePolicy::Normal(
        thread_priority::NormalThreadSchedulePolicy::Idle,
    );

/// Moves the calling thread to the lowest scheduling class. Best effort:
/// without it hashes still run, only with the same priority as the rest.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    if let Err(error) = thread_priority::set_thread_priority_and_policy(
        thread_priority::thread_native_id(),
        thread_priority::ThreadPriority::Min,
        HASHING_POLICY,
    ) {
        tracing::warn!(
            ?error,
            "cannot lower the priority of a password hashing thread"
        );
    }
}

impl<H: PasswordHasher + Send + Sync + 'static> PasswordHasher for BoundedHasher<H> {
    fn hash(&self, password: &str) -> String {
        let password = password.to_owned();
        self.run(move |inner| inner.hash(&password))
    }

    fn verify(&self, password: &str, encoded: &str) -> PasswordCheck {
        let (password, encoded) = (password.to_owned(), encoded.to_owned());
        self.run(move |inner| inner.verify(&password, &encoded))
    }

    fn burn(&self, password: &str) {
        let password = password.to_owned();
        self.run(move |inner| inner.burn(&password));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    struct Counting {
        running: AtomicUsize,
        most: AtomicUsize,
    }

    impl PasswordHasher for Counting {
        fn hash(&self, _: &str) -> String {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            self.running.fetch_sub(1, Ordering::SeqCst);
            String::new()
        }
        fn verify(&self, password: &str, _: &str) -> PasswordCheck {
            self.hash(password);
            PasswordCheck::Mismatch
        }
        fn burn(&self, password: &str) {
            self.hash(password);
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn hashing_threads_run_at_a_lower_priority() {
        let hasher = BoundedHasher::new(Priority, 1);
        assert_eq!(hasher.hash("x"), format!("{HASHING_POLICY:?}"));
    }

    /// Reports the nice value of the thread it runs on.
    struct Priority;

    impl PasswordHasher for Priority {
        fn hash(&self, _: &str) -> String {
            let policy = thread_priority::thread_schedule_policy().expect("policy");
            format!("{policy:?}")
        }
        fn verify(&self, _: &str, _: &str) -> PasswordCheck {
            PasswordCheck::Mismatch
        }
        fn burn(&self, _: &str) {}
    }

    #[test]
    fn never_more_than_the_permits_at_once() {
        let hasher = Arc::new(BoundedHasher::new(
            Counting {
                running: AtomicUsize::new(0),
                most: AtomicUsize::new(0),
            },
            2,
        ));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let hasher = Arc::clone(&hasher);
                std::thread::spawn(move || {
                    hasher.hash("x");
                    hasher.verify("x", "y");
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("worker thread");
        }
        assert_eq!(hasher.inner.most.load(Ordering::SeqCst), 2);
    }
}
