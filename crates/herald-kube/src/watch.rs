//! Kubernetes list+watch through kube-rs, into a [`Mirror`].
//!
//! Each source watches `DynamicObject`s of an [`ApiResource`] built from its group, version,
//! kind and plural, so any resource works, custom ones (CRDs such as Argo CD's `Application`)
//! included, with no generated types. kube-rs's [`watcher`] does the protocol: a paginated list
//! (`Init` … `InitApply` … `InitDone`), then a watch from the list's `resourceVersion` with
//! bookmarks; a dropped connection or an API-server restart resumes the watch from the last
//! version seen, and `410 Gone` (the version expired) starts a new list. Between attempts the
//! stream backs off ([`WatchStreamExt::default_backoff`]: exponential, from 800 ms to 30 s,
//! with jitter, reset once the watch runs smoothly again).
//!
//! # Lagging
//! Nothing is buffered here: the next watch event is read only once the previous one is
//! published, so a slow log slows the watch, and the API server keeps what we have not read.

use std::sync::Arc;

use futures_util::StreamExt;
use herald::sources::{KubernetesSource, Preset, Template};
use herald::Hub;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::mirror::{Change, Mirror, Output, Shape};
use crate::{argocd, Error};

/// The mirror's outputs for `source`: the Argo CD preset's two, or the whole object through the
/// source's template.
///
/// # Errors
/// [`Error::Config`] for a source that does not validate.
pub fn outputs(source: &KubernetesSource) -> Result<Vec<Output>, Error> {
    match source.preset {
        Some(Preset::Argocd) => argocd::outputs(source).map_err(Error::Config),
        None => {
            let scopes = source.scopes().map_err(Error::Config)?;
            let templates = source.templates();
            let template = templates.first().ok_or_else(|| Error::Config("no topic template".into()))?;
            Ok(vec![Output::new(Template::parse(template).map_err(Error::Config)?, Shape::Object, scopes)])
        }
    }
}

/// Watches `source` through `client` until `stop` is cancelled, publishing into `hub` and
/// opening the source's readiness gate after its first complete list.
///
/// # Errors
/// [`Error::Config`] for a source that does not validate.
pub fn task(
    hub: Arc<Hub>,
    client: kube::Client,
    source: &KubernetesSource,
    stop: CancellationToken,
) -> Result<impl std::future::Future<Output = ()> + Send + 'static, Error> {
    let resource = source.resource().map_err(Error::Config)?;
    let outputs = outputs(source)?;
    let label = source.label();
    let gate = hub.lifecycle.gates.add(&label);
    let gvk = GroupVersionKind::gvk(&resource.group, &resource.version, &resource.kind);
    let api_resource = ApiResource::from_gvk_with_plural(&gvk, &resource.plural);
    let api: Api<DynamicObject> = match &source.namespace {
        Some(ns) => Api::namespaced_with(client, ns, &api_resource),
        None => Api::all_with(client, &api_resource),
    };
    let mut config = watcher::Config::default();
    if let Some(selector) = &source.label_selector {
        config = config.labels(selector);
    }
    let mut mirror = Mirror::new(hub, resource, outputs, Some(gate), label.clone());
    Ok(async move {
        tracing::info!(source = %label, "watching");
        let mut events = watcher(api, config).default_backoff().boxed();
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => break,
                next = events.next() => next,
            };
            let change = match next {
                Some(Ok(event)) => change(event, &api_resource),
                Some(Err(e)) => {
                    // The stream recovers on the next poll, after the backoff.
                    tracing::warn!(source = %label, error = %e, "watch failed; retrying");
                    continue;
                }
                None => break,
            };
            if mirror.apply(change).await.is_err() {
                break;
            }
        }
        tracing::info!(source = %label, "stopped watching");
    })
}

/// A watcher event as a [`Change`], with `apiVersion` and `kind` filled in (list items may
/// come without them).
fn change(event: Event<DynamicObject>, resource: &ApiResource) -> Change {
    let json = |object: DynamicObject| -> Value {
        let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
        if let Some(map) = value.as_object_mut() {
            map.entry("apiVersion").or_insert_with(|| Value::String(resource.api_version.clone()));
            map.entry("kind").or_insert_with(|| Value::String(resource.kind.clone()));
        }
        value
    };
    match event {
        Event::Init => Change::Relist,
        Event::InitApply(object) => Change::Listed(json(object)),
        Event::InitDone => Change::ListDone,
        Event::Apply(object) => Change::Applied(json(object)),
        Event::Delete(object) => Change::Deleted(json(object)),
    }
}
