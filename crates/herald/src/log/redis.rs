//! The cluster event log: one Redis Stream shared by every node (SPEC §10).
//!
//! # In Redis
//! With `cluster.key_prefix = P` (default `herald`):
//! - `{P}:events` is a Redis Stream; each entry is one event, with fields `t` (topic), `y`
//!   (type), `d` (compact JSON data) and, for keyed events, `k` (key) and `x` (`1` for a
//!   tombstone). **The entry id is the event id**: Redis assigns it (`XADD ... *`) as
//!   `<ms>-<seq>`, the shape of [`EventId`], so an id seen on one node means the same position on
//!   every node and a stream resumes on any node with no gap and no duplicate.
//! - `{P}:state` is a hash: field `topic \0 key` → `id \n type \n data` of that pair's latest
//!   event (neither a type nor compact JSON holds a newline). A tombstone deletes the field.
//!   Trimming never touches it: the latest state of a key outlives the event that set it.
//!
//! The `{P}` hash tag keeps both keys in one slot, so the scripts below stay valid on a proxy
//! that routes by slot. Redis 7 or later is needed (scripts declare flags with `#!lua`).
//!
//! # Appending
//! A batch is one Lua script: every `XADD` and every state change of the batch run atomically,
//! so the stream and the state never disagree and a batch is all or nothing (the script
//! declares no `allow-oom`, so Redis refuses it before it starts when out of memory, rather
//! than half way). `XADD MAXLEN ~ retention.max_events` trims as it appends. A publish is
//! answered once Redis has executed the script: how durable that is is Redis's own persistence
//! setting (`appendonly yes` + `appendfsync always` for SPEC §3's "survives a crash"); the
//! operator chooses it. An append that fails on the connection is [`Error::Unavailable`] (the
//! client gets 503): the script may or may not have run, as with any request whose answer was
//! lost, and it is never retried by Herald, so it is never applied twice.
//!
//! # Tailing and ordering
//! Each node runs one tail task on its own connection, `XREAD BLOCK` from the last id it has
//! delivered. Every event, including this node's own publishes, reaches the local
//! [`Router`](crate::hub::Router) only through the tail, so exactly once and in stream order.
//! Under the view's write lock the tail adds each batch to the ring and the keyed state and then
//! dispatches it, so a [`Snapshot`] (taken under the same lock) is exactly as new as what the
//! router has been given. An event is in Redis before the tail can read it, so it is readable
//! through [`EventLog::read_after`] before any subscriber receives it, as the trait requires.
//!
//! # Replay
//! The ring holds the newest events the tail delivered, a contiguous run of the stream; a resume
//! or replay inside it costs no round trip. Older positions are read with `XRANGE`, with an
//! exclusive start. A replay may read events from Redis that the tail has not delivered yet;
//! the stream then sees them again live and skips them by id.
//!
//! # Losing Redis
//! When Redis is unreachable, appends and reads fail with [`Error::Unavailable`], the readiness
//! gate `redis` is closed (`/ready` answers 503), and the tail reconnects with backoff
//! (100 ms doubling to 5 s) and carries on from its last delivered id: nothing is skipped and
//! nothing delivered twice, as long as Redis kept the stream (with persistence on). A Redis
//! that restarts empty has lost the history: resumes from before then get `herald.reset`, and
//! nodes keep the keyed state they had until restarted.
//!
//! # Closing
//! [`EventLog::close`] stops the tail and refuses later appends with [`Error::Closed`]; there is
//! nothing to flush, as every answered append is already in Redis.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use ::redis::{AsyncConnectionConfig, Client, RedisError, Script};
use async_trait::async_trait;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use super::memory::Retention;
use super::{Error, EventLog, Resume, Snapshot};
use crate::event::{now_ms, Draft, Event, EventId};
use crate::hub::Router;
use crate::sources::Gate;
use crate::state::KeyedState;
use crate::topic::{Pattern, Topic};

