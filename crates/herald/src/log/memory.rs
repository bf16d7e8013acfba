//! An event log in memory: fast, and gone on restart. Used until a durable log is configured,
//! and by tests.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use super::{Error, EventLog, Resume, Snapshot};
use crate::event::{now_ms, Draft, Event, EventId, IdClock};
use crate::hub::Router;
use crate::state::KeyedState;
use crate::topic::Pattern;

/// How much history a log keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many events.
    pub max_events: usize,
    /// Drop events older than this.
    pub max_age: Duration,
}

struct Inner {
    events: VecDeque<Arc<Event>>,
    clock: IdClock,
    /// The newest id retention has removed: resuming exactly there loses nothing.
    trimmed_through: Option<EventId>,
    state: KeyedState,
    closed: bool,
}

/// The in-memory [`EventLog`].
pub struct MemoryLog {
    inner: Mutex<Inner>,
    router: Arc<Router>,
    retention: Retention,
}

impl std::fmt::Debug for MemoryLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryLog").field("retention", &self.retention).finish()
    }
}

impl MemoryLog {
    /// An empty log that delivers appended events to `router`.
    pub fn new(router: Arc<Router>, retention: Retention) -> Self {
        Self {
            inner: Mutex::new(Inner {
                events: VecDeque::new(),
                clock: IdClock::default(),
                trimmed_through: None,
                state: KeyedState::default(),
                closed: false,
            }),
            router,
            retention,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn trim_front(&mut self) {
        if let Some(e) = self.events.pop_front() {
            self.trimmed_through = Some(e.id);
        }
    }

    fn head(&self) -> Option<EventId> {
        self.events.back().map(|e| e.id).or(self.trimmed_through)
    }
}

#[async_trait]
impl EventLog for MemoryLog {
    async fn append(&self, drafts: Vec<Draft>) -> Result<Vec<Arc<Event>>, Error> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(Error::Closed);
        }
        let events: Vec<Arc<Event>> =
            drafts.into_iter().map(|d| Arc::new(Event::new(inner.clock.next_id(), d))).collect();
        for e in &events {
            inner.state.apply(e);
            inner.events.push_back(e.clone());
        }
        while inner.events.len() > self.retention.max_events {
            inner.trim_front();
        }
        // Under the lock, so batches reach the router in id order.
        self.router.dispatch(&events);
        Ok(events)
    }

    async fn resume(&self, id: EventId) -> Result<Resume, Error> {
        let inner = self.lock();
        let first = inner.events.front().map(|e| e.id);
        Ok(match (first, inner.trimmed_through) {
            (Some(first), _) if id >= first => {
                if inner.events.binary_search_by_key(&id, |e| e.id).is_ok() {
                    Resume::After(Some(id))
                } else {
                    Resume::Unknown
                }
            }
            (_, Some(trimmed)) if id == trimmed => Resume::After(Some(id)),
            (_, Some(trimmed)) if id < trimmed => Resume::Truncated,
            _ => Resume::Unknown,
        })
    }

    async fn read_after(&self, after: Option<EventId>, limit: usize) -> Result<Vec<Arc<Event>>, Error> {
        let inner = self.lock();
        let start = match after {
            None => 0,
            Some(after) => inner.events.partition_point(|e| e.id <= after),
        };
        Ok(inner.events.range(start..).take(limit).cloned().collect())
    }

    async fn snapshot(&self, patterns: &[Pattern]) -> Result<Snapshot, Error> {
        let inner = self.lock();
        Ok(Snapshot { events: inner.state.snapshot(patterns), as_of: inner.head() })
    }

    async fn expire(&self) -> Result<(), Error> {
        let cutoff = now_ms().saturating_sub(self.retention.max_age.as_millis() as u64);
        let mut inner = self.lock();
        while inner.events.front().is_some_and(|e| e.id.ms < cutoff) {
            inner.trim_front();
        }
        Ok(())
    }

    async fn close(&self) -> Result<(), Error> {
        self.lock().closed = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn draft(topic: &str, key: Option<&str>, tombstone: bool) -> Draft {
        let data = RawValue::from_string("1".into()).unwrap();
        Draft::new(topic, None, &data, key, tombstone).unwrap()
    }

    fn log(max_events: usize) -> MemoryLog {
        let retention = Retention { max_events, max_age: Duration::from_secs(3600) };
        MemoryLog::new(Arc::new(Router::new(8, Default::default())), retention)
    }

    #[tokio::test]
    async fn resume_tells_kept_truncated_and_unknown_apart() {
        let log = log(3);
        let ids: Vec<EventId> = log
            .append((0..5).map(|i| draft(&format!("t/{i}"), None, false)).collect())
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(log.resume(ids[0]).await.unwrap(), Resume::Truncated);
        assert_eq!(log.resume(ids[1]).await.unwrap(), Resume::After(Some(ids[1])), "nothing after it was lost");
        assert_eq!(log.resume(ids[3]).await.unwrap(), Resume::After(Some(ids[3])));
        assert_eq!(log.resume(ids[4].next()).await.unwrap(), Resume::Unknown);
        assert_eq!(
            log.resume(EventId { ms: ids[3].ms, seq: ids[3].seq }.next().next().next()).await.unwrap(),
            Resume::Unknown
        );
        let after: Vec<EventId> = log.read_after(Some(ids[2]), 10).await.unwrap().iter().map(|e| e.id).collect();
        assert_eq!(after, ids[3..]);
        assert_eq!(log.read_after(None, 1).await.unwrap()[0].id, ids[2]);
    }

    #[tokio::test]
    async fn snapshots_hold_the_latest_state_per_key() {
        let log = log(100);
        log.append(vec![
            draft("a/1", Some("k"), false),
            draft("a/1", Some("j"), false),
            draft("b/1", Some("k"), false),
        ])
        .await
        .unwrap();
        let last = log.append(vec![draft("a/1", Some("k"), false), draft("a/1", Some("j"), true)]).await.unwrap();
        let snap = log.snapshot(&["a/*".parse().unwrap()]).await.unwrap();
        assert_eq!(snap.events.iter().map(|e| e.id).collect::<Vec<_>>(), vec![last[0].id]);
        assert_eq!(snap.as_of, Some(last[1].id));
    }

    #[tokio::test]
    async fn closed_logs_refuse_appends() {
        let log = log(10);
        log.close().await.unwrap();
        assert!(matches!(log.append(vec![draft("a", None, false)]).await, Err(Error::Closed)));
    }
}
