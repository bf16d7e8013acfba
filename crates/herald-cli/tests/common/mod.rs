//! Real processes for the cluster, TLS and nginx tests: `redis-server`, `herald serve` nodes,
//! and a subscriber that follows a stream across reconnects (and nodes) by its last event id.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use tokio::sync::mpsc;

pub const BIN: &str = env!("CARGO_BIN_EXE_herald");

/// How long any wait in these tests may take before the test fails: a bound on liveness, so a
/// broken build fails instead of hanging, never a performance assertion.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `f` until it holds; fails the test after [`PATIENCE`].
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !f() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it right away).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The path of an executable on `PATH` (or an absolute path), or a failing test that says how
/// to install it. Skipping is not an option: these tests are the proof that cluster mode works.
pub fn require(program: &str, package: &str) -> PathBuf {
    let found = if program.starts_with('/') {
        Some(PathBuf::from(program)).filter(|p| p.exists())
    } else {
        std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(program)).find(|p| p.exists()))
    };
    found.unwrap_or_else(|| {
        panic!(
            "{program} is not installed; these tests need it: \
             apt-get install -y --no-install-recommends {package} (.ci/run installs it)"
        )
    })
}

/// A `redis-server` on a free port, with an append-only file fsynced on every write, so that a
/// restart (same port, same directory) finds the stream as it was.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut redis = Self { child: None, port: free_port(), dir };
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let bin = require("redis-server", "redis-server");
        let log = std::fs::File::create(self.dir.path().join("redis.log")).unwrap();
        let child = Command::new(bin)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
            .arg(self.dir.path())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_for("redis-server to answer PING", || self.ping());
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Whether Redis answers `PING` with `PONG` (not while it is still loading its file).
    pub fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0; 7];
        s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// Stops Redis with SIGTERM and waits for it to exit (the file is complete then).
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("redis is running");
        signal(child.id(), "-TERM");
        child.wait().unwrap();
    }

    /// Starts Redis again on the same port and directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        self.spawn();
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill").args([sig, &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

/// A `herald serve` process on a free port; its log is kept for failure messages and checks.
pub struct Node {
    child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<String>>,
    /// The data directory when the node owns it (removed on drop).
    _dir: Option<tempfile::TempDir>,
}

impl Node {
    /// A cluster node: `herald serve --redis URL`.
    pub fn start(redis_url: &str, env: &[(&str, &str)]) -> Self {
        Self::start_with(&["--redis", redis_url], env)
    }

    /// `herald serve --listen 127.0.0.1:0 ARGS...` with its own (unused in cluster mode) data
    /// directory, once it logs its address.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut node = Self::start_in(dir.path(), args, env, "info");
        node._dir = Some(dir);
        node
    }

    /// `herald serve --listen 127.0.0.1:0 --data-dir DIR ARGS...` at `RUST_LOG=log_level`, on a
    /// data directory the caller keeps (to restart on the same data), once it logs its address.
    pub fn start_in(dir: &Path, args: &[&str], env: &[(&str, &str)], log_level: &str) -> Self {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", log_level);
        Self::spawn(command)
    }

    /// Sends `sig` (such as `-TERM`) to the process.
    pub fn signal(&self, sig: &str) {
        signal(self.child.id(), sig);
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// kill -9, and reap it.
    pub fn kill9(&mut self) {
        signal(self.child.id(), "-KILL");
        self.child.wait().unwrap();
    }

    /// `GET /ready`: the status code.
    pub fn ready(&self) -> u16 {
        get(self.addr, "/ready").0
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `herald ARGS` to completion with `env`: (success, stderr).
pub fn run_herald(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(BIN).args(args).envs(env.iter().copied()).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A plain HTTP/1.1 request with `Connection: close`: the status and the body.
pub fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    request(addr, "GET", path, "")
}

/// `POST /publish` that must succeed: the ids.
pub fn publish(addr: SocketAddr, body: &str) -> Vec<String> {
    let (status, answer) = request(addr, "POST", "/publish", body);
    assert_eq!(status, 200, "publish to {addr}: {answer}");
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    v["ids"].as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_owned()).collect()
}

/// What a [`follow`]er saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A stream (the n-th connection) opened with 200.
    Connected(usize),
    /// An event: id and data.
    Event(String, String),
    /// A control event (`herald.reset`, `herald.synced`, ...): type and data.
    Control(String, String),
}

/// Opens one SSE stream: given the connection attempt number and the path and query, the
/// response body of a 200 answer.
pub type Open = Arc<
    dyn Fn(usize, String) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Incoming, String>> + Send>>
        + Send
        + Sync,
>;

