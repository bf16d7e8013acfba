//! Streams on plaintext HTTP/1.1 served outside hyper (`herald::direct`), byte for byte over
//! real TCP: framing, keep-alive after an error answer, hand-over to hyper, slow and oversized
//! heads, clients that leave, and the drain.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw HTTP/1.1 connection that reads answers off the wire itself.
struct Conn {
    socket: TcpStream,
    buf: Vec<u8>,
}

/// One answer's head: status, headers (lower-cased names).
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

impl Conn {
    async fn open(addr: SocketAddr) -> Self {
        Self { socket: TcpStream::connect(addr).await.unwrap(), buf: Vec::new() }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.socket.write_all(bytes).await.unwrap();
    }

    /// Reads more bytes; false at the end of the connection.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(PATIENCE, self.socket.read(&mut chunk)).await.expect("bytes in time").unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    async fn head(&mut self) -> Head {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let text = String::from_utf8(self.buf.drain(..end + 4).collect()).unwrap();
                let mut lines = text.split("\r\n");
                let status_line = lines.next().unwrap();
                assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
                let status = status_line[9..12].parse().unwrap();
                let headers = lines
                    .filter(|l| !l.is_empty())
                    .map(|l| {
                        let (n, v) = l.split_once(": ").unwrap();
                        (n.to_ascii_lowercase(), v.to_owned())
                    })
                    .collect();
                return Head { status, headers };
            }
            assert!(self.fill().await, "connection closed before an answer head: {:?}", self.buf);
        }
    }

    /// Reads a `content-length` body.
    async fn body(&mut self, head: &Head) -> String {
        let len: usize = head.get("content-length").expect("content-length").parse().unwrap();
        while self.buf.len() < len {
            assert!(self.fill().await);
        }
        String::from_utf8(self.buf.drain(..len).collect()).unwrap()
    }

    /// Reads one chunk of a chunked body, checking its framing; `None` for the last chunk.
    async fn chunk(&mut self) -> Option<String> {
        loop {
            if let Some(eol) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let size = usize::from_str_radix(std::str::from_utf8(&self.buf[..eol]).unwrap(), 16).unwrap();
                while self.buf.len() < eol + 2 + size + 2 {
                    assert!(self.fill().await, "connection closed inside a chunk");
                }
                assert_eq!(&self.buf[eol + 2 + size..eol + 4 + size], b"\r\n", "chunk ends with CRLF");
                let data = String::from_utf8(self.buf[eol + 2..eol + 2 + size].to_vec()).unwrap();
                self.buf.drain(..eol + 4 + size);
                return (size > 0).then_some(data);
            }
            assert!(self.fill().await, "connection closed before a chunk");
        }
    }

    /// Reads chunks until their text holds `want`; returns all of it.
    async fn chunks_until(&mut self, want: &str) -> String {
        let mut text = String::new();
        while !text.contains(want) {
            text.push_str(&self.chunk().await.unwrap_or_else(|| panic!("body ended before {want:?}: {text}")));
        }
        text
    }

    /// Whether the server closes the connection (reads to the end, within patience).
    async fn closed(&mut self) -> bool {
        while self.fill().await {}
        true
    }
}

const STREAM: &[u8] = b"GET /events?topic=t HTTP/1.1\r\nhost: x\r\n\r\n";

