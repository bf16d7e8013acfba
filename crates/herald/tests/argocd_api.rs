//! Argo CD's stream and list API (`/api/v1/stream/applications`, `/api/v1/applications`)
//! against a real server on 127.0.0.1:0, fed with keyed Application objects as the `argocd`
//! preset publishes them (`argocd/objects/<namespace>/<name>`): wire format, the sorted initial
//! list, every query filter, `resourceVersion`, DELETED on a tombstone, and authorisation.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald::auth::{mint_hs256, Claims, Role, TopicClaims};
use herald::event::Draft;
use herald::sse::{Decoder, Item};
use herald::{Config, Hub};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::sync::oneshot;

const PATIENCE: Duration = Duration::from_secs(10);

struct Node {
    addr: SocketAddr,
    hub: Arc<Hub>,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(config: Config) -> Node {
    let config =
        Config { storage: herald::config::Storage::Memory, drain_grace_ms: Duration::from_millis(50), ..config };
    let hub = Hub::open(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(herald::serve(listener, hub.clone(), async {
        let _ = stopped.await;
    }));
    Node { addr, hub, stop: Some(stop) }
}

fn app(ns: &str, name: &str, project: &str, rv: u64, labels: Value) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": ns, "resourceVersion": rv.to_string(), "labels": labels},
        "spec": {"project": project, "source": {"repoURL": format!("https://git.example.com/{project}.git"), "path": name}},
        "status": {"sync": {"status": "Synced"}, "health": {"status": "Healthy"}},
    })
}

/// Publishes `app` as the preset does: keyed `namespace/name` on its objects topic.
async fn put(node: &Node, verb: &str, app: &Value) {
    let (ns, name) = (app["metadata"]["namespace"].as_str().unwrap(), app["metadata"]["name"].as_str().unwrap());
    let raw = serde_json::value::to_raw_value(app).unwrap();
    let draft = Draft::new(
        &format!("argocd/objects/{ns}/{name}"),
        Some(&format!("application.{verb}")),
        &raw,
        Some(&format!("{ns}/{name}")),
        verb == "deleted",
    )
    .unwrap();
    node.hub.publish(vec![draft]).await.unwrap();
}

