//! Bounds how many password hashes run at once.
//!
//! PBKDF2 at a million iterations holds a core for a quarter of a second;
//! a burst of logins on the shared blocking pool would take every core and
//! stall the database calls of all other requests. Hashing through this
//! decorator queues logins behind a few permits instead.

use std::sync::{Condvar, Mutex};

use autodocs_domain::ports::{PasswordCheck, PasswordHasher};

/// A [`PasswordHasher`] that lets at most `permits` hashes run at once.
pub struct BoundedHasher<H> {
    inner: H,
    permits: Mutex<usize>,
    released: Condvar,
}

impl<H: PasswordHasher> BoundedHasher<H> {
    /// Wraps `inner`, allowing `permits` (at least 1) concurrent hashes.
    pub fn new(inner: H, permits: usize) -> Self {
        Self {
            inner,
            permits: Mutex::new(permits.max(1)),
            released: Condvar::new(),
        }
    }

    /// The permits for a machine: one core is left for everything else.
    pub fn permits_for_this_machine() -> usize {
        std::thread::available_parallelism().map_or(1, |cores| cores.get().saturating_sub(1).max(1))
    }

    fn with_permit<T>(&self, work: impl FnOnce(&H) -> T) -> T {
        {
            let mut free = self
                .permits
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            while *free == 0 {
                free = self
                    .released
                    .wait(free)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            *free -= 1;
        }
        let _release = Release(self);
        work(&self.inner)
    }
}

/// Gives the permit back even if the hash panicked.
struct Release<'a, H>(&'a BoundedHasher<H>);

impl<H> Drop for Release<'_, H> {
    fn drop(&mut self) {
        let mut free = self
            .0
            .permits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *free += 1;
        self.0.released.notify_one();
    }
}

impl<H: PasswordHasher> PasswordHasher for BoundedHasher<H> {
    fn hash(&self, password: &str) -> String {
        self.with_permit(|inner| inner.hash(password))
    }

    fn verify(&self, password: &str, encoded: &str) -> PasswordCheck {
        self.with_permit(|inner| inner.verify(password, encoded))
    }

    fn burn(&self, password: &str) {
        self.with_permit(|inner| inner.burn(password));
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
