//! Event sources inside the node: their configuration (`[[sources.kubernetes]]`, SPEC §9), the
//! topics they own, and the readiness gates that keep `/ready` at 503 until they have synced.
//!
//! The sources themselves (kube-rs watchers, the `--demo` simulator) live in the `herald-kube`
//! crate, behind the CLI's `kubernetes` feature: this module holds only what the library needs
//! to load, validate and report on them, so the hub builds without Kubernetes dependencies.
//!
//! # Topic templates
//! A Kubernetes source publishes each object to a topic built from a template whose segments
//! are literal text or one of these placeholders, each a whole segment:
//!
//! | placeholder   | becomes |
//! |---------------|---------|
//! | `<group>`     | the API group; `core` for the core group (`""`) |
//! | `<version>`   | the API version, such as `v1` |
//! | `<kind>`      | the kind, lower case (`deployment`) |
//! | `<plural>`    | the resource's plural name (`deployments`) |
//! | `<namespace>` | the object's namespace; `_` for a cluster-scoped object |
//! | `<name>`      | the object's name |
//!
//! Names are sanitised into valid topic segments: a byte outside `A-Z a-z 0-9 _ . : @ ~ -`
//! becomes `_` (Kubernetes names never have one, so in practice names pass unchanged).
//!
//! # Invariants
//! - Every source owns the topics its template can produce, and no two sources' topics overlap
//!   (checked by [`Sources::validate`]): a source that relists may therefore tombstone every
//!   keyed state under its own topics that the API server no longer lists, without touching
//!   another source's.
//! - A [`Gate`] is opened once, by its source's first complete list; `/ready` answers 503
//!   `starting` while any gate is closed. A later relist (after `410 Gone` or a restart of the
//!   API server) does not close it again: the node keeps serving the state it has.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::topic::{Pattern, Topic};

/// The default topic template of a Kubernetes source.
pub const DEFAULT_TEMPLATE: &str = "kube/<group>/<kind>/<namespace>/<name>";
/// The topic of the Argo CD preset's compact projection (the deployment board's topic).
pub const ARGOCD_APPLICATIONS: &str = "argocd/applications/<namespace>/<name>";
/// The topic of the Argo CD preset's full Application objects (what `/api/v1/...` serves).
pub const ARGOCD_OBJECTS: &str = "argocd/objects/<namespace>/<name>";
/// The segment that stands for the namespace of a cluster-scoped object.
pub const CLUSTER_SCOPED: &str = "_";

/// `[sources]`: event sources that run inside the node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sources {
    /// `[[sources.kubernetes]]`: Kubernetes resources to watch, one table per source.
    pub kubernetes: Vec<KubernetesSource>,
}

/// One watched Kubernetes resource (SPEC §9): every object of it becomes keyed state
/// (key `namespace/name`, or `name` when cluster-scoped) on a topic of its own, with event types
/// `<kind>.added`, `<kind>.updated` and `<kind>.deleted` (a tombstone).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSource {
    /// API group, such as `apps` or `argoproj.io`; `""` for the core group (pods, configmaps).
    /// Required unless `preset` sets it.
    #[serde(default)]
    pub group: Option<String>,
    /// API version within the group, such as `v1`. Required unless `preset` sets it.
    #[serde(default)]
    pub version: Option<String>,
    /// Kind, such as `Deployment`; custom resources (CRDs) work the same as built-in ones.
    /// Required unless `preset` sets it.
    #[serde(default)]
    pub kind: Option<String>,
    /// The resource's plural (URL) name, such as `deployments`; by default the kind in lower
    /// case with the usual English plural ending, which is right for almost every kind.
    #[serde(default)]
    pub plural: Option<String>,
    /// Watch this namespace only; by default every namespace the credentials may list.
    #[serde(default)]
    pub namespace: Option<String>,
    /// A Kubernetes label selector (`app=web,tier!=cache`), applied by the API server.
    #[serde(default)]
    pub label_selector: Option<String>,
    /// Topic template (see the placeholders in the module docs); default
    /// `kube/<group>/<kind>/<namespace>/<name>`. Not allowed with a preset, which fixes it.
    #[serde(default)]
    pub topic: Option<String>,
    /// A preset: `argocd` watches `argoproj.io/v1alpha1` `Application` and publishes the
    /// deployment-board projection to `argocd/applications/<namespace>/<name>` and the full
    /// object (for `/api/v1/stream/applications`) to `argocd/objects/<namespace>/<name>`.
    #[serde(default)]
    pub preset: Option<Preset>,
}

