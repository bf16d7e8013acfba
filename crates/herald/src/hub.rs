//! Routing and fan-out of events to subscribers.
//!
//! The [`Router`] keeps every open subscription in a trie of pattern segments, so delivering an
//! event walks the event topic's segments once instead of testing every subscriber: the cost of
//! a publish grows with the number of *matching* subscribers, not with all of them.
//!
//! Each event reaches a subscriber as an `Arc<Event>` whose SSE frame was encoded once; nothing
//! is serialised or copied per subscriber.
//!
//! ## Authorisation
//! A subscription may carry an allow-list (the patterns its token may read, when they do not
//! cover its own patterns: see [`Access::subscription_filter`](crate::auth::Access::subscription_filter)).
//! Dispatch then queues an event on it only if the allow-list matches the topic too. Without
//! one, the check costs a branch.
//!
//! ## Ordering
//! [`Router::dispatch`] must be called by one caller at a time, in id order (the event log does
//! this right after an append becomes durable). Each subscriber's queue therefore holds events
//! in increasing id order.
//!
//! ## Queues
//! Each subscription's queue is a `VecDeque` and the waker of its one reader under one mutex,
//! kept in the subscription's [`Shared`]; not a `tokio::sync::mpsc` channel, whose cache-padded
//! state and first 32-slot block cost ~800 bytes per subscription before any event (a sixth of
//! the ≤ 4 KiB budget of an idle stream), and whose semaphore took one more atomic per event.
//! Queuing an event is one uncontended lock, a push, and a wake when the reader waits; a run of
//! events on one topic is queued under one lock, and a reader takes what is queued under one.
//!
//! A queue is bounded twice, by its subscription's [`Bounds`]: in events (`limits.stream_queue`)
//! and in the bytes of their encoded frames (`limits.stream_queue_bytes`), so that a topic of
//! large events cannot make one slow stream hold `stream_queue` of them. An event larger than the
//! byte bound still goes on an *empty* queue: no event is too big to deliver.
//!
//! ## Lagging
//! Dispatch queues what fits; a subscriber whose queue cannot take an event when it arrives is
//! taken out of the trie and marked lagged. It receives nothing more: its stream writes what was
//! already queued (at most its bounds, so a client that had no event id yet gets one to resume
//! from), then ends, and the client resumes from its last event id through replay (SPEC §7). An
//! event is never silently skipped on a stream that stays open: events reach a stream in id
//! order, without a gap, until it ends. That last write is no open-ended drain either: a stream
//! whose client stops taking it is closed by the stall rule below, which drops the queue at once.
//!
//! ## Stalling
//! A stream whose writer takes nothing for its stall limit (`limits.write_stall_s`) while
//! something waits for it (queued events, or a frame handed to the socket) is closed the same
//! way, as lagged. The writer cannot always notice by itself: hyper stops polling a body while
//! the socket, or an HTTP/2 stream's flow-control window, takes nothing, so a timer inside the
//! body would never be looked at. Each subscription therefore notes, on the router's clock, since
//! when something has waited for its writer ([`Subscription::writing`] when the stream hands a
//! frame out, [`Subscription::wrote`] when the writer comes back for more, and dispatch when it
//! queues an event), and one task per router calls [`Router::sweep`] a few times per stall limit
//! to close those that waited too long. This measures whole frames: a frame the socket takes in
//! small pieces for longer than the limit counts as a stall too, unless its writer reports the
//! pieces ([`WriteWatch::progress`]), as the direct HTTP/1.1 writer does, which also closes its
//! own stream at the limit without waiting for the sweep.
//!
//! ## Closing
//! Dropping a [`Subscription`] removes it from the router. A subscription may hold its stream's
//! [`Admission`] (its seat: `/ready`'s `clients`, `limits.max_clients`). The seat is given back,
//! and the stream counted in `herald_clients_disconnected_total` (lagging and stalling count as
//! `lagged`), exactly once: when the subscription is dropped, or as soon as the router closes it
//! for stalling, whichever comes first. A stream whose body hyper holds but no longer polls thus
//! gives back its queue and its seat at once; what hyper itself buffered for it goes when the
//! client reads or leaves.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::event::Event;
use crate::shutdown::Admission;
use crate::telemetry::{Disconnect, Metrics};
use crate::topic::{Pattern, Segment, Topic};

/// Who and where a subscription is, for `/subscriptions` and the per-principal limit.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The authenticated principal (`anonymous` in open mode).
    pub principal: Arc<str>,
    /// The client's socket address.
    pub remote: Option<SocketAddr>,
}

/// How much one subscription's queue may hold, and how long its stream may leave what waits for
/// it (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Events queued at most (`limits.stream_queue`).
    pub events: usize,
    /// Bytes of encoded frames queued at most (`limits.stream_queue_bytes`), except that one
    /// event of any size goes on an empty queue.
    pub bytes: usize,
    /// How long something may wait for the stream's writer before the stream is closed as
    /// lagged (`limits.write_stall_s`); `None` for no limit.
    pub stall: Option<Duration>,
}

impl Bounds {
    /// The bounds `limits` sets for every stream.
    pub fn of(limits: &crate::config::Limits) -> Self {
        Self { events: limits.stream_queue, bytes: limits.stream_queue_bytes, stall: Some(limits.write_stall_s) }
    }
}

