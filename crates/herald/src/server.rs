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

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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
use crate::limits::PublishRate;
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
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("router", &self.router).finish_non_exhaustive()
    }
}

impl Hub {
    /// Opens the configured event log and builds a hub on it.
    ///
    /// # Errors
    /// [`Error::Log`] when the embedded store cannot be opened (a foreign or corrupted data
    /// directory, a file in use by another process, a permission problem) or, in cluster mode,
    /// Redis cannot be reached; [`Error::Auth`] when the configured public key cannot be read
    /// or used; [`Error::Tls`] when the certificate or key cannot be read or used.
    pub async fn open(config: Config) -> Result<Arc<Self>, Error> {
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
        Ok(Arc::new(Self { config, router, log, metrics, lifecycle, auth, publish_rate, tls }))
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
    let mut server = tokio::spawn(accept_loop(listener, app, hub.config.limits.clone(), tls, stop_accepting.clone()));
    let expiry = tokio::spawn(expire_periodically(hub.clone()));
    if hub.auth.is_open() {
        tracing::warn!(
            "authentication is OFF: anyone who can reach this node may subscribe, publish and list \
             subscriptions; set auth.jwt_secret or auth.jwt_public_key"
        );
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
async fn accept_loop(
    listener: TcpListener,
    app: axum::Router,
    limits: config::Limits,
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
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            // Reap finished connections as we go, so the set holds only open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            () = stop.cancelled() => break,
        };
        let conn = connection(&builder, stream, tls.clone(), remote, app.clone(), &limits, &graceful, &stop);
        connections.spawn(conn);
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
                Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%remote, "closed a connection that did not finish its TLS handshake in time"),
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
                tracing::debug!(%remote, "closed a connection that sent no request head in time");
                return None;
            }
            Ok(Err(e)) => {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
                return None;
            }
            Ok(Ok(None)) => return None,
            Ok(Ok(Some((Head::Stream(request, _), _)))) => {
                match Box::pin(direct::serve_stream(&mut stream, request, app.clone(), remote)).await {
                    Ok(After::KeepAlive) => {}
                    Ok(After::Close) => return None,
                    Err(e) => {
                        tracing::debug!(%remote, error = %e, "stream connection ended with an error");
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
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let conn = watcher.watch(conn.into_owned());
    tokio::pin!(conn);
    tokio::select! {
        result = &mut conn => return log_connection_end(result),
        () = tokio::time::sleep_until(deadline) => {}
    }
    if !first_request.load(Ordering::Relaxed) {
        tracing::debug!(%remote, "closed a connection that sent no request head in time");
        return;
    }
    log_connection_end(conn.await);
}

fn log_connection_end(result: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(e) = result {
        // Resets, timeouts and malformed requests from clients: nothing for the operator.
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// After a failed accept: connection-level errors are the client's; others (out of file
/// descriptors) are worth a log line and a pause before trying again.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
