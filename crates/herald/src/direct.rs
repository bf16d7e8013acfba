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
//! A request head this module reads (a connection's first, or one after an answer of its own)
//! that is malformed (400) or over `limits.max_header_bytes` (431) is answered here too,
//! whatever its path, with the JSON error body every other error has (SPEC
//! §7; hyper would answer with an empty body), `content-length` and `Connection: close`; the
//! connection is then closed gently (see [`read_head`]). The checks are hyper's own: `httparse`
//! with hyper's header count, the request target, and the `content-length` /
//! `transfer-encoding` framing rules.
//!
//! Everything else — another path or method, a request with a body, HTTP/1.0, HTTP/2 prior
//! knowledge, TLS — goes to hyper, with the bytes already read put back in front ([`Rewind`]),
//! and stays with hyper for the rest of the connection. So a stream opened on a connection that
//! first served another request (a browser reusing its connection, an nginx upstream keepalive)
//! still works, with hyper's buffers. A malformed or oversized head that hyper reads itself (on
//! such a connection, or over TLS) gets hyper's automatic answer, which has no body; hyper has no
//! hook to change it, so [`JsonErrors`] rewrites it on its way to the socket into the same JSON
//! answer this module gives.
//!
//! While a stream is open the client has nothing to send; the socket is watched for readiness, not
//! read into a buffer, so a client that goes away is seen at once. A client that stops reading
//! is seen too: a chunk the socket takes nothing of for the stream's stall limit
//! (`limits.write_stall_s`, from the [`WriteWatch`] the stream's answer carries) closes the
//! connection, and the stream is counted as lagged (see `hub`'s `## Stalling`). A chunk waiting
//! for the socket is held as the event's shared bytes, never copied.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use bytes::{Buf, Bytes};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Version};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tower::ServiceExt;

use crate::hub::WriteWatch;

/// The endpoints whose answers are long-lived streams.
pub const STREAM_PATHS: [&str; 2] = ["/events", "/api/v1/stream/applications"];

/// The most headers a request may have: hyper's own limit (beyond it, hyper answers 431).
const MAX_HEADERS: usize = 100;

/// After an error answer, how long the client's further bytes are read and dropped before the
/// connection is closed...
const LINGER: Duration = Duration::from_secs(2);
/// ... and how many at most.
const LINGER_BYTES: usize = 1 << 20;

/// Bytes a client may send while its stream is open (it has no reason to send any) before the
/// connection is closed.
const MAX_STRAY_BYTES: usize = 4096;

/// What the bytes read so far from a new request are.
#[derive(Debug)]
pub enum Head {
    /// Not a whole request head yet.
    Partial,
    /// A streaming request this module takes, and the head's length in bytes.
    Stream(Box<Request<axum::body::Body>>, usize),
    /// A head this module answers with an error, then closes the connection.
    Rejected(Rejection),
    /// Anything else: hyper's.
    Other,
}

/// Why a request head is answered with an error (what hyper would answer, with a body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Over `limits.max_header_bytes`, or more headers than hyper takes: 431.
    TooLarge,
    /// Not an HTTP/1.x request head hyper would take: 400, and what is wrong.
    Malformed(&'static str),
}

impl Rejection {
    /// The JSON error answer (SPEC §7).
    fn answer(self) -> axum::response::Response {
        self.error().into_response()
    }

    fn error(self) -> crate::http::ApiError {
        match self {
            Self::TooLarge => crate::http::ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                "the request head is larger than this server takes (limits.max_header_bytes)",
            ),
            Self::Malformed(detail) => crate::http::ApiError::bad_request(format!("malformed request: {detail}")),
        }
    }
}