/// What a subscription shares between its stream and the router.
#[derive(Debug)]
pub struct Shared {
    /// The router-wide id of the subscription.
    pub id: u64,
    /// The patterns it subscribed to.
    pub patterns: Box<[Pattern]>,
    /// Who opened it.
    pub origin: Origin,
    /// When it was opened.
    pub since: SystemTime,
    /// Events written to the stream so far (replay included).
    pub sent: AtomicU64,
    /// Set when the router took it out for falling behind its queue or stalling.
    pub lagged: AtomicBool,
    /// Set when the router closed it for stalling: its queue is gone, and its stream must end
    /// at once rather than carry on with what it was doing (a replay, say).
    closed: AtomicBool,
    /// On the router's clock ([`Router::now_ms`], never 0): since when something has waited for
    /// the stream's writer without it coming back for more; 0 while nothing waits. A plain
    /// atomic, so that the sweep reads it without taking the queue's lock.
    waiting_since: AtomicU64,
    /// [`Bounds::events`], at least 1.
    max_events: usize,
    /// [`Bounds::bytes`].
    max_bytes: usize,
    /// [`Bounds::stall`] in milliseconds; 0 for none.
    stall_ms: u64,
    /// Events queued for the stream, and its waker while it waits for one.
    queue: Mutex<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    events: VecDeque<Arc<Event>>,
    /// The encoded bytes of `events` ([`cost`]).
    bytes: usize,
    waiting: Option<Waker>,
    /// The stream's seat, until the subscription or the router gives it back.
    seat: Option<Admission>,
    /// Why the stream ended, once it or the router said so; `None` while it is open (a
    /// subscription dropped then ended because its client went away).
    ended: Option<Disconnect>,
}

/// What an event costs a queue: the bytes of its encoded frame (the envelope's few more bytes
/// are not counted), or of its payload for an event without a frame.
fn cost(event: &Event) -> usize {
    event.frame().len().max(event.data.get().len())
}

impl Shared {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `events` in order while they fit the bounds, and wakes the reader. Returns how many
    /// were queued: fewer than `events.len()` when the queue is full. `now` is the router's clock.
    fn push(&self, events: &[Arc<Event>], now: u64) -> usize {
        let mut queue = self.queue();
        let mut queued = 0;
        for event in events {
            let cost = cost(event);
            let full = queue.events.len() >= self.max_events
                || (!queue.events.is_empty() && queue.bytes.saturating_add(cost) > self.max_bytes);
            if full {
                break;
            }
            queue.events.push_back(event.clone());
            queue.bytes += cost;
            queued += 1;
        }
        if queued == 0 {
            return 0;
        }
        // The stall clock starts with the first event nobody has taken yet (a reader that waits
        // takes it at once and says so by waiting again).
        if self.waiting_since.load(Ordering::Relaxed) == 0 {
            self.waiting_since.store(now, Ordering::Relaxed);
        }
        let waker = queue.waiting.take();
        drop(queue);
        if let Some(waker) = waker {
            waker.wake();
        }
        queued
    }

    /// Marks the subscription lagged: it receives nothing more, and its reader ends once it has
    /// taken what is queued. Returns whether this call marked it.
    fn lag(&self) -> bool {
        let first = !self.lagged.swap(true, Ordering::Relaxed);
        let mut queue = self.queue();
        queue.ended.get_or_insert(Disconnect::Lagged);
        let waker = queue.waiting.take();
        drop(queue);
        if let Some(waker) = waker {
            waker.wake();
        }
        first
    }

    /// Marks the subscription lagged, drops its queue and wakes the reader, which then ends.
    /// Returns whether this call marked it, and its seat with the reason to count, if it still
    /// held one.
    fn close_stalled(&self) -> (bool, Option<(Admission, Disconnect)>) {
        let first = !self.lagged.swap(true, Ordering::Relaxed);
        self.closed.store(true, Ordering::Relaxed);
        self.waiting_since.store(0, Ordering::Relaxed);
        let mut queue = self.queue();
        let events = std::mem::take(&mut queue.events);
        queue.bytes = 0;
        // A stream that already ended by itself (and stalled writing its last words) keeps its
        // own reason.
        let reason = *queue.ended.get_or_insert(Disconnect::Lagged);
        let seat = queue.seat.take().map(|seat| (seat, reason));
        let waker = queue.waiting.take();
        drop(queue);
        // Its memory goes now, not when the stream gets to run again.
        drop(events);
        if let Some(waker) = waker {
            waker.wake();
        }
        (first, seat)
    }

    /// Whether something has waited for the stream's writer for its whole stall limit.
    fn stalled(&self, now: u64) -> bool {
        let since = self.waiting_since.load(Ordering::Relaxed);
        self.stall_ms != 0 && since != 0 && now.saturating_sub(since) >= self.stall_ms
    }

    fn depth(&self) -> usize {
        self.queue().events.len()
    }
}

struct Slot {
    shared: Arc<Shared>,
    /// When set, only events whose topic one of these patterns matches are queued.
    allow: Option<Arc<[Pattern]>>,
    /// The dispatch round that last queued an event here: a subscriber whose several patterns
    /// all match one event still receives it once, without sorting or a per-event set.
    last_round: AtomicU64,
}

/// The subscribers at one place in the trie: a vector to walk in dispatch, and each one's
/// position in it, so that removing one (a client leaving) is O(1) rather than a scan, which made
/// 10k streams closing together cost 10k² steps under the router's write lock.
#[derive(Default)]
struct Members {
    list: Vec<Arc<Slot>>,
    position: HashMap<u64, usize>,
}

impl Members {
    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Adds `slot`, once: a subscription listing one pattern twice is one member.
    fn push(&mut self, slot: &Arc<Slot>) {
        if let std::collections::hash_map::Entry::Vacant(place) = self.position.entry(slot.shared.id) {
            place.insert(self.list.len());
            self.list.push(slot.clone());
        }
    }

