//! The mirror: turns a list+watch of objects into keyed Herald events, publishing only what
//! changed.
//!
//! A [`Mirror`] is fed [`Change`]s — from a kube-rs watcher ([`crate::watch`]) or from the demo
//! simulator ([`crate::demo`]), the same path either way — and publishes, for each of its
//! [`Output`]s, one keyed event per object (key `namespace/name`, or `name` when
//! cluster-scoped) on the topic the output's template gives it: `<kind>.added` for a key Herald
//! does not hold, `<kind>.updated` for one whose data changed, and a `<kind>.deleted`
//! tombstone (carrying the object's last data) when it goes.
//!
//! # Invariants
//! - No event is published for an object whose output data is unchanged. Changes are judged on
//!   a fingerprint of the data that leaves out what moves without meaning anything
//!   (`metadata.resourceVersion` always; for Argo CD objects also `metadata.generation`,
//!   `status.reconciledAt` and `status.observedAt`, which the controller rewrites on every
//!   reconciliation).
//! - A (re)list ([`Change::Relist`] … [`Change::Listed`] … [`Change::ListDone`]) is diffed
//!   against Herald's own keyed state, read back with a snapshot of the output's scope: objects
//!   deleted while the watch was down become tombstones, changed ones updates, unchanged ones
//!   nothing. So a restart of Herald, of the API server, or a `410 Gone` never replays or loses
//!   state, whatever happened in between.
//! - The mirror owns its outputs' scopes (validated non-overlapping at config load): a relist
//!   tombstones whatever keyed state in the scope the list no longer contains.
//! - Each object's events (one per output) are published as one atomic batch, so the Argo CD
//!   projection and the full object never disagree.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use herald::event::Draft;
use herald::sources::{Gate, Resource, Template};
use herald::topic::{Pattern, Topic};
use herald::Hub;
use serde_json::Value;

use crate::argocd;

/// The most events published in one batch during a relist.
const RELIST_BATCH: usize = 512;

/// One step of a list+watch, in kube-rs's terms.
#[derive(Debug, Clone)]
pub enum Change {
    /// A complete list begins (the first, or a relist after `410 Gone` or a restart).
    Relist,
    /// An object of the list.
    Listed(Value),
    /// The list is complete: whatever it did not name is gone.
    ListDone,
    /// An object was added or modified.
    Applied(Value),
    /// An object was deleted; this is its last state.
    Deleted(Value),
}

/// What an output makes of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The whole object, `metadata.managedFields` left out.
    Object,
    /// The whole Argo CD `Application`, `metadata.managedFields` left out; status noise does not
    /// count as a change.
    ArgoObject,
    /// The deployment board's projection of an Argo CD `Application` ([`argocd::project`]).
    ArgoSummary,
}

impl Shape {
    /// The data published for `object`.
    pub fn data(self, object: &Value) -> Value {
        match self {
            Self::Object | Self::ArgoObject => {
                let mut data = object.clone();
                if let Some(meta) = data.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.remove("managedFields");
                }
                data
            }
            Self::ArgoSummary => argocd::project(object),
        }
    }

    /// The fingerprint of published `data`: equal fingerprints mean "nothing to publish".
    pub fn fingerprint(self, data: &Value) -> u64 {
        let ignored: &[&[&str]] = match self {
            Self::Object => &[&["metadata", "resourceVersion"]],
            Self::ArgoObject => &[
                &["metadata", "resourceVersion"],
                &["metadata", "generation"],
                &["status", "reconciledAt"],
                &["status", "observedAt"],
            ],
            Self::ArgoSummary => &[],
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        hash_value(data, &mut Vec::new(), ignored, &mut hasher);
        hasher.finish()
    }
}

/// Hashes a JSON value the same whatever the order of its object keys, skipping `ignored` paths.
fn hash_value<'a>(value: &'a Value, path: &mut Vec<&'a str>, ignored: &[&[&str]], h: &mut impl Hasher) {
    match value {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Number(n) => (2u8, n.to_string()).hash(h),
        Value::String(s) => (3u8, s).hash(h),
        Value::Array(items) => {
            (4u8, items.len()).hash(h);
            for item in items {
                hash_value(item, path, ignored, h);
            }
        }
        Value::Object(map) => {
            5u8.hash(h);
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            for (key, item) in sorted {
                path.push(key);
                if !ignored.contains(&path.as_slice()) {
                    key.hash(h);
                    hash_value(item, path, ignored, h);
                }
                path.pop();
            }
        }
    }
}

