//! Clients that stop reading, against the real `herald` binary (SPEC §7): a stream's queue is
//! bounded in bytes, a socket that takes nothing for `limits.write_stall_s` closes its stream as
//! `lagged` and gives back its memory and its `/ready` slot, on the direct HTTP/1.1 writer,
//! hyper's HTTP/1.1 path and HTTP/2 alike; and a reading subscriber on the same topic misses
//! nothing meanwhile. Also the JSON bodies of the 431 and 400 answers to bad request heads.
//!
//! Memory is the node's resident set (`VmRSS`), sampled while large events (256 KiB) flow; the
//! bound asserted is far above what the node needs and far below what stuck streams pinned
//! before (1.9 GiB for three of them). Waits are bounded by `PATIENCE`, never timed.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Empty;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The payload of each large event.
const EVENT_BYTES: usize = 256 << 10;
/// What the node may hold at most while stuck clients come and go (see the module docs).
const RSS_BOUND: u64 = 200 << 20;
/// What a stuck client's socket buffers: small, so the node's writes stall soon.
const STUCK_RCVBUF: u32 = 4096;

/// A node with a small queue (1 MiB: four large events) and a 2 s stall limit, keeping little
/// history of its own, so that what stuck streams hold is what shows in its memory.
fn node(dir: &std::path::Path) -> Node {
    node_with(dir, "")
}

/// [`node`] with more configuration (whole sections) at the end.
fn node_with(dir: &std::path::Path, sections: &str) -> Node {
    let config = config_file(
        dir,
        &format!(
            "storage = \"memory\"\nmax_body_bytes = 8388608\n\
             [retention]\nmax_events = 32\n\
             [limits]\nstream_queue_bytes = 1048576\nwrite_stall_s = 2\nmax_header_bytes = 8192\n{sections}"
        ),
    );
    Node::start_with(&["--config", config.to_str().unwrap()], &[])
}

fn big_event(topic: &str, len: usize) -> String {
    serde_json::json!({"topic": topic, "data": "x".repeat(len)}).to_string()
}

/// A connection that asks for `topic`'s stream and never reads. With `via_hyper`, it first asks
/// for `/health` on the same connection, so that hyper serves the stream (the path of a browser
/// reusing its connection, or of a proxy's keep-alive pool).
async fn stuck_reader(addr: SocketAddr, topic: &str, via_hyper: bool) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(STUCK_RCVBUF).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let mut head = String::new();
    if via_hyper {
        head.push_str("GET /health HTTP/1.1\r\nhost: x\r\n\r\n");
    }
    head.push_str(&format!("GET /events?topic={topic} HTTP/1.1\r\nhost: x\r\n\r\n"));
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// Waits until `/ready` counts `n` clients, sampling the node's memory meanwhile; the peak.
async fn until_clients(node: &Node, n: u64, what: &str) -> u64 {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut peak = 0;
    loop {
        peak = peak.max(rss_bytes(node.pid()));
        if ready_clients(node.addr).await == n {
            return peak;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what} (memory peaked at {} MiB)",
            peak >> 20
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `POST /publish` of one event that must succeed: its id.
async fn publish_one(addr: SocketAddr, body: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /publish HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut out)).await.expect("an answer in time").unwrap();
    let out = String::from_utf8_lossy(&out);
    let answer = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    assert!(out.starts_with("HTTP/1.1 200"), "publish: {out:.300}");
    let v: serde_json::Value = serde_json::from_str(answer).unwrap();
    v["ids"][0].as_str().unwrap().to_owned()
}

