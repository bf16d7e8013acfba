//! The durable event log of a single node: one [redb](https://www.redb.org) file under the data
//! directory, fronted by an in-memory ring of the newest events and the keyed state.
//!
//! # On disk
//! `DIR/herald.redb` holds three tables:
//! - `events`: the 16 big-endian bytes of [`EventId::to_bytes`] (which sort like the ids) → the
//!   event's record: a 12-byte header (format version, flags, the lengths of topic, type, key
//!   and data) and those four strings back to back;
//! - `state`: `(topic, key)` → the id and record of that pair's latest event. Retention never
//!   touches it (only a tombstone does), because the latest state of a key must outlive the
//!   event that set it;
//! - `meta`: Herald's format marker and version, and `trimmed_through`, the newest id retention
//!   removed (so a stream that last saw it resumes without loss after a restart).
//!
//! A file that is not a redb database, or a redb database without Herald's marker, is refused
//! with [`Error::Storage`] and left exactly as it was: opening never wipes data.
//!
//! # Crash safety
//! Every change (a group of appends with its retention trim, or an expiry) is one redb write
//! transaction, so it is on disk entirely or not at all. With [`Durability::Always`] the
//! transaction is fsynced before any append in it is answered: an answered append survives a
//! kill -9 or a power cut. With [`Durability::Batched`] a group is first written to the journal
//! (`DIR/herald.journal`, see [`journal`](super::journal): one `write`, no fsync), then
//! committed to redb without an fsync, and then answered; an fsyncing commit follows within the
//! flush interval and at close, and empties the journal. Opening the log replays what the
//! journal holds beyond redb. So a crash of the process (kill -9, a panic, the OOM killer)
//! loses nothing answered in either mode; only a crash of the operating system may cost
//! `Batched` up to the flush interval. Neither leaves a half-written batch.
//!
//! # A full or failing disk
//! A write that fails for lack of space answers [`Error::Full`] (507), any other I/O failure
//! [`Error::Unavailable`] (503), and nothing of that group is answered as stored. The log is
//! then *broken*: [`EventLog::writable`] says why (`/ready` turns 503), later appends are
//! refused at once with the same error, and the writer tries to recover about once a second:
//! it reopens the redb file (after an I/O error redb refuses every later write until it is
//! reopened), replays the journal into it, and proves the disk takes writes with a small
//! fsynced write. Once that succeeds, appends go through again, without a restart. Each change
//! of state is logged once, not each retry.
//!
//! # Group commit
//! One writer thread owns all writes (redb is blocking, so it never runs on the async runtime).
//! It takes every append queued at that moment, gives the events their ids in queue order,
//! writes them in one transaction and commits once: concurrent publishers share one fsync. Each
//! request's drafts are still all-or-nothing, since the whole group commits or none of it.
//!
//! # Ordering
//! After the commit, and under the write lock of the in-memory view, the writer adds the group
//! to the ring and the keyed state and then hands it to [`Router::dispatch`] in id order. So an
//! event is readable through [`EventLog::read_after`] before any subscriber receives it, and a
//! [`Snapshot`] (taken under the same lock) is exactly as new as what the router has been given:
//! a stream that registers first and then reads or snapshots misses nothing at the seam.
//!
//! # Replay
//! The ring keeps the newest events (up to [`RING_EVENTS`] and [`RING_BYTES`]) as shared
//! `Arc<Event>`s with their frames already encoded, so a stream catching up on recent history
//! costs no disk read and no decoding. The ring is always a suffix of the `events` table and is
//! changed only by the writer, after its commit, so the two never disagree about what exists.
//! Older positions are read from redb.
//!
//! # Memory
//! What the log holds in memory is bounded by [`Settings`]: the ring (events and bytes), the
//! keyed state (one entry per live key), and redb's page cache.
//!
//! # Closing
//! [`EventLog::close`] lets the writer finish what is queued, makes an fsyncing commit, and
//! releases the file; later appends get [`Error::Closed`]. Dropping the log does the same,
//! waiting for the writer thread to finish.

use std::collections::VecDeque;
use std::fmt::Display;
use std::ops::{Bound, Range};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde_json::value::RawValue;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use super::journal::{self, Journal};
use super::memory::Retention;
use super::{Error, EventLog, Resume, Snapshot};
use crate::event::{now_ms, Draft, Event, EventId, IdClock};
use crate::hub::Router;
use crate::state::KeyedState;
use crate::topic::{Pattern, Topic};

/// The name of the database file inside the data directory.
pub const FILE_NAME: &str = "herald.redb";
/// The most events the in-memory replay ring keeps.
pub const RING_EVENTS: usize = 65_536;
/// The most bytes (payloads and frames, roughly) the in-memory replay ring keeps.
pub const RING_BYTES: usize = 64 << 20;

/// The version of the on-disk layout this code reads and writes.
const FORMAT_VERSION: u32 = 1;
/// What `meta["format"]` holds in every Herald data file.
const FORMAT_MARKER: &[u8] = b"herald.event-log";
/// The version byte that starts every record.
const RECORD_VERSION: u8 = 1;
/// Record header: version, flags, topic, type and key lengths (u16), data length (u32).
const HEADER_LEN: usize = 12;
const FLAG_TOMBSTONE: u8 = 1;
const FLAG_KEY: u8 = 2;

/// The most append requests waiting for the writer; further publishers wait for a slot.
const MAX_QUEUED: usize = 4096;
/// The most events one group commit writes; what is left waits for the next commit.
const MAX_GROUP_EVENTS: usize = 16_384;
/// redb's page cache. Replay of recent history is served from the ring, so this mostly serves
/// older replays and the B-tree's inner pages.
pub const CACHE_BYTES: usize = 64 << 20;
/// How often a broken log tries to recover (see the module docs).
const RECOVER_EVERY: Duration = Duration::from_secs(1);

const EVENTS: TableDefinition<'_, &[u8; 16], &[u8]> = TableDefinition::new("events");
const STATE: TableDefinition<'_, (&str, &str), &[u8]> = TableDefinition::new("state");
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const META_FORMAT: &str = "format";
const META_VERSION: &str = "version";
const META_TRIMMED: &str = "trimmed_through";
/// Written by a recovering log to prove the disk takes writes again.
const META_PROBE: &str = "probe";

/// When an appended batch counts as durable (SPEC §5 `durability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every append is fsynced before it is answered; concurrent appends share the fsync.
    #[default]
    Always,
    /// Appends are answered once written; an fsync follows within `flush` and at close.
    Batched {
        /// The longest an answered append may stay without an fsync.
        flush: Duration,
    },
}

/// How an [`EmbeddedLog`] is opened: how much it keeps, in memory and on disk, and when an
/// append counts as durable.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How much history the log keeps.
    pub retention: Retention,
    /// When an append is answered.
    pub durability: Durability,
    /// The most events the in-memory replay ring keeps (at least 1).
    pub ring_events: usize,
    /// The most bytes (payloads and frames, roughly) the ring keeps.
    pub ring_bytes: usize,
    /// The bytes of redb's page cache.
    pub cache_bytes: usize,
}

impl Settings {
    /// `retention` and `durability`, with the default memory sizes ([`RING_EVENTS`],
    /// [`RING_BYTES`], [`CACHE_BYTES`]).
    pub fn new(retention: Retention, durability: Durability) -> Self {
        Self { retention, durability, ring_events: RING_EVENTS, ring_bytes: RING_BYTES, cache_bytes: CACHE_BYTES }
    }

    fn ring(&self) -> RingLimits {
        RingLimits { events: self.ring_events.max(1), bytes: self.ring_bytes }
    }
}

/// How much the in-memory ring keeps.
#[derive(Debug, Clone, Copy)]
struct RingLimits {
    events: usize,
    bytes: usize,
}

/// The durable [`EventLog`] of a node without a cluster backplane. See the module docs.
pub struct EmbeddedLog {
    shared: Arc<Shared>,
    /// Where appends, expiries and the close go to the writer; `None` once closed.
    requests: Mutex<Option<mpsc::Sender<Request>>>,
    /// Bounds the append requests queued for the writer (closed with the log).
    slots: Arc<Semaphore>,
    writer: Mutex<Option<JoinHandle<()>>>,
    path: PathBuf,
    retention: Retention,
}

impl std::fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLog").field("path", &self.path).field("retention", &self.retention).finish()
    }
}

/// What the writer shares with readers.
struct Shared {
    /// `None` once the writer has released the file at close.
    db: RwLock<Option<Arc<redb::Database>>>,
    view: RwLock<View>,
    router: Arc<Router>,
    /// Write transactions committed, for tests and the throughput figures.
    commits: AtomicU64,
    /// Why appends are refused, while the store cannot be written (see the module docs).
    trouble: Mutex<Option<Failed>>,
}

/// What is known in memory about the store; changed only by the writer, after a commit.
struct View {
    /// The newest stored events: always a suffix of the `events` table, non-empty when it is.
    ring: VecDeque<Arc<Event>>,
    ring_bytes: usize,
    limits: RingLimits,
    /// Events in the `events` table.
    count: u64,
    /// The newest id retention removed: resuming exactly there loses nothing.
    trimmed_through: Option<EventId>,
    state: KeyedState,
}

