//! Argo CD's own application API, served from keyed state (SPEC §9): `GET
//! /api/v1/stream/applications` (the watch stream Argo CD's UI and clients use) and `GET
//! /api/v1/applications` (the list).
//!
//! Both read the full Application objects that the `argocd` preset of a Kubernetes source (or
//! `herald serve --demo`) keeps as keyed state under `argocd/objects/<namespace>/<name>` — no
//! Kubernetes client is involved here. The compact projection under `argocd/applications/...`
//! is for Herald's own subscribers (the deployment board); Argo CD clients need the whole
//! object (labels for `selector`, `spec.project` for `projects`, `metadata.resourceVersion`).
//!
//! # Wire format and semantics (those of Argo CD's `ApplicationService.Watch`)
//! - Every event is one SSE `data:` line, `{"result":{"type":"ADDED"|"MODIFIED"|"DELETED",
//!   "application":{...}}}`, with no `id:` or `event:` line (Argo CD sends none). A DELETED
//!   event carries the object as it was last seen.
//! - Without `resourceVersion`, or with `name`, the stream first sends `ADDED` for every
//!   matching application, sorted by `namespace/name`; then live changes.
//! - `resourceVersion=N` (a number) also drops every application, listed or live, whose own
//!   `metadata.resourceVersion` is a number below N; a non-numeric value counts as 0.
//! - `name` matches `metadata.name`; `appNamespace` matches `metadata.namespace`;
//!   `projects` (repeatable; the legacy `project` wins when given) matches `spec.project`
//!   (`default` when empty); `selector` is a Kubernetes label selector on
//!   `metadata.labels` (`a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>1`,
//!   `a<1`, comma-separated); a malformed one is 400.
//! - An application whose labels change so that it no longer matches is simply not sent any
//!   more (no `DELETED`), as in Argo CD.
//!
//! Deliberate differences from Argo CD: `appNamespace` filters on its own, with or without
//! `name` (Argo CD applies it only together with `name`, defaulting to its control-plane
//! namespace, which Herald does not know: here an empty `appNamespace` means any namespace);
//! SSE comment heartbeats (`: heartbeat`) keep idle connections alive through proxies (every SSE
//! client ignores comments); `fields` (a response field mask) is ignored, so objects come
//! whole.
//!
//! # Authorisation
//! Herald's per-topic rules apply: a principal sees an application exactly when it may subscribe
//! to that application's `argocd/objects/<namespace>/<name>` topic (a token that may read none
//! of `argocd/objects/**` gets 403). The list and the stream need a valid token whenever
//! authentication is configured, like `/events`.
//!
//! # Closing
//! The stream ends when the node drains, when the token expires, and when the client falls
//! behind its queue (it then reconnects, as Argo CD's UI does, and gets the list again).

use std::cmp::Ordering as CmpOrdering;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::response::Response;
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::ApiError;
use crate::auth::{Access, Filter};
use crate::event::Event;
use crate::hub::{Origin, Subscription};
use crate::server::Hub;
use crate::shutdown::Admission;
use crate::sse;
use crate::telemetry::Disconnect;
use crate::topic::Pattern;

/// The keyed topics of full Application objects (what the `argocd` preset publishes).
pub const OBJECTS: &str = "argocd/objects/**";

/// What the query string asked for (Argo CD's `ApplicationQuery`).
#[derive(Debug, Default)]
struct Query {
    name: Option<String>,
    app_namespace: Option<String>,
    projects: Vec<String>,
    /// The legacy `project` parameter; wins over `projects` when given.
    legacy_projects: Vec<String>,
    selector: Selector,
    resource_version: Option<String>,
    repo: Option<String>,
}

