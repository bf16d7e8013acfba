//! The `herald` binary as a user runs it: real processes, real signals, real TCP.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{Node, BIN};

/// A fresh data directory for one test.
fn data_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A plain HTTP/1.1 GET; returns the status line and body.
fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (head.lines().next().unwrap_or("").to_owned(), body.to_owned())
}

fn clients(addr: SocketAddr) -> u64 {
    let (_, body) = get(addr, "/ready");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["clients"].as_u64().unwrap_or(0)
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn publish_and_subscribe_commands_round_trip() {
    let node = Node::start_with(&[], &[]);
    let sub = Command::new(BIN)
        .args(["subscribe", "--url", &node.url(), "--topic", "cli/*", "--topic", "other", "--snapshot", "--count", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the subscriber", || clients(node.addr) == 1);
    let publish = |args: &[&str], stdin: Option<&str>| -> serde_json::Value {
        let mut child = Command::new(BIN)
            .args(["publish", "--url", &node.url()])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let a = publish(&["--topic", "cli/1", "--type", "thing.made", r#"{"n": 1}"#], None);
    let b = publish(&["--topic", "other", "plain text"], None);
    let c = publish(&["--topic", "cli/2", "--key", "k", "-"], Some("from\nstdin"));
    let out = sub.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // SPEC §11: one line per event with its topic and key; the snapshot's `herald.synced` is
    // printed but not counted by `--count`.
    let line = |id: &serde_json::Value, kind: &str, topic: &str, key: Option<&str>, data: serde_json::Value| serde_json::json!({"id": id, "type": kind, "topic": topic, "key": key, "data": data});
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(
        lines[0],
        serde_json::json!({"id": null, "type": "herald.synced", "topic": null, "key": null, "data": {}})
    );
    assert_eq!(lines[1], line(&a["ids"][0], "thing.made", "cli/1", None, serde_json::json!({"n": 1})));
    assert_eq!(lines[2], line(&b["ids"][0], "message", "other", None, serde_json::json!("plain text")));
    assert_eq!(lines[3], line(&c["ids"][0], "message", "cli/2", Some("k"), serde_json::json!("from\nstdin")));
}

#[test]
fn publish_reports_a_refusal_and_exits_nonzero() {
    let node = Node::start_with(&[], &[]);
    let out = Command::new(BIN).args(["publish", "--url", &node.url(), "--topic", "bad topic", "1"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid topic"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn sigterm_drains_streams_and_exits_zero() {
    let mut node = Node::start_with(&[], &[("HERALD_DRAIN_GRACE_MS", "300")]);
    let mut streams: Vec<TcpStream> = (0..3)
        .map(|i| {
            let mut s = TcpStream::connect(node.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            write!(s, "GET /events?topic=drain/{i} HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
            s
        })
        .collect();
    wait_for("three streams", || clients(node.addr) == 3);
    let started = Instant::now();
    node.signal("-TERM");
    for s in &mut streams {
        let mut seen = Vec::new();
        // Read to the end: the server must close the stream itself.
        s.read_to_end(&mut seen).unwrap();
        let text = String::from_utf8_lossy(&seen);
        assert!(text.contains("event: herald.shutdown\ndata: {}\n\n"), "{text}");
    }
    let status = node.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(10), "within shutdown_timeout_s");
}

#[test]
fn sigint_also_stops_cleanly() {
    let mut node = Node::start_with(&[], &[("HERALD_DRAIN_GRACE_MS", "0")]);
    node.signal("-INT");
    assert_eq!(node.wait(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn a_bad_setting_stops_the_start_with_its_name() {
    for (var, value) in [("HERALD_HEARTBEAT_S", "soon"), ("HERALD_LIMITS_MAX_CLIENTS", "-3"), ("HERALD_BOGUS", "1")] {
        let out = Command::new(BIN).args(["serve", "--listen", "127.0.0.1:0"]).env(var, value).output().unwrap();
        assert!(!out.status.success(), "{var}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(var), "{var}: {err}");
    }
    let out = Command::new(BIN).args(["serve", "--config", "/nonexistent/herald.toml"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/herald.toml"));
}

/// Reads an SSE stream over a raw socket until `events` events (lines starting `id:`) arrived.
fn read_events(addr: SocketAddr, query: &str, events: usize) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /events?{query} HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let text = String::from_utf8_lossy(&seen);
        let done = text.matches("\nid: ").count() >= events;
        if done && (!query.contains("snapshot=true") || text.contains("event: herald.synced")) {
            return text.into_owned();
        }
        let n = s.read(&mut buf).expect("events in time");
        assert!(n > 0, "stream closed early:\n{text}");
        seen.extend_from_slice(&buf[..n]);
    }
}

fn publish_json(addr: SocketAddr, body: &str) -> serde_json::Value {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /publish HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    serde_json::from_str(out.split("\r\n\r\n").nth(1).unwrap()).unwrap()
}

#[test]
fn answered_events_and_keyed_state_survive_kill_9() {
    let dir = data_dir();
    let mut node = Node::start_in(dir.path(), &[], &[], "info");
    let mut ids = Vec::new();
    for i in 0..50 {
        let body = format!(
            r#"[{{"topic":"crash/{}","key":"k","type":"t.set","data":{{"i":{i}}}}},{{"topic":"crash/log","data":{i}}}]"#,
            i % 5
        );
        let answer = publish_json(node.addr, &body);
        ids.extend(answer["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()));
    }
    let tomb = publish_json(node.addr, r#"{"topic":"crash/0","key":"k","tombstone":true,"data":null}"#);
    // No drain, no flush: the process dies at once, right after the last answer.
    node.signal("-KILL");
    node.wait(Duration::from_secs(10));

    let node = Node::start_in(dir.path(), &[], &[], "info");
    let text = read_events(node.addr, "topic=crash/**&lastEventID=earliest", 101);
    let replayed: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("id: ")).collect();
    let mut want = ids.clone();
    want.push(tomb["ids"][0].as_str().unwrap().to_owned());
    assert_eq!(replayed, want, "every answered event, in order");
    // Keyed state: the last writer of each (topic, key); crash/0's removed by its tombstone.
    let snap = read_events(node.addr, "topic=crash/*&snapshot=true", 4);
    let data: Vec<&str> = snap.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(data, [r#"{"i":46}"#, r#"{"i":47}"#, r#"{"i":48}"#, r#"{"i":49}"#, "{}"], "{snap}");
    // New ids keep increasing after the restart.
    let next = publish_json(node.addr, r#"{"topic":"crash/after","data":1}"#);
    let next: (u64, u64) = {
        let (a, b) = next["ids"][0].as_str().unwrap().split_once('-').unwrap();
        (a.parse().unwrap(), b.parse().unwrap())
    };
    let (a, b) = want.last().unwrap().split_once('-').unwrap();
    assert!(next > (a.parse().unwrap(), b.parse().unwrap()));
}

#[test]
fn a_foreign_or_corrupted_data_dir_stops_the_start_and_is_left_alone() {
    let dir = data_dir();
    let garbage = b"this is not a herald database\n".repeat(100);
    std::fs::write(dir.path().join("herald.redb"), &garbage).unwrap();
    let out =
        Command::new(BIN).args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("herald.redb"), "{err}");
    assert_eq!(std::fs::read(dir.path().join("herald.redb")).unwrap(), garbage, "never wiped");
}

#[test]
fn small_bench_runs_complete_and_report() {
    let node = Node::start_with(&[], &[]);
    let run = |args: &[&str]| -> serde_json::Value {
        let out = Command::new(BIN)
            .arg("bench")
            .args(args)
            .args(["--url", &node.url(), "--timeout-s", "60"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let publish = run(&["publish", "--events", "200", "--batch", "10", "--concurrency", "4"]);
    assert_eq!((publish["scenario"].as_str(), publish["events"].as_u64()), (Some("publish"), Some(200)));
    assert!(publish["events_per_s"].as_f64().unwrap() > 0.0);
    let replay = run(&["replay", "--events", "500"]);
    assert_eq!((replay["scenario"].as_str(), replay["events"].as_u64()), (Some("replay"), Some(500)));

    // The stream scenarios, tiny: they complete, and their counts add up (no timing checked).
    let idle = run(&["idle", "--subscribers", "20", "--hold-s", "0"]);
    assert_eq!((idle["scenario"].as_str(), idle["streams"].as_u64()), (Some("idle"), Some(20)));
    assert_eq!(idle["open_at_measurement"].as_u64(), Some(20), "{idle}");
    assert!(idle["rss_after_bytes"].as_u64().unwrap() > 0, "{idle}");
    let fanout = run(&["fanout", "--subscribers", "10", "--events", "50", "--rate", "500", "--source-ips", "2"]);
    assert_eq!(fanout["scenario"].as_str(), Some("fanout"));
    assert_eq!(fanout["expected_deliveries"].as_u64(), Some(500), "{fanout}");
    assert_eq!(fanout["deliveries"].as_u64(), Some(500), "every subscriber received every event: {fanout}");
    assert_eq!(fanout["complete_subscribers"].as_u64(), Some(10), "{fanout}");
    assert_eq!(fanout["all_delivered"].as_bool(), Some(true), "{fanout}");
    assert!(fanout["latency_p50_ms"].as_f64().unwrap() <= fanout["latency_p999_ms"].as_f64().unwrap());
    // One node in CI: publish and subscribe URLs are the same (the single-node baseline).
    let out = Command::new(BIN)
        .args(["bench", "cluster", "--subscribers", "3", "--events", "20", "--rate", "200", "--timeout-s", "60"])
        .args(["--publish-url", &node.url(), "--subscribe-url", &node.url()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cluster: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((cluster["scenario"].as_str(), cluster["same_node"].as_bool()), (Some("cluster"), Some(true)));
    assert_eq!(cluster["deliveries"].as_u64(), Some(60), "{cluster}");
    assert_eq!(cluster["all_delivered"].as_bool(), Some(true), "{cluster}");
}

/// `herald token ARGS...`, printed token.
fn mint(args: &[&str]) -> String {
    let out = Command::new(BIN).arg("token").args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "{token}");
    token
}

#[test]
fn open_mode_says_so_in_the_log() {
    let dir = data_dir();
    let mut node = Node::start_in(dir.path(), &[], &[("HERALD_DRAIN_GRACE_MS", "0")], "trace");
    let log = node.log.clone();
    node.signal("-TERM");
    assert_eq!(node.wait(Duration::from_secs(10)).code(), Some(0));
    let log = log.lock().unwrap().clone();
    assert!(log.lines().any(|l| l.contains("WARN") && l.contains("authentication is OFF")), "{log}");
}

#[test]
fn minted_tokens_work_from_the_cli_and_never_reach_the_log_or_metrics() {
    let secret = "cli-test-secret";
    let dir = data_dir();
    let env = [("HERALD_AUTH_JWT_SECRET", secret), ("HERALD_DRAIN_GRACE_MS", "0")];
    let mut node = Node::start_in(dir.path(), &[], &env, "trace");
    let log = node.log.clone();
    let admin = mint(&["--secret", secret, "--role", "admin", "--sub", "ops", "--ttl", "10m"]);
    let reader = mint(&["--secret", secret, "--subscribe", "cli/*", "--sub", "reader"]);
    let writer = mint(&["--secret", secret, "--publish", "cli/**", "--ttl", "1h"]);
    let forged = mint(&["--secret", "not-the-secret", "--role", "admin"]);
    assert!(!log.lock().unwrap().contains("authentication is OFF"));

    // No token, a forged one, a reader where an admin is needed: refused.
    assert!(get(node.addr, "/subscriptions").0.contains("401"));
    assert!(get(node.addr, &format!("/subscriptions?access_token={forged}")).0.contains("401"));
    assert!(get(node.addr, &format!("/subscriptions?access_token={reader}")).0.contains("403"));

    // The reader subscribes with its token in the query, as EventSource does.
    let mut stream = TcpStream::connect(node.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET /events?topic=cli/*&access_token={reader} HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    wait_for("the reader's stream", || clients(node.addr) == 1);
    // The writer publishes with `herald publish --token`; outside its claims it is refused.
    let publish = |token: &str, topic: &str| {
        Command::new(BIN)
            .args(["publish", "--url", &node.url(), "--token", token, "--topic", topic, "hello"])
            .output()
            .unwrap()
    };
    let out = publish(&writer, "cli/1");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!publish(&writer, "elsewhere").status.success());
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("data: hello") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the stream closed");
        seen.extend_from_slice(&buf[..n]);
    }
    // The admin lists the stream under the reader's sub.
    let (status, body) = get(node.addr, &format!("/subscriptions?access_token={admin}"));
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("\"principal\":\"reader\""), "{body}");
    let (_, metrics) = get(node.addr, "/metrics");

    node.signal("-TERM");
    assert_eq!(node.wait(Duration::from_secs(10)).code(), Some(0));
    let log = log.lock().unwrap().clone();
    assert!(log.contains("herald listening") && log.contains("stopped"), "the whole log was captured:\n{log}");
    for token in [&admin, &reader, &writer, &forged] {
        // Any of the three parts would be a leak; the signature is the secret-bearing one.
        for part in token.split('.') {
            assert!(!log.contains(part), "a token part is in the log:\n{log}");
            assert!(!metrics.contains(part), "a token part is in /metrics");
        }
    }
}

#[test]
fn small_soak_resumes_without_gaps_or_duplicates() {
    let node = Node::start_with(&[], &[]);
    // Tiny and short: 20 idle streams, 6 subscribers on 3 slices dropping every 0.2–0.6 s,
    // 100 events/s for 4 s. Every subscriber must end with every event of its slice, once.
    let out = Command::new(BIN)
        .args(["bench", "soak", "--url", &node.url(), "--idle", "20", "--reconnecting", "6", "--slices", "3"])
        .args(["--keys", "30", "--rate", "100", "--duration-s", "4", "--sample-s", "1", "--drain-s", "20"])
        .args(["--hold-min-ms", "200", "--hold-max-ms", "600"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let (summary, samples) = lines.split_last().unwrap();
    assert!(!samples.is_empty() && samples.iter().all(|s| s["line"] == "sample" && s["rss_bytes"].as_u64() > Some(0)));
    assert_eq!((summary["line"].as_str(), summary["scenario"].as_str()), (Some("summary"), Some("soak")));
    for zero in ["gaps", "duplicates", "out_of_order", "resets", "misrouted", "malformed", "behind"] {
        assert_eq!(summary[zero].as_u64(), Some(0), "{zero}: {summary}");
    }
    assert_eq!(summary["published"].as_u64(), Some(400), "{summary}");
    // Each event reaches the 2 subscribers of its slice, exactly once each.
    assert_eq!(summary["expected_deliveries"].as_u64(), Some(800), "{summary}");
    assert_eq!(summary["delivered"].as_u64(), Some(800), "{summary}");
    assert!(summary["resumes"].as_u64().unwrap() >= 6, "every subscriber resumed: {summary}");
    assert_eq!(summary["caught_up_subscribers"].as_u64(), Some(6), "{summary}");
    assert_eq!(summary["idle_open_at_end"].as_u64(), Some(20), "{summary}");
    assert_eq!(summary["clean"].as_bool(), Some(true), "{summary}");
    assert!(summary["rss_max_bytes"].as_u64() >= summary["rss_min_bytes"].as_u64(), "{summary}");
}