enum Request {
    Append {
        drafts: Vec<Draft>,
        reply: oneshot::Sender<Result<Vec<Arc<Event>>, Error>>,
        /// Held until the request is answered, so queued requests stay bounded.
        slot: OwnedSemaphorePermit,
    },
    /// Drop events older than this Unix millisecond.
    Expire {
        before_ms: u64,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Close {
        reply: oneshot::Sender<Result<(), Error>>,
    },
}

/// What a committed transaction changed in the `events` table.
struct Applied {
    count: u64,
    trimmed: Option<EventId>,
}

/// A write that failed, and whether the disk was the reason.
#[derive(Debug, Clone)]
struct Failed {
    cause: Cause,
    detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// No space (or quota) left: 507.
    Full,
    /// Another I/O failure: 503, and the file must be reopened.
    Disk,
    /// Not the disk (a record that cannot be stored): 500 for that request alone.
    Other,
}

impl Failed {
    fn redb(context: &str, e: impl Into<redb::Error>) -> Self {
        let e = e.into();
        let cause = match &e {
            redb::Error::Io(io) => Self::io_cause(io),
            redb::Error::PreviousIo => Cause::Disk,
            _ => Cause::Other,
        };
        Self { cause, detail: format!("{context}: {e}") }
    }

    fn io(context: &str, e: &std::io::Error) -> Self {
        Self { cause: Self::io_cause(e), detail: format!("{context}: {e}") }
    }

    fn io_cause(e: &std::io::Error) -> Cause {
        use std::io::ErrorKind::{FileTooLarge, QuotaExceeded, StorageFull};
        if matches!(e.kind(), StorageFull | QuotaExceeded | FileTooLarge) {
            Cause::Full
        } else {
            Cause::Disk
        }
    }

    fn other(detail: String) -> Self {
        Self { cause: Cause::Other, detail }
    }

    /// What the publisher is answered.
    fn error(&self) -> Error {
        match self.cause {
            Cause::Full => Error::Full(self.detail.clone()),
            Cause::Disk => Error::Unavailable(self.detail.clone()),
            Cause::Other => Error::Storage(self.detail.clone()),
        }
    }
}

fn storage(context: &str) -> impl Fn(&dyn Display) -> String + '_ {
    move |e| format!("{context}: {e}")
}

fn read_lock<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write_lock<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(lock: &Mutex<T>) -> MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(|e| e.into_inner())
}

impl EmbeddedLog {
    /// Opens (or creates) the log in `dir`, restoring its events, keyed state and id clock, and
    /// starts its writer thread. The blocking work runs off the async runtime.
    ///
    /// A journal left by a batched run (even when this one runs with [`Durability::Always`]) is
    /// replayed into the store first: see the module docs.
    ///
    /// # Errors
    /// [`Error::Storage`] when the directory cannot be created, the file is in use by another
    /// process, is not a Herald data file or is corrupted (it is then left untouched), a
    /// stored record cannot be decoded, or the journal cannot be read or replayed.
    pub async fn open(dir: &Path, router: Arc<Router>, settings: Settings) -> Result<Self, Error> {
        let dir = dir.to_owned();
        tokio::task::spawn_blocking(move || Self::open_blocking(&dir, router, settings))
            .await
            .map_err(|e| Error::Storage(format!("opening the event log failed: {e}")))?
    }

    /// [`EmbeddedLog::open`] for callers outside an async runtime.
    ///
    /// # Errors
    /// As [`EmbeddedLog::open`].
    pub fn open_blocking(dir: &Path, router: Arc<Router>, settings: Settings) -> Result<Self, Error> {
        let path = dir.join(FILE_NAME);
        let db = open_database(dir, &path, settings.cache_bytes)?;
        let (view, last) = load(&db, &path, settings.ring())?;
        let db = Arc::new(db);
        let shared = Arc::new(Shared {
            db: RwLock::new(Some(db.clone())),
            view: RwLock::new(view),
            router,
            commits: AtomicU64::new(0),
            trouble: Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel();
        let mut writer = Writer {
            db: Some(db),
            dir: dir.to_owned(),
            settings,
            shared: shared.clone(),
            rx,
            clock: IdClock::after(last.unwrap_or_default()),
            unsynced_since: None,
            journal: None,
            broken: None,
            records: Vec::new(),
            spans: Vec::new(),
            state_record: Vec::new(),
        };
        let batched = matches!(settings.durability, Durability::Batched { .. });
        if batched || Journal::exists(dir) {
            let replayed = writer.open_journal(last).map_err(|f| Error::Storage(f.detail))?;
            if !batched {
                // Replayed into a durable store: a node running `always` needs no journal.
                writer.journal = None;
                let _ = std::fs::remove_file(dir.join(journal::FILE_NAME));
            }
            if replayed > 0 {
                tracing::warn!(
                    events = replayed,
                    "replayed answered events from the journal (the node had stopped without its last flush)"
                );
            }
        }
        {
            let view = read_lock(&shared.view);
            tracing::info!(
                path = %path.display(),
                events = view.count,
                keys = view.state.len(),
                trimmed_through = ?view.trimmed_through,
                "opened the event log"
            );
        }
        let handle = std::thread::Builder::new()
            .name("herald-log-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| Error::Storage(format!("cannot start the event log writer: {e}")))?;
        Ok(Self {
            shared,
            requests: Mutex::new(Some(tx)),
            slots: Arc::new(Semaphore::new(MAX_QUEUED)),
            writer: Mutex::new(Some(handle)),
            path,
            retention: settings.retention,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, request: Request) -> Result<(), Error> {
        match &*lock(&self.requests) {
            Some(tx) => tx.send(request).map_err(|_| Error::Closed),
            None => Err(Error::Closed),
        }
    }

    /// Drops events whose id is older than `before_ms`; `expire` with the cutoff of its age.
    async fn expire_before(&self, before_ms: u64) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Expire { before_ms, reply })?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// The database while the log is open, for a read.
    fn db(&self) -> Result<Arc<redb::Database>, Error> {
        match read_lock(&self.shared.db).clone() {
            Some(db) => Ok(db),
            // The writer is reopening a broken store: a moment, not the end of the log.
            None if lock(&self.requests).is_some() => {
                Err(Error::Unavailable("the event log is being reopened after a disk failure".into()))
            }
            None => Err(Error::Closed),
        }
    }

    /// Stops the writer (letting it flush) and waits for its thread.
    fn stop_writer(&self) -> Option<JoinHandle<()>> {
        self.slots.close();
        drop(lock(&self.requests).take());
        lock(&self.writer).take()
    }
}

impl Drop for EmbeddedLog {
    fn drop(&mut self) {
        // Waiting here means the file is released (and flushed) once the log is dropped, so the
        // same process can open it again at once. The writer has at most one group to finish.
        if let Some(handle) = self.stop_writer() {
            let _ = handle.join();
        }
    }
}

/// Opens the database file, creating it only where none (or an empty file) exists.
fn open_database(dir: &Path, path: &Path, cache_bytes: usize) -> Result<redb::Database, Error> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Storage(format!("cannot create the data directory {}: {e}", dir.display())))?;
    let fresh = match std::fs::metadata(path) {
        Ok(meta) => meta.len() == 0,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(Error::Storage(format!("cannot read {}: {e}", path.display()))),
    };
    let not_ours = |detail: &dyn Display| {
        Error::Storage(format!(
            "{} is not a Herald data directory or is corrupted: {detail}; move it aside or point data_dir elsewhere",
            path.display()
        ))
    };
    let mut builder = redb::Builder::new();
    builder.set_cache_size(cache_bytes);
    // `create` would initialise an empty file but refuses anything else; `open` never
    // initialises. redb documents that opening a file damaged outside redb may panic, so a
    // panic is caught and reported like any other corruption.
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if fresh {
            builder.create(path)
        } else {
            builder.open(path)
        }
    }));
    let db = match opened {
        Ok(Ok(db)) => db,
        Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => {
            return Err(Error::Storage(format!("{} is in use by another Herald process", path.display())))
        }
        // Permissions, a full disk, a failing device: the file may be fine; say what happened.
        // (redb reports a file that is not its own as InvalidData or a short read.)
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Io(e))))
            if !matches!(e.kind(), std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof) =>
        {
            return Err(Error::Storage(format!("cannot open {}: {e}", path.display())))
        }
        Ok(Err(e)) => return Err(not_ours(&e)),
        Err(_) => return Err(not_ours(&"the storage engine could not read it")),
    };
    check_marker(&db, path).map_err(|e| match e {
        Marker::Foreign(detail) => not_ours(&detail),
        Marker::Storage(e) => Error::Storage(e),
    })?;
    Ok(db)
}

enum Marker {
    Foreign(String),
    Storage(String),
}

/// Checks Herald's marker, writing it into a database that has no table at all (a new file, or
/// one whose creation was interrupted before its first commit: there is nothing in it to lose).
fn check_marker(db: &redb::Database, path: &Path) -> Result<(), Marker> {
    let st = |e: &dyn Display| Marker::Storage(format!("reading {}: {e}", path.display()));
    let txn = db.begin_read().map_err(|e| st(&e))?;
    let meta = match txn.open_table(META) {
        Ok(meta) => meta,
        Err(redb::TableError::TableDoesNotExist(_)) => {
            if txn.list_tables().map_err(|e| st(&e))?.next().is_some() {
                return Err(Marker::Foreign("it holds tables but no Herald marker".into()));
            }
            drop(txn);
            return initialise(db).map_err(Marker::Storage);
        }
        Err(e @ redb::TableError::TableTypeMismatch { .. }) => return Err(Marker::Foreign(e.to_string())),
        Err(e) => return Err(st(&e)),
    };
    let format = meta.get(META_FORMAT).map_err(|e| st(&e))?;
    if format.as_ref().map(|v| v.value()) != Some(FORMAT_MARKER) {
        return Err(Marker::Foreign("its meta table lacks Herald's format marker".into()));
    }
    let version = meta
        .get(META_VERSION)
        .map_err(|e| st(&e))?
        .and_then(|v| <[u8; 4]>::try_from(v.value()).ok())
        .map(u32::from_le_bytes);
    match version {
        Some(FORMAT_VERSION) => Ok(()),
        Some(v) if v > FORMAT_VERSION => Err(Marker::Foreign(format!(
            "it was written by a newer Herald (format {v}; this one reads {FORMAT_VERSION})"
        ))),
        other => Err(Marker::Foreign(format!("unsupported format version {other:?}"))),
    }
}

