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
//! - The `application` is the stored object byte for byte: only the few members the filters
//!   read (`metadata.name`, `namespace`, `labels`, `resourceVersion`, `spec.project`, the
//!   sources' `repoURL`) are parsed, and the object is never printed again, so numbers keep
//!   their digits and the cost per watcher is a scan, not a parse and a print. An event whose
//!   data is not a JSON object cannot be an application: it is skipped (logged, and counted in
//!   `herald_events_skipped_total{reason="encode"}`), and the stream goes on.
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
use axum::http::{header, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Deserializer as _;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::ApiError;
use crate::auth::{Access, Filter};
use crate::event::{EncodeError, Event};
use crate::hub::{Bounds, Origin, Subscription};
use crate::server::Hub;
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
    fn matches(&self, app: &App<'_>) -> bool {
        if self.name.as_deref().is_some_and(|n| app.name.as_deref() != Some(n)) {
            return false;
        }
        if self.app_namespace.as_deref().is_some_and(|ns| app.namespace.as_deref() != Some(ns)) {
            return false;
        }
        let projects = self.projects();
        if !projects.is_empty() && !projects.iter().any(|p| p == app.project()) {
            return false;
        }
        self.selector.matches_raw(app.labels)
    }

    /// `resourceVersion` as Argo CD applies it to every event: an application whose own
    /// version is a number below the asked one is dropped.
    fn recent_enough(&self, app: &App<'_>, min: u64) -> bool {
        match app.resource_version.as_deref().and_then(|v| v.parse::<u64>().ok()) {
            Some(version) => version >= min,
            None => true,
        }
    }

    /// The list endpoint's `repo` filter: the application's source repository, compared without
    /// a trailing `/` or `.git` and without case (as Argo CD normalises Git URLs).
    fn repo_matches(&self, app: &App<'_>) -> bool {
        let Some(want) = &self.repo else { return true };
        let normal = |u: &str| u.trim_end_matches('/').trim_end_matches(".git").to_ascii_lowercase();
        let want = normal(want);
        app.repo_urls().iter().any(|u| normal(u) == want)
    }
}

/// What the filters read of an Application; the object itself stays the stored text.
#[derive(Debug)]
struct App<'a> {
    /// The stored object, verbatim: what the stream and the list send.
    raw: &'a str,
    /// `metadata.name` (`None` when absent or not a string, like the rest).
    name: Option<String>,
    /// `metadata.namespace`.
    namespace: Option<String>,
    /// `metadata.resourceVersion`.
    resource_version: Option<String>,
    /// `metadata.labels`, parsed only when a selector asks.
    labels: Option<&'a RawValue>,
    /// `spec.project`.
    project: Option<String>,
    /// `spec`, for the list's `repo` filter.
    spec: Option<&'a RawValue>,
}

impl<'a> App<'a> {
    /// Reads what the filters need of `raw`; `None` when it is not a JSON object.
    fn parse(raw: &'a RawValue) -> Option<Self> {
        let [metadata, spec] = members(raw.get(), ["metadata", "spec"])?;
        let [name, namespace, resource_version, labels] = metadata
            .and_then(|m| members(m.get(), ["name", "namespace", "resourceVersion", "labels"]))
            .unwrap_or_default();
        let [project] = spec.and_then(|s| members(s.get(), ["project"])).unwrap_or_default();
        Some(Self {
            raw: raw.get(),
            name: text(name),
            namespace: text(namespace),
            resource_version: text(resource_version),
            labels,
            project: text(project),
            spec,
        })
    }

    /// `spec.project`, or `default` when empty (Argo CD's `Spec.GetProject()`).
    fn project(&self) -> &str {
        match self.project.as_deref() {
            Some(p) if !p.is_empty() => p,
            _ => "default",
        }
    }

