//! The hub as a whole, and [`run`], which serves it on a listener until told to stop.
//!
//! [`serve`] runs its own accept loop on hyper-util's auto (HTTP/1.1 + HTTP/2 prior knowledge)
//! connection builder rather than `axum::serve`, for the settings that protect the request
//! head: `limits.header_read_timeout_ms` (a connection that has not sent a complete request
//! head by then is closed, including one still deciding between HTTP/1.1 and HTTP/2, or still
//! in its TLS handshake, and an idle kept-alive one) and `limits.max_header_bytes` (431 beyond
//! it). With `[tls]` every connection is TLS (rustls), offering ALPN `h2` and `http/1.1`; the
//! auto builder then reads which protocol the client speaks, as on plaintext. Connections are watched
//! by a [`GracefulShutdown`], which lets in-flight requests finish when the node stops
//! accepting; whatever is left at `shutdown_timeout_s` is dropped with the accept loop.
//!
//! # Capacity
//! Every connection holds a file descriptor. The accept loop counts client connections against
//! [`Capacity::max_connections`] (derived from the open-file limit at [`Hub::open`]) and answers
//! one beyond it with a 503 and closes it at once, so a connection is never left waiting in the
//! kernel's backlog while the node cannot take it. Should the process still run out of
//! descriptors (`EMFILE`, `ENFILE`: something other than clients used the reserve), the loop
//! releases a spare descriptor it keeps for that moment, takes the waiting connection, answers
//! it the same way, and takes the spare back; only when there is no spare to release does it
//! pause, briefly, instead of failing the same accept in a busy loop.
//!
//! # Logging
//! What clients do to their own connections (resets, timeouts, malformed requests, HTTP/2
//! floods that hyper answers with GOAWAY) and connections refused at capacity are logged at
//! most once per kind per ten seconds, with the count of those held back (`LogRate`): an
//! abusive client cannot fill the disk through the log. h2's own per-connection warning of a
//! reset flood is the binary's to silence (its default log filter does); the line that counts
//! them is here.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::auth::{self, Auth};
use crate::config::{self, Config, Storage};
use crate::direct;
use crate::event::{Draft, Event};
use crate::hub::Router;
use crate::limits::{Capacity, LogRate, PublishRate};
use crate::log::embedded::{self, EmbeddedLog};
use crate::log::memory::{MemoryLog, Retention};
use crate::log::redis::{self as redis_log, RedisLog};
use crate::log::{self, EventLog};
use crate::shutdown::Lifecycle;
use crate::telemetry::Metrics;

/// Everything one node shares between its endpoints, streams and background tasks.
pub struct Hub {
    /// The validated configuration it was started with.
    pub config: Config,
    /// Open subscriptions and fan-out.
    pub router: Arc<Router>,
    /// Where events are appended and replayed from.
    pub log: Arc<dyn EventLog>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Starting, ready, draining; what streams watch to end themselves.
    pub lifecycle: Lifecycle,
    /// Token verification (or open mode).
    pub auth: Auth,
    /// The per-principal publish rate limit, when configured.
    pub publish_rate: Option<PublishRate>,
    /// TLS settings built from `[tls]` at open, so that a bad certificate fails the start.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// What the open-file limit lets this node hold; `config.limits.max_clients` is its
    /// `max_clients`.
    pub capacity: Capacity,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("router", &self.router).finish_non_exhaustive()
    }
}