/// What a preset makes of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Argo CD `Application`s.
    Argocd,
}

/// The resource a source watches, with every default applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// API group (`""` for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind, as the API spells it.
    pub kind: String,
    /// Plural (URL) name.
    pub plural: String,
}

/// A configuration mistake in `[[sources.kubernetes]]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sources.kubernetes[{index}]: {reason}")]
pub struct Invalid {
    /// Which source (0-based, in file order).
    pub index: usize,
    /// What is wrong.
    pub reason: String,
}

impl KubernetesSource {
    /// The Argo CD preset's source, optionally narrowed to one namespace.
    pub fn argocd(namespace: Option<&str>) -> Self {
        Self { preset: Some(Preset::Argocd), namespace: namespace.map(str::to_owned), ..Self::default() }
    }

    /// The watched resource, with the preset's and the plural's defaults applied.
    ///
    /// # Errors
    /// A description of the missing or conflicting field.
    pub fn resource(&self) -> Result<Resource, String> {
        let (group, version, kind) = match self.preset {
            Some(Preset::Argocd) => {
                let fixed = ("argoproj.io", "v1alpha1", "Application");
                for (given, (name, want)) in [&self.group, &self.version, &self.kind].into_iter().zip([
                    ("group", fixed.0),
                    ("version", fixed.1),
                    ("kind", fixed.2),
                ]) {
                    if given.as_deref().is_some_and(|g| g != want) {
                        return Err(format!("preset \"argocd\" watches {name} {want:?}; remove {name}"));
                    }
                }
                (fixed.0.to_owned(), fixed.1.to_owned(), fixed.2.to_owned())
            }
            None => {
                let need = |v: &Option<String>, name: &str| {
                    v.clone().ok_or_else(|| format!("{name} is required (or set preset = \"argocd\")"))
                };
                (need(&self.group, "group")?, need(&self.version, "version")?, need(&self.kind, "kind")?)
            }
        };
        if version.is_empty() || kind.is_empty() {
            return Err("version and kind must not be empty".into());
        }
        let plural = self.plural.clone().unwrap_or_else(|| default_plural(&kind));
        Ok(Resource { group, version, kind, plural })
    }

    /// The templates this source publishes through: one, or two for the Argo CD preset (the
    /// projection first, then the full objects).
    pub fn templates(&self) -> Vec<String> {
        match self.preset {
            Some(Preset::Argocd) => vec![ARGOCD_APPLICATIONS.to_owned(), ARGOCD_OBJECTS.to_owned()],
            None => vec![self.topic.clone().unwrap_or_else(|| DEFAULT_TEMPLATE.to_owned())],
        }
    }

    /// A short name for logs and `/ready`: `kubernetes:<group>/<version>/<kind>[@<namespace>]`.
    pub fn label(&self) -> String {
        let r = self.resource().unwrap_or(Resource {
            group: "?".into(),
            version: "?".into(),
            kind: "?".into(),
            plural: "?".into(),
        });
        let group = if r.group.is_empty() { "core" } else { &r.group };
        match &self.namespace {
            Some(ns) => format!("kubernetes:{group}/{}/{}@{ns}", r.version, r.kind),
            None => format!("kubernetes:{group}/{}/{}", r.version, r.kind),
        }
    }

    /// Checks the fields, the templates, and that the source's topics are well-formed.
    ///
    /// # Errors
    /// A description of the first mistake.
    pub fn check(&self) -> Result<(), String> {
        let resource = self.resource()?;
        if self.preset.is_some() && self.topic.is_some() {
            return Err("topic cannot be set with a preset, which fixes it".into());
        }
        if self.namespace.as_deref() == Some("") {
            return Err("namespace must not be empty (leave it out to watch every namespace)".into());
        }
        for template in self.templates() {
            let template = Template::parse(&template).map_err(|e| format!("topic {template:?}: {e}"))?;
            template.scope(&resource, self.namespace.as_deref()).map_err(|e| format!("topic: {e}"))?;
        }
        Ok(())
    }

