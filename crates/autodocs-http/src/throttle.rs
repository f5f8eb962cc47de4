//! Rate limits for the anonymous auth endpoints, per client address, and
//! the per-key caps and failure windows that keep one client from
//! starving the others.
//!
//! A fixed one-minute window per IP, as DRF's `AnonRateThrottle` counts;
//! over the rate the answer is 429 with `Retry-After`.
//!
//! The throttle and the failure windows count through the
//! [`RateWindows`] port, which on PostgreSQL is a table every `serve`
//! process shares: N processes behind a load balancer enforce one limit,
//! not N. [`ConcurrencyCap`] bounds work in flight in this process and
//! stays here.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autodocs_domain::ports::{RateWindows, RepoResult};
use autodocs_domain::rate_window::{RateKey, WindowHit, WindowStamp};
use autodocs_domain::{Error, RepoError};

use crate::error::ApiError;
use crate::lane::DatabaseLane;

const WINDOW: Duration = Duration::from_secs(60);

/// Runs `work` on the counters: on the database lane when they wait on
/// the database, inline when they are in this process (a mutex held for
/// a moment costs less than the hop to another thread).
async fn counting<T: Send + 'static>(
    windows: &Arc<dyn RateWindows>,
    lane: &DatabaseLane,
    work: impl FnOnce(&dyn RateWindows) -> RepoResult<T> + Send + 'static,
) -> Result<RepoResult<T>, ApiError> {
    if windows.blocks() {
        let windows = Arc::clone(windows);
        lane.run(move || work(&*windows)).await
    } else {
        Ok(work(&**windows))
    }
}

/// Whole seconds for `Retry-After`, rounded up (as DRF does), so a client
/// that waits as told finds the window over.
fn retry_seconds(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

/// Counts requests per address in one-minute windows.
pub struct Throttle {
    per_minute: Option<u32>,
    windows: Arc<dyn RateWindows>,
}

impl Throttle {
    /// Allows `per_minute` requests per address, counted in `windows`;
    /// `None` disables throttling.
    pub fn new(per_minute: Option<u32>, windows: Arc<dyn RateWindows>) -> Self {
        Self {
            per_minute,
            windows,
        }
    }

    /// Counts a request; [`ApiError::Throttled`] when the address is over
    /// its rate.
    ///
    /// When the counters cannot be reached (the database is down or its
    /// pool exhausted) the request goes on, with a warning: this throttle
    /// only spreads load, and what it protects holds without it. A login
    /// still needs its account's lockout window, which refuses when it
    /// cannot count (503), and the database the request itself needs is
    /// the one that failed, so the request most likely ends in a 503 of
    /// its own. Failing closed here would turn a database hiccup into
    /// refusals for every address, even on a register whose database call
    /// would have worked.
    pub async fn check(&self, lane: &DatabaseLane, address: IpAddr) -> Result<(), ApiError> {
        let Some(limit) = self.per_minute else {
            return Ok(());
        };
        let key = RateKey::new("auth", &address.to_string());
        match counting(&self.windows, lane, move |windows| {
            windows.hit(&key, limit, WINDOW)
        })
        .await?
        {
            Ok(WindowHit::Counted { .. }) => Ok(()),
            Ok(WindowHit::Refused { retry_after }) => {
                Err(ApiError::Throttled(retry_seconds(retry_after)))
            }
            Err(error) => {
                tracing::warn!(%error, "could not count a request against its address's rate; letting it through");
                Ok(())
            }
        }
    }
}

/// Caps how many of something one key (a user, a client address) may have
/// in progress at once; the slot is held by a [`Slot`] and given back when
/// it drops, however the work ends (done, failed, timed out, cancelled).
pub struct ConcurrencyCap<K: Eq + Hash + Clone> {
    per_key: usize,
    held: Arc<Mutex<HashMap<K, usize>>>,
    /// Woken whenever a slot is given back, for [`ConcurrencyCap::acquire`].
    released: Arc<tokio::sync::Notify>,
    /// Callers waiting in [`ConcurrencyCap::acquire`], per key.
    waiting: Arc<Mutex<HashMap<K, usize>>>,
}

impl<K: Eq + Hash + Clone> ConcurrencyCap<K> {
    /// Allows `per_key` slots per key at once.
    pub fn new(per_key: usize) -> Self {
        Self {
            per_key,
            held: Arc::new(Mutex::new(HashMap::new())),
            released: Arc::new(tokio::sync::Notify::new()),
            waiting: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Takes a slot for `key`, waiting (without a thread) up to `patience`
    /// for one to be given back when all are held; at most `max_waiting`
    /// callers of one key wait at once. `None` when the key has too many
    /// waiting already or the wait ran out: the caller refuses the request.
    ///
    /// A burst from one key is thus served in turn instead of refused,
    /// while it never holds more than `per_key` slots of what it shares
    /// with every other key.
    pub async fn acquire(&self, key: K, max_waiting: usize, patience: Duration) -> Option<Slot<K>> {
        if let Some(slot) = self.try_acquire(key.clone()) {
            return Some(slot);
        }
        let _waiter = {
            let mut waiting = lock(&self.waiting);
            let count = waiting.entry(key.clone()).or_insert(0);
            if *count >= max_waiting {
                return None;
            }
            *count += 1;
            Slot {
                key: Some(key.clone()),
                held: Arc::clone(&self.waiting),
                released: None,
            }
        };
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            // Registered before the retry, so a release between the two is not missed.
            let notified = self.released.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(slot) = self.try_acquire(key.clone()) {
                return Some(slot);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.try_acquire(key);
            }
        }
    }

    /// Takes a slot for `key`; `None` when its slots are all held.
    pub fn try_acquire(&self, key: K) -> Option<Slot<K>> {
        let mut held = lock(&self.held);
        let count = held.entry(key.clone()).or_insert(0);
        if *count >= self.per_key {
            return None;
        }
        *count += 1;
        Some(Slot {
            key: Some(key),
            held: Arc::clone(&self.held),
            released: Some(Arc::clone(&self.released)),
        })
    }

    /// Slots `key` holds now.
    pub fn held(&self, key: &K) -> usize {
        lock(&self.held).get(key).copied().unwrap_or(0)
    }
}

/// One slot of a [`ConcurrencyCap`], released on drop.
pub struct Slot<K: Eq + Hash + Clone> {
    key: Option<K>,
    held: Arc<Mutex<HashMap<K, usize>>>,
    /// Told when this slot is given back (callers may be waiting for it).
    released: Option<Arc<tokio::sync::Notify>>,
}

impl<K: Eq + Hash + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let mut held = lock(&self.held);
        if let Some(count) = held.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                // Forgetting idle keys keeps the map as small as the traffic.
                held.remove(&key);
            }
        }
        drop(held);
        if let Some(released) = &self.released {
            released.notify_waiters();
        }
    }
}

