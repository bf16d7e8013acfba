//! Long-lived streams on plaintext HTTP/1.1, written straight to the socket.
//!
//! hyper keeps a read buffer (8 KiB, grown to 16 KiB while a request head is held) and an 8 KiB
//! write buffer for the whole life of an HTTP/1.1 connection, and has no server-side setting to
//! shrink them. An SSE stream stays open for hours and carries a few hundred bytes at a time, so
//! those buffers were most of its memory (~22 KB of ~25 KB per idle stream, BENCHMARKS.md). This
//! module is what no library offers for that: it serves the streaming endpoints
//! ([`STREAM_PATHS`]) without them.
//!
//! The accept loop reads the request head of a plaintext connection itself ([`read_head`]). When
//! [`classify`] finds a `GET` of a streaming endpoint over HTTP/1.1 with no body, the request
//! goes through the same axum router as every other request (authentication, CORS, limits,
//! metrics: nothing is skipped), and [`serve_stream`] writes the answer:
//! - a `text/event-stream` answer: its head, then each body frame as one chunk, written with
//!   `writev` from the event's shared frame bytes (no copy, no buffer kept between writes). When
//!   the stream ends the connection is closed after the last chunk, so a draining node is left
//!   with nothing idle to wait for.
//! - anything else (401, 403, 503, ...): a small body, written with its `content-length`; the
//!   connection stays open for the client's next request.
//!
//! Everything else — another path or method, a request with a body, HTTP/1.0, HTTP/2 prior
//! knowledge, TLS, a head over the size limit or one `httparse` rejects — goes to hyper, with the
//! bytes already read put back in front ([`Rewind`]), and stays with hyper for the rest of the
//! connection. So a stream opened on a connection that first served another request (a browser
//! reusing its connection, an nginx upstream keepalive) still works, with hyper's buffers.
//!
//! While a stream is open the client has nothing to send; the socket is watched for readiness, not
//! read into a buffer, so a client that goes away is seen at once.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use axum::extract::ConnectInfo;
use bytes::{Buf, Bytes};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Version};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tower::ServiceExt;

/// The endpoints whose answers are long-lived streams.
pub const STREAM_PATHS: [&str; 2] = ["/events", "/api/v1/stream/applications"];

/// The most headers a streaming request may have; more go to hyper (which has no such limit
/// short of `max_header_bytes`).
const MAX_HEADERS: usize = 64;

/// Bytes a client may send while its stream is open (it has no reason to send any) before the
/// connection is closed.
const MAX_STRAY_BYTES: usize = 4096;

/// What the bytes read so far from a new request are.
#[derive(Debug)]
pub enum Head {
    /// Not a whole request head yet, and it may still be one this module takes.
    Partial,
    /// A streaming request this module takes, and the head's length in bytes.
    Stream(Box<Request<axum::body::Body>>, usize),
    /// Anything else: hyper's.
    Other,
}

/// Decides what `buf` (the first bytes of a request) is; see the module docs.
///
/// `buf` is untrusted input (fuzzed).
pub fn classify(buf: &[u8]) -> Head {
    // Most requests are told apart by their first bytes, before any parsing.
    let prefix: &[u8] = b"GET /";
    if !buf.starts_with(&prefix[..buf.len().min(prefix.len())]) {
        return Head::Other;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            // A request line already known to be for another path need not be waited for.
            let path_known = parsed.path.is_some_and(|p| !is_stream_path(p));
            return if path_known { Head::Other } else { Head::Partial };
        }
        Err(_) => return Head::Other,
    };
    // Pipelined bytes after the head would be the next request: hyper's job.
    if len != buf.len() || parsed.method != Some("GET") || parsed.version != Some(1) {
        return Head::Other;
    }
    let Some(path) = parsed.path.filter(|p| is_stream_path(p)) else {
        return Head::Other;
    };
    let mut request = Request::new(axum::body::Body::empty());
    *request.method_mut() = Method::GET;
    *request.version_mut() = Version::HTTP_11;
    match path.parse() {
        Ok(uri) => *request.uri_mut() = uri,
        Err(_) => return Head::Other,
    }
    for h in parsed.headers.iter() {
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(h.name.as_bytes()), HeaderValue::from_bytes(h.value))
        else {
            return Head::Other;
        };
        // A body, an upgrade or an expectation: not the simple GET this module writes for.
        let declares_body = name == header::CONTENT_LENGTH && value != "0";
        if declares_body || [header::TRANSFER_ENCODING, header::UPGRADE, header::EXPECT].contains(&name) {
            return Head::Other;
        }
        request.headers_mut().append(name, value);
    }
    Head::Stream(Box::new(request), len)
}

/// Whether a request target (path and query) names a streaming endpoint.
fn is_stream_path(target: &str) -> bool {
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    STREAM_PATHS.contains(&path)
}