    fn remove(&mut self, id: u64) {
        let Some(at) = self.position.remove(&id) else { return };
        self.list.swap_remove(at);
        if let Some(moved) = self.list.get(at) {
            self.position.insert(moved.shared.id, at);
        }
    }
}

#[derive(Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    any: Option<Box<Node>>,
    /// Subscribers whose pattern ends here.
    exact: Members,
    /// Subscribers whose pattern ends here with `**`.
    rest: Members,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.any.is_none() && self.exact.is_empty() && self.rest.is_empty()
    }

    fn insert(&mut self, segments: &[Segment], slot: &Arc<Slot>) {
        match segments.split_first() {
            None => self.exact.push(slot),
            Some((Segment::Rest, _)) => self.rest.push(slot),
            Some((Segment::One, tail)) => self.any.get_or_insert_with(Default::default).insert(tail, slot),
            Some((Segment::Literal(lit), tail)) => self.children.entry(lit.clone()).or_default().insert(tail, slot),
        }
    }

    /// Removes subscriber `id` from the path of `segments`, pruning nodes left empty.
    fn remove(&mut self, segments: &[Segment], id: u64) {
        match segments.split_first() {
            None => self.exact.remove(id),
            Some((Segment::Rest, _)) => self.rest.remove(id),
            Some((Segment::One, tail)) => {
                if let Some(any) = &mut self.any {
                    any.remove(tail, id);
                    if any.is_empty() {
                        self.any = None;
                    }
                }
            }
            Some((Segment::Literal(lit), tail)) => {
                if let Some(child) = self.children.get_mut(lit) {
                    child.remove(tail, id);
                    if child.is_empty() {
                        self.children.remove(lit);
                    }
                }
            }
        }
    }

    /// Calls `f` for every subscriber whose pattern matches the remaining `segments`.
    fn visit<'a>(&'a self, segments: &[&str], f: &mut impl FnMut(&'a Arc<Slot>)) {
        let Some((head, tail)) = segments.split_first() else {
            self.exact.list.iter().for_each(&mut *f);
            return;
        };
        self.rest.list.iter().for_each(&mut *f);
        if let Some(child) = self.children.get(*head) {
            child.visit(tail, f);
        }
        if let Some(any) = &self.any {
            any.visit(tail, f);
        }
    }
}

/// Every open subscription (`slots`, what the sweep and `/subscriptions` walk), and the trie of
/// those that receive live events (`root`): a stream replaying history is open but not routed.
#[derive(Default)]
struct Index {
    root: Node,
    slots: HashMap<u64, Arc<Slot>>,
}

/// A drained queue holding more slots than this frees them.
const SHRINK_ABOVE: usize = 64;

/// The sweep runs this many times per stall limit, so a stall is closed within a quarter of
/// the limit after it is reached...
const SWEEPS_PER_STALL: u32 = 4;
/// ... but not more often than this (a limit is whole seconds in the configuration)...
const SWEEP_AT_MOST_EVERY: Duration = Duration::from_millis(50);
/// ... nor less often than this.
const SWEEP_AT_LEAST_EVERY: Duration = Duration::from_secs(5);

/// The set of open subscriptions and the fan-out of events to them.
pub struct Router {
    index: RwLock<Index>,
    next_id: AtomicU64,
    round: AtomicU64,
    /// The bounds of subscriptions opened without their own ([`Router::subscribe`]).
    defaults: Bounds,
    metrics: Arc<Metrics>,
    /// Where the router's millisecond clock starts.
    epoch: Instant,
    /// Milliseconds between two sweeps: what the subscription with the shortest stall limit
    /// needs; `u64::MAX` until one has a limit.
    sweep_every_ms: AtomicU64,
    /// Whether the sweeping task was started.
    sweeping: AtomicBool,
}

/// What one [`Router::dispatch`] call did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dispatched {
    /// Events queued on streams, counting each stream once per event.
    pub delivered: u64,
    /// Subscribers dropped because their queue was full.
    pub lagged: u64,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router").field("subscriptions", &self.len()).finish()
    }
}

impl Router {
    /// A router whose subscriptions opened without their own [`Bounds`] each queue at most
    /// `queue_len` events, and the default `limits.stream_queue_bytes` of frames, with no stall
    /// limit. Streams open theirs with [`Router::open`].
    pub fn new(queue_len: usize, metrics: Arc<Metrics>) -> Self {
        let bytes = crate::config::Limits::default().stream_queue_bytes;
        Self {
            index: RwLock::default(),
            next_id: AtomicU64::new(1),
            round: AtomicU64::new(0),
            defaults: Bounds { events: queue_len, bytes, stall: None },
            metrics,
            epoch: Instant::now(),
            sweep_every_ms: AtomicU64::new(u64::MAX),
            sweeping: AtomicBool::new(false),
        }
    }

    /// Registers a subscription with the router's bounds; events dispatched from now on reach
    /// it.
    pub fn subscribe(self: &Arc<Self>, patterns: Vec<Pattern>, origin: Origin) -> Subscription {
        self.subscribe_filtered(patterns, origin, None)
    }

    /// [`Router::subscribe`] with an allow-list: when given, an event reaches the subscription
    /// only if its topic matches one of `patterns` *and* one of `allow`.
    pub fn subscribe_filtered(
        self: &Arc<Self>,
        patterns: Vec<Pattern>,
        origin: Origin,
        allow: Option<Arc<[Pattern]>>,
    ) -> Subscription {
        let mut sub = self.open(patterns, origin, allow, self.defaults, None);
        sub.listen();
        sub
    }