    /// The patterns covering every topic this source may publish to, one per template.
    ///
    /// # Errors
    /// A description of the mistake, as [`KubernetesSource::check`].
    pub fn scopes(&self) -> Result<Vec<Pattern>, String> {
        let resource = self.resource()?;
        self.templates().iter().map(|t| Template::parse(t)?.scope(&resource, self.namespace.as_deref())).collect()
    }
}

impl Sources {
    /// Checks every source, and that no two of them can publish to the same topic.
    ///
    /// # Errors
    /// [`Invalid`] names the source and the mistake.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut taken: Vec<(usize, Pattern)> = Vec::new();
        for (index, source) in self.kubernetes.iter().enumerate() {
            source.check().map_err(|reason| Invalid { index, reason })?;
            for scope in source.scopes().map_err(|reason| Invalid { index, reason })? {
                if let Some((other, _)) = taken.iter().find(|(_, p)| p.intersects(&scope)) {
                    return Err(Invalid {
                        index,
                        reason: format!(
                            "its topics ({scope}) overlap those of sources.kubernetes[{other}]; each \
                             source must own its topics (give one a namespace or its own topic template)"
                        ),
                    });
                }
                taken.push((index, scope));
            }
        }
        Ok(())
    }
}

/// The kind's default plural: lower case, with `-s`, `-es` or `-ies` as English does (what
/// `kubectl` guesses for a CRD without discovery).
pub fn default_plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with('s') || lower.ends_with('x') || lower.ends_with("ch") || lower.ends_with("sh") {
        format!("{lower}es")
    } else if lower.ends_with('y') && !lower.ends_with("ay") && !lower.ends_with("ey") && !lower.ends_with("oy") {
        format!("{}ies", &lower[..lower.len() - 1])
    } else {
        format!("{lower}s")
    }
}

/// One segment of a topic template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Group,
    Version,
    Kind,
    Plural,
    Namespace,
    Name,
}

/// A parsed topic template (see the module docs).
///
/// # Examples
/// ```
/// use herald::sources::{Resource, Template};
/// let t = Template::parse("kube/<group>/<kind>/<namespace>/<name>").unwrap();
/// let r = Resource { group: "apps".into(), version: "v1".into(), kind: "Deployment".into(), plural: "deployments".into() };
/// assert_eq!(t.render(&r, Some("prod"), "web").unwrap().as_str(), "kube/apps/deployment/prod/web");
/// assert_eq!(t.scope(&r, None).unwrap().as_str(), "kube/apps/deployment/*/*");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses a template.
    ///
    /// # Errors
    /// A description of an unknown placeholder, a placeholder that is not a whole segment, or
    /// an invalid literal segment.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("the template is empty".into());
        }
        let mut parts = Vec::new();
        for segment in text.split('/') {
            let part = match segment {
                "<group>" => Part::Group,
                "<version>" => Part::Version,
                "<kind>" => Part::Kind,
                "<plural>" => Part::Plural,
                "<namespace>" => Part::Namespace,
                "<name>" => Part::Name,
                s if s.contains(['<', '>']) => {
                    return Err(format!(
                        "{s:?}: a placeholder must be a whole segment, one of <group> <version> <kind> \
                         <plural> <namespace> <name>"
                    ))
                }
                s => {
                    Topic::new(s).map_err(|e| format!("segment {s:?} {e}"))?;
                    Part::Literal(s.to_owned())
                }
            };
            parts.push(part);
        }
        Ok(Self { parts })
    }

    /// The topic of object `name` in `namespace` (`None`: cluster-scoped).
    ///
    /// # Errors
    /// When the result is not a valid topic (longer than 256 bytes).
    pub fn render(&self, resource: &Resource, namespace: Option<&str>, name: &str) -> Result<Topic, String> {
        let segments: Vec<String> = self
            .parts
            .iter()
            .map(|part| {
                self.fixed(part, resource).unwrap_or_else(|| match part {
                    Part::Namespace => namespace.map_or_else(|| CLUSTER_SCOPED.to_owned(), segment),
                    _ => segment(name),
                })
            })
            .collect();
        let text = segments.join("/");
        Topic::new(&text).map_err(|e| format!("topic {text:?} {e}"))
    }

    /// The pattern that matches every topic [`Template::render`] can produce for `resource`
    /// (narrowed to one namespace when given).
    ///
    /// # Errors
    /// When the pattern is not valid (too long).
    pub fn scope(&self, resource: &Resource, namespace: Option<&str>) -> Result<Pattern, String> {
        let segments: Vec<String> = self
            .parts
            .iter()
            .map(|part| {
                self.fixed(part, resource).unwrap_or_else(|| match (part, namespace) {
                    (Part::Namespace, Some(ns)) => segment(ns),
                    _ => "*".to_owned(),
                })
            })
            .collect();
        let text = segments.join("/");
        Pattern::new(&text).map_err(|e| format!("pattern {text:?} {e}"))
    }

    /// The text of a part that does not depend on the object.
    fn fixed(&self, part: &Part, r: &Resource) -> Option<String> {
        Some(match part {
            Part::Literal(s) => s.clone(),
            Part::Group if r.group.is_empty() => "core".to_owned(),
            Part::Group => segment(&r.group),
            Part::Version => segment(&r.version),
            Part::Kind => segment(&r.kind.to_ascii_lowercase()),
            Part::Plural => segment(&r.plural),
            Part::Namespace | Part::Name => return None,
        })
    }
}