/// Decides what `buf` (the first bytes of a request) is; see the module docs. A head that is
/// still partial at the size limit is the caller's to reject ([`read_head`] does).
///
/// `buf` is untrusted input (fuzzed).
pub fn classify(buf: &[u8]) -> Head {
    // HTTP/2 prior knowledge is hyper's, whatever follows the preface's first word.
    if buf.starts_with(b"PRI ") {
        return Head::Other;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(httparse::Error::TooManyHeaders) => return Head::Rejected(Rejection::TooLarge),
        Err(e) => return Head::Rejected(Rejection::Malformed(describe(e))),
    };
    let Some(target) = parsed.path else { return Head::Rejected(Rejection::Malformed("no request target")) };
    let uri: http::Uri = match target.parse() {
        Ok(uri) => uri,
        Err(_) => return Head::Rejected(Rejection::Malformed("invalid request target")),
    };
    if let Err(detail) = check_framing(parsed.version == Some(1), parsed.headers) {
        return Head::Rejected(Rejection::Malformed(detail));
    }
    // Pipelined bytes after the head would be the next request (or a body): hyper's job.
    if len != buf.len() || parsed.method != Some("GET") || parsed.version != Some(1) || !is_stream_path(target) {
        return Head::Other;
    }
    let mut request = Request::new(axum::body::Body::empty());
    *request.method_mut() = Method::GET;
    *request.version_mut() = Version::HTTP_11;
    *request.uri_mut() = uri;
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

/// What a `httparse` error means, for the 400's detail.
fn describe(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Token => "invalid method or request target",
        httparse::Error::Version => "invalid HTTP version",
        httparse::Error::Status | httparse::Error::TooManyHeaders => "invalid request line",
    }
}

/// hyper's rules for how a request's body is framed (RFC 9112 §6): `content-length` is digits,
/// repeated only with the same value; `transfer-encoding` only on HTTP/1.1 and ending with
/// `chunked`. A head that breaks them is 400.
fn check_framing(http11: bool, headers: &[httparse::Header<'_>]) -> Result<(), &'static str> {
    let (mut length, mut chunked) = (None, None);
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if !http11 {
                return Err("transfer-encoding on HTTP/1.0");
            }
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default();
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("content-length") && chunked.is_none() {
            let digits = !h.value.is_empty() && h.value.iter().all(u8::is_ascii_digit);
            let value = std::str::from_utf8(h.value).ok().filter(|_| digits).and_then(|v| v.parse::<u64>().ok());
            match (value, length) {
                (None, _) => return Err("invalid content-length"),
                (Some(value), Some(before)) if value != before => return Err("conflicting content-length"),
                (value, _) => length = value,
            }
        }
    }
    if chunked == Some(false) {
        return Err("transfer-encoding that does not end with chunked");
    }
    Ok(())
}

/// Whether a request target (path and query) names a streaming endpoint.
fn is_stream_path(target: &str) -> bool {
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    STREAM_PATHS.contains(&path)
}

/// Reads one request head from `stream`, up to `max` bytes. On [`Head::Other`] the bytes read
/// so far are returned for [`Rewind`]; `Ok(None)` when the connection is over: the client closed
/// before sending a head, or the head was [`Head::Rejected`] and answered here.
///
/// After an error answer the connection is closed gently: the write side first, then what the
/// client still sends (the rest of an oversized head, a body) is read and dropped for a moment,
/// since closing a socket with unread bytes sends a reset, which can destroy the answer before
/// the client reads it.
///
/// # Errors
/// What reading the socket gave.
pub async fn read_head(stream: &mut TcpStream, max: usize) -> io::Result<Option<(Head, Bytes)>> {
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
        let rejection = match classify(&buf) {
            Head::Partial if buf.len() < max => {
                buf.reserve((buf.len()).min(max - buf.len()));
                continue;
            }
            Head::Partial => Rejection::TooLarge,
            Head::Rejected(rejection) => rejection,
            Head::Other => return Ok(Some((Head::Other, buf.into()))),
            stream @ Head::Stream(..) => return Ok(Some((stream, Bytes::new()))),
        };
        drop(buf);
        // Boxed: rare, and not to be part of every connection's state.
        Box::pin(reject(stream, rejection)).await?;
        return Ok(None);
    }
}

