//! `deploy/nginx/herald.conf` with Debian's real nginx in front of three Herald nodes in
//! cluster mode: events flow through nginx over HTTP/2 + TLS, and when the node serving a stream
//! is killed with -9, the client reconnects through nginx with its last id and loses nothing.
//!
//! `nginx` and `redis-server` must be installed (`.ci/run` does); without them this fails and
//! says so.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};

const TEMPLATE: &str = include_str!("../../../deploy/nginx/herald.conf");

/// The deploy file with this test's paths, port and nodes put in.
fn config(dir: &Path, port: u16, cert: &Path, key: &Path, nodes: &[SocketAddr]) -> String {
    let d = dir.display();
    let mut out = String::new();
    let mut in_nodes = false;
    for line in TEMPLATE.lines() {
        let t = line.trim_start();
        let replaced = if t.starts_with("# herald nodes: begin") {
            in_nodes = true;
            nodes.iter().map(|n| format!("        server {n} max_fails=1 fail_timeout=5s;\n")).collect()
        } else if t.starts_with("# herald nodes: end") {
            in_nodes = false;
            continue;
        } else if in_nodes {
            continue;
        } else if t.starts_with("pid ") {
            format!("pid {d}/nginx.pid;\n")
        } else if t.starts_with("error_log ") {
            format!("error_log {d}/error.log info;\n")
        } else if t.starts_with("access_log ") {
            format!(
                "access_log {d}/access.log;\nclient_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
                 fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n"
            )
        } else if t.starts_with("listen ") {
            format!("listen 127.0.0.1:{port} ssl http2;\n")
        } else if t.starts_with("ssl_certificate ") {
            format!("ssl_certificate {};\n", cert.display())
        } else if t.starts_with("ssl_certificate_key ") {
            format!("ssl_certificate_key {};\n", key.display())
        } else {
            format!("{line}\n")
        };
        out.push_str(&replaced);
    }
    for (what, gone) in [("10.0.0.11", "example upstream"), ("/var/log", "log path"), ("/etc/nginx/tls", "cert path")] {
        assert!(!out.contains(what), "the {gone} was not substituted:\n{out}");
    }
    out
}

struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    fn start(port: u16, nodes: &[SocketAddr]) -> (Self, rustls::pki_types::CertificateDer<'static>) {
        let bin = require("/usr/sbin/nginx", "nginx");
        let dir = tempfile::tempdir().unwrap();
        // Workers run as an unprivileged user when the tests run as root: let them in.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let (cert, key, root) = certificate(dir.path());
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config(dir.path(), port, &cert, &key, nodes)).unwrap();
        // The prefix, configuration and error log, for the check and the run alike.
        let nginx = || {
            let mut cmd = Command::new(&bin);
            cmd.arg("-p").arg(dir.path()).arg("-c").arg(&conf).arg("-e").arg(dir.path().join("error.log"));
            cmd
        };
        let check = nginx().arg("-t").output().unwrap();
        assert!(check.status.success(), "nginx -t: {}", String::from_utf8_lossy(&check.stderr));
        let child = nginx().args(["-g", "daemon off;"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let nginx = Self { child, dir };
        wait_for("nginx to listen", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        (nginx, root)
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master then stops its workers, which SIGKILL would orphan.
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// An opener for [`follow`] that sends every stream through nginx on one HTTP/2 connection,
/// opening a new connection only when that one is gone.
fn through(nginx: SocketAddr, connector: tokio_rustls::TlsConnector) -> Open {
    let shared = Arc::new(tokio::sync::Mutex::new(None));
    Arc::new(move |_, path| {
        let (shared, connector) = (shared.clone(), connector.clone());
        Box::pin(async move {
            let mut guard = shared.lock().await;
            if guard.as_ref().is_none_or(|s: &hyper::client::conn::http2::SendRequest<_>| s.is_closed()) {
                *guard = Some(h2_connect(nginx, &connector).await?);
            }
            let send = guard.as_mut().unwrap();
            let resp = h2_get(send, nginx.port(), &path).await;
            if resp.is_err() {
                *guard = None;
            }
            let resp = resp?;
            assert_eq!(resp.version(), http::Version::HTTP_2);
            Ok(resp.into_body())
        })
    })
}

/// `POST /publish` through nginx over HTTP/2: the ids.
async fn publish_via(nginx: SocketAddr, connector: &tokio_rustls::TlsConnector, body: String) -> Vec<String> {
    let (tls, alpn) = tls_connect(nginx, connector).await.unwrap();
    assert_eq!(alpn.as_deref(), Some("h2"));
    let (mut send, conn) = hyper::client::conn::http2::handshake::<_, _, Full<Bytes>>(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post(format!("https://localhost:{}/publish", nginx.port()))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["ids"].as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_owned()).collect()
}

fn batch(from: usize, n: usize) -> String {
    let events: Vec<String> = (from..from + n).map(|i| format!(r#"{{"topic":"edge/{i}","data":{i}}}"#)).collect();
    format!("[{}]", events.join(","))
}

/// Open streams on a node (`/ready`'s `clients`), asked directly, not through nginx.
fn clients(node: &Node) -> u64 {
    let (_, body) = get(node.addr, "/ready");
    serde_json::from_str::<serde_json::Value>(&body).map(|v| v["clients"].as_u64().unwrap_or(0)).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_flow_through_nginx_over_h2_and_survive_a_node_kill() {
    let redis = Redis::start();
    let mut nodes: Vec<Node> = (0..3).map(|_| Node::start(&redis.url(), &[])).collect();
    let port = free_port();
    let (nginx, root) = Nginx::start(port, &nodes.iter().map(|n| n.addr).collect::<Vec<_>>());
    let front: SocketAddr = ([127, 0, 0, 1], port).into();
    let connector = tls_connector(&root, &["h2", "http/1.1"]);

    let mut rx = follow(through(front, connector.clone()), "topic=edge/*");
    assert_eq!(connected(&mut rx).await, 0);
    let mut published = publish_via(front, &connector, batch(0, 10)).await;
    let mut seen = collect(&mut rx, 10).await;
    assert_exactly(&ids(&seen), &published, "through nginx");

    // Kill the node that serves the stream; publish more through nginx meanwhile.
    let serving = (0..3).find(|&i| clients(&nodes[i]) == 1).expect("one node serves the stream");
    nodes[serving].kill9();
    published.extend(publish_via(front, &connector, batch(10, 10)).await);
    seen.extend(collect(&mut rx, 10).await);
    assert_exactly(&ids(&seen), &published, "after the kill");
    assert!(seen.contains(&Seen::Connected(1)), "the client reconnected: {seen:?}");
    assert!(!seen.iter().any(|s| matches!(s, Seen::Control(..))), "no reset: {seen:?}");
    let now = (0..3).filter(|&i| i != serving).find(|&i| clients(&nodes[i]) == 1);
    assert!(now.is_some(), "the stream now lives on another node; nginx log:\n{}", nginx.error_log());
}

#[test]
fn the_deploy_file_keeps_the_settings_event_streams_need() {
    for needed in [
        "proxy_buffering off;",
        "proxy_http_version 1.1;",
        "proxy_set_header Connection \"\";",
        "proxy_read_timeout 1h;",
        "proxy_cache off;",
        "listen 443 ssl http2;",
        "location /events",
    ] {
        assert!(TEMPLATE.contains(needed), "deploy/nginx/herald.conf lost {needed:?}");
    }
}