/// Publishes `count` events of `len` bytes to `topic`, each once `follower` (a subscriber that
/// reads) has received the one before, so that it cannot fall behind however slowly this
/// machine runs it; checks that it receives every one, in order, on its first connection.
/// Samples the node's memory meanwhile: the ids, and the peak.
async fn publish_big(
    node: &Node,
    topic: &str,
    count: usize,
    len: usize,
    follower: &mut tokio::sync::mpsc::UnboundedReceiver<Seen>,
) -> (Vec<String>, u64) {
    let body = big_event(topic, len);
    let (mut ids, mut peak) = (Vec::new(), 0);
    for _ in 0..count {
        let id = publish_one(node.addr, &body).await;
        let seen = collect(follower, 1).await;
        assert!(!seen.iter().any(|s| matches!(s, Seen::Connected(_))), "the reading subscriber was cut off");
        assert_eq!(
            common::ids(&seen),
            std::slice::from_ref(&id),
            "the reading subscriber received every event, in order"
        );
        ids.push(id);
        peak = peak.max(rss_bytes(node.pid()));
    }
    (ids, peak)
}

/// Reads what the server sent a stuck reader until the server closes the connection; whether it
/// did (within patience).
async fn closed_by_server(mut stream: TcpStream) -> bool {
    let mut scratch = vec![0u8; 64 << 10];
    let drain = async {
        loop {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(PATIENCE, drain).await.is_ok()
}

const LAGGED: &str = "herald_clients_disconnected_total{reason=\"lagged\"}";
const CLIENT: &str = "herald_clients_disconnected_total{reason=\"client\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_that_never_read_are_closed_as_lagged_and_pin_no_memory() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path());
    let addr = node.addr;
    let mut follower = follow(round_robin(vec![addr]), "topic=big");
    assert_eq!(connected(&mut follower).await, 0);
    // Three on the direct writer, two on hyper's HTTP/1.1 path.
    let mut stuck = Vec::new();
    for via_hyper in [false, false, false, true, true] {
        stuck.push(stuck_reader(addr, "big", via_hyper).await);
    }
    until_clients(&node, 6, "every stream to open").await;

    // 100 MiB in 400 events, which each stuck stream would have pinned (and copied) before.
    let (_, publishing) = publish_big(&node, "big", 400, EVENT_BYTES, &mut follower).await;
    let closing = until_clients(&node, 1, "the stuck streams to be closed").await;
    let peak = publishing.max(closing);
    eprintln!("RSS peak {} MiB", peak >> 20);
    assert!(peak < RSS_BOUND, "the node's memory peaked at {} MiB", peak >> 20);

    assert_eq!(metric_value(addr, LAGGED).await, 5.0, "every stuck stream counted as lagged");
    assert_eq!(metric_value(addr, CLIENT).await, 0.0);
    // The server closed the direct ones itself; hyper's connections stay until their clients
    // leave (their streams are closed and uncounted all the same).
    for stream in stuck.drain(..3) {
        assert!(closed_by_server(stream).await, "a direct stream's connection was closed");
    }
}

/// Nothing is queued behind the one event the client does not take: only the stall limit can
/// tell that this stream is stuck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_reader_with_nothing_more_to_come_is_closed_by_the_stall_limit() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path());
    let addr = node.addr;
    let direct = stuck_reader(addr, "once", false).await;
    let hyper = stuck_reader(addr, "once", true).await;
    until_clients(&node, 2, "both streams to open").await;
    // More than the kernel's socket buffers hold.
    publish_one(addr, &big_event("once", 6 << 20)).await;
    until_clients(&node, 0, "the stall limit to close both streams").await;
    assert_eq!(metric_value(addr, LAGGED).await, 2.0);
    assert!(closed_by_server(direct).await);
    drop(hyper);
}