impl Query {
    fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let mut q = Query::default();
        for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            let value = value.into_owned();
            match &*key {
                "name" if !value.is_empty() => q.name = Some(value),
                "appNamespace" if !value.is_empty() => q.app_namespace = Some(value),
                "projects" if !value.is_empty() => q.projects.push(value),
                "project" if !value.is_empty() => q.legacy_projects.push(value),
                "selector" => {
                    q.selector = Selector::parse(&value)
                        .map_err(|e| ApiError::bad_request(format!("error parsing labels with selectors: {e}")))?;
                }
                "resourceVersion" if !value.is_empty() => q.resource_version = Some(value),
                "repo" if !value.is_empty() => q.repo = Some(value),
                // `fields`, `refresh`, `access_token`, cache busters: not filters.
                _ => {}
            }
        }
        Ok(q)
    }

    fn projects(&self) -> &[String] {
        if self.legacy_projects.is_empty() {
            &self.projects
        } else {
            &self.legacy_projects
        }
    }

    /// Argo CD's `minVersion`: the numeric `resourceVersion`, 0 when absent or not a number.
    fn min_version(&self) -> u64 {
        self.resource_version.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// Whether the stream starts with the list of matching applications.
    fn sends_list(&self) -> bool {
        self.resource_version.is_none() || self.name.is_some()
    }

    /// Whether `app` passes every filter of the query (but `resourceVersion` and `repo`).
    fn matches(&self, app: &Value) -> bool {
        let meta = &app["metadata"];
        if self.name.as_deref().is_some_and(|n| meta["name"].as_str() != Some(n)) {
            return false;
        }
        if self.app_namespace.as_deref().is_some_and(|ns| meta["namespace"].as_str() != Some(ns)) {
            return false;
        }
        let projects = self.projects();
        if !projects.is_empty() && !projects.iter().any(|p| p == project(app)) {
            return false;
        }
        self.selector.matches(&meta["labels"])
    }

    /// `resourceVersion` as Argo CD applies it to every event: an application whose own
    /// version is a number below the asked one is dropped.
    fn recent_enough(&self, app: &Value, min: u64) -> bool {
        match app["metadata"]["resourceVersion"].as_str().and_then(|v| v.parse::<u64>().ok()) {
            Some(version) => version >= min,
            None => true,
        }
    }

    /// The list endpoint's `repo` filter: the application's source repository, compared without
    /// a trailing `/` or `.git` and without case (as Argo CD normalises Git URLs).
    fn repo_matches(&self, app: &Value) -> bool {
        let Some(want) = &self.repo else { return true };
        let normal = |u: &str| u.trim_end_matches('/').trim_end_matches(".git").to_ascii_lowercase();
        let want = normal(want);
        let spec = &app["spec"];
        let single = spec["source"]["repoURL"].as_str();
        let many = spec["sources"].as_array().into_iter().flatten().filter_map(|s| s["repoURL"].as_str());
        single.into_iter().chain(many).any(|u| normal(u) == want)
    }
}

/// `spec.project`, or `default` when empty (Argo CD's `Spec.GetProject()`).
fn project(app: &Value) -> &str {
    match app["spec"]["project"].as_str() {
        Some(p) if !p.is_empty() => p,
        _ => "default",
    }
}

/// `namespace/name`, Argo CD's `QualifiedName`, the order of the initial list.
fn qualified_name(app: &Value) -> String {
    let meta = &app["metadata"];
    let name = meta["name"].as_str().unwrap_or("");
    match meta["namespace"].as_str() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_owned(),
    }
}

/// The patterns this endpoint reads, and what of them the caller may read.
fn authorise(access: &Access) -> Result<(Vec<Pattern>, Filter), ApiError> {
    let patterns = vec![Pattern::new(OBJECTS).map_err(|e| ApiError::internal(e.to_string()))?];
    let filter = access.subscription_filter(&patterns)?;
    Ok((patterns, filter))
}

/// The applications of a snapshot that the caller may see, parsed.
fn visible(events: &[Arc<Event>], filter: &Filter) -> Vec<Value> {
    events
        .iter()
        .filter(|e| !e.tombstone && filter.allows(&e.topic))
        .filter_map(|e| serde_json::from_str::<Value>(e.data.get()).ok())
        .filter(Value::is_object)
        .collect()
}

/// `GET /api/v1/applications`: `{"metadata":{"resourceVersion":…},"items":[…]}`, sorted by name
/// (then namespace), filtered like the stream (and by `repo`); `resourceVersion` is the highest
/// numeric one among the objects Herald holds.
///
/// # Errors
/// 400 for a malformed selector; 401 / 403 as SPEC §6; 503 while the log is closed.
pub async fn list(
    State(hub): State<Arc<Hub>>,
    access: Access,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let query = Query::parse(raw.as_deref())?;
    let (patterns, filter) = authorise(&access)?;
    let snapshot = hub.log.snapshot(&patterns).await?;
    let all = visible(&snapshot.events, &filter);
    let version = all
        .iter()
        .filter_map(|a| a["metadata"]["resourceVersion"].as_str()?.parse::<u64>().ok())
        .max()
        .map(|v| v.to_string());
    let mut items: Vec<Value> = all.into_iter().filter(|a| query.matches(a) && query.repo_matches(a)).collect();
    items.sort_by(by_name);
    Ok(Json(json!({ "metadata": { "resourceVersion": version }, "items": items })))
}