    /// Opens a subscription with its own `bounds`, holding its stream's `seat` (see the module
    /// docs): open, listed and watched for stalls, but receiving no event until
    /// [`Subscription::listen`], so a stream can replay history first. `allow` is as in
    /// [`Router::subscribe_filtered`].
    pub fn open(
        self: &Arc<Self>,
        patterns: Vec<Pattern>,
        origin: Origin,
        allow: Option<Arc<[Pattern]>>,
        bounds: Bounds,
        seat: Option<Admission>,
    ) -> Subscription {
        let stall_ms = bounds.stall.map_or(0, |stall| (stall.as_millis() as u64).max(1));
        let shared = Arc::new(Shared {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            patterns: patterns.into(),
            origin,
            since: SystemTime::now(),
            sent: AtomicU64::new(0),
            lagged: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            waiting_since: AtomicU64::new(0),
            max_events: bounds.events.max(1),
            max_bytes: bounds.bytes,
            stall_ms,
            queue: Mutex::new(Queue { seat, ..Queue::default() }),
        });
        let slot = Arc::new(Slot { shared: shared.clone(), allow, last_round: AtomicU64::new(0) });
        self.write().slots.insert(shared.id, slot);
        if let Some(stall) = bounds.stall {
            self.start_sweeping(stall);
        }
        Subscription { shared, router: self.clone(), listening: false }
    }

