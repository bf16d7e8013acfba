//! `GET /events`: the SSE stream (SPEC §2, §3, §4).
//!
//! A stream goes through these steps, each writing frames before the next:
//! 1. `retry:`, flushed with the headers at once.
//! 2. With a last event id: the replay of every retained matching event after it, in chunks,
//!    while *not* yet registered with the router (so a deep replay cannot overflow the live
//!    queue); once a chunk comes back short it registers and reads once more to close the gap.
//!    An id that cannot be resumed gives `herald.reset` instead.
//! 3. With `snapshot=true` (and no successful resume): register, then the latest keyed state,
//!    then `herald.synced`.
//! 4. Live events from the queue. Anything at or below the cursor (the last log position the
//!    stream covered in steps 2–3) is skipped, so the seam has neither a gap nor a duplicate.
//!
//! The stream ends with `herald.shutdown` when the node drains, and without a word when it fell
//! behind its queue (the client resumes from its last id). A heartbeat is written after
//! `heartbeat_s` of silence.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;
use tokio_util::task::task_tracker::TaskTrackerToken;

use super::ApiError;
use crate::config::HeartbeatStyle;
use crate::event::{Event, EventId, RESERVED_PREFIX};
use crate::hub::{any_matches, Origin, Subscription};
use crate::log::Resume;
use crate::server::Hub;
use crate::sse;
use crate::telemetry::Disconnect;
use crate::topic::Pattern;

/// Events read from the log per replay step.
const REPLAY_CHUNK: usize = 1024;
/// Frames joined into one write when several are ready at once.
const COALESCE: usize = 64;

/// Where a stream starts, from `lastEventID` / `Last-Event-ID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// No id: live (after the snapshot, if asked).
    Live,
    /// `earliest`: everything retained.
    Earliest,
    /// After this id.
    After(EventId),
    /// An id that is not one of ours.
    Foreign,
}

/// What the query string asked for.
#[derive(Debug)]
struct Query {
    patterns: Vec<Pattern>,
    last_id: Option<String>,
    snapshot: bool,
    envelope: bool,
}

fn parse_query(raw: Option<&str>) -> Result<Query, ApiError> {
    let mut q = Query { patterns: Vec::new(), last_id: None, snapshot: false, envelope: false };
    let flag = |name: &str, value: &str| match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::bad_request(format!("{name} must be true or false, not {value:?}"))),
    };
    for (name, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match &*name {
            "topic" => q.patterns.push(
                Pattern::new(&value)
                    .map_err(|e| ApiError::bad_request(format!("invalid topic pattern {value:?}: {e}")))?,
            ),
            "lastEventID" => q.last_id = Some(value.into_owned()),
            "snapshot" => q.snapshot = flag("snapshot", &value)?,
            "envelope" => q.envelope = flag("envelope", &value)?,
            // Read by authentication; other unknown parameters are ignored, as EventSource
            // users often add cache-busting ones.
            _ => {}
        }
    }
    if q.patterns.is_empty() {
        return Err(ApiError::bad_request("at least one topic=PATTERN is required"));
    }
    q.patterns.dedup();
    Ok(q)
}

fn parse_start(last_id: Option<&str>) -> Start {
    match last_id {
        None | Some("") => Start::Live,
        Some("earliest") => Start::Earliest,
        Some(id) => id.parse().map_or(Start::Foreign, Start::After),
    }
}

/// Handles `GET /events`.
///
/// # Errors
/// 400 for a missing or malformed pattern or query; 503 with `Retry-After` while draining or at
/// `limits.max_clients`.
pub async fn subscribe(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let query = parse_query(raw.as_deref())?;
    let header_id = headers.get("last-event-id").map(|v| v.to_str().unwrap_or("\u{0}"));
    let start = parse_start(query.last_id.as_deref().or(header_id));

    if hub.lifecycle.phase() == crate::shutdown::Phase::Draining {
        return Err(ApiError::unavailable("draining", "the node is shutting down; reconnect elsewhere", 1));
    }
    let Some(token) = hub.lifecycle.admit(hub.config.limits.max_clients) else {
        return Err(ApiError::unavailable(
            "too_many_clients",
            format!("this node serves at most {} streams", hub.config.limits.max_clients),
            5,
        ));
    };
    hub.metrics.clients_connected.increment(1.0);
    let origin = Origin { principal: "anonymous".into(), remote: Some(remote) };
    let stream = EventStream::new(hub, query, start, origin, token);
    let body = Body::from_stream(futures_util::stream::unfold(stream, |mut s| async move {
        let frame = s.next_frame().await?;
        Some((Ok::<_, std::convert::Infallible>(frame), s))
    }));
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Start,
    Replay,
    Snapshot,
    Live,
    Done,
}