/// One stream of keyed events a mirror publishes: a topic template and a shape.
#[derive(Debug, Clone)]
pub struct Output {
    template: Template,
    shape: Shape,
    /// The patterns covering every topic this output may publish to (diffed on relist).
    scopes: Vec<Pattern>,
}

impl Output {
    /// An output publishing `shape` through `template`, owning the topics `scopes` match.
    pub fn new(template: Template, shape: Shape, scopes: Vec<Pattern>) -> Self {
        Self { template, shape, scopes }
    }

    /// The patterns covering every topic this output may publish to.
    pub fn scopes(&self) -> &[Pattern] {
        &self.scopes
    }
}

/// One output's rendering of an object: its topic, data and the data's fingerprint.
type Rendered = (Topic, Value, u64);

/// An object's key and its rendering for each output, in output order.
type Keyed = (String, Vec<Rendered>);

/// Where an object's state stands in Herald, for one output.
#[derive(Debug, Clone)]
struct Known {
    topic: Topic,
    fingerprint: u64,
}

/// Why a mirror stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The event log is closed: the node is shutting down.
    #[error("the event log is closed")]
    Closed,
}

/// Publishes the objects of one source as keyed events. See the module docs.
pub struct Mirror {
    hub: Arc<Hub>,
    resource: Resource,
    /// `<kind>` of the event types, lower case.
    kind: String,
    outputs: Vec<Output>,
    /// Per output: what Herald holds for each key (as of the last list or publish).
    known: Vec<HashMap<String, Known>>,
    /// The objects of a list in progress.
    listing: Option<Vec<Value>>,
    gate: Option<Gate>,
    label: String,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror").field("label", &self.label).field("outputs", &self.outputs).finish_non_exhaustive()
    }
}

impl Mirror {
    /// A mirror of `resource` objects into `outputs`, opening `gate` (if any) once its first
    /// list is published. `label` names it in logs.
    pub fn new(hub: Arc<Hub>, resource: Resource, outputs: Vec<Output>, gate: Option<Gate>, label: String) -> Self {
        let kind = resource.kind.to_ascii_lowercase();
        let known = outputs.iter().map(|_| HashMap::new()).collect();
        Self { hub, resource, kind, outputs, known, listing: None, gate, label }
    }

    /// Takes one change in, publishing what it changes.
    ///
    /// A batch the log refuses for another reason than closing is logged and skipped (the
    /// next change of the object, or the next relist, publishes it again).
    ///
    /// # Errors
    /// [`Error::Closed`] once the node's log is closed; the mirror should stop.
    pub async fn apply(&mut self, change: Change) -> Result<(), Error> {
        match change {
            Change::Relist => {
                self.listing = Some(Vec::new());
                Ok(())
            }
            Change::Listed(object) => {
                // Outside a list (a source that does not announce one) it is an upsert.
                match &mut self.listing {
                    Some(list) => {
                        list.push(object);
                        Ok(())
                    }
                    None => self.applied(&object).await,
                }
            }
            Change::ListDone => {
                let listed = self.listing.take().unwrap_or_default();
                self.relisted(listed).await?;
                if let Some(gate) = &self.gate {
                    if !gate.is_open() {
                        tracing::info!(source = %self.label, "synced");
                        gate.open();
                    }
                }
                Ok(())
            }
            Change::Applied(object) => self.applied(&object).await,
            Change::Deleted(object) => self.deleted(&object).await,
        }
    }

    /// The key and topic identity of an object: `(namespace, name)`.
    fn identity(object: &Value) -> Option<(Option<&str>, &str)> {
        let meta = object.get("metadata")?;
        let name = meta.get("name")?.as_str().filter(|n| !n.is_empty())?;
        let namespace = meta.get("namespace").and_then(Value::as_str).filter(|n| !n.is_empty());
        Some((namespace, name))
    }