/// `text` as a topic segment: bytes outside `A-Z a-z 0-9 _ . : @ ~ -` become `_`.
pub fn segment(text: &str) -> String {
    if text.is_empty() {
        return "_".to_owned();
    }
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '@' | '~' | '-') { c } else { '_' })
        .collect()
}

/// Readiness gates: one per source that must sync before the node counts as ready.
///
/// Lives in [`Lifecycle`](crate::shutdown::Lifecycle); `/ready` lists the closed ones.
#[derive(Debug, Default)]
pub struct Gates {
    gates: Mutex<Vec<Gate>>,
}

/// One source's readiness: closed until [`Gate::open`]. A source gate stays open once opened;
/// the cluster log's `redis` gate also closes again while Redis is unreachable.
#[derive(Debug, Clone)]
pub struct Gate {
    name: Arc<str>,
    open: Arc<AtomicBool>,
}

impl Gate {
    /// Marks the source synced.
    pub fn open(&self) {
        self.open.store(true, Ordering::Release);
    }

    /// Marks the dependency unavailable again (`/ready` answers 503 until it reopens).
    pub fn close(&self) {
        self.open.store(false, Ordering::Release);
    }

    /// Whether the source has synced.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Gates {
    /// Adds a closed gate named `name` and returns it for its source to open.
    pub fn add(&self, name: &str) -> Gate {
        let gate = Gate { name: name.into(), open: Arc::new(AtomicBool::new(false)) };
        self.gates.lock().unwrap_or_else(|e| e.into_inner()).push(gate.clone());
        gate
    }