/// Answers a rejected head and closes gently (see [`read_head`]).
async fn reject(stream: &mut TcpStream, rejection: Rejection) -> io::Result<()> {
    let (parts, body) = rejection.answer().into_parts();
    write_whole(stream, parts, body, true).await?;
    stream.shutdown().await?;
    let mut scratch = vec![0; 16 << 10];
    let drain = async {
        let mut left = LINGER_BYTES;
        while left > 0 {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
    Ok(())
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
    let mut parts = parts;
    let watch = parts.extensions.remove::<WriteWatch>();
    drop(parts);
    pump(stream, body, watch).await?;
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

/// Writes each frame of `body` as a chunk until it ends (then the last chunk), the client goes
/// away, or the socket stalls (see the module docs).
async fn pump(stream: &mut TcpStream, mut body: axum::body::Body, watch: Option<WriteWatch>) -> io::Result<()> {
    let mut stray = 0;
    loop {
        tokio::select! {
            frame = body.frame() => match frame {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        // An empty chunk would end the body.
                        if !data.is_empty() {
                            if let Some(rest) = write_chunk(stream, data, watch.as_ref())? {
                                rest.await?;
                            }
                        }
                    }
                }
                Some(Err(e)) => return Err(io::Error::other(e)),
                None => {
                    if let Some(rest) = write_chunk(stream, Bytes::new(), watch.as_ref())? {
                        rest.await?;
                    }
                    return Ok(());
                }
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

/// One chunk on the wire: size line, data, CRLF (the last chunk has no data).
struct Chunk {
    size: [u8; 18],
    size_len: u8,
    data: Bytes,
}

impl Chunk {
    fn new(data: Bytes) -> Self {
        use std::io::Write;
        let mut size = [0u8; 18];
        let mut cursor = io::Cursor::new(&mut size[..]);
        // 16 hex digits and CRLF always fit.
        let _ = write!(cursor, "{:x}\r\n", data.len());
        let size_len = cursor.position() as u8;
        Self { size, size_len, data }
    }

    fn len(&self) -> usize {
        usize::from(self.size_len) + self.data.len() + 2
    }

    /// What is left to write after the first `written` bytes.
    fn rest(&self, mut written: usize) -> [IoSlice<'_>; 3] {
        let parts: [&[u8]; 3] = [&self.size[..usize::from(self.size_len)], &self.data, b"\r\n"];
        parts.map(|part| {
            let skip = written.min(part.len());
            written -= skip;
            IoSlice::new(&part[skip..])
        })
    }
}

/// Writes `data` as one chunk, in one `writev` when the socket takes it, which it mostly does.
/// Otherwise it returns a boxed future that writes the rest, keeping the chunk's shared bytes
/// rather than a copy, and giving up when the socket takes nothing for the stall limit. Not
/// itself async, so that a chunk is part of a stream's state only while a write waits.
fn write_chunk<'a>(
    stream: &'a mut TcpStream,
    data: Bytes,
    watch: Option<&'a WriteWatch>,
) -> io::Result<Option<Pin<Box<impl std::future::Future<Output = io::Result<()>> + Send + 'a>>>> {
    let chunk = Chunk::new(data);
    let written = match stream.try_write_vectored(&chunk.rest(0)) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(e),
    };
    if written == chunk.len() {
        return Ok(None);
    }
    Ok(Some(Box::pin(write_rest(stream, chunk, written, watch))))
}

/// The rest of a chunk [`write_chunk`] could not write at once.
async fn write_rest(
    stream: &mut TcpStream,
    chunk: Chunk,
    mut written: usize,
    watch: Option<&WriteWatch>,
) -> io::Result<()> {
    // Argo CD's stream carries no watch: it gets the default limit, and is not counted as lagged.
    let limit = watch.and_then(WriteWatch::limit).unwrap_or_else(|| crate::config::Limits::default().write_stall_s);
    if written > 0 {
        if let Some(watch) = watch {
            watch.progress();
        }
    }
    while written < chunk.len() {
        match tokio::time::timeout(limit, stream.write_vectored(&chunk.rest(written))).await {
            Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(Ok(n)) => {
                written += n;
                if let Some(watch) = watch {
                    watch.progress();
                }
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                if let Some(watch) = watch {
                    watch.stalled();
                }
                return Err(io::Error::new(io::ErrorKind::TimedOut, "the client took no bytes for write_stall_s"));
            }
        }
    }
    Ok(())
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

/// An IO for hyper whose automatic error answers leave as Herald's JSON ones (SPEC §7).
///
/// When hyper cannot parse a request head it writes a canned answer itself — a status line of
/// `400`, `414` or `431`, `content-length: 0`, no body — and closes the connection; no hyper API
/// lets a server replace it. Herald's own error answers always carry a JSON body and its
/// `content-type`, so a write that is one whole bodiless head with one of those statuses can
/// only be hyper's: it is replaced, as it leaves, by the JSON answer with `Connection: close`.
/// Anything else passes through untouched (HTTP/2 frames never start with a status line).
#[derive(Debug)]
pub struct JsonErrors<I> {
    inner: I,
    /// The replacement answer, while not yet all written.
    pending: Bytes,
}

impl<I> JsonErrors<I> {
    /// `inner`, with hyper's canned error answers rewritten.
    pub fn new(inner: I) -> Self {
        Self { inner, pending: Bytes::new() }
    }
}

/// The JSON answer that replaces `buf`, when `buf` is one of hyper's automatic error answers.
fn replacement(buf: &[u8]) -> Option<Bytes> {
    // hyper's are a status line, `content-length: 0` and `date`: well under this.
    if buf.len() > 256 || !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let error = match buf.get(..13)? {
        b"HTTP/1.1 400 " | b"HTTP/1.0 400 " => Rejection::Malformed("the request head could not be parsed").error(),
        b"HTTP/1.1 431 " | b"HTTP/1.0 431 " => Rejection::TooLarge.error(),
        b"HTTP/1.1 414 " | b"HTTP/1.0 414 " => crate::http::ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            "the request target is longer than this server takes",
        ),
        _ => return None,
    };
    let head = String::from_utf8_lossy(buf).to_ascii_lowercase();
    if !head.contains("\r\ncontent-length: 0\r\n") || head.contains("\r\ncontent-type:") {
        return None;
    }
    let body = serde_json::json!({ "error": error.error, "detail": error.detail }).to_string();
    let reason = error.status.canonical_reason().unwrap_or("");
    Some(Bytes::from(format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        error.status.as_u16(),
        body.len()
    )))
}

impl<I: AsyncWrite + Unpin> JsonErrors<I> {
    /// Writes what is left of a replacement answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for JsonErrors<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for JsonErrors<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_pending(cx))?;
        if let Some(answer) = replacement(buf) {
            self.pending = answer;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_pending(cx))?;
        // hyper encodes a head into one buffer: a canned answer is one non-empty slice.
        let mut filled = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (filled.next(), filled.next()) {
            if let Some(answer) = replacement(only) {
                self.pending = answer;
                return Poll::Ready(Ok(only.len()));
            }
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
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
            Head::Rejected(Rejection::TooLarge) => "431",
            Head::Rejected(Rejection::Malformed(_)) => "400",
        }
    }

    #[test]
    fn only_hyper_s_canned_error_answers_are_rewritten_as_json() {
        let canned = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Mon, 30 Nov 2026 08:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(replacement(canned).unwrap().to_vec()).unwrap();
        assert!(answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "{answer}");
        assert!(answer.contains("connection: close\r\n") && answer.contains("content-type: application/json\r\n"));
        let body: serde_json::Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
        assert_eq!(body["error"], "headers_too_large");
        let bad = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert!(String::from_utf8_lossy(&replacement(bad).unwrap()).contains("\"error\":\"bad_request\""));
        assert!(replacement(b"HTTP/1.1 414 URI Too Long\r\nContent-Length: 0\r\n\r\n").is_some());
        // Herald's own answers, and everything else, pass untouched.
        let own = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        for other in [
            &own[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 42\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n",
            b"\0\0\x12\x04\0\0\0\0\0",
        ] {
            assert!(replacement(other).is_none(), "{:?}", String::from_utf8_lossy(other));
        }
    }

    #[tokio::test]
    async fn a_canned_answer_leaves_whole_through_a_small_socket() {
        let (client, server) = tokio::io::duplex(7);
        let mut io = JsonErrors::new(server);
        let canned = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        let reader = tokio::spawn(async move {
            let mut client = client;
            let mut out = Vec::new();
            client.read_to_end(&mut out).await.unwrap();
            String::from_utf8(out).unwrap()
        });
        assert_eq!(io.write(canned).await.unwrap(), canned.len(), "hyper is told its bytes went");
        io.shutdown().await.unwrap();
        drop(io);
        let got = reader.await.unwrap();
        assert!(got.starts_with("HTTP/1.1 400 Bad Request\r\n") && got.ends_with('}'), "{got}");
    }

    #[test]
    fn streaming_gets_are_taken_and_everything_else_is_hyper_s() {
        let get = b"GET /events?topic=a HTTP/1.1\r\nhost: x\r\nlast-event-id: 1-2\r\n\r\n";
        assert_eq!(kind(get), "stream");
        assert_eq!(kind(b"GET /api/v1/stream/applications HTTP/1.1\r\n\r\n"), "stream");
        assert_eq!(kind(b"GET /events?topic=a HTTP/1.1\r\ncontent-length: 0\r\n\r\n"), "stream");
        // Not yet known: every head is read whole, to be checked before anyone serves it.
        let partials: [&[u8]; 7] = [
            b"",
            b"G",
            b"GET /",
            b"GET /ev",
            b"GET /events?topic=a HTTP/1.1\r\nhost: x\r\n",
            b"POST /publish HTTP/1.1\r\n",
            b"GET /eventsx HTTP/1.1\r\n",
        ];
        for partial in partials {
            assert_eq!(kind(partial), "partial", "{:?}", String::from_utf8_lossy(partial));
        }
        let others: [&[u8]; 11] = [
            b"POST /publish HTTP/1.1\r\ncontent-length: 2\r\n\r\n{}",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET /health HTTP/1.1\r\n\r\n",
            b"GET /events/x HTTP/1.1\r\n\r\n",
            b"GET /events HTTP/1.0\r\n\r\n",
            b"GET /events HTTP/1.1\r\ncontent-length: 3\r\n\r\n",
            b"GET /events HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
            b"GET /events HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: x\r\n\r\n",
            b"GET /events HTTP/1.1\r\nupgrade: h2c\r\n\r\n",
            b"GET /events HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\n\r\n",
            b"GET /health HTTP/1.1\r\ncontent-length: 0\r\ncontent-length: 0\r\n\r\n",
        ];
        for other in others {
            assert_eq!(kind(other), "other", "{:?}", String::from_utf8_lossy(other));
        }
        // What hyper would answer 400 or 431 (with an empty body) is answered here.
        let rejected: [(&[u8], &str); 9] = [
            (b"GET /events HTTP/1.1\r\nbad header\r\n\r\n", "400"),
            (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "400"),
            (b"GET /ev ents HTTP/1.1\r\n\r\n", "400"),
            (b"POST /publish HTTP/1.1\r\ncontent-length: 1x\r\n\r\n", "400"),
            (b"POST /publish HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n", "400"),
            (b"POST /publish HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n", "400"),
            (b"POST /publish HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n", "400"),
            (b"GET /events HTTP/1.1\r\nhost: x\r\nhost: y\r\n\r\n", "stream"),
            (b"GET / HTTP/1.1\r\n\r\n", "other"),
        ];
        for (head, want) in rejected {
            assert_eq!(kind(head), want, "{:?}", String::from_utf8_lossy(head));
        }
        let many = format!("GET /events HTTP/1.1\r\n{}\r\n", "x: y\r\n".repeat(MAX_HEADERS + 1));
        assert_eq!(kind(many.as_bytes()), "431");
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

    #[test]
    fn a_chunk_is_written_from_wherever_the_socket_stopped() {
        let chunk = Chunk::new(Bytes::from_static(b"0123456789abcdefg"));
        let whole: Vec<u8> = chunk.rest(0).iter().flat_map(|s| s.to_vec()).collect();
        assert_eq!(whole, b"11\r\n0123456789abcdefg\r\n");
        assert_eq!(chunk.len(), whole.len());
        for written in 0..=whole.len() {
            let rest: Vec<u8> = chunk.rest(written).iter().flat_map(|s| s.to_vec()).collect();
            assert_eq!(rest, whole[written..], "after {written}");
        }
        let last: Vec<u8> = Chunk::new(Bytes::new()).rest(0).iter().flat_map(|s| s.to_vec()).collect();
        assert_eq!(last, b"0\r\n\r\n");
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
