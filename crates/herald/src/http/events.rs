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
//! The stream ends with `herald.shutdown` when the node drains, with `herald.expired` when its
//! token's `exp` (plus the leeway) passes, checked before every step and raced in the live wait,
//! and without a word when it fell behind its queue or its client stopped taking bytes for
//! `limits.write_stall_s` (the client resumes from its last id; see `hub`'s `## Lagging` and
//! `## Stalling`). A heartbeat is written after `heartbeat_s` of silence.
//!
//! Memory: the stream's subscription is opened (and watched for stalls, holding the stream's
//! admission) when the stream starts, and receives live events from step 2's end or step 3.
//! What waits in the stream itself stays near `limits.stream_queue_bytes` too: a replay step
//! reads fewer events when they are large, and frames are joined into one write only up to
//! [`COALESCE_BYTES`], so a topic of large events costs a reference per frame, not a copy.
//!
//! Authorisation: a subscription none of whose patterns can meet the token's subscribe claims
//! is refused with 403; otherwise every event of every step is checked against the stream's
//! [`Filter`] (the router applies it in live fan-out, this module in replay and snapshot).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::ApiError;
use crate::auth::{Access, Filter};
use crate::config::HeartbeatStyle;
use crate::event::{EncodeError, Event, EventId, Format, RESERVED_PREFIX};
use crate::hub::{any_matches, Bounds, Origin, Subscription};
use crate::log::Resume;
use crate::server::Hub;
use crate::shutdown::{Admission, Refusal};
use crate::sse;
use crate::telemetry::Disconnect;
use crate::topic::{Pattern, Topic};

/// Events read from the log per replay step, at most.
const REPLAY_CHUNK: usize = 1024;
/// Events read by the first replay step: later steps read up to four times more while the
/// events read fit `limits.stream_queue_bytes`, and fewer when they do not.
const REPLAY_FIRST: usize = 64;
/// Frames joined into one write when several are ready at once...
const COALESCE: usize = 64;
/// ... as long as they add up to no more than this many bytes (one larger frame is written
/// alone, not copied). It also bounds what a writer holds of a stream at a time: hyper keeps a
/// frame or two of it while the client does not read, and h2's send buffer per stream is capped
/// to the same (`server.rs`), down from hyper's 400 KiB.
pub const COALESCE_BYTES: usize = 64 << 10;

/// Where a stream starts, from `lastEventID` / `Last-Event-ID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// No id: live (after the snapshot, if asked).
    Live,
    /// `earliest`: everything retained.
    Earliest,
    /// After this id.
    After(EventId),
    /// An id that is not one of ours.
    Foreign,
}

/// What the query string of a `GET /events` asked for.
#[derive(Debug)]
pub struct Query {
    /// The `topic` patterns, deduplicated; at least one.
    pub patterns: Vec<Pattern>,
    /// `lastEventID`, as given.
    pub last_id: Option<String>,
    /// `snapshot=true`.
    pub snapshot: bool,
    /// `envelope=true`.
    pub envelope: bool,
}

