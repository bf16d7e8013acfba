//! Test harness: a stand-in Kubernetes API server over real HTTP, a real Herald, and a small
//! SSE subscriber.
//!
//! The stand-in (`FakeApi`) is NOT a Kubernetes API server. It speaks the part of the API
//! server's wire protocol that list+watch clients use, as the real one does:
//! - `GET /apis/<group>/<version>[/namespaces/<ns>]/<plural>` (and `/api/v1/...` for the core
//!   group) lists: `{"apiVersion", "kind": "<Kind>List", "metadata": {"resourceVersion"},
//!   "items": [...]}`, honouring `labelSelector` (equality terms);
//! - the same with `watch=true` streams chunked JSON lines `{"type":"ADDED|MODIFIED|DELETED|
//!   BOOKMARK|ERROR","object":{...}}` from `resourceVersion`, replaying what happened after it,
//!   with `BOOKMARK`s when `allowWatchBookmarks=true`; a version older than the compaction
//!   point gets one `ERROR` event carrying a `Status` with `code: 410, reason: "Expired"` and
//!   the stream ends (as the real server answers an expired watch);
//! - `resourceVersion` is one counter for every write, like etcd's revision.
//!
//! Faults it can play: a network partition (writes stop reaching open watches), compaction
//! (old versions expire), cut connections (every open watch is dropped mid-stream, without the
//! chunked terminator), and a full stop and restart on the same port (every connection dies).
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use herald::sse::{Decoder, Item, Message};
use herald::{Config, Hub};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long a test waits for something that should happen soon. Generous: after a fault the
/// watcher backs off (0.8 s, 1.6 s, … with jitter) before it tries again.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A fixture Application, as recorded shapes (see `tests/fixtures`).
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A resource the stand-in serves.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Kind {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
}

impl Kind {
    pub fn applications() -> Self {
        Self {
            group: "argoproj.io".into(),
            version: "v1alpha1".into(),
            plural: "applications".into(),
            kind: "Application".into(),
            namespaced: true,
        }
    }

    pub fn configmaps() -> Self {
        Self {
            group: String::new(),
            version: "v1".into(),
            plural: "configmaps".into(),
            kind: "ConfigMap".into(),
            namespaced: true,
        }
    }

    pub fn namespaces() -> Self {
        Self {
            group: String::new(),
            version: "v1".into(),
            plural: "namespaces".into(),
            kind: "Namespace".into(),
            namespaced: false,
        }
    }

    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// One write, as the watch stream reports it.
#[derive(Debug, Clone)]
struct Record {
    rv: u64,
    kind: Kind,
    namespace: Option<String>,
    event: &'static str,
    object: Value,
}

struct Store {
    kinds: Vec<Kind>,
    objects: BTreeMap<(Kind, Option<String>, String), Value>,
    rv: u64,
    history: Vec<Record>,
    /// Watches from a version below this get `410 Gone`.
    compacted: u64,
    live: broadcast::Sender<Record>,
    partitioned: bool,
    cut: CancellationToken,
    lists: usize,
    watches: usize,
    expired: usize,
}

/// The stand-in API server (see the module docs).
pub struct FakeApi {
    store: Arc<Mutex<Store>>,
    pub addr: SocketAddr,
    server: Option<JoinHandle<()>>,
}

impl FakeApi {
    /// A stand-in serving `kinds`, not yet listening, on a free port of 127.0.0.1.
    pub async fn new(kinds: Vec<Kind>) -> Self {
        let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let (live, _) = broadcast::channel(1024);
        let store = Store {
            kinds,
            objects: BTreeMap::new(),
            rv: 100,
            history: Vec::new(),
            compacted: 0,
            live,
            partitioned: false,
            cut: CancellationToken::new(),
            lists: 0,
            watches: 0,
            expired: 0,
        };
        Self { store: Arc::new(Mutex::new(store)), addr, server: None }
    }

    /// A listening stand-in.
    pub async fn start(kinds: Vec<Kind>) -> Self {
        let mut api = Self::new(kinds).await;
        api.listen().await;
        api
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap()
    }