/// Reads one request head from `stream`, up to `max` bytes. On [`Head::Other`] the bytes read
/// so far are returned for [`Rewind`]; `Ok(None)` when the client closed before sending one.
///
/// # Errors
/// What reading the socket gave.
pub async fn read_head(stream: &mut TcpStream, max: usize) -> io::Result<Option<(Head, Bytes)>> {
    use tokio::io::AsyncReadExt;
    // Freed once the head is parsed: a stream keeps no read buffer.
    let mut buf = Vec::with_capacity(1024.min(max));
    loop {
        let before = buf.len();
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(if buf.is_empty() { None } else { Some((Head::Other, buf.into())) });
        }
        // Parsing starts over each time; doing it only when a line was completed keeps a client
        // that sends its head a byte at a time from costing a parse per byte.
        if before > 0 && !buf[before..].contains(&b'\n') && buf.len() < max {
            continue;
        }
        match classify(&buf) {
            Head::Partial if buf.len() < max => buf.reserve((buf.len()).min(max - buf.len())),
            // Too big for this module: hyper answers it (431).
            Head::Partial | Head::Other => return Ok(Some((Head::Other, buf.into()))),
            stream @ Head::Stream(..) => return Ok(Some((stream, Bytes::new()))),
        }
    }
}

/// How a connection goes on after [`serve_stream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Read the client's next request.
    KeepAlive,
    /// Close it.
    Close,
}

/// Answers one request [`classify`] took, through `app`, on `stream`.
///
/// # Errors
/// What writing to the socket gave (the client went away).
pub async fn serve_stream(
    stream: &mut TcpStream,
    mut request: Box<Request<axum::body::Body>>,
    app: axum::Router,
    remote: SocketAddr,
) -> io::Result<After> {
    let close_asked = request.headers().get_all(header::CONNECTION).iter().any(|v| has_token(v, "close"));
    // What axum's `into_make_service_with_connect_info` would have inserted.
    request.extensions_mut().insert(ConnectInfo(remote));
    // Boxed: the router's future is needed only until the answer's head is known, and would
    // otherwise be part of the stream's state for its whole life.
    let response = match Box::pin(app.oneshot(*request)).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    let is_stream = parts.status == http::StatusCode::OK
        && parts.headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !is_stream {
        Box::pin(write_whole(stream, parts, body, close_asked)).await?;
        return Ok(if close_asked { After::Close } else { After::KeepAlive });
    }
    // The head is written and let go of before the stream's long wait.
    stream.write_all(&response_head(&parts, Framing::Chunked, close_asked)).await?;
    drop(parts);
    pump(stream, body).await?;
    Ok(After::Close)
}

/// Writes a (small, error) answer whole, with its `content-length`.
async fn write_whole(
    stream: &mut TcpStream,
    parts: http::response::Parts,
    body: axum::body::Body,
    close: bool,
) -> io::Result<()> {
    let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
    let head = response_head(&parts, Framing::Length(body.len()), close);
    write_all_vectored(stream, &mut [IoSlice::new(&head), IoSlice::new(&body)]).await
}