/// Parses the raw query string of a `GET /events` (untrusted input; fuzzed).
///
/// # Errors
/// 400 for a missing or malformed pattern or flag.
pub fn parse_query(raw: Option<&str>) -> Result<Query, ApiError> {
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

/// Where a stream of `query` starts (untrusted input; fuzzed): the `Last-Event-ID` header wins
/// over `lastEventID` (SPEC §2, Mercure's rule). A browser's `EventSource` keeps the URL it was
/// created with and sends the newest id it has in the header on every reconnect, so an id frozen
/// in the URL must not win, or each reconnect would replay what the page already has. An empty
/// header is no id (EventSource sends none then) and leaves the query's; a header that is not
/// text counts as an id that is not ours.
pub fn start_of(query: &Query, header: Option<&HeaderValue>) -> Start {
    match header.filter(|v| !v.is_empty()) {
        Some(value) => parse_start(Some(value.to_str().unwrap_or("\u{0}"))),
        None => parse_start(query.last_id.as_deref()),
    }
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
/// 400 for a missing or malformed pattern or query; 401 without a valid token; 403 when the
/// token allows none of the patterns' topics; 503 with `Retry-After` at `limits.max_clients` or
/// `limits.max_clients_per_principal`. While the node drains the answer is no error but
/// [`drained_response`].
pub async fn subscribe(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    access: Access,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let query = parse_query(raw.as_deref())?;
    let filter = access.subscription_filter(&query.patterns)?;
    let start = start_of(&query, headers.get("last-event-id"));

    let Some(admission) = admit_unless_draining(&hub, &access)? else {
        return Ok(drained_response(&hub, start));
    };
    let origin = Origin { principal: access.principal.clone(), remote: Some(remote) };
    let stream = EventStream::new(hub, query, start, origin, Allowance { filter, expires: access.expires }, admission);
    // For a writer that sees its socket (`direct`): it keeps the stall limit itself.
    let watch = stream.sub.write_watch();
    let body = Body::from_stream(futures_util::stream::unfold(stream, |mut s| async move {
        let frame = s.next_frame().await?;
        Some((Ok::<_, std::convert::Infallible>(frame), s))
    }));
    let mut response = sse_response(body);
    response.extensions_mut().insert(watch);
    Ok(response)
}

/// The answer to a stream request that arrives while the node drains (SPEC §8): 200, `retry:`,
/// `herald.shutdown`, and the end of the stream. Not a 503: a browser's `EventSource` never
/// retries after an answer that is not 200 (`readyState` 2 for good), while after the end of a
/// 200 stream it reconnects in `retry` ms — by then to another node, or to this one's closed
/// listener, whose refused connections it retries too. Nothing is admitted or counted: the
/// answer is complete as it is sent. A request that resumes after an id is told that id back
/// (see [`resume_frame`]), so that a client whose parser forgets it keeps it across this answer.
pub(super) fn drained_response(hub: &Hub, start: Start) -> Response {
    let mut body = BytesMut::new();
    body.extend_from_slice(&sse::retry_frame(hub.config.retry_ms.as_millis() as u64));
    if let Start::After(id) = start {
        body.extend_from_slice(&resume_frame(id));
    }
    body.extend_from_slice(&sse::control_frame("herald.shutdown", "{}"));
    sse_response(Body::from(body.freeze()))
}

/// `id: <id>` alone, opening a stream that resumes after `id`. It dispatches nothing (no data)
/// and changes nothing for a browser's EventSource, whose last event id is already `id`. It is
/// for clients that keep the last id per connection (LaunchDarkly's `eventsource-client` and
/// `reqwest-eventsource` do): without it, a connection whose first event has no id (a
/// `herald.shutdown`, a drain's answer) would make them forget their id and resume from the
/// URL's `lastEventID` — replaying what they already have — or from nothing.
fn resume_frame(id: EventId) -> Bytes {
    Bytes::from(format!("id: {id}\n\n"))
}

/// Opens a place for a new stream (this one or Argo CD's): `None` while the node drains (the
/// endpoint answers with [`drained_response`]), 503 at `limits.max_clients` or the principal's
/// `limits.max_clients_per_principal`. An admitted stream is counted in
/// `herald_clients_connected`; whoever gives its admission back uncounts it (the stream, or the
/// router for a stream it closed: see `hub`'s `## Closing`).
pub(super) fn admit_unless_draining(hub: &Hub, access: &Access) -> Result<Option<Admission>, ApiError> {
    if hub.lifecycle.phase() == crate::shutdown::Phase::Draining {
        return Ok(None);
    }
    let limits = &hub.config.limits;
    let admission = match hub.lifecycle.admit(limits.max_clients, &access.limit_key, limits.max_clients_per_principal) {
        Ok(admission) => admission,
        Err(refusal @ Refusal::TooManyClients(_)) => {
            return Err(ApiError::unavailable("too_many_clients", refusal.to_string(), 5))
        }
        Err(refusal @ Refusal::TooManyForPrincipal(_)) => {
            return Err(ApiError::unavailable("too_many_streams_for_principal", refusal.to_string(), 5))
        }
    };
    hub.metrics.clients_connected.increment(1.0);
    Ok(Some(admission))
}

/// A `text/event-stream` response around `body`, unbuffered through proxies.
pub(super) fn sse_response(body: Body) -> Response {
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Start,
    Replay,
    Snapshot,
    Live,
    Done,
}

/// What the stream's token allows it, fixed when it opens.
struct Allowance {
    filter: Filter,
    expires: Option<SystemTime>,
}

struct EventStream {
    hub: Arc<Hub>,
    patterns: Vec<Pattern>,
    /// What the token lets this stream receive, on top of its patterns.
    filter: Filter,
    start: Start,
    snapshot: bool,
    /// Send envelope frames ([`Format::Envelope`]) instead of plain frames.
    envelope: bool,
    step: Step,
    /// Open from the start, holding the stream's admission; listening from step 2's end or
    /// step 3. Given back when the stream is dropped, or earlier by the router (see `hub`).
    sub: Subscription,
    /// The last log position this stream has covered: live events at or below it were already
    /// sent through replay or are part of the snapshot.
    cursor: Option<EventId>,
    pending: VecDeque<Bytes>,
    /// Events the next replay step reads (see [`REPLAY_FIRST`]).
    replay_chunk: usize,
    last_write: Instant,
    heartbeat: Pin<Box<Sleep>>,
    stopping: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Fires when the token expires; `None` for a token without `exp` (or open mode).
    expiry: Option<Pin<Box<Sleep>>>,
}

impl EventStream {
    fn new(
        hub: Arc<Hub>,
        query: Query,
        start: Start,
        origin: Origin,
        allowance: Allowance,
        admission: Admission,
    ) -> Self {
        let now = Instant::now();
        // `exp` is wall-clock time; the stream waits on the monotonic clock for what is left of
        // it now (already past: at once; too far to represent: never).
        let expiry = allowance.expires.and_then(|at| {
            let left = at.duration_since(SystemTime::now()).unwrap_or_default();
            now.checked_add(left).map(|deadline| Box::pin(tokio::time::sleep_until(deadline)))
        });
        let bounds = Bounds::of(&hub.config.limits);
        let mut sub =
            hub.router.open(query.patterns.clone(), origin, allowance.filter.allow_list(), bounds, Some(admission));
        // A live stream with nothing to read first listens now, before its answer's head goes
        // out: a client that sees the stream open (an EventSource's `open`) and then publishes
        // receives what it published. (Others listen once their replay or snapshot is read.)
        if matches!(start, Start::Live) && !query.snapshot {
            sub.listen();
        }
        Self {
            heartbeat: Box::pin(tokio::time::sleep_until(now + hub.config.heartbeat_s)),
            stopping: Box::pin(hub.lifecycle.streams().clone().cancelled_owned()),
            expiry,
            hub,
            patterns: query.patterns,
            filter: allowance.filter,
            start,
            snapshot: query.snapshot,
            envelope: query.envelope,
            step: Step::Start,
            sub,
            cursor: None,
            pending: VecDeque::new(),
            replay_chunk: REPLAY_FIRST,
            last_write: now,
        }
    }

    /// Whether the token's expiry has passed.
    fn expired(&self) -> bool {
        self.expiry.as_ref().is_some_and(|sleep| Instant::now() >= sleep.deadline())
    }

    /// Whether an event on `topic` may go on this stream (its patterns matched already).
    fn allowed(&self, topic: &Topic) -> bool {
        self.filter.allows(topic)
    }

    /// The next bytes to write, or `None` when the stream is over.
    ///
    /// Being called means the writer took the previous frame; returning one means the writer has
    /// something to do. The subscription is told both, for the router's stall watch.
    async fn next_frame(&mut self) -> Option<Bytes> {
        self.sub.wrote();
        let frame = self.produce().await;
        if frame.is_some() {
            self.sub.writing();
        }
        frame
    }

    async fn produce(&mut self) -> Option<Bytes> {
        loop {
            if let Some(first) = self.pending.pop_front() {
                self.last_write = Instant::now();
                return Some(self.coalesce(first));
            }
            // Closed by the router for stalling, whatever step it was in. (One that lagged ends
            // in the live step, after what was queued for it.)
            if self.step != Step::Done && self.sub.closed() {
                self.finish(Disconnect::Lagged);
                continue;
            }
            if self.step != Step::Done && self.hub.lifecycle.streams().is_cancelled() {
                self.finish(Disconnect::Shutdown);
                continue;
            }
            if self.step != Step::Done && self.expired() {
                self.finish(Disconnect::Expired);
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

    /// Joins what is already pending into one buffer, so a burst costs one write, up to
    /// [`COALESCE`] frames and [`COALESCE_BYTES`].
    fn coalesce(&mut self, first: Bytes) -> Bytes {
        let mut len = first.len();
        let n = self
            .pending
            .iter()
            .take(COALESCE - 1)
            .take_while(|frame| {
                len += frame.len();
                len <= COALESCE_BYTES
            })
            .count();
        if n == 0 {
            return first;
        }
        let len = first.len() + self.pending.iter().take(n).map(Bytes::len).sum::<usize>();
        let mut out = BytesMut::with_capacity(len);
        out.extend_from_slice(&first);
        for frame in self.pending.drain(..n) {
            out.extend_from_slice(&frame);
        }
        out.freeze()
    }

    /// The event's frame in this stream's format; `None` (counted) for an event that cannot be
    /// encoded in it, which the stream skips rather than end.
    fn frame_of(&self, event: &Event) -> Option<Bytes> {
        let frame = frame_bytes(event, self.envelope).ok().cloned();
        if frame.is_none() {
            self.hub.metrics.events_skipped_encode.increment(1);
        }
        frame
    }

    fn control(&mut self, kind: &str, data: &str) {
        debug_assert!(kind.starts_with(RESERVED_PREFIX));
        self.pending.push_back(sse::control_frame(kind, data));
    }

    fn finish(&mut self, reason: Disconnect) {
        match reason {
            Disconnect::Shutdown => self.control("herald.shutdown", "{}"),
            Disconnect::Expired => self.control("herald.expired", "{}"),
            Disconnect::Client | Disconnect::Lagged | Disconnect::Error => {}
        }
        self.step = Step::Done;
        // It receives nothing more; its admission is given back when the stream is dropped,
        // after these last frames.
        self.sub.finish(reason);
    }

    fn register(&mut self) {
        self.sub.listen();
    }

    fn count_sent(&mut self, n: u64) {
        self.sub.shared().sent.fetch_add(n, Ordering::Relaxed);
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
                if let Start::After(id) = self.start {
                    self.pending.push_back(resume_frame(id));
                }
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
        let asked = self.replay_chunk;
        let chunk = self.hub.log.read_after(self.cursor, asked).await?;
        let short = chunk.len() < asked;
        let read: usize = chunk.iter().map(|event| event.frame().len()).sum();
        self.replay_chunk = next_replay_chunk(asked, read, self.hub.config.limits.stream_queue_bytes);
        let mut sent = 0;
        for event in chunk {
            self.cursor = Some(event.id);
            if any_matches(&self.patterns, &event.topic) && self.allowed(&event.topic) {
                if let Some(frame) = self.frame_of(&event) {
                    self.pending.push_back(frame);
                    sent += 1;
                }
            }
        }
        self.count_sent(sent);
        self.hub.metrics.events_delivered.increment(sent);
        if short {
            if !self.sub.listening() {
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
        let mut n = 0;
        for event in &snapshot.events {
            if self.allowed(&event.topic) {
                if let Some(frame) = self.frame_of(event) {
                    self.pending.push_back(frame);
                    n += 1;
                }
            }
        }
        self.count_sent(n);
        self.hub.metrics.events_delivered.increment(n);
        self.control("herald.synced", "{}");
        self.cursor = snapshot.as_of;
        self.step = Step::Live;
        Ok(())
    }

    async fn live(&mut self) {
        let sub = &mut self.sub;
        let expiry = self.expiry.as_mut();
        let expiry = async move {
            match expiry {
                Some(sleep) => sleep.await,
                None => std::future::pending().await,
            }
        };
        let mut batch = Vec::new();
        tokio::select! {
            biased;
            more = sub.recv_many(&mut batch, COALESCE, COALESCE_BYTES) => {
                if more {
                    let cursor = self.cursor.take();
                    // Already sent by replay, or part of the snapshot.
                    batch.retain(|event| cursor.is_none_or(|c| event.id > c));
                    if batch.is_empty() {
                        self.cursor = cursor;
                    }
                    let envelope = self.envelope;
                    // An event this stream's format cannot carry is skipped (and counted), never
                    // the end of the stream.
                    let received = batch.len();
                    batch.retain(|event| frame_bytes(event, envelope).is_ok());
                    self.hub.metrics.events_skipped_encode.increment((received - batch.len()) as u64);
                    match batch.as_slice() {
                        [] => {}
                        // The event's own bytes, shared with every other stream.
                        [one] => self.pending.extend(frame_bytes(one, envelope).ok().cloned()),
                        // Copied into one buffer: cheaper than a shared count taken and given back per
                        // frame by every stream, and one write.
                        several => {
                            let frames = || several.iter().filter_map(|e| frame_bytes(e, envelope).ok());
                            let mut out = BytesMut::with_capacity(frames().map(Bytes::len).sum());
                            for bytes in frames() {
                                out.extend_from_slice(bytes);
                            }
                            self.pending.push_back(out.freeze());
                        }
                    }
                    sub.shared().sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                } else {
                    let reason = if sub.lagged() { Disconnect::Lagged } else { Disconnect::Error };
                    self.finish(reason);
                }
            },
            () = &mut self.stopping => self.finish(Disconnect::Shutdown),
            () = expiry => self.finish(Disconnect::Expired),
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

/// How many events the replay step after one that read `asked` events of `read` frame bytes
/// reads: what is read waits in the stream until written, so it is kept near `bound`
/// (`limits.stream_queue_bytes`) rather than at [`REPLAY_CHUNK`] events of any size.
fn next_replay_chunk(asked: usize, read: usize, bound: usize) -> usize {
    if read > bound {
        (asked.saturating_mul(bound) / read).max(1)
    } else if read.saturating_mul(4) <= bound {
        asked.saturating_mul(4).min(REPLAY_CHUNK)
    } else {
        asked
    }
}

/// The bytes of `event` a stream writes: its frame, or its envelope frame.
fn frame_bytes(event: &Event, envelope: bool) -> Result<&Bytes, EncodeError> {
    event.encoded(if envelope { Format::Envelope } else { Format::Plain })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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

    /// A replay longer than one chunk, on a stream whose token expires while it is replaying.
    #[tokio::test(start_paused = true)]
    async fn replay_and_snapshot_steps_stop_at_the_expiry() {
        // The test reads the stream itself, with time jumping ahead: no stall limit meant here.
        let limits = crate::config::Limits { write_stall_s: Duration::from_secs(3600), ..Default::default() };
        let config = crate::Config { storage: crate::config::Storage::Memory, limits, ..crate::Config::default() };
        let hub = Hub::open(config).await.unwrap();
        let data = serde_json::value::RawValue::from_string("1".into()).unwrap();
        for _ in 0..3 {
            let drafts = (0..REPLAY_CHUNK)
                .map(|i| crate::event::Draft::new("r", None, &data, Some(&i.to_string()), false).unwrap())
                .collect();
            hub.publish(drafts).await.unwrap();
        }
        // (where from, snapshot, frames read before the expiry, most events that may go out)
        let cases = [(Start::Earliest, false, 3, REPLAY_CHUNK), (Start::Live, true, 1, 0)];
        for (start, snapshot, before, most) in cases {
            let key: Arc<str> = "k".into();
            let admission = hub.lifecycle.admit(10, &key, 0).unwrap();
            let query = Query { patterns: vec!["r".parse().unwrap()], last_id: None, snapshot, envelope: false };
            let origin = Origin { principal: key, remote: None };
            let allowance =
                Allowance { filter: Filter::None, expires: Some(SystemTime::now() + Duration::from_secs(60)) };
            let mut stream = EventStream::new(hub.clone(), query, start, origin, allowance, admission);
            let mut text = String::new();
            // The first writes go out (in the snapshot case only `retry:`); then the token expires.
            for _ in 0..before {
                text.push_str(std::str::from_utf8(&stream.next_frame().await.unwrap()).unwrap());
            }
            tokio::time::advance(Duration::from_secs(61)).await;
            while let Some(frame) = stream.next_frame().await {
                text.push_str(std::str::from_utf8(&frame).unwrap());
            }
            let sent = text.matches("\nid: ").count();
            assert!(text.ends_with("event: herald.expired\ndata: {}\n\n"), "{snapshot}: {text:.200}");
            // What was read from the log before the expiry still goes out; nothing after it.
            assert!(sent <= most, "snapshot={snapshot}: {sent} events after the expiry");
            assert!(!text.contains("herald.synced"));
            assert_eq!(stream.sub.ended(), Some(Disconnect::Expired));
        }
    }

    #[test]
    fn replay_steps_shrink_for_large_events_and_grow_back() {
        let bound = 1 << 20;
        // Small events: four times more each step, up to the most.
        assert_eq!(next_replay_chunk(REPLAY_FIRST, 64 * 200, bound), REPLAY_FIRST * 4);
        assert_eq!(next_replay_chunk(REPLAY_CHUNK, REPLAY_CHUNK * 200, bound), REPLAY_CHUNK);
        // 256 KiB events: what fits the bound, and never none.
        assert_eq!(next_replay_chunk(REPLAY_FIRST, REPLAY_FIRST << 18, bound), 4);
        assert_eq!(next_replay_chunk(1, 8 << 20, bound), 1);
        // In between: as it was.
        assert_eq!(next_replay_chunk(16, bound / 2, bound), 16);
    }

    #[test]
    fn the_last_event_id_header_wins_over_the_query() {
        let query = parse_query(Some("topic=q/*&lastEventID=5-0")).unwrap();
        let header = |v: &'static str| HeaderValue::from_static(v);
        // An EventSource created with `?lastEventID=5-0` reconnects with its newest id in the header.
        assert_eq!(start_of(&query, Some(&header("7-2"))), Start::After(EventId { ms: 7, seq: 2 }));
        assert_eq!(start_of(&query, Some(&header("earliest"))), Start::Earliest);
        assert_eq!(start_of(&query, Some(&header("nope"))), Start::Foreign);
        // No header, or an empty one: the query's id.
        assert_eq!(start_of(&query, None), Start::After(EventId { ms: 5, seq: 0 }));
        assert_eq!(start_of(&query, Some(&header(""))), Start::After(EventId { ms: 5, seq: 0 }));
        let bare = parse_query(Some("topic=q/*")).unwrap();
        assert_eq!(start_of(&bare, Some(&header("7-2"))), Start::After(EventId { ms: 7, seq: 2 }));
        assert_eq!(start_of(&bare, None), Start::Live);
        // Not text: not one of ours.
        assert_eq!(start_of(&bare, Some(&HeaderValue::from_bytes(b"\xff").unwrap())), Start::Foreign);
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
