//! `herald bench soak`: the long-running reliability and memory soak of issue 13.
//!
//! The question it answers: under a steady mixed load, does the node's memory level off (and
//! stay under its stated bound), and does every subscriber that keeps dropping its connection
//! still receive every event exactly once, in order, through resume? One JSON line is printed
//! every `--sample-s`, and one summary line at the end.
//!
//! # Shape of a run
//! All topics of a run live under `soak-<pid>-<n>/` so runs never see each other's events.
//!
//! 1. The server's pid is found from the URL's port (or `--server-pid`), and its RSS read.
//! 2. `--idle` raw streams ([`super::stream`]) are opened on `<run>/idle`, a topic that gets no
//!    events, and held for the whole run. They sit on a quiet topic, not the busy one, because
//!    they stand for the many open-but-quiet tabs a node holds: what they cost is the
//!    per-connection floor (buffers, registrations, heartbeats). On the busy topic, 3000 of them
//!    at 500 ev/s would be 1.5M deliveries/s, and the generator on the same two cores would turn
//!    the soak into a fan-out throughput test that measures itself.
//! 3. One marker event is published on `<run>/marker`; its id is where every reconnecting
//!    subscriber starts, so each of them must see every event of its slice from sequence 0.
//! 4. `--reconnecting` subscribers ([`Follower`]) start, through `herald-client`. Subscriber `j`
//!    follows slice `j % slices`, the pattern `<run>/<slice>/*`. It holds each connection for a
//!    random `--hold-min-ms`..`--hold-max-ms`, then drops it (the TCP connection is closed) and
//!    subscribes again with the last id it received as `lastEventID`: a resume.
//! 5. One publisher sends `--rate` events/s for `--duration-s`, in batches every `--tick-ms`,
//!    one request in flight at a time (so the order of sequence numbers is the order of ids).
//!    Event `i` goes to key `k = i % keys` on topic `<run>/<k % slices>/<k>` with key `k`, so
//!    the keyed state stays at `keys` entries however long the run; its payload is
//!    `{"k":k,"s":i / keys,"p":"xx…"}`: `s` is the publisher's sequence number on that topic.
//! 6. After the last publish, subscribers have `--drain-s` to catch up, then everything stops.
//!
//! # What is checked
//! Every reconnecting subscriber checks every event it receives, across all its connections:
//! - ids strictly increase (from the marker's id); a step back is counted in `out_of_order`;
//! - per topic, the sequence numbers are exactly consecutive from 0: a jump forward is a gap
//!   (`gaps` counts the jumps, `missing` the events skipped), one already seen is a duplicate;
//! - the event belongs to its slice (`misrouted` otherwise) and its payload parses
//!   (`malformed` otherwise);
//! - `herald.reset` is counted in `resets` and restarts the sequence check (history was lost,
//!   and the server said so: not a silent gap);
//! - at the end, what it has not received of what was published is counted in `behind`.
//!
//! As every subscriber starts from the marker, it must receive every event of its slice exactly
//! once across all its connections (a resume replays only what came after its last id), so the
//! run's `delivered` must equal `expected_deliveries` exactly. Nothing is silently ignored: a
//! clean run has `gaps`, `duplicates`, `out_of_order`, `misrouted`, `malformed`, `resets`,
//! `subscribe_errors` and `behind` all 0, `delivered == expected_deliveries`, and no idle stream
//! closed by the server or failed (the summary's `clean`). The command exits 0 either way: the
//! summary is the result, and whoever runs it judges it.
//!
//! # Memory
//! The server's RSS (and PSS) is read every second from `/proc` ([`super::process`]): start
//! (before any stream), after opening, min, max, end (after the drain, streams still open).
//! The "levelling off" figure is `rss_growth_last_third_mb_per_min`: the least-squares slope of
//! RSS over the last third of the publishing phase, in MB (10^6 bytes) per minute.
//!
//! # Bounds
//! Publishing stops at `--duration-s`, the drain at `--drain-s` after it; opening the idle
//! streams has [`OPEN_TIMEOUT`]; every subscriber waits in a `select!` on the run's stop token,
//! and the whole scenario sits under [`SoakArgs::timeout_s`]. It talks only to `--url`.
//!
//! # Cost on the box
//! The generator shares two cores with the server, so it is kept light: the idle streams are
//! raw readers that cost nothing while quiet; one publisher task; subscribers follow a slice
//! (`--slices`, default 10), so 200 of them at 500 ev/s decode 10k events/s, not 100k; each
//! event's check is a couple of byte searches and array updates, with no allocation beyond the
//! client's decoded message.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use herald::event::EventId;
use herald_client::{Client, Message, Publish, SubscribeOptions};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::load::{self, Opened};
use super::process::{self, Memory};
use super::stream::{self, End, Endpoint};