impl Hub {
    /// Opens the configured event log and builds a hub on it, with `limits.max_clients` set
    /// to what the process's open-file limit allows (see [`Capacity::derive`]).
    ///
    /// # Errors
    /// [`Error::Log`] when the embedded store cannot be opened (a foreign or corrupted data
    /// directory, a file in use by another process, a permission problem) or, in cluster mode,
    /// Redis cannot be reached; [`Error::Auth`] when the configured public key cannot be read
    /// or used; [`Error::Tls`] when the certificate or key cannot be read or used.
    pub async fn open(mut config: Config) -> Result<Arc<Self>, Error> {
        let open_files = crate::limits::open_file_limit().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the open-file limit; connections are not capped");
            None
        });
        let capacity = Capacity::derive(open_files, config.limits.max_clients);
        config.limits.max_clients = capacity.max_clients;
        let auth = Auth::new(&config.auth)?;
        let tls = match (&config.tls.cert, &config.tls.key) {
            (Some(cert), Some(key)) => Some(Arc::new(tls_config(cert, key)?)),
            _ => None,
        };
        let publish_rate = PublishRate::new(&config.limits);
        let metrics = Arc::new(Metrics::new());
        let router = Arc::new(Router::new(config.limits.stream_queue, metrics.clone()));
        let retention = Retention { max_events: config.retention.max_events, max_age: config.retention.max_age_s };
        let lifecycle = Lifecycle::default();
        let log: Arc<dyn EventLog> = match (&config.cluster.redis_url, config.storage) {
            (Some(url), _) => {
                // Closed while Redis is unreachable, so `/ready` sends traffic elsewhere.
                let gate = lifecycle.gates.add("redis");
                let prefix = &config.cluster.key_prefix;
                Arc::new(RedisLog::open(url.expose(), prefix, router.clone(), retention, gate).await?)
            }
            (None, Storage::Memory) => Arc::new(MemoryLog::new(router.clone(), retention)),
            (None, Storage::Embedded) => {
                let durability = match config.durability {
                    config::Durability::Always => embedded::Durability::Always,
                    config::Durability::Batched => embedded::Durability::Batched { flush: config.flush_ms },
                };
                let settings = embedded::Settings {
                    ring_events: config.memory.ring_events,
                    ring_bytes: config.memory.ring_bytes,
                    cache_bytes: config.memory.store_cache_bytes,
                    ..embedded::Settings::new(retention, durability)
                };
                Arc::new(EmbeddedLog::open(&config.data_dir, router.clone(), settings).await?)
            }
        };
        Ok(Arc::new(Self { config, router, log, metrics, lifecycle, auth, publish_rate, tls, capacity }))
    }

    /// Appends `drafts` as one batch and returns them as events with ids, once durable.
    ///
    /// # Errors
    /// [`log::Error`] when the log refused the batch; nothing of it was stored.
    pub async fn publish(&self, drafts: Vec<Draft>) -> Result<Vec<Arc<Event>>, log::Error> {
        let started = Instant::now();
        let events = self.log.append(drafts).await?;
        self.metrics.events_published.increment(events.len() as u64);
        self.metrics.publish_duration.record(started.elapsed().as_secs_f64());
        Ok(events)
    }
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Serving failed.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
    /// The event log could not be opened.
    #[error("cannot open the event log: {0}")]
    Log(#[from] log::Error),
    /// Authentication could not be set up.
    #[error("{0}")]
    Auth(#[from] auth::Error),
    /// The TLS certificate or key could not be read or used.
    #[error("TLS: {0}")]
    Tls(String),
}

/// A rustls server configuration from PEM files, offering ALPN `h2` then `http/1.1`.
fn tls_config(cert: &std::path::Path, key: &std::path::Path) -> Result<rustls::ServerConfig, Error> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::Tls(format!("cannot read the certificate chain {}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!("{} holds no PEM certificate", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| Error::Tls(format!("cannot read the private key {}: {e}", key.display())))?;
    // The provider is named rather than taken from the process default, which is ambiguous
    // when another dependency enables a second rustls provider.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(format!("the certificate and key cannot be used together: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves Herald on `listener` until `shutdown` resolves, then drains (see
/// [`shutdown`](crate::shutdown)) and returns within `config.shutdown_timeout_s`.
///
/// # Errors
/// [`Error`] when the listener fails.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let hub = Hub::open(config).await?;
    serve(listener, hub, shutdown).await
}

/// [`run`] for a hub built by the caller.
///
/// # Errors
/// [`Error`] when the listener fails.
pub async fn serve(
    listener: TcpListener,
    hub: Arc<Hub>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let addr = listener.local_addr()?;
    let app = crate::http::router(hub.clone());
    let stop_accepting = CancellationToken::new();
    let tls = hub.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let capacity = hub.capacity;
    let mut server = tokio::spawn(accept_loop(
        listener,
        app,
        hub.config.limits.clone(),
        capacity.max_connections,
        tls,
        stop_accepting.clone(),
    ));
    let expiry = tokio::spawn(expire_periodically(hub.clone()));
    if hub.auth.is_open() {
        tracing::warn!(
            "authentication is OFF: anyone who can reach this node may subscribe, publish and list \
             subscriptions; set auth.jwt_secret or auth.jwt_public_key"
        );
    }

    if let Some(asked) = capacity.capped_from {
        tracing::warn!(
            asked,
            max_clients = capacity.max_clients,
            "limits.max_clients is more than the open-file limit lets this node hold; lowered \
             (raise the hard RLIMIT_NOFILE, e.g. LimitNOFILE= or ulimit -Hn, to hold more)"
        );
    }
    match capacity.open_files {
        Some(open_files) => tracing::info!(
            open_files,
            reserve = capacity.reserve,
            max_connections = capacity.max_connections,
            max_clients = capacity.max_clients,
            "capacity from the open-file limit"
        ),
        None => {
            tracing::info!(max_clients = capacity.max_clients, "no open-file limit known; connections are not capped")
        }
    }

    hub.lifecycle.set_ready();
    let storage = match (&hub.config.cluster.redis_url, hub.config.storage) {
        (Some(url), _) => format!("redis://{}", redis_log::redacted(url.expose())),
        (None, Storage::Embedded) => hub.config.data_dir.display().to_string(),
        (None, Storage::Memory) => "memory".to_owned(),
    };
    let scheme = if hub.tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, %storage, %scheme, "herald listening");

    tokio::select! {
        res = &mut server => {
            expiry.abort();
            return res.map_err(|e| Error::Io(std::io::Error::other(e)));
        }
        () = shutdown => {}
    }

    let config = &hub.config;
    let deadline = tokio::time::Instant::now() + config.shutdown_timeout_s;
    tracing::info!(clients = hub.lifecycle.clients(), "draining");
    hub.lifecycle.begin_drain();
    let grace = config.drain_grace_ms.min(config.shutdown_timeout_s);
    let drained = tokio::time::timeout_at(deadline, async {
        tokio::join!(hub.lifecycle.streams_ended(), tokio::time::sleep(grace));
    })
    .await;
    stop_accepting.cancel();
    if drained.is_err() || tokio::time::timeout_at(deadline, &mut server).await.is_err() {
        tracing::warn!(clients = hub.lifecycle.clients(), "shutdown timeout reached; closing what is left");
        server.abort();
    }
    expiry.abort();
    if let Err(e) = hub.log.close().await {
        tracing::error!(error = %e, "closing the event log failed");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Drops events older than the retention age, checking ten times per age, at least each minute;
/// and forgets the publish-rate state of quiet principals.
async fn expire_periodically(hub: Arc<Hub>) {
    let period = (hub.config.retention.max_age_s / 10).clamp(Duration::from_millis(100), Duration::from_secs(60));
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        if let Err(e) = hub.log.expire().await {
            tracing::warn!(error = %e, "retention by age failed");
        }
        if let Some(rate) = &hub.publish_rate {
            rate.forget_idle();
        }
    }
}

/// Accepts connections until `stop` is cancelled, then lets open ones finish; returns when all
/// are gone. Aborting it drops every connection still open (the force phase of the drain).
/// At most `max_connections` are served at once; one more is refused (see the module docs).
async fn accept_loop(
    listener: TcpListener,
    app: axum::Router,
    limits: config::Limits,
    max_connections: usize,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout_ms)
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_send_buf_size(crate::http::events::COALESCE_BYTES)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let open = Arc::new(AtomicUsize::new(0));
    let mut spare = Spare::take();
    let plaintext = tls.is_none();
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e, &listener, &mut spare, plaintext).await;
                    continue;
                }
            },
            // Reap finished connections as we go, so the set holds only open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            () = stop.cancelled() => break,
        };
        spare.restore();
        let Some(slot) = Slot::take(&open, max_connections) else {
            refuse(stream, plaintext);
            if let Some(suppressed) = NOISE.admit(Noise::OverCapacity as usize) {
                tracing::warn!(
                    %remote,
                    max_connections,
                    suppressed,
                    "refused a connection with 503: the node holds all the connections its open-file limit allows"
                );
            }
            continue;
        };
        let conn = connection(&builder, stream, tls.clone(), remote, app.clone(), &limits, &graceful, &stop);
        connections.spawn(async move {
            let _slot = slot;
            conn.await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
    while connections.join_next().await.is_some() {}
}

/// Serves one connection. A connection that sends no complete request head within
/// `limits.header_read_timeout_ms` is dropped: hyper's own HTTP/1.1 header timeout starts only
/// once the protocol is known, and HTTP/2 has none, so this covers a client that stalls before or
/// while saying which. With TLS the handshake runs here, in the connection's own task (a slow
/// handshake never holds up the accept loop), and counts against the same timeout. On plaintext,
/// streaming requests are served by [`direct`](crate::direct) until the first other one, which
/// hands the connection to hyper.
#[allow(clippy::too_many_arguments)]
fn connection(
    builder: &Arc<auto::Builder<TokioExecutor>>,
    stream: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    remote: SocketAddr,
    app: axum::Router,
    limits: &config::Limits,
    graceful: &GracefulShutdown,
    stop: &CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let first_request = Arc::new(AtomicBool::new(false));
    let seen = first_request.clone();
    let direct_app = app.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        seen.store(true, Ordering::Relaxed);
        // What axum's `into_make_service_with_connect_info` would have inserted.
        request.extensions_mut().insert(ConnectInfo(remote));
        app.clone().oneshot(request.map(axum::body::Body::new))
    });
    let builder = builder.clone();
    let watcher = graceful.watcher();
    let head_timeout = limits.header_read_timeout_ms;
    let max_head = limits.max_header_bytes;
    let stop = stop.clone();
    async move {
        let Some(acceptor) = tls else {
            let Some((stream, deadline)) = serve_direct(stream, direct_app, remote, head_timeout, max_head, stop).await
            else {
                return;
            };
            // Boxed: hyper's connection state is large, and a direct stream never needs it.
            let hyper = serve_io(&builder, stream, service, watcher, deadline, &first_request, remote);
            return Box::pin(hyper).await;
        };
        // Boxed, like hyper's connection above, so that a plaintext connection's task is small.
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + head_timeout;
            match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => serve_io(&builder, stream, service, watcher, deadline, &first_request, remote).await,
                Ok(Err(e)) => noise(Noise::Handshake, remote, Some(&e), "TLS handshake failed"),
                Err(_) => {
                    noise(
                        Noise::Timeout,
                        remote,
                        None,
                        "closed a connection that did not finish its TLS handshake in time",
                    );
                }
            }
        })
        .await;
    }
}