    /// `namespace/name`, Argo CD's `QualifiedName`, the order of the initial list.
    fn qualified_name(&self) -> String {
        let name = self.name.as_deref().unwrap_or("");
        match self.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
            _ => name.to_owned(),
        }
    }

    /// `spec.source.repoURL` and every `spec.sources[].repoURL`.
    fn repo_urls(&self) -> Vec<String> {
        let [source, sources] = self.spec.and_then(|s| members(s.get(), ["source", "sources"])).unwrap_or_default();
        let url = |s: &RawValue| members(s.get(), ["repoURL"]).and_then(|[u]| text(u));
        let many: Vec<&RawValue> = sources.and_then(|s| serde_json::from_str(s.get()).ok()).unwrap_or_default();
        source.and_then(url).into_iter().chain(many.into_iter().filter_map(url)).collect()
    }
}

/// A member's value when it is a JSON string (as `Value::as_str` reads it), else `None`.
fn text(raw: Option<&RawValue>) -> Option<String> {
    raw.and_then(|r| serde_json::from_str(r.get()).ok())
}

/// The values of the members `names` of the JSON object `raw`, as raw text (of a repeated name,
/// the last, as `serde_json::Value` keeps it); `None` when `raw` is not an object. Members not
/// asked for are skipped without building anything (serde_json skips them without recursion, so
/// nesting costs no stack).
fn members<'a, const N: usize>(raw: &'a str, names: [&str; N]) -> Option<[Option<&'a RawValue>; N]> {
    /// Visits an object, keeping the asked members raw.
    struct Pick<'n, const N: usize>(&'n [&'n str; N]);
    /// Reads a member name as its index in the asked names.
    struct Name<'n, const N: usize>(&'n [&'n str; N]);

    impl<'de, const N: usize> DeserializeSeed<'de> for Name<'_, N> {
        type Value = Option<usize>;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
            d.deserialize_str(self)
        }
    }
    impl<'de, const N: usize> Visitor<'de> for Name<'_, N> {
        type Value = Option<usize>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a member name")
        }
        fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Option<usize>, E> {
            Ok(self.0.iter().position(|n| *n == name))
        }
    }
    impl<'de, const N: usize> Visitor<'de> for Pick<'_, N> {
        type Value = [Option<&'de RawValue>; N];
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = [None; N];
            while let Some(index) = map.next_key_seed(Name(self.0))? {
                match index.and_then(|i| out.get_mut(i)) {
                    Some(slot) => *slot = Some(map.next_value()?),
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(out)
        }
    }

    serde_json::Deserializer::from_str(raw).deserialize_map(Pick(&names)).ok()
}

/// The patterns this endpoint reads, and what of them the caller may read.
fn authorise(access: &Access) -> Result<(Vec<Pattern>, Filter), ApiError> {
    let patterns = vec![Pattern::new(OBJECTS).map_err(|e| ApiError::internal(e.to_string()))?];
    let filter = access.subscription_filter(&patterns)?;
    Ok((patterns, filter))
}

/// The applications of a snapshot that the caller may see; `skipped` is called with each event
/// that is not an application (its data is not a JSON object).
fn visible<'e>(events: &'e [Arc<Event>], filter: &Filter, mut skipped: impl FnMut(&Event)) -> Vec<App<'e>> {
    events
        .iter()
        .filter(|e| !e.tombstone && filter.allows(&e.topic))
        .filter_map(|e| {
            let app = App::parse(&e.data);
            if app.is_none() {
                skipped(e);
            }
            app
        })
        .collect()
}

/// Logs an event that Argo CD's format cannot carry; never its payload.
fn not_an_application(event: &Event) {
    tracing::error!(
        event.id = %event.id,
        topic = event.topic.as_str(),
        error = %EncodeError::NotAnObject,
        "an event under argocd/objects is not an application; Argo CD streams skip it"
    );
}

