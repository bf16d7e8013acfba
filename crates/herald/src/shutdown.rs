//! The node's lifecycle: starting → ready → draining, and what each stream needs to end itself.
//!
//! Shutdown runs in two phases (like vector's): *begin* turns `/ready` to 503 `draining`, refuses
//! new streams and cancels [`Lifecycle::streams`], so every open stream writes
//! `event: herald.shutdown` and ends; *force* comes at `shutdown_timeout_s`, when whatever is left
//! is dropped. [`Lifecycle::tracker`] counts open streams, so the node knows when they are all gone.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use tokio_util::sync::CancellationToken;
use tokio_util::task::{task_tracker::TaskTrackerToken, TaskTracker};

/// Where the node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not serving yet (the log is opening, sources syncing).
    Starting,
    /// Serving.
    Ready,
    /// Shutting down: no new streams.
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
    clients: AtomicUsize,
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

    /// Begins the drain: `/ready` turns 503, new streams are refused, open streams end.
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

    /// Counts a new stream if fewer than `max` are open. The stream keeps the token while open
    /// and calls [`Lifecycle::release`] when it ends.
    pub fn admit(&self, max: usize) -> Option<TaskTrackerToken> {
        if self.clients.fetch_add(1, Ordering::AcqRel) >= max {
            self.clients.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(self.tracker.token())
    }

    /// Uncounts a stream admitted by [`Lifecycle::admit`].
    pub fn release(&self) {
        self.clients.fetch_sub(1, Ordering::AcqRel);
    }

    /// Open streams on this node.
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Acquire)
    }
}