    /// Makes sure a task sweeps for stalls at least every `stall / SWEEPS_PER_STALL`. Without a
    /// runtime (a unit test's plain thread) nothing is started; [`Router::sweep`] still works.
    fn start_sweeping(self: &Arc<Self>, stall: Duration) {
        let every = (stall / SWEEPS_PER_STALL).clamp(SWEEP_AT_MOST_EVERY, SWEEP_AT_LEAST_EVERY);
        self.sweep_every_ms.fetch_min(every.as_millis() as u64, Ordering::Relaxed);
        if self.sweeping.load(Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        if !self.sweeping.swap(true, Ordering::Relaxed) {
            runtime.spawn(sweep_periodically(Arc::downgrade(self)));
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The router's clock in milliseconds, from 1 (0 means "not waiting" in [`Shared`]).
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Takes `shared` out of the trie; it stays open.
    fn unroute(&self, shared: &Shared) {
        let mut index = self.write();
        for pattern in shared.patterns.iter() {
            index.root.remove(pattern.segments(), shared.id);
        }
    }

    fn remove(&self, id: u64) {
        let mut index = self.write();
        if let Some(slot) = index.slots.remove(&id) {
            for pattern in slot.shared.patterns.iter() {
                index.root.remove(pattern.segments(), id);
            }
        }
    }

    /// Gives a stream's seat back and counts why it ended.
    fn give_back(&self, seat: Admission, reason: Disconnect) {
        drop(seat);
        self.metrics.clients_connected.decrement(1.0);
        self.metrics.disconnected(reason);
    }

    /// Closes `shared` as stalled (see [`Shared::close_stalled`]) and removes it; whether this
    /// call marked it lagged.
    fn drop_stalled(&self, shared: &Shared) -> bool {
        let (first, seat) = shared.close_stalled();
        self.remove(shared.id);
        if let Some((seat, reason)) = seat {
            self.give_back(seat, reason);
        }
        first
    }

    /// Queues each event on every subscription one of whose patterns matches its topic.
    /// See the module docs for the ordering contract.
    ///
    /// Consecutive events on one topic (a publish batch, mostly) are matched once and queued on
    /// each subscriber under one lock: the cache misses of reaching a subscriber's queue, most
    /// of dispatch's cost with 10k subscribers, are paid once per run rather than per event.
    pub fn dispatch(&self, events: &[Arc<Event>]) -> Dispatched {
        let mut out = Dispatched::default();
        let mut lagged = Vec::new();
        let now = self.now_ms();
        {
            let index = self.read();
            let mut segments: Vec<&str> = Vec::with_capacity(8);
            let mut rest = events;
            while let Some(first) = rest.first() {
                let len = rest.iter().take_while(|e| e.topic == first.topic).count();
                let (run, tail) = rest.split_at(len);
                rest = tail;
                let round = self.round.fetch_add(1, Ordering::Relaxed) + 1;
                segments.clear();
                segments.extend(first.topic.segments());
                index.root.visit(&segments, &mut |slot| {
                    if slot.last_round.swap(round, Ordering::Relaxed) == round {
                        return;
                    }
                    if slot.allow.as_deref().is_some_and(|allow| !any_matches(allow, &first.topic)) {
                        return;
                    }
                    if slot.shared.lagged.load(Ordering::Relaxed) {
                        // Lagged earlier in this call (or closed by a sweep); out of the trie
                        // below.
                        return;
                    }
                    let queued = slot.shared.push(run, now);
                    out.delivered += queued as u64;
                    if queued < run.len() && slot.shared.lag() {
                        out.lagged += 1;
                        lagged.push(slot.shared.clone());
                    }
                });
            }
        }
        self.metrics.events_delivered.increment(out.delivered);
        // Out of the trie, still open (and listed, and watched for stalls) while its stream
        // writes what was queued.
        for shared in lagged {
            self.unroute(&shared);
        }
        out
    }

    /// Closes, as lagged, every subscription whose writer has left something waiting for its
    /// whole stall limit (see the module docs); returns how many. Called periodically by the
    /// router's own task; public for tests and for callers without one.
    pub fn sweep(&self) -> usize {
        let now = self.now_ms();
        let stalled: Vec<Arc<Slot>> =
            self.read().slots.values().filter(|slot| slot.shared.stalled(now)).cloned().collect();
        for slot in &stalled {
            let shared = &slot.shared;
            if self.drop_stalled(shared) {
                tracing::debug!(
                    id = shared.id,
                    remote = ?shared.origin.remote,
                    stall_ms = shared.stall_ms,
                    "closed a stream whose client took nothing for write_stall_s"
                );
            }
        }
        stalled.len()
    }

    fn sweep_every(&self) -> Duration {
        Duration::from_millis(self.sweep_every_ms.load(Ordering::Relaxed))
    }

    /// The number of open subscriptions.
    pub fn len(&self) -> usize {
        self.read().slots.len()
    }

    /// Whether no subscription is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A description of every open subscription with its current queue depth.
    pub fn list(&self) -> Vec<(Arc<Shared>, usize)> {
        let index = self.read();
        let mut out: Vec<_> = index.slots.values().map(|slot| (slot.shared.clone(), slot.shared.depth())).collect();
        out.sort_by_key(|(s, _)| s.id);
        out
    }

    /// Open subscriptions of one principal.
    pub fn count_principal(&self, principal: &str) -> usize {
        self.read().slots.values().filter(|s| &*s.shared.origin.principal == principal).count()
    }
}

/// Sweeps `router` for stalls until it is gone. It holds the router only while sweeping, so a
/// dropped hub takes its task with it at the next tick.
async fn sweep_periodically(router: Weak<Router>) {
    loop {
        let Some(every) = router.upgrade().map(|r| r.sweep_every()) else { return };
        tokio::time::sleep(every).await;
        let Some(router) = router.upgrade() else { return };
        router.sweep();
    }
}

/// An open subscription: the receiving end of its queue. Dropping it unsubscribes.
pub struct Subscription {
    shared: Arc<Shared>,
    router: Arc<Router>,
    /// Whether [`Subscription::listen`] put it in the trie.
    listening: bool,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("id", &self.shared.id).finish()
    }
}

impl Subscription {
    /// What the subscription shares with the router.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Starts routing live events to it (once; never after the router closed it).
    pub fn listen(&mut self) {
        if std::mem::replace(&mut self.listening, true) {
            return;
        }
        let mut index = self.router.write();
        // Checked under the write lock, which a closing router takes to remove it.
        let Some(slot) = index.slots.get(&self.shared.id).cloned() else { return };
        for pattern in self.shared.patterns.iter() {
            index.root.insert(pattern.segments(), &slot);
        }
    }

    /// Whether [`Subscription::listen`] was called.
    pub fn listening(&self) -> bool {
        self.listening
    }

    /// Stops routing events to it and drops what is queued, noting why its stream ends (unless
    /// the router closed it first). It stays open, and watched for stalls, until dropped, while
    /// the stream's last frames go out.
    pub fn finish(&mut self, reason: Disconnect) {
        if self.listening {
            self.router.unroute(&self.shared);
        }
        let mut queue = self.shared.queue();
        queue.ended.get_or_insert(reason);
        let events = std::mem::take(&mut queue.events);
        queue.bytes = 0;
        drop(queue);
        drop(events);
    }

    /// Why its stream ended, once it or the router said so.
    pub fn ended(&self) -> Option<Disconnect> {
        self.shared.queue().ended
    }

    /// Says the stream handed a frame to its writer: until [`Subscription::wrote`], a writer that
    /// does not come back within the stall limit has stalled.
    pub fn writing(&self) {
        if self.shared.stall_ms != 0 && self.shared.waiting_since.load(Ordering::Relaxed) == 0 {
            self.shared.waiting_since.store(self.router.now_ms(), Ordering::Relaxed);
        }
    }

    /// Says the stream's writer took everything handed to it and asks for more.
    pub fn wrote(&self) {
        self.shared.waiting_since.store(0, Ordering::Relaxed);
    }

    /// What the writer of this stream's socket needs to keep its stall limit itself.
    pub fn write_watch(&self) -> WriteWatch {
        WriteWatch { shared: self.shared.clone(), router: self.router.clone() }
    }

    /// The next queued event; `None` once the subscription lagged and its queue is empty.
    pub async fn recv(&mut self) -> Option<Arc<Event>> {
        std::future::poll_fn(|cx| self.poll_take(cx, Queue::pop).map(Option::flatten)).await
    }

    /// Waits for queued events and moves them to `out` under one lock, in order, while fewer
    /// than `max` and their frames within `max_bytes` (at least one event); `false` once the
    /// subscription lagged and its queue is empty.
    pub async fn recv_many(&mut self, out: &mut Vec<Arc<Event>>, max: usize, max_bytes: usize) -> bool {
        let max = max.max(1);
        let take = |cx: &mut Context<'_>| {
            self.poll_take(cx, |queue: &mut Queue| {
                let (mut taken, mut bytes) = (0, 0);
                while taken < max {
                    let Some(next) = queue.events.front() else { break };
                    let cost = cost(next);
                    if taken > 0 && bytes + cost > max_bytes {
                        break;
                    }
                    bytes += cost;
                    taken += 1;
                    out.extend(queue.pop());
                }
            })
        };
        std::future::poll_fn(take).await.is_some()
    }

    /// Calls `take` on the queue once it holds an event; `None` once the subscription lagged
    /// and the queue is empty.
    fn poll_take<T>(&self, cx: &mut Context<'_>, take: impl FnOnce(&mut Queue) -> T) -> Poll<Option<T>> {
        let mut queue = self.shared.queue();
        if !queue.events.is_empty() {
            return Poll::Ready(Some(take(&mut queue)));
        }
        if self.lagged() {
            return Poll::Ready(None);
        }
        // A reader waiting for events has nothing in its writer: no stall is possible until
        // something is queued again.
        self.shared.waiting_since.store(0, Ordering::Relaxed);
        // A queue that took a burst gives the memory back once drained, so an idle stream
        // stays small.
        if queue.events.capacity() > SHRINK_ABOVE {
            queue.events = VecDeque::new();
        }
        match &mut queue.waiting {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            waiting => *waiting = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// A queued event if there is one, without waiting.
    pub fn try_recv(&mut self) -> Option<Arc<Event>> {
        self.shared.queue().pop()
    }

    /// Whether the router took this subscription out for falling behind or stalling.
    pub fn lagged(&self) -> bool {
        self.shared.lagged.load(Ordering::Relaxed)
    }

    /// Whether the router closed it for stalling: its stream should end now.
    pub fn closed(&self) -> bool {
        self.shared.closed.load(Ordering::Relaxed)
    }
}

impl Queue {
    fn pop(&mut self) -> Option<Arc<Event>> {
        let event = self.events.pop_front()?;
        self.bytes = self.bytes.saturating_sub(cost(&event));
        Some(event)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.router.remove(self.shared.id);
        let mut queue = self.shared.queue();
        let seat = queue.seat.take();
        let reason = queue.ended.unwrap_or(Disconnect::Client);
        drop(queue);
        if let Some(seat) = seat {
            self.router.give_back(seat, reason);
        }
    }
}

/// What the writer of a stream's socket needs to keep the stream's stall limit itself (see the
/// module docs): the limit, a way to say bytes went out, and a way to say none did.
#[derive(Debug, Clone)]
pub struct WriteWatch {
    shared: Arc<Shared>,
    router: Arc<Router>,
}

impl WriteWatch {
    /// How long the socket may take nothing while a frame waits; `None` for no limit.
    pub fn limit(&self) -> Option<Duration> {
        (self.shared.stall_ms != 0).then(|| Duration::from_millis(self.shared.stall_ms))
    }

    /// Says the socket took some bytes of a frame: the stall clock starts again.
    pub fn progress(&self) {
        if self.shared.waiting_since.load(Ordering::Relaxed) != 0 {
            self.shared.waiting_since.store(self.router.now_ms(), Ordering::Relaxed);
        }
    }

    /// Says the socket took nothing for the whole limit: the subscription is closed as lagged
    /// now (its queue and seat given back), and its stream ends.
    pub fn stalled(&self) {
        self.router.drop_stalled(&self.shared);
    }
}

/// Whether any of `patterns` matches `topic`.
pub fn any_matches(patterns: &[Pattern], topic: &Topic) -> bool {
    patterns.iter().any(|p| p.matches(topic))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Draft, EventId};
    use crate::shutdown::Lifecycle;
    use serde_json::value::RawValue;
    use std::future::Future;

    fn event(seq: u64, topic: &str) -> Arc<Event> {
        sized(seq, topic, 0)
    }

    /// An event whose payload is a JSON string of `len` letters (its frame a few bytes more).
    fn sized(seq: u64, topic: &str, len: usize) -> Arc<Event> {
        let text = if len == 0 { "1".to_owned() } else { format!("\"{}\"", "x".repeat(len)) };
        let data = RawValue::from_string(text).unwrap();
        Arc::new(Event::new(EventId { ms: 1, seq }, Draft::new(topic, None, &data, None, false).unwrap()))
    }

    fn sub(router: &Arc<Router>, patterns: &[&str]) -> Subscription {
        let patterns = patterns.iter().map(|p| p.parse().unwrap()).collect();
        router.subscribe(patterns, Origin { principal: "t".into(), remote: None })
    }

    /// A listening subscription to `a` with `bounds`, holding a seat of `life`.
    fn seated(router: &Arc<Router>, life: &Lifecycle, bounds: Bounds) -> Subscription {
        seated_on(router, life, bounds, "a")
    }

    fn seated_on(router: &Arc<Router>, life: &Lifecycle, bounds: Bounds, topic: &str) -> Subscription {
        let key: Arc<str> = "t".into();
        let seat = life.admit(10, &key, 0).unwrap();
        let origin = Origin { principal: key, remote: None };
        let mut s = router.open(vec![topic.parse().unwrap()], origin, None, bounds, Some(seat));
        s.listen();
        s
    }

    fn drain(s: &mut Subscription) -> Vec<u64> {
        std::iter::from_fn(|| s.try_recv()).map(|e| e.id.seq).collect()
    }

    fn lagged_count(metrics: &Metrics) -> String {
        let text = metrics.render();
        let line = text.lines().find(|l| l.starts_with("herald_clients_disconnected_total{reason=\"lagged\"}"));
        line.and_then(|l| l.split_whitespace().last()).unwrap_or("0").to_owned()
    }

    const UNBOUNDED: Bounds = Bounds { events: 1 << 20, bytes: usize::MAX, stall: None };

    #[test]
    fn routes_by_pattern_once_per_subscriber() {
        let router = Arc::new(Router::new(16, Default::default()));
        let mut a = sub(&router, &["apps/*"]);
        let mut b = sub(&router, &["apps/**", "apps/x", "**"]);
        let mut c = sub(&router, &["other/x"]);
        let out = router.dispatch(&[event(1, "apps/x"), event(2, "apps/x/y"), event(3, "other/x"), event(4, "apps")]);
        assert_eq!(drain(&mut a), vec![1]);
        assert_eq!(drain(&mut b), vec![1, 2, 3, 4]);
        assert_eq!(drain(&mut c), vec![3]);
        assert_eq!(out, Dispatched { delivered: 6, lagged: 0 });
    }

    #[test]
    fn runs_of_one_topic_are_queued_in_order_with_the_rest() {
        let router = Arc::new(Router::new(16, Default::default()));
        let mut both = sub(&router, &["a", "b"]);
        let mut a = sub(&router, &["a"]);
        let events = [event(1, "a"), event(2, "a"), event(3, "b"), event(4, "a"), event(5, "a"), event(6, "a")];
        let out = router.dispatch(&events);
        assert_eq!(drain(&mut both), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(drain(&mut a), vec![1, 2, 4, 5, 6]);
        assert_eq!(out, Dispatched { delivered: 11, lagged: 0 });
    }

    #[test]
    fn an_allow_list_filters_what_the_patterns_match() {
        let router = Arc::new(Router::new(16, Default::default()));
        let allow: Vec<Pattern> = vec!["a/x".parse().unwrap(), "b/**".parse().unwrap()];
        let origin = Origin { principal: "t".into(), remote: None };
        let mut s =
            router.subscribe_filtered(vec!["a/*".parse().unwrap(), "b/*".parse().unwrap()], origin, Some(allow.into()));
        let mut open = sub(&router, &["a/*"]);
        let out = router.dispatch(&[event(1, "a/x"), event(2, "a/y"), event(3, "b/z"), event(4, "c")]);
        assert_eq!(drain(&mut s), vec![1, 3]);
        assert_eq!(drain(&mut open), vec![1, 2]);
        assert_eq!(out.delivered, 4);
    }

    #[test]
    fn members_leave_in_any_order_and_a_repeated_pattern_counts_once() {
        let router = Arc::new(Router::new(16, Default::default()));
        let mut subs: Vec<_> = (0..5).map(|_| Some(sub(&router, &["a", "b/**"]))).collect();
        let mut twice = sub(&router, &["a", "c", "a"]);
        for i in [3, 0, 4] {
            subs[i] = None;
        }
        router.dispatch(&[event(1, "a"), event(2, "b/x")]);
        for (i, s) in subs.iter_mut().enumerate() {
            if let Some(s) = s {
                assert_eq!(drain(s), vec![1, 2], "subscriber {i}");
            }
        }
        assert_eq!(drain(&mut twice), vec![1]);
        drop(subs);
        drop(twice);
        assert!(router.is_empty());
        assert!(router.read().root.is_empty(), "every member left the trie");
    }

    #[test]
    fn dropping_unsubscribes_and_prunes() {
        let router = Arc::new(Router::new(16, Default::default()));
        let a = sub(&router, &["a/*/c", "x/**"]);
        assert_eq!(router.len(), 1);
        drop(a);
        assert!(router.is_empty());
        assert!(router.read().root.is_empty());
    }

    #[test]
    fn an_open_subscription_receives_nothing_until_it_listens() {
        let router = Arc::new(Router::new(16, Default::default()));
        let origin = Origin { principal: "t".into(), remote: None };
        let mut s = router.open(vec!["a".parse().unwrap()], origin, None, UNBOUNDED, None);
        assert_eq!(router.len(), 1, "open streams are listed while they replay");
        router.dispatch(&[event(1, "a")]);
        assert_eq!(drain(&mut s), Vec::<u64>::new());
        s.listen();
        router.dispatch(&[event(2, "a")]);
        assert_eq!(drain(&mut s), vec![2]);
        s.finish(Disconnect::Expired);
        router.dispatch(&[event(3, "a")]);
        assert_eq!(drain(&mut s), Vec::<u64>::new(), "a finished stream receives nothing more");
        assert_eq!((s.ended(), router.len()), (Some(Disconnect::Expired), 1));
        drop(s);
        assert!(router.is_empty() && router.read().root.is_empty());
    }

    #[test]
    fn a_full_queue_drops_the_subscriber_after_what_was_queued() {
        let router = Arc::new(Router::new(2, Default::default()));
        let mut s = sub(&router, &["a"]);
        let out = router.dispatch(&[event(1, "a"), event(2, "a"), event(3, "a"), event(4, "b"), event(5, "a")]);
        assert_eq!(out, Dispatched { delivered: 2, lagged: 1 });
        assert!(s.lagged());
        assert!(router.read().root.is_empty(), "out of the trie");
        assert_eq!(router.len(), 1, "open while its last events go out");
        assert_eq!(router.dispatch(&[event(6, "a")]).delivered, 0);
        assert_eq!(drain(&mut s), vec![1, 2]);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert!(rt.block_on(s.recv()).is_none(), "closed after draining");
        drop(s);
        assert!(router.is_empty());
    }

    #[test]
    fn queues_are_bounded_in_bytes_but_take_one_large_event_when_empty() {
        let router = Arc::new(Router::new(1024, Default::default()));
        let frame = sized(1, "a", 1000).frame().len();
        let bounds = Bounds { bytes: frame * 5 / 2, ..UNBOUNDED };
        let origin = Origin { principal: "t".into(), remote: None };
        let mut s = router.open(vec!["a".parse().unwrap()], origin.clone(), None, bounds, None);
        s.listen();
        // Two frames fit; a third does not.
        router.dispatch(&[sized(1, "a", 1000), sized(2, "a", 1000)]);
        assert_eq!(drain(&mut s), vec![1, 2]);
        let out = router.dispatch(&[sized(3, "a", 1000), sized(4, "a", 1000), sized(5, "a", 1000)]);
        assert_eq!(out, Dispatched { delivered: 2, lagged: 1 });
        assert!(s.lagged());

        // An event larger than the whole bound goes on an empty queue, and nothing after it.
        let mut s = router.open(vec!["a".parse().unwrap()], origin, None, bounds, None);
        s.listen();
        assert_eq!(router.dispatch(&[sized(6, "a", 10_000)]).lagged, 0);
        assert_eq!(drain(&mut s), vec![6]);
        assert_eq!(router.dispatch(&[sized(7, "a", 10_000), event(8, "a")]).lagged, 1);
    }

    #[tokio::test]
    async fn a_reader_takes_what_fits_its_byte_budget_and_at_least_one() {
        let router = Arc::new(Router::new(1024, Default::default()));
        let mut s = sub(&router, &["a"]);
        let frame = sized(1, "a", 1000).frame().len();
        router.dispatch(&(1..=5).map(|i| sized(i, "a", 1000)).collect::<Vec<_>>());
        let mut batch = Vec::new();
        assert!(s.recv_many(&mut batch, 64, frame * 2).await);
        assert_eq!(batch.iter().map(|e| e.id.seq).collect::<Vec<_>>(), vec![1, 2]);
        batch.clear();
        assert!(s.recv_many(&mut batch, 64, 1).await);
        assert_eq!(batch.len(), 1, "one event even over the budget");
        batch.clear();
        assert!(s.recv_many(&mut batch, 1, usize::MAX).await);
        assert_eq!(batch[0].id.seq, 4);
        assert_eq!(s.shared().queue().bytes, frame, "the byte count follows what is taken");
    }

    #[test]
    fn seats_are_given_back_once_with_the_reason() {
        let metrics = Arc::new(Metrics::new());
        let router = Arc::new(Router::new(1, metrics.clone()));
        let life = Lifecycle::default();
        // Lagged: counted when its stream ends, after its last events.
        let s = seated(&router, &life, Bounds { events: 1, ..UNBOUNDED });
        router.dispatch(&[event(1, "a"), event(2, "a")]);
        assert_eq!((life.clients(), lagged_count(&metrics).as_str()), (1, "0"));
        drop(s);
        assert_eq!((life.clients(), lagged_count(&metrics).as_str()), (0, "1"));

        // Stalled: given back at once, while the stream itself is still held, and counted once.
        let s = seated(&router, &life, UNBOUNDED);
        router.dispatch(&[event(3, "a")]);
        s.write_watch().stalled();
        assert_eq!((life.clients(), lagged_count(&metrics).as_str()), (0, "2"));
        assert_eq!(s.shared().depth(), 0, "its queue is dropped");
        assert!(s.closed());
        drop(s);
        assert_eq!(lagged_count(&metrics), "2");

        // A stream that ends by itself gives its seat back when dropped, with its reason.
        let mut s = seated(&router, &life, UNBOUNDED);
        s.finish(Disconnect::Shutdown);
        assert_eq!(life.clients(), 1, "held while its last frames go out");
        drop(s);
        assert_eq!(life.clients(), 0);
        assert!(metrics.render().contains("herald_clients_disconnected_total{reason=\"shutdown\"} 1"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_writer_that_does_not_come_back_is_swept_and_one_that_does_is_not() {
        let metrics = Arc::new(Metrics::new());
        let router = Arc::new(Router::new(1024, metrics.clone()));
        let life = Lifecycle::default();
        let bounds = Bounds { stall: Some(Duration::from_secs(2)), ..UNBOUNDED };
        let stuck = seated(&router, &life, bounds);
        let mut reading = seated(&router, &life, bounds);
        let mut idle = seated_on(&router, &life, bounds, "b");
        // `idle` waits for events on a quiet topic: nothing waits for its writer.
        idle.writing();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(std::pin::pin!(idle.recv()).poll(&mut cx).is_pending());

        // `stuck` hands a frame to a writer that never comes back; `reading`'s writer comes
        // back for each event.
        stuck.writing();
        for seq in 1..=6 {
            router.dispatch(&[event(seq, "a")]);
            let taken = reading.recv().await.unwrap();
            assert_eq!(taken.id.seq, seq);
            reading.writing();
            tokio::time::advance(Duration::from_millis(500)).await;
            reading.wrote();
            if seq <= 3 {
                assert_eq!(router.sweep(), 0, "{seq}: not yet");
            }
        }
        // The spawned sweep (or this one) closed it after 2 s.
        router.sweep();
        assert!(stuck.lagged() && !reading.lagged() && !idle.lagged());
        assert_eq!(stuck.shared().depth(), 0, "its queue is dropped");
        assert_eq!(life.clients(), 2);
        assert_eq!(lagged_count(&metrics), "1");
        drop(idle);
    }

    #[tokio::test(start_paused = true)]
    async fn the_router_sweeps_by_itself_and_a_writer_that_reports_progress_is_spared() {
        let router = Arc::new(Router::new(1024, Default::default()));
        let life = Lifecycle::default();
        let bounds = Bounds { stall: Some(Duration::from_secs(2)), ..UNBOUNDED };
        let stuck = seated(&router, &life, bounds);
        let slow = seated(&router, &life, bounds);
        router.dispatch(&[event(1, "a")]);
        let watch = slow.write_watch();
        assert_eq!(watch.limit(), Some(Duration::from_secs(2)));
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            watch.progress();
        }
        assert!(stuck.lagged(), "closed by the router's own task");
        assert!(!slow.lagged(), "bytes kept going out");
        watch.stalled();
        assert!(slow.lagged());
        assert_eq!(life.clients(), 0);
    }
}