    /// Starts (or restarts) listening on the stand-in's port.
    pub async fn listen(&mut self) {
        assert!(self.server.is_none(), "already listening");
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                // The old socket may linger for a moment after a stop.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let app = axum::Router::new().fallback(handle).with_state(self.store.clone());
        self.server = Some(tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let app = app.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        app.clone().oneshot(req.map(Body::new))
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }));
    }

    /// Stops the server: the listener closes and every connection dies at once, as when the
    /// API server's process is killed. The stored objects stay (they live in etcd).
    pub async fn stop(&mut self) {
        self.cut_watches();
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }

    /// Writes `object` (created or replaced), giving it the next resource version.
    pub fn put(&self, kind: &Kind, mut object: Value) -> Value {
        let mut s = self.store();
        s.rv += 1;
        let rv = s.rv;
        let namespace = object["metadata"]["namespace"].as_str().map(str::to_owned);
        let name = object["metadata"]["name"].as_str().unwrap().to_owned();
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        object["apiVersion"] = json!(kind.api_version());
        object["kind"] = json!(kind.kind);
        let key = (kind.clone(), namespace.clone(), name);
        let event = if s.objects.contains_key(&key) { "MODIFIED" } else { "ADDED" };
        s.objects.insert(key, object.clone());
        s.record(Record { rv, kind: kind.clone(), namespace, event, object: object.clone() });
        object
    }

    /// Changes an object in place.
    pub fn update(&self, kind: &Kind, namespace: &str, name: &str, change: impl FnOnce(&mut Value)) -> Value {
        let mut object = self.get(kind, namespace, name).expect("the object exists");
        change(&mut object);
        self.put(kind, object)
    }

    pub fn get(&self, kind: &Kind, namespace: &str, name: &str) -> Option<Value> {
        let ns = Some(namespace.to_owned()).filter(|n| !n.is_empty());
        self.store().objects.get(&(kind.clone(), ns, name.to_owned())).cloned()
    }

    /// Deletes an object; the DELETED event carries its last state at a new version.
    pub fn delete(&self, kind: &Kind, namespace: &str, name: &str) {
        let mut s = self.store();
        let ns = Some(namespace.to_owned()).filter(|n| !n.is_empty());
        let mut object = s.objects.remove(&(kind.clone(), ns.clone(), name.to_owned())).expect("the object exists");
        s.rv += 1;
        let rv = s.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        s.record(Record { rv, kind: kind.clone(), namespace: ns, event: "DELETED", object });
    }

    /// Open watches stop receiving writes (they stay connected, silent).
    pub fn partition(&self) {
        self.store().partitioned = true;
    }

    /// Every version before now expires: resuming a watch from one gets `410 Gone`.
    pub fn compact(&self) {
        let mut s = self.store();
        s.compacted = s.rv;
        s.history.clear();
    }

    /// Drops every open watch connection mid-stream, and ends a partition.
    pub fn cut_watches(&self) {
        let mut s = self.store();
        s.cut.cancel();
        s.cut = CancellationToken::new();
        s.partitioned = false;
    }

    /// (lists, watches, watches answered 410) so far.
    pub fn counts(&self) -> (usize, usize, usize) {
        let s = self.store();
        (s.lists, s.watches, s.expired)
    }

    /// A kube-rs client for this stand-in: plain HTTP, no credentials.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(format!("http://{}", self.addr).parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }
}

impl Store {
    fn record(&mut self, record: Record) {
        self.history.push(record.clone());
        if !self.partitioned {
            let _ = self.live.send(record);
        }
    }
}

/// What a request asks for.
struct Request {
    kind: Kind,
    namespace: Option<String>,
    watch: bool,
    resource_version: Option<String>,
    bookmarks: bool,
    selector: Vec<(String, String)>,
}

fn parse(uri: &Uri, kinds: &[Kind]) -> Option<Request> {
    let path: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let (group, version, rest) = match path.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, plural) = match rest {
        ["namespaces", ns, plural] => (Some((*ns).to_owned()), *plural),
        [plural] => (None, *plural),
        _ => return None,
    };
    let kind = kinds.iter().find(|k| k.group == group && k.version == version && k.plural == plural)?.clone();
    let mut req =
        Request { kind, namespace, watch: false, resource_version: None, bookmarks: false, selector: Vec::new() };
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        match &*k {
            "watch" => req.watch = v == "true" || v == "1",
            "resourceVersion" => req.resource_version = Some(v.into_owned()),
            "allowWatchBookmarks" => req.bookmarks = v == "true",
            "labelSelector" => {
                for term in v.split(',').filter(|t| !t.is_empty()) {
                    let (key, value) = term.split_once('=').unwrap_or((term, ""));
                    req.selector.push((key.trim_end_matches('=').to_owned(), value.trim_start_matches('=').to_owned()));
                }
            }
            _ => {}
        }
    }
    Some(req)
}

impl Request {
    fn matches(&self, kind: &Kind, namespace: &Option<String>, object: &Value) -> bool {
        *kind == self.kind
            && (self.namespace.is_none() || *namespace == self.namespace)
            && self.selector.iter().all(|(k, v)| object["metadata"]["labels"][k].as_str() == Some(v))
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code})
}

async fn handle(State(store): State<Arc<Mutex<Store>>>, uri: Uri) -> Response {
    let kinds = store.lock().unwrap().kinds.clone();
    let Some(req) = parse(&uri, &kinds) else {
        let body = status(404, "NotFound", "the server could not find the requested resource");
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    };
    if req.watch {
        watch(store, req)
    } else {
        list(&store, &req)
    }
}

fn list(store: &Arc<Mutex<Store>>, req: &Request) -> Response {
    let mut s = store.lock().unwrap();
    s.lists += 1;
    let items: Vec<Value> = s
        .objects
        .iter()
        .filter(|((kind, ns, _), object)| req.matches(kind, ns, object))
        .map(|(_, object)| object.clone())
        .collect();
    let body = json!({
        "apiVersion": req.kind.api_version(),
        "kind": format!("{}List", req.kind.kind),
        "metadata": {"resourceVersion": s.rv.to_string()},
        "items": items,
    });
    axum::Json(body).into_response()
}