/// How long opening the idle streams may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(120);
/// Slack on top of the run's planned length before the scenario is cut off from outside.
const GRACE: Duration = Duration::from_secs(60);
/// The most events in one publish request (a stalled server is caught up in a few requests,
/// each far below the 1 MiB body limit).
const MAX_BATCH: u64 = 1000;
/// How long past `--duration-s` the publisher may take to send what fell due (a server that
/// was slow to answer); beyond it, it stops short.
const CATCH_UP: Duration = Duration::from_secs(10);
/// How often the server's memory is read.
const MEMORY_EVERY: Duration = Duration::from_secs(1);
/// A sequence slot no event has filled yet (after a `herald.reset`).
const UNSEEN: u64 = u64::MAX;

#[derive(Debug, Args)]
pub(crate) struct SoakArgs {
    /// The node's base URL: http://IP:PORT (loopback in every documented run).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The server's process ids (repeatable); default: whatever listens on the URL's port.
    #[arg(long)]
    server_pid: Vec<u32>,
    /// Idle streams held open for the whole run, on a topic that gets no events.
    #[arg(long, default_value_t = 3000)]
    idle: usize,
    /// Subscribers that drop their connection every few seconds and resume with their last id.
    #[arg(long, default_value_t = 200)]
    reconnecting: usize,
    /// Slices of the keys: reconnecting subscriber `j` follows the topics of slice `j % slices`
    /// (1: every subscriber receives every event).
    #[arg(long, default_value_t = 10)]
    slices: usize,
    /// Events per second.
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// Keyed topics the events go round (the keyed state the node holds).
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    /// Payload size in bytes (about; the key and sequence number included).
    #[arg(long, default_value_t = 100)]
    payload_bytes: usize,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 1800)]
    duration_s: u64,
    /// Seconds between sample lines.
    #[arg(long, default_value_t = 10)]
    sample_s: u64,
    /// Publishing tick in milliseconds: each tick publishes what is due, as one batch.
    #[arg(long, default_value_t = 50)]
    tick_ms: u64,
    /// Shortest time a reconnecting subscriber holds a connection, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    hold_min_ms: u64,
    /// Longest time a reconnecting subscriber holds a connection, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    hold_max_ms: u64,
    /// Seconds after the last publish for the subscribers to receive everything.
    #[arg(long, default_value_t = 15)]
    drain_s: u64,
    /// Idle streams being opened at once.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
}

impl SoakArgs {
    /// The run's planned length plus slack: opening, publishing (and [`CATCH_UP`]), the drain,
    /// [`GRACE`].
    pub(crate) fn timeout_s(&self) -> u64 {
        self.duration_s + CATCH_UP.as_secs() + self.drain_s + OPEN_TIMEOUT.as_secs() + GRACE.as_secs()
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.rate == 0 || self.keys == 0 || self.slices == 0 || self.tick_ms == 0 || self.sample_s == 0 {
            bail!("--rate, --keys, --slices, --tick-ms and --sample-s must be at least 1");
        }
        if self.slices > self.keys {
            bail!("--slices ({}) cannot exceed --keys ({}): a slice would have no topic", self.slices, self.keys);
        }
        if self.hold_min_ms == 0 || self.hold_min_ms > self.hold_max_ms {
            bail!("need 0 < --hold-min-ms <= --hold-max-ms");
        }
        Ok(())
    }
}

/// What the run's tasks count as they go; the sampler reads it every second.
#[derive(Default)]
struct Counters {
    /// Events the server acknowledged.
    published: AtomicU64,
    publish_requests: AtomicU64,
    /// Publish requests that failed (and were sent again).
    publish_errors: AtomicU64,
    /// Events received by the reconnecting subscribers, replays included.
    deliveries: AtomicU64,
    /// Connections after a subscriber's first, each resuming from its last id.
    resumes: AtomicU64,
    /// Reconnecting subscribers holding a connection right now.
    following: AtomicUsize,
    gaps: AtomicU64,
    missing: AtomicU64,
    duplicates: AtomicU64,
    out_of_order: AtomicU64,
    resets: AtomicU64,
    misrouted: AtomicU64,
    malformed: AtomicU64,
    /// Other `herald.*` control events (`herald.shutdown`, …).
    control: AtomicU64,
    /// Subscribe answers a retry cannot fix (4xx).
    subscribe_errors: AtomicU64,
}