fn initialise(db: &redb::Database) -> Result<(), String> {
    let st = storage("initialising");
    let txn = db.begin_write().map_err(|e| st(&e))?;
    {
        let mut meta = txn.open_table(META).map_err(|e| st(&e))?;
        meta.insert(META_FORMAT, FORMAT_MARKER).map_err(|e| st(&e))?;
        meta.insert(META_VERSION, FORMAT_VERSION.to_le_bytes().as_slice()).map_err(|e| st(&e))?;
        txn.open_table(EVENTS).map_err(|e| st(&e))?;
        txn.open_table(STATE).map_err(|e| st(&e))?;
    }
    txn.commit().map_err(|e| st(&e))
}

/// Reads what the view keeps in memory; returns it with the newest id ever stored.
fn load(db: &redb::Database, path: &Path, limits: RingLimits) -> Result<(View, Option<EventId>), Error> {
    let st = |e: &dyn Display| Error::Storage(format!("reading {}: {e}", path.display()));
    let txn = db.begin_read().map_err(|e| st(&e))?;
    let meta = txn.open_table(META).map_err(|e| st(&e))?;
    let trimmed_through = match meta.get(META_TRIMMED).map_err(|e| st(&e))? {
        Some(v) => Some(id_from_slice(v.value()).map_err(Error::Storage)?),
        None => None,
    };
    let events = txn.open_table(EVENTS).map_err(|e| st(&e))?;
    let mut view = View {
        ring: VecDeque::new(),
        ring_bytes: 0,
        limits,
        count: events.len().map_err(|e| st(&e))?,
        trimmed_through,
        state: KeyedState::default(),
    };
    let mut newest: Vec<Arc<Event>> = Vec::new();
    let mut bytes = 0;
    for item in events.iter().map_err(|e| st(&e))?.rev() {
        let (k, v) = item.map_err(|e| st(&e))?;
        let event = Arc::new(decode_record(EventId::from_bytes(*k.value()), v.value())?);
        bytes += weight(&event);
        newest.push(event);
        if newest.len() >= limits.events || bytes >= limits.bytes {
            break;
        }
    }
    for event in newest.into_iter().rev() {
        view.push(event);
    }
    let mut last = view.head();
    let state = txn.open_table(STATE).map_err(|e| st(&e))?;
    for item in state.iter().map_err(|e| st(&e))? {
        let (_, v) = item.map_err(|e| st(&e))?;
        let value = v.value();
        let id = id_from_slice(value.get(..16).unwrap_or_default()).map_err(Error::Storage)?;
        // Share the ring's copy when the state's event is still in it.
        let event = match view.ring.binary_search_by_key(&id, |e| e.id) {
            Ok(i) => view.ring[i].clone(),
            Err(_) => Arc::new(decode_record(id, &value[16..])?),
        };
        last = last.max(Some(id));
        view.state.apply(&event);
    }
    Ok((view, last))
}

fn id_from_slice(bytes: &[u8]) -> Result<EventId, String> {
    <[u8; 16]>::try_from(bytes)
        .map(EventId::from_bytes)
        .map_err(|_| format!("stored event id has {} bytes, not 16", bytes.len()))
}

/// Roughly what an event costs the ring in memory.
fn weight(event: &Event) -> usize {
    event.frame().len() + event.data.get().len() + event.topic.as_str().len() + 128
}

impl View {
    fn head(&self) -> Option<EventId> {
        self.ring.back().map(|e| e.id).or(self.trimmed_through)
    }

    /// Whether the ring holds every stored event.
    fn ring_is_whole(&self) -> bool {
        self.ring.len() as u64 == self.count
    }