/// Four applications in three namespaces and projects, published out of order.
async fn seeded() -> Node {
    let node = start(Config::default()).await;
    for a in [
        app("team-b", "api", "payments", 210, json!({"team": "b", "env": "prod"})),
        app("argocd", "web", "shop", 200, json!({"team": "a", "env": "prod"})),
        app("team-a", "web", "shop", 230, json!({"team": "a", "env": "staging"})),
        app("argocd", "cache", "", 190, json!({})),
    ] {
        put(&node, "added", &a).await;
    }
    node
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = Request::builder().uri(format!("http://{addr}{path}"));
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let response = client().request(req.body(Full::default()).unwrap()).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

struct Stream {
    status: StatusCode,
    content_type: String,
    body: hyper::body::Incoming,
    decoder: Decoder,
    /// Every raw byte received, to check the wire format.
    raw: Vec<u8>,
}

async fn open(addr: SocketAddr, query: &str, token: Option<&str>) -> Stream {
    let mut req = Request::builder().uri(format!("http://{addr}/api/v1/stream/applications?{query}"));
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let response =
        tokio::time::timeout(PATIENCE, client().request(req.body(Full::default()).unwrap())).await.unwrap().unwrap();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    Stream {
        status: response.status(),
        content_type,
        body: response.into_body(),
        decoder: Decoder::default(),
        raw: Vec::new(),
    }
}

impl Stream {
    /// The next event's `result`: (type, namespace/name).
    async fn next(&mut self) -> (String, String, Value) {
        loop {
            if let Some(item) = self.decoder.next_item().unwrap() {
                if let Item::Event(m) = item {
                    assert_eq!((m.id.as_deref(), m.kind.as_str()), (None, "message"), "no id or event line");
                    let v: Value = serde_json::from_str(&m.data).unwrap();
                    let result = &v["result"];
                    let meta = &result["application"]["metadata"];
                    let qualified =
                        format!("{}/{}", meta["namespace"].as_str().unwrap(), meta["name"].as_str().unwrap());
                    return (result["type"].as_str().unwrap().to_owned(), qualified, v);
                }
                continue;
            }
            let frame = tokio::time::timeout(PATIENCE, self.body.frame()).await.expect("an event in time");
            let frame = frame.expect("the stream is open").unwrap();
            if let Some(data) = frame.data_ref() {
                self.raw.extend_from_slice(data);
                self.decoder.push(data);
            }
        }
    }

    async fn names(&mut self, n: usize) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for _ in 0..n {
            let (kind, name, _) = self.next().await;
            out.push((kind, name));
        }
        out
    }

    async fn expect_quiet(&mut self, wait: Duration) {
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

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[tokio::test]
async fn the_stream_lists_sorted_then_goes_live() {
    let node = seeded().await;
    let mut s = open(node.addr, "", None).await;
    assert_eq!(s.status, StatusCode::OK);
    assert_eq!(s.content_type, "text/event-stream");
    let listed = s.names(4).await;
    assert_eq!(
        listed,
        pairs(&[("ADDED", "argocd/cache"), ("ADDED", "argocd/web"), ("ADDED", "team-a/web"), ("ADDED", "team-b/api")])
    );
    // The exact wire shape: one `data:` line with {"result":{"type","application"}}, a blank line.
    let text = String::from_utf8(s.raw.clone()).unwrap();
    let first = text.split("\n\n").next().unwrap();
    assert!(first.starts_with("data: {") && !first.contains('\n'), "{first:?}");
    let v: Value = serde_json::from_str(first.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(v["result"]["type"], "ADDED");
    assert_eq!(v["result"]["application"], app("argocd", "cache", "", 190, json!({})));
    assert_eq!(v.as_object().unwrap().len(), 1);

    let mut web = app("argocd", "web", "shop", 240, json!({"team": "a", "env": "prod"}));
    web["status"]["sync"]["status"] = json!("OutOfSync");
    put(&node, "updated", &web).await;
    let (kind, name, v) = s.next().await;
    assert_eq!((kind.as_str(), name.as_str()), ("MODIFIED", "argocd/web"));
    assert_eq!(v["result"]["application"]["status"]["sync"]["status"], "OutOfSync");
    put(&node, "added", &app("team-c", "new", "shop", 250, json!({}))).await;
    assert_eq!(s.names(1).await, pairs(&[("ADDED", "team-c/new")]));
    put(&node, "deleted", &web).await;
    let (kind, name, v) = s.next().await;
    assert_eq!((kind.as_str(), name.as_str()), ("DELETED", "argocd/web"));
    assert_eq!(v["result"]["application"]["metadata"]["resourceVersion"], "240", "the last state");
}

#[tokio::test]
async fn filters_follow_argo_cd() {
    let node = seeded().await;
    let addr = node.addr;
    let case = |q: &'static str| async move {
        let mut s = open(addr, q, None).await;
        assert_eq!(s.status, StatusCode::OK, "{q}");
        let mut out = Vec::new();
        loop {
            tokio::select! {
                (_, name, _) = s.next() => out.push(name),
                () = tokio::time::sleep(Duration::from_millis(300)) => return out,
            }
        }
    };
    assert_eq!(case("name=web").await, ["argocd/web", "team-a/web"]);
    assert_eq!(case("name=web&appNamespace=team-a").await, ["team-a/web"]);
    assert_eq!(case("appNamespace=argocd").await, ["argocd/cache", "argocd/web"]);
    assert_eq!(case("projects=payments&projects=default").await, ["argocd/cache", "team-b/api"]);
    assert_eq!(case("projects=payments&project=shop").await, ["argocd/web", "team-a/web"], "legacy project wins");
    assert_eq!(case("selector=team%3Da").await, ["argocd/web", "team-a/web"]);
    assert_eq!(case("selector=team%3Da%2Cenv%20notin%20(staging)").await, ["argocd/web"]);
    assert_eq!(case("selector=!team").await, ["argocd/cache"]);
    // resourceVersion skips the list (unless name is given) and drops older versions.
    assert!(case("resourceVersion=1").await.is_empty());
    assert_eq!(case("resourceVersion=205&name=web").await, ["team-a/web"]);
    assert_eq!(case("resourceVersion=junk&name=api").await, ["team-b/api"]);
    let (status, body) = get(node.addr, "/api/v1/stream/applications?selector=team%20in%20(a", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["detail"].as_str().unwrap().contains("selector"));
}

#[tokio::test]
async fn resource_version_applies_to_live_events_too() {
    let node = seeded().await;
    let mut s = open(node.addr, "resourceVersion=300&selector=env%3Dprod", None).await;
    // Older than 300: not sent. Newer and matching: sent. Newer, not matching: not sent.
    put(&node, "updated", &app("argocd", "web", "shop", 299, json!({"env": "prod"}))).await;
    put(&node, "updated", &app("team-b", "api", "payments", 301, json!({"env": "dev"}))).await;
    put(&node, "updated", &app("team-a", "web", "shop", 302, json!({"env": "prod"}))).await;
    assert_eq!(s.names(1).await, pairs(&[("MODIFIED", "team-a/web")]));
    s.expect_quiet(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn the_list_endpoint() {
    let node = seeded().await;
    let (status, body) = get(node.addr, "/api/v1/applications", None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<String> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!("{}/{}", a["metadata"]["namespace"].as_str().unwrap(), a["metadata"]["name"].as_str().unwrap())
        })
        .collect();
    assert_eq!(names, ["team-b/api", "argocd/cache", "argocd/web", "team-a/web"], "sorted by name");
    assert_eq!(body["metadata"]["resourceVersion"], "230");
    let (_, body) = get(node.addr, "/api/v1/applications?appNamespace=argocd&selector=team%3Da", None).await;
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    let (_, body) = get(node.addr, "/api/v1/applications?repo=https://git.example.com/payments", None).await;
    assert_eq!(body["items"][0]["metadata"]["name"], "api");
    put(&node, "deleted", &app("team-b", "api", "payments", 260, json!({}))).await;
    let (_, body) = get(node.addr, "/api/v1/applications?projects=payments", None).await;
    assert_eq!(body["items"], json!([]));
}

#[tokio::test]
async fn per_topic_authorisation_applies() {
    let secret = "argo-test-secret";
    let mut config = Config::default();
    config.auth.jwt_secret = Some(herald::config::Secret::new(secret));
    let node = start(config).await;
    for a in [app("team-a", "web", "shop", 1, json!({})), app("team-b", "api", "payments", 2, json!({}))] {
        put(&node, "added", &a).await;
    }
    let mint = |claims: Claims| mint_hs256(secret.as_bytes(), &claims).unwrap();
    let viewer = mint(Claims { role: Some(Role::Viewer), ..Claims::default() });
    let team_a = mint(Claims {
        herald: Some(TopicClaims { subscribe: vec!["argocd/objects/team-a/*".into()], publish: vec![] }),
        ..Claims::default()
    });
    let board_only = mint(Claims {
        herald: Some(TopicClaims { subscribe: vec!["argocd/applications/**".into()], publish: vec![] }),
        ..Claims::default()
    });
    assert_eq!(open(node.addr, "", None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(get(node.addr, "/api/v1/applications", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(open(node.addr, "", Some(&board_only)).await.status, StatusCode::FORBIDDEN);
    let mut all = open(node.addr, "", Some(&viewer)).await;
    assert_eq!(all.names(2).await, pairs(&[("ADDED", "team-a/web"), ("ADDED", "team-b/api")]));
    let mut mine = open(node.addr, "", Some(&team_a)).await;
    assert_eq!(mine.names(1).await, pairs(&[("ADDED", "team-a/web")]));
    put(&node, "updated", &app("team-b", "api", "payments", 3, json!({}))).await;
    put(&node, "updated", &app("team-a", "web", "shop", 4, json!({}))).await;
    assert_eq!(mine.names(1).await, pairs(&[("MODIFIED", "team-a/web")]));
    let (status, body) = get(node.addr, "/api/v1/applications", Some(&team_a)).await;
    assert_eq!((status, body["items"].as_array().unwrap().len()), (StatusCode::OK, 1));
    // A token by query parameter works too (EventSource cannot set headers).
    let (status, _) = get(node.addr, &format!("/api/v1/applications?access_token={viewer}"), None).await;
    assert_eq!(status, StatusCode::OK);
}
