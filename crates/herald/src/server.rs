//! The hub as a whole, and [`run`], which serves it on a listener until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, Storage};
use crate::event::{Draft, Event};
use crate::hub::Router;
use crate::log::embedded::{self, EmbeddedLog};
use crate::log::memory::{MemoryLog, Retention};
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
    /// directory, a file in use by another process, a permission problem).
    pub async fn open(config: Config) -> Result<Arc<Self>, Error> {
        let metrics = Arc::new(Metrics::new());
        let router = Arc::new(Router::new(config.limits.stream_queue, metrics.clone()));
        let retention = Retention { max_events: config.retention.max_events, max_age: config.retention.max_age_s };
        let log: Arc<dyn EventLog> = match config.storage {
            Storage::Memory => Arc::new(MemoryLog::new(router.clone(), retention)),
            Storage::Embedded => {
                let durability = match config.durability {
                    config::Durability::Always => embedded::Durability::Always,
                    config::Durability::Batched => embedded::Durability::Batched { flush: config.flush_ms },
                };
                Arc::new(EmbeddedLog::open(&config.data_dir, router.clone(), retention, durability).await?)
            }
        };
        Ok(Arc::new(Self { config, router, log, metrics, lifecycle: Lifecycle::default() }))
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
    let server = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(stop_accepting.clone().cancelled_owned());
    let mut server = tokio::spawn(async move { server.await });
    let expiry = tokio::spawn(expire_periodically(hub.clone()));

    hub.lifecycle.set_ready();
    let storage = match hub.config.storage {
        Storage::Embedded => hub.config.data_dir.display().to_string(),
        Storage::Memory => "memory".to_owned(),
    };
    tracing::info!(%addr, %storage, "herald listening");

    tokio::select! {
        res = &mut server => {
            expiry.abort();
            return res.map_err(|e| Error::Io(std::io::Error::other(e)))?.map_err(Error::Io);
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

/// Drops events older than the retention age, checking ten times per age, at least each minute.
async fn expire_periodically(hub: Arc<Hub>) {
    let period = (hub.config.retention.max_age_s / 10).clamp(Duration::from_millis(100), Duration::from_secs(60));
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        if let Err(e) = hub.log.expire().await {
            tracing::warn!(error = %e, "retention by age failed");
        }
    }
}
