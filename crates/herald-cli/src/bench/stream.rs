//! The subscriber side of `herald bench`: one raw HTTP/1.1 SSE reader per socket.
//!
//! Why not `herald-client` (hyper) per stream: the idle and fan-out scenarios hold 10k–100k
//! streams on the same two cores as the server under test. A hyper client connection per stream
//! costs a connection task, a dispatch channel and its buffers, and a decoder that builds a
//! `Message` (with owned strings) per event; at 2M deliveries/s the generator would spend more
//! than the server. Here a stream is one tokio task owning a socket: it writes the GET request,
//! checks the status line, then on each readiness reads into its thread's buffer (hot in cache,
//! where a buffer per stream was cold by its next read), undoes chunked transfer encoding,
//! splits frames on the blank line and parses only what it needs: the publish timestamp
//! `"t":<nanos>` carried in the payload, or the warm-up marker `"w":`. Everything else (ids,
//! comments, `retry:`) is skipped; only the start of an unfinished frame is kept between reads.
//! It speaks to Herald and to nchan alike.
//!
//! Frames are expected to end in `\n\n` (what both Herald and nchan write), not `\r\n\r\n`.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

/// Read buffer per thread. Herald coalesces up to 64 frames per write; a read takes what fits.
const READ_BUF: usize = 8 * 1024;
/// Latencies a stream collects before adding them to the shared histogram (one lock per batch).
const LATENCY_BATCH: usize = 256;

/// What every reader of one run shares.
pub(crate) struct Readers {
    /// Streams that got their `200` response head.
    pub(crate) connected: AtomicUsize,
    /// Streams that have seen a warm-up event: they are registered and receiving.
    pub(crate) warm: AtomicUsize,
    /// Publish → receive latency in microseconds, of every timed event on every stream.
    pub(crate) latency_us: Mutex<Histogram<u64>>,
    /// Streams that received every event they expected.
    pub(crate) complete: AtomicUsize,
    /// Streams that ended, for whatever reason.
    pub(crate) ended: AtomicUsize,
    /// Tells every reader to stop and return what it counted.
    pub(crate) stop: CancellationToken,
}

impl Readers {
    pub(crate) fn new() -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            connected: AtomicUsize::new(0),
            warm: AtomicUsize::new(0),
            complete: AtomicUsize::new(0),
            ended: AtomicUsize::new(0),
            latency_us: Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 3)?),
            stop: CancellationToken::new(),
        }))
    }

    fn record(&self, batch: &mut Vec<u64>) {
        let mut h = self.latency_us.lock().unwrap_or_else(|e| e.into_inner());
        for &v in batch.iter() {
            h.saturating_record(v);
        }
        batch.clear();
    }
}

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// It received every event it was told to expect.
    Complete,
    /// The run told it to stop.
    Stopped,
    /// The server closed the stream.
    Closed,
}

/// What one stream saw.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) events: u64,
    /// Unix nanoseconds of the last timed event's arrival (0 if none).
    pub(crate) last_ns: u64,
    pub(crate) end: End,
}

/// Where and how to open a stream.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) addr: SocketAddr,
    /// Request target, e.g. `/events?topic=a` or `/sub?id=a`.
    pub(crate) path: String,
}

/// A stream whose `200` response head was read.
pub(crate) struct Connected {
    stream: TcpStream,
    chunked: bool,
    /// What was read past the response head.
    early: Vec<u8>,
}

/// Opens one stream (from `source`, if given) and waits for its response head.
pub(crate) async fn connect(endpoint: &Endpoint, source: Option<IpAddr>) -> anyhow::Result<Connected> {
    let socket = if endpoint.addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(ip) = source {
        // Each source address has its own ~28k ephemeral ports (net.ipv4.ip_local_port_range).
        socket.bind(SocketAddr::new(ip, 0)).with_context(|| format!("binding to {ip}"))?;
    }
    let mut stream = socket.connect(endpoint.addr).await.with_context(|| format!("connecting to {}", endpoint.addr))?;
    stream.set_nodelay(true)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
        endpoint.path, endpoint.addr
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    let end = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!("the server closed the connection before answering");
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = find(&head, b"\r\n\r\n") {
            break i + 4;
        }
        if head.len() > 16 * 1024 {
            bail!("response head too long");
        }
    };
    let status = head.split(|&b| b == b'\n').next().unwrap_or_default();
    if !status.starts_with(b"HTTP/1.1 200") {
        bail!("{}", String::from_utf8_lossy(&head[..end]).trim());
    }
    let chunked = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase().contains("transfer-encoding: chunked");
    let early = head.split_off(end);
    Ok(Connected { stream, chunked, early })
}

/// Reads a connected stream until it has seen `expect` timed events, the run stops it, or the
/// server closes it.
pub(crate) async fn read(connected: Connected, expect: u64, readers: &Readers) -> anyhow::Result<Outcome> {
    let outcome = read_until(connected, expect, readers).await;
    readers.ended.fetch_add(1, Ordering::Relaxed);
    if outcome.as_ref().is_ok_and(|o| o.end == End::Complete) {
        readers.complete.fetch_add(1, Ordering::Relaxed);
    }
    outcome
}