    fn push(&mut self, event: Arc<Event>) {
        self.ring_bytes += weight(&event);
        self.ring.push_back(event);
        // Keep at least the newest event: it tells where the head is.
        while self.ring.len() > 1 && (self.ring.len() > self.limits.events || self.ring_bytes > self.limits.bytes) {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some(e) = self.ring.pop_front() {
            self.ring_bytes -= weight(&e);
        }
    }

    /// Takes in a committed change: new events (maybe empty), and what retention removed.
    fn apply(&mut self, events: &[Arc<Event>], applied: &Applied) {
        for event in events {
            self.state.apply(event);
            self.push(event.clone());
        }
        if let Some(trimmed) = applied.trimmed {
            self.trimmed_through = Some(trimmed);
            while self.ring.front().is_some_and(|e| e.id <= trimmed) {
                self.pop_front();
            }
        }
        self.count = applied.count;
    }
}

/// Encodes an event's record: a 12-byte header (version, flags, then the lengths of topic, type
/// and key as little-endian u16 and of the data as u32) and the four strings back to back. The
/// id is not in it: it is the key. Lengths make decoding a few slice operations, with no parsing
/// besides the JSON validation a [`RawValue`] insists on.
fn encode_record(event: &Event, out: &mut Vec<u8>) -> Result<(), String> {
    let topic = event.topic.as_str();
    let key = event.key.as_deref().unwrap_or("");
    let data = event.data.get();
    let too_long = |what: &str| format!("event {}: {what} too long to store", event.id);
    let topic_len = u16::try_from(topic.len()).map_err(|_| too_long("topic"))?;
    let kind_len = u16::try_from(event.kind.len()).map_err(|_| too_long("type"))?;
    let key_len = u16::try_from(key.len()).map_err(|_| too_long("key"))?;
    let data_len = u32::try_from(data.len()).map_err(|_| too_long("data"))?;
    let mut flags = 0;
    if event.tombstone {
        flags |= FLAG_TOMBSTONE;
    }
    if event.key.is_some() {
        flags |= FLAG_KEY;
    }
    out.reserve(HEADER_LEN + topic.len() + event.kind.len() + key.len() + data.len());
    out.push(RECORD_VERSION);
    out.push(flags);
    out.extend_from_slice(&topic_len.to_le_bytes());
    out.extend_from_slice(&kind_len.to_le_bytes());
    out.extend_from_slice(&key_len.to_le_bytes());
    out.extend_from_slice(&data_len.to_le_bytes());
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(event.kind.as_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(data.as_bytes());
    Ok(())
}

/// The inverse of [`encode_record`]; anything malformed is a storage error, never a panic.
fn decode_record(id: EventId, bytes: &[u8]) -> Result<Event, Error> {
    let bad = |why: &dyn Display| Error::Storage(format!("stored event {id} is corrupted: {why}"));
    let header: &[u8; HEADER_LEN] = bytes
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| bad(&"record shorter than its header"))?;
    if header[0] != RECORD_VERSION {
        return Err(bad(&format_args!("unknown record version {}", header[0])));
    }
    let flags = header[1];
    if flags & !(FLAG_TOMBSTONE | FLAG_KEY) != 0 {
        return Err(bad(&format_args!("unknown flags {flags:#x}")));
    }
    let u16_at = |i: usize| usize::from(u16::from_le_bytes([header[i], header[i + 1]]));
    let (topic_len, kind_len, key_len) = (u16_at(2), u16_at(4), u16_at(6));
    let data_len = u32::from_le_bytes([header[8], header[9], header[10], header[11]]) as usize;
    let body = &bytes[HEADER_LEN..];
    if body.len() != topic_len + kind_len + key_len + data_len {
        return Err(bad(&"lengths do not add up"));
    }
    let (topic, rest) = body.split_at(topic_len);
    let (kind, rest) = rest.split_at(kind_len);
    let (key, data) = rest.split_at(key_len);
    let [topic, kind, key, data] =
        [topic, kind, key, data].map(|b| std::str::from_utf8(b).map_err(|e| format!("not UTF-8: {e}")));
    let topic = Topic::new(topic.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    let kind = kind.map_err(|e| bad(&e))?.into();
    let key = key.map_err(|e| bad(&e))?;
    let key = if flags & FLAG_KEY != 0 { Some(key.into()) } else { None };
    let data = RawValue::from_string(data.map_err(|e| bad(&e))?.to_owned()).map_err(|e| bad(&e))?;
    let draft = Draft { topic, kind, data, key, tombstone: flags & FLAG_TOMBSTONE != 0 };
    Ok(Event::new(id, draft))
}

/// Up to `limit` stored events after `after`, from one consistent read of the file.
fn read_disk(db: &redb::Database, after: Option<EventId>, limit: usize) -> Result<Vec<Arc<Event>>, Error> {
    let st = |e: &dyn Display| Error::Storage(format!("reading events: {e}"));
    let txn = db.begin_read().map_err(|e| st(&e))?;
    let table = txn.open_table(EVENTS).map_err(|e| st(&e))?;
    let after = after.map(EventId::to_bytes);
    let lower = match &after {
        Some(a) => Bound::Excluded(a),
        None => Bound::Unbounded,
    };
    let mut out = Vec::with_capacity(limit.min(4096));
    for item in table.range::<&[u8; 16]>((lower, Bound::Unbounded)).map_err(|e| st(&e))?.take(limit) {
        let (k, v) = item.map_err(|e| st(&e))?;
        out.push(Arc::new(decode_record(EventId::from_bytes(*k.value()), v.value())?));
    }
    Ok(out)
}

/// [`EventLog::resume`] for an id older than the ring, from one consistent read of the file.
fn resume_disk(db: &redb::Database, id: EventId) -> Result<Resume, Error> {
    let st = |e: &dyn Display| Error::Storage(format!("reading events: {e}"));
    let txn = db.begin_read().map_err(|e| st(&e))?;
    let events = txn.open_table(EVENTS).map_err(|e| st(&e))?;
    if events.get(&id.to_bytes()).map_err(|e| st(&e))?.is_some() {
        return Ok(Resume::After(Some(id)));
    }
    let meta = txn.open_table(META).map_err(|e| st(&e))?;
    let trimmed = match meta.get(META_TRIMMED).map_err(|e| st(&e))? {
        Some(v) => Some(id_from_slice(v.value()).map_err(Error::Storage)?),
        None => None,
    };
    Ok(match trimmed {
        Some(t) if id == t => Resume::After(Some(id)),
        Some(t) if id < t => Resume::Truncated,
        _ => Resume::Unknown,
    })
}

/// The one thread that writes. See the module docs for group commit, ordering and recovery.
struct Writer {
    /// `None` only while a broken store is being reopened.
    db: Option<Arc<redb::Database>>,
    dir: PathBuf,
    settings: Settings,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Request>,
    clock: IdClock,
    /// When the oldest commit not yet fsynced was made (batched durability only).
    unsynced_since: Option<Instant>,
    /// Batched durability only: what was answered since the last fsyncing commit.
    journal: Option<Journal>,
    /// Set while the store cannot be written.
    broken: Option<Broken>,
    /// The records of the group being written, back to back, and each event's range in it.
    records: Vec<u8>,
    spans: Vec<Range<usize>>,
    /// Scratch buffer for a `state` value (id + record).
    state_record: Vec<u8>,
}

/// Why and since when the store cannot be written.
struct Broken {
    failed: Failed,
    /// redb refuses writes after an I/O error until the file is reopened.
    reopen: bool,
    /// The next recovery attempt.
    retry_at: Instant,
}

struct Pending {
    drafts: Vec<Draft>,
    reply: oneshot::Sender<Result<Vec<Arc<Event>>, Error>>,
    slot: OwnedSemaphorePermit,
}

impl Writer {
    fn run(mut self) {
        let mut stashed = None;
        loop {
            let Some(request) = stashed.take().or_else(|| self.next_request()) else {
                // Every sender is gone: the log was dropped without `close`.
                if let Err(e) = self.finish() {
                    tracing::error!(error = %e.detail, "final flush of the event log failed; the journal keeps what was answered");
                }
                break;
            };
            match request {
                Request::Append { drafts, reply, slot } => {
                    let mut group = vec![Pending { drafts, reply, slot }];
                    let mut size = group[0].drafts.len();
                    while size < MAX_GROUP_EVENTS {
                        match self.rx.try_recv() {
                            Ok(Request::Append { drafts, reply, slot }) => {
                                size += drafts.len();
                                group.push(Pending { drafts, reply, slot });
                            }
                            Ok(other) => {
                                stashed = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.append(group);
                }
                Request::Expire { before_ms, reply } => {
                    let result = match self.usable() {
                        Ok(()) => self.expire(before_ms).map_err(|f| self.fail(f)),
                        Err(e) => Err(e),
                    };
                    let _ = reply.send(result);
                }
                Request::Close { reply } => {
                    let _ = reply.send(self.finish().map_err(|f| f.error()));
                    break;
                }
            }
        }
        // Release the file: readers still holding a handle finish first, then redb closes it.
        write_lock(&self.shared.db).take();
    }

    /// The next request, making the fsyncing commit batched durability owes, or the recovery
    /// attempt a broken store is due, while waiting. `None` when every sender is gone.
    fn next_request(&mut self) -> Option<Request> {
        loop {
            let due = match (&self.broken, self.unsynced_since, self.settings.durability) {
                (Some(broken), _, _) => broken.retry_at,
                (None, Some(since), Durability::Batched { flush }) => since + flush,
                _ => return self.rx.recv().ok(),
            };
            let wait = due.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                match self.rx.recv_timeout(wait) {
                    Ok(request) => return Some(request),
                    Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                }
            }
            if self.broken.is_some() {
                self.recover();
            } else if let Err(f) = self.sync() {
                self.fail(f);
            }
        }
    }

    /// The final flush, at close or drop: recovers first when the store is broken.
    fn finish(&mut self) -> Result<(), Failed> {
        if self.broken.is_some() {
            self.recover();
        }
        match &self.broken {
            Some(broken) => Err(broken.failed.clone()),
            None => self.sync(),
        }
    }

    /// `Ok` when the store can be written now, trying to recover first if that is due;
    /// otherwise the error to answer with, at once.
    fn usable(&mut self) -> Result<(), Error> {
        if self.broken.as_ref().is_some_and(|b| Instant::now() >= b.retry_at) {
            self.recover();
        }
        match &self.broken {
            Some(broken) => Err(broken.failed.error()),
            None => Ok(()),
        }
    }

    /// Takes in a failed write: a disk failure breaks the store (logged once per change of
    /// state), anything else fails that request alone. Returns what to answer.
    fn fail(&mut self, failed: Failed) -> Error {
        let error = failed.error();
        if failed.cause == Cause::Other {
            tracing::error!(error = %failed.detail, "appending to the event log failed");
            return error;
        }
        let changed = self.broken.as_ref().is_none_or(|b| b.failed.cause != failed.cause);
        if changed {
            tracing::error!(
                error = %failed.detail,
                full = failed.cause == Cause::Full,
                "the event log cannot write: publishes are refused and /ready is 503 until it can; \
                 retrying every second"
            );
        }
        *lock(&self.shared.trouble) = Some(failed.clone());
        self.broken = Some(Broken { failed, reopen: true, retry_at: Instant::now() + RECOVER_EVERY });
        error
    }

    /// One recovery attempt: reopen the file if redb needs it, then prove the disk takes a
    /// write. See the module docs.
    fn recover(&mut self) {
        let Some(broken) = self.broken.as_mut() else { return };
        broken.retry_at = Instant::now() + RECOVER_EVERY;
        let reopen = broken.reopen;
        let attempt = if reopen { self.reopen() } else { Ok(()) };
        if let Some(broken) = self.broken.as_mut() {
            broken.reopen = reopen && attempt.is_err();
        }
        match attempt.and_then(|()| self.probe()) {
            Ok(()) => {
                tracing::info!("the event log can write again: publishes are accepted");
                self.broken = None;
                *lock(&self.shared.trouble) = None;
            }
            Err(failed) => {
                let Some(broken) = self.broken.as_mut() else { return };
                // A reopen that fails on a full disk may say only "storage error": keep "full".
                let cause = if failed.cause == Cause::Other { broken.failed.cause } else { failed.cause };
                if cause != broken.failed.cause {
                    tracing::error!(error = %failed.detail, "the event log still cannot write");
                }
                broken.failed = Failed { cause, detail: failed.detail };
                if failed.cause != Cause::Other {
                    broken.reopen = true;
                }
                *lock(&self.shared.trouble) = Some(broken.failed.clone());
            }
        }
    }

    /// Closes the redb handle and opens the file again, then replays the journal into it (redb
    /// forgets the commits it had not fsynced when it is closed after an I/O error).
    fn reopen(&mut self) -> Result<(), Failed> {
        let path = self.dir.join(FILE_NAME);
        write_lock(&self.shared.db).take();
        self.db = None;
        let reopening = |e: Error| Failed { cause: Cause::Other, detail: format!("reopening the event log: {e}") };
        let db = open_database(&self.dir, &path, self.settings.cache_bytes).map_err(reopening)?;
        let (_, stored) = load(&db, &path, RingLimits { events: 1, bytes: 0 }).map_err(reopening)?;
        self.db = Some(Arc::new(db));
        self.unsynced_since = None;
        let entries = match self.journal.as_mut() {
            Some(journal) => journal.entries().map_err(|e| Failed::io("reading the journal", &e))?,
            None => Vec::new(),
        };
        let events = self.replay(entries, stored)?;
        let head = events.last().map(|e| e.id).or(stored);
        let expected = read_lock(&self.shared.view).head();
        if head < expected {
            tracing::error!(
                stored = ?head,
                answered = ?expected,
                "after reopening, the event log holds less than was answered"
            );
        }
        *write_lock(&self.shared.db) = self.db.clone();
        tracing::info!(replayed = events.len(), "reopened the event log");
        Ok(())
    }

    /// Whether the disk takes writes: an fsynced write of the journal's probe (batched) and a
    /// durable redb commit that changes a page (which also makes every earlier commit durable).
    fn probe(&mut self) -> Result<(), Failed> {
        if let Some(journal) = self.journal.as_mut() {
            journal.probe().map_err(|e| Failed::io("writing to the data directory", &e))?;
        }
        let db = self.db()?;
        let txn = db.begin_write().map_err(|e| Failed::redb("probing", e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| Failed::redb("probing", e))?;
            meta.insert(META_PROBE, now_ms().to_le_bytes().as_slice()).map_err(|e| Failed::redb("probing", e))?;
        }
        txn.commit().map_err(|e| Failed::redb("probing", e))?;
        self.committed(true);
        Ok(())
    }

    fn db(&self) -> Result<Arc<redb::Database>, Failed> {
        self.db.clone().ok_or_else(|| Failed { cause: Cause::Disk, detail: "the event log is being reopened".into() })
    }

    /// At open: reads the journal and stores what it holds beyond redb (`stored`, the newest id
    /// redb has) durably, into the view too. Returns how many events it replayed.
    fn open_journal(&mut self, stored: Option<EventId>) -> Result<usize, Failed> {
        let (journal, entries) =
            Journal::open(&self.dir).map_err(|e| Failed::io(&format!("opening {}", journal::FILE_NAME), &e))?;
        self.journal = Some(journal);
        let events = self.replay(entries, stored)?;
        if let Some(last) = events.last() {
            // Only at start, and only after a crash: read the view again rather than repeat
            // what the replay's commit did to it (retention included).
            self.clock = IdClock::after(last.id);
            let (view, _) = load(&*self.db()?, &self.dir.join(FILE_NAME), self.settings.ring())
                .map_err(|e| Failed::other(e.to_string()))?;
            *write_lock(&self.shared.view) = view;
        }
        Ok(events.len())
    }

    /// Stores the journal's entries newer than `stored` in one durable commit, then empties the
    /// journal. Returns the events stored.
    fn replay(&mut self, entries: Vec<journal::Entry>, stored: Option<EventId>) -> Result<Vec<Arc<Event>>, Failed> {
        let mut events: Vec<Arc<Event>> = Vec::new();
        for (id, record) in entries {
            // Older entries are already in redb; ids must keep increasing, or the rest is the
            // remains of an earlier generation of the file.
            if Some(id) <= stored || events.last().is_some_and(|e| e.id >= id) {
                continue;
            }
            let event = decode_record(id, &record).map_err(|e| Failed::other(format!("replaying the journal: {e}")))?;
            events.push(Arc::new(event));
        }
        if events.is_empty() {
            self.durable();
            return Ok(events);
        }
        let batches = [events];
        self.encode(&batches)?;
        self.write(&batches, true)?;
        self.committed(true);
        let [events] = batches;
        Ok(events)
    }

    /// Whether the next commit must be fsynced.
    fn immediate(&self) -> bool {
        match self.settings.durability {
            Durability::Always => true,
            Durability::Batched { flush } => self.unsynced_since.is_some_and(|t| t.elapsed() >= flush),
        }
    }

    /// Notes a commit; after an fsyncing one, everything is durable and the journal is emptied.
    fn committed(&mut self, immediate: bool) {
        self.shared.commits.fetch_add(1, Ordering::Relaxed);
        if !immediate {
            if self.unsynced_since.is_none() {
                self.unsynced_since = Some(Instant::now());
            }
            return;
        }
        self.durable();
    }

    /// Everything committed is fsynced: the journal is no longer needed.
    fn durable(&mut self) {
        self.unsynced_since = None;
        if let Some(journal) = self.journal.as_mut() {
            if journal.len() > 0 {
                if let Err(e) = journal.clear() {
                    // Harmless: what it holds is in redb, and replay skips it.
                    tracing::warn!(error = %e, path = %journal.path().display(), "cannot empty the journal");
                }
            }
        }
    }

    /// Makes every commit so far durable (an empty fsyncing commit), if any is not yet.
    fn sync(&mut self) -> Result<(), Failed> {
        if self.unsynced_since.is_none() {
            return Ok(());
        }
        let db = self.db()?;
        let txn = db.begin_write().map_err(|e| Failed::redb("flushing", e))?;
        txn.commit().map_err(|e| Failed::redb("flushing", e))?;
        self.committed(true);
        Ok(())
    }

    fn append(&mut self, group: Vec<Pending>) {
        if let Err(e) = self.usable() {
            for pending in group {
                let _ = pending.reply.send(Err(e.clone()));
            }
            return;
        }
        let immediate = self.immediate();
        let mut batches = Vec::with_capacity(group.len());
        let mut replies = Vec::with_capacity(group.len());
        for pending in group {
            let events: Vec<Arc<Event>> =
                pending.drafts.into_iter().map(|d| Arc::new(Event::new(self.clock.next_id(), d))).collect();
            batches.push(events);
            replies.push((pending.reply, pending.slot));
        }
        match self.store(&batches, immediate) {
            Ok(applied) => {
                self.committed(immediate);
                let all: Vec<Arc<Event>> = batches.iter().flatten().cloned().collect();
                {
                    let mut view = write_lock(&self.shared.view);
                    view.apply(&all, &applied);
                    // Under the view's lock: a snapshot is never older than what subscribers
                    // were given, nor newer (see the module docs).
                    self.shared.router.dispatch(&all);
                }
                for ((reply, _slot), events) in replies.into_iter().zip(batches) {
                    let _ = reply.send(Ok(events));
                }
            }
            Err(failed) => {
                let e = self.fail(failed);
                for (reply, _slot) in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Journals (batched, unless this commit is fsynced anyway) and writes a group; a failed
    /// write takes its journal entries back, since nothing of the group is answered.
    fn store(&mut self, batches: &[Vec<Arc<Event>>], immediate: bool) -> Result<Applied, Failed> {
        self.encode(batches)?;
        let mark = match self.journal.as_mut() {
            Some(journal) if !immediate => {
                let mark = journal.len();
                let entries = batches.iter().flatten().zip(&self.spans).map(|(e, r)| (e.id, &self.records[r.clone()]));
                journal.append(entries).map_err(|e| Failed::io("writing the journal", &e))?;
                Some(mark)
            }
            _ => None,
        };
        let written = self.write(batches, immediate);
        if let (Err(_), Some(mark), Some(journal)) = (&written, mark, self.journal.as_mut()) {
            if let Err(e) = journal.truncate(mark) {
                tracing::warn!(error = %e, "cannot take a failed group back out of the journal");
            }
        }
        written
    }

    /// Encodes every event of the group into `records`, noting each one's range in `spans`.
    fn encode(&mut self, batches: &[Vec<Arc<Event>>]) -> Result<(), Failed> {
        self.records.clear();
        self.spans.clear();
        for event in batches.iter().flatten() {
            let start = self.records.len();
            encode_record(event, &mut self.records).map_err(Failed::other)?;
            self.spans.push(start..self.records.len());
        }
        Ok(())
    }

    /// Writes a group of batches (already [`encode`](Self::encode)d) and the retention trim in
    /// one transaction and commits it.
    fn write(&mut self, batches: &[Vec<Arc<Event>>], immediate: bool) -> Result<Applied, Failed> {
        let st = |e: redb::Error| Failed::redb("appending", e);
        let db = self.db()?;
        let mut txn = db.begin_write().map_err(|e| st(e.into()))?;
        if !immediate {
            txn.set_durability(redb::Durability::None).map_err(|e| st(e.into()))?;
        }
        let applied = {
            let mut events = txn.open_table(EVENTS).map_err(|e| st(e.into()))?;
            let mut state = txn.open_table(STATE).map_err(|e| st(e.into()))?;
            for (event, span) in batches.iter().flatten().zip(&self.spans) {
                let record = &self.records[span.clone()];
                events.insert(&event.id.to_bytes(), record).map_err(|e| st(e.into()))?;
                let Some(key) = event.key.as_deref() else { continue };
                let pair = (event.topic.as_str(), key);
                if event.tombstone {
                    state.remove(pair).map_err(|e| st(e.into()))?;
                } else {
                    self.state_record.clear();
                    self.state_record.extend_from_slice(&event.id.to_bytes());
                    self.state_record.extend_from_slice(record);
                    state.insert(pair, self.state_record.as_slice()).map_err(|e| st(e.into()))?;
                }
            }
            let len = events.len().map_err(|e| st(e.into()))?;
            let excess = len.saturating_sub(self.settings.retention.max_events as u64);
            let mut trimmed = None;
            for _ in 0..excess {
                match events.pop_first().map_err(|e| st(e.into()))? {
                    Some((k, _)) => trimmed = Some(EventId::from_bytes(*k.value())),
                    None => break,
                }
            }
            if let Some(t) = trimmed {
                let mut meta = txn.open_table(META).map_err(|e| st(e.into()))?;
                meta.insert(META_TRIMMED, t.to_bytes().as_slice()).map_err(|e| st(e.into()))?;
            }
            Applied { count: events.len().map_err(|e| st(e.into()))?, trimmed }
        };
        txn.commit().map_err(|e| st(e.into()))?;
        Ok(applied)
    }

    /// Deletes every event older than `before_ms` in one transaction.
    fn expire(&mut self, before_ms: u64) -> Result<(), Failed> {
        let st = |e: redb::Error| Failed::redb("expiring", e);
        let cutoff = EventId { ms: before_ms, seq: 0 }.to_bytes();
        let immediate = self.immediate();
        let db = self.db()?;
        let mut txn = db.begin_write().map_err(|e| st(e.into()))?;
        if !immediate {
            txn.set_durability(redb::Durability::None).map_err(|e| st(e.into()))?;
        }
        let applied = {
            let mut events = txn.open_table(EVENTS).map_err(|e| st(e.into()))?;
            let newest_expired = match events.range::<&[u8; 16]>(..&cutoff).map_err(|e| st(e.into()))?.next_back() {
                Some(item) => EventId::from_bytes(*item.map_err(|e| st(e.into()))?.0.value()),
                // Nothing to expire: no transaction to commit.
                None => return Ok(()),
            };
            events.retain_in::<&[u8; 16], _>(..&cutoff, |_, _| false).map_err(|e| st(e.into()))?;
            let mut meta = txn.open_table(META).map_err(|e| st(e.into()))?;
            meta.insert(META_TRIMMED, newest_expired.to_bytes().as_slice()).map_err(|e| st(e.into()))?;
            Applied { count: events.len().map_err(|e| st(e.into()))?, trimmed: Some(newest_expired) }
        };
        txn.commit().map_err(|e| st(e.into()))?;
        self.committed(immediate);
        write_lock(&self.shared.view).apply(&[], &applied);
        Ok(())
    }
}

#[async_trait]
impl EventLog for EmbeddedLog {
    async fn append(&self, drafts: Vec<Draft>) -> Result<Vec<Arc<Event>>, Error> {
        let slot = self.slots.clone().acquire_owned().await.map_err(|_| Error::Closed)?;
        if drafts.is_empty() {
            // Nothing to store or dispatch, but a closed log still says so.
            drop(slot);
            return if lock(&self.requests).is_some() { Ok(Vec::new()) } else { Err(Error::Closed) };
        }
        let (reply, rx) = oneshot::channel();
        self.send(Request::Append { drafts, reply, slot })?;
        // A dropped reply means the writer stopped before taking the request: nothing of it
        // was written.
        rx.await.map_err(|_| Error::Closed)?
    }

    async fn resume(&self, id: EventId) -> Result<Resume, Error> {
        {
            let view = read_lock(&self.shared.view);
            if let Some(front) = view.ring.front() {
                if id >= front.id {
                    let found = view.ring.binary_search_by_key(&id, |e| e.id).is_ok();
                    return Ok(if found { Resume::After(Some(id)) } else { Resume::Unknown });
                }
            }
            match view.trimmed_through {
                Some(t) if id == t => return Ok(Resume::After(Some(id))),
                Some(t) if id < t => return Ok(Resume::Truncated),
                _ => {}
            }
            if view.ring_is_whole() {
                // Between what was trimmed and the oldest event, or ahead of an empty log.
                return Ok(Resume::Unknown);
            }
        }
        let db = self.db()?;
        tokio::task::spawn_blocking(move || resume_disk(&db, id))
            .await
            .map_err(|e| Error::Storage(format!("reading events: {e}")))?
    }

    async fn read_after(&self, after: Option<EventId>, limit: usize) -> Result<Vec<Arc<Event>>, Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        {
            let view = read_lock(&self.shared.view);
            // The ring is a suffix of the store, so when it holds `after` (or everything), every
            // stored event after `after` is in it.
            let covered =
                view.ring_is_whole() || matches!((after, view.ring.front()), (Some(a), Some(front)) if a >= front.id);
            if covered {
                let start = after.map_or(0, |a| view.ring.partition_point(|e| e.id <= a));
                return Ok(view.ring.range(start..).take(limit).cloned().collect());
            }
        }
        let db = self.db()?;
        tokio::task::spawn_blocking(move || read_disk(&db, after, limit))
            .await
            .map_err(|e| Error::Storage(format!("reading events: {e}")))?
    }

    fn writable(&self) -> Result<(), Error> {
        lock(&self.shared.trouble).as_ref().map_or(Ok(()), |failed| Err(failed.error()))
    }

    async fn snapshot(&self, patterns: &[Pattern]) -> Result<Snapshot, Error> {
        let view = read_lock(&self.shared.view);
        Ok(Snapshot { events: view.state.snapshot(patterns), as_of: view.head() })
    }

    async fn expire(&self) -> Result<(), Error> {
        self.expire_before(now_ms().saturating_sub(self.retention.max_age.as_millis() as u64)).await
    }

    async fn close(&self) -> Result<(), Error> {
        let Some(tx) = lock(&self.requests).take() else { return Ok(()) };
        self.slots.close();
        let (reply, rx) = oneshot::channel();
        let flushed = match tx.send(Request::Close { reply }) {
            Ok(()) => rx.await.unwrap_or_else(|_| Err(Error::Storage("the event log writer stopped".into()))),
            Err(_) => Err(Error::Storage("the event log writer stopped".into())),
        };
        drop(tx);
        let writer = lock(&self.writer).take();
        if let Some(handle) = writer {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        flushed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Origin;

    const SMALL_RING: RingLimits = RingLimits { events: 2, bytes: usize::MAX };
    const DEFAULT_RING: RingLimits = RingLimits { events: RING_EVENTS, bytes: RING_BYTES };

    fn open_with(
        dir: &Path,
        router: Arc<Router>,
        retention: Retention,
        durability: Durability,
        ring: RingLimits,
    ) -> Result<EmbeddedLog, Error> {
        let settings =
            Settings { ring_events: ring.events, ring_bytes: ring.bytes, ..Settings::new(retention, durability) };
        EmbeddedLog::open_blocking(dir, router, settings)
    }

    fn draft(topic: &str, key: Option<&str>, tombstone: bool) -> Draft {
        let data = RawValue::from_string("1".into()).unwrap();
        Draft::new(topic, None, &data, key, tombstone).unwrap()
    }

    fn router() -> Arc<Router> {
        Arc::new(Router::new(4096, Default::default()))
    }

    fn retention(max_events: usize) -> Retention {
        Retention { max_events, max_age: Duration::from_secs(3600) }
    }

    fn open(dir: &Path, max_events: usize, ring: RingLimits) -> EmbeddedLog {
        open_with(dir, router(), retention(max_events), Durability::Always, ring).unwrap()
    }

    async fn append(log: &EmbeddedLog, drafts: Vec<Draft>) -> Vec<EventId> {
        log.append(drafts).await.unwrap().iter().map(|e| e.id).collect()
    }

    /// Every retained event, read in small chunks so reads cross from disk into the ring.
    async fn read_all(log: &EmbeddedLog) -> Vec<Arc<Event>> {
        let mut out: Vec<Arc<Event>> = Vec::new();
        loop {
            let chunk = log.read_after(out.last().map(|e| e.id), 3).await.unwrap();
            let short = chunk.len() < 3;
            out.extend(chunk);
            if short {
                return out;
            }
        }
    }

    fn ids(events: &[Arc<Event>]) -> Vec<EventId> {
        events.iter().map(|e| e.id).collect()
    }

    fn pause() {
        // Ids of events appended after this are in a later millisecond.
        std::thread::sleep(Duration::from_millis(3));
    }

    #[tokio::test]
    async fn resume_tells_kept_truncated_and_unknown_apart_before_and_after_reopening() {
        for ring in [DEFAULT_RING, SMALL_RING] {
            let dir = tempfile::tempdir().unwrap();
            let log = open(dir.path(), 5, ring);
            // Three batches in three milliseconds; retention keeps the last five events.
            let b1 = append(&log, (0..3).map(|i| draft(&format!("t/{i}"), None, false)).collect()).await;
            pause();
            let b2 = append(&log, vec![draft("t/3", None, false), draft("t/4", None, false)]).await;
            pause();
            let b3 = append(&log, vec![draft("t/5", None, false), draft("t/6", None, false)]).await;
            let all: Vec<EventId> = [&b1[..], &b2, &b3].concat();
            assert!(all.windows(2).all(|w| w[0] < w[1]), "{all:?}");
            assert!(b1[2].next() < b2[0] && b2[1].next() < b3[0]);
            let kept = &all[2..];

            let mut log = log;
            for reopened in [false, true] {
                let ctx = format!("ring {ring:?}, reopened {reopened}");
                assert_eq!(log.resume(b1[0]).await.unwrap(), Resume::Truncated, "{ctx}");
                assert_eq!(log.resume(EventId { ms: 1, seq: 0 }).await.unwrap(), Resume::Truncated, "{ctx}");
                assert_eq!(log.resume(b1[1]).await.unwrap(), Resume::After(Some(b1[1])), "{ctx}: nothing lost");
                assert_eq!(log.resume(b1[2]).await.unwrap(), Resume::After(Some(b1[2])), "{ctx}");
                assert_eq!(log.resume(b2[0]).await.unwrap(), Resume::After(Some(b2[0])), "{ctx}");
                assert_eq!(log.resume(b3[1]).await.unwrap(), Resume::After(Some(b3[1])), "{ctx}");
                assert_eq!(log.resume(b1[2].next()).await.unwrap(), Resume::Unknown, "{ctx}: in range, absent");
                assert_eq!(log.resume(b2[1].next()).await.unwrap(), Resume::Unknown, "{ctx}: in range, absent");
                assert_eq!(log.resume(b3[1].next()).await.unwrap(), Resume::Unknown, "{ctx}: ahead of the head");

                assert_eq!(ids(&read_all(&log).await), kept, "{ctx}");
                assert_eq!(ids(&log.read_after(None, 1).await.unwrap()), [b1[2]], "{ctx}");
                assert_eq!(ids(&log.read_after(Some(b1[2]), 10).await.unwrap()), all[3..], "{ctx}");
                assert_eq!(ids(&log.read_after(Some(b1[1]), 10).await.unwrap()), kept, "{ctx}: from trimmed");
                assert_eq!(ids(&log.read_after(Some(b1[0]), 10).await.unwrap()), kept, "{ctx}: from truncated");
                assert_eq!(ids(&log.read_after(Some(b2[1].next()), 10).await.unwrap()), b3, "{ctx}: from a gap");
                assert!(log.read_after(Some(b3[1]), 10).await.unwrap().is_empty(), "{ctx}");

                log.close().await.unwrap();
                drop(log);
                log = open(dir.path(), 5, ring);
            }
        }
    }

    #[tokio::test]
    async fn events_and_frames_survive_close_and_drop_and_ids_keep_increasing() {
        let dir = tempfile::tempdir().unwrap();
        let raw = |s: &str| RawValue::from_string(s.to_owned()).unwrap();
        let drafts = || {
            vec![
                Draft::new("a/b", Some("item.created"), &raw(r#"{"x": [1, 2], "s": "é\n"}"#), Some("k1"), false)
                    .unwrap(),
                Draft::new("a/c", None, &raw(r#""line1\nline2\r\nline3""#), None, false).unwrap(),
                Draft::new("a/b", Some("item.deleted"), &raw("null"), Some("k1"), true).unwrap(),
                Draft::new("x/y/z", None, &raw("123456789012345678901234567890"), Some("k/ü"), false).unwrap(),
            ]
        };
        let log = open(dir.path(), 100, DEFAULT_RING);
        let mut written = log.append(drafts()).await.unwrap();
        log.close().await.unwrap();
        drop(log);

        // Reopened after close, then after a plain drop, with the ring both large and small.
        for (ring, close) in [(DEFAULT_RING, false), (SMALL_RING, true)] {
            let log = open(dir.path(), 100, ring);
            let read = read_all(&log).await;
            assert_eq!(read.len(), written.len());
            for (a, b) in read.iter().zip(&written) {
                assert_eq!((a.id, a.frame(), &a.topic, &a.kind), (b.id, b.frame(), &b.topic, &b.kind));
                assert_eq!((a.data.get(), &a.key, a.tombstone), (b.data.get(), &b.key, b.tombstone));
            }
            let more = log.append(drafts()).await.unwrap();
            assert!(more[0].id > written.last().unwrap().id);
            written.extend(more);
            if close {
                log.close().await.unwrap();
            }
        }
        let log = open(dir.path(), 100, DEFAULT_RING);
        assert_eq!(ids(&read_all(&log).await), ids(&written));
    }

    #[tokio::test]
    async fn keyed_state_outlives_retention_and_restarts_and_tombstones_remove_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), 2, DEFAULT_RING);
        let first = append(
            &log,
            vec![draft("a/1", Some("k"), false), draft("a/1", Some("j"), false), draft("b/1", Some("k"), false)],
        )
        .await;
        let last = append(&log, vec![draft("a/1", Some("k"), false), draft("a/1", Some("j"), true)]).await;
        assert_eq!(ids(&read_all(&log).await), last, "retention kept two events");
        async fn check(log: EmbeddedLog, first: &[EventId], last: &[EventId]) -> EmbeddedLog {
            let snap = log.snapshot(&["a/*".parse().unwrap()]).await.unwrap();
            assert_eq!(ids(&snap.events), vec![last[0]]);
            assert_eq!(snap.as_of, Some(last[1]));
            let snap = log.snapshot(&["**".parse().unwrap()]).await.unwrap();
            assert_eq!(ids(&snap.events), vec![first[2], last[0]], "b/1's state outlived its event");
            assert_eq!(snap.events[0].topic.as_str(), "b/1");
            log
        }
        let log = check(log, &first, &last).await;
        log.close().await.unwrap();
        drop(log);
        let log = check(open(dir.path(), 2, SMALL_RING), &first, &last).await;
        drop(log);
        check(open(dir.path(), 2, DEFAULT_RING), &first, &last).await;
    }

    #[tokio::test]
    async fn a_batch_larger_than_retention_is_appended_dispatched_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let router = router();
        let mut sub = router.subscribe(vec!["**".parse().unwrap()], Origin { principal: "t".into(), remote: None });
        let log = open_with(dir.path(), router, retention(3), Durability::Always, DEFAULT_RING).unwrap();
        let all = append(&log, (0..5).map(|i| draft(&format!("t/{i}"), None, false)).collect()).await;
        let got: Vec<EventId> = std::iter::from_fn(|| sub.try_recv()).map(|e| e.id).collect();
        assert_eq!(got, all);
        assert_eq!(ids(&read_all(&log).await), all[2..]);
        assert_eq!(log.resume(all[1]).await.unwrap(), Resume::After(Some(all[1])));
        assert_eq!(log.resume(all[0]).await.unwrap(), Resume::Truncated);
    }

    #[tokio::test]
    async fn expiry_drops_old_events_keeps_state_and_remembers_where_it_cut() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), 100, SMALL_RING);
        let old = append(&log, vec![draft("a/1", Some("k"), false), draft("a/2", None, false)]).await;
        pause();
        let new =
            append(&log, vec![draft("a/3", None, false), draft("a/4", None, false), draft("a/5", None, false)]).await;
        log.expire_before(new[0].ms).await.unwrap();
        assert_eq!(ids(&read_all(&log).await), new);
        assert_eq!(log.resume(old[0]).await.unwrap(), Resume::Truncated);
        assert_eq!(log.resume(old[1]).await.unwrap(), Resume::After(Some(old[1])));
        let snap = log.snapshot(&["a/*".parse().unwrap()]).await.unwrap();
        assert_eq!(ids(&snap.events), [old[0]]);
        log.expire_before(new[0].ms).await.unwrap();
        assert_eq!(ids(&read_all(&log).await), new, "nothing more to expire");
        drop(log);

        // The public entry point, with every event past its age.
        let log = open_with(
            dir.path(),
            router(),
            Retention { max_events: 100, max_age: Duration::ZERO },
            Durability::Always,
            DEFAULT_RING,
        )
        .unwrap();
        pause();
        log.expire().await.unwrap();
        assert!(read_all(&log).await.is_empty());
        assert_eq!(log.resume(new[2]).await.unwrap(), Resume::After(Some(new[2])));
        assert_eq!(log.resume(new[1]).await.unwrap(), Resume::Truncated);
        assert_eq!(log.resume(new[2].next()).await.unwrap(), Resume::Unknown);
        let snap = log.snapshot(&["a/*".parse().unwrap()]).await.unwrap();
        assert_eq!((ids(&snap.events), snap.as_of), (vec![old[0]], Some(new[2])));
        drop(log);

        let log = open(dir.path(), 100, DEFAULT_RING);
        assert!(read_all(&log).await.is_empty());
        assert_eq!(log.resume(new[2]).await.unwrap(), Resume::After(Some(new[2])), "the cut survives a restart");
        let next = append(&log, vec![draft("a/6", None, false)]).await;
        assert!(next[0] > new[2]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_share_commits_and_reach_the_router_in_id_order() {
        for durability in [Durability::Always, Durability::Batched { flush: Duration::from_millis(5) }] {
            let dir = tempfile::tempdir().unwrap();
            let router = router();
            let mut sub = router.subscribe(vec!["**".parse().unwrap()], Origin { principal: "t".into(), remote: None });
            let log = Arc::new(
                EmbeddedLog::open(dir.path(), router.clone(), Settings::new(retention(1000), durability))
                    .await
                    .unwrap(),
            );
            let tasks: Vec<_> = (0..50)
                .map(|i| {
                    let log = log.clone();
                    tokio::spawn(async move {
                        append(&log, vec![draft(&format!("t/{i}"), None, false), draft("u", None, false)]).await
                    })
                })
                .collect();
            let mut returned = Vec::new();
            for task in tasks {
                let batch = task.await.unwrap();
                assert!(batch[0] < batch[1]);
                returned.extend(batch);
            }
            let dispatched: Vec<EventId> = std::iter::from_fn(|| sub.try_recv()).map(|e| e.id).collect();
            assert_eq!(dispatched.len(), 100);
            assert!(dispatched.windows(2).all(|w| w[0] < w[1]), "dispatched in id order");
            returned.sort();
            assert_eq!(returned, dispatched, "every id distinct, and every event dispatched");
            assert_eq!(ids(&read_all(&log).await), dispatched);
            let commits = log.shared.commits.load(Ordering::Relaxed);
            println!("{durability:?}: 50 concurrent appends in {commits} commits");
            log.close().await.unwrap();
            let log = EmbeddedLog::open(dir.path(), router, Settings::new(retention(1000), durability)).await.unwrap();
            assert_eq!(ids(&read_all(&log).await), dispatched, "{durability:?}: durable after close");
        }
    }

    #[tokio::test]
    async fn batched_appends_are_kept_when_the_log_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let durability = Durability::Batched { flush: Duration::from_secs(60) };
        let log = EmbeddedLog::open(dir.path(), router(), Settings::new(retention(100), durability)).await.unwrap();
        let written = append(&log, vec![draft("a", None, false)]).await;
        drop(log);
        let log = EmbeddedLog::open(dir.path(), router(), Settings::new(retention(100), durability)).await.unwrap();
        assert_eq!(ids(&read_all(&log).await), written);
    }

    /// What a crash leaves: redb holds some events durably, the journal holds some of those
    /// again (the crash came between redb's fsync and the journal's truncation) and newer ones
    /// (answered, never fsynced into redb), then a torn entry. Opening stores exactly the newer
    /// ones, keyed state included, and empties the journal; a node switched to `always` replays
    /// it too and removes it.
    #[tokio::test]
    async fn opening_replays_the_journal_beyond_what_redb_holds() {
        for now in [Durability::Batched { flush: Duration::from_secs(60) }, Durability::Always] {
            let dir = tempfile::tempdir().unwrap();
            let log = open(dir.path(), 100, DEFAULT_RING);
            let stored = log.append(vec![draft("a/1", None, false), draft("a/2", Some("k"), false)]).await.unwrap();
            log.close().await.unwrap();
            drop(log);

            let head = stored[1].id;
            let newer: Vec<Event> = [draft("a/2", Some("k"), false), draft("a/4", Some("j"), false)]
                .into_iter()
                .enumerate()
                .map(|(i, d)| Event::new(EventId { ms: head.ms + 1, seq: i as u64 }, d))
                .collect();
            let record = |e: &Event| {
                let mut out = Vec::new();
                encode_record(e, &mut out).unwrap();
                out
            };
            let entries: Vec<(EventId, Vec<u8>)> =
                stored.iter().map(|e| &**e).chain(&newer).map(|e| (e.id, record(e))).collect();
            let (mut journal, _) = Journal::open(dir.path()).unwrap();
            journal.append(entries[1..].iter().map(|(id, r)| (*id, r.as_slice()))).unwrap();
            drop(journal);
            let path = dir.path().join(journal::FILE_NAME);
            let mut bytes = std::fs::read(&path).unwrap();
            bytes.extend_from_slice(&[9, 0, 0, 0, 1, 2]);
            std::fs::write(&path, bytes).unwrap();

            let log = EmbeddedLog::open(dir.path(), router(), Settings::new(retention(100), now)).await.unwrap();
            let expected: Vec<EventId> = stored.iter().map(|e| e.id).chain(newer.iter().map(|e| e.id)).collect();
            assert_eq!(ids(&read_all(&log).await), expected, "{now:?}: each event once, in order");
            let snap = log.snapshot(&["a/*".parse().unwrap()]).await.unwrap();
            assert_eq!(ids(&snap.events), [newer[0].id, newer[1].id], "{now:?}: keyed state replayed");
            let next = append(&log, vec![draft("a/5", None, false)]).await;
            assert!(next[0] > newer[1].id, "{now:?}: ids continue after the replayed ones");
            match now {
                Durability::Always => assert!(!path.exists(), "an `always` node keeps no journal"),
                Durability::Batched { .. } => {
                    // The append after the replay is in the journal, alone.
                    let (_, left) = Journal::open(dir.path()).unwrap();
                    assert_eq!(left.iter().map(|e| e.0).collect::<Vec<_>>(), next);
                }
            }
            log.close().await.unwrap();
            drop(log);
            let log = open(dir.path(), 100, SMALL_RING);
            assert_eq!(ids(&read_all(&log).await).len(), expected.len() + 1, "{now:?}: durable after close");
        }
    }

    #[tokio::test]
    async fn closed_logs_refuse_writes() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), 10, DEFAULT_RING);
        append(&log, vec![draft("a", None, false)]).await;
        log.close().await.unwrap();
        log.close().await.unwrap();
        assert!(matches!(log.append(vec![draft("a", None, false)]).await, Err(Error::Closed)));
        assert!(matches!(log.append(vec![]).await, Err(Error::Closed)));
        assert!(matches!(log.expire().await, Err(Error::Closed)));
        // The file is released: it opens again while the closed log still exists.
        let again = open(dir.path(), 10, DEFAULT_RING);
        assert_eq!(read_all(&again).await.len(), 1);
    }

    fn storage_error(result: Result<EmbeddedLog, Error>) -> String {
        match result {
            Err(Error::Storage(msg)) => msg,
            Err(e) => panic!("expected a storage error, got {e:?}"),
            Ok(_) => panic!("expected a storage error, got an open log"),
        }
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused_and_left_alone() {
        for garbage in [b"hello, world".to_vec(), (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect()] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(FILE_NAME);
            std::fs::write(&path, &garbage).unwrap();
            let msg = storage_error(open_with(dir.path(), router(), retention(10), Durability::Always, DEFAULT_RING));
            assert!(msg.contains("is not a Herald data directory or is corrupted"), "{msg}");
            assert!(msg.contains(FILE_NAME), "{msg}");
            assert_eq!(std::fs::read(&path).unwrap(), garbage);
        }
    }

    #[test]
    fn a_foreign_redb_database_is_refused_and_an_empty_one_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let other: TableDefinition<'_, u64, u64> = TableDefinition::new("other");
        {
            let db = redb::Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(other).unwrap().insert(1, 2).unwrap();
            txn.commit().unwrap();
        }
        let msg = storage_error(open_with(dir.path(), router(), retention(10), Durability::Always, DEFAULT_RING));
        assert!(msg.contains("is not a Herald data directory") && msg.contains("no Herald marker"), "{msg}");
        {
            let db = redb::Database::open(&path).unwrap();
            let txn = db.begin_read().unwrap();
            assert_eq!(txn.open_table(other).unwrap().get(1).unwrap().unwrap().value(), 2, "left as it was");
            assert!(txn.open_table(META).is_err());
        }

        // A meta table that is not Herald's.
        std::fs::remove_file(&path).unwrap();
        {
            let db = redb::Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META).unwrap().insert("format", b"something else".as_slice()).unwrap();
            txn.commit().unwrap();
        }
        let msg = storage_error(open_with(dir.path(), router(), retention(10), Durability::Always, DEFAULT_RING));
        assert!(msg.contains("lacks Herald's format marker"), "{msg}");

        // A database with no table at all holds nothing to lose (a first open cut short).
        std::fs::remove_file(&path).unwrap();
        drop(redb::Database::create(&path).unwrap());
        open_with(dir.path(), router(), retention(10), Durability::Always, DEFAULT_RING).unwrap();
    }

    #[test]
    fn a_file_in_use_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _log = open(dir.path(), 10, DEFAULT_RING);
        let msg = storage_error(open_with(dir.path(), router(), retention(10), Durability::Always, DEFAULT_RING));
        assert!(msg.contains("in use"), "{msg}");
    }

    #[test]
    fn records_round_trip_and_bad_ones_are_errors() {
        let id = EventId { ms: 5, seq: 6 };
        let raw = RawValue::from_string(r#"{"a":"b\nc"}"#.into()).unwrap();
        let event = Event::new(id, Draft::new("a/b", Some("t.x"), &raw, Some("k"), true).unwrap());
        let mut record = Vec::new();
        encode_record(&event, &mut record).unwrap();
        let back = decode_record(id, &record).unwrap();
        assert_eq!((back.frame(), &back.topic, &back.kind), (event.frame(), &event.topic, &event.kind));
        assert_eq!((back.data.get(), &back.key, back.tombstone), (event.data.get(), &event.key, event.tombstone));

        let at = |i: usize, b: u8| {
            let mut r = record.clone();
            r[i] = b;
            r
        };
        let topic_at = HEADER_LEN;
        let data_at = record.len() - 1;
        for bad in [
            vec![],
            record[..HEADER_LEN - 1].to_vec(),
            record[..record.len() - 1].to_vec(),
            [&record[..], b"x"].concat(),
            at(0, 9),           // unknown version
            at(1, 0x80),        // unknown flag
            at(2, 200),         // topic length
            at(topic_at, b' '), // not a topic
            at(topic_at, 0xff), // not UTF-8
            at(data_at, b'x'),  // not JSON
        ] {
            match decode_record(id, &bad) {
                Err(Error::Storage(msg)) => assert!(msg.contains("5-6 is corrupted"), "{msg}"),
                other => panic!("{bad:?} decoded to {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_corrupted_stored_record_is_a_storage_error() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), 10, DEFAULT_RING);
        let written = append(&log, vec![draft("a", None, false)]).await;
        log.close().await.unwrap();
        drop(log);
        {
            let db = redb::Database::open(dir.path().join(FILE_NAME)).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(EVENTS).unwrap().insert(&written[0].to_bytes(), b"\x01\x00junk".as_slice()).unwrap();
            txn.commit().unwrap();
        }
        let msg = storage_error(open_with(dir.path(), router(), retention(10), Durability::Always, DEFAULT_RING));
        assert!(msg.contains("is corrupted"), "{msg}");
    }

    /// Rough figures for the report; `cargo test --release -p herald --lib throughput -- --ignored --nocapture`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore]
    async fn throughput() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(open(dir.path(), 1_000_000, DEFAULT_RING));
        let data =
            RawValue::from_string(r#"{"status":"Synced","health":"Healthy","revision":"abc123"}"#.into()).unwrap();
        let template = Draft::new("bench/topic", Some("item.updated"), &data, None, false).unwrap();
        let one = move || vec![template.clone()];

        let t = Instant::now();
        for _ in 0..1000 {
            log.append(one()).await.unwrap();
        }
        let e = t.elapsed();
        println!("always, sequential: 1000 appends in {e:?} = {:.0}/s", 1000.0 / e.as_secs_f64());

        let t = Instant::now();
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let log = log.clone();
                let one = one.clone();
                tokio::spawn(async move {
                    for _ in 0..100 {
                        log.append(one()).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let e = t.elapsed();
        println!("always, 64 concurrent publishers: 6400 appends in {e:?} = {:.0}/s", 6400.0 / e.as_secs_f64());

        let t = Instant::now();
        for _ in 0..200 {
            log.append((0..1000).flat_map(|_| one()).collect()).await.unwrap();
        }
        let e = t.elapsed();
        println!("always, batches of 1000: 200k events in {e:?} = {:.0}/s", 200_000.0 / e.as_secs_f64());

        let read = |log: Arc<EmbeddedLog>| async move {
            let t = Instant::now();
            let mut cursor = None;
            let mut n = 0;
            loop {
                let chunk = log.read_after(cursor, 1024).await.unwrap();
                n += chunk.len();
                match chunk.last() {
                    Some(e) => cursor = Some(e.id),
                    None => break,
                }
            }
            (n, t.elapsed())
        };
        let (n, e) = read(log.clone()).await;
        println!("read_after (disk, then the ring): {n} events in {e:?} = {:.0}/s", n as f64 / e.as_secs_f64());
        let ring_start = log.shared.view.read().unwrap().ring.front().map(|e| e.id);
        let t = Instant::now();
        let mut cursor = ring_start;
        let mut n = 0;
        while let Some(last) = log.read_after(cursor, 1024).await.unwrap().last() {
            n += 1024;
            cursor = Some(last.id);
        }
        let e = t.elapsed();
        println!("read_after (ring only): ~{n} events in {e:?} = {:.0}/s", n as f64 / e.as_secs_f64());
        log.close().await.unwrap();
    }
}
