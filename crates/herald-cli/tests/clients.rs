//! Clients nobody here wrote, against the real binary: the Rust SSE crates users reach for
//! before any crate of ours (LaunchDarkly's `eventsource-client`, `reqwest-eventsource`), and
//! `curl -N` over HTTP/1.1 and h2c.
//!
//! The Rust clients go through the scenario of `web/compat/scenario.mjs` (where the browsers',
//! Node's and Python's clients go through it too): e0 is published; the client opens
//! `/events?topic=compat/*&lastEventID=<e0>` after e1 and e2 were (a replay), e3 comes live;
//! the node is stopped with SIGTERM (a drain, during which a reconnect must be answered 200 +
//! `herald.shutdown`, never a 503, which both crates treat as final), then with kill -9, each
//! time started again on the same port and data with two events published while the client is
//! away and one once it is back. The client must end with exactly e1..e9, in order, named and
//! unnamed events alike: it reconnects with the newest id in `Last-Event-ID` while its URL
//! still says `lastEventID=<e0>`, so the header must win (SPEC §2).

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{config_file, free_port, publish, require, Node, PATIENCE};
use futures_util::StreamExt;

/// The `retry:` of the scenario's node: short, so restarts cost little test time.
const RETRY_MS: u64 = 250;
/// Long enough that a client retrying every [`RETRY_MS`] reconnects inside it at least twice.
const DRAIN_GRACE_MS: u64 = 1500;

/// A node that restarts on the same port and data directory.
struct Herald {
    dir: tempfile::TempDir,
    config: PathBuf,
    port: u16,
    node: Option<Node>,
}

impl Herald {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = config_file(dir.path(), &format!("retry_ms = {RETRY_MS}\ndrain_grace_ms = {DRAIN_GRACE_MS}\n"));
        let mut herald = Self { dir, config, port: free_port(), node: None };
        herald.restart();
        herald
    }

    fn restart(&mut self) {
        let data = self.dir.path().join("data");
        let config = self.config.to_str().unwrap().to_owned();
        self.node = Some(Node::start_on(self.port, &data, &["--config", &config]));
    }

    /// Stops the node with `sig` (`-TERM`, `-KILL`) and waits for it to exit.
    fn stop(&mut self, sig: &str) -> std::process::ExitStatus {
        let mut node = self.node.take().unwrap();
        node.signal(sig);
        node.wait(PATIENCE)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }
}

/// Event `n` of the scenario: odd ones named `compat.tick`, even ones unnamed.
fn event(n: usize) -> (serde_json::Value, &'static str) {
    if n % 2 == 1 {
        (serde_json::json!({"topic": "compat/odd", "type": "compat.tick", "data": {"n": n}}), "compat.tick")
    } else {
        (serde_json::json!({"topic": "compat/even", "data": {"n": n}}), "message")
    }
}

/// What a client saw: (id, type, data) of each event, and the control events counted.
#[derive(Debug, Default)]
struct Seen {
    received: Vec<(String, String, String)>,
    shutdowns: usize,
    resets: usize,
}

type Shared = Arc<Mutex<Seen>>;

fn record(seen: &Shared, id: Option<String>, kind: &str, data: String) {
    let mut seen = seen.lock().unwrap();
    match kind {
        "herald.shutdown" => seen.shutdowns += 1,
        "herald.reset" => seen.resets += 1,
        other if other.starts_with("herald.") => {}
        other => seen.received.push((id.unwrap_or_default(), other.to_owned(), data)),
    }
}