/// The most events the in-memory replay ring keeps (also bounded by `retention.max_events`).
pub const RING_EVENTS: usize = 65_536;
/// Entries one `XREAD` of the tail takes at most.
const TAIL_BATCH: usize = 1024;
/// How long one `XREAD` of the tail blocks in Redis before asking again.
const TAIL_BLOCK: Duration = Duration::from_secs(2);
/// The longest a command waits for Redis's answer before the connection counts as lost.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a connection attempt takes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Appends a batch: `KEYS` = stream, state; `ARGV[1]` = max length, then five per event:
/// topic, type, data, key (`''` for none), tombstone (`'1'` or `'0'`). Returns the ids.
/// The type checks come first so that no write can fail half way through the batch.
const APPEND: &str = r"#!lua
local st = redis.call('TYPE', KEYS[1])['ok']
if st ~= 'stream' and st ~= 'none' then return redis.error_reply('WRONGTYPE ' .. KEYS[1] .. ' is not a stream') end
local ht = redis.call('TYPE', KEYS[2])['ok']
if ht ~= 'hash' and ht ~= 'none' then return redis.error_reply('WRONGTYPE ' .. KEYS[2] .. ' is not a hash') end
local ids = {}
for b = 2, #ARGV, 5 do
  local topic, kind, data, key, tomb = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
  local id
  if key == '' then
    id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 't', topic, 'y', kind, 'd', data)
  else
    id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 't', topic, 'y', kind, 'd', data, 'k', key, 'x', tomb)
    local field = topic .. '\0' .. key
    if tomb == '1' then
      redis.call('HDEL', KEYS[2], field)
    else
      redis.call('HSET', KEYS[2], field, id .. '\n' .. kind .. '\n' .. data)
    end
  end
  ids[#ids + 1] = id
end
return ids
";

/// The stream's last generated id (`''` when there is no stream) and the whole state hash, read
/// atomically: the tail starts at that id, so the state and the tail meet exactly.
const LOAD: &str = r"#!lua flags=no-writes
local last = ''
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = info[i + 1] end
  end
end
return {last, redis.call('HGETALL', KEYS[2])}
";

/// Where `ARGV[1]` stands: `{first retained id, last generated id, 1 if the id is retained}`,
/// with `''` for an absent id (no stream, or an empty one).
const RESUME: &str = r"#!lua flags=no-writes
if redis.call('EXISTS', KEYS[1]) == 0 then return {'', '', 0} end
local found = #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local first_id = ''
if #first > 0 then first_id = first[1][1] end
local last = ''
local info = redis.call('XINFO', 'STREAM', KEYS[1])
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then last = info[i + 1] end
end
return {first_id, last, found}
";

/// The names of the two keys.
#[derive(Debug, Clone)]
struct Keys {
    stream: String,
    state: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Self { stream: format!("{{{prefix}}}:events"), state: format!("{{{prefix}}}:state") }
    }
}

/// What the tail has delivered on this node; changed only by the tail.
struct View {
    /// The newest delivered events, contiguous in the stream.
    ring: VecDeque<Arc<Event>>,
    ring_limit: usize,
    /// The last id delivered to the router (or, before any, where the tail started).
    head: Option<EventId>,
    state: KeyedState,
}

impl View {
    fn push(&mut self, event: Arc<Event>) {
        self.ring.push_back(event);
        while self.ring.len() > self.ring_limit {
            self.ring.pop_front();
        }
    }
}

