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
//! ## Lagging
//! Every subscription has a bounded queue. A subscriber whose queue is full when an event
//! arrives is removed from the router and marked lagged: it still drains what was queued, then
//! its stream ends, and the client resumes from its last event id through replay (SPEC §7). An
//! event is never silently skipped on a stream that stays open.
//!
//! ## Closing
//! Dropping a [`Subscription`] removes it from the router.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll, Waker};
use std::time::SystemTime;

use crate::event::Event;
use crate::telemetry::Metrics;
use crate::topic::{Pattern, Segment, Topic};

/// Who and where a subscription is, for `/subscriptions` and the per-principal limit.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The authenticated principal (`anonymous` in open mode).
    pub principal: Arc<str>,
    /// The client's socket address.
    pub remote: Option<SocketAddr>,
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
    /// Set when the router dropped it for falling behind its queue.
    pub lagged: AtomicBool,
    /// Events queued for the stream, and its waker while it waits for one.
    queue: Mutex<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    events: VecDeque<Arc<Event>>,
    waiting: Option<Waker>,
}

impl Shared {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `events` in order until `limit` are queued, and wakes the reader. Returns how many
    /// were queued: fewer than `events.len()` when the queue is full.
    fn push(&self, events: &[Arc<Event>], limit: usize) -> usize {
        let mut queue = self.queue();
        let room = limit.saturating_sub(queue.events.len());
        let fit = &events[..events.len().min(room)];
        queue.events.extend(fit.iter().cloned());
        let waker = if fit.is_empty() { None } else { queue.waiting.take() };
        drop(queue);
        if let Some(waker) = waker {
            waker.wake();
        }
        fit.len()
    }

    /// Marks the subscription lagged and wakes the reader, which drains what is queued and ends.
    fn close_lagged(&self) -> bool {
        let first = !self.lagged.swap(true, Ordering::Relaxed);
        let waker = self.queue().waiting.take();
        if let Some(waker) = waker {
            waker.wake();
        }
        first
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

#[derive(Default)]
struct Index {
    root: Node,
    slots: HashMap<u64, Arc<Slot>>,
}

/// A drained queue holding more slots than this frees them.
const SHRINK_ABOVE: usize = 64;

/// The set of open subscriptions and the fan-out of events to them.
pub struct Router {
    index: RwLock<Index>,
    next_id: AtomicU64,
    round: AtomicU64,
    queue_len: usize,
    metrics: Arc<Metrics>,
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
    /// A router whose subscriptions each queue at most `queue_len` events.
    pub fn new(queue_len: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            index: RwLock::default(),
            next_id: AtomicU64::new(1),
            round: AtomicU64::new(0),
            queue_len: queue_len.max(1),
            metrics,
        }
    }

    /// Registers a subscription; events dispatched from now on reach it.
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
        let shared = Arc::new(Shared {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            patterns: patterns.into(),
            origin,
            since: SystemTime::now(),
            sent: AtomicU64::new(0),
            lagged: AtomicBool::new(false),
            queue: Mutex::default(),
        });
        let slot = Arc::new(Slot { shared: shared.clone(), allow, last_round: AtomicU64::new(0) });
        let mut index = self.write();
        for pattern in shared.patterns.iter() {
            index.root.insert(pattern.segments(), &slot);
        }
        index.slots.insert(shared.id, slot);
        drop(index);
        Subscription { shared, router: self.clone() }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn remove(&self, id: u64) {
        let mut index = self.write();
        if let Some(slot) = index.slots.remove(&id) {
            for pattern in slot.shared.patterns.iter() {
                index.root.remove(pattern.segments(), id);
            }
        }
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
                        // Dropped earlier in this call; removed below.
                        return;
                    }
                    let queued = slot.shared.push(run, self.queue_len);
                    out.delivered += queued as u64;
                    if queued < run.len() && slot.shared.close_lagged() {
                        lagged.push(slot.shared.id);
                    }
                });
            }
        }
        out.lagged = lagged.len() as u64;
        self.metrics.events_delivered.increment(out.delivered);
        for id in lagged {
            self.remove(id);
        }
        out
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

/// An open subscription: the receiving end of its queue. Dropping it unsubscribes.
pub struct Subscription {
    shared: Arc<Shared>,
    router: Arc<Router>,
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

    /// The next queued event; `None` once the router dropped the subscription (it lagged) and
    /// the queue is drained.
    pub async fn recv(&mut self) -> Option<Arc<Event>> {
        std::future::poll_fn(|cx| self.poll_take(cx, VecDeque::pop_front).map(Option::flatten)).await
    }

    /// Waits for queued events and moves up to `max` of them (at least one) to `out`, under one
    /// lock; `false` once the router dropped the subscription (it lagged) and the queue is
    /// drained.
    pub async fn recv_many(&mut self, out: &mut Vec<Arc<Event>>, max: usize) -> bool {
        let max = max.max(1);
        let take = |cx: &mut Context<'_>| {
            self.poll_take(cx, |events: &mut VecDeque<_>| out.extend(events.drain(..events.len().min(max))))
        };
        std::future::poll_fn(take).await.is_some()
    }

    /// Calls `take` on the queue once it holds an event; `None` once the subscription lagged and
    /// the queue is drained.
    fn poll_take<T>(&self, cx: &mut Context<'_>, take: impl FnOnce(&mut VecDeque<Arc<Event>>) -> T) -> Poll<Option<T>> {
        let mut queue = self.shared.queue();
        if !queue.events.is_empty() {
            return Poll::Ready(Some(take(&mut queue.events)));
        }
        if self.lagged() {
            return Poll::Ready(None);
        }
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
        self.shared.queue().events.pop_front()
    }

    /// Whether the router dropped this subscription for falling behind.
    pub fn lagged(&self) -> bool {
        self.shared.lagged.load(Ordering::Relaxed)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.router.remove(self.shared.id);
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
    use serde_json::value::RawValue;

    fn event(seq: u64, topic: &str) -> Arc<Event> {
        let data = RawValue::from_string("1".into()).unwrap();
        Arc::new(Event::new(EventId { ms: 1, seq }, Draft::new(topic, None, &data, None, false).unwrap()))
    }

    fn sub(router: &Arc<Router>, patterns: &[&str]) -> Subscription {
        let patterns = patterns.iter().map(|p| p.parse().unwrap()).collect();
        router.subscribe(patterns, Origin { principal: "t".into(), remote: None })
    }

    fn drain(s: &mut Subscription) -> Vec<u64> {
        std::iter::from_fn(|| s.try_recv()).map(|e| e.id.seq).collect()
    }

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
    fn a_full_queue_drops_the_subscriber_after_what_was_queued() {
        let router = Arc::new(Router::new(2, Default::default()));
        let mut s = sub(&router, &["a"]);
        let out = router.dispatch(&[event(1, "a"), event(2, "a"), event(3, "a"), event(4, "b"), event(5, "a")]);
        assert_eq!(out, Dispatched { delivered: 2, lagged: 1 });
        assert!(s.lagged());
        assert_eq!(router.len(), 0);
        assert_eq!(drain(&mut s), vec![1, 2]);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert!(rt.block_on(s.recv()).is_none(), "closed after draining");
    }
}
