//! `herald bench`: the load generator behind BENCHMARKS.md.
//!
//! Every scenario is bounded in event count and in time, talks only to the URL it is given
//! (loopback in every documented run), and prints one JSON line of results.
//!
//! - `publish`, `replay`: through `herald-client`, against Herald.
//! - `idle`, `fanout`, `cluster` ([`load`]): many raw SSE readers ([`stream`]) against Herald or
//!   nginx + nchan (`--target`), the server's memory read from `/proc` ([`process`]).
//! - `soak` ([`soak`]): the long reliability and memory soak of RELIABILITY.md; it also prints
//!   a sample line every `--sample-s` before its summary.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use herald_client::{Client, Publish, SubscribeOptions};
use serde_json::json;

mod load;
mod process;
mod soak;
mod stream;

/// The scenarios.
#[derive(Debug, Subcommand)]
pub(crate) enum Scenario {
    /// Durable publish throughput: `concurrency` publishers send `events` in batches of `batch`.
    Publish(PublishArgs),
    /// Replay catch-up: publish `events`, then time one stream that resumes from before them.
    Replay(ReplayArgs),
    /// Idle streams: open `subscribers` streams, hold them, report the server's memory per stream.
    Idle(load::IdleArgs),
    /// Fan-out: `subscribers` streams on one topic, `events` published at `rate`; deliveries/s
    /// and publish → receive latency.
    Fanout(load::FanoutArgs),
    /// Cross-node latency: publish on `--publish-url`, receive on `--subscribe-url`.
    Cluster(load::ClusterArgs),
    /// Reliability and memory soak: `idle` quiet streams held open, `reconnecting` subscribers
    /// that drop and resume every few seconds, `rate` keyed events/s for `duration-s`; checks
    /// gaps, duplicates and order, and samples the server's RSS.
    Soak(soak::SoakArgs),
}

#[derive(Debug, Args)]
pub(crate) struct Common {
    /// The node's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 100)]
    payload_bytes: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout_s: u64,
}

#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    #[command(flatten)]
    common: Common,
    /// Events to publish in all.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Events per request.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Publishers sending at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    #[command(flatten)]
    common: Common,
    /// Events to replay.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
}

pub(crate) async fn run(scenario: Scenario) -> anyhow::Result<()> {
    let (timeout, fut): (u64, std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<serde_json::Value>>>>) =
        match scenario {
            Scenario::Publish(args) => (args.common.timeout_s, Box::pin(publish(args))),
            Scenario::Replay(args) => (args.common.timeout_s, Box::pin(replay(args))),
            Scenario::Idle(args) => (args.timeout_s(), Box::pin(load::idle(args))),
            Scenario::Fanout(args) => (args.timeout_s(), Box::pin(load::fanout(args))),
            Scenario::Cluster(args) => (args.timeout_s(), Box::pin(load::cluster(args))),
            Scenario::Soak(args) => (args.timeout_s(), Box::pin(soak::soak(args))),
        };
    let result = tokio::time::timeout(Duration::from_secs(timeout), fut)
        .await
        .with_context(|| format!("the benchmark did not finish within {timeout}s"))??;
    println!("{result}");
    Ok(())
}

fn payload(bytes: usize) -> serde_json::Value {
    serde_json::Value::String("x".repeat(bytes))
}

async fn publish(args: PublishArgs) -> anyhow::Result<serde_json::Value> {
    if args.batch == 0 || args.concurrency == 0 || args.events == 0 {
        bail!("--events, --batch and --concurrency must be at least 1");
    }
    let client = Client::new(&args.common.url)?;
    let requests = args.events.div_ceil(args.batch);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let data = payload(args.common.payload_bytes);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..args.concurrency {
        let (client, next, data) = (client.clone(), next.clone(), data.clone());
        let batch = args.batch;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= requests {
                    return Ok::<_, herald_client::Error>(latencies);
                }
                let events: Vec<Publish> =
                    (0..batch).map(|_| Publish::new(format!("bench/publish/{worker}"), data.clone())).collect();
                let t = Instant::now();
                client.publish(&events).await?;
                latencies.push(t.elapsed());
            }
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let events = requests * args.batch;
    Ok(json!({
        "scenario": "publish",
        "events": events,
        "batch": args.batch,
        "concurrency": args.concurrency,
        "payload_bytes": args.common.payload_bytes,
        "seconds": elapsed.as_secs_f64(),
        "events_per_s": (events as f64 / elapsed.as_secs_f64()).round(),
        "request_p50_ms": pct(0.5).as_secs_f64() * 1e3,
        "request_p99_ms": pct(0.99).as_secs_f64() * 1e3,
    }))
}

async fn replay(args: ReplayArgs) -> anyhow::Result<serde_json::Value> {
    let client = Client::new(&args.common.url)?;
    let run = format!("bench/replay/{}", std::process::id());
    let marker = client.publish(&[Publish::new(format!("{run}/marker"), json!(null))]).await?.remove(0);
    let data = payload(args.common.payload_bytes);
    let mut published = 0;
    while published < args.events {
        let n = (args.events - published).min(1000);
        let batch: Vec<Publish> = (0..n).map(|_| Publish::new(format!("{run}/e"), data.clone())).collect();
        client.publish(&batch).await?;
        published += n;
    }
    let mut sub = client.subscribe(SubscribeOptions {
        topics: vec![format!("{run}/e")],
        last_event_id: Some(marker),
        snapshot: false,
    });
    let started = Instant::now();
    let mut received = 0;
    while received < args.events {
        let m = sub.next().await?;
        if m.kind.starts_with("herald.") {
            bail!("unexpected {} during replay: {}", m.kind, m.data);
        }
        received += 1;
    }
    let elapsed = started.elapsed();
    Ok(json!({
        "scenario": "replay",
        "events": received,
        "payload_bytes": args.common.payload_bytes,
        "seconds": elapsed.as_secs_f64(),
        "events_per_s": (received as f64 / elapsed.as_secs_f64()).round(),
    }))
}
