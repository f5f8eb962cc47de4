//! Rate limits for the anonymous auth endpoints, per client address.
//!
//! A fixed one-minute window per IP, as DRF's `AnonRateThrottle` counts;
//! over the rate the answer is 429 with `Retry-After`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
