//! Rate limits for the anonymous auth endpoints, per client address, and
//! the per-key caps and failure windows that keep one client from
//! starving the others.
//!
//! A fixed one-minute window per IP, as DRF's `AnonRateThrottle` counts;
//! over the rate the answer is 429 with `Retry-After`.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered before stale windows are pruned.
const PRUNE_AT: usize = 10_000;

/// Counts requests per address in one-minute windows.
pub struct Throttle {
    per_minute: Option<u32>,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Throttle {
    /// Allows `per_minute` requests per address; `None` disables throttling.
    pub fn new(per_minute: Option<u32>) -> Self {
        Self {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request; `Err(seconds)` when the address is over its rate
    /// and may try again in that many seconds.
    pub fn check(&self, address: IpAddr) -> Result<(), u64> {
        let Some(limit) = self.per_minute else {
            return Ok(());
        };
        let now = Instant::now();
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() >= PRUNE_AT {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let (start, count) = windows.entry(address).or_insert((now, 0));
        if now.duration_since(*start) >= WINDOW {
            *start = now;
            *count = 0;
        }
        if *count >= limit {
            let wait = WINDOW.saturating_sub(now.duration_since(*start));
            return Err(wait.as_secs().max(1));
        }
        *count += 1;
        Ok(())
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
/// address the attempts come from.
///
/// An attempt is counted when it starts ([`FailureWindow::attempt`]), so
/// concurrent attempts cannot slip past the limit before any of them
/// failed; one that succeeds gives its count back ([`Attempt::succeeded`]).
pub struct FailureWindow<K: Eq + Hash + Clone> {
    limit: Option<u32>,
    window: Duration,
    counts: Counts<K>,
}

impl<K: Eq + Hash + Clone> FailureWindow<K> {
    /// Allows `limit` failures per `window`; `None` disables the limit.
    pub fn new(limit: Option<u32>, window: Duration) -> Self {
        Self {
            limit,
            window,
            counts: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Starts an attempt for `key`; `Err(seconds)` when the key is over its
    /// limit and may try again in that many seconds.
    pub fn attempt(&self, key: K) -> Result<Attempt<K>, u64> {
        let Some(limit) = self.limit else {
            return Ok(Attempt {
                key: None,
                owner: None,
            });
        };
        let now = Instant::now();
        let mut counts = lock(&self.counts);
        if counts.len() >= PRUNE_AT {
            let window = self.window;
            counts.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let (start, count) = counts.entry(key.clone()).or_insert((now, 0));
        if now.duration_since(*start) >= self.window {
            *start = now;
            *count = 0;
        }
        if *count >= limit {
            let wait = self.window.saturating_sub(now.duration_since(*start));
            return Err(wait.as_secs().max(1));
        }
        *count += 1;
        Ok(Attempt {
            key: Some((key, *start)),
            owner: Some(Arc::clone(&self.counts)),
        })
    }
}

/// Failures per key: when the window of the key started, and how many.
type Counts<K> = Arc<Mutex<HashMap<K, (Instant, u32)>>>;

/// An attempt counted by a [`FailureWindow`]; counted as a failure unless
/// [`Attempt::succeeded`] is called.
pub struct Attempt<K: Eq + Hash + Clone> {
    key: Option<(K, Instant)>,
    owner: Option<Counts<K>>,
}

impl<K: Eq + Hash + Clone> Attempt<K> {
    /// The attempt did not fail: its count is given back (in the same
    /// window only; a new window started without it).
    pub fn succeeded(mut self) {
        if let (Some((key, started)), Some(owner)) = (self.key.take(), self.owner.take()) {
            let mut counts = lock(&owner);
            if let Some((start, count)) = counts.get_mut(&key)
                && *start == started
            {
                *count = count.saturating_sub(1);
            }
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

    #[test]
    fn limits_each_address_separately() {
        let throttle = Throttle::new(Some(2));
        let one: IpAddr = [127, 0, 0, 1].into();
        let two: IpAddr = [127, 0, 0, 2].into();
        assert!(throttle.check(one).is_ok());
        assert!(throttle.check(one).is_ok());
        let retry = throttle.check(one).expect_err("third request is throttled");
        assert!((1..=60).contains(&retry));
        assert!(throttle.check(two).is_ok());
        let open = Throttle::new(None);
        assert!((0..100).all(|_| open.check(one).is_ok()));
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

    #[test]
    fn failures_lock_a_key_and_successes_give_back() {
        let window = FailureWindow::new(Some(2), Duration::from_secs(900));
        window.attempt("a").expect("one").succeeded();
        drop(window.attempt("a").expect("first failure"));
        drop(window.attempt("a").expect("second failure"));
        let wait = window.attempt("a").err().expect("locked");
        assert!((1..=900).contains(&wait));
        assert!(window.attempt("b").is_ok());
        let open = FailureWindow::new(None, Duration::from_secs(1));
        assert!((0..100).all(|_| open.attempt("a").is_ok()));
    }
}