/// Serves the streaming requests of a plaintext connection (see [`direct`](crate::direct)) and
/// returns it, with what was read of the next request, once a request for hyper comes; `None`
/// when the connection is over (closed, timed out, a stream ended, or the node is draining).
/// Each request head must be complete within `head_timeout` of the connection's start or of the
/// previous answer; the deadline of the one handed to hyper is returned with it, so that hyper's
/// part of the head does not get a second full timeout.
async fn serve_direct(
    mut stream: TcpStream,
    app: axum::Router,
    remote: SocketAddr,
    head_timeout: Duration,
    max_head: usize,
    stop: CancellationToken,
) -> Option<(direct::Rewind<TcpStream>, tokio::time::Instant)> {
    use direct::{After, Head};
    loop {
        let deadline = tokio::time::Instant::now() + head_timeout;
        // Boxed: this wait is over once the head is in, and a stream should not carry its state.
        let head = Box::pin(async {
            tokio::select! {
                head = tokio::time::timeout_at(deadline, direct::read_head(&mut stream, max_head)) => Some(head),
                () = stop.cancelled() => None,
            }
        })
        .await?;
        match head {
            Err(_) => {
                noise(Noise::Timeout, remote, None, "closed a connection that sent no request head in time");
                return None;
            }
            Ok(Err(e)) => {
                noise(Noise::Ended, remote, Some(&e), "connection ended with an error");
                return None;
            }
            Ok(Ok(None)) => return None,
            Ok(Ok(Some((Head::Stream(request, _), _)))) => {
                match Box::pin(direct::serve_stream(&mut stream, request, app.clone(), remote)).await {
                    Ok(After::KeepAlive) => {}
                    Ok(After::Close) => return None,
                    Err(e) => {
                        noise(Noise::Ended, remote, Some(&e), "stream connection ended with an error");
                        return None;
                    }
                }
            }
            Ok(Ok(Some((_, read)))) => return Some((direct::Rewind::new(read, stream), deadline)),
        }
    }
}