fn by_name(a: &Value, b: &Value) -> CmpOrdering {
    let key = |v: &Value| (v["metadata"]["name"].as_str().unwrap_or("").to_owned(), qualified_name(v));
    key(a).cmp(&key(b))
}

/// `GET /api/v1/stream/applications`: Argo CD's watch stream (see the module docs).
///
/// # Errors
/// 400 for a malformed selector; 401 / 403 as SPEC §6; 503 with `Retry-After` while draining
/// or at a client limit.
pub async fn stream(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    access: Access,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(raw.as_deref())?;
    let (patterns, filter) = authorise(&access)?;
    let admission = super::events::admit_stream(&hub, &access)?;

    // Register before reading the snapshot, so nothing published in between is missed; the
    // snapshot's `as_of` then tells which live events it already covers.
    let origin = Origin { principal: access.principal.clone(), remote: Some(remote) };
    let sub = hub.router.subscribe_filtered(patterns.clone(), origin, filter.allow_list());
    let mut watch = Watch::new(hub.clone(), query, sub, admission, access.expires);
    match hub.log.snapshot(&patterns).await {
        Ok(snapshot) => {
            watch.cursor = snapshot.as_of;
            if watch.query.sends_list() {
                let min = watch.query.min_version();
                let mut apps: Vec<Value> = visible(&snapshot.events, &filter)
                    .into_iter()
                    .filter(|a| watch.query.matches(a) && watch.query.recent_enough(a, min))
                    .collect();
                apps.sort_by_cached_key(qualified_name);
                let n = apps.len() as u64;
                watch.pending.extend(apps.iter().map(|a| frame("ADDED", a)));
                watch.count_sent(n);
            }
        }
        // The watch (and its admission) is dropped here, which releases it.
        Err(e) => return Err(e.into()),
    }

    let body = Body::from_stream(futures_util::stream::unfold(watch, |mut w| async move {
        let frame = w.next_frame().await?;
        Some((Ok::<_, std::convert::Infallible>(frame), w))
    }));
    Ok(super::events::sse_response(body))
}

/// One SSE event of Argo CD's stream.
fn frame(kind: &str, app: &Value) -> Bytes {
    let body = json!({ "result": { "type": kind, "application": app } });
    Bytes::from(format!("data: {body}\n\n"))
}

/// Argo CD's event type for a keyed event of the `argocd` preset.
fn watch_type(event: &Event) -> &'static str {
    if event.tombstone {
        "DELETED"
    } else if event.kind.ends_with(".added") {
        "ADDED"
    } else {
        "MODIFIED"
    }
}

/// An open watch stream.
struct Watch {
    hub: Arc<Hub>,
    query: Query,
    sub: Option<Subscription>,
    admission: Option<Admission>,
    /// The snapshot's position: live events at or below it are already in the list.
    cursor: Option<crate::event::EventId>,
    pending: VecDeque<Bytes>,
    heartbeat: Pin<Box<Sleep>>,
    expires: Option<Pin<Box<Sleep>>>,
    stopping: Pin<Box<WaitForCancellationFutureOwned>>,
    reason: Disconnect,
    done: bool,
}

impl Watch {
    fn new(
        hub: Arc<Hub>,
        query: Query,
        sub: Subscription,
        admission: Admission,
        expires: Option<std::time::SystemTime>,
    ) -> Self {
        let expires = expires.map(|at| {
            let left = at.duration_since(std::time::SystemTime::now()).unwrap_or_default();
            Box::pin(tokio::time::sleep(left))
        });
        Self {
            heartbeat: Box::pin(tokio::time::sleep(hub.config.heartbeat_s)),
            stopping: Box::pin(hub.lifecycle.streams().clone().cancelled_owned()),
            hub,
            query,
            sub: Some(sub),
            admission: Some(admission),
            cursor: None,
            pending: VecDeque::new(),
            expires,
            reason: Disconnect::Client,
            done: false,
        }
    }

    fn count_sent(&self, n: u64) {
        if let Some(sub) = &self.sub {
            sub.shared().sent.fetch_add(n, Ordering::Relaxed);
        }
        self.hub.metrics.events_delivered.increment(n);
    }

    fn finish(&mut self, reason: Disconnect) {
        self.reason = reason;
        self.done = true;
        self.sub = None;
    }

