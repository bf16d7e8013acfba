//! Test harness: a real Herald on 127.0.0.1:0, and a small HTTP/SSE client over real TCP.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use herald::sse::{Decoder, Item, Message};
use herald::Config;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a test waits for something that should happen at once.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct Server {
    pub addr: SocketAddr,
    /// The data directory, removed when the server is dropped.
    pub dir: std::sync::Arc<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), herald::server::Error>>,
}

pub fn config() -> Config {
    Config { drain_grace_ms: Duration::from_millis(200), ..Config::default() }
}

/// Starts a server; a config still on the default data directory gets a fresh temporary one.
pub async fn start(config: Config) -> Server {
    start_in(config, std::sync::Arc::new(tempfile::tempdir().unwrap())).await
}

/// Starts a server on `dir` (to restart one on the same data).
pub async fn start_in(mut config: Config, dir: std::sync::Arc<tempfile::TempDir>) -> Server {
    if config.data_dir == Config::default().data_dir {
        config.data_dir = dir.path().to_owned();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(herald::run(listener, config, async {
        let _ = stopped.await;
    }));
    Server { addr, dir, stop: Some(stop), task }
}

impl Server {
    /// Begins the drain without waiting for it.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Drains and waits for `run` to return.
    pub async fn stop(mut self) {
        self.begin_stop();
        tokio::time::timeout(PATIENCE, self.task).await.expect("run returns").unwrap().unwrap();
    }

    pub async fn join(self) -> Result<(), herald::server::Error> {
        tokio::time::timeout(PATIENCE, self.task).await.expect("run returns").unwrap()
    }
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<Bytes>,
) -> (StatusCode, HeaderMap, Bytes) {
    let headers: &[(&str, &str)] = match content_type {
        Some(ct) => &[("content-type", ct)],
        None => &[],
    };
    request_with(addr, method, path, headers, body).await
}

/// [`request`] with any request headers.
pub async fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> (StatusCode, HeaderMap, Bytes) {
    let mut req = Request::builder().method(method).uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = client().request(req.body(Full::new(body.into())).unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, body)
}

pub async fn get_json(addr: SocketAddr, path: &str) -> (StatusCode, Value) {
    let (status, _, body) = request(addr, "GET", path, None, Bytes::new()).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Publishes a JSON body; returns the status and the JSON answer.
pub async fn publish(addr: SocketAddr, body: Value) -> (StatusCode, Value) {
    let (status, _, body) = request(addr, "POST", "/publish", Some("application/json"), body.to_string()).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Publishes and returns the ids, asserting success.
pub async fn publish_ok(addr: SocketAddr, body: Value) -> Vec<String> {
    let (status, answer) = publish(addr, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

pub async fn metric(addr: SocketAddr, line_prefix: &str) -> f64 {
    let (_, _, body) = request(addr, "GET", "/metrics", None, Bytes::new()).await;
    let text = String::from_utf8(body.to_vec()).unwrap();
    text.lines()
        .find(|l| l.starts_with(line_prefix) && l[line_prefix.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .map(|v| v.parse().unwrap())
        .unwrap_or_else(|| panic!("no metric {line_prefix} in\n{text}"))
}

/// An open SSE stream.
pub struct Stream {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
    decoder: Decoder,
    patience: Duration,
}

pub async fn open(addr: SocketAddr, query: &str, headers: &[(&str, &str)]) -> Stream {
    open_path(addr, &format!("/events?{query}"), headers).await
}

impl Stream {
    /// How long to wait for each item (paused-time tests need more than [`PATIENCE`]).
    pub fn patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }

    /// The next item, or `None` when the stream ended.
    pub async fn next_item(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.decoder.next_item().unwrap() {
                return Some(item);
            }
            match tokio::time::timeout(self.patience, self.body.frame()).await.expect("an item in time") {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        self.decoder.push(data);
                    }
                }
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// The next event, skipping `retry:` and comments; panics if the stream ends.
    pub async fn next_event(&mut self) -> Message {
        loop {
            match self.next_item().await.expect("the stream is open") {
                Item::Event(m) => return m,
                Item::Retry(_) | Item::Comment(_) => {}
            }
        }
    }

    /// The next `n` events.
    pub async fn events(&mut self, n: usize) -> Vec<Message> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next_event().await);
        }
        out
    }

    /// Asserts that the stream ends with no further event.
    pub async fn expect_end(&mut self) {
        while let Some(item) = self.next_item().await {
            assert!(!matches!(item, Item::Event(_)), "unexpected {item:?}");
        }
    }

    /// Asserts that nothing but heartbeats arrives within `wait`.
    pub async fn expect_quiet(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(item) = self.decoder.next_item().unwrap() {
                assert!(!matches!(item, Item::Event(_)), "unexpected {item:?}");
                continue;
            }
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => return,
                Ok(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        self.decoder.push(data);
                    }
                }
                Ok(_) => panic!("the stream ended"),
            }
        }
    }
}

pub fn ids(events: &[Message]) -> Vec<String> {
    events.iter().map(|m| m.id.clone().unwrap()).collect()
}

/// Starts a server around a hub the test keeps, to append to its log directly (as an older
/// version, or another node, could have stored it); a config still on the default data
/// directory gets a fresh temporary one.
pub async fn start_with_hub(mut config: Config) -> (Server, std::sync::Arc<herald::Hub>) {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    if config.data_dir == Config::default().data_dir {
        config.data_dir = dir.path().to_owned();
    }
    let hub = herald::Hub::open(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(herald::serve(listener, hub.clone(), async {
        let _ = stopped.await;
    }));
    (Server { addr, dir, stop: Some(stop), task }, hub)
}

/// [`open`] on any streaming path and query, such as `/api/v1/stream/applications?name=x`.
pub async fn open_path(addr: SocketAddr, path_and_query: &str, headers: &[(&str, &str)]) -> Stream {
    let mut req = Request::builder().uri(format!("http://{addr}{path_and_query}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = tokio::time::timeout(PATIENCE, client().request(req.body(Full::default()).unwrap()))
        .await
        .expect("headers arrive at once")
        .unwrap();
    Stream {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.into_body(),
        decoder: Decoder::default(),
        patience: PATIENCE,
    }
}
