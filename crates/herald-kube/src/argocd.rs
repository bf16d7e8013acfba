//! The `argocd` preset: what Herald makes of an Argo CD `Application` (SPEC §9).
//!
//! The preset watches `argoproj.io/v1alpha1` `Application` as any custom resource (no
//! generated Argo CD types: the object stays JSON) and publishes two keyed outputs per
//! application, in one batch:
//!
//! - `argocd/applications/<namespace>/<name>`: the deployment board's compact [`project`]ion,
//!   published only when one of its fields changes (Argo CD's controller rewrites
//!   `status.reconciledAt` on every reconciliation, every few minutes per application; that
//!   alone publishes nothing);
//! - `argocd/objects/<namespace>/<name>`: the whole object (`metadata.managedFields` left out),
//!   which `GET /api/v1/stream/applications` serves; published when anything but
//!   `metadata.resourceVersion`, `metadata.generation`, `status.reconciledAt` or
//!   `status.observedAt` changes (labels, spec, conditions, resources…).
//!
//! # The projection
//! | field | from |
//! |---|---|
//! | `name`, `namespace` | `metadata` |
//! | `project` | `spec.project` (`default` when empty, as Argo CD reads it) |
//! | `syncStatus` | `status.sync.status` (`Unknown` before the first comparison) |
//! | `healthStatus` | `status.health.status` (`Unknown` before the first assessment) |
//! | `revision` | `status.sync.revision`, else the first of `status.sync.revisions` (multi-source), else `status.operationState.syncResult.revision`; `null` when none |
//! | `operationPhase` | `status.operationState.phase` (`Running`, `Succeeded`, `Failed`, `Error`, `Terminating`); `null` before any operation |
//! | `message` | `status.operationState.message`, else the first `status.conditions[].message`, else `status.health.message`; `null` when none |
//! | `lastSync` | `status.operationState.finishedAt`, else the `deployedAt` of the last `status.history` entry; `null` when neither |
//! | `demo` | `true`, only on applications labelled `herald.dev/demo: "true"` (the `--demo` simulator's) |
//!
//! `lastSync` is the end of the last sync operation, never `status.reconciledAt`: reconciling
//! (comparing Git with the cluster) happens every few minutes whether or not anything is
//! deployed, so it would make every application look freshly synced and publish an event each
//! time.

use herald::sources::{KubernetesSource, Template, ARGOCD_APPLICATIONS, ARGOCD_OBJECTS};
use serde_json::{json, Map, Value};

use crate::mirror::{Output, Shape};

/// The label that marks the `--demo` simulator's applications.
pub const DEMO_LABEL: &str = "herald.dev/demo";

/// The board's projection of an `Application` (see the module docs).
pub fn project(app: &Value) -> Value {
    let meta = &app["metadata"];
    let status = &app["status"];
    let op = &status["operationState"];
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    let project = text(&app["spec"]["project"]).unwrap_or_else(|| "default".to_owned());
    let revision = text(&status["sync"]["revision"])
        .or_else(|| status["sync"]["revisions"].as_array().and_then(|r| r.first()).and_then(text))
        .or_else(|| text(&op["syncResult"]["revision"]));
    let message = text(&op["message"])
        .or_else(|| status["conditions"].as_array().and_then(|c| c.iter().find_map(|c| text(&c["message"]))))
        .or_else(|| text(&status["health"]["message"]));
    let last_sync = text(&op["finishedAt"])
        .or_else(|| status["history"].as_array().and_then(|h| h.last()).and_then(|h| text(&h["deployedAt"])));
    let mut out = Map::new();
    out.insert("name".into(), json!(text(&meta["name"])));
    out.insert("namespace".into(), json!(text(&meta["namespace"])));
    out.insert("project".into(), json!(project));
    out.insert("syncStatus".into(), json!(text(&status["sync"]["status"]).unwrap_or_else(|| "Unknown".into())));
    out.insert("healthStatus".into(), json!(text(&status["health"]["status"]).unwrap_or_else(|| "Unknown".into())));
    out.insert("revision".into(), json!(revision));
    out.insert("operationPhase".into(), json!(text(&op["phase"])));
    out.insert("message".into(), json!(message));
    out.insert("lastSync".into(), json!(last_sync));
    if meta["labels"][DEMO_LABEL].as_str() == Some("true") {
        out.insert("demo".into(), json!(true));
    }
    Value::Object(out)
}

/// The preset's two outputs for `source` (which must be an `argocd` preset source, or a
/// stand-in for one such as the demo's): the projection first, then the full objects.
///
/// # Errors
/// A description of a configuration mistake (validated at load, so not expected here).
pub fn outputs(source: &KubernetesSource) -> Result<Vec<Output>, String> {
    let scopes = source.scopes()?;
    let shapes = [(ARGOCD_APPLICATIONS, Shape::ArgoSummary), (ARGOCD_OBJECTS, Shape::ArgoObject)];
    shapes
        .into_iter()
        .zip(scopes)
        .map(|((template, shape), scope)| Ok(Output::new(Template::parse(template)?, shape, vec![scope])))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_reads_status() {
        let app = json!({
            "metadata": {"name": "web", "namespace": "argocd", "labels": {"team": "a"}},
            "spec": {"project": "shop"},
            "status": {
                "sync": {"status": "Synced", "revision": "abc"},
                "health": {"status": "Healthy"},
                "operationState": {"phase": "Succeeded", "message": "successfully synced (all tasks run)",
                    "finishedAt": "2024-05-01T10:00:05Z", "syncResult": {"revision": "old"}},
                "reconciledAt": "2024-05-01T10:03:00Z",
            }
        });
        assert_eq!(
            project(&app),
            json!({"name": "web", "namespace": "argocd", "project": "shop", "syncStatus": "Synced",
                "healthStatus": "Healthy", "revision": "abc", "operationPhase": "Succeeded",
                "message": "successfully synced (all tasks run)", "lastSync": "2024-05-01T10:00:05Z"})
        );
    }

    #[test]
    fn projection_falls_back() {
        let fresh = json!({"metadata": {"name": "new", "namespace": "argocd"}, "spec": {}});
        assert_eq!(
            project(&fresh),
            json!({"name": "new", "namespace": "argocd", "project": "default", "syncStatus": "Unknown",
                "healthStatus": "Unknown", "revision": null, "operationPhase": null, "message": null,
                "lastSync": null})
        );
        let app = json!({
            "metadata": {"name": "m", "namespace": "n", "labels": {"herald.dev/demo": "true"}},
            "spec": {"project": ""},
            "status": {
                "sync": {"status": "OutOfSync", "revisions": ["r1", "r2"]},
                "health": {"status": "Degraded", "message": "0/3 ready"},
                "conditions": [{"type": "ComparisonError", "message": "rpc error"}],
                "history": [{"deployedAt": "t1"}, {"deployedAt": "t2"}],
            }
        });
        let p = project(&app);
        assert_eq!(
            (&p["revision"], &p["message"], &p["lastSync"], &p["demo"]),
            (&json!("r1"), &json!("rpc error"), &json!("t2"), &json!(true))
        );
        assert_eq!(p["project"], "default");
    }
}
