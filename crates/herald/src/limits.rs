//! The node's limits that are not a stream's own: the publish rate limit, what the open-file
//! limit lets the node hold, and how often noisy clients may reach the log.
//!
//! # Publish rate
//! `limits.publish_rate_per_s` requests per second per principal, with bursts of
//! `limits.publish_burst` (SPEC §5: 429 beyond it). One GCRA state (a single timestamp) per
//! principal, from the `governor` crate; states of principals that have been quiet long enough to
//! be back at a full burst are dropped by [`PublishRate::forget_idle`], called periodically, so
//! the map does not grow with every principal ever seen. The limit per stream count is in
//! [`Lifecycle`](crate::shutdown::Lifecycle).
//!
//! # Capacity
//! Every client connection holds a file descriptor, and so do the store's files, Redis and
//! Kubernetes connections and the runtime itself. [`Capacity::derive`] splits the process's
//! `RLIMIT_NOFILE` (raised to its hard limit at start by [`raise_open_file_limit`]) into a
//! reserve for everything that is not a client, a cap on client connections (the accept loop
//! answers 503 beyond it), and, below that cap, the default `limits.max_clients` (streams), so
//! that a node full of streams still has room for publishers and probes (SPEC §7).
//!
//! # Log rate
//! A client that misbehaves on purpose (HTTP/2 rapid reset, a flood of connections past the
//! limit) would otherwise write one log line per connection: megabytes a minute, paid for by the
//! node. `LogRate` lets one line per kind through per period and counts the rest, which the
//! next line reports.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
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

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit, and returns the soft limit now
/// in force (`None` where the platform has no such limit). Call it once at start, before the
/// hub is opened, so that [`Capacity::derive`] sees the raised limit.
///
/// # Errors
/// When the limit cannot be read or set.
pub fn raise_open_file_limit() -> std::io::Result<Option<u64>> {
    rlimit::increase_nofile_limit(u64::MAX)?;
    open_file_limit()
}

/// The soft `RLIMIT_NOFILE` in force; `None` where the platform has none (or it is unlimited).
///
/// # Errors
/// When the limit cannot be read.
pub fn open_file_limit() -> std::io::Result<Option<u64>> {
    #[cfg(unix)]
    {
        if rlimit::Resource::NOFILE.is_supported() {
            let (soft, _) = rlimit::Resource::NOFILE.get()?;
            return Ok(Some(soft).filter(|&soft| soft != rlimit::INFINITY));
        }
    }
    Ok(None)
}

/// What this node can hold at once, derived from its open-file limit (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// The soft `RLIMIT_NOFILE` it was derived from; `None`: no limit known.
    pub open_files: Option<u64>,
    /// Descriptors kept for everything that is not a client connection: the store's files,
    /// Redis and Kubernetes connections, the listener, the runtime, standard streams.
    pub reserve: u64,
    /// Client connections (streams and all others) held at once; the accept loop answers a
    /// connection beyond it with 503 and closes it.
    pub max_connections: usize,
    /// Streams held at once (`limits.max_clients` in force).
    pub max_clients: usize,
    /// The configured `limits.max_clients` when it was more than `max_connections` and was
    /// lowered to it.
    pub capped_from: Option<usize>,
}

impl Capacity {
    /// Streams when no open-file limit is known (and `limits.max_clients` is 0).
    pub const FALLBACK_MAX_CLIENTS: usize = 100_000;

    /// The capacity an open-file limit of `open_files` allows, with `configured` streams asked
    /// for (`limits.max_clients`; 0: derive it). With `open_files` = L:
    /// - `reserve` = L / 8, at least 64 and at most 1024, and never more than L / 2;
    /// - `max_connections` = L − `reserve`;
    /// - `max_clients` = `configured` when set, lowered to `max_connections` when above it
    ///   (`capped_from` says so); otherwise `max_connections` − H, where the headroom H kept for
    ///   publishers, probes and scrapers is a tenth of `max_connections`, and at least 16 (or
    ///   half of `max_connections` when that is less).
    ///
    /// A limit of 20,000 gives a reserve of 1,024, 18,976 connections and 17,079 streams; 256
    /// gives 64, 192 and 173.
    pub fn derive(open_files: Option<u64>, configured: usize) -> Self {
        let Some(limit) = open_files else {
            let max_clients = if configured == 0 { Self::FALLBACK_MAX_CLIENTS } else { configured };
            return Self { open_files, reserve: 0, max_connections: usize::MAX, max_clients, capped_from: None };
        };
        let reserve = (limit / 8).clamp(64, 1024).min(limit / 2);
        let max_connections = usize::try_from(limit - reserve).unwrap_or(usize::MAX);
        let headroom = (max_connections / 10).max(16.min(max_connections / 2));
        let (max_clients, capped_from) = match configured {
            0 => (max_connections - headroom, None),
            asked if asked > max_connections => (max_connections, Some(asked)),
            asked => (asked, None),
        };
        Self { open_files, reserve, max_connections, max_clients, capped_from }
    }
}

