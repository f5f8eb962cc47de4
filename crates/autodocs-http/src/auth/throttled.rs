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
use std::sync::atomic::{AtomicUsize, Ordering};

use autodocs_domain::ports::{PasswordCheck, PasswordHasher};

type Job = Box<dyn FnOnce() + Send>;

/// The password hashing threads and their bounded queue: at most `bound`
/// hashes wait or run at once; past that a caller is refused at once
/// ([`QueueFull`]) rather than made to wait without end.
///
/// Callers on the event loop await the answer ([`HashQueue::submit`]), so
/// a request waiting for its hash holds no thread at all.
pub struct HashQueue {
    inner: Arc<dyn PasswordHasher>,
    jobs: flume::Sender<Job>,
    pending: Arc<AtomicUsize>,
    bound: usize,
}

/// The hashing queue is full: try again shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the password hashing queue is full")]
pub struct QueueFull;

/// Gives a queue place back when its job ends, or is dropped unrun.
struct Place(Arc<AtomicUsize>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashQueue {
    /// Starts `threads` (at least 1) low-priority hashing threads over
    /// `inner`, with room for `bound` (at least 1) hashes waiting or running.
    pub fn new(inner: impl PasswordHasher + 'static, threads: usize, bound: usize) -> Self {
        let (jobs, queue) = flume::unbounded::<Job>();
        for index in 0..threads.max(1) {
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
                tracing::warn!(%error, "cannot start a password hashing thread");
            }
        }
        Self {
            inner: Arc::new(inner),
            jobs,
            pending: Arc::new(AtomicUsize::new(0)),
            bound: bound.max(1),
        }
    }

    /// Threads for a machine: one core is left for everything else.
    pub fn threads_for_this_machine() -> usize {
        std::thread::available_parallelism().map_or(1, |cores| cores.get().saturating_sub(1).max(1))
    }

    /// Hashes waiting or running now.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    fn reserve(&self) -> Result<Place, QueueFull> {
        self.pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |pending| {
                (pending < self.bound).then_some(pending + 1)
            })
            .map(|_| Place(Arc::clone(&self.pending)))
            .map_err(|_| QueueFull)
    }

    /// Queues `work` on a hashing thread; the answer comes through the
    /// returned receiver (an error if the work panicked or the threads are
    /// gone). Refused at once when the queue is full.
    pub fn submit<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn PasswordHasher) -> T + Send + 'static,
    ) -> Result<tokio::sync::oneshot::Receiver<T>, QueueFull> {
        let place = self.reserve()?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let inner = Arc::clone(&self.inner);
        // Lines the work logs carry the request's id, on the hashing thread too.
        let span = tracing::Span::current();
        let job: Job = Box::new(move || {
            let value = span.in_scope(|| work(&*inner));
            // The place is free before the caller hears back, so a caller
            // that submits again right after its answer finds room.
            drop(place);
            let _ = reply.send(value);
        });
        // With no thread to take it, the job (and its place) is dropped
        // and the caller sees `None`.
        let _ = self.jobs.send(job);
        Ok(answer)
    }

    /// Like [`HashQueue::submit`], for callers that may block (the CLI):
    /// waits for the answer; hashes on the calling thread when the queue
    /// is full or has no thread, so it always answers.
    fn run_blocking<T: Send + 'static>(
        &self,
        work: impl Fn(&dyn PasswordHasher) -> T + Send + Sync + 'static,
    ) -> T {
        let work = Arc::new(work);
        let queued = Arc::clone(&work);
        if let Ok(place) = self.reserve() {
            let (reply, answer) = flume::bounded(1);
            let inner = Arc::clone(&self.inner);
            let job: Job = Box::new(move || {
                let value = queued(&*inner);
                drop(place);
                let _ = reply.send(value);
            });
            if self.jobs.send(job).is_ok()
                && let Ok(value) = answer.recv()
            {
                return value;
            }
        }
        work(&*self.inner)
    }
}

/// A [`PasswordHasher`] whose hashes run on a [`HashQueue`]'s threads, for
/// the synchronous use cases (the CLI's `createsuperuser`); requests go
/// through [`HashQueue::submit`] instead, which never blocks a thread.
pub struct BoundedHasher {
    queue: Arc<HashQueue>,
}

impl BoundedHasher {
    /// Hashes on `queue`'s threads.
    pub fn new(queue: Arc<HashQueue>) -> Self {
        Self { queue }
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

impl PasswordHasher for BoundedHasher {
    fn hash(&self, password: &str) -> String {
        let password = password.to_owned();
        self.queue.run_blocking(move |inner| inner.hash(&password))
    }

    fn verify(&self, password: &str, encoded: &str) -> PasswordCheck {
        let (password, encoded) = (password.to_owned(), encoded.to_owned());
        self.queue
            .run_blocking(move |inner| inner.verify(&password, &encoded))
    }

    fn burn(&self, password: &str) {
        let password = password.to_owned();
        self.queue.run_blocking(move |inner| inner.burn(&password));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[derive(Default)]
    struct Counting {
        running: AtomicUsize,
        most: AtomicUsize,
    }

    struct Shared(Arc<Counting>);

    impl PasswordHasher for Shared {
        fn hash(&self, _: &str) -> String {
            let now = self.0.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.0.most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            self.0.running.fetch_sub(1, Ordering::SeqCst);
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
        let hasher = BoundedHasher::new(Arc::new(HashQueue::new(Priority, 1, 8)));
        assert_eq!(hasher.hash("x"), format!("{HASHING_POLICY:?}"));
    }

    /// Reports the scheduling policy of the thread it runs on.
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
    fn never_more_than_the_threads_at_once() {
        let counts = Arc::new(Counting::default());
        let queue = Arc::new(HashQueue::new(Shared(Arc::clone(&counts)), 2, 64));
        let hasher = Arc::new(BoundedHasher::new(queue));
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
        assert_eq!(counts.most.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_frees_its_places() {
        let queue = HashQueue::new(Shared(Arc::new(Counting::default())), 1, 2);
        let first = queue
            .submit(|hasher| hasher.hash("a"))
            .expect("first place");
        let second = queue
            .submit(|hasher| hasher.hash("b"))
            .expect("second place");
        assert!(queue.submit(|hasher| hasher.hash("c")).is_err());
        assert_eq!(first.await.as_deref(), Ok(""));
        assert_eq!(second.await.as_deref(), Ok(""));
        assert_eq!(queue.pending(), 0);
        let again = queue.submit(|hasher| hasher.hash("d")).expect("room again");
        assert!(again.await.is_ok());
    }
}
