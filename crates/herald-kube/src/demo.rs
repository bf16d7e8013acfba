//! `herald serve --demo`: a simulated Argo CD, for trying the deployment board and the Argo CD
//! stream API without a cluster.
//!
//! The simulator keeps a handful of `Application` objects, shaped like the ones Argo CD's
//! controller writes, in three namespaces and projects (`demo-shop`, `demo-payments`,
//! `demo-platform`), and every [`Options::period`] moves one of them a step through a
//! deployment: `Synced`/`Healthy` → a new commit makes it `OutOfSync` → a sync operation
//! `Running` with health `Progressing` → `Succeeded` (`Synced`/`Healthy`), or now and then
//! `Failed` (`OutOfSync`/`Degraded`, retried on a later step). Between steps it rewrites
//! `status.reconciledAt` of another application, as the real controller does, which must (and
//! does) publish nothing.
//!
//! The objects go through the real `argocd` preset: the same [`Mirror`], projection and
//! topics (`argocd/applications/<ns>/<name>`, `argocd/objects/<ns>/<name>`) as a watched
//! cluster. Everything it publishes is labelled: the applications carry the label
//! `herald.dev/demo: "true"`, so the board's data has `"demo": true`, and the log says
//! `demo mode` when it starts.
//!
//! # Invariants
//! The simulator owns only the topics of its own namespaces, so it can run beside a real
//! `argocd` source without tombstoning that source's applications.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald::sources::{KubernetesSource, Template, ARGOCD_APPLICATIONS, ARGOCD_OBJECTS};
use herald::Hub;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::argocd::DEMO_LABEL;
use crate::mirror::{Change, Mirror, Output, Shape};
use crate::Error;

/// The simulated applications: (namespace and project, name, repository path).
const APPS: &[(&str, &str, &str)] = &[
    ("demo-shop", "storefront", "shop/storefront"),
    ("demo-shop", "cart", "shop/cart"),
    ("demo-shop", "catalog", "shop/catalog"),
    ("demo-payments", "gateway", "payments/gateway"),
    ("demo-payments", "ledger", "payments/ledger"),
    ("demo-platform", "ingress-nginx", "platform/ingress-nginx"),
    ("demo-platform", "cert-manager", "platform/cert-manager"),
];

/// How the simulator runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Time between two steps.
    pub period: Duration,
    /// Seed of the pseudo-random choices (the same seed plays the same story).
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
        Self { period: Duration::from_secs(3), seed }
    }
}

/// Where an application is in its deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Synced and healthy.
    Idle,
    /// A new commit is waiting.
    OutOfSync,
    /// A sync operation is running.
    Syncing,
    /// The last sync failed; the next step retries it.
    Failed,
}

struct App {
    object: Value,
    stage: Stage,
    /// Git history of the app: deployed revisions, for `status.history`.
    history: Vec<Value>,
}

/// A small xorshift generator: the demo needs variety, not cryptography.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn sha(&mut self) -> String {
        format!("{:016x}{:016x}{:08x}", self.next(), self.next(), self.next() as u32)
    }
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// The simulator. See the module docs.
struct Simulator {
    apps: Vec<App>,
    rng: Rng,
    /// The cluster's resource version counter.
    version: u64,
}

