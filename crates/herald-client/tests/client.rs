//! The client against a real server on 127.0.0.1:0.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use herald::config::Limits;
use herald::Config;
use herald_client::{Client, Error, Publish, SubscribeOptions};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start(mut config: Config) -> (String, tokio::sync::oneshot::Sender<()>) {
    // Events in memory: these tests are about the client, and leave no files behind.
    config.storage = herald::config::Storage::Memory;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(herald::run(listener, config, async {
        let _ = stopped.await;
    }));
    (url, stop)
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f).await.expect("in time")
}

async fn clients(url: &str) -> u64 {
    let mut s = tokio::net::TcpStream::connect(url.trim_start_matches("http://")).await.unwrap();
    s.write_all(b"GET /ready HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(out.split("\r\n\r\n").nth(1).unwrap_or("{}")).unwrap_or_default();
    v["clients"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn reconnects_after_falling_behind_and_loses_nothing() {
    let config = Config {
        retry_ms: Duration::from_millis(50),
        limits: Limits { stream_queue: 4, ..Limits::default() },
        ..Config::default()
    };
    let (url, _stop) = start(config).await;
    let client = Client::new(&url).unwrap();
    let mut sub = client.subscribe(SubscribeOptions::new(["slow/*"]));
    // One batch larger than the stream's queue, once the stream is open: it must lag.
    let publisher = client.clone();
    let batch = tokio::spawn(async move {
        while clients(&url).await != 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let events: Vec<Publish> = (0..20).map(|i| Publish::new(format!("slow/{i}"), json!(i))).collect();
        publisher.publish(&events).await.unwrap()
    });
    let first = within(sub.next()).await.unwrap();
    let ids = batch.await.unwrap();
    let mut got = vec![first.id.unwrap()];
    while got.len() < ids.len() {
        got.push(within(sub.next()).await.unwrap().id.unwrap());
    }
    assert_eq!(got, ids, "every event once, in order, across the reconnect");
    assert_eq!(sub.last_event_id(), ids.last().map(String::as_str));
}

#[tokio::test]
async fn sees_shutdown_and_reports_refusals() {
    let (url, stop) = start(Config { drain_grace_ms: Duration::from_millis(100), ..Config::default() }).await;
    let client = Client::new(&url).unwrap();
    let err = client.publish(&[Publish::new("bad topic", json!(1))]).await.unwrap_err();
    assert!(
        matches!(&err, Error::Api { status, error, .. } if status.as_u16() == 400 && error == "bad_request"),
        "{err}"
    );
    let mut bad = client.subscribe(SubscribeOptions::new(["a/**/b"]));
    assert!(matches!(within(bad.next()).await, Err(Error::Api { .. })));

    let mut sub = client.subscribe(SubscribeOptions { snapshot: true, ..SubscribeOptions::new(["x"]) });
    assert_eq!(within(sub.next()).await.unwrap().kind, "herald.synced");
    stop.send(()).unwrap();
    let m = within(sub.next()).await.unwrap();
    assert_eq!((m.id, m.kind.as_str()), (None, "herald.shutdown"));
}

#[test]
fn rejects_non_http_urls() {
    for bad in ["ftp://x", "localhost:8080", "https://x", ""] {
        assert!(matches!(Client::new(bad), Err(Error::Url(_))), "{bad}");
    }
}