/// An HTTP/1.1 opener that takes the nodes in turn: attempt n goes to `nodes[n % len]`.
pub fn round_robin(nodes: Vec<SocketAddr>) -> Open {
    Arc::new(move |attempt, path| {
        let addr = nodes[attempt % nodes.len()];
        Box::pin(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            let req = http::Request::get(path).header("host", addr.to_string()).body(Empty::<Bytes>::new()).unwrap();
            let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
            if resp.status() != 200 {
                return Err(format!("{addr}: {}", resp.status()));
            }
            Ok(resp.into_body())
        })
    })
}

/// Follows `/events?QUERY` like a browser's EventSource: reads the stream, and whenever it ends
/// opens a new one (attempt + 1) with the last event id it saw, reporting everything to the
/// channel. Ends when the receiver is dropped.
pub fn follow(open: Open, query: &str) -> mpsc::UnboundedReceiver<Seen> {
    let (tx, rx) = mpsc::unbounded_channel();
    let query = query.to_owned();
    tokio::spawn(async move {
        let mut last: Option<String> = None;
        let mut attempt = 0;
        loop {
            if tx.is_closed() {
                return;
            }
            let mut path = format!("/events?{query}");
            if let Some(id) = &last {
                path.push_str(&format!("&lastEventID={id}"));
            }
            let body = open(attempt, path).await;
            attempt += 1;
            let Ok(mut body) = body else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            if tx.send(Seen::Connected(attempt - 1)).is_err() {
                return;
            }
            let mut decoder = herald::sse::Decoder::new(1 << 20);
            while let Some(Ok(frame)) = body.frame().await {
                let Some(data) = frame.data_ref() else { continue };
                decoder.push(data);
                while let Ok(Some(item)) = decoder.next_item() {
                    let herald::sse::Item::Event(m) = item else { continue };
                    let seen = if m.kind.starts_with("herald.") {
                        Seen::Control(m.kind, m.data)
                    } else {
                        last = m.id.clone();
                        Seen::Event(m.id.unwrap_or_default(), m.data)
                    };
                    if tx.send(seen).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// Everything a follower reports until it has seen `n` events (failing after [`PATIENCE`]).
pub async fn collect(rx: &mut mpsc::UnboundedReceiver<Seen>, n: usize) -> Vec<Seen> {
    let mut out = Vec::new();
    let mut events = 0;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while events < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(seen)) => {
                events += usize::from(matches!(seen, Seen::Event(..)));
                out.push(seen);
            }
            Ok(None) => panic!("the follower stopped"),
            Err(_) => panic!("gave up after {events} of {n} events; saw {out:?}"),
        }
    }
    out
}

/// Waits for the next [`Seen::Connected`] (the follower's stream is open).
pub async fn connected(rx: &mut mpsc::UnboundedReceiver<Seen>) -> usize {
    match tokio::time::timeout(PATIENCE, rx.recv()).await {
        Ok(Some(Seen::Connected(n))) => n,
        Ok(Some(other)) => panic!("expected a connection first, got {other:?}"),
        _ => panic!("the follower never connected"),
    }
}

/// The event ids among `seen`, in order.
pub fn ids(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Event(id, _) => Some(id.clone()),
            _ => None,
        })
        .collect()
}

/// Ids as `(ms, seq)` for ordering.
pub fn key(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap();
    (ms.parse().unwrap(), seq.parse().unwrap())
}

/// Asserts `got` is exactly `expected` sorted by id: every event once, in id order.
pub fn assert_exactly(got: &[String], expected: &[String], who: &str) {
    let mut want = expected.to_vec();
    want.sort_by_key(|id| key(id));
    want.dedup();
    assert_eq!(want.len(), expected.len(), "publishes returned duplicate ids");
    if got != want {
        let dups = got.len() - got.iter().collect::<std::collections::BTreeSet<_>>().len();
        let missing: Vec<_> = want.iter().filter(|id| !got.contains(id)).take(5).collect();
        panic!(
            "{who}: got {} events (duplicates: {dups}), expected {}; first missing: {missing:?}; in order: {}",
            got.len(),
            want.len(),
            got.windows(2).all(|w| key(&w[0]) < key(&w[1]))
        );
    }
}

/// A self-signed certificate for `localhost` and `127.0.0.1`, written as PEM files into `dir`:
/// (cert path, key path, the certificate for clients to trust).
pub fn certificate(dir: &Path) -> (PathBuf, PathBuf, rustls::pki_types::CertificateDer<'static>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (cert, key, made.cert.der().clone())
}

/// A TLS client that trusts only `root` and offers `alpn`.
pub fn tls_connector(root: &rustls::pki_types::CertificateDer<'static>, alpn: &[&str]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// One TLS connection to `addr` (as `localhost`): the stream and the protocol ALPN chose.
pub async fn tls_connect(
    addr: SocketAddr,
    connector: &tokio_rustls::TlsConnector,
) -> Result<(tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Option<String>), String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.map_err(|e| e.to_string())?;
    let alpn = tls.get_ref().1.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned());
    Ok((tls, alpn))
}