/// Serves HTTP on `io` (plain TCP or TLS), dropping it at `deadline` if no request head came.
async fn serve_io<I, S>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: S,
    watcher: hyper_util::server::graceful::Watcher,
    deadline: tokio::time::Instant,
    first_request: &AtomicBool,
    remote: SocketAddr,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<hyper::Request<Incoming>, Response = axum::response::Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = builder.serve_connection(TokioIo::new(direct::JsonErrors::new(io)), service);
    let conn = watcher.watch(conn.into_owned());
    tokio::pin!(conn);
    tokio::select! {
        result = &mut conn => return connection_ended(result, remote),
        () = tokio::time::sleep_until(deadline) => {}
    }
    if !first_request.load(Ordering::Relaxed) {
        noise(Noise::Timeout, remote, None, "closed a connection that sent no request head in time");
        return;
    }
    connection_ended(conn.await, remote);
}

/// Logs how a connection hyper served ended, when it ended with an error.
fn connection_ended(result: Result<(), Box<dyn std::error::Error + Send + Sync>>, remote: SocketAddr) {
    let Err(e) = result else { return };
    let (kind, message) = match classify(&*e) {
        Noise::Flood => (Noise::Flood, "closed an HTTP/2 connection that flooded the node (GOAWAY ENHANCE_YOUR_CALM)"),
        Noise::Protocol => (Noise::Protocol, "closed a connection that broke the HTTP protocol"),
        Noise::Timeout => (Noise::Timeout, "closed a connection that timed out"),
        other => (other, "connection ended with an error"),
    };
    noise(kind, remote, Some(&e), message);
}

