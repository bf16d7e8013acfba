//! The node's lifecycle: starting → ready → draining, and what each stream needs to end itself.
//!
//! Shutdown runs in two phases (like vector's): *begin* turns `/ready` to 503 `draining`, admits
//! no new stream and cancels [`Lifecycle::streams`], so every open stream writes
//! `event: herald.shutdown` and ends; *force* comes at `shutdown_timeout_s`, when whatever is left
//! is dropped. [`Lifecycle::tracker`] counts open streams, so the node knows when they are all gone.
//!
//! A stream request that arrives while draining is not admitted, yet not refused with an error
//! either: it is answered 200 with `retry:` and `herald.shutdown` at once (SPEC §8, `http::events`),
//! because a browser's `EventSource` gives up for good after any answer that is not 200, and
//! retries after the end of a stream or a refused connection (once the listener has closed).
//!
//! Admission: [`Lifecycle::admit`] counts each new stream against `limits.max_clients` (one
//! atomic) and, when `limits.max_clients_per_principal` is set, against its principal's count
//! (a map under a mutex, held only for the increment). Both checks and their increments happen
//! together, so concurrent openings can never overshoot either limit. An [`Admission`] gives
//! back exactly what was counted when it is dropped, whoever holds it then: the stream, or the
//! [`Router`](crate::hub::Router), which drops a lagging or stalled stream's admission at once
//! even while hyper still holds the stream's body (see `hub`'s `## Closing`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tokio_util::task::{task_tracker::TaskTrackerToken, TaskTracker};

/// Where the node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not serving yet (the log is opening, sources syncing).
    Starting,
    /// Serving.
    Ready,
    /// Shutting down: no new streams (a stream request is told `herald.shutdown` at once).
    Draining,
}

impl Phase {
    /// The `status` reported by `/ready`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Draining => "draining",
        }
    }
}

/// Shared lifecycle state of one node.
#[derive(Debug, Default)]
pub struct Lifecycle {
    phase: AtomicU8,
    streams: CancellationToken,
    tracker: TaskTracker,
    /// Shared with every [`Admission`], which uncounts itself when dropped.
    counts: Arc<Counts>,
    /// Sources that must sync before `/ready` says ready (see [`crate::sources::Gates`]).
    pub gates: crate::sources::Gates,
}

/// What admissions count.
#[derive(Debug, Default)]
struct Counts {
    clients: AtomicUsize,
    /// Open streams per principal, only while `max_clients_per_principal` is set; a principal
    /// with none left has no entry.
    per_principal: Mutex<HashMap<Arc<str>, usize>>,
}

impl Counts {
    fn per_principal(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, usize>> {
        self.per_principal.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why [`Lifecycle::admit`] refused a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `limits.max_clients` streams are open.
    #[error("this node serves at most {0} streams")]
    TooManyClients(usize),
    /// The principal holds `limits.max_clients_per_principal` streams.
    #[error("this principal may hold at most {0} streams")]
    TooManyForPrincipal(usize),
}

/// An admitted stream's place, given back when dropped.
#[derive(Debug)]
pub struct Admission {
    _tracked: TaskTrackerToken,
    /// The principal whose count includes this stream, if counted.
    principal: Option<Arc<str>>,
    counts: Arc<Counts>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(principal) = &self.principal {
            let mut counts = self.counts.per_principal();
            if let Some(count) = counts.get_mut(principal) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(principal);
                }
            }
        }
        self.counts.clients.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Lifecycle {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Starting,
            1 => Phase::Ready,
            _ => Phase::Draining,
        }
    }

    /// Marks the node ready, unless it is already draining.
    pub fn set_ready(&self) {
        let _ = self.phase.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Begins the drain: `/ready` turns 503, new streams are not admitted, open streams end.
    pub fn begin_drain(&self) {
        self.phase.store(2, Ordering::Release);
        self.streams.cancel();
        self.tracker.close();
    }

    /// Cancelled when streams must end.
    pub fn streams(&self) -> &CancellationToken {
        &self.streams
    }

    /// Resolves once every stream has ended (after [`Lifecycle::begin_drain`]).
    pub async fn streams_ended(&self) {
        self.tracker.wait().await;
    }

    /// Counts a new stream if fewer than `max` are open on the node and, unless `per_principal`
    /// is 0, fewer than `per_principal` of `principal`'s. The stream keeps the admission while
    /// open; dropping it uncounts the stream.
    ///
    /// # Errors
    /// [`Refusal`] says which limit was reached; nothing was counted.
    pub fn admit(&self, max: usize, principal: &Arc<str>, per_principal: usize) -> Result<Admission, Refusal> {
        let counts = &self.counts;
        if counts.clients.fetch_add(1, Ordering::AcqRel) >= max {
            counts.clients.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::TooManyClients(max));
        }
        let principal = if per_principal == 0 {
            None
        } else {
            let mut by_principal = counts.per_principal();
            let count = by_principal.entry(principal.clone()).or_insert(0);
            if *count >= per_principal {
                drop(by_principal);
                counts.clients.fetch_sub(1, Ordering::AcqRel);
                return Err(Refusal::TooManyForPrincipal(per_principal));
            }
            *count += 1;
            Some(principal.clone())
        };
        Ok(Admission { _tracked: self.tracker.token(), principal, counts: counts.clone() })
    }

    /// Uncounts a stream admitted by [`Lifecycle::admit`]: the same as dropping `admission`,
    /// for callers that name the moment.
    pub fn release(&self, admission: Admission) {
        drop(admission);
    }

    /// Open streams of the principal with this limit key (counted only while
    /// `max_clients_per_principal` is set).
    pub fn principal_clients(&self, principal: &str) -> usize {
        self.counts.per_principal().get(principal).copied().unwrap_or(0)
    }

    /// Open streams on this node.
    pub fn clients(&self) -> usize {
        self.counts.clients.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_counts_globally_and_per_principal() {
        let life = Lifecycle::default();
        let (a, b): (Arc<str>, Arc<str>) = ("sub:a".into(), "sub:b".into());
        let a1 = life.admit(3, &a, 2).unwrap();
        let a2 = life.admit(3, &a, 2).unwrap();
        assert_eq!(life.admit(3, &a, 2).unwrap_err(), Refusal::TooManyForPrincipal(2));
        assert_eq!(life.clients(), 2, "a refusal counts nothing");
        let b1 = life.admit(3, &b, 2).unwrap();
        assert_eq!(life.admit(3, &b, 2).unwrap_err(), Refusal::TooManyClients(3));
        assert_eq!(life.principal_clients(&b), 1);
        life.release(a1);
        assert_eq!(life.principal_clients(&a), 1);
        life.admit(3, &a, 2).map(|x| life.release(x)).unwrap();
        // Dropping an admission is releasing it.
        drop(a2);
        life.release(b1);
        assert_eq!((life.clients(), life.counts.per_principal().len()), (0, 0));
        // Without a per-principal limit nothing is kept per principal.
        let x = life.admit(3, &a, 0).unwrap();
        assert_eq!(life.principal_clients(&a), 0);
        life.release(x);
    }
}
