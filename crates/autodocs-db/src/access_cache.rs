//! The account check every authenticated request makes (is the user still
//! there, active, staff?), kept per process for at most a second so a
//! busy user's reads cost their own statement only.
//!
//! Correctness rests on two rules:
//! - this process's own changes to an account evict its entry once they
//!   commit, and a read that raced that change is not cached (the eviction
//!   moves an epoch the read started under);
//! - other processes' changes are seen once the entry is a second old: a
//!   deactivated user is refused everywhere within the second.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use autodocs_domain::user::AccountAccess;

/// How long an entry may answer for the database.
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(1);

/// Entries kept at most (a hostile client holding many tokens cannot grow
/// it): past it, stale entries go, then everything.
const CAPACITY: usize = 65_536;

#[derive(Debug, Default)]
pub(crate) struct AccessCache {
    entries: Mutex<HashMap<i64, (AccountAccess, Instant)>>,
    epoch: AtomicU64,
}

impl AccessCache {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<i64, (AccountAccess, Instant)>> {
        // The map holds plain values: a panic elsewhere left nothing half-done.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A fresh entry for `user`.
    pub(crate) fn get(&self, user: i64) -> Option<AccountAccess> {
        let entries = self.entries();
        entries
            .get(&user)
            .filter(|(_, at)| at.elapsed() < FRESH_FOR)
            .map(|(access, _)| *access)
    }

    /// Taken before reading from the database, given back to [`Self::put`].
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Keeps what a read found, unless an account changed since `epoch`.
    pub(crate) fn put(&self, user: i64, access: AccountAccess, epoch: u64) {
        let mut entries = self.entries();
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if entries.len() >= CAPACITY {
            entries.retain(|_, (_, at)| at.elapsed() < FRESH_FOR);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(user, (access, Instant::now()));
    }

    /// Forgets `users` after a committed change to their accounts.
    pub(crate) fn evict(&self, users: &[i64]) {
        if users.is_empty() {
            return;
        }
        let mut entries = self.entries();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for user in users {
            entries.remove(user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACTIVE: AccountAccess = AccountAccess {
        is_active: true,
        is_staff: false,
    };

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let cache = AccessCache::default();
        let epoch = cache.epoch();
        cache.evict(&[7]);
        cache.put(7, ACTIVE, epoch);
        assert_eq!(cache.get(7), None);
        cache.put(7, ACTIVE, cache.epoch());
        assert_eq!(cache.get(7), Some(ACTIVE));
        cache.evict(&[7]);
        assert_eq!(cache.get(7), None);
    }

    #[test]
    fn it_stays_bounded() {
        let cache = AccessCache::default();
        for user in 0..(CAPACITY as i64 + 10) {
            cache.put(user, ACTIVE, cache.epoch());
        }
        assert!(cache.entries().len() <= CAPACITY);
    }
}