    /// The next bytes to write, or `None` when the stream is over.
    async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                let next = Instant::now() + self.hub.config.heartbeat_s;
                self.heartbeat.as_mut().reset(next);
                return Some(frame);
            }
            if self.done {
                return None;
            }
            self.step().await;
        }
    }

    async fn step(&mut self) {
        let Some(sub) = self.sub.as_mut() else {
            self.done = true;
            return;
        };
        let expiry = async {
            match self.expires.as_mut() {
                Some(sleep) => sleep.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = &mut self.stopping => self.finish(Disconnect::Shutdown),
            () = expiry => self.finish(Disconnect::Expired),
            event = sub.recv() => match event {
                Some(event) => {
                    if self.cursor.is_some_and(|c| event.id <= c) {
                        return;
                    }
                    self.cursor = None;
                    let Ok(app) = serde_json::from_str::<Value>(event.data.get()) else { return };
                    let min = self.query.min_version();
                    if self.query.matches(&app) && self.query.recent_enough(&app, min) {
                        self.pending.push_back(frame(watch_type(&event), &app));
                        self.count_sent(1);
                    }
                }
                None => {
                    let reason = if sub.lagged() { Disconnect::Lagged } else { Disconnect::Error };
                    self.finish(reason);
                }
            },
            () = &mut self.heartbeat => {
                self.pending.push_back(Bytes::from_static(sse::HEARTBEAT_COMMENT));
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.sub = None;
        if let Some(admission) = self.admission.take() {
            self.hub.lifecycle.release(admission);
        }
        self.hub.metrics.clients_connected.decrement(1.0);
        self.hub.metrics.disconnected(self.reason);
    }
}

/// A Kubernetes label selector (`k8s.io/apimachinery/pkg/labels.Parse`): requirements joined by
/// commas, all of which must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Exists(String),
    Absent(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Greater(String, i64),
    Less(String, i64),
}

impl Selector {
    /// Parses a selector; the empty text selects everything.
    ///
    /// # Errors
    /// A description of the malformed requirement.
    ///
    /// # Examples
    /// ```
    /// use herald::http::argocd::Selector;
    /// let s = Selector::parse("team=web, env in (prod,stage), !legacy").unwrap();
    /// assert!(s.matches(&serde_json::json!({"team": "web", "env": "prod"})));
    /// assert!(!s.matches(&serde_json::json!({"team": "web", "env": "dev"})));
    /// ```
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for part in split_top_level(text)? {
            let part = part.trim();
            if part.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err(format!("empty requirement in {text:?}"));
            }
            requirements.push(Requirement::parse(part)?);
        }
        Ok(Self { requirements })
    }

    /// Whether a `metadata.labels` object (or null: no labels) satisfies every requirement.
    pub fn matches(&self, labels: &Value) -> bool {
        let get = |key: &str| labels.get(key).and_then(Value::as_str);
        self.requirements.iter().all(|r| match r {
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::Absent(k) => get(k).is_none(),
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Requirement::Greater(k, n) => get(k).and_then(|x| x.parse::<i64>().ok()).is_some_and(|x| x > *n),
            Requirement::Less(k, n) => get(k).and_then(|x| x.parse::<i64>().ok()).is_some_and(|x| x < *n),
        })
    }
}

/// Splits on commas outside parentheses.
fn split_top_level(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or_else(|| format!("unbalanced ')' in {text:?}"))?,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("unbalanced '(' in {text:?}"));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn check_key(key: &str) -> Result<String, String> {
    let ok = !key.is_empty()
        && key.len() <= 317
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'));
    if ok {
        Ok(key.to_owned())
    } else {
        Err(format!("invalid label key {key:?}"))
    }
}

fn check_value(value: &str) -> Result<String, String> {
    let ok = value.len() <= 63 && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(value.to_owned())
    } else {
        Err(format!("invalid label value {value:?}"))
    }
}