impl Counters {
    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// The events published for each key, once publishing has ended.
#[derive(Clone, Copy)]
struct Published {
    total: u64,
    keys: u64,
}

impl Published {
    /// Events of key `k`: event `i` went to key `i % keys`.
    fn of(self, k: u64) -> u64 {
        self.total / self.keys + u64::from(k < self.total % self.keys)
    }
}

/// What every task of the run shares.
struct Run {
    counters: Counters,
    /// Cancelled when publishing has ended; `published_total` is final from then on.
    published_all: CancellationToken,
    published_total: AtomicU64,
    /// Tells every subscriber to stop where it is.
    stop: CancellationToken,
    keys: usize,
    slices: usize,
}

impl Run {
    fn published(&self) -> Option<Published> {
        self.published_all
            .is_cancelled()
            .then(|| Published { total: self.published_total.load(Ordering::Acquire), keys: self.keys as u64 })
    }
}

/// `soak`: see the module docs.
pub(crate) async fn soak(args: SoakArgs) -> anyhow::Result<serde_json::Value> {
    args.check()?;
    let addr = load::socket_addr(&args.url)?;
    let pids = if args.server_pid.is_empty() { process::listeners(addr.port())? } else { args.server_pid.clone() };
    // The idle streams, the subscribers, and a few spare for the publisher and `/ready`.
    load::raise_nofile(args.idle + args.reconnecting + 16)?;
    let run_id = format!("soak-{}-{}", std::process::id(), stream::unix_nanos() % 1_000_000);
    let mut rss = RssTrack::new(process::memory(&pids)?);

    let idle = tokio::time::timeout(
        OPEN_TIMEOUT,
        load::open_streams(
            args.idle,
            0,
            args.connect_concurrency,
            Endpoint { addr, path: format!("/events?topic={run_id}/idle") },
            u64::MAX,
        ),
    )
    .await
    .with_context(|| format!("{} idle streams did not open within {OPEN_TIMEOUT:?}", args.idle))??;
    let after_open = process::memory(&pids)?;
    rss.add(None, after_open);

    let publisher = Client::new(&args.url)?;
    let marker = publisher
        .publish(&[Publish::new(format!("{run_id}/marker"), json!(null))])
        .await
        .context("publishing the start marker")?
        .pop()
        .context("no id for the start marker")?;
    let marker_id: EventId = marker.parse().with_context(|| format!("the marker's id {marker:?}"))?;

    let run = Arc::new(Run {
        counters: Counters::default(),
        published_all: CancellationToken::new(),
        published_total: AtomicU64::new(0),
        stop: CancellationToken::new(),
        keys: args.keys,
        slices: args.slices,
    });
    let subscribers = Client::new(&args.url)?;
    let mut followers = JoinSet::new();
    let seed = stream::unix_nanos();
    for j in 0..args.reconnecting {
        let follower = Follower::new(j % args.slices, &run, &run_id, marker.clone(), marker_id);
        let hold = (Duration::from_millis(args.hold_min_ms), Duration::from_millis(args.hold_max_ms));
        let rng = Rng::new(seed ^ (j as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        followers.spawn(follower.run(subscribers.clone(), run.clone(), hold, rng));
    }

    let started = Instant::now();
    let duration = Duration::from_secs(args.duration_s);
    let mut publishing = tokio::spawn(publish(publisher, run.clone(), run_id.clone(), Pace::of(&args), started));
    let ready = Ready::new(&args.url)?;
    let mut memory_tick = tokio::time::interval(MEMORY_EVERY);
    memory_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let sample_every = Duration::from_secs(args.sample_s);
    let mut next_sample = sample_every;
    let mut drain_until: Option<Instant> = None;
    let mut publish_s = 0.0;
    let mut tallies = Vec::new();
    loop {
        tokio::select! {
            _ = memory_tick.tick() => {
                let elapsed = started.elapsed();
                let memory = process::memory(&pids)?;
                rss.add(drain_until.is_none().then_some(elapsed), memory);
                if elapsed >= next_sample {
                    next_sample += sample_every;
                    let line = sample(&run, &idle, elapsed, memory, ready.clients().await, drain_until.is_some());
                    println!("{line}");
                }
            }
            done = &mut publishing, if drain_until.is_none() => {
                done.context("the publisher")?;
                // From here on the totals are final: subscribers can tell when they have all.
                run.published_total.store(Counters::get(&run.counters.published), Ordering::Release);
                run.published_all.cancel();
                publish_s = started.elapsed().as_secs_f64();
                drain_until = Some(Instant::now() + Duration::from_secs(args.drain_s));
            }
            Some(done) = followers.join_next() => tallies.push(done.context("a subscriber")?),
        }
        if drain_until.is_some_and(|until| followers.is_empty() || Instant::now() >= until) {
            break;
        }
    }
    let end = process::memory(&pids)?;
    rss.add(None, end);
    let idle_open = args.idle - idle.readers.ended.load(Ordering::Relaxed);
    let streams_open_at_end = ready.clients().await;

    run.stop.cancel();
    while let Some(done) = followers.join_next().await {
        tallies.push(done.context("a subscriber")?);
    }
    let (outcomes, idle_errors) = idle.finish_counting_errors().await?;
    let closed_by_server = outcomes.iter().filter(|o| o.end == End::Closed).count();

    let c = &run.counters;
    let published = Counters::get(&c.published);
    let behind: u64 = tallies.iter().map(|t| t.behind).sum();
    let expected: u64 = tallies.iter().map(|t| t.expected).sum();
    let delivered = Counters::get(&c.deliveries);
    let caught_up = tallies.iter().filter(|t| t.behind == 0).count();
    let bad = [&c.gaps, &c.duplicates, &c.out_of_order, &c.resets, &c.misrouted, &c.malformed, &c.subscribe_errors]
        .into_iter()
        .map(Counters::get)
        .sum::<u64>();
    let (third_from, third_to) = (duration.as_secs_f64() * 2.0 / 3.0, duration.as_secs_f64());
    // In three parts: one `json!` of them all is past the macro's recursion limit.
    let mut summary = json!({
        "line": "summary",
        "scenario": "soak",
        "server_pids": pids,
        "run": run_id,
        "duration_s": args.duration_s,
        "idle": args.idle,
        "reconnecting": args.reconnecting,
        "slices": args.slices,
        "keys": args.keys,
        "rate": args.rate,
        "payload_bytes": args.payload_bytes,
    });
    let checks = json!({
        "published": published,
        "published_per_s": (published as f64 / publish_s.max(1e-9)).round(),
        "publish_requests": Counters::get(&c.publish_requests),
        "publish_errors": Counters::get(&c.publish_errors),
        "expected_deliveries": expected,
        "delivered": delivered,
        "resumes": Counters::get(&c.resumes),
        "gaps": Counters::get(&c.gaps),
        "missing": Counters::get(&c.missing),
        "duplicates": Counters::get(&c.duplicates),
        "out_of_order": Counters::get(&c.out_of_order),
        "resets": Counters::get(&c.resets),
        "misrouted": Counters::get(&c.misrouted),
        "malformed": Counters::get(&c.malformed),
        "control_events": Counters::get(&c.control),
        "subscribe_errors": Counters::get(&c.subscribe_errors),
        "behind": behind,
        "caught_up_subscribers": caught_up,
        "idle_open_at_end": idle_open,
        "idle_closed_by_server": closed_by_server,
        "idle_errors": idle_errors,
        "streams_open_at_end": streams_open_at_end,
        "clean": bad == 0 && behind == 0 && delivered == expected && closed_by_server + idle_errors == 0,
    });
    let memory = json!({
        "rss_start_bytes": rss.start,
        "rss_after_open_bytes": after_open.rss,
        "rss_min_bytes": rss.min,
        "rss_max_bytes": rss.max,
        "rss_end_bytes": end.rss,
        "pss_end_bytes": end.pss,
        "rss_growth_mb_per_min": rss.growth_mb_per_min(0.0, third_to),
        "rss_growth_last_third_mb_per_min": rss.growth_mb_per_min(third_from, third_to),
    });
    for part in [checks, memory] {
        if let (Some(into), serde_json::Value::Object(from)) = (summary.as_object_mut(), part) {
            into.extend(from);
        }
    }
    Ok(summary)
}

/// One sample line.
fn sample(
    run: &Run,
    idle: &Opened,
    elapsed: Duration,
    memory: Memory,
    streams_open: Option<u64>,
    draining: bool,
) -> serde_json::Value {
    let c = &run.counters;
    json!({
        "line": "sample",
        "scenario": "soak",
        "elapsed_s": elapsed.as_secs(),
        "phase": if draining { "drain" } else { "publish" },
        "rss_bytes": memory.rss,
        "pss_bytes": memory.pss,
        "streams_open": streams_open,
        "idle_open": idle.readers.connected.load(Ordering::Relaxed) - idle.readers.ended.load(Ordering::Relaxed),
        "following": c.following.load(Ordering::Relaxed),
        "published": Counters::get(&c.published),
        "delivered": Counters::get(&c.deliveries),
        "resumes": Counters::get(&c.resumes),
        "gaps": Counters::get(&c.gaps),
        "duplicates": Counters::get(&c.duplicates),
        "out_of_order": Counters::get(&c.out_of_order),
        "resets": Counters::get(&c.resets),
    })
}

/// The server's RSS over the run.
struct RssTrack {
    start: u64,
    min: u64,
    max: u64,
    /// (seconds since publishing started, RSS) during publishing: what the slopes are fit to.
    points: Vec<(f64, u64)>,
}

impl RssTrack {
    fn new(start: Memory) -> Self {
        Self { start: start.rss, min: start.rss, max: start.rss, points: Vec::new() }
    }

    /// Adds a reading; `at` is its time into the publishing phase, if it falls in it.
    fn add(&mut self, at: Option<Duration>, memory: Memory) {
        self.min = self.min.min(memory.rss);
        self.max = self.max.max(memory.rss);
        if let Some(at) = at {
            self.points.push((at.as_secs_f64(), memory.rss));
        }
    }

    /// The least-squares slope of RSS between `from` and `to` seconds, in MB per minute; `None`
    /// with fewer than two readings there.
    fn growth_mb_per_min(&self, from: f64, to: f64) -> Option<f64> {
        let window: Vec<(f64, f64)> =
            self.points.iter().filter(|(t, _)| (from..=to).contains(t)).map(|&(t, r)| (t, r as f64)).collect();
        let bytes_per_s = slope(&window)?;
        Some((bytes_per_s * 60.0 / 1e6 * 1000.0).round() / 1000.0)
    }
}

/// The least-squares slope of `points`.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for &(t, y) in points {
        num += (t - mean_t) * (y - mean_y);
        den += (t - mean_t) * (t - mean_t);
    }
    (den > 0.0).then(|| num / den)
}

/// The open-stream count the server reports on `/ready`.
struct Ready {
    http: HttpClient<HttpConnector, Full<Bytes>>,
    uri: http::Uri,
}

impl Ready {
    fn new(url: &str) -> anyhow::Result<Self> {
        Ok(Self {
            // A connection per request: the server closes a keep-alive connection idle for
            // `limits.header_read_timeout_ms` (10 s), which raced the 10 s sample and lost it.
            http: HttpClient::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build_http(),
            uri: format!("http://{}/ready", load::socket_addr(url)?).parse()?,
        })
    }

