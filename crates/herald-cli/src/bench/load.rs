//! The stream scenarios of `herald bench`: `idle`, `fanout` and `cluster`, against Herald or
//! nginx + nchan (`--target`), so both are driven by the same client in the same run.
//!
//! Shape of a run: open N streams on one topic (raw readers, see [`super::stream`]), from
//! several 127.0.0.x source addresses; wait for every response head; for `fanout` and `cluster`,
//! publish warm-up events until every stream has seen one (so each is known to be registered),
//! then publish `events` timed events at `rate` per second, each carrying its publish time
//! (`{"t":<unix nanos>,"p":"xx…"}`); every stream ends once it has seen all of them. Receivers
//! compute publish → receive latency against the same clock (same machine).
//!
//! Publishing is paced in ticks (`--tick-ms`, default 10 ms): each tick publishes the events
//! due by then. To Herald they go as one batch (`POST /publish` with a JSON array, durable
//! before the answer); nchan has no batch publish, so they go as concurrent `POST /pub?id=`
//! requests.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::process;
use super::stream::{self, End, Endpoint, Outcome, Readers};

/// The server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Target {
    /// Herald: `GET /events?topic=`, `POST /publish`.
    Herald,
    /// nginx + nchan as in `deploy/bench/nchan.conf`: `GET /sub?id=` (EventSource),
    /// `POST /pub?id=`.
    Nchan,
}

#[derive(Debug, Args)]
pub(crate) struct Streams {
    /// What speaks at the URLs.
    #[arg(long, value_enum, default_value = "herald")]
    target: Target,
    /// Streams to open.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Bind the streams' sockets to this many source addresses, 127.0.0.2 and up (each has its
    /// own ~28k ephemeral ports); 0 lets the kernel choose (127.0.0.1).
    #[arg(long, default_value_t = 0)]
    source_ips: u8,
    /// Streams being opened at once.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout_s: u64,
}

#[derive(Debug, Args)]
pub(crate) struct IdleArgs {
    #[command(flatten)]
    streams: Streams,
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The server's process ids (repeatable); default: whatever listens on the URL's port.
    #[arg(long)]
    server_pid: Vec<u32>,
    /// Seconds to hold the streams open before measuring.
    #[arg(long, default_value_t = 3)]
    hold_s: u64,
}

#[derive(Debug, Args)]
pub(crate) struct FanoutArgs {
    #[command(flatten)]
    streams: Streams,
    #[command(flatten)]
    publishing: Publishing,
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
}

#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    #[command(flatten)]
    streams: Streams,
    #[command(flatten)]
    publishing: Publishing,
    /// The node events are published to.
    #[arg(long)]
    publish_url: String,
    /// The node the streams are opened on (the same as `--publish-url` for a single-node
    /// baseline).
    #[arg(long)]
    subscribe_url: String,
}

#[derive(Debug, Args)]
pub(crate) struct Publishing {
    /// Timed events to publish.
    #[arg(long, default_value_t = 1000)]
    events: u64,
    /// Events per second.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// Publishing tick in milliseconds: each tick publishes what is due.
    #[arg(long, default_value_t = 10)]
    tick_ms: u64,
    /// Payload size in bytes (the timestamp included).
    #[arg(long, default_value_t = 100)]
    payload_bytes: usize,
    /// Seconds to wait, after the last publish, for streams to receive everything.
    #[arg(long, default_value_t = 10)]
    drain_s: u64,
}

impl IdleArgs {
    pub(crate) fn timeout_s(&self) -> u64 {
        self.streams.timeout_s
    }
}

impl FanoutArgs {
    pub(crate) fn timeout_s(&self) -> u64 {
        self.streams.timeout_s
    }
}

impl ClusterArgs {
    pub(crate) fn timeout_s(&self) -> u64 {
        self.streams.timeout_s
    }
}