struct Shared {
    view: RwLock<View>,
    router: Arc<Router>,
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, View> {
        self.view.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, View> {
        self.view.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The cluster [`EventLog`] on Redis Streams. See the module docs.
pub struct RedisLog {
    shared: Arc<Shared>,
    /// Appends, reads and trims share one multiplexed connection that reconnects by itself.
    commands: ConnectionManager,
    keys: Keys,
    retention: Retention,
    append_script: Script,
    resume_script: Script,
    closed: AtomicBool,
    /// Stops the tail at close (and on drop).
    stop: CancellationToken,
    /// `host:port` of Redis, without credentials, for messages.
    target: String,
}

impl std::fmt::Debug for RedisLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLog").field("redis", &self.target).field("keys", &self.keys).finish()
    }
}

impl Drop for RedisLog {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// `host:port` (or the socket path) of a Redis URL, never its password.
pub fn redacted(url: &str) -> String {
    match Client::open(url) {
        Ok(client) => client.get_connection_info().addr().to_string(),
        Err(_) => "<invalid URL>".to_owned(),
    }
}

/// Whether `e` means Redis could not be reached (rather than that it refused the command).
fn unreachable(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.code().is_some_and(|c| matches!(c, "LOADING" | "MASTERDOWN" | "TRYAGAIN" | "BUSY"))
}

impl RedisLog {
    /// Connects to Redis at `url`, loads the keyed state, and starts the tail that delivers
    /// every event of the shared stream to `router`. `gate` is closed while Redis is unreachable.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when Redis cannot be reached; [`Error::Storage`] for a malformed
    /// URL or when the keys hold something that is not Herald's (or Redis is older than 7).
    pub async fn open(
        url: &str,
        prefix: &str,
        router: Arc<Router>,
        retention: Retention,
        gate: Gate,
    ) -> Result<Self, Error> {
        let client = Client::open(url).map_err(|e| Error::Storage(format!("cluster.redis_url: {e}")))?;
        let target = client.get_connection_info().addr().to_string();
        let keys = Keys::new(prefix);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            // A publish during an outage should get its 503 promptly, not after a long retry.
            .set_number_of_retries(1);
        let mut commands = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(|e| Error::Unavailable(format!("cannot reach Redis at {target}: {e}")))?;
        let (last, state): (String, Vec<Vec<u8>>) =
            Script::new(LOAD).key(&keys.stream).key(&keys.state).invoke_async(&mut commands).await.map_err(|e| {
                if unreachable(&e) {
                    Error::Unavailable(format!("cannot reach Redis at {target}: {e}"))
                } else {
                    Error::Storage(format!("cannot load the keyed state from Redis at {target}: {e}"))
                }
            })?;
        let head = if last.is_empty() { None } else { Some(parse_id(&last)?) };
        let mut keyed = KeyedState::default();
        let mut loaded: Vec<Arc<Event>> = Vec::with_capacity(state.len() / 2);
        for pair in state.chunks_exact(2) {
            loaded.push(Arc::new(decode_state(&pair[0], &pair[1])?));
        }
        loaded.sort_by_key(|e| e.id);
        for e in &loaded {
            keyed.apply(e);
        }
        tracing::info!(redis = %target, stream = %keys.stream, keys = keyed.len(), head = ?head.map(|h| h.to_string()), "cluster log opened");
        let view =
            View { ring: VecDeque::new(), ring_limit: RING_EVENTS.min(retention.max_events), head, state: keyed };
        let shared = Arc::new(Shared { view: RwLock::new(view), router });
        let stop = CancellationToken::new();
        let from = head.map_or_else(|| "0-0".to_owned(), |h| h.to_string());
        let link = Link { client, commands: commands.clone(), gate, target: target.clone() };
        tokio::spawn(tail(shared.clone(), link, keys.clone(), from, stop.clone()));
        Ok(Self {
            shared,
            commands,
            keys,
            retention,
            append_script: Script::new(APPEND),
            resume_script: Script::new(RESUME),
            closed: AtomicBool::new(false),
            stop,
            target,
        })
    }

    fn failed(&self, what: &str) -> impl Fn(RedisError) -> Error + '_ {
        let what = what.to_owned();
        move |e| {
            if unreachable(&e) {
                Error::Unavailable(format!("Redis at {} is unreachable ({what}): {e}", self.target))
            } else {
                Error::Storage(format!("Redis at {} refused {what}: {e}", self.target))
            }
        }
    }