/// `GET /api/v1/applications`: `{"metadata":{"resourceVersion":…},"items":[…]}`, sorted by name
/// (then namespace), filtered like the stream (and by `repo`); `resourceVersion` is the highest
/// numeric one among the objects Herald holds. The items are the stored objects verbatim.
///
/// # Errors
/// 400 for a malformed selector; 401 / 403 as SPEC §6; 503 while the log is closed.
pub async fn list(State(hub): State<Arc<Hub>>, access: Access, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let query = Query::parse(raw.as_deref())?;
    let (patterns, filter) = authorise(&access)?;
    let snapshot = hub.log.snapshot(&patterns).await?;
    let all = visible(&snapshot.events, &filter, not_an_application);
    let version = all.iter().filter_map(|a| a.resource_version.as_deref()?.parse::<u64>().ok()).max();
    let mut items: Vec<App<'_>> = all.into_iter().filter(|a| query.matches(a) && query.repo_matches(a)).collect();
    items.sort_by(by_name);
    // Written directly, so every item is its stored bytes (the version is digits: no escaping).
    let mut body = String::with_capacity(items.iter().map(|a| a.raw.len() + 1).sum::<usize>() + 64);
    match version {
        Some(v) => body.push_str(&format!("{{\"metadata\":{{\"resourceVersion\":\"{v}\"}},\"items\":[")),
        None => body.push_str("{\"metadata\":{\"resourceVersion\":null},\"items\":["),
    }
    for (i, app) in items.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(app.raw);
    }
    body.push_str("]}");
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

fn by_name(a: &App<'_>, b: &App<'_>) -> CmpOrdering {
    let key = |v: &App<'_>| (v.name.clone().unwrap_or_default(), v.qualified_name());
    key(a).cmp(&key(b))
}

/// `GET /api/v1/stream/applications`: Argo CD's watch stream (see the module docs).
///
/// # Errors
/// 400 for a malformed selector; 401 / 403 as SPEC §6; 503 with `Retry-After` at a client
/// limit. While the node drains the answer is a stream that ends at once.
pub async fn stream(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    access: Access,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(raw.as_deref())?;
    let (patterns, filter) = authorise(&access)?;
    let Some(admission) = super::events::admit_unless_draining(&hub, &access)? else {
        // As on `/events` (SPEC §8): a 200 that ends at once, which an `EventSource` retries;
        // after a 503 it would give up for good.
        return Ok(super::events::drained_response(&hub, super::events::Start::Live));
    };

    // Register before reading the snapshot, so nothing published in between is missed; the
    // snapshot's `as_of` then tells which live events it already covers.
    let origin = Origin { principal: access.principal.clone(), remote: Some(remote) };
    // The subscription holds the admission and the stream's bounds, as `/events` streams do: a
    // watcher that stops reading is closed by the router's stall sweep and gives its slot back.
    let bounds = Bounds::of(&hub.config.limits);
    let mut sub = hub.router.open(patterns.clone(), origin, filter.allow_list(), bounds, Some(admission));
    sub.listen();
    let mut watch = Watch::new(hub.clone(), query, sub, access.expires);
    match hub.log.snapshot(&patterns).await {
        Ok(snapshot) => {
            watch.cursor = snapshot.as_of;
            if watch.query.sends_list() {
                let min = watch.query.min_version();
                let mut skipped = 0;
                let mut apps: Vec<App<'_>> = visible(&snapshot.events, &filter, |e| {
                    not_an_application(e);
                    skipped += 1;
                })
                .into_iter()
                .filter(|a| watch.query.matches(a) && watch.query.recent_enough(a, min))
                .collect();
                hub.metrics.events_skipped_encode.increment(skipped);
                apps.sort_by_cached_key(App::qualified_name);
                let n = apps.len() as u64;
                watch.pending.extend(apps.iter().map(|a| frame("ADDED", a.raw)));
                watch.count_sent(n);
            }
        }
        // The watch (and the admission its subscription holds) is dropped here, which gives it
        // back.
        Err(e) => return Err(e.into()),
    }

    // For a writer that sees its socket (`direct`): it keeps the stall limit itself.
    let write_watch = watch.sub.write_watch();
    let body = Body::from_stream(futures_util::stream::unfold(watch, |mut w| async move {
        let frame = w.next_frame().await?;
        Some((Ok::<_, std::convert::Infallible>(frame), w))
    }));
    let mut response = super::events::sse_response(body);
    response.extensions_mut().insert(write_watch);
    Ok(response)
}

