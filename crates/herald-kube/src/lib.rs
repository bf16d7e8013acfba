//! Herald's Kubernetes and Argo CD sources (SPEC §9): watch any resource into keyed events.
//!
//! Each `[[sources.kubernetes]]` of the configuration ([`herald::sources::KubernetesSource`])
//! becomes a task that lists and watches its resource through kube-rs and mirrors every object
//! into a Herald hub as keyed state, key `namespace/name`, with event types
//! `<kind>.added|updated|deleted` (deletions are tombstones) and no event for an unchanged
//! object. The `argocd` preset adds the deployment board's projection of Argo CD
//! `Application`s and keeps the full objects for the Argo CD-compatible stream API that the
//! `herald` crate serves. `herald serve --demo` runs a simulated Argo CD through the same path.
//!
//! # Layout
//! - [`mirror`]: objects → keyed events: change detection, relist diffs against Herald's state.
//! - [`watch`]: kube-rs list+watch (`DynamicObject`, any group/version/kind) into a mirror.
//! - [`argocd`]: the `argocd` preset's projection and outputs.
//! - [`demo`]: the `--demo` simulator.
//! - [`Running`] (here): the started sources, and their shutdown.
//!
//! # Examples
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let config = herald::Config::default();
//! let hub = herald::Hub::open(config.clone()).await?;
//! // In-cluster configuration, or KUBECONFIG / ~/.kube/config.
//! let sources = herald_kube::Running::start(&hub, &config.sources.kubernetes).await?;
//! let listener = tokio::net::TcpListener::bind(config.listen).await?;
//! herald::serve(listener, hub, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! sources.shutdown(std::time::Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```
//!
//! # Closing
//! [`Running::shutdown`] cancels every source and gives them a deadline to finish the publish
//! in flight; what is still running then is aborted. Sources also stop on their own once the
//! hub's log is closed.

pub mod argocd;
pub mod demo;
pub mod mirror;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use herald::sources::KubernetesSource;
use herald::Hub;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Why sources could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A source's configuration does not validate.
    #[error("invalid source: {0}")]
    Config(String),
    /// No Kubernetes client could be built: neither in-cluster configuration nor a kubeconfig
    /// (`KUBECONFIG`, `~/.kube/config`) was usable.
    #[error("cannot configure a Kubernetes client (in-cluster or KUBECONFIG): {0}")]
    Client(#[from] kube::Error),
}

/// The sources running for one hub.
#[derive(Debug)]
pub struct Running {
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Default for Running {
    fn default() -> Self {
        Self { stop: CancellationToken::new(), tasks: JoinSet::new() }
    }
}

impl Running {
    /// Starts `sources` with a client from the in-cluster configuration or `KUBECONFIG`; with
    /// no sources, needs no client at all.
    ///
    /// # Errors
    /// [`Error`] when no client can be configured or a source does not validate.
    pub async fn start(hub: &Arc<Hub>, sources: &[KubernetesSource]) -> Result<Self, Error> {
        let mut running = Self::default();
        if sources.is_empty() {
            return Ok(running);
        }
        let client = kube::Client::try_default().await?;
        for source in sources {
            running.watch(hub, client.clone(), source)?;
        }
        Ok(running)
    }

    /// Starts one source with `client`, adding its readiness gate to the hub.
    ///
    /// # Errors
    /// [`Error::Config`] when the source does not validate.
    pub fn watch(&mut self, hub: &Arc<Hub>, client: kube::Client, source: &KubernetesSource) -> Result<(), Error> {
        let task = watch::task(hub.clone(), client, source, self.stop.child_token())?;
        self.tasks.spawn(task);
        Ok(())
    }

    /// Starts the `--demo` simulator.
    ///
    /// # Errors
    /// [`Error::Config`] when a configured source's topics overlap the simulator's (an `argocd`
    /// preset without a namespace does: its relists would remove the simulated applications).
    pub fn demo(&mut self, hub: &Arc<Hub>, options: demo::Options) -> Result<(), Error> {
        let demo = demo::scopes()?;
        for source in &hub.config.sources.kubernetes {
            let overlap =
                source.scopes().map_err(Error::Config)?.into_iter().find(|s| demo.iter().any(|d| d.intersects(s)));
            if let Some(scope) = overlap {
                return Err(Error::Config(format!(
                    "--demo publishes to argocd/*/demo-*/...; the source {} ({scope}) overlaps it and would remove \
                     the simulated applications: give that source a namespace, or run the demo on its own",
                    source.label()
                )));
            }
        }
        let task = demo::task(hub.clone(), options, self.stop.child_token())?;
        self.tasks.spawn(task);
        Ok(())
    }

    /// Whether nothing is running.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Asks every source to stop, waits up to `deadline` for them, then aborts the rest.
    pub async fn shutdown(mut self, deadline: Duration) {
        self.stop.cancel();
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(deadline, all).await.is_err() {
            tracing::warn!("sources did not stop in time; aborting them");
            self.tasks.abort_all();
        }
    }
}