/// One HTTP/2 connection over TLS (ALPN `h2` only): its request sender.
pub async fn h2_connect(
    addr: SocketAddr,
    connector: &tokio_rustls::TlsConnector,
) -> Result<hyper::client::conn::http2::SendRequest<Empty<Bytes>>, String> {
    let (tls, alpn) = tls_connect(addr, connector).await?;
    if alpn.as_deref() != Some("h2") {
        return Err(format!("ALPN chose {alpn:?}, not h2"));
    }
    let (send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(send)
}

/// `GET https://localhost:PORT{path}` on an HTTP/2 connection: the response, if 200.
pub async fn h2_get(
    send: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    port: u16,
    path: &str,
) -> Result<hyper::Response<Incoming>, String> {
    send.ready().await.map_err(|e| e.to_string())?;
    let req = http::Request::get(format!("https://localhost:{port}{path}")).body(Empty::<Bytes>::new()).unwrap();
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    if resp.status() != 200 {
        return Err(format!("{path}: {}", resp.status()));
    }
    Ok(resp)
}

impl Node {
    /// `herald serve --listen 127.0.0.1:0 --data-dir DIR ARGS...` (on its own data directory)
    /// with its open-file limit lowered to `soft` and `hard` first (`ulimit` in `sh`, which
    /// then `exec`s the server), once it logs its address.
    pub fn start_with_open_files(soft: u64, hard: u64, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!(r#"ulimit -S -n {soft} && ulimit -H -n {hard} && exec "$0" "$@""#))
            .arg(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(args)
            .env("RUST_LOG", "info");
        let mut node = Self::spawn(command);
        node._dir = Some(dir);
        node
    }

    /// Spawns `command` (one that runs `herald serve`), keeping its log, once it logs its
    /// address.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let Some(Ok(line)) = lines.next() else {
                panic!("herald serve exited before listening:\n{}", log.lock().unwrap());
            };
            log.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some(rest) = line.split("addr=").nth(1) {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                keep.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        Self { child, addr, log, _dir: None }
    }

    /// The value of the first `name=VALUE` field the node has logged so far.
    pub fn logged(&self, name: &str) -> Option<String> {
        let log = self.log.lock().unwrap();
        let key = format!(" {name}=");
        let rest = log.split(key.as_str()).nth(1)?;
        Some(rest.split_whitespace().next()?.trim_matches('"').to_owned())
    }
}

/// Writes `text` as `herald.toml` in `dir`: the path, for `--config`.
pub fn config_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("herald.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The resident memory of process `pid`, in bytes (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/<pid>/status");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// `GET path` over a fresh tokio connection with `Connection: close`: the status and the body.
pub async fn get_async(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut out)).await.expect("an answer in time").unwrap();
    let out = String::from_utf8_lossy(&out).into_owned();
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// `/ready`'s `clients`.
pub async fn ready_clients(addr: SocketAddr) -> u64 {
    let (_, body) = get_async(addr, "/ready").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("/ready: {body}"));
    v["clients"].as_u64().unwrap_or_else(|| panic!("/ready: {body}"))
}

/// The value of one series (`name{labels}` as written) in `/metrics`, 0 when absent.
pub async fn metric_value(addr: SocketAddr, series: &str) -> f64 {
    let (_, text) = get_async(addr, "/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(series).filter(|rest| rest.starts_with(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// One raw HTTP/1.1 stream (`GET path`), read as text as it arrives: for tests that watch a
/// stream from outside the node's process, such as through a container.
pub struct RawStream {
    socket: TcpStream,
    /// Everything received so far, head included.
    pub text: String,
}

impl RawStream {
    /// Opens `GET path` on `addr`.
    pub fn open(addr: SocketAddr, path: &str) -> Self {
        let mut socket = TcpStream::connect(addr).unwrap();
        write!(socket, "GET {path} HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        Self { socket, text: String::new() }
    }

    /// Reads until `needle` has arrived (failing after [`PATIENCE`] or at the end of the stream).
    pub fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + PATIENCE;
        let mut buf = [0; 4096];
        while !self.text.contains(needle) {
            assert!(Instant::now() < deadline, "no {needle:?} in:\n{}", self.text);
            match self.socket.read(&mut buf) {
                Ok(0) => panic!("the stream ended without {needle:?}:\n{}", self.text),
                Ok(n) => self.text.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => panic!("reading the stream: {e}\n{}", self.text),
            }
        }
    }
}

impl Node {
    /// `herald serve --listen 127.0.0.1:PORT --data-dir DIR ARGS...`: a node that can be
    /// stopped and started again at the same address on the same data, as clients that follow
    /// one URL across a restart need. Waits until it logs its address.
    pub fn start_on(port: u16, dir: &Path, args: &[&str]) -> Self {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(dir)
            .args(args)
            .env("RUST_LOG", "info");
        Self::spawn(command)
    }
}