/// Counts failures per key (an account, a user) in a fixed window: after
/// `limit` failures the key is refused until its window ends, whatever
/// address the attempts come from, and whichever process they reach.
///
/// An attempt is counted when it starts ([`FailureWindow::attempt`]), so
/// concurrent attempts cannot slip past the limit before any of them
/// failed; one that succeeds gives its count back ([`Attempt::succeeded`]).
pub struct FailureWindow {
    purpose: &'static str,
    limit: Option<u32>,
    window: Duration,
    windows: Arc<dyn RateWindows>,
}

impl FailureWindow {
    /// Allows `limit` failures per `window`, counted in `windows` under
    /// keys `purpose:<key>`; `None` disables the limit.
    pub fn new(
        purpose: &'static str,
        limit: Option<u32>,
        window: Duration,
        windows: Arc<dyn RateWindows>,
    ) -> Self {
        Self {
            purpose,
            limit,
            window,
            windows,
        }
    }

    /// Starts an attempt for `key`; [`ApiError::Throttled`] when the key is
    /// over its limit.
    ///
    /// When the counters cannot be reached the attempt is refused with a
    /// 503 (`service_unavailable`, `Retry-After`): this is what stops
    /// password guessing against one account, so it fails closed rather
    /// than let guesses through uncounted while the database is in trouble
    /// (or while someone keeps its pool busy on purpose).
    pub async fn attempt(&self, lane: &DatabaseLane, key: &str) -> Result<Attempt, ApiError> {
        let Some(limit) = self.limit else {
            return Ok(Attempt { counted: None });
        };
        let key = RateKey::new(self.purpose, key);
        let window = self.window;
        let counted_key = key.clone();
        match counting(&self.windows, lane, move |windows| {
            windows.hit(&counted_key, limit, window)
        })
        .await?
        {
            Ok(WindowHit::Counted { stamp, .. }) => Ok(Attempt {
                counted: Some((key, stamp, Arc::clone(&self.windows))),
            }),
            Ok(WindowHit::Refused { retry_after }) => {
                Err(ApiError::Throttled(retry_seconds(retry_after)))
            }
            Err(error) => {
                tracing::warn!(%error, purpose = self.purpose, "could not count an attempt; refusing it");
                Err(ApiError::Domain(Error::Repository(RepoError::Unavailable(
                    error.to_string(),
                ))))
            }
        }
    }
}

/// An attempt counted by a [`FailureWindow`]; counted as a failure unless
/// [`Attempt::succeeded`] is called.
#[must_use = "an attempt dropped without `succeeded` counts as a failure"]
pub struct Attempt {
    counted: Option<(RateKey, WindowStamp, Arc<dyn RateWindows>)>,
}

