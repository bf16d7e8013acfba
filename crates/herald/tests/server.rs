//! The server against real TCP on 127.0.0.1: subscribe, publish, framing, filtering, bad input,
//! replay seams, slow clients, limits, ops endpoints and drain.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use herald::config::{HeartbeatStyle, Storage};
use herald::sse::Item;
use herald::Config;
use http::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn headers_and_retry_are_flushed_before_any_event() {
    let server = start(config()).await;
    // A raw socket: nothing but what the server writes on its own.
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    socket.write_all(b"GET /events?topic=a HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("retry: 2000\n\n") {
        let n = tokio::time::timeout(PATIENCE, socket.read(&mut buf)).await.expect("flushed at once").unwrap();
        assert!(n > 0, "closed early");
        seen.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&seen).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("cache-control: no-cache"), "{head}");
    assert!(head.contains("x-accel-buffering: no"), "{head}");
    server.stop().await;
}

#[tokio::test]
async fn events_are_framed_per_spec() {
    let server = start(config()).await;
    let mut s = open(server.addr, "topic=items/*", &[]).await;
    assert_eq!(s.next_item().await, Some(Item::Retry(2000)));
    let ids = publish_ok(
        server.addr,
        json!([
            {"topic": "items/1", "type": "item.created", "data": {"qty": 3, "name": "a\nb"}},
            {"topic": "items/2", "data": "line one\r\nline two\rline three\nline four"},
            {"topic": "items/3", "data": ""},
            {"topic": "items/4", "data": [1, 2.5, null, true]},
        ]),
    )
    .await;
    let events = s.events(4).await;
    assert_eq!(common::ids(&events), ids);
    assert_eq!(events[0].kind, "item.created");
    // serde_json's json! sorts keys; the server keeps the publisher's text, compacted.
    assert_eq!(events[0].data, r#"{"name":"a\nb","qty":3}"#);
    assert_eq!(events[1].kind, "message");
    assert_eq!(events[1].data, "line one\nline two\nline three\nline four");
    assert_eq!(events[2].data, "");
    assert_eq!(events[3].data, "[1,2.5,null,true]");
    server.stop().await;
}

#[tokio::test]
async fn the_raw_bytes_omit_event_for_message_and_split_data_lines() {
    let server = start(config()).await;
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    socket.write_all(b"GET /events?topic=t HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("retry:") {
        let n = socket.read(&mut buf).await.unwrap();
        seen.extend_from_slice(&buf[..n]);
    }
    let id = publish_ok(server.addr, json!({"topic": "t", "data": "a\nb"})).await.remove(0);
    let want = format!("id: {id}\ndata: a\ndata: b\n\n");
    while !String::from_utf8_lossy(&seen).contains(&want) {
        let n = tokio::time::timeout(PATIENCE, socket.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(!String::from_utf8_lossy(&seen).contains("event: message"));
    server.stop().await;
}

#[tokio::test]
async fn subscribers_get_only_matching_topics_once_each() {
    let server = start(config()).await;
    let mut one = open(server.addr, "topic=apps/*", &[]).await;
    let mut many = open(server.addr, "topic=apps/**&topic=apps/x&topic=other", &[]).await;
    let mut all = open(server.addr, "topic=**", &[]).await;
    let topics = ["apps/x", "apps/x/y", "other", "apps", "nope/x", "other/x"];
    let mut ids = Vec::new();
    for t in topics {
        ids.extend(publish_ok(server.addr, json!({"topic": t, "data": t})).await);
    }
    let data = |events: Vec<herald::sse::Message>| events.into_iter().map(|m| m.data).collect::<Vec<_>>();
    assert_eq!(data(one.events(1).await), ["apps/x"]);
    assert_eq!(data(many.events(3).await), ["apps/x", "apps/x/y", "other"]);
    assert_eq!(data(all.events(6).await), topics);
    one.expect_quiet(Duration::from_millis(100)).await;
    many.expect_quiet(Duration::from_millis(100)).await;
    server.stop().await;
}

#[tokio::test]
async fn ids_increase_in_delivery_order_across_concurrent_publishers() {
    let server = start(config()).await;
    let mut s = open(server.addr, "topic=**", &[]).await;
    let addr = server.addr;
    let publishers: Vec<_> = (0..8)
        .map(|p| {
            tokio::spawn(async move {
                for i in 0..25 {
                    publish_ok(addr, json!({"topic": format!("p/{p}"), "data": i})).await;
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    let ids: Vec<herald::event::EventId> =
        s.events(200).await.iter().map(|m| m.id.as_ref().unwrap().parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids must increase in delivery order");
    server.stop().await;
}

#[tokio::test]
async fn a_batch_with_one_bad_event_publishes_nothing() {
    let server = start(config()).await;
    let mut s = open(server.addr, "topic=**", &[]).await;
    let (status, answer) = publish(
        server.addr,
        json!([{"topic": "a", "data": 1}, {"topic": "a", "type": "bad\ntype", "data": 2}, {"topic": "a", "data": 3}]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["detail"].as_str().unwrap().contains("event 1"), "{answer}");
    let good = publish_ok(server.addr, json!({"topic": "a", "data": "after"})).await;
    let first = s.next_event().await;
    assert_eq!(first.id.as_deref(), Some(&*good[0]), "nothing of the rejected batch was delivered");
    assert_eq!(metric(server.addr, "herald_events_published_total").await, 1.0);
    server.stop().await;
}

#[tokio::test]
async fn bad_publish_input_gets_a_clear_json_error_and_changes_nothing() {
    let server = start(Config { max_body_bytes: 2048, ..config() }).await;
    let mut s = open(server.addr, "topic=**", &[]).await;
    let cases: Vec<(&str, Option<&str>, Bytes, StatusCode, &str)> = vec![
        ("malformed JSON", Some("application/json"), "{\"topic\":".into(), StatusCode::BAD_REQUEST, "malformed JSON"),
        ("not an object", Some("application/json"), "42".into(), StatusCode::BAD_REQUEST, "object"),
        ("missing data", Some("application/json"), r#"{"topic":"a"}"#.into(), StatusCode::BAD_REQUEST, "data"),
        ("missing topic", Some("application/json"), r#"{"data":1}"#.into(), StatusCode::BAD_REQUEST, "topic"),
        (
            "unknown field",
            Some("application/json"),
            r#"{"topic":"a","data":1,"tombstoen":true}"#.into(),
            StatusCode::BAD_REQUEST,
            "tombstoen",
        ),
        ("bad topic", Some("application/json"), r#"{"topic":"a b","data":1}"#.into(), StatusCode::BAD_REQUEST, "topic"),
        (
            "wildcard topic",
            Some("application/json"),
            r#"{"topic":"a/*","data":1}"#.into(),
            StatusCode::BAD_REQUEST,
            "topic",
        ),
        (
            "LF in type",
            Some("application/json"),
            r#"{"topic":"a","type":"x\ny","data":1}"#.into(),
            StatusCode::BAD_REQUEST,
            "type",
        ),
        (
            "CR in type",
            Some("application/json"),
            r#"{"topic":"a","type":"x\ry","data":1}"#.into(),
            StatusCode::BAD_REQUEST,
            "type",
        ),
        (
            "NUL in type",
            Some("application/json"),
            r#"{"topic":"a","type":"x\u0000y","data":1}"#.into(),
            StatusCode::BAD_REQUEST,
            "type",
        ),
        (
            "reserved type",
            Some("application/json"),
            r#"{"topic":"a","type":"herald.reset","data":1}"#.into(),
            StatusCode::BAD_REQUEST,
            "herald.",
        ),
        (
            "LF in key",
            Some("application/json"),
            r#"{"topic":"a","key":"k\nl","data":1}"#.into(),
            StatusCode::BAD_REQUEST,
            "key",
        ),
        (
            "tombstone without key",
            Some("application/json"),
            r#"{"topic":"a","tombstone":true,"data":1}"#.into(),
            StatusCode::BAD_REQUEST,
            "key",
        ),
        ("empty batch", Some("application/json"), "[]".into(), StatusCode::BAD_REQUEST, "empty"),
        (
            "too large",
            Some("application/json"),
            format!(r#"{{"topic":"a","data":"{}"}}"#, "x".repeat(4096)).into(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "max_body_bytes",
        ),
        (
            "form without topic",
            Some("application/x-www-form-urlencoded"),
            "data=x".into(),
            StatusCode::BAD_REQUEST,
            "topic",
        ),
        (
            "form with CRLF type",
            Some("application/x-www-form-urlencoded"),
            "topic=a&data=x&type=a%0D%0Ab".into(),
            StatusCode::BAD_REQUEST,
            "type",
        ),
        (
            "form unknown field",
            Some("application/x-www-form-urlencoded"),
            "topic=a&data=x&id=1".into(),
            StatusCode::BAD_REQUEST,
            "id",
        ),
        ("other content type", Some("text/plain"), "hello".into(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "content type"),
    ];
    for (name, content_type, body, want, detail) in cases {
        let (status, headers, answer) = request(server.addr, "POST", "/publish", content_type, body).await;
        assert_eq!(status, want, "{name}");
        assert!(headers["content-type"].to_str().unwrap().starts_with("application/json"), "{name}");
        let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        assert!(answer["error"].is_string(), "{name}: {answer}");
        assert!(answer["detail"].as_str().unwrap().contains(detail), "{name}: {answer}");
    }
    assert_eq!(metric(server.addr, "herald_events_published_total").await, 0.0);
    s.expect_quiet(Duration::from_millis(100)).await;
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_chunked_body_without_length_is_refused() {
    let server = start(Config { max_body_bytes: 1024, ..config() }).await;
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let chunk = "x".repeat(800);
    let body = format!("320\r\n{chunk}\r\n320\r\n{chunk}\r\n0\r\n\r\n");
    let req = format!(
        "POST /publish HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{body}"
    );
    socket.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(PATIENCE, socket.read(&mut buf)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn form_publishing_sends_a_string() {
    let server = start(config()).await;
    let mut s = open(server.addr, "topic=f/*", &[]).await;
    let (status, _, body) = request(
        server.addr,
        "POST",
        "/publish",
        Some("application/x-www-form-urlencoded"),
        "topic=f%2F1&data=hello+%22world%22&type=greeting&key=k1",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let m = s.next_event().await;
    assert_eq!((m.kind.as_str(), m.data.as_str()), ("greeting", "hello \"world\""));
    server.stop().await;
}

#[tokio::test]
async fn bad_subscribe_queries_get_400_json() {
    let server = start(config()).await;
    for query in
        ["", "topic=", "topic=a//b", "topic=a/**/b", "topic=a%20b", "topic=a&snapshot=perhaps", "lastEventID=1-1"]
    {
        let (status, answer) = get_json(server.addr, &format!("/events?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(answer["error"], "bad_request", "{query}");
        assert!(answer["detail"].is_string());
    }
    let (status, answer) = get_json(server.addr, "/nowhere").await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn heartbeats_are_comments_after_the_configured_silence() {
    // Paused time jumps ahead whenever the runtime waits on a thread, such as the embedded
    // store's writer: heartbeats do not depend on storage, so these tests keep events in memory.
    let server = start(Config { heartbeat_s: Duration::from_secs(30), storage: Storage::Memory, ..config() }).await;
    let mut s = open(server.addr, "topic=a", &[]).await.patience(Duration::from_secs(3600));
    assert_eq!(s.next_item().await, Some(Item::Retry(2000)));
    let before = tokio::time::Instant::now();
    assert_eq!(s.next_item().await, Some(Item::Comment("heartbeat".into())));
    let waited = before.elapsed();
    assert!(waited >= Duration::from_secs(30) && waited < Duration::from_secs(31), "{waited:?}");
    // An event resets the silence.
    tokio::time::sleep(Duration::from_secs(20)).await;
    publish_ok(server.addr, json!({"topic": "a", "data": 1})).await;
    let sent = tokio::time::Instant::now();
    s.next_event().await;
    assert_eq!(s.next_item().await, Some(Item::Comment("heartbeat".into())));
    assert!(sent.elapsed() >= Duration::from_secs(30), "{:?}", sent.elapsed());
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn heartbeats_can_be_events() {
    let server = start(Config {
        heartbeat_style: HeartbeatStyle::Event,
        heartbeat_s: Duration::from_secs(50),
        storage: Storage::Memory,
        ..config()
    })
    .await;
    let mut s = open(server.addr, "topic=a", &[]).await.patience(Duration::from_secs(3600));
    let m = s.next_event().await;
    assert_eq!((m.id, m.kind.as_str(), m.data.as_str()), (None, "heartbeat", "{}"));
    server.stop().await;
}

#[tokio::test]
async fn ready_counts_open_streams() {
    let server = start(config()).await;
    let (status, answer) = get_json(server.addr, "/ready").await;
    assert_eq!((status, answer.clone()), (StatusCode::OK, json!({"status": "ready", "clients": 0})));
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut s = open(server.addr, "topic=a", &[]).await;
        s.next_item().await;
        streams.push(s);
    }
    assert_eq!(get_json(server.addr, "/ready").await.1["clients"], 3);
    assert_eq!(metric(server.addr, "herald_clients_connected").await, 3.0);
    drop(streams.pop());
    let mut clients = 3;
    for _ in 0..100 {
        clients = get_json(server.addr, "/ready").await.1["clients"].as_u64().unwrap();
        if clients == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(clients, 2, "a closed stream is uncounted");
    assert_eq!(metric(server.addr, "herald_clients_disconnected_total{reason=\"client\"}").await, 1.0);
    let (status, health) = get_json(server.addr, "/health").await;
    assert_eq!((status, health), (StatusCode::OK, json!({"status": "ok"})));
    server.stop().await;
}

#[tokio::test]
async fn subscriptions_lists_open_streams() {
    let server = start(config()).await;
    let mut s = open(server.addr, "topic=a/*&topic=b", &[]).await;
    s.next_item().await;
    publish_ok(server.addr, json!({"topic": "a/1", "data": 1})).await;
    s.next_event().await;
    let (status, list) = get_json(server.addr, "/subscriptions").await;
    assert_eq!(status, StatusCode::OK);
    let entry = &list[0];
    assert_eq!(entry["patterns"], json!(["a/*", "b"]));
    assert_eq!(entry["principal"], "anonymous");
    assert_eq!(entry["events_sent"], 1);
    assert_eq!(entry["queue_depth"], 0);
    assert!(entry["remote"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(entry["connected_since"].as_str().unwrap().ends_with('Z'));
    server.stop().await;
}

#[tokio::test]
async fn metrics_carry_the_spec_names() {
    let server = start(config()).await;
    let mut s = open(server.addr, "topic=a", &[]).await;
    publish_ok(server.addr, json!([{"topic": "a", "data": 1}, {"topic": "a", "data": 2}])).await;
    s.events(2).await;
    assert_eq!(metric(server.addr, "herald_events_published_total").await, 2.0);
    assert_eq!(metric(server.addr, "herald_events_delivered_total").await, 2.0);
    assert_eq!(metric(server.addr, "herald_publish_duration_seconds_count").await, 1.0);
    assert_eq!(metric(server.addr, "herald_clients_connected").await, 1.0);
    server.stop().await;
}

#[tokio::test]
async fn beyond_max_clients_is_503_with_retry_after() {
    let server =
        start(Config { limits: herald::config::Limits { max_clients: 2, ..Default::default() }, ..config() }).await;
    let _a = open(server.addr, "topic=a", &[]).await;
    let _b = open(server.addr, "topic=a", &[]).await;
    let (status, headers, body) = request(server.addr, "GET", "/events?topic=a", None, Bytes::new()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key("retry-after"));
    assert!(String::from_utf8_lossy(&body).contains("too_many_clients"));
    server.stop().await;
}

#[tokio::test]
async fn resume_replays_what_was_missed_then_goes_live() {
    let server = start(config()).await;
    let ids = publish_ok(server.addr, json!([{"topic": "r/1", "data": 1}, {"topic": "x", "data": 2}, {"topic": "r/2", "data": 3}, {"topic": "r/3", "data": 4}])).await;
    // By header.
    let mut s = open(server.addr, "topic=r/*", &[("last-event-id", &ids[0])]).await;
    assert_eq!(common::ids(&s.events(2).await), [ids[2].clone(), ids[3].clone()]);
    let live = publish_ok(server.addr, json!({"topic": "r/4", "data": 5})).await;
    assert_eq!(s.next_event().await.id.as_deref(), Some(&*live[0]));
    // The header wins over the query (SPEC §2): an EventSource created with `?lastEventID=<id0>`
    // reconnects with its newest id in the header and must not get 1, 2, 3 again.
    let mut q = open(server.addr, &format!("topic=r/*&lastEventID={}", ids[0]), &[("last-event-id", &ids[2])]).await;
    assert_eq!(common::ids(&q.events(2).await), [ids[3].clone(), live[0].clone()]);
    // Without the header, the query's id.
    let mut u = open(server.addr, &format!("topic=r/*&lastEventID={}", ids[2]), &[]).await;
    assert_eq!(common::ids(&u.events(2).await), [ids[3].clone(), live[0].clone()]);
    // earliest replays everything retained.
    let mut e = open(server.addr, "topic=r/*&lastEventID=earliest", &[]).await;
    assert_eq!(e.events(4).await.iter().map(|m| m.data.as_str()).collect::<Vec<_>>(), ["1", "3", "4", "5"]);
    server.stop().await;
}

#[tokio::test]
async fn unresumable_ids_get_a_reset() {
    let config =
        Config { retention: herald::config::RetentionConfig { max_events: 2, ..Default::default() }, ..config() };
    let server = start(config).await;
    let ids = publish_ok(server.addr, json!([{"topic": "t", "data": 1}, {"topic": "t", "data": 2}, {"topic": "t", "data": 3}, {"topic": "t", "data": 4}])).await;
    // The newest trimmed id itself lost nothing: it resumes.
    let mut s = open(server.addr, &format!("topic=t&lastEventID={}", ids[1]), &[]).await;
    assert_eq!(common::ids(&s.events(2).await), ids[2..]);
    for (last, reason) in [
        (ids[0].as_str(), "history_truncated"),
        ("1-0", "history_truncated"),
        ("not-an-id", "unknown_id"),
        ("99999999999999-0", "unknown_id"),
    ] {
        let mut s = open(server.addr, &format!("topic=t&lastEventID={last}"), &[]).await;
        let m = s.next_event().await;
        assert_eq!((m.id, m.kind.as_str()), (None, "herald.reset"), "{last}");
        assert_eq!(m.data, format!(r#"{{"reason":"{reason}"}}"#), "{last}");
        let live = publish_ok(server.addr, json!({"topic": "t", "data": "live"})).await;
        assert_eq!(s.next_event().await.id.as_deref(), Some(&*live[0]), "then live");
    }
    server.stop().await;
}

#[tokio::test]
async fn snapshot_sends_latest_keyed_state_then_synced_then_live() {
    let server = start(config()).await;
    publish_ok(
        server.addr,
        json!([
            {"topic": "apps/a", "key": "a", "type": "app.updated", "data": {"v": 1}},
            {"topic": "apps/b", "key": "b", "data": {"v": 1}},
            {"topic": "apps/a", "key": "a", "type": "app.updated", "data": {"v": 2}},
            {"topic": "apps/c", "key": "c", "data": {"v": 1}},
            {"topic": "apps/c", "key": "c", "tombstone": true, "data": null},
            {"topic": "other/d", "key": "d", "data": {"v": 1}},
            {"topic": "apps/n", "data": "not keyed"},
        ]),
    )
    .await;
    let mut s = open(server.addr, "topic=apps/*&snapshot=true", &[]).await;
    let snap = s.events(3).await;
    assert_eq!(
        (snap[0].data.as_str(), snap[1].kind.as_str(), snap[1].data.as_str()),
        (r#"{"v":1}"#, "app.updated", r#"{"v":2}"#)
    );
    assert!(snap[0].id < snap[1].id, "ordered by id");
    assert_eq!((snap[2].id.as_deref(), snap[2].kind.as_str(), snap[2].data.as_str()), (None, "herald.synced", "{}"));
    let live = publish_ok(server.addr, json!({"topic": "apps/b", "key": "b", "data": {"v": 9}})).await;
    assert_eq!(s.next_event().await.id.as_deref(), Some(&*live[0]));
    // After a reset, the snapshot follows.
    let mut r = open(server.addr, "topic=apps/*&snapshot=true&lastEventID=nonsense", &[]).await;
    assert_eq!(r.next_event().await.kind, "herald.reset");
    let after_reset = r.events(3).await;
    assert_eq!(after_reset[2].kind, "herald.synced");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_under_concurrent_publishing_has_no_gap_and_no_duplicate() {
    let server = start(config()).await;
    let addr = server.addr;
    let first = publish_ok(addr, json!({"topic": "seam", "data": 0})).await.remove(0);
    let publisher = tokio::spawn(async move {
        let mut all = Vec::new();
        for i in 1..=600 {
            all.extend(publish_ok(addr, json!([{"topic": "seam", "data": i}, {"topic": "noise", "data": i}])).await);
        }
        all
    });
    // Connect while the publisher is busy, resuming after the first event.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mut s = open(addr, &format!("topic=seam&lastEventID={first}"), &[]).await;
    let published = publisher.await.unwrap();
    let want: Vec<String> = published.iter().step_by(2).cloned().collect();
    let got = common::ids(&s.events(want.len()).await);
    assert_eq!(got, want);
    s.expect_quiet(Duration::from_millis(100)).await;
    server.stop().await;
}

#[tokio::test]
async fn a_stream_that_falls_behind_is_closed_and_resumes_without_loss() {
    // In memory, the batch is dispatched on the runtime's only thread, so the stream cannot
    // drain its queue while the batch goes in: the lag is certain. (The embedded store
    // dispatches from its writer thread; the slow-reader test below covers lag on it.)
    let limits = herald::config::Limits { stream_queue: 4, ..Default::default() };
    let server = start(Config { limits, storage: Storage::Memory, ..config() }).await;
    let mut s = open(server.addr, "topic=slow", &[]).await;
    assert_eq!(s.next_item().await, Some(Item::Retry(2000)));
    // One batch larger than the queue arrives at once: the stream cannot keep up.
    let batch: Vec<_> = (0..10).map(|i| json!({"topic": "slow", "data": i})).collect();
    let ids = publish_ok(server.addr, json!(batch)).await;
    let first = s.events(4).await;
    assert_eq!(common::ids(&first), ids[..4], "what was queued is delivered in order");
    s.expect_end().await;
    assert_eq!(metric(server.addr, "herald_clients_disconnected_total{reason=\"lagged\"}").await, 1.0);
    // The client reconnects with its last id and replay fills the gap.
    let mut again = open(server.addr, &format!("topic=slow&lastEventID={}", ids[3]), &[]).await;
    assert_eq!(common::ids(&again.events(6).await), ids[4..]);
    server.stop().await;
}

#[tokio::test]
async fn drain_sends_shutdown_tells_new_streams_to_reconnect_and_returns() {
    let mut server = start(Config { drain_grace_ms: Duration::from_millis(1500), ..config() }).await;
    let mut a = open(server.addr, "topic=a", &[]).await;
    let mut b = open(server.addr, "topic=b&snapshot=true", &[]).await;
    a.next_item().await;
    b.events(1).await;
    server.begin_stop();
    for s in [&mut a, &mut b] {
        let m = s.next_event().await;
        assert_eq!((m.id, m.kind.as_str()), (None, "herald.shutdown"));
        s.expect_end().await;
    }
    let (status, ready) = get_json(server.addr, "/ready").await;
    assert_eq!((status, ready["status"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("draining")));
    // A stream request while draining: 200, `retry:`, `herald.shutdown`, the end (SPEC §8), so
    // a browser's EventSource reconnects (after a 503 it would give up for good).
    let (status, headers, body) = request(server.addr, "GET", "/events?topic=a", None, Bytes::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(&body[..], b"retry: 2000\n\nevent: herald.shutdown\ndata: {}\n\n");
    // Argo CD's stream the same way.
    let (status, _, body) = request(server.addr, "GET", "/api/v1/stream/applications", None, Bytes::new()).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"retry: 2000\n\nevent: herald.shutdown\ndata: {}\n\n"[..]));
    // Over a raw socket: the whole answer, then the server closes the connection.
    let mut raw = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    raw.write_all(b"GET /events?topic=a HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, raw.read_to_end(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("retry: 2000\n\n") && answer.contains("event: herald.shutdown\n"), "{answer}");
    server.join().await.unwrap();
}

#[tokio::test]
async fn h2c_prior_knowledge_serves_many_streams_on_one_connection() {
    let server = start(config()).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<Bytes>>();
    let mut bodies = Vec::new();
    for _ in 0..10 {
        let req =
            http::Request::get(format!("http://{}/events?topic=h2", server.addr)).body(Default::default()).unwrap();
        let response = client.request(req).await.unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        bodies.push(response.into_body());
    }
    assert_eq!(get_json(server.addr, "/ready").await.1["clients"], 10);
    let id = publish_ok(server.addr, json!({"topic": "h2", "data": 1})).await.remove(0);
    for body in bodies {
        use http_body_util::BodyExt;
        let mut decoder = herald::sse::Decoder::default();
        let mut body = body;
        let message = loop {
            match decoder.next_item().unwrap() {
                Some(Item::Event(m)) => break m,
                Some(_) => continue,
                None => {}
            }
            let frame = tokio::time::timeout(PATIENCE, body.frame()).await.unwrap().unwrap().unwrap();
            decoder.push(frame.data_ref().unwrap());
        };
        assert_eq!(message.id.as_deref(), Some(&*id));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_is_dropped_and_its_replay_fills_the_gap() {
    let config = Config { limits: herald::config::Limits { stream_queue: 16, ..Default::default() }, ..config() };
    let server = start(config).await;
    let mut s = open(server.addr, "topic=big", &[]).await;
    assert_eq!(s.next_item().await, Some(Item::Retry(2000)));
    // ~20 MiB while the reader sleeps: more than loopback socket buffers and the queue can hold.
    let payload = "x".repeat(32 * 1024);
    let mut ids = Vec::new();
    for chunk in 0..32 {
        let batch: Vec<_> =
            (0..20).map(|i| json!({"topic": "big", "data": format!("{chunk}-{i}-{payload}")})).collect();
        ids.extend(publish_ok(server.addr, json!(batch)).await);
    }
    // The reader wakes up: it gets an in-order prefix, then the end of the stream.
    let mut got = Vec::new();
    while let Some(item) = s.next_item().await {
        if let Item::Event(m) = item {
            got.push(m.id.unwrap());
        }
    }
    assert!(!got.is_empty() && got.len() < ids.len(), "lagged after {} of {}", got.len(), ids.len());
    assert_eq!(got, ids[..got.len()], "no event skipped before the close");
    assert_eq!(metric(server.addr, "herald_clients_disconnected_total{reason=\"lagged\"}").await, 1.0);
    let last = got.last().unwrap().clone();
    let mut again = open(server.addr, &format!("topic=big&lastEventID={last}"), &[]).await;
    let rest = common::ids(&again.events(ids.len() - got.len()).await);
    assert_eq!(rest, ids[got.len()..]);
    server.stop().await;
}

#[tokio::test]
async fn a_last_event_id_resumes_across_a_restart_on_the_same_data() {
    let server = start(config()).await;
    let dir = server.dir.clone();
    let before = publish_ok(server.addr, json!([{"topic": "r", "data": 1}, {"topic": "r", "data": 2}])).await;
    server.stop().await;
    let server = start_in(config(), dir).await;
    let during = publish_ok(server.addr, json!({"topic": "r", "data": 3})).await;
    let mut s = open(server.addr, &format!("topic=r&lastEventID={}", before[0]), &[]).await;
    assert_eq!(common::ids(&s.events(2).await), [before[1].clone(), during[0].clone()]);
    server.stop().await;
}

#[tokio::test]
async fn envelope_streams_carry_topic_and_key_in_every_step() {
    let server = start(config()).await;
    let first = publish_ok(server.addr, json!({"topic": "env/a", "key": "k", "type": "t.set", "data": {"v": 1}})).await;
    let mut replay = open(server.addr, "topic=env/*&envelope=true&lastEventID=earliest", &[]).await;
    let mut snap = open(server.addr, "topic=env/*&envelope=1&snapshot=true", &[]).await;
    let want = json!({"topic": "env/a", "key": "k", "tombstone": false, "data": {"v": 1}});
    for s in [&mut replay, &mut snap] {
        let m = s.next_event().await;
        assert_eq!((m.id.as_deref(), m.kind.as_str()), (Some(&*first[0]), "t.set"));
        assert_eq!(serde_json::from_str::<serde_json::Value>(&m.data).unwrap(), want);
    }
    assert_eq!(snap.next_event().await.kind, "herald.synced");
    publish_ok(server.addr, json!({"topic": "env/b", "data": "text"})).await;
    for s in [&mut replay, &mut snap] {
        let m = s.next_event().await;
        let data: serde_json::Value = serde_json::from_str(&m.data).unwrap();
        assert_eq!(data, json!({"topic": "env/b", "key": null, "tombstone": false, "data": "text"}));
    }
    // A live batch reaches a stream as one write of several envelope frames, in order.
    let batch = json!([{"topic": "env/c", "data": 1}, {"topic": "env/c", "data": 2}, {"topic": "env/d", "data": 3}]);
    let ids = publish_ok(server.addr, batch).await;
    for s in [&mut replay, &mut snap] {
        let got = s.events(3).await;
        assert_eq!(common::ids(&got), ids);
        let data: Vec<serde_json::Value> = got.iter().map(|m| serde_json::from_str(&m.data).unwrap()).collect();
        assert_eq!(data[1], json!({"topic": "env/c", "key": null, "tombstone": false, "data": 2}));
        assert_eq!(data[2]["topic"], "env/d");
    }
    let (status, _) = get_json(server.addr, "/events?topic=a&envelope=yes").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    server.stop().await;
}