/// One SSE event of Argo CD's stream, around the stored object `application` as it is.
fn frame(kind: &str, application: &str) -> Bytes {
    let mut data = String::with_capacity(application.len() + 48);
    data.push_str("{\"result\":{\"type\":\"");
    data.push_str(kind);
    data.push_str("\",\"application\":");
    data.push_str(application);
    data.push_str("}}");
    // Compact JSON has no line break; `data_frame` would still keep the frame whole if a stored
    // object had one.
    sse::data_frame(&data)
}

/// The frame this stream sends for `event`, a keyed event of the `argocd` preset (without the
/// query's filters): `{"result":{"type":…,"application":<the stored object, byte for byte>}}`.
///
/// # Errors
/// [`EncodeError::NotAnObject`] when the event's data is not a JSON object.
pub fn watch_frame(event: &Event) -> Result<Bytes, EncodeError> {
    let app = App::parse(&event.data).ok_or(EncodeError::NotAnObject)?;
    Ok(frame(watch_type(event), app.raw))
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

/// An open watch stream. Its subscription holds its admission and gives it back, counting the
/// disconnect with the reason [`Subscription::finish`] noted, when the watch is dropped.
struct Watch {
    hub: Arc<Hub>,
    query: Query,
    sub: Subscription,
    /// The snapshot's position: live events at or below it are already in the list.
    cursor: Option<crate::event::EventId>,
    pending: VecDeque<Bytes>,
    heartbeat: Pin<Box<Sleep>>,
    expires: Option<Pin<Box<Sleep>>>,
    stopping: Pin<Box<WaitForCancellationFutureOwned>>,
    done: bool,
}

impl Watch {
    fn new(hub: Arc<Hub>, query: Query, sub: Subscription, expires: Option<std::time::SystemTime>) -> Self {
        let expires = expires.map(|at| {
            let left = at.duration_since(std::time::SystemTime::now()).unwrap_or_default();
            Box::pin(tokio::time::sleep(left))
        });
        Self {
            heartbeat: Box::pin(tokio::time::sleep(hub.config.heartbeat_s)),
            stopping: Box::pin(hub.lifecycle.streams().clone().cancelled_owned()),
            hub,
            query,
            sub,
            cursor: None,
            pending: VecDeque::new(),
            expires,
            done: false,
        }
    }

    fn count_sent(&self, n: u64) {
        self.sub.shared().sent.fetch_add(n, Ordering::Relaxed);
        self.hub.metrics.events_delivered.increment(n);
    }

    fn finish(&mut self, reason: Disconnect) {
        self.done = true;
        self.sub.finish(reason);
    }

    /// The next bytes to write, or `None` when the stream is over. Being called means the
    /// writer took the previous frame; returning one means it has something to do: the
    /// subscription is told both, for the router's stall watch.
    async fn next_frame(&mut self) -> Option<Bytes> {
        self.sub.wrote();
        let frame = self.produce().await;
        if frame.is_some() {
            self.sub.writing();
        }
        frame
    }

    async fn produce(&mut self) -> Option<Bytes> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                let next = Instant::now() + self.hub.config.heartbeat_s;
                self.heartbeat.as_mut().reset(next);
                return Some(frame);
            }
            if self.done {
                return None;
            }
            // Closed by the router for stalling.
            if self.sub.closed() {
                self.finish(Disconnect::Lagged);
                continue;
            }
            self.step().await;
        }
    }

    async fn step(&mut self) {
        let sub = &mut self.sub;
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
                    let Some(app) = App::parse(&event.data) else {
                        not_an_application(&event);
                        self.hub.metrics.events_skipped_encode.increment(1);
                        return;
                    };
                    let min = self.query.min_version();
                    if self.query.matches(&app) && self.query.recent_enough(&app, min) {
                        self.pending.push_back(frame(watch_type(&event), app.raw));
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

    /// [`Selector::matches`] on stored `metadata.labels` text (absent: no labels), parsed only
    /// when there is a requirement to check. Labels that do not parse (nothing a Kubernetes
    /// object holds) match no selector but the empty one.
    fn matches_raw(&self, labels: Option<&RawValue>) -> bool {
        if self.requirements.is_empty() {
            return true;
        }
        match labels.map(|l| serde_json::from_str::<Value>(l.get())) {
            None => self.matches(&Value::Null),
            Some(Ok(labels)) => self.matches(&labels),
            Some(Err(_)) => false,
        }
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
    use serde_json::json;

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

    fn app(ns: &str, name: &str, project: &str, rv: &str, l: &[(&str, &str)]) -> Box<RawValue> {
        let value = json!({
            "metadata": {"name": name, "namespace": ns, "resourceVersion": rv, "labels": labels(l)},
            "spec": {"project": project, "source": {"repoURL": "https://github.com/example/Apps.git"}},
        });
        serde_json::value::to_raw_value(&value).unwrap()
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn queries_filter_like_argo_cd() {
        let a = app("argocd", "web", "shop", "120", &[("team", "web")]);
        let a = App::parse(&a).unwrap();
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
        assert_eq!(App::parse(&app("n", "x", "", "1", &[])).unwrap().project(), "default");
        assert_eq!(a.qualified_name(), "argocd/web");
    }

    #[test]
    fn only_the_filtered_members_are_read_and_read_as_value_would() {
        // Repeated names: the last wins; members of the wrong type count as absent; escapes in
        // names and values are decoded; what is not read may be anything, however deep.
        let deep = format!("{}1{}", "[".repeat(500), "]".repeat(500));
        let text = format!(
            r#"{{"metadata":{{"name":"old","name":"web","namespace":7,"labels":{{"a":"b"}}}},"status":{deep},"spec":{{"sources":[{{"repoURL":"https://x/a.git"}},{{}},3]}},"spec":{{"project":"p","sources":[{{"repoURL":"https://x/b"}}]}}}}"#
        );
        let a = raw(&text);
        let a = App::parse(&a).unwrap();
        assert_eq!((a.name.as_deref(), a.namespace.as_deref(), a.project()), (Some("web"), None, "p"));
        assert_eq!(a.repo_urls(), ["https://x/b"]);
        assert!(Selector::parse("a=b").unwrap().matches_raw(a.labels));
        assert_eq!(a.raw, text);
        for not_an_object in ["null", "[1]", "\"x\"", "1"] {
            assert!(App::parse(&raw(not_an_object)).is_none(), "{not_an_object}");
        }
        let odd = raw(r#"{"metadata":[],"spec":"x"}"#);
        let odd = App::parse(&odd).unwrap();
        assert_eq!((odd.name.as_deref(), odd.project(), odd.qualified_name()), (None, "default", String::new()));
        assert!(!Selector::parse("a").unwrap().matches_raw(None));
        assert!(Selector::parse("!a").unwrap().matches_raw(None));
    }

    #[test]
    fn frames_are_argo_cd_watch_events_around_the_stored_bytes() {
        let stored = r#"{"metadata":{"name":"web"},"v":0.10600388718287379,"n":123456789012345678901234567890}"#;
        let f = frame("ADDED", stored);
        let text = std::str::from_utf8(&f).unwrap();
        let line = text.strip_prefix("data: ").and_then(|t| t.strip_suffix("\n\n")).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(line, format!(r#"{{"result":{{"type":"ADDED","application":{stored}}}}}"#));
        let parsed: Value = serde_json::from_str(line).unwrap();
        assert_eq!(parsed["result"]["application"]["metadata"]["name"], "web");
    }
}