/// Argo CD's watch stream is bounded the same way: a watcher that never reads is closed by the
/// stall limit, counted as lagged, and gives its slot back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_argocd_watcher_is_closed_as_lagged() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path());
    let addr = node.addr;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(STUCK_RCVBUF).unwrap();
    let mut watcher = socket.connect(addr).await.unwrap();
    watcher.write_all(b"GET /api/v1/stream/applications HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    until_clients(&node, 1, "the watch to open").await;
    // 10 MiB: more than the socket buffers and the 1 MiB queue hold.
    for i in 0..40 {
        let app = serde_json::json!({
            "topic": "argocd/objects/argocd/web",
            "type": "application.updated",
            "key": "argocd/web",
            "data": {"metadata": {"name": "web", "namespace": "argocd", "resourceVersion": i.to_string()},
                     "spec": {"project": "default"}, "status": {"padding": "x".repeat(EVENT_BYTES)}},
        });
        publish_one(addr, &app.to_string()).await;
    }
    until_clients(&node, 0, "the stall limit to close the watch").await;
    assert_eq!(metric_value(addr, LAGGED).await, 1.0, "the stuck watcher counted as lagged");
    assert_eq!(metric_value(addr, CLIENT).await, 0.0);
    assert!(closed_by_server(watcher).await, "its connection was closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_http2_readers_are_closed_as_lagged_and_their_memory_goes() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path());
    let addr = node.addr;
    let mut follower = follow(round_robin(vec![addr]), "topic=big");
    assert_eq!(connected(&mut follower).await, 0);
    let baseline = rss_bytes(node.pid());

    // Ten HTTP/2 (prior knowledge) streams on one connection, each with a 1 KiB window that the
    // client never opens further: it never reads the bodies.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .initial_stream_window_size(1024)
        .handshake::<_, Empty<Bytes>>(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let mut bodies = Vec::new();
    for _ in 0..10 {
        send.ready().await.unwrap();
        let request = http::Request::get(format!("http://{addr}/events?topic=big")).body(Empty::new()).unwrap();
        let response = send.send_request(request).await.unwrap();
        assert_eq!((response.status().as_u16(), response.version()), (200, http::Version::HTTP_2));
        bodies.push(response.into_body());
    }
    until_clients(&node, 11, "every stream to open").await;

    let (_, publishing) = publish_big(&node, "big", 400, EVENT_BYTES, &mut follower).await;
    let closing = until_clients(&node, 1, "the stuck HTTP/2 streams to be closed").await;
    let peak = publishing.max(closing);
    assert!(peak < RSS_BOUND, "the node's memory peaked at {} MiB", peak >> 20);
    assert_eq!(metric_value(addr, LAGGED).await, 10.0, "every stuck stream counted as lagged");

    // The client leaves: what hyper still held for its streams goes too.
    drop(bodies);
    drop(send);
    conn.abort();
    let _ = conn.await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let after = loop {
        let rss = rss_bytes(node.pid());
        if rss <= peak || tokio::time::Instant::now() >= deadline {
            break rss;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("RSS: baseline {} MiB, peak {} MiB, after {} MiB", baseline >> 20, peak >> 20, after >> 20);
    assert!(
        after < RSS_BOUND && after <= peak,
        "memory after the clients left: {} MiB (baseline {} MiB, peak {} MiB)",
        after >> 20,
        baseline >> 20,
        peak >> 20
    );
    assert_eq!(metric_value(addr, LAGGED).await, 10.0, "counted once");
}

/// One HTTP/1.1 request over TLS with `Connection: close`: the status and the body.
async fn tls_request(
    addr: SocketAddr,
    connector: &tokio_rustls::TlsConnector,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    let (mut tls, _) = tls_connect(addr, connector).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(body.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    // A peer that closes without TLS's close_notify is an error to rustls; the answer is whole.
    let _ = tokio::time::timeout(PATIENCE, tls.read_to_end(&mut out)).await.expect("an answer in time");
    let out = String::from_utf8_lossy(&out).into_owned();
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

/// hyper serves both HTTP versions over TLS (ALPN), with rustls's buffers between it and the
/// socket: stuck streams are closed there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_readers_over_tls_are_closed_as_lagged() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, root) = certificate(dir.path());
    let tls = format!("[tls]\ncert = {:?}\nkey = {:?}\n", cert.to_str().unwrap(), key.to_str().unwrap());
    let node = node_with(dir.path(), &tls);
    let addr = node.addr;
    let plain = tls_connector(&root, &["http/1.1"]);
    let clients = || async {
        let (_, body) = tls_request(addr, &plain, "GET", "/ready", "").await;
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["clients"].as_u64().unwrap()
    };
    let connect = |alpn: &'static str| {
        let connector = tls_connector(&root, &[alpn]);
        async move {
            let socket = TcpSocket::new_v4().unwrap();
            socket.set_recv_buffer_size(STUCK_RCVBUF).unwrap();
            let tcp = socket.connect(addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            connector.connect(name, tcp).await.unwrap()
        }
    };
    // HTTP/1.1: asks for the stream and never reads.
    let mut http1 = connect("http/1.1").await;
    http1.write_all(b"GET /events?topic=big HTTP/1.1\r\nhost: localhost\r\n\r\n").await.unwrap();
    http1.flush().await.unwrap();
    // HTTP/2: a 1 KiB window the client never opens further.
    let (mut send, conn) = hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .initial_stream_window_size(1024)
        .handshake::<_, Empty<Bytes>>(hyper_util::rt::TokioIo::new(connect("h2").await))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let request =
        http::Request::get(format!("https://localhost:{}/events?topic=big", addr.port())).body(Empty::new()).unwrap();
    let response = send.send_request(request).await.unwrap();
    assert_eq!((response.status().as_u16(), response.version()), (200, http::Version::HTTP_2));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while clients().await != 2 {
        assert!(tokio::time::Instant::now() < deadline, "gave up waiting for both streams to open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let body = big_event("big", EVENT_BYTES);
    let mut peak = 0;
    for _ in 0..100 {
        let (status, answer) = tls_request(addr, &plain, "POST", "/publish", &body).await;
        assert_eq!(status, 200, "{answer}");
        peak = peak.max(rss_bytes(node.pid()));
    }
    while clients().await != 0 {
        peak = peak.max(rss_bytes(node.pid()));
        assert!(
            tokio::time::Instant::now() < deadline + PATIENCE,
            "gave up waiting for the stuck TLS streams to close"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(peak < RSS_BOUND, "the node's memory peaked at {} MiB", peak >> 20);
    let (_, metrics) = tls_request(addr, &plain, "GET", "/metrics", "").await;
    assert!(metrics.lines().any(|l| l == format!("{LAGGED} 2")), "both counted as lagged:\n{metrics}");
    drop((http1, response, send));
    conn.abort();
}

/// Reads one whole answer off a raw connection (the server closes it after): status, headers,
/// body.
async fn raw_answer(addr: SocketAddr, request: &[u8]) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before taking all of an oversized head.
    let _ = stream.write_all(request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut out)).await.expect("the server closes");
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no answer head: {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers =
        lines.map(|l| l.split_once(": ").unwrap()).map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned())).collect();
    (status, headers, body.to_owned())
}

#[tokio::test]
async fn bad_request_heads_get_json_answers_and_the_connection_closes() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path());
    let big = format!("GET /events?topic=t HTTP/1.1\r\nhost: x\r\nx-pad: {}\r\n\r\n", "p".repeat(20_000));
    let cases: [(&[u8], u16, &str); 4] = [
        (big.as_bytes(), 431, "headers_too_large"),
        (b"GET /events?topic=t HTTP/1.1\r\nbad header\r\n\r\n", 400, "bad_request"),
        (b"POST /publish HTTP/1.1\r\ncontent-length: nope\r\n\r\n", 400, "bad_request"),
        (b"GET /health HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n", 400, "bad_request"),
    ];
    for (request, status, error) in cases {
        let what = String::from_utf8_lossy(&request[..request.len().min(40)]).into_owned();
        let (got, headers, body) = raw_answer(node.addr, request).await;
        let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(got, status, "{what}: {body}");
        assert_eq!(header("content-type"), Some("application/json"), "{what}");
        assert_eq!(header("connection"), Some("close"), "{what}");
        assert_eq!(header("content-length"), Some(body.len().to_string().as_str()), "{what}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"));
        assert_eq!(json["error"], error, "{what}");
        assert!(json["detail"].as_str().is_some_and(|d| !d.is_empty()), "{what}: {json}");
    }
}
