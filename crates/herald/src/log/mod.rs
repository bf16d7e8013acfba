//! The event log: where every published event is appended, and where replay and snapshots read.
//!
//! [`EventLog`] is the seam between the hub and its storage. An implementation
//! - assigns ids, strictly increasing, to each appended batch, atomically (all or nothing);
//! - answers an append only once the batch is as durable as the configuration asks;
//! - hands every appended batch to the [`Router`](crate::hub::Router) in id order, after it is
//!   readable through [`EventLog::read_after`] (so a stream that registers with the router and
//!   then reads the log misses nothing: at worst it sees an event twice and skips it by id);
//! - keeps the keyed state of SPEC §4 in step with the events.
//!
//! [`embedded::EmbeddedLog`] keeps them in one crash-safe file under the data directory;
//! [`memory::MemoryLog`] keeps everything in memory; it loses everything on restart;
//! [`redis::RedisLog`] is the cluster log: one Redis Stream that every node appends to and tails.

pub mod embedded;
mod journal;
pub mod memory;
pub mod redis;

use std::sync::Arc;

use async_trait::async_trait;

use crate::event::{Draft, Event, EventId};
use crate::topic::Pattern;

/// Whether a stream can resume after a last event id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Replay every retained event after this position (`None`: from the oldest retained).
    After(Option<EventId>),
    /// The id is older than what retention kept: events after it are gone.
    Truncated,
    /// The id was never issued by this log (malformed, foreign, or ahead of the log).
    Unknown,
}

/// The latest keyed state as of one position in the log.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The latest event of every matching `(topic, key)`, in id order.
    pub events: Vec<Arc<Event>>,
    /// The last id the snapshot reflects; live events at or below it are already in it.
    pub as_of: Option<EventId>,
}

/// Why the log could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The log is closed (the node is shutting down).
    #[error("the event log is closed")]
    Closed,
    /// The storage failed.
    #[error("storage error: {0}")]
    Storage(String),
    /// The disk is full: nothing of the batch was appended, and appends resume by themselves
    /// once there is space again.
    #[error("the event log's disk is full: {0}")]
    Full(String),
    /// The storage cannot be reached or written right now (cluster mode: Redis is down; a
    /// failing disk); nothing of the batch was appended. Try again.
    #[error("the event log is unavailable: {0}")]
    Unavailable(String),
}

/// An append-only, replayable event log. See the module docs for the contract.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends `drafts` as one atomic batch and returns the events with their ids.
    ///
    /// # Errors
    /// [`Error`] when the batch could not be made durable; then none of it was appended.
    async fn append(&self, drafts: Vec<Draft>) -> Result<Vec<Arc<Event>>, Error>;

    /// Where a stream that last saw `id` stands.
    ///
    /// # Errors
    /// [`Error`] when the storage could not be read.
    async fn resume(&self, id: EventId) -> Result<Resume, Error>;

    /// Up to `limit` retained events after `after` (from the oldest when `None`), in id order.
    ///
    /// # Errors
    /// [`Error`] when the storage could not be read.
    async fn read_after(&self, after: Option<EventId>, limit: usize) -> Result<Vec<Arc<Event>>, Error>;

    /// The latest state of every `(topic, key)` whose topic one of `patterns` matches.
    ///
    /// # Errors
    /// [`Error`] when the storage could not be read.
    async fn snapshot(&self, patterns: &[Pattern]) -> Result<Snapshot, Error>;

    /// `Ok` while appends can be stored; otherwise why not ([`Error::Full`] or
    /// [`Error::Unavailable`]), for `/ready`. Only a log that detects this itself overrides it.
    ///
    /// # Errors
    /// The error an append would get now.
    fn writable(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Drops events older than the retention age; called periodically.
    ///
    /// # Errors
    /// [`Error`] when the storage could not be written.
    async fn expire(&self) -> Result<(), Error>;

    /// Makes everything appended durable and stops accepting appends.
    ///
    /// # Errors
    /// [`Error`] when the final flush failed.
    async fn close(&self) -> Result<(), Error>;
}