impl Attempt {
    /// The attempt did not fail: its count is given back (in the same
    /// window only; a new window started without it). A give-back the
    /// counters refuse is logged and the attempt stays counted: the
    /// request itself went well, and a count too many only locks sooner.
    pub async fn succeeded(self, lane: &DatabaseLane) {
        let Some((key, stamp, windows)) = self.counted else {
            return;
        };
        let given = counting(&windows, lane, move |windows| {
            windows.give_back(&key, stamp)
        })
        .await;
        match given {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "could not give back a counted attempt"),
            Err(error) => tracing::warn!(%error, "could not give back a counted attempt"),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_of_one_key_waits_its_turn_within_bounds() {
        let cap = ConcurrencyCap::new(1);
        let held = cap.try_acquire("a").expect("the only slot");
        // Another key is never held up.
        assert!(cap.try_acquire("b").is_some());

        // One waiter gets the slot as soon as it is given back.
        let waiter = cap.acquire("a", 1, Duration::from_secs(5));
        let release = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(held);
        };
        let (slot, ()) = tokio::join!(waiter, release);
        let slot = slot.expect("the slot, once given back");

        // With the slot held: a second waiter past `max_waiting` is refused
        // at once, and a waiter whose patience runs out gets nothing.
        let first = cap.acquire("a", 1, Duration::from_millis(100));
        let second = cap.acquire("a", 1, Duration::from_secs(5));
        let (first, second) = tokio::join!(first, second);
        assert!(first.is_none(), "the wait ran out");
        assert!(second.is_none(), "too many waiting");
        drop(slot);
        assert!(cap.acquire("a", 0, Duration::ZERO).await.is_some());
    }

    /// Counters whose store is down: every call fails with `error`.
    struct Broken(fn() -> RepoError);

    impl RateWindows for Broken {
        fn hit(&self, _: &RateKey, _: u32, _: Duration) -> RepoResult<WindowHit> {
            Err((self.0)())
        }
        fn give_back(&self, _: &RateKey, _: WindowStamp) -> RepoResult<()> {
            Err((self.0)())
        }
        fn prune(&self) -> RepoResult<u64> {
            Err((self.0)())
        }
    }

    fn local() -> Arc<dyn RateWindows> {
        Arc::new(autodocs_domain::rate_window::InProcessRateWindows::new())
    }

    #[actix_web::test]
    async fn limits_each_address_separately() {
        let lane = DatabaseLane::start(1).expect("lane");
        let throttle = Throttle::new(Some(2), local());
        let one: IpAddr = [127, 0, 0, 1].into();
        let two: IpAddr = [127, 0, 0, 2].into();
        assert!(throttle.check(&lane, one).await.is_ok());
        assert!(throttle.check(&lane, one).await.is_ok());
        match throttle.check(&lane, one).await {
            Err(ApiError::Throttled(retry)) => assert!((1..=60).contains(&retry)),
            other => panic!("third request is throttled, got {other:?}"),
        }
        assert!(throttle.check(&lane, two).await.is_ok());
        let open = Throttle::new(None, local());
        for _ in 0..100 {
            assert!(open.check(&lane, one).await.is_ok());
        }
    }

    #[actix_web::test]
    async fn a_throttle_that_cannot_count_lets_requests_through() {
        let lane = DatabaseLane::start(1).expect("lane");
        let broken = Broken(|| RepoError::Unavailable("down".into()));
        let throttle = Throttle::new(Some(1), Arc::new(broken));
        assert!(throttle.check(&lane, [127, 0, 0, 1].into()).await.is_ok());
    }

    #[actix_web::test]
    async fn a_lockout_that_cannot_count_refuses_with_503() {
        let lane = DatabaseLane::start(1).expect("lane");
        let broken = Broken(|| RepoError::Other("boom".into()));
        let window =
            FailureWindow::new("login", Some(5), Duration::from_secs(900), Arc::new(broken));
        assert!(matches!(
            window.attempt(&lane, "user:1").await,
            Err(ApiError::Domain(Error::Repository(RepoError::Unavailable(
                _
            ))))
        ));
    }

    #[test]
    fn a_cap_holds_per_key_and_frees_on_drop() {
        let cap = ConcurrencyCap::new(2);
        let first = cap.try_acquire(1).expect("first slot");
        let second = cap.try_acquire(1).expect("second slot");
        assert!(cap.try_acquire(1).is_none());
        assert!(cap.try_acquire(2).is_some());
        drop(first);
        let third = cap.try_acquire(1).expect("a freed slot");
        drop((second, third));
        assert_eq!(cap.held(&1), 0);
    }

    #[actix_web::test]
    async fn failures_lock_a_key_and_successes_give_back() {
        let lane = DatabaseLane::start(1).expect("lane");
        let window = FailureWindow::new("login", Some(2), Duration::from_secs(900), local());
        let attempt = |key: &'static str| window.attempt(&lane, key);
        attempt("a").await.expect("one").succeeded(&lane).await;
        drop(attempt("a").await.expect("first failure"));
        drop(attempt("a").await.expect("second failure"));
        match attempt("a").await {
            Err(ApiError::Throttled(wait)) => assert!((1..=900).contains(&wait)),
            _ => panic!("locked"),
        }
        assert!(attempt("b").await.is_ok());
        let open = FailureWindow::new("login", None, Duration::from_secs(1), local());
        for _ in 0..100 {
            assert!(open.attempt(&lane, "a").await.is_ok());
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_seconds(Duration::from_millis(59_001)), 60);
        assert_eq!(retry_seconds(Duration::from_secs(3)), 3);
        assert_eq!(retry_seconds(Duration::ZERO), 1);
    }
}