struct EventStream {
    hub: Arc<Hub>,
    patterns: Vec<Pattern>,
    origin: Origin,
    start: Start,
    snapshot: bool,
    /// Send [`Event::envelope_frame`]s instead of plain frames.
    envelope: bool,
    step: Step,
    sub: Option<Subscription>,
    /// The last log position this stream has covered: live events at or below it were already
    /// sent through replay or are part of the snapshot.
    cursor: Option<EventId>,
    pending: VecDeque<Bytes>,
    /// Events sent before the subscription existed to count them.
    sent_early: u64,
    last_write: Instant,
    heartbeat: Pin<Box<Sleep>>,
    stopping: Pin<Box<WaitForCancellationFutureOwned>>,
    reason: Disconnect,
    _tracked: TaskTrackerToken,
}

impl EventStream {
    fn new(hub: Arc<Hub>, query: Query, start: Start, origin: Origin, tracked: TaskTrackerToken) -> Self {
        let now = Instant::now();
        Self {
            heartbeat: Box::pin(tokio::time::sleep_until(now + hub.config.heartbeat_s)),
            stopping: Box::pin(hub.lifecycle.streams().clone().cancelled_owned()),
            hub,
            patterns: query.patterns,
            origin,
            start,
            snapshot: query.snapshot,
            envelope: query.envelope,
            step: Step::Start,
            sub: None,
            cursor: None,
            pending: VecDeque::new(),
            sent_early: 0,
            last_write: now,
            reason: Disconnect::Client,
            _tracked: tracked,
        }
    }

