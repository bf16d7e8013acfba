//! Operations endpoints: liveness, readiness, metrics and the list of open streams (SPEC §8).
//!
//! `/health`, `/ready` and `/metrics` are open, for probes and scrapers; `/subscriptions` names
//! principals and addresses, so it needs the admin role once authentication is configured.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use super::ApiError;
use crate::auth::{self, Access};
use crate::server::Hub;
use crate::shutdown::Phase;

/// `GET /health`: 200 while the process runs.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /ready`: 200 `ready` with the number of open streams; 503 `starting` or `draining`, or
/// `log_full` / `log_unavailable` while the event log cannot store publishes.
pub async fn ready(State(hub): State<Arc<Hub>>) -> impl IntoResponse {
    let mut phase = hub.lifecycle.phase();
    // A source that has not completed its first list keeps the node `starting`.
    let waiting = hub.lifecycle.gates.waiting();
    if phase == Phase::Ready && !waiting.is_empty() {
        phase = Phase::Starting;
    }
    let status = if phase == Phase::Ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut body = json!({ "status": phase.as_str(), "clients": hub.lifecycle.clients() });
    if !waiting.is_empty() {
        body["waiting_for"] = json!(waiting);
    }
    // A log that cannot store publishes (a full or failing disk) makes a ready node not ready,
    // with the reason; streams and replay still work, so a draining or starting node keeps
    // its own status.
    if let (Phase::Ready, Err(e)) = (phase, hub.log.writable()) {
        let reason = match e {
            crate::log::Error::Full(_) => "log_full",
            _ => "log_unavailable",
        };
        body["status"] = json!(reason);
        body["detail"] = json!(e.to_string());
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body));
    }
    (status, Json(body))
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(hub): State<Arc<Hub>>) -> impl IntoResponse {
    hub.metrics.clients_connected.set(hub.lifecycle.clients() as f64);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], hub.metrics.render())
}

/// `GET /subscriptions`: every open stream on this node.
///
/// # Errors
/// 401 without a valid token; 403 for a token without the admin role.
pub async fn subscriptions(State(hub): State<Arc<Hub>>, access: Access) -> Result<Json<Value>, ApiError> {
    auth::require_admin(&access)?;
    let list: Vec<Value> = hub
        .router
        .list()
        .into_iter()
        .map(|(s, depth)| {
            let since_ms = s.since.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
            json!({
                "id": s.id,
                "patterns": s.patterns.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                "principal": &*s.origin.principal,
                "remote": s.origin.remote.map(|a| a.to_string()),
                "connected_since": humantime::format_rfc3339_millis(s.since).to_string(),
                "connected_since_ms": since_ms,
                "events_sent": s.sent.load(std::sync::atomic::Ordering::Relaxed),
                "queue_depth": depth,
            })
        })
        .collect();
    Ok(Json(Value::Array(list)))
}