fn line(value: &Value) -> Result<Bytes, std::io::Error> {
    Ok(Bytes::from(format!("{value}\n")))
}

fn watch(store: Arc<Mutex<Store>>, req: Request) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let body =
        Body::from_stream(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
        ));
    let (backlog, mut live, cut, start_rv) = {
        let mut s = store.lock().unwrap();
        s.watches += 1;
        let from: u64 = req.resource_version.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
        if from < s.compacted {
            s.expired += 1;
            let message = format!("too old resource version: {from} ({})", s.compacted);
            let event = json!({"type": "ERROR", "object": status(410, "Expired", &message)});
            let _ = tx.try_send(line(&event));
            return Response::builder().header("content-type", "application/json").body(body).unwrap();
        }
        let backlog: Vec<Record> = s
            .history
            .iter()
            .filter(|r| r.rv > from && req.matches(&r.kind, &r.namespace, &r.object))
            .cloned()
            .collect();
        (backlog, s.live.subscribe(), s.cut.clone(), s.rv)
    };
    let kind = req.kind.clone();
    tokio::spawn(async move {
        let send = |v: Value| {
            let tx = tx.clone();
            async move { tx.send(line(&v)).await.is_ok() }
        };
        let mut seen = start_rv;
        for r in backlog {
            if !send(json!({"type": r.event, "object": r.object})).await {
                return;
            }
        }
        let bookmark = |rv: u64| {
            json!({"type": "BOOKMARK", "object": {"apiVersion": kind.api_version(), "kind": kind.kind,
                "metadata": {"resourceVersion": rv.to_string()}}})
        };
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                () = cut.cancelled() => {
                    // Dropped mid-stream: the client sees a broken connection, not an end.
                    let _ = tx.send(Err(std::io::Error::other("connection cut"))).await;
                    return;
                }
                record = live.recv() => match record {
                    Ok(r) => {
                        seen = r.rv;
                        if req.matches(&r.kind, &r.namespace, &r.object)
                            && !send(json!({"type": r.event, "object": r.object})).await
                        {
                            return;
                        }
                    }
                    Err(_) => return,
                },
                _ = tick.tick(), if req.bookmarks => {
                    if !send(bookmark(seen)).await {
                        return;
                    }
                }
            }
        }
    });
    Response::builder().header("content-type", "application/json").body(body).unwrap()
}

/// A Herald on 127.0.0.1:0 (memory storage unless the config says otherwise).
pub struct Herald {
    pub addr: SocketAddr,
    pub hub: Arc<Hub>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), herald::server::Error>>,
}

pub fn memory_config() -> Config {
    Config { storage: herald::config::Storage::Memory, drain_grace_ms: Duration::from_millis(100), ..Config::default() }
}

impl Herald {
    pub async fn start(config: Config) -> Self {
        let hub = Hub::open(config).await.unwrap();
        Self::serve(hub).await
    }

    pub async fn serve(hub: Arc<Hub>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(herald::serve(listener, hub.clone(), async {
            let _ = stopped.await;
        }));
        Self { addr, hub, stop: Some(stop), task }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(PATIENCE, self.task).await.unwrap().unwrap().unwrap();
    }
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

pub async fn get_json(addr: SocketAddr, path: &str) -> (StatusCode, Value) {
    let req = hyper::Request::builder().uri(format!("http://{addr}{path}")).body(Full::default()).unwrap();
    let response = client().request(req).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Polls `GET path` until `check` holds.
pub async fn eventually(addr: SocketAddr, path: &str, check: impl Fn(StatusCode, &Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, body) = get_json(addr, path).await;
        if check(status, &body) {
            return body;
        }
        assert!(tokio::time::Instant::now() < deadline, "GET {path}: still {status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An open SSE stream.
pub struct Stream {
    pub status: StatusCode,
    body: hyper::body::Incoming,
    decoder: Decoder,
}

/// Opens `GET path_and_query` as an SSE stream.
pub async fn open(addr: SocketAddr, path_and_query: &str) -> Stream {
    let req = hyper::Request::builder().uri(format!("http://{addr}{path_and_query}")).body(Full::default()).unwrap();
    let response = tokio::time::timeout(PATIENCE, client().request(req)).await.unwrap().unwrap();
    Stream { status: response.status(), body: response.into_body(), decoder: Decoder::default() }
}

impl Stream {
    pub async fn next_item(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.decoder.next_item().unwrap() {
                return Some(item);
            }
            match tokio::time::timeout(PATIENCE, self.body.frame()).await.expect("an item in time") {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        self.decoder.push(data);
                    }
                }
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// The next event, skipping `retry:` and comments.
    pub async fn next_event(&mut self) -> Message {
        loop {
            match self.next_item().await.expect("the stream is open") {
                Item::Event(m) => return m,
                Item::Retry(_) | Item::Comment(_) => {}
            }
        }
    }

    /// The next event's type and JSON data.
    pub async fn next_json(&mut self) -> (String, Value) {
        let m = self.next_event().await;
        (m.kind.clone(), serde_json::from_str(&m.data).unwrap_or(Value::String(m.data)))
    }

    /// Asserts that no event arrives within `wait`.
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