/// At most one log line per kind per period, and a count of the ones held back (see the module
/// docs). Kinds are small indexes, below `KINDS`, that the caller gives meaning to.
#[derive(Debug)]
pub(crate) struct LogRate<const KINDS: usize> {
    period: Duration,
    kinds: Mutex<[Held; KINDS]>,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    /// When a line of this kind was last let through.
    last: Option<tokio::time::Instant>,
    /// Lines of this kind held back since.
    count: u64,
}

impl<const KINDS: usize> LogRate<KINDS> {
    /// One line per kind per `period`.
    pub(crate) const fn new(period: Duration) -> Self {
        Self { period, kinds: Mutex::new([Held { last: None, count: 0 }; KINDS]) }
    }

    /// Whether a line of `kind` may be written now: `Some(n)`, with the `n` lines of that kind
    /// held back since the last one; `None` when this one is to be held back (and counted).
    pub(crate) fn admit(&self, kind: usize) -> Option<u64> {
        let now = tokio::time::Instant::now();
        // A panic while the lock was held cannot leave a count half-written: take it anyway.
        let mut kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        let held = kinds.get_mut(kind)?;
        if held.last.is_some_and(|last| now.duration_since(last) < self.period) {
            held.count += 1;
            return None;
        }
        held.last = Some(now);
        Some(std::mem::take(&mut held.count))
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

    #[test]
    fn capacity_fits_the_open_file_limit() {
        for limit in [16, 64, 256, 1024, 20_000, 1 << 20] {
            let c = Capacity::derive(Some(limit), 0);
            assert!(c.reserve >= 8 && c.reserve <= 1024, "{c:?}");
            assert_eq!(c.max_connections as u64 + c.reserve, limit, "{c:?}");
            assert!(c.max_clients > 0 && c.max_clients < c.max_connections, "{c:?}");
            assert_eq!(c.capped_from, None);
        }
        let c = Capacity::derive(Some(256), 0);
        assert_eq!((c.reserve, c.max_connections, c.max_clients), (64, 192, 173));
        let c = Capacity::derive(Some(20_000), 0);
        assert_eq!((c.reserve, c.max_connections, c.max_clients), (1024, 18_976, 17_079));
    }

    #[test]
    fn an_explicit_max_clients_is_kept_or_capped() {
        assert_eq!(Capacity::derive(Some(256), 10).max_clients, 10);
        let c = Capacity::derive(Some(256), 100_000);
        assert_eq!((c.max_clients, c.capped_from), (c.max_connections, Some(100_000)));
        let unknown = Capacity::derive(None, 0);
        assert_eq!((unknown.max_clients, unknown.max_connections), (Capacity::FALLBACK_MAX_CLIENTS, usize::MAX));
        assert_eq!(Capacity::derive(None, 7).max_clients, 7);
    }

    #[tokio::test(start_paused = true)]
    async fn log_rate_lets_one_line_per_kind_per_period_and_counts_the_rest() {
        let rate = LogRate::<2>::new(Duration::from_secs(10));
        assert_eq!(rate.admit(0), Some(0));
        for _ in 0..5 {
            assert_eq!(rate.admit(0), None);
        }
        assert_eq!(rate.admit(1), Some(0), "kinds are counted apart");
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert_eq!(rate.admit(0), None);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(rate.admit(0), Some(6), "the next line reports what was held back");
        assert_eq!(rate.admit(0), None);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(rate.admit(0), Some(1));
        assert_eq!(rate.admit(1), Some(0));
        assert_eq!(rate.admit(2), None, "an unknown kind is never logged");
    }
}