/// `http://HOST:PORT[/...]` with an IP literal host (the bench runs on loopback only).
pub(super) fn socket_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url.strip_prefix("http://").with_context(|| format!("{url}: expected http://IP:PORT"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    authority.parse().with_context(|| format!("{url}: expected http://IP:PORT (an IP address, not a name)"))
}

fn topic(scenario: &str) -> String {
    // One segment of letters, digits and `-`: a valid Herald topic and nchan channel id.
    format!("bench-{scenario}-{}-{}", std::process::id(), stream::unix_nanos() % 1_000_000)
}

fn endpoint(target: Target, url: &str, topic: &str) -> anyhow::Result<Endpoint> {
    let path = match target {
        Target::Herald => format!("/events?topic={topic}"),
        Target::Nchan => format!("/sub?id={topic}"),
    };
    Ok(Endpoint { addr: socket_addr(url)?, path })
}

/// Raises this process's open-file limit to its hard limit, and says how many sockets fit.
pub(super) fn raise_nofile(needed: usize) -> anyhow::Result<()> {
    let limit = rlimit::increase_nofile_limit(u64::MAX).context("raising RLIMIT_NOFILE")?;
    if (limit as usize) < needed + 64 {
        bail!(
            "{needed} streams need {needed}+ open files, and this process may open {limit}; \
             raise the hard limit (`ulimit -Hn`) for the bench and the server"
        );
    }
    Ok(())
}

/// The open streams of a run, reading in the background.
pub(super) struct Opened {
    pub(super) readers: Arc<Readers>,
    tasks: JoinSet<anyhow::Result<Outcome>>,
}

/// Opens `streams.subscribers` streams; each reads until it has seen `expect` timed events.
async fn open(streams: &Streams, endpoint: Endpoint, expect: u64) -> anyhow::Result<Opened> {
    open_streams(streams.subscribers, streams.source_ips, streams.connect_concurrency, endpoint, expect).await
}

/// Opens `count` raw streams at `endpoint`, `concurrency` at a time, from `source_ips` source
/// addresses (0: the kernel's choice); returns once every one has its response head. Each
/// reads until it has seen `expect` timed events or the run stops it.
pub(super) async fn open_streams(
    count: usize,
    source_ips: u8,
    concurrency: usize,
    endpoint: Endpoint,
    expect: u64,
) -> anyhow::Result<Opened> {
    raise_nofile(count)?;
    let readers = Readers::new()?;
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let endpoint = Arc::new(endpoint);
    let mut tasks = JoinSet::new();
    for i in 0..count {
        let source =
            (source_ips > 0).then(|| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % usize::from(source_ips)) as u8)));
        let (readers, gate, endpoint) = (readers.clone(), gate.clone(), endpoint.clone());
        tasks.spawn(async move {
            let permit = gate.acquire_owned().await?;
            let connected = stream::connect(&endpoint, source).await?;
            drop(permit);
            readers.connected.fetch_add(1, Ordering::Relaxed);
            stream::read(connected, expect, &readers).await
        });
    }
    let mut opened = Opened { readers, tasks };
    // Wait for every response head; a stream that failed to open fails the run.
    while opened.readers.connected.load(Ordering::Relaxed) < count {
        tokio::select! {
            Some(done) = opened.tasks.join_next() => {
                let outcome = done?.context("opening a stream")?;
                bail!("a stream ended while the others were opening: {outcome:?}");
            }
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    Ok(opened)
}

impl Opened {
    /// Stops every stream and collects what each saw.
    async fn finish(mut self) -> anyhow::Result<Vec<Outcome>> {
        self.readers.stop.cancel();
        let mut outcomes = Vec::new();
        while let Some(done) = self.tasks.join_next().await {
            outcomes.push(done??);
        }
        Ok(outcomes)
    }

    /// Stops every stream and collects what each saw, and how many ended in an I/O error: a
    /// long run reports a stream that failed rather than losing its results to it.
    pub(super) async fn finish_counting_errors(mut self) -> anyhow::Result<(Vec<Outcome>, usize)> {
        self.readers.stop.cancel();
        let (mut outcomes, mut errors) = (Vec::new(), 0);
        while let Some(done) = self.tasks.join_next().await {
            match done? {
                Ok(outcome) => outcomes.push(outcome),
                Err(_) => errors += 1,
            }
        }
        Ok((outcomes, errors))
    }
}

/// `idle`: the server's memory per open stream.
pub(crate) async fn idle(args: IdleArgs) -> anyhow::Result<serde_json::Value> {
    let addr = socket_addr(&args.url)?;
    let pids = if args.server_pid.is_empty() { process::listeners(addr.port())? } else { args.server_pid.clone() };
    let before = process::memory(&pids)?;
    let started = Instant::now();
    let opened = open(&args.streams, endpoint(args.streams.target, &args.url, &topic("idle"))?, u64::MAX).await?;
    let connect_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(args.hold_s)).await;
    let after = process::memory(&pids)?;
    let still_open = args.streams.subscribers - opened.readers.ended.load(Ordering::Relaxed);
    let outcomes = opened.finish().await?;
    let closed_early = outcomes.iter().filter(|o| o.end == End::Closed).count();
    let n = args.streams.subscribers as f64;
    Ok(json!({
        "scenario": "idle",
        "target": format!("{:?}", args.streams.target).to_lowercase(),
        "streams": args.streams.subscribers,
        "open_at_measurement": still_open,
        "closed_by_server": closed_early,
        "server_pids": pids,
        "connect_seconds": connect_s,
        "rss_before_bytes": before.rss,
        "rss_after_bytes": after.rss,
        "rss_per_stream_bytes": ((after.rss as f64 - before.rss as f64) / n).round(),
        "pss_before_bytes": before.pss,
        "pss_after_bytes": after.pss,
        "pss_per_stream_bytes": ((after.pss as f64 - before.pss as f64) / n).round(),
    }))
}