    fn key(namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_owned(),
        }
    }

    /// Each output's topic, data and fingerprint for `object`; `None` (logged) when the object
    /// has no name or a topic cannot be built.
    fn render(&self, object: &Value) -> Option<Keyed> {
        let Some((namespace, name)) = Self::identity(object) else {
            tracing::warn!(source = %self.label, "skipped an object without metadata.name");
            return None;
        };
        let mut out = Vec::with_capacity(self.outputs.len());
        for output in &self.outputs {
            let topic = match output.template.render(&self.resource, namespace, name) {
                Ok(topic) => topic,
                Err(e) => {
                    tracing::warn!(source = %self.label, %name, error = %e, "skipped an object");
                    return None;
                }
            };
            let data = output.shape.data(object);
            let fingerprint = output.shape.fingerprint(&data);
            out.push((topic, data, fingerprint));
        }
        Some((Self::key(namespace, name), out))
    }

    fn draft(&self, topic: &Topic, verb: &str, data: &Value, key: &str, tombstone: bool) -> Option<Draft> {
        let raw = match serde_json::value::to_raw_value(data) {
            Ok(raw) => raw,
            Err(e) => {
                tracing::warn!(source = %self.label, error = %e, "cannot encode an object");
                return None;
            }
        };
        let kind = format!("{}.{verb}", self.kind);
        match Draft::new(topic.as_str(), Some(&kind), &raw, Some(key), tombstone) {
            Ok(draft) => Some(draft),
            Err(e) => {
                tracing::warn!(source = %self.label, %key, error = %e, "cannot publish an object");
                None
            }
        }
    }

    async fn publish(&self, drafts: Vec<Draft>) -> Result<bool, Error> {
        if drafts.is_empty() {
            return Ok(true);
        }
        match self.hub.publish(drafts).await {
            Ok(_) => Ok(true),
            Err(herald::log::Error::Closed) => Err(Error::Closed),
            Err(e) => {
                tracing::warn!(source = %self.label, error = %e, "publishing failed; the next change retries");
                Ok(false)
            }
        }
    }

    async fn applied(&mut self, object: &Value) -> Result<(), Error> {
        let Some((key, rendered)) = self.render(object) else { return Ok(()) };
        let mut drafts = Vec::new();
        for (i, (topic, data, fingerprint)) in rendered.iter().enumerate() {
            let verb = match self.known[i].get(&key) {
                Some(k) if k.fingerprint == *fingerprint && k.topic == *topic => continue,
                Some(_) => "updated",
                None => "added",
            };
            drafts.extend(self.draft(topic, verb, data, &key, false));
        }
        if self.publish(drafts).await? {
            for (i, (topic, _, fingerprint)) in rendered.into_iter().enumerate() {
                self.known[i].insert(key.clone(), Known { topic, fingerprint });
            }
        }
        Ok(())
    }

    async fn deleted(&mut self, object: &Value) -> Result<(), Error> {
        let Some((key, rendered)) = self.render(object) else { return Ok(()) };
        let mut drafts = Vec::new();
        for (i, (_, data, _)) in rendered.iter().enumerate() {
            // Only what Herald holds can be removed; a deletion of an unknown key is nothing.
            if let Some(known) = self.known[i].get(&key) {
                drafts.extend(self.draft(&known.topic, "deleted", data, &key, true));
            }
        }
        if self.publish(drafts).await? {
            for known in &mut self.known {
                known.remove(&key);
            }
        }
        Ok(())
    }

    /// Diffs a complete list against Herald's keyed state under each output's scopes.
    async fn relisted(&mut self, listed: Vec<Value>) -> Result<(), Error> {
        let mut rendered: Vec<Keyed> = listed.iter().filter_map(|object| self.render(object)).collect();
        rendered.sort_by(|a, b| a.0.cmp(&b.0));
        let mut drafts = Vec::new();
        let mut now_known: Vec<HashMap<String, Known>> = Vec::with_capacity(self.outputs.len());
        let (mut added, mut updated, mut deleted) = (0usize, 0usize, 0usize);
        for (i, output) in self.outputs.iter().enumerate() {
            let snapshot = match self.hub.log.snapshot(&output.scopes).await {
                Ok(snapshot) => snapshot,
                Err(herald::log::Error::Closed) => return Err(Error::Closed),
                Err(e) => {
                    tracing::warn!(source = %self.label, error = %e, "cannot read keyed state; relist skipped");
                    return Ok(());
                }
            };
            // (topic, key) → (fingerprint, data) of what Herald holds now.
            let mut held: HashMap<(Topic, String), (u64, Value)> = HashMap::new();
            for event in &snapshot.events {
                let Some(key) = &event.key else { continue };
                let data: Value = serde_json::from_str(event.data.get()).unwrap_or(Value::Null);
                let fingerprint = output.shape.fingerprint(&data);
                held.insert((event.topic.clone(), key.to_string()), (fingerprint, data));
            }
            let mut known = HashMap::with_capacity(rendered.len());
            for (key, outputs) in &rendered {
                let (topic, data, fingerprint) = &outputs[i];
                match held.remove(&(topic.clone(), key.clone())) {
                    Some((f, _)) if f == *fingerprint => {}
                    Some(_) => {
                        updated += 1;
                        drafts.extend(self.draft(topic, "updated", data, key, false));
                    }
                    None => {
                        added += 1;
                        drafts.extend(self.draft(topic, "added", data, key, false));
                    }
                }
                known.insert(key.clone(), Known { topic: topic.clone(), fingerprint: *fingerprint });
            }
            let mut gone: Vec<_> = held.into_iter().collect();
            gone.sort_by(|a, b| a.0 .1.cmp(&b.0 .1));
            for ((topic, key), (_, data)) in gone {
                deleted += 1;
                drafts.extend(self.draft(&topic, "deleted", &data, &key, true));
            }
            now_known.push(known);
        }
        let mut complete = true;
        let mut rest = drafts;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(RELIST_BATCH));
            complete &= self.publish(rest).await?;
            rest = tail;
        }
        tracing::info!(
            source = %self.label, objects = rendered.len(), added, updated, deleted,
            "listed; keyed state reconciled"
        );
        if complete {
            self.known = now_known;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fingerprints_ignore_key_order_and_noise() {
        let a = json!({"metadata": {"name": "x", "resourceVersion": "1"}, "spec": {"a": 1, "b": [1, 2]}});
        let b = json!({"spec": {"b": [1, 2], "a": 1}, "metadata": {"resourceVersion": "2", "name": "x"}});
        assert_eq!(Shape::Object.fingerprint(&a), Shape::Object.fingerprint(&b));
        let c = json!({"metadata": {"name": "x"}, "spec": {"a": 1, "b": [2, 1]}});
        assert_ne!(Shape::Object.fingerprint(&a), Shape::Object.fingerprint(&c));
        let s1 = json!({"metadata": {"generation": 4}, "status": {"reconciledAt": "t1", "sync": {"status": "Synced"}}});
        let s2 = json!({"metadata": {"generation": 5}, "status": {"reconciledAt": "t2", "sync": {"status": "Synced"}}});
        assert_eq!(Shape::ArgoObject.fingerprint(&s1), Shape::ArgoObject.fingerprint(&s2));
        assert_ne!(Shape::Object.fingerprint(&s1), Shape::Object.fingerprint(&s2));
        // Only the exact paths are ignored, not a field of the same name elsewhere.
        let d1 = json!({"spec": {"reconciledAt": 1}});
        let d2 = json!({"spec": {"reconciledAt": 2}});
        assert_ne!(Shape::ArgoObject.fingerprint(&d1), Shape::ArgoObject.fingerprint(&d2));
    }

    #[test]
    fn object_data_leaves_managed_fields_out() {
        let o = json!({"metadata": {"name": "x", "managedFields": [{"manager": "kubectl"}]}, "spec": {}});
        assert_eq!(Shape::Object.data(&o), json!({"metadata": {"name": "x"}, "spec": {}}));
    }
}
