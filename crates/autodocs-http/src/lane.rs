//! The database lane: a few long-lived threads that run the short, blocking
//! use cases (a handful of indexed queries each) off the event loop.
//!
//! `web::block` hands each call to tokio's blocking pool, which grows a
//! thread per call in flight: under 32 concurrent requests that is 32
//! threads taking turns on 2 cores, and the profile was dominated by the
//! kernel switching between them. Here a fixed set of threads drains one
//! queue: a busy thread takes the next call without sleeping, and its
//! connection and caches stay warm. Work that may run for seconds (hashing a
//! file, PBKDF2) stays on `web::block`, so it never holds the lane.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread;

use crate::error::ApiError;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed pool of threads for short blocking calls.
#[derive(Clone)]
pub struct DatabaseLane {
    queue: flume::Sender<Job>,
}

impl DatabaseLane {
    /// Starts `threads` threads (at least one). They stop once every handle
    /// to the lane is dropped and the queue is drained.
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let (queue, jobs) = flume::unbounded::<Job>();
        for index in 0..threads.max(1) {
            let jobs = jobs.clone();
            thread::Builder::new()
                .name(format!("autodocs-db-{index}"))
                .spawn(move || {
                    while let Ok(job) = jobs.recv() {
                        // A panicking call loses only its own answer (its
                        // caller sees a 500); the thread goes on.
                        let _ = catch_unwind(AssertUnwindSafe(job));
                    }
                })?;
        }
        Ok(Self { queue })
    }

    /// Calls waiting for a thread (the metrics' queue length).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Runs `work` on the lane and waits for its result without blocking
    /// the event loop.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        // Lines the work logs carry the request's id, on the lane's thread too.
        let span = tracing::Span::current();
        let job: Job = Box::new(move || {
            let value = span.in_scope(work);
            // The caller may have gone (client disconnected): nothing to tell.
            let _ = reply.send(value);
        });
        self.queue
            .send(job)
            .map_err(|_| ApiError::Internal("database lane stopped".into()))?;
        answer
            .await
            .map_err(|_| ApiError::Internal("database call failed".into()))
    }
}

/// Runs blocking `work` on actix's blocking pool (file I/O, hashing, a
/// one-off database call) in the caller's span, so the lines it logs carry
/// the request's id.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, actix_web::error::BlockingError> {
    let span = tracing::Span::current();
    actix_web::web::block(move || span.in_scope(work)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn runs_work_and_returns_its_result() {
        let lane = DatabaseLane::start(2).expect("lane");
        let results = futures_util::future::join_all((0..50).map(|n| {
            let lane = lane.clone();
            async move { lane.run(move || n * 2).await.expect("result") }
        }))
        .await;
        assert_eq!(results, (0..50).map(|n| n * 2).collect::<Vec<_>>());
    }

    #[actix_web::test]
    async fn work_runs_in_the_callers_span() {
        use tracing::Instrument as _;
        // Global: the lane's threads must see the same subscriber.
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
        let lane = DatabaseLane::start(1).expect("lane");
        let span = tracing::info_span!("request", request_id = "r-1");
        let expected = span.id();
        assert!(expected.is_some(), "a subscriber records the span");
        let seen = async { lane.run(|| tracing::Span::current().id()).await }
            .instrument(span)
            .await
            .expect("result");
        assert_eq!(seen, expected);
        // Outside any request, no span is carried over.
        assert_eq!(
            lane.run(|| tracing::Span::current().id()).await.ok(),
            Some(None)
        );
    }

    #[actix_web::test]
    async fn blocking_work_runs_in_the_callers_span() {
        use tracing::Instrument as _;
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
        let span = tracing::info_span!("request", request_id = "r-2");
        let expected = span.id();
        assert!(expected.is_some(), "a subscriber records the span");
        let seen = async { blocking(|| tracing::Span::current().id()).await }
            .instrument(span)
            .await
            .expect("result");
        assert_eq!(seen, expected);
    }

    #[actix_web::test]
    async fn a_panicking_call_is_an_error_and_the_lane_survives() {
        let lane = DatabaseLane::start(1).expect("lane");
        let failed = lane.run(|| -> u8 { panic!("boom") }).await;
        assert!(matches!(failed, Err(ApiError::Internal(_))));
        assert_eq!(lane.run(|| 7).await.expect("after panic"), 7);
    }
}