impl Simulator {
    fn new(seed: u64) -> Self {
        let mut rng = Rng(seed | 1);
        let mut sim = Self { apps: Vec::new(), rng: Rng(0), version: 1000 };
        for (i, (namespace, name, path)) in APPS.iter().enumerate() {
            let revision = rng.sha();
            let deployed = json!({
                "id": 0, "revision": revision, "deployStartedAt": now(), "deployedAt": now(),
                "source": {"repoURL": "https://git.example.com/demo/deployments.git", "path": path, "targetRevision": "HEAD"},
            });
            let object = json!({
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Application",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "uid": format!("00000000-0000-4000-8000-{:012x}", i + 1),
                    "resourceVersion": "0",
                    "generation": 1,
                    "creationTimestamp": now(),
                    "labels": {DEMO_LABEL: "true", "team": namespace.trim_start_matches("demo-")},
                    "finalizers": ["resources-finalizer.argocd.argoproj.io"],
                },
                "spec": {
                    "project": namespace,
                    "source": {"repoURL": "https://git.example.com/demo/deployments.git", "path": path, "targetRevision": "HEAD"},
                    "destination": {"server": "https://kubernetes.default.svc", "namespace": name},
                    "syncPolicy": {"automated": {"prune": true, "selfHeal": true}, "syncOptions": ["CreateNamespace=true"]},
                },
                "status": {
                    "sync": {"status": "Synced", "revision": revision, "comparedTo": {
                        "source": {"repoURL": "https://git.example.com/demo/deployments.git", "path": path, "targetRevision": "HEAD"},
                        "destination": {"server": "https://kubernetes.default.svc", "namespace": name}}},
                    "health": {"status": "Healthy"},
                    "history": [deployed.clone()],
                    "operationState": {
                        "operation": {"sync": {"revision": revision}, "initiatedBy": {"automated": true}, "retry": {"limit": 5}},
                        "phase": "Succeeded",
                        "message": "successfully synced (all tasks run)",
                        "syncResult": {"revision": revision, "source": {"repoURL": "https://git.example.com/demo/deployments.git", "path": path}},
                        "startedAt": now(),
                        "finishedAt": now(),
                    },
                    "reconciledAt": now(),
                    "sourceType": "Kustomize",
                    "summary": {"images": [format!("registry.example.com/demo/{name}:1.0.0")]},
                },
            });
            sim.apps.push(App { object, stage: Stage::Idle, history: vec![deployed] });
        }
        sim.rng = rng;
        for i in 0..sim.apps.len() {
            sim.bump(i);
        }
        sim
    }

    /// A new resource version for app `i`, as the API server gives on every write.
    fn bump(&mut self, i: usize) {
        self.version += 1;
        let meta = &mut self.apps[i].object["metadata"];
        meta["resourceVersion"] = json!(self.version.to_string());
        let generation = meta["generation"].as_u64().unwrap_or(1);
        meta["generation"] = json!(generation + 1);
    }

    /// Moves app `i` one step; returns it.
    fn step(&mut self, i: usize) -> Value {
        let fail = self.rng.below(5) == 0;
        let sha = self.rng.sha();
        let app = &mut self.apps[i];
        let name = app.object["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let status = &mut app.object["status"];
        match app.stage {
            Stage::Idle => {
                status["sync"]["status"] = json!("OutOfSync");
                status["sync"]["revision"] = json!(sha);
                app.stage = Stage::OutOfSync;
            }
            Stage::OutOfSync | Stage::Failed => {
                let revision = status["sync"]["revision"].clone();
                let op = &mut status["operationState"];
                op["operation"]["sync"]["revision"] = revision.clone();
                op["phase"] = json!("Running");
                op["message"] = json!(format!("waiting for healthy state of apps/Deployment/{name}"));
                op["syncResult"]["revision"] = revision;
                op["startedAt"] = json!(now());
                if let Some(op) = op.as_object_mut() {
                    op.remove("finishedAt");
                }
                status["health"] = json!({"status": "Progressing"});
                app.stage = Stage::Syncing;
            }
            Stage::Syncing if fail => {
                let op = &mut status["operationState"];
                op["phase"] = json!("Failed");
                op["message"] = json!(format!(
                    "one or more objects failed to apply, reason: Deployment.apps \"{name}\" is invalid: \
                     spec.template.spec.containers[0].image: Required value"
                ));
                op["finishedAt"] = json!(now());
                status["sync"]["status"] = json!("OutOfSync");
                status["health"] = json!({"status": "Degraded", "message": "Deployment has not progressed"});
                app.stage = Stage::Failed;
            }
            Stage::Syncing => {
                let revision = status["sync"]["revision"].clone();
                let op = &mut status["operationState"];
                op["phase"] = json!("Succeeded");
                op["message"] = json!("successfully synced (all tasks run)");
                op["finishedAt"] = json!(now());
                status["sync"]["status"] = json!("Synced");
                status["health"] = json!({"status": "Healthy"});
                let mut entry = app.history.last().cloned().unwrap_or_else(|| json!({}));
                entry["id"] = json!(app.history.len());
                entry["revision"] = revision;
                entry["deployStartedAt"] = status["operationState"]["startedAt"].clone();
                entry["deployedAt"] = json!(now());
                app.history.push(entry);
                // Argo CD keeps `revisionHistoryLimit` (10) entries.
                let keep = app.history.len().saturating_sub(10);
                status["history"] = json!(app.history[keep..]);
                app.stage = Stage::Idle;
            }
        }
        self.apps[i].object["status"]["reconciledAt"] = json!(now());
        self.bump(i);
        self.apps[i].object.clone()
    }

    /// A reconciliation that changes nothing but `reconciledAt` (and the resource version).
    fn reconcile(&mut self, i: usize) -> Value {
        self.apps[i].object["status"]["reconciledAt"] = json!(now());
        self.bump(i);
        self.apps[i].object.clone()
    }
}