/// Writes each frame of `body` as a chunk until it ends (then the last chunk) or the client
/// goes away.
async fn pump(stream: &mut TcpStream, mut body: axum::body::Body) -> io::Result<()> {
    let mut stray = 0;
    loop {
        tokio::select! {
            frame = body.frame() => match frame {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        write_chunk(stream, &data).await?;
                    }
                }
                Some(Err(e)) => return Err(io::Error::other(e)),
                None => return stream.write_all(b"0\r\n\r\n").await,
            },
            ready = stream.readable() => {
                ready?;
                let mut scratch = [0u8; 256];
                match stream.try_read(&mut scratch) {
                    Ok(0) => return Ok(()),
                    Ok(n) => {
                        stray += n;
                        if stray > MAX_STRAY_BYTES {
                            return Err(io::Error::new(io::ErrorKind::InvalidData, "the client sent data while streaming"));
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

/// Whether a comma-separated header value holds `token` (case-insensitively).
fn has_token(value: &HeaderValue, token: &str) -> bool {
    value.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

enum Framing {
    Chunked,
    Length(usize),
}

/// The status line and headers of an answer, as hyper would write them.
fn response_head(parts: &http::response::Parts, framing: Framing, close: bool) -> Vec<u8> {
    use std::io::Write;
    let mut head = Vec::with_capacity(256);
    let reason = parts.status.canonical_reason().unwrap_or("");
    let _ = write!(head, "HTTP/1.1 {} {reason}\r\n", parts.status.as_u16());
    for (name, value) in &parts.headers {
        if [header::CONTENT_LENGTH, header::TRANSFER_ENCODING, header::CONNECTION].contains(name) {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if !parts.headers.contains_key(header::DATE) {
        let _ = write!(head, "date: {}\r\n", httpdate::fmt_http_date(SystemTime::now()));
    }
    match framing {
        Framing::Chunked => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Length(len) => {
            let _ = write!(head, "content-length: {len}\r\n");
        }
    }
    if close {
        head.extend_from_slice(b"connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// Writes `data` as one chunk: size line, data, CRLF, in one `writev` when the socket takes it.
async fn write_chunk(stream: &mut TcpStream, data: &[u8]) -> io::Result<()> {
    if data.is_empty() {
        // An empty chunk would end the body.
        return Ok(());
    }
    // Most writes fit in the socket's buffer at once. Only what did not is copied and waited
    // for, in a boxed future, so that a stream's state holds no write in progress.
    let Some(rest) = try_write_chunk(stream, data)? else {
        return Ok(());
    };
    Box::pin(async move { stream.write_all(&rest).await }).await
}

/// Writes what the socket takes of a chunk now; returns what is left, if anything.
fn try_write_chunk(stream: &TcpStream, data: &[u8]) -> io::Result<Option<Vec<u8>>> {
    use std::io::Write;
    let mut size = [0u8; 18];
    let mut cursor = io::Cursor::new(&mut size[..]);
    write!(cursor, "{:x}\r\n", data.len())?;
    let len = cursor.position() as usize;
    let size = &size[..len];
    let mut bufs = [IoSlice::new(size), IoSlice::new(data), IoSlice::new(b"\r\n")];
    let mut rest = &mut bufs[..];
    match stream.try_write_vectored(rest) {
        Ok(n) => IoSlice::advance_slices(&mut rest, n),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok((!rest.is_empty()).then(|| rest.iter().flat_map(|b| b.iter().copied()).collect()))
}

async fn write_all_vectored(stream: &mut TcpStream, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    while !bufs.is_empty() {
        let n = stream.write_vectored(bufs).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

/// An IO whose reads first return `prefix`: the bytes [`read_head`] took before it knew the
/// request was hyper's.
#[derive(Debug)]
pub struct Rewind<I> {
    prefix: Bytes,
    inner: I,
}

impl<I> Rewind<I> {
    /// `inner`, with `prefix` to be read before it.
    pub fn new(prefix: Bytes, inner: I) -> Self {
        Self { prefix, inner }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix[..n]);
        self.prefix.advance(n);
        if self.prefix.is_empty() {
            // Let go of the head buffer now rather than with the connection.
            self.prefix = Bytes::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(buf: &[u8]) -> &'static str {
        match classify(buf) {
            Head::Partial => "partial",
            Head::Stream(..) => "stream",
            Head::Other => "other",
        }
    }

    #[test]
    fn streaming_gets_are_taken_and_everything_else_is_hyper_s() {
        let get = b"GET /events?topic=a HTTP/1.1\r\nhost: x\r\nlast-event-id: 1-2\r\n\r\n";
        assert_eq!(kind(get), "stream");
        assert_eq!(kind(b"GET /api/v1/stream/applications HTTP/1.1\r\n\r\n"), "stream");
        assert_eq!(kind(b"GET /events?topic=a HTTP/1.1\r\ncontent-length: 0\r\n\r\n"), "stream");
        // Not yet known.
        for partial in [&b""[..], b"G", b"GET /", b"GET /ev", b"GET /events?topic=a HTTP/1.1\r\nhost: x\r\n"] {
            assert_eq!(kind(partial), "partial", "{:?}", String::from_utf8_lossy(partial));
        }
        let others: [&[u8]; 12] = [
            b"POST /publish HTTP/1.1\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET /health HTTP/1.1\r\n\r\n",
            b"GET /events/x HTTP/1.1\r\n\r\n",
            b"GET /eventsx HTTP/1.1\r\n",
            b"GET /events HTTP/1.0\r\n\r\n",
            b"GET /events HTTP/1.1\r\ncontent-length: 3\r\n\r\n",
            b"GET /events HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
            b"GET /events HTTP/1.1\r\nupgrade: h2c\r\n\r\n",
            b"GET /events HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\n\r\n",
            b"GET /events HTTP/1.1\r\nbad header\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        ];
        for other in others {
            assert_eq!(kind(other), "other", "{:?}", String::from_utf8_lossy(other));
        }
        let Head::Stream(request, len) = classify(get) else { panic!("not taken") };
        assert_eq!(len, get.len());
        assert_eq!(request.uri(), "/events?topic=a");
        assert_eq!(request.headers()["last-event-id"], "1-2");
    }

    #[test]
    fn response_heads_are_framed() {
        let mut response = http::Response::new(());
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        response.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from_static("9"));
        let (parts, ()) = response.into_parts();
        let head = String::from_utf8(response_head(&parts, Framing::Chunked, true)).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ndate: "), "{head}");
        assert!(head.ends_with("transfer-encoding: chunked\r\nconnection: close\r\n\r\n"), "{head}");
        assert!(!head.contains("content-length"));
        let head = String::from_utf8(response_head(&parts, Framing::Length(12), false)).unwrap();
        assert!(head.ends_with("content-length: 12\r\n\r\n"), "{head}");
    }

    #[tokio::test]
    async fn rewind_reads_the_prefix_first() {
        use tokio::io::AsyncReadExt;
        let mut io = Rewind::new(Bytes::from_static(b"head "), &b"rest"[..]);
        let mut out = String::new();
        io.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "head rest");
    }
}