    async fn range(&self, start: &str, limit: usize) -> Result<Vec<Arc<Event>>, Error> {
        let reply: StreamRangeReply = ::redis::cmd("XRANGE")
            .arg(&self.keys.stream)
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.commands.clone())
            .await
            .map_err(self.failed("a read"))?;
        reply.ids.iter().map(|entry| decode_entry(entry).map(Arc::new)).collect()
    }
}

fn parse_id(text: &str) -> Result<EventId, Error> {
    text.parse().map_err(|_| Error::Storage(format!("Redis returned {text:?}, which is not an event id")))
}

fn draft(topic: &str, kind: &str, data: String, key: Option<&str>, tombstone: bool) -> Result<Draft, Error> {
    let bad = |what: &str| Error::Storage(format!("a stored event has a bad {what}"));
    Ok(Draft {
        topic: Topic::new(topic).map_err(|_| bad("topic"))?,
        kind: kind.into(),
        data: RawValue::from_string(data).map_err(|_| bad("data"))?,
        key: key.map(Into::into),
        tombstone,
    })
}

/// An event from a stream entry written by [`APPEND`].
fn decode_entry(entry: &StreamId) -> Result<Event, Error> {
    let id = parse_id(&entry.id)?;
    let field = |name: &str| {
        entry.get::<String>(name).ok_or_else(|| Error::Storage(format!("stream entry {id} has no field {name:?}")))
    };
    let key = entry.get::<String>("k");
    let tombstone = entry.get::<String>("x").is_some_and(|x| x == "1");
    Ok(Event::new(id, draft(&field("t")?, &field("y")?, field("d")?, key.as_deref(), tombstone)?))
}

/// An event from a state hash field and value written by [`APPEND`].
fn decode_state(field: &[u8], value: &[u8]) -> Result<Event, Error> {
    let bad = || Error::Storage("a keyed state entry in Redis is not Herald's".to_owned());
    let field = std::str::from_utf8(field).map_err(|_| bad())?;
    let value = std::str::from_utf8(value).map_err(|_| bad())?;
    let (topic, key) = field.split_once('\0').ok_or_else(bad)?;
    let mut parts = value.splitn(3, '\n');
    let (Some(id), Some(kind), Some(data)) = (parts.next(), parts.next(), parts.next()) else { return Err(bad()) };
    Ok(Event::new(parse_id(id)?, draft(topic, kind, data.to_owned(), Some(key), false)?))
}

/// What the tail needs to reach Redis and to say whether it can.
struct Link {
    client: Client,
    /// The appends' connection: checked before the gate reopens (see [`Link::usable`]).
    commands: ConnectionManager,
    gate: Gate,
    target: String,
}

impl Link {
    /// Whether the appends' connection works. After an outage a connection manager notices the
    /// loss only when a command fails on it, so the first publish after Redis came back would
    /// fail: an idempotent `PING` takes that failure (and the reconnect) instead, before the
    /// gate says the node is ready again.
    async fn usable(&self) -> bool {
        for _ in 0..3 {
            let pong: Result<String, RedisError> = ::redis::cmd("PING").query_async(&mut self.commands.clone()).await;
            if pong.is_ok() {
                return true;
            }
            tokio::time::sleep(BACKOFF_MIN).await;
        }
        false
    }
}