async fn read_until(connected: Connected, expect: u64, readers: &Readers) -> anyhow::Result<Outcome> {
    let Connected { stream, chunked, early } = connected;
    let mut reader = Reader {
        body: Body::new(chunked),
        out: Outcome { events: 0, last_ns: 0, end: End::Stopped },
        warm: false,
        latencies: Vec::with_capacity(LATENCY_BATCH),
        carry: Vec::new(),
    };
    // One registration with the run's token for the stream's life, not one per read: 10k readers
    // re-registering with one token on every read contended on its lock.
    let stop = readers.stop.cancelled();
    tokio::pin!(stop);
    reader.take(&early, readers)?;
    while reader.out.events < expect {
        tokio::select! {
            biased;
            () = &mut stop => break,
            ready = stream.readable() => ready?,
        }
        // Read into this thread's buffer, which stays in cache, rather than into a buffer per
        // stream: with 10k streams each read touched memory gone cold since the last.
        let read = SCRATCH.with_borrow_mut(|scratch| match stream.try_read(scratch) {
            Ok(0) => Ok(None),
            Ok(n) => reader.take(&scratch[..n], readers).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(Some(())),
            Err(e) => Err(e.into()),
        })?;
        if read.is_none() {
            reader.out.end = End::Closed;
            break;
        }
    }
    if reader.out.events >= expect {
        reader.out.end = End::Complete;
    }
    readers.record(&mut reader.latencies);
    Ok(reader.out)
}

thread_local! {
    /// Where a reader on this thread reads into, and decodes what it read.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_BUF]);
    static DECODED: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(READ_BUF));
}

/// What one stream keeps between reads.
struct Reader {
    body: Body,
    out: Outcome,
    warm: bool,
    latencies: Vec<u64>,
    /// The start of a frame whose end has not arrived yet.
    carry: Vec<u8>,
}

impl Reader {
    /// Takes the bytes of one read: decodes them and counts the frames they complete.
    fn take(&mut self, input: &[u8], readers: &Readers) -> anyhow::Result<()> {
        static FRAME_END: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
            std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\n\n"));
        let now = unix_nanos();
        DECODED.with_borrow_mut(|decoded| {
            decoded.clear();
            decoded.extend_from_slice(&self.carry);
            self.carry.clear();
            self.body.feed(input, decoded)?;
            let mut start = 0;
            while let Some(i) = FRAME_END.find(&decoded[start..]) {
                let frame = &decoded[start..start + i];
                start += i + 2;
                if let Some(t) = timestamp(frame) {
                    self.latencies.push(now.saturating_sub(t) / 1000);
                    if self.latencies.len() == LATENCY_BATCH {
                        readers.record(&mut self.latencies);
                    }
                    self.out.events += 1;
                    self.out.last_ns = now;
                } else if !self.warm && find(frame, b"\"w\":").is_some() {
                    self.warm = true;
                    readers.warm.fetch_add(1, Ordering::Relaxed);
                }
            }
            self.carry.extend_from_slice(&decoded[start..]);
            if self.carry.is_empty() && self.carry.capacity() > 0 {
                self.carry = Vec::new();
            }
            Ok(())
        })
    }
}

/// The publish timestamp of a frame whose data carries `"t":<unix nanos>`.
fn timestamp(frame: &[u8]) -> Option<u64> {
    // Built once: a searcher costs more to build than one frame costs to search.
    static TIME: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"t\":"));
    let at = TIME.find(frame)? + 4;
    let digits = frame[at..].iter().take_while(|b| b.is_ascii_digit());
    let mut t: u64 = 0;
    let mut any = false;
    for d in digits {
        t = t.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
        any = true;
    }
    any.then_some(t)
}

pub(crate) fn unix_nanos() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// Undoes chunked transfer encoding (RFC 9112 §7.1), trailers aside.
struct Body {
    chunked: bool,
    state: Chunk,
}

enum Chunk {
    /// Reading the hexadecimal size so far.
    Size(u64),
    /// Skipping a chunk extension up to the end of the line.
    Extension(u64),
    /// This many data bytes left in the chunk.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// The last chunk was read.
    Done,
}

impl Body {
    fn new(chunked: bool) -> Self {
        Self { chunked, state: Chunk::Size(0) }
    }

    /// Appends the payload bytes of `input` to `out`.
    fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> anyhow::Result<()> {
        if !self.chunked {
            out.extend_from_slice(input);
            return Ok(());
        }
        while let Some((&b, rest)) = input.split_first() {
            match &mut self.state {
                Chunk::Size(n) => {
                    input = rest;
                    match b {
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                            let digit = (b as char).to_digit(16).unwrap_or(0);
                            *n = n.checked_mul(16).context("chunk size overflow")? + u64::from(digit);
                        }
                        b';' => self.state = Chunk::Extension(*n),
                        b'\r' => {}
                        b'\n' => self.state = if *n == 0 { Chunk::Done } else { Chunk::Data(*n) },
                        _ => bail!("malformed chunk size"),
                    }
                }
                Chunk::Extension(n) => {
                    input = rest;
                    if b == b'\n' {
                        self.state = if *n == 0 { Chunk::Done } else { Chunk::Data(*n) };
                    }
                }
                Chunk::Data(n) => {
                    let take = (*n).min(input.len() as u64) as usize;
                    out.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    *n -= take as u64;
                    if *n == 0 {
                        self.state = Chunk::DataEnd;
                    }
                }
                Chunk::DataEnd => {
                    input = rest;
                    if b == b'\n' {
                        self.state = Chunk::Size(0);
                    }
                }
                Chunk::Done => return Ok(()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn chunked_bodies_are_undone_across_any_split() {
        let wire = b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n";
        for split in 0..wire.len() {
            let mut body = Body::new(true);
            let mut out = Vec::new();
            body.feed(&wire[..split], &mut out).unwrap();
            body.feed(&wire[split..], &mut out).unwrap();
            assert_eq!(out, b"hello world", "split at {split}");
        }
    }

    #[test]
    fn timestamps_are_read_from_data() {
        assert_eq!(timestamp(b"id: 1-0\ndata: {\"t\":1234,\"p\":\"x\"}"), Some(1234));
        assert_eq!(timestamp(b"data: {\"w\":1}"), None);
        assert_eq!(timestamp(b": heartbeat"), None);
    }
}