/// The patterns of every topic the simulator publishes to (a source whose topics overlap them
/// cannot run beside it: its relists would remove the simulated applications).
///
/// # Errors
/// [`Error::Config`] only on a bug in the built-in preset.
pub fn scopes() -> Result<Vec<herald::topic::Pattern>, Error> {
    Ok(outputs()?.iter().flat_map(|o| o.scopes().to_vec()).collect())
}

/// The demo's outputs: the preset's two, each owning only the demo's namespaces.
fn outputs() -> Result<Vec<Output>, Error> {
    let mut namespaces: Vec<&str> = APPS.iter().map(|(ns, _, _)| *ns).collect();
    namespaces.dedup();
    let resource = KubernetesSource::argocd(None).resource().map_err(Error::Config)?;
    [(ARGOCD_APPLICATIONS, Shape::ArgoSummary), (ARGOCD_OBJECTS, Shape::ArgoObject)]
        .into_iter()
        .map(|(template, shape)| {
            let template = Template::parse(template).map_err(Error::Config)?;
            let scopes = namespaces
                .iter()
                .map(|ns| template.scope(&resource, Some(ns)).map_err(Error::Config))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Output::new(template, shape, scopes))
        })
        .collect()
}

/// Runs the simulator into `hub` until `stop` is cancelled.
///
/// # Errors
/// [`Error::Config`] if the built-in preset does not validate (a bug).
pub fn task(
    hub: Arc<Hub>,
    options: Options,
    stop: CancellationToken,
) -> Result<impl std::future::Future<Output = ()> + Send + 'static, Error> {
    let resource = KubernetesSource::argocd(None).resource().map_err(Error::Config)?;
    let mut mirror = Mirror::new(hub, resource, outputs()?, None, "demo".to_owned());
    // Said now, not from the task: the warning must come before the node says it listens.
    tracing::warn!(
        apps = APPS.len(),
        "demo mode: publishing a SIMULATED Argo CD (namespaces demo-shop, demo-payments, demo-platform); \
         nothing here comes from a cluster"
    );
    Ok(async move {
        let mut sim = Simulator::new(options.seed);
        let mut list = vec![Change::Relist];
        list.extend(sim.apps.iter().map(|a| Change::Listed(a.object.clone())));
        list.push(Change::ListDone);
        for change in list {
            if mirror.apply(change).await.is_err() {
                return;
            }
        }
        let mut tick = tokio::time::interval(options.period);
        tick.tick().await;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let moved = sim.rng.below(sim.apps.len());
            let object = sim.step(moved);
            if mirror.apply(Change::Applied(object)).await.is_err() {
                break;
            }
            let other = (moved + 1 + sim.rng.below(sim.apps.len() - 1)) % sim.apps.len();
            let noise = sim.reconcile(other);
            if mirror.apply(Change::Applied(noise)).await.is_err() {
                break;
            }
        }
        tracing::info!("demo stopped");
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::argocd::project;

    #[test]
    fn the_story_moves_through_every_stage() {
        let mut sim = Simulator::new(7);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let object = sim.step(0);
            let p = project(&object);
            seen.insert((p["syncStatus"].as_str().unwrap().to_owned(), p["healthStatus"].as_str().unwrap().to_owned()));
            assert_eq!(p["demo"], true);
            assert_eq!(p["project"], "demo-shop");
        }
        for want in
            [("Synced", "Healthy"), ("OutOfSync", "Healthy"), ("OutOfSync", "Progressing"), ("OutOfSync", "Degraded")]
        {
            assert!(seen.contains(&(want.0.to_owned(), want.1.to_owned())), "{want:?} in {seen:?}");
        }
        let before = project(&sim.apps[1].object);
        let after = project(&sim.reconcile(1));
        assert_eq!(before, after, "a reconciliation alone changes nothing on the board");
        assert!(outputs().is_ok());
    }
}