/// What a connection error says about the client: h2 detecting a flood (it answers with GOAWAY
/// `ENHANCE_YOUR_CALM`: the rapid-reset pattern, too many resets or CONTINUATION frames) or
/// another protocol violation; hyper rejecting a malformed HTTP/1 request, or a timeout.
fn classify(e: &(dyn std::error::Error + 'static)) -> Noise {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return match h2.reason() {
                Some(h2::Reason::ENHANCE_YOUR_CALM) if h2.is_library() => Noise::Flood,
                Some(reason) if h2.is_library() && reason != h2::Reason::NO_ERROR => Noise::Protocol,
                _ => Noise::Ended,
            };
        }
        if let Some(hyper) = e.downcast_ref::<hyper::Error>() {
            if hyper.is_timeout() {
                return Noise::Timeout;
            }
            if hyper.is_parse() || hyper.is_parse_too_large() {
                return Noise::Protocol;
            }
        }
        next = e.source();
    }
    Noise::Ended
}

/// The kinds of log lines clients can cause by the thousand, each let through at most once per
/// [`NOISE`] period: floods and refused connections at `warn`, protocol violations at `info`,
/// the ordinary ends (timeouts, resets, failed handshakes) at `debug`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Noise {
    Flood,
    Protocol,
    OverCapacity,
    OutOfDescriptors,
    AcceptFailed,
    Timeout,
    Handshake,
    Ended,
}

impl Noise {
    /// How many kinds there are (`Ended` is the last).
    const KINDS: usize = Self::Ended as usize + 1;
}

/// The log rate of every [`Noise`]: process-wide, like the log it protects.
static NOISE: LogRate<{ Noise::KINDS }> = LogRate::new(Duration::from_secs(10));

/// Logs one line of `kind` about a client connection, unless one was logged too recently; the
/// line says how many were held back since the last.
fn noise(kind: Noise, remote: SocketAddr, error: Option<&dyn std::fmt::Display>, message: &str) {
    let Some(suppressed) = NOISE.admit(kind as usize) else { return };
    let error = error.map(tracing::field::display);
    match kind {
        Noise::Flood => tracing::warn!(%remote, error, suppressed, "{message}"),
        Noise::Protocol => tracing::info!(%remote, error, suppressed, "{message}"),
        _ => tracing::debug!(%remote, error, suppressed, "{message}"),
    }
}

