//! The behaviours of the [`RateWindows`] port, one function each, run by
//! [`rate_windows_conformance!`](crate::rate_windows_conformance) against
//! every adapter (in process, and the PostgreSQL table).
//!
//! Windows that must end during a test are a few hundred milliseconds
//! long, and the test sleeps well past them: the assertions never depend
//! on how fast anything runs.

use std::time::Duration;

use autodocs_domain::ports::RateWindows;
use autodocs_domain::rate_window::{RateKey, WindowHit, WindowStamp};

const MINUTE: Duration = Duration::from_secs(60);
/// A window that ends during the test ...
const SHORT: Duration = Duration::from_millis(150);
/// ... and a wait that outlasts it by far.
const PAST_SHORT: Duration = Duration::from_millis(400);

fn key(name: &str) -> RateKey {
    RateKey::new("test", name)
}

/// The count and stamp of a hit that must be counted.
fn counted(
    windows: &dyn RateWindows,
    name: &str,
    limit: u32,
    window: Duration,
) -> (u32, WindowStamp) {
    match windows.hit(&key(name), limit, window).expect("hit") {
        WindowHit::Counted { count, stamp } => (count, stamp),
        WindowHit::Refused { retry_after } => {
            panic!("{name}: refused (retry after {retry_after:?}), expected counted")
        }
    }
}

/// The wait of a hit that must be refused.
fn refused(windows: &dyn RateWindows, name: &str, limit: u32, window: Duration) -> Duration {
    match windows.hit(&key(name), limit, window).expect("hit") {
        WindowHit::Refused { retry_after } => retry_after,
        WindowHit::Counted { count, .. } => panic!("{name}: counted as {count}, expected refused"),
    }
}

/// Hits count up to the limit within one window; the next is refused with
/// the time left (at least a second, at most the window), and counts
/// nothing; every key has its own window.
pub fn rate_windows_count_up_to_the_limit_then_refuse(windows: &dyn RateWindows) {
    let (first, stamp) = counted(windows, "a", 3, MINUTE);
    assert_eq!(first, 1);
    assert_eq!(counted(windows, "a", 3, MINUTE), (2, stamp));
    assert_eq!(counted(windows, "a", 3, MINUTE), (3, stamp));
    for _ in 0..3 {
        let wait = refused(windows, "a", 3, MINUTE);
        assert!(
            wait >= Duration::from_secs(1) && wait <= MINUTE,
            "retry after {wait:?}"
        );
    }
    // A higher limit on the same window counts on from 3: refusals added nothing.
    assert_eq!(counted(windows, "a", 4, MINUTE), (4, stamp));
    assert_eq!(counted(windows, "b", 3, MINUTE).0, 1);
}

/// A hit given back frees its place in the window that counted it, and
/// only there: a stamp of another window changes nothing, and a count never
/// goes below zero.
pub fn rate_windows_give_back_in_the_same_window_only(windows: &dyn RateWindows) {
    let (_, stamp) = counted(windows, "a", 2, MINUTE);
    counted(windows, "a", 2, MINUTE);
    refused(windows, "a", 2, MINUTE);
    windows
        .give_back(&key("a"), WindowStamp::new(stamp.get().wrapping_sub(1)))
        .expect("give back to another window");
    refused(windows, "a", 2, MINUTE);
    windows.give_back(&key("a"), stamp).expect("give back");
    assert_eq!(counted(windows, "a", 2, MINUTE), (2, stamp));

    // A window that ended has nothing to give back to.
    let (_, old) = counted(windows, "b", 2, SHORT);
    std::thread::sleep(PAST_SHORT);
    let (count, new) = counted(windows, "b", 2, MINUTE);
    assert_eq!(count, 1);
    assert_ne!(new, old);
    windows.give_back(&key("b"), old).expect("give back");
    assert_eq!(counted(windows, "b", 2, MINUTE), (2, new));

    // Giving back more than was counted stops at zero.
    let (_, stamp) = counted(windows, "c", 5, MINUTE);
    windows.give_back(&key("c"), stamp).expect("give back");
    windows
        .give_back(&key("c"), stamp)
        .expect("give back again");
    windows
        .give_back(&key("never hit"), stamp)
        .expect("give back to no window");
    assert_eq!(counted(windows, "c", 5, MINUTE), (1, stamp));
}

/// Once its window ends a key starts afresh, with a new window; refused
/// hits did not make the window longer.
pub fn rate_windows_start_afresh_once_ended(windows: &dyn RateWindows) {
    let (_, first) = counted(windows, "a", 1, SHORT);
    let wait = refused(windows, "a", 1, SHORT);
    assert!(wait <= Duration::from_secs(1), "retry after {wait:?}");
    std::thread::sleep(PAST_SHORT);
    let (count, second) = counted(windows, "a", 1, MINUTE);
    assert_eq!(count, 1);
    assert_ne!(second, first);
    refused(windows, "a", 1, MINUTE);
}

/// Pruning forgets the windows that ended and keeps the running ones.
pub fn rate_windows_prune_forgets_only_ended_windows(windows: &dyn RateWindows) {
    counted(windows, "ended", 1, SHORT);
    counted(windows, "running", 1, MINUTE);
    std::thread::sleep(PAST_SHORT);
    assert_eq!(windows.prune().expect("prune"), 1);
    assert_eq!(windows.prune().expect("prune again"), 0);
    refused(windows, "running", 1, MINUTE);
    assert_eq!(counted(windows, "ended", 1, MINUTE).0, 1);
}

/// Hits from many threads at once on one key are each counted once: the
/// limit lets exactly `limit` of them through.
pub fn rate_windows_count_concurrent_hits_once_each(windows: &dyn RateWindows) {
    const THREADS: usize = 4;
    const HITS: usize = 10;
    const LIMIT: u32 = 25;
    let outcomes: Vec<WindowHit> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                scope.spawn(|| {
                    (0..HITS)
                        .map(|_| windows.hit(&key("busy"), LIMIT, MINUTE).expect("hit"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("thread"))
            .collect()
    });
    let mut counts: Vec<u32> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            WindowHit::Counted { count, .. } => Some(*count),
            WindowHit::Refused { .. } => None,
        })
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, (1..=LIMIT).collect::<Vec<_>>());
    assert_eq!(outcomes.len() - counts.len(), THREADS * HITS - 25);
}
