//! The node's sources: the configured `[[sources.kubernetes]]` and `--demo`, started once the
//! hub is open and stopped as soon as the node begins to drain (so nothing is published into a
//! closing log). They live in the `herald-kube` crate, behind the `kubernetes` feature (on by
//! default); a binary built without it refuses a configuration that asks for them.

use std::sync::Arc;
use std::time::Duration;

use herald::Hub;

/// The running sources (none at all is fine).
#[derive(Debug)]
pub(crate) struct Sources {
    #[cfg(feature = "kubernetes")]
    running: herald_kube::Running,
}

impl Sources {
    /// Starts the configured sources, and the simulated Argo CD when `demo` is set.
    #[cfg(feature = "kubernetes")]
    pub(crate) async fn start(hub: &Arc<Hub>, demo: bool) -> anyhow::Result<Self> {
        let mut running = herald_kube::Running::start(hub, &hub.config.sources.kubernetes).await?;
        if demo {
            running.demo(hub, herald_kube::demo::Options::default())?;
        }
        Ok(Self { running })
    }

    /// Without the `kubernetes` feature there is nothing to start, and asking for it is an error.
    #[cfg(not(feature = "kubernetes"))]
    pub(crate) async fn start(hub: &Arc<Hub>, demo: bool) -> anyhow::Result<Self> {
        if demo || !hub.config.sources.kubernetes.is_empty() {
            anyhow::bail!(
                "this herald was built without the `kubernetes` feature: no [[sources.kubernetes]], no --demo"
            );
        }
        Ok(Self {})
    }

    /// Stops every source within `deadline`.
    pub(crate) async fn shutdown(self, deadline: Duration) {
        #[cfg(feature = "kubernetes")]
        self.running.shutdown(deadline).await;
        #[cfg(not(feature = "kubernetes"))]
        let _ = deadline;
    }
}
