//! Fixed-window counters shared by every process that serves the API: the
//! per-address throttle of the anonymous auth endpoints and the lockouts
//! after failed logins and password changes.
//!
//! A limit enforced in each process separately is multiplied by the number
//! of processes behind the load balancer; the counters therefore live where
//! every process sees them ([`RateWindows`]: a table on PostgreSQL).
//! [`InProcessRateWindows`] keeps them in one process's memory, which is all
//! a single-process deployment (SQLite) or a test needs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ports::{RateWindows, RepoResult};

/// What a window is counted for and of whom: `auth:203.0.113.9`,
/// `login:user:12`, `login:name:<identity key>`, `password:12`.
///
/// Never a secret: keys are stored as they are (in a table on PostgreSQL).
/// At most [`RateKey::MAX_BYTES`] bytes, so a client cannot make the store
/// keep long texts: a longer subject is cut at a character boundary (two
/// names sharing their first 200 bytes then share a budget, which only
/// refuses sooner).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RateKey(String);

impl RateKey {
    /// The longest key kept, in bytes.
    pub const MAX_BYTES: usize = 200;

    /// The key of `subject` for `purpose` (`purpose:subject`).
    pub fn new(purpose: &str, subject: &str) -> Self {
        let mut key = format!("{purpose}:{subject}");
        if key.len() > Self::MAX_BYTES {
            let mut end = Self::MAX_BYTES;
            while !key.is_char_boundary(end) {
                end -= 1;
            }
            key.truncate(end);
        }
        Self(key)
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Names one window of one key, so that giving a hit back
/// ([`RateWindows::give_back`]) touches only the window that counted it:
/// once a new window has started, an old attempt has nothing to give back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WindowStamp(i64);

impl WindowStamp {
    /// A stamp from the adapter's own numbering (when the window ends, a
    /// generation number: whatever tells its windows of a key apart).
    pub fn new(value: i64) -> Self {
        Self(value)
    }

    /// The adapter's number.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// What counting one hit on a key found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowHit {
    /// The hit was counted: it is the `count`th of the window `stamp`.
    Counted {
        /// Hits counted in this window, this one included.
        count: u32,
        /// The window that counted it.
        stamp: WindowStamp,
    },
    /// The window already holds `limit` hits; nothing was counted. A new
    /// window starts in `retry_after`.
    Refused {
        /// Until the window ends (at least one second, as `Retry-After`
        /// is given in whole seconds and 0 would invite a retry storm).
        retry_after: Duration,
    },
}

/// Keys remembered before ended windows are forgotten.
const PRUNE_AT: usize = 10_000;

/// [`RateWindows`] in this process's memory: a map of key to window,
/// behind a mutex held only while one key is counted.
///
/// Windows that ended are forgotten once the map holds 10,000 keys (and on
/// [`RateWindows::prune`]), so the map stays as small as the traffic of
/// the longest window.
#[derive(Debug, Default)]
pub struct InProcessRateWindows {
    state: Mutex<Windows>,
}

#[derive(Debug, Default)]
struct Windows {
    by_key: HashMap<RateKey, Window>,
    /// The stamp of the next window started, so every window of this
    /// process has its own.
    next_stamp: i64,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    ends: Instant,
    count: u32,
    stamp: WindowStamp,
}

impl InProcessRateWindows {
    /// An empty set of windows.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Windows> {
        // A panic elsewhere cannot leave a half-counted window behind: the
        // map is changed by single assignments.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl RateWindows for InProcessRateWindows {
    fn hit(&self, key: &RateKey, limit: u32, window: Duration) -> RepoResult<WindowHit> {
        let now = Instant::now();
        let mut state = self.lock();
        if state.by_key.len() >= PRUNE_AT {
            state.by_key.retain(|_, kept| kept.ends > now);
        }
        let running = state
            .by_key
            .get(key)
            .copied()
            .filter(|running| running.ends > now);
        let counted = match running {
            Some(running) if running.count >= limit => {
                let retry_after = running.ends.saturating_duration_since(now);
                return Ok(WindowHit::Refused {
                    retry_after: retry_after.max(Duration::from_secs(1)),
                });
            }
            Some(running) => Window {
                count: running.count + 1,
                ..running
            },
            None => {
                state.next_stamp += 1;
                Window {
                    ends: now + window,
                    count: 1,
                    stamp: WindowStamp(state.next_stamp),
                }
            }
        };
        state.by_key.insert(key.clone(), counted);
        Ok(WindowHit::Counted {
            count: counted.count,
            stamp: counted.stamp,
        })
    }

    fn give_back(&self, key: &RateKey, stamp: WindowStamp) -> RepoResult<()> {
        let mut state = self.lock();
        if let Some(window) = state.by_key.get_mut(key)
            && window.stamp == stamp
        {
            window.count = window.count.saturating_sub(1);
        }
        Ok(())
    }

    fn prune(&self) -> RepoResult<u64> {
        let now = Instant::now();
        let mut state = self.lock();
        let before = state.by_key.len();
        state.by_key.retain(|_, kept| kept.ends > now);
        Ok(u64::try_from(before - state.by_key.len()).unwrap_or(u64::MAX))
    }

    fn blocks(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_capped_at_a_character_boundary() {
        assert_eq!(RateKey::new("auth", "127.0.0.1").as_str(), "auth:127.0.0.1");
        let long = RateKey::new("login", &"é".repeat(300));
        assert!(long.as_str().len() <= RateKey::MAX_BYTES);
        assert!(long.as_str().starts_with("login:é"));
    }
}