/// The tail: delivers every entry of the stream after `from` to the router, in order, for as
/// long as the log is open, reconnecting whenever the connection is lost.
async fn tail(shared: Arc<Shared>, link: Link, keys: Keys, mut from: String, stop: CancellationToken) {
    let Link { client, gate, target, .. } = &link;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(TAIL_BLOCK + RESPONSE_TIMEOUT));
    let mut backoff = BACKOFF_MIN;
    let mut down_since: Option<std::time::Instant> = None;
    loop {
        let connected = tokio::select! {
            () = stop.cancelled() => return,
            c = client.get_multiplexed_async_connection_with_config(&config) => c,
        };
        let mut conn = match connected {
            Ok(conn) => conn,
            Err(e) => {
                gate.close();
                if down_since.is_none() {
                    tracing::warn!(redis = %target, error = %e, "cannot reach Redis; retrying with backoff");
                    down_since = Some(std::time::Instant::now());
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        // The first read on a new connection does not block, so readiness returns at once.
        let mut block = false;
        loop {
            let mut cmd = ::redis::cmd("XREAD");
            cmd.arg("COUNT").arg(TAIL_BATCH);
            if block {
                cmd.arg("BLOCK").arg(TAIL_BLOCK.as_millis() as u64);
            }
            cmd.arg("STREAMS").arg(&keys.stream).arg(&from);
            let read: Result<Option<StreamReadReply>, RedisError> = tokio::select! {
                () = stop.cancelled() => return,
                r = cmd.query_async(&mut conn) => r,
            };
            let reply = match read {
                Ok(reply) => reply,
                Err(e) => {
                    gate.close();
                    tracing::warn!(redis = %target, error = %e, last = %from, "lost Redis; reconnecting");
                    down_since.get_or_insert_with(std::time::Instant::now);
                    break;
                }
            };
            if !gate.is_open() {
                let usable = tokio::select! {
                    () = stop.cancelled() => return,
                    usable = link.usable() => usable,
                };
                if !usable {
                    break;
                }
            }
            if let Some(since) = down_since.take() {
                tracing::info!(redis = %target, last = %from, down_ms = since.elapsed().as_millis() as u64, "Redis is back; tailing on");
            }
            gate.open();
            backoff = BACKOFF_MIN;
            block = true;
            let entries: Vec<StreamId> = reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids).collect();
            let Some(last) = entries.last() else { continue };
            from = last.id.clone();
            deliver(&shared, &entries);
        }
    }
}

/// Hands a run of stream entries to the ring, the keyed state and the router, in order.
fn deliver(shared: &Shared, entries: &[StreamId]) {
    let mut events = Vec::with_capacity(entries.len());
    let mut head = None;
    for entry in entries {
        match decode_entry(entry) {
            Ok(event) => {
                head = Some(event.id);
                events.push(Arc::new(event));
            }
            // Something other than Herald wrote to the stream: skip it, loudly.
            Err(e) => tracing::error!(id = %entry.id, error = %e, "skipped a stream entry Herald cannot read"),
        }
    }
    let mut view = shared.write();
    for event in &events {
        view.state.apply(event);
        view.push(event.clone());
    }
    if head.is_some() {
        view.head = head;
    }
    // Under the lock, so that snapshots are exactly as new as what the router was given.
    shared.router.dispatch(&events);
}

#[async_trait]
impl EventLog for RedisLog {
    async fn append(&self, drafts: Vec<Draft>) -> Result<Vec<Arc<Event>>, Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let mut invocation = self.append_script.key(&self.keys.stream);
        invocation.key(&self.keys.state).arg(self.retention.max_events);
        for d in &drafts {
            invocation
                .arg(d.topic.as_str())
                .arg(&*d.kind)
                .arg(d.data.get())
                .arg(d.key.as_deref().unwrap_or(""))
                .arg(if d.tombstone { "1" } else { "0" });
        }
        let ids: Vec<String> =
            invocation.invoke_async(&mut self.commands.clone()).await.map_err(self.failed("an append"))?;
        if ids.len() != drafts.len() {
            return Err(Error::Storage(format!("Redis returned {} ids for {} events", ids.len(), drafts.len())));
        }
        ids.iter().zip(drafts).map(|(id, d)| Ok(Arc::new(Event::new(parse_id(id)?, d)))).collect()
    }

    async fn resume(&self, id: EventId) -> Result<Resume, Error> {
        {
            let view = self.shared.read();
            if let (Some(first), Some(last)) = (view.ring.front(), view.ring.back()) {
                if first.id <= id && id <= last.id {
                    let found = view.ring.binary_search_by_key(&id, |e| e.id).is_ok();
                    return Ok(if found { Resume::After(Some(id)) } else { Resume::Unknown });
                }
            }
        }
        let (first, last, found): (String, String, i64) = self
            .resume_script
            .key(&self.keys.stream)
            .arg(id.to_string())
            .invoke_async(&mut self.commands.clone())
            .await
            .map_err(self.failed("a resume"))?;
        if found > 0 {
            return Ok(Resume::After(Some(id)));
        }
        if last.is_empty() {
            return Ok(Resume::Unknown);
        }
        let last = parse_id(&last)?;
        if id > last {
            return Ok(Resume::Unknown);
        }
        if !first.is_empty() && id >= parse_id(&first)? {
            return Ok(Resume::Unknown);
        }
        // Before the oldest retained entry. Trimming does not say which ids it removed, so
        // unless nothing at all is retained after it, events after `id` may be gone.
        Ok(if first.is_empty() && id == last { Resume::After(Some(id)) } else { Resume::Truncated })
    }

    async fn read_after(&self, after: Option<EventId>, limit: usize) -> Result<Vec<Arc<Event>>, Error> {
        if let Some(after) = after {
            let view = self.shared.read();
            if view.ring.front().is_some_and(|first| first.id <= after) {
                let start = view.ring.partition_point(|e| e.id <= after);
                return Ok(view.ring.range(start..).take(limit).cloned().collect());
            }
        }
        match after {
            Some(after) => self.range(&format!("({after}"), limit).await,
            None => self.range("-", limit).await,
        }
    }

    async fn snapshot(&self, patterns: &[Pattern]) -> Result<Snapshot, Error> {
        let view = self.shared.read();
        Ok(Snapshot { events: view.state.snapshot(patterns), as_of: view.head })
    }

    async fn expire(&self) -> Result<(), Error> {
        let cutoff = now_ms().saturating_sub(self.retention.max_age.as_millis() as u64);
        let () = ::redis::cmd("XTRIM")
            .arg(&self.keys.stream)
            .arg("MINID")
            .arg("~")
            .arg(format!("{cutoff}-0"))
            .query_async::<i64>(&mut self.commands.clone())
            .await
            .map(drop)
            .map_err(self.failed("a trim"))?;
        Ok(())
    }

    async fn close(&self) -> Result<(), Error> {
        self.closed.store(true, Ordering::Release);
        self.stop.cancel();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_values_round_trip_through_decode() {
        let e = decode_state(b"a/b\0k1", b"1700000000000-3\nitem.updated\n{\"x\":1}").unwrap();
        assert_eq!(e.id.to_string(), "1700000000000-3");
        assert_eq!(
            (e.topic.as_str(), &*e.kind, e.data.get(), e.key.as_deref()),
            ("a/b", "item.updated", "{\"x\":1}", Some("k1"))
        );
        assert!(decode_state(b"a/b", b"1-0\nx\n1").is_err(), "no key separator");
        assert!(decode_state(b"a/b\0k", b"1-0\nx").is_err(), "no data");
        assert!(decode_state(b"a b\0k", b"1-0\nx\n1").is_err(), "bad topic");
    }

    #[test]
    fn urls_are_redacted_and_keys_share_a_slot() {
        assert_eq!(redacted("redis://user:hunter2@10.0.0.1:6380/0"), "10.0.0.1:6380");
        assert_eq!(redacted("nonsense"), "<invalid URL>");
        let keys = Keys::new("herald");
        assert_eq!((keys.stream.as_str(), keys.state.as_str()), ("{herald}:events", "{herald}:state"));
    }
}