    /// The next bytes to write, or `None` when the stream is over.
    async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            if let Some(first) = self.pending.pop_front() {
                self.last_write = Instant::now();
                return Some(self.coalesce(first));
            }
            if self.step != Step::Done && self.hub.lifecycle.streams().is_cancelled() {
                self.finish(Disconnect::Shutdown);
                continue;
            }
            let result = match self.step {
                Step::Start => self.start().await,
                Step::Replay => self.replay().await,
                Step::Snapshot => self.take_snapshot().await,
                Step::Live => {
                    self.live().await;
                    Ok(())
                }
                Step::Done => return None,
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "stream closed: the event log failed");
                self.finish(Disconnect::Error);
            }
        }
    }

    /// Joins what is already pending into one buffer, so a burst costs one write.
    fn coalesce(&mut self, first: Bytes) -> Bytes {
        if self.pending.is_empty() {
            return first;
        }
        let n = self.pending.len().min(COALESCE - 1);
        let len = first.len() + self.pending.iter().take(n).map(Bytes::len).sum::<usize>();
        let mut out = BytesMut::with_capacity(len);
        out.extend_from_slice(&first);
        for frame in self.pending.drain(..n) {
            out.extend_from_slice(&frame);
        }
        out.freeze()
    }

    fn frame_of(&self, event: &Event) -> Bytes {
        if self.envelope {
            event.envelope_frame().clone()
        } else {
            event.frame().clone()
        }
    }

    fn control(&mut self, kind: &str, data: &str) {
        debug_assert!(kind.starts_with(RESERVED_PREFIX));
        self.pending.push_back(sse::control_frame(kind, data));
    }

    fn finish(&mut self, reason: Disconnect) {
        if reason == Disconnect::Shutdown {
            self.control("herald.shutdown", "{}");
        }
        self.reason = reason;
        self.step = Step::Done;
        self.sub = None;
    }

    fn register(&mut self) {
        let sub = self.hub.router.subscribe(self.patterns.clone(), self.origin.clone());
        sub.shared().sent.fetch_add(self.sent_early, Ordering::Relaxed);
        self.sent_early = 0;
        self.sub = Some(sub);
    }

    fn count_sent(&mut self, n: u64) {
        match &self.sub {
            Some(sub) => {
                sub.shared().sent.fetch_add(n, Ordering::Relaxed);
            }
            None => self.sent_early += n,
        }
    }

    async fn start(&mut self) -> Result<(), crate::log::Error> {
        self.pending.push_back(sse::retry_frame(self.hub.config.retry_ms.as_millis() as u64));
        let resume = match self.start {
            Start::Live => None,
            Start::Earliest => Some(Resume::After(None)),
            Start::After(id) => Some(self.hub.log.resume(id).await?),
            Start::Foreign => Some(Resume::Unknown),
        };
        match resume {
            Some(Resume::After(cursor)) => {
                self.cursor = cursor;
                self.step = Step::Replay;
            }
            Some(Resume::Truncated) => self.reset("history_truncated"),
            Some(Resume::Unknown) => self.reset("unknown_id"),
            None if self.snapshot => self.step = Step::Snapshot,
            None => {
                self.register();
                self.step = Step::Live;
            }
        }
        Ok(())
    }

    fn reset(&mut self, reason: &str) {
        self.control("herald.reset", &format!(r#"{{"reason":"{reason}"}}"#));
        if self.snapshot {
            self.step = Step::Snapshot;
        } else {
            self.register();
            self.step = Step::Live;
        }
    }

    async fn replay(&mut self) -> Result<(), crate::log::Error> {
        let chunk = self.hub.log.read_after(self.cursor, REPLAY_CHUNK).await?;
        let short = chunk.len() < REPLAY_CHUNK;
        let mut sent = 0;
        for event in chunk {
            self.cursor = Some(event.id);
            if any_matches(&self.patterns, &event.topic) {
                self.pending.push_back(self.frame_of(&event));
                sent += 1;
            }
        }
        self.count_sent(sent);
        self.hub.metrics.events_delivered.increment(sent);
        if short {
            if self.sub.is_none() {
                // Caught up: register, then read once more for what was appended meanwhile.
                self.register();
            } else {
                if self.snapshot {
                    self.control("herald.synced", "{}");
                }
                self.step = Step::Live;
            }
        }
        Ok(())
    }

    async fn take_snapshot(&mut self) -> Result<(), crate::log::Error> {
        self.register();
        let snapshot = self.hub.log.snapshot(&self.patterns).await?;
        let n = snapshot.events.len() as u64;
        for event in &snapshot.events {
            self.pending.push_back(self.frame_of(event));
        }
        self.count_sent(n);
        self.hub.metrics.events_delivered.increment(n);
        self.control("herald.synced", "{}");
        self.cursor = snapshot.as_of;
        self.step = Step::Live;
        Ok(())
    }

    async fn live(&mut self) {
        let Some(sub) = self.sub.as_mut() else {
            self.step = Step::Done;
            return;
        };
        tokio::select! {
            biased;
            event = sub.recv() => match event {
                Some(event) => {
                    let mut sent = 0;
                    let mut next = Some(event);
                    while let Some(event) = next {
                        if self.cursor.is_some_and(|c| event.id <= c) {
                            // Already sent by replay, or part of the snapshot.
                        } else {
                            self.cursor = None;
                            let frame = if self.envelope { event.envelope_frame() } else { event.frame() };
                            self.pending.push_back(frame.clone());
                            sent += 1;
                        }
                        next = if self.pending.len() < COALESCE { sub.try_recv() } else { None };
                    }
                    sub.shared().sent.fetch_add(sent, Ordering::Relaxed);
                }
                None => {
                    let reason = if sub.lagged() { Disconnect::Lagged } else { Disconnect::Error };
                    self.finish(reason);
                }
            },
            () = &mut self.stopping => self.finish(Disconnect::Shutdown),
            () = &mut self.heartbeat => {
                let due = self.last_write + self.hub.config.heartbeat_s;
                if Instant::now() >= due {
                    match self.hub.config.heartbeat_style {
                        HeartbeatStyle::Comment => self.pending.push_back(Bytes::from_static(sse::HEARTBEAT_COMMENT)),
                        HeartbeatStyle::Event => self.pending.push_back(sse::control_frame("heartbeat", "{}")),
                    }
                    self.heartbeat.as_mut().reset(Instant::now() + self.hub.config.heartbeat_s);
                } else {
                    self.heartbeat.as_mut().reset(due);
                }
            }
        }
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.sub = None;
        self.hub.lifecycle.release();
        self.hub.metrics.clients_connected.decrement(1.0);
        self.hub.metrics.disconnected(self.reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_validated() {
        assert!(parse_query(None).is_err());
        assert!(parse_query(Some("topic=")).is_err());
        assert!(parse_query(Some("topic=a/**/b")).is_err());
        assert!(parse_query(Some("topic=a&snapshot=maybe")).is_err());
        let q = parse_query(Some("topic=a%2F*&topic=b&snapshot=true&lastEventID=1-2&x=y")).unwrap();
        assert_eq!(q.patterns.len(), 2);
        assert!(q.snapshot);
        assert_eq!(q.last_id.as_deref(), Some("1-2"));
    }

    #[test]
    fn starts_are_parsed() {
        assert_eq!(parse_start(None), Start::Live);
        assert_eq!(parse_start(Some("")), Start::Live);
        assert_eq!(parse_start(Some("earliest")), Start::Earliest);
        assert_eq!(parse_start(Some("5-1")), Start::After(EventId { ms: 5, seq: 1 }));
        assert_eq!(parse_start(Some("abc")), Start::Foreign);
        assert_eq!(parse_start(Some("\u{0}")), Start::Foreign);
    }
}