/// `fanout`: deliveries per second and latency on one node.
pub(crate) async fn fanout(args: FanoutArgs) -> anyhow::Result<serde_json::Value> {
    let mut report = deliver(&args.streams, &args.publishing, &args.url, &args.url, "fanout").await?;
    report["scenario"] = json!("fanout");
    Ok(report)
}

/// `cluster`: latency from a publish on one node to the streams of another.
pub(crate) async fn cluster(args: ClusterArgs) -> anyhow::Result<serde_json::Value> {
    let mut report =
        deliver(&args.streams, &args.publishing, &args.publish_url, &args.subscribe_url, "cluster").await?;
    report["scenario"] = json!("cluster");
    report["publish_url"] = json!(args.publish_url);
    report["subscribe_url"] = json!(args.subscribe_url);
    report["same_node"] = json!(args.publish_url == args.subscribe_url);
    Ok(report)
}

async fn deliver(
    streams: &Streams,
    publishing: &Publishing,
    publish_url: &str,
    subscribe_url: &str,
    scenario: &str,
) -> anyhow::Result<serde_json::Value> {
    if publishing.events == 0 || publishing.rate == 0 || publishing.tick_ms == 0 {
        bail!("--events, --rate and --tick-ms must be at least 1");
    }
    let topic = topic(scenario);
    let publisher = Arc::new(Publisher::new(streams.target, publish_url, &topic)?);
    let opened = open(streams, endpoint(streams.target, subscribe_url, &topic)?, publishing.events).await?;

    // Warm-up: until every stream has seen one, so each is registered before the timed events.
    let warm_deadline = Instant::now() + Duration::from_secs(30);
    while opened.readers.warm.load(Ordering::Relaxed) < streams.subscribers {
        if Instant::now() > warm_deadline {
            bail!(
                "only {} of {} streams received a warm-up event within 30 s",
                opened.readers.warm.load(Ordering::Relaxed),
                streams.subscribers
            );
        }
        publisher.send(&[r#"{"w":1}"#.to_owned()]).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let pad = "x".repeat(publishing.payload_bytes.saturating_sub(r#"{"t":1234567890123456789,"p":""}"#.len()));
    let started_ns = stream::unix_nanos();
    let started = Instant::now();
    let tick = Duration::from_millis(publishing.tick_ms);
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut published, mut requests) = (0u64, 0u64);
    let mut in_flight = JoinSet::new();
    while published < publishing.events {
        interval.tick().await;
        // What is due by now at `rate`, so a slow tick catches up in the next one.
        let due = (started.elapsed().as_secs_f64() * publishing.rate as f64).ceil() as u64;
        let n = due.min(publishing.events).saturating_sub(published);
        if n == 0 {
            continue;
        }
        let t = stream::unix_nanos();
        let payloads: Vec<String> = (0..n).map(|_| format!(r#"{{"t":{t},"p":"{pad}"}}"#)).collect();
        // Ticks do not wait for earlier publishes (a durable publish takes an fsync): up to
        // MAX_IN_FLIGHT are in flight, so the pace holds and Herald may group-commit them.
        while in_flight.len() >= MAX_IN_FLIGHT {
            requests += in_flight.join_next().await.context("publisher")???;
        }
        let publisher = publisher.clone();
        in_flight.spawn(async move { publisher.send(&payloads).await });
        published += n;
    }
    while let Some(done) = in_flight.join_next().await {
        requests += done??;
    }
    let publish_s = started.elapsed().as_secs_f64();

    // Every stream ends by itself once it has everything; give the stragglers `drain_s`.
    let drained = tokio::time::timeout(Duration::from_secs(publishing.drain_s), async {
        while opened.readers.complete.load(Ordering::Relaxed) < streams.subscribers {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .is_ok();
    let readers = opened.readers.clone();
    let outcomes = opened.finish().await?;
    let deliveries: u64 = outcomes.iter().map(|o| o.events).sum();
    let complete = outcomes.iter().filter(|o| o.end == End::Complete).count();
    let closed = outcomes.iter().filter(|o| o.end == End::Closed).count();
    let last_ns = outcomes.iter().map(|o| o.last_ns).max().unwrap_or(started_ns);
    let seconds = last_ns.saturating_sub(started_ns) as f64 / 1e9;
    let h = readers.latency_us.lock().unwrap_or_else(|e| e.into_inner());
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1e3;
    Ok(json!({
        "target": format!("{:?}", streams.target).to_lowercase(),
        "subscribers": streams.subscribers,
        "events": published,
        "rate": publishing.rate,
        "tick_ms": publishing.tick_ms,
        "publish_requests": requests,
        "payload_bytes": publishing.payload_bytes,
        "publish_seconds": publish_s,
        "expected_deliveries": published * streams.subscribers as u64,
        "deliveries": deliveries,
        "complete_subscribers": complete,
        "closed_by_server": closed,
        "all_delivered": drained && complete == streams.subscribers,
        "seconds": seconds,
        "deliveries_per_s": (deliveries as f64 / seconds.max(1e-9)).round(),
        "latency_p50_ms": ms(0.5),
        "latency_p99_ms": ms(0.99),
        "latency_p999_ms": ms(0.999),
        "latency_max_ms": h.max() as f64 / 1e3,
    }))
}

/// Publish requests a run keeps in flight at most.
const MAX_IN_FLIGHT: usize = 64;

/// Publishes to Herald or nchan over a pooled hyper client.
struct Publisher {
    http: HttpClient<HttpConnector, Full<Bytes>>,
    target: Target,
    uri: http::Uri,
    topic: String,
}

impl Publisher {
    fn new(target: Target, url: &str, topic: &str) -> anyhow::Result<Self> {
        let addr = socket_addr(url)?;
        let uri = match target {
            Target::Herald => format!("http://{addr}/publish"),
            Target::Nchan => format!("http://{addr}/pub?id={topic}"),
        };
        Ok(Self {
            http: HttpClient::builder(TokioExecutor::new()).build_http(),
            target,
            uri: uri.parse()?,
            topic: topic.to_owned(),
        })
    }

    /// Publishes `payloads` (JSON texts); returns the number of requests it took.
    async fn send(&self, payloads: &[String]) -> anyhow::Result<u64> {
        match self.target {
            Target::Herald => {
                let mut body = String::with_capacity(payloads.iter().map(|p| p.len() + 40).sum());
                body.push('[');
                for (i, p) in payloads.iter().enumerate() {
                    if i > 0 {
                        body.push(',');
                    }
                    body.push_str(&format!(r#"{{"topic":"{}","data":{p}}}"#, self.topic));
                }
                body.push(']');
                self.post(body).await?;
                Ok(1)
            }
            Target::Nchan => {
                let mut set = JoinSet::new();
                for p in payloads {
                    let (http, uri, body) = (self.http.clone(), self.uri.clone(), p.clone());
                    set.spawn(async move { post(&http, uri, body).await });
                }
                while let Some(done) = set.join_next().await {
                    done??;
                }
                Ok(payloads.len() as u64)
            }
        }
    }

    async fn post(&self, body: String) -> anyhow::Result<()> {
        post(&self.http, self.uri.clone(), body).await
    }
}

async fn post(http: &HttpClient<HttpConnector, Full<Bytes>>, uri: http::Uri, body: String) -> anyhow::Result<()> {
    let body = Bytes::from(body);
    // nginx sometimes resets a pooled publisher connection under load (seen at 1000 requests/s);
    // a request that got no answer is sent again, twice at most. A duplicate is harmless here:
    // each stream stops after `events` timed events.
    let mut attempt = 0;
    let response = loop {
        let request = http::Request::post(uri.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))?;
        match http.request(request).await {
            Ok(response) => break response,
            Err(_) if attempt < 2 => attempt += 1,
            Err(e) => return Err(e).context("publishing"),
        }
    };
    let status = response.status();
    let body = response.into_body().collect().await.context("reading the publish answer")?.to_bytes();
    if !status.is_success() {
        bail!("publish answered {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(())
}