#[tokio::test]
async fn a_stream_is_chunked_with_hyper_s_headers_and_carries_events() {
    let server = start(config()).await;
    let mut conn = Conn::open(server.addr).await;
    conn.send(STREAM).await;
    let head = conn.head().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.get("content-type"), Some("text/event-stream"));
    assert_eq!(head.get("cache-control"), Some("no-cache"));
    assert_eq!(head.get("x-accel-buffering"), Some("no"));
    assert_eq!(head.get("transfer-encoding"), Some("chunked"));
    assert!(head.get("date").is_some_and(|d| d.ends_with(" GMT")));
    assert_eq!(head.get("content-length"), None);
    assert!(conn.chunk().await.unwrap().starts_with("retry: "));
    let ids = publish_ok(server.addr, json!([{"topic": "t", "data": 1}, {"topic": "t", "data": "x"}])).await;
    let text = conn.chunks_until(&format!("id: {}\n", ids[1])).await;
    assert!(text.contains(&format!("id: {}\ndata: 1\n\n", ids[0])), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn an_error_answer_keeps_the_connection_for_the_next_requests() {
    let server = start(config()).await;
    let mut conn = Conn::open(server.addr).await;
    // 400 (no topic): a whole JSON answer with its length, and the connection stays open.
    conn.send(b"GET /events HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let head = conn.head().await;
    assert_eq!(head.status, 400);
    assert_eq!(head.get("content-type"), Some("application/json"));
    assert!(conn.body(&head).await.contains("\"error\":\"bad_request\""));
    // Another streaming request on it is served the same way.
    conn.send(STREAM).await;
    assert_eq!(conn.head().await.status, 200);
    assert!(conn.chunk().await.unwrap().starts_with("retry: "));
    drop(conn);

    // After an error answer, a request for hyper gets the connection (with its bytes), and a
    // stream after that is hyper's too.
    let mut conn = Conn::open(server.addr).await;
    conn.send(b"GET /events?topic=t&snapshot=maybe HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let head = conn.head().await;
    assert_eq!(head.status, 400);
    conn.body(&head).await;
    conn.send(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let head = conn.head().await;
    assert_eq!(head.status, 200);
    conn.body(&head).await;
    conn.send(STREAM).await;
    let head = conn.head().await;
    assert_eq!((head.status, head.get("transfer-encoding")), (200, Some("chunked")));
    let id = publish_ok(server.addr, json!({"topic": "t", "data": 2})).await.remove(0);
    conn.chunks_until(&format!("id: {id}\n")).await;
    server.stop().await;
}

#[tokio::test]
async fn connection_close_is_honoured_after_an_error_answer() {
    let server = start(config()).await;
    let mut conn = Conn::open(server.addr).await;
    conn.send(b"GET /events HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
    let head = conn.head().await;
    assert_eq!((head.status, head.get("connection")), (400, Some("close")));
    conn.body(&head).await;
    assert!(conn.closed().await);
    server.stop().await;
}

#[tokio::test]
async fn a_head_that_arrives_a_few_bytes_at_a_time_is_served() {
    let server = start(config()).await;
    let mut conn = Conn::open(server.addr).await;
    for piece in STREAM.chunks(3) {
        conn.send(piece).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(conn.head().await.status, 200);
    assert!(conn.chunk().await.unwrap().starts_with("retry: "));
    server.stop().await;
}

#[tokio::test]
async fn other_requests_still_go_to_hyper() {
    let server = start(config()).await;
    // A stream head beyond max_header_bytes: 431, answered before hyper, with a JSON body
    // (hyper's has none), and the connection closed.
    let mut conn = Conn::open(server.addr).await;
    let big = format!("GET /events?topic=t HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n", "a".repeat(70 * 1024));
    // The server may answer and close before taking it all.
    let _ = conn.socket.write_all(big.as_bytes()).await;
    let head = conn.head().await;
    assert_eq!((head.status, head.get("connection")), (431, Some("close")));
    assert_eq!(head.get("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&conn.body(&head).await).unwrap();
    assert_eq!(body["error"], "headers_too_large", "{body}");
    assert!(conn.closed().await);

    // HTTP/1.0 has no chunked encoding: hyper streams it until the connection closes.
    let mut conn = Conn::open(server.addr).await;
    conn.send(b"GET /events?topic=t HTTP/1.0\r\n\r\n").await;
    while !String::from_utf8_lossy(&conn.buf).contains("retry: ") {
        assert!(conn.fill().await);
    }
    let text = String::from_utf8_lossy(&conn.buf).to_string();
    assert!(text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(!text.contains("transfer-encoding"), "{text}");

    // A publish body, pipelined with a stream request behind it.
    let mut conn = Conn::open(server.addr).await;
    let body = r#"{"topic":"t","data":3}"#;
    let publish = format!(
        "POST /publish HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.send(publish.as_bytes()).await;
    let head = conn.head().await;
    assert_eq!(head.status, 200);
    assert!(conn.body(&head).await.contains("\"ids\""));

    // The connection is hyper's now: a malformed head, then on another such connection an
    // oversized one, get hyper's automatic answers rewritten as JSON (SPEC §7).
    conn.send(b"GET /health HTTP/1.1\r\nhost x\r\n\r\n").await;
    let head = conn.head().await;
    assert_eq!(
        (head.status, head.get("connection"), head.get("content-type")),
        (400, Some("close"), Some("application/json"))
    );
    let body: serde_json::Value = serde_json::from_str(&conn.body(&head).await).unwrap();
    assert_eq!(body["error"], "bad_request", "{body}");
    assert!(conn.closed().await);
    let mut conn = Conn::open(server.addr).await;
    conn.send(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let head = conn.head().await;
    assert_eq!(head.status, 200);
    conn.body(&head).await;
    let huge = format!("GET /health HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n", "a".repeat(300 * 1024));
    let _ = conn.socket.write_all(huge.as_bytes()).await;
    let head = conn.head().await;
    assert_eq!((head.status, head.get("content-type")), (431, Some("application/json")));
    let body: serde_json::Value = serde_json::from_str(&conn.body(&head).await).unwrap();
    assert_eq!(body["error"], "headers_too_large", "{body}");
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_leaves_an_idle_stream_is_noticed_at_once() {
    let server = start(config()).await;
    let mut conn = Conn::open(server.addr).await;
    conn.send(STREAM).await;
    conn.head().await;
    conn.chunk().await;
    assert_eq!(metric(server.addr, "herald_clients_connected").await, 1.0);
    drop(conn);
    // No event and no heartbeat is due: only watching the socket can tell.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while metric(server.addr, "herald_clients_connected").await != 0.0 {
        assert!(tokio::time::Instant::now() < deadline, "the stream outlived its client");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_keeps_sending_while_streaming_is_cut_off() {
    let server = start(config()).await;
    let mut conn = Conn::open(server.addr).await;
    conn.send(STREAM).await;
    conn.head().await;
    conn.chunk().await;
    conn.send(&[b'x'; 8192]).await;
    assert!(conn.closed().await);
    server.stop().await;
}

#[tokio::test]
async fn the_drain_ends_the_body_with_the_last_chunk_and_closes() {
    let mut server = start(config()).await;
    let mut conn = Conn::open(server.addr).await;
    conn.send(STREAM).await;
    conn.head().await;
    conn.chunk().await;
    server.begin_stop();
    let text = conn.chunks_until("event: herald.shutdown").await;
    assert!(text.ends_with("event: herald.shutdown\ndata: {}\n\n"), "{text}");
    assert_eq!(conn.chunk().await, None, "the last chunk");
    assert!(conn.closed().await);
    server.join().await.unwrap();
}