    /// `clients` from `/ready`, or `None` if it did not answer within two seconds.
    async fn clients(&self) -> Option<u64> {
        let get = async {
            let request = http::Request::get(self.uri.clone()).body(Full::default()).ok()?;
            let body = self.http.request(request).await.ok()?.into_body().collect().await.ok()?.to_bytes();
            serde_json::from_slice::<serde_json::Value>(&body).ok()?["clients"].as_u64()
        };
        tokio::time::timeout(Duration::from_secs(2), get).await.ok().flatten()
    }
}

/// How the publisher paces itself.
struct Pace {
    rate: u64,
    tick: Duration,
    duration: Duration,
    payload_bytes: usize,
}

impl Pace {
    fn of(args: &SoakArgs) -> Self {
        Self {
            rate: args.rate,
            tick: Duration::from_millis(args.tick_ms),
            duration: Duration::from_secs(args.duration_s),
            payload_bytes: args.payload_bytes,
        }
    }
}

/// Publishes at `pace.rate` until `pace.duration` after `started`, one request at a time: a
/// batch is sent only once the one before it was acknowledged, so each topic's sequence numbers
/// are stored (and given ids) in order. A failed request is sent again, same events, until the
/// run ends: skipping it would make a gap the server is not to blame for.
async fn publish(client: Client, run: Arc<Run>, run_id: String, pace: Pace, started: Instant) {
    let keys = run.keys as u64;
    // Built once: an event costs its topic's and key's clones, not their formatting.
    let topics: Vec<String> = (0..keys).map(|k| format!("{run_id}/{}/{k}", k % run.slices as u64)).collect();
    let names: Vec<String> = (0..keys).map(|k| k.to_string()).collect();
    let pad = "x".repeat(pace.payload_bytes.saturating_sub(r#"{"k":999,"p":"","s":9999999}"#.len()));
    let total = pace.rate.saturating_mul(pace.duration.as_secs());
    let mut tick = tokio::time::interval(pace.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next: u64 = 0;
    let mut batch = Vec::with_capacity(MAX_BATCH as usize);
    while next < total {
        tick.tick().await;
        let elapsed = started.elapsed();
        if elapsed >= pace.duration + CATCH_UP {
            // The server could not take the rate: stop, and let `published_per_s` say so.
            break;
        }
        // What is due by now at `rate`, so a slow request is caught up by the next ones.
        let due = ((elapsed.as_secs_f64() * pace.rate as f64) as u64).min(total);
        let n = due.saturating_sub(next).min(MAX_BATCH);
        if n == 0 {
            continue;
        }
        batch.clear();
        batch.extend((next..next + n).map(|i| {
            let k = (i % keys) as usize;
            let mut event = Publish::new(topics[k].clone(), json!({"k": k, "s": i / keys, "p": pad}));
            event.key = Some(names[k].clone());
            event
        }));
        loop {
            Counters::add(&run.counters.publish_requests, 1);
            match client.publish(&batch).await {
                Ok(_) => break,
                Err(e) => {
                    Counters::add(&run.counters.publish_errors, 1);
                    tracing::warn!(error = %e, "publish failed; sending the batch again");
                    if started.elapsed() >= pace.duration + CATCH_UP {
                        // Whether the server stored it is unknown: subscribers may see those
                        // events beyond the final count, which `behind` does not hide.
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        next += n;
        run.counters.published.store(next, Ordering::Relaxed);
    }
}

/// A reconnecting subscriber: follows one slice from the marker event, dropping and resuming its
/// connection every few seconds, checking what it receives (see the module docs).
struct Follower {
    pattern: String,
    slice: usize,
    /// The next sequence number due on each topic of the slice (topic `k` is at `k / slices`),
    /// or [`UNSEEN`] after a `herald.reset` until the topic's next event.
    next_seq: Vec<u64>,
    /// The id to resume after: the last one received.
    last: String,
    last_id: EventId,
}

/// What a subscriber does next with its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Read on (or, at the end of a hold, resume).
    Next,
    /// Stop following: the run ended, or everything has arrived.
    Stop,
    /// The connection failed in a way a retry cannot fix.
    Failed,
}

/// What a subscriber reports at the end.
struct Tally {
    /// Events published on its topics (all of which it must receive, once each, as it starts
    /// from the marker).
    expected: u64,
    /// Events published on its topics that it had not received when the run stopped.
    behind: u64,
}

impl Follower {
    fn new(slice: usize, run: &Run, run_id: &str, marker: String, marker_id: EventId) -> Self {
        let topics = (run.keys - slice).div_ceil(run.slices);
        Self {
            pattern: format!("{run_id}/{slice}/*"),
            slice,
            next_seq: vec![0; topics],
            last: marker,
            last_id: marker_id,
        }
    }

    async fn run(mut self, client: Client, run: Arc<Run>, hold: (Duration, Duration), mut rng: Rng) -> Tally {
        let c = &run.counters;
        let mut first = true;
        while !run.stop.is_cancelled() && !self.caught_up(&run) {
            if !first {
                Counters::add(&c.resumes, 1);
            }
            first = false;
            let until = tokio::time::Instant::now() + rng.between(hold.0, hold.1);
            let mut sub = client.subscribe(SubscribeOptions {
                topics: vec![self.pattern.clone()],
                last_event_id: Some(self.last.clone()),
                snapshot: false,
            });
            c.following.fetch_add(1, Ordering::Relaxed);
            let mut told = run.published_all.is_cancelled();
            let end = loop {
                tokio::select! {
                    biased;
                    () = run.stop.cancelled() => break Step::Stop,
                    () = tokio::time::sleep_until(until) => break Step::Next,
                    // Wakes a subscriber that already has everything when publishing ends.
                    () = run.published_all.cancelled(), if !told => {
                        told = true;
                        if self.caught_up(&run) {
                            break Step::Stop;
                        }
                    }
                    m = sub.next() => match self.take(m, &run) {
                        Step::Next => {}
                        step => break step,
                    },
                }
            };
            c.following.fetch_sub(1, Ordering::Relaxed);
            if let Some(id) = sub.last_event_id() {
                id.clone_into(&mut self.last);
            }
            // Dropping `sub` drops its response body, which closes the TCP connection.
            drop(sub);
            if end == Step::Failed {
                // An answer a retry cannot fix: wait out this hold rather than spin.
                tokio::select! {
                    () = run.stop.cancelled() => {}
                    () = tokio::time::sleep_until(until) => {}
                }
            }
        }
        let Some(published) = run.published() else {
            return Tally { expected: 0, behind: 0 };
        };
        let expected = (0..self.next_seq.len()).map(|i| published.of((i * run.slices + self.slice) as u64)).sum();
        Tally { expected, behind: self.behind(&run, published) }
    }

    /// Whether publishing has ended and every event of the slice has arrived.
    fn caught_up(&self, run: &Run) -> bool {
        run.published().is_some_and(|p| self.behind(run, p) == 0)
    }

    /// Checks one event; says whether to read on ([`Step::Next`]), stop (everything is in),
    /// or drop a connection that failed.
    fn take(&mut self, message: Result<Message, herald_client::Error>, run: &Run) -> Step {
        let c = &run.counters;
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                Counters::add(&c.subscribe_errors, 1);
                tracing::warn!(error = %e, pattern = %self.pattern, "subscribe failed");
                return Step::Failed;
            }
        };
        if message.kind == "herald.reset" {
            // History after our id is gone, and the server said so: start the check afresh.
            Counters::add(&c.resets, 1);
            self.next_seq.fill(UNSEEN);
            return Step::Next;
        }
        if message.kind.starts_with("herald.") {
            Counters::add(&c.control, 1);
            return Step::Next;
        }
        Counters::add(&c.deliveries, 1);
        match message.id.as_deref().map(str::parse::<EventId>) {
            Some(Ok(id)) => {
                if id <= self.last_id {
                    Counters::add(&c.out_of_order, 1);
                }
                self.last_id = id;
            }
            _ => Counters::add(&c.malformed, 1),
        }
        let data = message.data.as_bytes();
        let (Some(k), Some(s)) = (number(data, b"\"k\":"), number(data, b"\"s\":")) else {
            Counters::add(&c.malformed, 1);
            return Step::Next;
        };
        let k = k as usize;
        if k >= run.keys || k % run.slices != self.slice {
            Counters::add(&c.misrouted, 1);
            return Step::Next;
        }
        let due = &mut self.next_seq[k / run.slices];
        if *due == UNSEEN || s == *due {
            *due = s + 1;
        } else if s > *due {
            Counters::add(&c.gaps, 1);
            Counters::add(&c.missing, s - *due);
            *due = s + 1;
        } else {
            Counters::add(&c.duplicates, 1);
        }
        // Only once publishing has ended is "everything" known.
        if self.caught_up(run) {
            Step::Stop
        } else {
            Step::Next
        }
    }

    /// Events published on this slice's topics that have not arrived (topics left [`UNSEEN`]
    /// by a reset are not counted: where they restart is unknown).
    fn behind(&self, run: &Run, published: Published) -> u64 {
        self.next_seq
            .iter()
            .enumerate()
            .filter(|(_, &due)| due != UNSEEN)
            .map(|(i, &due)| published.of((i * run.slices + self.slice) as u64).saturating_sub(due))
            .sum()
    }
}

/// The unsigned integer right after `name` in `data` (a compact JSON object).
fn number(data: &[u8], name: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(data, name)? + name.len();
    let digits = &data[at..];
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&digits[..len]).ok()?.parse().ok()
}

/// SplitMix64: hold times need spread, not quality, and this keeps `rand` out of the binary.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform duration in `low..=high`, to the millisecond.
    fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let span = (high - low).as_millis() as u64 + 1;
        low + Duration::from_millis(self.next() % span)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn numbers_are_read_in_any_key_order() {
        let data = br#"{"k":12,"p":"xx","s":3456}"#;
        assert_eq!(number(data, b"\"k\":"), Some(12));
        assert_eq!(number(data, b"\"s\":"), Some(3456));
        assert_eq!(number(br#"{"s":1,"k":7}"#, b"\"k\":"), Some(7));
        assert_eq!(number(br#"{"k":"a"}"#, b"\"k\":"), None);
        assert_eq!(number(br#"{"p":1}"#, b"\"k\":"), None);
    }

    #[test]
    fn published_counts_split_the_total_round_the_keys() {
        let p = Published { total: 10, keys: 4 };
        assert_eq!((0..4).map(|k| p.of(k)).collect::<Vec<_>>(), vec![3, 3, 2, 2]);
        assert_eq!((0..4).map(|k| p.of(k)).sum::<u64>(), 10);
    }

    #[test]
    fn slope_is_per_second_and_flat_is_zero() {
        assert_eq!(slope(&[(0.0, 5.0), (1.0, 7.0), (2.0, 9.0)]), Some(2.0));
        assert_eq!(slope(&[(0.0, 5.0), (10.0, 5.0)]), Some(0.0));
        assert_eq!(slope(&[(0.0, 5.0)]), None);
    }

    fn run(keys: usize, slices: usize) -> Run {
        Run {
            counters: Counters::default(),
            published_all: CancellationToken::new(),
            published_total: AtomicU64::new(0),
            stop: CancellationToken::new(),
            keys,
            slices,
        }
    }

    fn event(id: &str, k: u64, s: u64) -> Result<Message, herald_client::Error> {
        Ok(Message { id: Some(id.into()), kind: "message".into(), data: format!(r#"{{"k":{k},"p":"x","s":{s}}}"#) })
    }

    #[test]
    fn every_fault_is_counted_and_a_reset_restarts_the_check() {
        // Slice 1 of 2 over 4 keys: topics 1 and 3.
        let run = run(4, 2);
        let mut f = Follower::new(1, &run, "r", "10-0".into(), "10-0".parse().unwrap());
        let c = &run.counters;
        for (id, k, s) in [("11-0", 1, 0), ("11-1", 3, 0), ("12-0", 1, 1), ("12-1", 3, 1)] {
            assert_eq!(f.take(event(id, k, s), &run), Step::Next);
        }
        assert_eq!(Counters::get(&c.deliveries), 4);
        let faults = [&c.gaps, &c.missing, &c.duplicates, &c.out_of_order, &c.misrouted, &c.malformed];
        assert!(faults.iter().all(|n| Counters::get(n) == 0));

        f.take(event("13-0", 1, 4), &run); // 2 and 3 skipped
        assert_eq!((Counters::get(&c.gaps), Counters::get(&c.missing)), (1, 2));
        f.take(event("13-1", 3, 1), &run); // seen already
        assert_eq!(Counters::get(&c.duplicates), 1);
        f.take(event("12-5", 3, 2), &run); // in sequence, but its id goes back
        assert_eq!(Counters::get(&c.out_of_order), 1);
        f.take(event("14-0", 2, 0), &run); // another slice's topic
        assert_eq!(Counters::get(&c.misrouted), 1);
        f.take(Ok(Message { id: Some("14-1".into()), kind: "message".into(), data: "{}".into() }), &run);
        assert_eq!(Counters::get(&c.malformed), 1);

        // After a reset, each topic's next event is its new start; only later jumps count.
        f.take(Ok(Message { id: None, kind: "herald.reset".into(), data: "{}".into() }), &run);
        f.take(event("20-0", 1, 40), &run);
        f.take(event("20-1", 1, 41), &run);
        assert_eq!((Counters::get(&c.resets), Counters::get(&c.gaps)), (1, 1));
    }

    #[test]
    fn a_subscriber_is_caught_up_only_once_it_has_all_that_was_published() {
        let run = run(4, 2);
        let mut f = Follower::new(0, &run, "r", "1-0".into(), "1-0".parse().unwrap());
        // Topics 0 and 2; five events published in all: 0, 2 and 4 went to them (seq 0, 0, 1).
        assert_eq!(f.take(event("2-0", 0, 0), &run), Step::Next);
        run.published_total.store(5, Ordering::Release);
        run.published_all.cancel();
        assert_eq!(f.behind(&run, run.published().unwrap()), 2);
        assert_eq!(f.take(event("2-1", 2, 0), &run), Step::Next);
        assert_eq!(f.take(event("2-2", 0, 1), &run), Step::Stop);
        assert!(f.caught_up(&run));
    }

    #[test]
    fn hold_times_stay_in_range() {
        let mut rng = Rng::new(7);
        let (low, high) = (Duration::from_millis(100), Duration::from_millis(300));
        for _ in 0..1000 {
            let d = rng.between(low, high);
            assert!(d >= low && d <= high, "{d:?}");
        }
    }
}