async fn has(seen: &Shared, n: usize, what: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while seen.lock().unwrap().received.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {n} events {what}: {:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the scenario with `open(url, seen)`, which starts the client (recording into `seen`) and
/// returns its task.
async fn scenario(name: &str, open: impl FnOnce(String, Shared) -> tokio::task::JoinHandle<()>) {
    let mut herald = tokio::task::block_in_place(Herald::start);
    let mut published = Vec::new();
    // Publishes the next event, noting what the client must receive for it.
    let publish_next = |herald: &Herald, published: &mut Vec<(String, String, String)>| {
        let n = published.len() + 1;
        let (body, kind) = event(n);
        let id = publish(herald.addr(), &body.to_string()).remove(0);
        published.push((id, kind.to_owned(), format!(r#"{{"n":{n}}}"#)));
    };
    let e0 = publish(herald.addr(), &event(0).0.to_string()).remove(0);
    publish_next(&herald, &mut published);
    publish_next(&herald, &mut published);
    let seen = Shared::default();
    let client = open(format!("{}/events?topic=compat/*&lastEventID={e0}", herald.url()), seen.clone());
    has(&seen, 2, "replayed after e0").await;
    publish_next(&herald, &mut published);
    has(&seen, 3, "live").await;
    let mut drain_shutdowns = 0;
    for sig in ["-TERM", "-KILL"] {
        let before = seen.lock().unwrap().shutdowns;
        let status = tokio::task::block_in_place(|| herald.stop(sig));
        if sig == "-TERM" {
            assert!(status.success(), "{name}: a drain exits 0: {status}");
            drain_shutdowns = seen.lock().unwrap().shutdowns - before;
        }
        tokio::task::block_in_place(|| herald.restart());
        // The client is still away (waiting to retry): these two reach it by replay.
        publish_next(&herald, &mut published);
        publish_next(&herald, &mut published);
        has(&seen, published.len(), &format!("after kill {sig}, replayed")).await;
        publish_next(&herald, &mut published);
        has(&seen, published.len(), &format!("after kill {sig}, live")).await;
    }
    client.abort();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.received, published, "{name}: exactly the published sequence, no gap, no duplicate");
    assert_eq!(seen.resets, 0, "{name}: every id resumed");
    // The open stream's `herald.shutdown`, then at least one more: a reconnect inside the drain
    // grace, answered 200 + `herald.shutdown` rather than a 503 that would have ended the client.
    assert!(drain_shutdowns >= 2, "{name}: a reconnect inside the drain was told herald.shutdown: {drain_shutdowns}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launchdarkly_eventsource_client_resumes_across_drain_and_crash() {
    use eventsource_client::{Client, ClientBuilder, ReconnectOptions, SSE};
    scenario("eventsource-client 0.18.0", |url, seen| {
        tokio::spawn(async move {
            let transport = launchdarkly_sdk_transport::HyperTransport::builder()
                .connect_timeout(Duration::from_secs(5))
                .build_http()
                .unwrap();
            // A constant delay at the node's `retry:`, as a browser's EventSource waits.
            let reconnect = ReconnectOptions::reconnect(true)
                .retry_initial(true)
                .delay(Duration::from_millis(RETRY_MS))
                .backoff_factor(1)
                .delay_max(Duration::from_millis(RETRY_MS))
                .build();
            let client = ClientBuilder::for_url(&url).unwrap().reconnect(reconnect).build_with_transport(transport);
            let mut stream = client.stream();
            while let Some(item) = stream.next().await {
                // Errors (refused while the node restarts, the end of a drained stream) are
                // retried by the client itself.
                if let Ok(SSE::Event(event)) = item {
                    record(&seen, event.id, &event.event_type, event.data);
                }
            }
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_eventsource_resumes_across_drain_and_crash() {
    use reqwest_eventsource::{retry::Constant, Event, EventSource};
    scenario("reqwest-eventsource 0.6.0", |url, seen| {
        tokio::spawn(async move {
            let mut source = EventSource::get(url);
            source.set_retry_policy(Box::new(Constant::new(Duration::from_millis(RETRY_MS), None)));
            // It closes itself for good on an answer that is not a 200 event stream (as a
            // browser's EventSource does), and retries a refused connection or an ended stream.
            while let Some(item) = source.next().await {
                if let Ok(Event::Message(m)) = item {
                    let id = Some(m.id).filter(|id| !id.is_empty());
                    record(&seen, id, &m.event, m.data);
                }
            }
        })
    })
    .await;
}

/// `curl -N` over HTTP/1.1 and over HTTP/2 prior knowledge (h2c): the stream's events arrive as
/// they happen (nothing buffered until the end), and `-H 'Last-Event-ID: …'` resumes after that
/// id: what was missed first, then live.
#[test]
fn curl_streams_over_http1_and_h2c() {
    let curl = require("curl", "curl");
    let node = Node::start_with(&[], &[]);
    let mut last = publish(node.addr, r#"{"topic": "curl/a", "data": "seen before"}"#).remove(0);
    for (flag, version) in [("--http1.1", "HTTP/1.1 200"), ("--http2-prior-knowledge", "HTTP/2 200")] {
        publish(node.addr, &format!(r#"{{"topic": "curl/a", "data": "missed, {flag}"}}"#));
        let mut child = Command::new(&curl)
            .args(["-sS", "-N", "-v", flag, "-H"])
            .arg(format!("Last-Event-ID: {last}"))
            .arg(format!("{}/events?topic=curl/*", node.url()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let next_data = |what: &str| loop {
            let line = rx.recv_timeout(PATIENCE).unwrap_or_else(|_| panic!("{flag}: no {what} from curl"));
            if let Some(data) = line.strip_prefix("data: ") {
                return data.to_owned();
            }
        };
        assert_eq!(next_data("replayed event"), format!("missed, {flag}"), "{flag}: resumed after Last-Event-ID");
        last = publish(node.addr, &format!(r#"{{"topic": "curl/b", "data": "live, {flag}"}}"#)).remove(0);
        assert_eq!(next_data("live event"), format!("live, {flag}"), "{flag}: live while curl runs");
        child.kill().unwrap();
        let out = child.wait_with_output().unwrap();
        let verbose = String::from_utf8_lossy(&out.stderr);
        assert!(verbose.contains(&format!("< {version}")), "{flag}: {verbose}");
        assert!(verbose.to_ascii_lowercase().contains("< content-type: text/event-stream"), "{flag}: {verbose}");
    }
}