impl Requirement {
    fn parse(part: &str) -> Result<Self, String> {
        if let Some(key) = part.strip_prefix('!') {
            return Ok(Self::Absent(check_key(key.trim())?));
        }
        let key_end =
            part.find(|c: char| c.is_whitespace() || matches!(c, '=' | '!' | '<' | '>' | '(')).unwrap_or(part.len());
        let key = check_key(&part[..key_end])?;
        let rest = part[key_end..].trim_start();
        if rest.is_empty() {
            return Ok(Self::Exists(key));
        }
        let value = |text: &str| check_value(text.trim());
        if let Some(v) = rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')) {
            return Ok(Self::Equals(key, value(v)?));
        }
        if let Some(v) = rest.strip_prefix("!=") {
            return Ok(Self::NotEquals(key, value(v)?));
        }
        let number = |text: &str| text.trim().parse::<i64>().map_err(|_| format!("{text:?} is not an integer"));
        if let Some(v) = rest.strip_prefix('>') {
            return Ok(Self::Greater(key, number(v)?));
        }
        if let Some(v) = rest.strip_prefix('<') {
            return Ok(Self::Less(key, number(v)?));
        }
        let (negate, set) = if let Some(set) = rest.strip_prefix("notin") {
            (true, set)
        } else if let Some(set) = rest.strip_prefix("in") {
            (false, set)
        } else {
            return Err(format!("unknown operator in {part:?}"));
        };
        let set = set.trim();
        let inner = set
            .strip_prefix('(')
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(|| format!("expected a parenthesised set of values in {part:?}"))?;
        let values = inner.split(',').map(value).collect::<Result<Vec<_>, _>>()?;
        Ok(if negate { Self::NotIn(key, values) } else { Self::In(key, values) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Value {
        Value::Object(pairs.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect())
    }

    #[test]
    fn selectors_follow_kubernetes() {
        let l = labels(&[("app", "web"), ("env", "prod"), ("tier", "3")]);
        let yes = [
            "",
            "app",
            "app=web",
            "app==web",
            "app!=api",
            "!missing",
            "env in (prod, stage)",
            "env notin (dev)",
            "missing notin (x)",
            "tier>2",
            "tier<4",
            "app=web,env=prod",
            " app = web , env in (prod) ",
            "example.com/team!=x",
        ];
        for s in yes {
            assert!(Selector::parse(s).unwrap().matches(&l), "{s:?}");
        }
        let no = [
            "missing",
            "app=api",
            "app!=web",
            "!app",
            "env in (dev)",
            "env notin (prod)",
            "missing in (x)",
            "tier>3",
            "app=web,env=dev",
        ];
        for s in no {
            assert!(!Selector::parse(s).unwrap().matches(&l), "{s:?}");
        }
        assert!(Selector::parse("app").unwrap().matches(&labels(&[("app", "")])));
        assert!(!Selector::parse("app").unwrap().matches(&Value::Null));
        assert!(Selector::parse("!app").unwrap().matches(&Value::Null));
        for bad in ["a b", "app=(x", "env in prod", "env in (a", "=x", "a,,b", "tier>x", "app=we b", "a)"] {
            assert!(Selector::parse(bad).is_err(), "{bad:?}");
        }
    }

    fn app(ns: &str, name: &str, project: &str, rv: &str, l: &[(&str, &str)]) -> Value {
        json!({
            "metadata": {"name": name, "namespace": ns, "resourceVersion": rv, "labels": labels(l)},
            "spec": {"project": project, "source": {"repoURL": "https://github.com/example/Apps.git"}},
        })
    }

    #[test]
    fn queries_filter_like_argo_cd() {
        let a = app("argocd", "web", "shop", "120", &[("team", "web")]);
        let q = |text: &str| Query::parse(Some(text)).unwrap();
        assert!(q("").matches(&a) && q("").sends_list());
        assert!(q("name=web").matches(&a) && !q("name=api").matches(&a));
        assert!(q("appNamespace=argocd").matches(&a) && !q("appNamespace=other").matches(&a));
        assert!(q("projects=x&projects=shop").matches(&a) && !q("projects=x").matches(&a));
        assert!(!q("projects=shop&project=x").matches(&a), "the legacy parameter wins");
        assert!(q("selector=team%3Dweb").matches(&a) && !q("selector=team%3Dapi").matches(&a));
        assert!(Query::parse(Some("selector=team%20in%20(x")).is_err());
        assert!(!q("resourceVersion=5").sends_list() && q("resourceVersion=5&name=web").sends_list());
        assert_eq!(q("resourceVersion=abc").min_version(), 0);
        assert!(q("").recent_enough(&a, 120) && !q("").recent_enough(&a, 121));
        assert!(q("repo=https://github.com/example/apps").repo_matches(&a));
        assert!(!q("repo=https://github.com/example/other").repo_matches(&a));
        assert_eq!(project(&app("n", "x", "", "1", &[])), "default");
        assert_eq!(qualified_name(&a), "argocd/web");
    }

    #[test]
    fn frames_are_argo_cd_watch_events() {
        let a = json!({"metadata": {"name": "web"}});
        let f = frame("ADDED", &a);
        let text = std::str::from_utf8(&f).unwrap();
        let line = text.strip_prefix("data: ").and_then(|t| t.strip_suffix("\n\n")).unwrap();
        assert!(!line.contains('\n'));
        let parsed: Value = serde_json::from_str(line).unwrap();
        assert_eq!(parsed, json!({"result": {"type": "ADDED", "application": {"metadata": {"name": "web"}}}}));
    }
}
