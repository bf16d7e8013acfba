//! `deploy/kubernetes/*.yaml` against the Kubernetes API types (k8s-openapi, v1.33): every
//! document must be a known kind whose every field the API knows (a typed round trip loses
//! nothing), and together they must wire up as a cluster-mode deployment: several replicas on
//! the Redis log, probes on `/health` and `/ready`, a SIGTERM grace longer than Herald's drain,
//! a Service that selects the pods, and RBAC for the Argo CD watch bound to the pods' account.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde_json::Value;

#[derive(Default)]
struct Manifests {
    deployments: Vec<Deployment>,
    stateful_sets: Vec<StatefulSet>,
    services: Vec<Service>,
    config_maps: Vec<ConfigMap>,
    accounts: Vec<ServiceAccount>,
    roles: Vec<ClusterRole>,
    bindings: Vec<ClusterRoleBinding>,
}

/// `value` as `T`, failing when the typed form drops or changes anything (an unknown or
/// misspelt field, a value of the wrong shape). The typed form may add what the API implies
/// (such as `apiVersion` and `kind` of embedded objects).
fn typed<T: DeserializeOwned + serde::Serialize>(value: &Value, file: &str) -> T {
    let typed: T = serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{file}: {e}\n{value:#}"));
    let back = serde_json::to_value(&typed).unwrap();
    if let Err(path) = kept(value, &back, String::new()) {
        panic!("{file}: {path} is not a field the API knows, or has the wrong shape");
    }
    typed
}

/// Whether everything in `original` is in `back`, unchanged; `Err` names the first path that is not.
fn kept(original: &Value, back: &Value, path: String) -> Result<(), String> {
    match (original, back) {
        (Value::Object(o), Value::Object(b)) => {
            o.iter().try_for_each(|(k, v)| kept(v, b.get(k).unwrap_or(&Value::Null), format!("{path}.{k}")))
        }
        (Value::Array(o), Value::Array(b)) if o.len() == b.len() => {
            o.iter().zip(b).enumerate().try_for_each(|(i, (o, b))| kept(o, b, format!("{path}[{i}]")))
        }
        (o, b) if o == b => Ok(()),
        _ => Err(path),
    }
}

fn load() -> Manifests {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes");
    let mut all = Manifests::default();
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty());
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(file.ends_with(".yaml"), "{file}: only .yaml files belong in deploy/kubernetes");
        let text = std::fs::read_to_string(&path).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        for doc in docs.into_iter().filter(|d| !d.is_null()) {
            match (doc["apiVersion"].as_str().unwrap_or(""), doc["kind"].as_str().unwrap_or("")) {
                ("apps/v1", "Deployment") => all.deployments.push(typed(&doc, &file)),
                ("apps/v1", "StatefulSet") => all.stateful_sets.push(typed(&doc, &file)),
                ("v1", "Service") => all.services.push(typed(&doc, &file)),
                ("v1", "ConfigMap") => all.config_maps.push(typed(&doc, &file)),
                ("v1", "ServiceAccount") => all.accounts.push(typed(&doc, &file)),
                ("rbac.authorization.k8s.io/v1", "ClusterRole") => all.roles.push(typed(&doc, &file)),
                ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => all.bindings.push(typed(&doc, &file)),
                (api, kind) => panic!("{file}: unexpected {api} {kind}"),
            }
        }
    }
    all
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[test]
fn manifests_parse_as_api_objects_and_wire_up_a_cluster() {
    let m = load();
    let herald = m.deployments.iter().find(|d| d.metadata.name.as_deref() == Some("herald")).unwrap();
    let spec = herald.spec.as_ref().unwrap();
    assert!(spec.replicas.unwrap() >= 3, "several replicas");
    let pod = spec.template.spec.as_ref().unwrap();
    let labels = spec.template.metadata.as_ref().unwrap().labels.clone().unwrap();
    assert!(selects(&spec.selector.match_labels.clone().unwrap(), &labels));
    let container = &pod.containers[0];

    // Probes: liveness on /health, readiness on /ready, on the container's port.
    let port_name = container.ports.as_ref().unwrap()[0].name.clone().unwrap();
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        let get = p.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.port, IntOrString::String(port_name.clone()));
        get.path.clone().unwrap()
    };
    assert_eq!(probe_path(&container.liveness_probe), "/health");
    assert_eq!(probe_path(&container.readiness_probe), "/ready");

    // The configuration the pods read is a valid Herald configuration in cluster mode, and its
    // drain ends before Kubernetes' SIGKILL.
    let args = container.args.clone().unwrap();
    let config_path = &args[args.iter().position(|a| a == "--config").unwrap() + 1];
    let mount =
        container.volume_mounts.as_ref().unwrap().iter().find(|v| config_path.starts_with(&v.mount_path)).unwrap();
    let volume = pod.volumes.as_ref().unwrap().iter().find(|v| v.name == mount.name).unwrap();
    let map_name = volume.config_map.as_ref().unwrap().name.clone();
    let map = m.config_maps.iter().find(|c| c.metadata.name.as_deref() == Some(map_name.as_str())).unwrap();
    let file = Path::new(config_path).file_name().unwrap().to_str().unwrap();
    let toml = &map.data.as_ref().unwrap()[file];
    let config = herald::Config::from_toml_and_env(toml, []).unwrap();
    assert!(config.listen.ip().is_unspecified(), "listens on every interface in the pod");
    let grace = pod.termination_grace_period_seconds.unwrap();
    assert!(
        config.shutdown_timeout_s.as_secs() < grace as u64,
        "drain ({:?}) within the grace ({grace} s)",
        config.shutdown_timeout_s
    );

    // The Redis URL names the Redis Service, whose pods run Redis with the stream kept on disk.
    let url = config.cluster.redis_url.as_ref().expect("cluster mode").expose().to_owned();
    let redis_svc =
        m.services.iter().find(|s| url.contains(&format!("//{}:", s.metadata.name.as_deref().unwrap()))).unwrap();
    let redis = m.stateful_sets.iter().find(|s| s.metadata.name.as_deref() == Some("herald-redis")).unwrap();
    let redis_labels = redis.spec.as_ref().unwrap().template.metadata.as_ref().unwrap().labels.clone().unwrap();
    assert!(selects(&redis_svc.spec.as_ref().unwrap().selector.clone().unwrap(), &redis_labels));
    let redis_args = redis.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0].args.clone().unwrap();
    assert!(redis_args.windows(2).any(|w| w == ["--appendonly", "yes"]), "{redis_args:?}");

    // The Herald Service reaches the Herald pods on their named port.
    let svc = m.services.iter().find(|s| s.metadata.name.as_deref() == Some("herald")).unwrap();
    let svc_spec = svc.spec.as_ref().unwrap();
    assert!(selects(&svc_spec.selector.clone().unwrap(), &labels));
    assert_eq!(svc_spec.ports.as_ref().unwrap()[0].target_port, Some(IntOrString::String(port_name.clone())));

    // RBAC: the pods' service account may get, list and watch Argo CD Applications.
    let account = pod.service_account_name.clone().unwrap();
    let namespace = herald.metadata.namespace.clone().unwrap();
    assert!(m.accounts.iter().any(|a| a.metadata.name.as_deref() == Some(account.as_str())
        && a.metadata.namespace.as_deref() == Some(namespace.as_str())));
    let binding = m
        .bindings
        .iter()
        .find(|b| {
            b.subjects.iter().flatten().any(|s| {
                s.kind == "ServiceAccount" && s.name == account && s.namespace.as_deref() == Some(namespace.as_str())
            })
        })
        .expect("a binding for the service account");
    let role = m.roles.iter().find(|r| r.metadata.name.as_deref() == Some(binding.role_ref.name.as_str())).unwrap();
    let rule = role
        .rules
        .iter()
        .flatten()
        .find(|r| r.api_groups.iter().flatten().any(|g| g == "argoproj.io"))
        .expect("a rule for argoproj.io");
    assert!(rule.resources.iter().flatten().any(|r| r == "applications"));
    for verb in ["get", "list", "watch"] {
        assert!(rule.verbs.iter().any(|v| v == verb), "{verb}");
    }
}