    /// The names of the gates still closed, in the order they were added.
    pub fn waiting(&self) -> Vec<String> {
        let gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        gates.iter().filter(|g| !g.is_open()).map(|g| g.name.to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Sources {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn templates_render_and_scope() {
        let r = Resource {
            group: String::new(),
            version: "v1".into(),
            kind: "ConfigMap".into(),
            plural: "configmaps".into(),
        };
        let t = Template::parse(DEFAULT_TEMPLATE).unwrap();
        assert_eq!(t.render(&r, Some("kube-system"), "a.b").unwrap().as_str(), "kube/core/configmap/kube-system/a.b");
        assert_eq!(t.render(&r, None, "x").unwrap().as_str(), "kube/core/configmap/_/x");
        assert_eq!(t.render(&r, Some("n"), "we ird/na me").unwrap().as_str(), "kube/core/configmap/n/we_ird_na_me");
        assert_eq!(t.scope(&r, Some("n s")).unwrap().as_str(), "kube/core/configmap/n_s/*");
        let t = Template::parse("cm/<version>/<plural>/<name>").unwrap();
        assert_eq!(t.render(&r, Some("n"), "x").unwrap().as_str(), "cm/v1/configmaps/x");
        assert_eq!(t.scope(&r, Some("n")).unwrap().as_str(), "cm/v1/configmaps/*");
        for bad in ["", "a/<nam>", "a/x<name>", "a//b", "a b/<name>"] {
            assert!(Template::parse(bad).is_err(), "{bad:?}");
        }
        assert!(t.render(&r, None, &"n".repeat(300)).is_err());
    }

    #[test]
    fn plurals_follow_english() {
        let cases = [
            ("Pod", "pods"),
            ("Ingress", "ingresses"),
            ("NetworkPolicy", "networkpolicies"),
            ("Gateway", "gateways"),
            ("Application", "applications"),
        ];
        for (kind, plural) in cases {
            assert_eq!(default_plural(kind), plural);
        }
    }

    #[test]
    fn config_parses_and_validates() {
        let s = parse(
            "[[kubernetes]]\npreset = \"argocd\"\n\n[[kubernetes]]\ngroup = \"apps\"\nversion = \"v1\"\nkind = \"Deployment\"\nnamespace = \"prod\"\nlabel_selector = \"app=web\"\n",
        );
        s.validate().unwrap();
        assert_eq!(s.kubernetes[0].resource().unwrap().plural, "applications");
        assert_eq!(s.kubernetes[0].label(), "kubernetes:argoproj.io/v1alpha1/Application");
        assert_eq!(s.kubernetes[1].label(), "kubernetes:apps/v1/Deployment@prod");
        let scopes = s.kubernetes[0].scopes().unwrap();
        assert_eq!(
            scopes.iter().map(Pattern::as_str).collect::<Vec<_>>(),
            ["argocd/applications/*/*", "argocd/objects/*/*"]
        );

        let err = |text: &str| parse(text).validate().unwrap_err().to_string();
        assert!(err("[[kubernetes]]\ngroup = \"apps\"\nversion = \"v1\"\n").contains("kind is required"));
        assert!(err("[[kubernetes]]\npreset = \"argocd\"\ntopic = \"x/<name>\"\n").contains("topic cannot be set"));
        assert!(err("[[kubernetes]]\npreset = \"argocd\"\nkind = \"Rollout\"\n").contains("remove kind"));
        assert!(err("[[kubernetes]]\ngroup = \"\"\nversion = \"v1\"\nkind = \"Pod\"\ntopic = \"p/<nme>\"\n")
            .contains("<nme>"));
        let overlap = err(
            "[[kubernetes]]\ngroup = \"\"\nversion = \"v1\"\nkind = \"Pod\"\n[[kubernetes]]\ngroup = \"\"\nversion = \"v1\"\nkind = \"Pod\"\nnamespace = \"a\"\n",
        );
        assert!(overlap.contains("sources.kubernetes[1]") && overlap.contains("overlap"), "{overlap}");
        // Two namespaces of one resource do not overlap.
        parse("[[kubernetes]]\npreset = \"argocd\"\nnamespace = \"a\"\n[[kubernetes]]\npreset = \"argocd\"\nnamespace = \"b\"\n")
            .validate()
            .unwrap();
        assert!(toml::from_str::<Sources>("[[kubernetes]]\npreset = \"argocd\"\nbogus = 1\n").is_err());
        assert!(toml::from_str::<Sources>("[[kubernetes]]\npreset = \"flux\"\n").is_err());
    }

    #[test]
    fn gates_report_the_closed_ones() {
        let gates = Gates::default();
        assert!(gates.waiting().is_empty());
        let a = gates.add("a");
        let _b = gates.add("b");
        assert_eq!(gates.waiting(), ["a", "b"]);
        a.open();
        assert_eq!(gates.waiting(), ["b"]);
    }
}
