//! The publish rate limit: `limits.publish_rate_per_s` requests per second per principal, with
//! bursts of `limits.publish_burst` (SPEC §5: 429 beyond it).
//!
//! One GCRA state (a single timestamp) per principal, from the `governor` crate; states of
//! principals that have been quiet long enough to be back at a full burst are dropped by
//! [`PublishRate::forget_idle`], called periodically, so the map does not grow with every
//! principal ever seen. The limit per stream count is in [`Lifecycle`](crate::shutdown::Lifecycle).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::config::Limits;

/// Per-principal publish rate limiting.
pub struct PublishRate {
    limiter: RateLimiter<Arc<str>, DefaultKeyedStateStore<Arc<str>>, DefaultClock>,
    clock: DefaultClock,
}

impl std::fmt::Debug for PublishRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishRate").field("principals", &self.limiter.len()).finish()
    }
}

impl PublishRate {
    /// The limiter `limits` asks for; `None` when publishing is not rate limited.
    pub fn new(limits: &Limits) -> Option<Self> {
        let rate = NonZeroU32::new(limits.publish_rate_per_s)?;
        let burst = NonZeroU32::new(limits.publish_burst).unwrap_or(rate);
        let quota = Quota::per_second(rate).allow_burst(burst);
        Some(Self { limiter: RateLimiter::keyed(quota), clock: DefaultClock::default() })
    }

    /// Takes one request from `key`'s allowance.
    ///
    /// # Errors
    /// How long until the next request would be allowed.
    pub fn check(&self, key: &Arc<str>) -> Result<(), Duration> {
        self.limiter.check_key(key).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Drops the state of principals back at a full burst (they would be re-created as such).
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_paces_each_key_separately() {
        let limits = Limits { publish_rate_per_s: 1, publish_burst: 3, ..Limits::default() };
        let rate = PublishRate::new(&limits).unwrap();
        let (a, b): (Arc<str>, Arc<str>) = ("sub:a".into(), "sub:b".into());
        for _ in 0..3 {
            rate.check(&a).unwrap();
        }
        let wait = rate.check(&a).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        rate.check(&b).unwrap();
        assert!(PublishRate::new(&Limits::default()).is_none(), "0 is unlimited");
    }
}