/// One client connection counted against `max_connections`; dropping it gives the place back.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// A place among `max` open connections, if one is free.
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).ok()?;
        Some(Self(open.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a refused connection reads (SPEC §7: 503, JSON, `Retry-After`, `Connection: close`).
static REFUSAL: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let body = serde_json::json!({
        "error": "too_many_connections",
        "detail": "this node holds all the connections its open-file limit allows; retry later or elsewhere",
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 5\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
});

/// Answers a connection the node cannot hold with [`REFUSAL`] and closes it, without waiting
/// for anything: the accept loop calls it, and may be holding its last descriptor for it.
/// Over TLS the connection is only closed (a 503 in plaintext would be garbage to the client).
fn refuse(stream: TcpStream, plaintext: bool) {
    use std::io::{Read, Write};
    if !plaintext {
        return;
    }
    let Ok(stream) = stream.into_std() else { return };
    // Whatever of the request has arrived is read first: closing a socket with unread bytes
    // sends a reset, which may reach the client before it reads the answer. One attempt each,
    // non-blocking; a fresh socket's send buffer takes the answer whole, and if not, the close
    // alone tells the client.
    let _ = (&stream).read(&mut [0; 4096]);
    let _ = (&stream).write(&REFUSAL);
}

/// A file descriptor held back for when the process has none left (see the module docs).
struct Spare {
    /// `/dev/null`, opened: a descriptor that holds nothing (libuv keeps the same for this).
    file: Option<std::fs::File>,
    /// Whether `/dev/null` could be opened at all (it may be missing in a bare container); if
    /// not, nothing is held back, and running out of descriptors only pauses the accept loop.
    available: bool,
}

impl Spare {
    fn take() -> Self {
        let file = Self::open();
        Self { available: file.is_some(), file }
    }

    fn open() -> Option<std::fs::File> {
        std::fs::File::open("/dev/null").ok()
    }

    /// Takes the descriptor back if it was released (cheap when it was not).
    fn restore(&mut self) {
        if self.available && self.file.is_none() {
            self.file = Self::open();
        }
    }

    /// Closes the descriptor, so one is free; `false` when there was none to close.
    fn release(&mut self) -> bool {
        self.file.take().is_some()
    }
}

/// Whether an accept failed for want of file descriptors (the process's or the system's).
fn out_of_descriptors(e: &std::io::Error) -> bool {
    // EMFILE and ENFILE have these numbers on Linux, macOS and the BSDs.
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    cfg!(unix) && matches!(e.raw_os_error(), Some(EMFILE | ENFILE))
}

/// After a failed accept: connection-level errors are the client's. Out of descriptors, the
/// spare is released to take the connection waiting behind the error and refuse it (then taken
/// back); without a spare, and after any other error, the loop pauses before trying again
/// rather than failing the same accept in a busy loop. Logged at a bounded rate.
async fn accept_failed(e: std::io::Error, listener: &TcpListener, spare: &mut Spare, plaintext: bool) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        return;
    }
    if !out_of_descriptors(&e) {
        if let Some(suppressed) = NOISE.admit(Noise::AcceptFailed as usize) {
            tracing::error!(error = %e, suppressed, "accept failed; retrying in 1 s");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        return;
    }
    // Linux fails an accept with EMFILE before it looks at the backlog, so the error does not
    // say that a connection is waiting: one polling of the accept, with a descriptor free,
    // tells. (Unconstrained: a spent cooperative budget would read as "none waiting".)
    let accepted = if spare.release() {
        let accepted = futures_util::FutureExt::now_or_never(tokio::task::unconstrained(listener.accept()));
        // Refused (and closed) before the spare is taken back: it needs the descriptor.
        accepted.map(|a| {
            a.map(|(stream, remote)| {
                refuse(stream, plaintext);
                remote
            })
        })
    } else {
        Some(Err(e))
    };
    spare.restore();
    match accepted {
        Some(Ok(remote)) => {
            if let Some(suppressed) = NOISE.admit(Noise::OutOfDescriptors as usize) {
                tracing::warn!(
                    %remote,
                    suppressed,
                    "out of file descriptors: refused a connection with 503 (something other than \
                     clients holds more descriptors than the reserve)"
                );
            }
        }
        // None waiting: the accept found the backlog empty, and waits for the next connection.
        None => {}
        // No descriptor could be freed (or another task took it at once): the accept would
        // fail again straight away, so wait a little for connections to close.
        Some(Err(e)) => {
            if let Some(suppressed) = NOISE.admit(Noise::OutOfDescriptors as usize) {
                tracing::warn!(error = %e, suppressed, "out of file descriptors and none to spare; pausing accepts");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
    use std::process::{Command, Stdio};

    use super::*;

    /// Set (to anything) in the child process of
    /// [`out_of_descriptors_connections_are_refused_not_left_waiting`].
    const CHILD: &str = "ACCEPT_LOOP_TEST_CHILD";

    /// In a child process with an open-file limit of 64: the accept loop with no connection cap,
    /// so that only running out of descriptors stops it, serving `GET /health`.
    #[tokio::test]
    #[ignore = "the child process of out_of_descriptors_connections_are_refused_not_left_waiting"]
    async fn accept_loop_with_few_descriptors() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("listening on {}", listener.local_addr().unwrap());
        let app = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
        // Idle kept-alive connections are the flood: they must not time out while it runs.
        let limits = config::Limits { header_read_timeout_ms: Duration::from_secs(600), ..config::Limits::default() };
        accept_loop(listener, app, limits, usize::MAX, None, CancellationToken::new()).await;
    }

    /// What one connection got: `Some(status)`, or `None` when it was closed unanswered.
    fn health(addr: SocketAddr, socket: &mut Option<std::net::TcpStream>) -> Option<u16> {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        if s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").is_err() {
            return None;
        }
        let mut buf = [0u8; 1024];
        let n = match s.read(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("a connection went unanswered for 5 s")
            }
            Err(_) => 0,
        };
        let status = std::str::from_utf8(&buf[..n]).ok()?.get(9..12)?.parse().ok();
        *socket = Some(s);
        status
    }

    /// The accept loop at `EMFILE` (run in a child process whose open-file limit is 64): every
    /// connection past the limit is answered 503 or closed at once, none waits in the backlog,
    /// and once some close the loop serves again.
    #[test]
    #[cfg(target_os = "linux")]
    fn out_of_descriptors_connections_are_refused_not_left_waiting() {
        let exe = std::env::current_exe().unwrap();
        let mut child = Kill(
            Command::new("sh")
                .arg("-c")
                .arg(r#"ulimit -n 64 && exec "$0" "$@""#)
                .arg(exe)
                .args(["--exact", "server::tests::accept_loop_with_few_descriptors", "--ignored", "--nocapture"])
                .env(CHILD, "1")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
        let addr: SocketAddr = loop {
            let line = lines.next().expect("the child listens").unwrap();
            if let Some(addr) = line.strip_prefix("listening on ") {
                break addr.parse().unwrap();
            }
        };
        let (mut held, mut refused, mut closed) = (Vec::new(), 0, 0);
        for _ in 0..120 {
            let mut socket = None;
            match health(addr, &mut socket) {
                Some(200) => held.extend(socket),
                Some(503) => refused += 1,
                None => closed += 1,
                Some(other) => panic!("{other}"),
            }
        }
        assert!(held.len() < 64, "{} held under a limit of 64", held.len());
        assert!(refused > 0, "refused {refused}, closed {closed}: out of descriptors, a connection is told 503");
        held.truncate(held.len() - 10);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut socket = None;
            if health(addr, &mut socket) == Some(200) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "not served again after connections closed");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A child process, killed when the test ends (passed or not).
    struct Kill(std::process::Child);

    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn connection_errors_are_told_apart() {
        // A reason alone is an error of h2's user, not one h2 detected in what the client sent,
        // so it is no flood; what h2 detects is tested end to end (herald-cli tests/edges.rs).
        let flood = h2::Error::from(h2::Reason::ENHANCE_YOUR_CALM);
        assert_eq!(classify(&flood), Noise::Ended);
        let io = std::io::Error::new(ErrorKind::ConnectionReset, "reset");
        assert_eq!(classify(&io), Noise::Ended);
        assert!(out_of_descriptors(&std::io::Error::from_raw_os_error(24)));
        assert!(out_of_descriptors(&std::io::Error::from_raw_os_error(23)));
        assert!(!out_of_descriptors(&std::io::Error::from_raw_os_error(11)));
    }

    #[test]
    fn slots_are_given_back_on_drop() {
        let open = Arc::new(AtomicUsize::new(0));
        let a = Slot::take(&open, 2).unwrap();
        let b = Slot::take(&open, 2).unwrap();
        assert!(Slot::take(&open, 2).is_none());
        drop(a);
        let c = Slot::take(&open, 2).unwrap();
        drop((b, c));
        assert_eq!(open.load(Ordering::Acquire), 0);
    }

    #[test]
    fn the_refusal_is_a_complete_json_503() {
        let text = String::from_utf8(REFUSAL.clone()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 503 ")
                && head.contains("\r\nretry-after: 5")
                && head.contains("\r\nconnection: close")
        );
        assert!(head.contains(&format!("\r\ncontent-length: {}", body.len())), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"], "too_many_connections");
    }
}
