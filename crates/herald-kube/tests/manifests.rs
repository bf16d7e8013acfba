//! `deploy/kubernetes/`: a Kustomize base and two overlays, `single` (one node, the embedded log
//! on a PersistentVolumeClaim) and `cluster` (three nodes on a Redis log). Checked three ways:
//!
//! - every overlay is rendered by kustomize (`kubectl kustomize`, kustomize 5), and every file
//!   of the directory is accounted for: a resource file, a `kustomization.yaml`, or a
//!   `herald.toml` that Herald accepts;
//! - the resource files and the rendered overlays pass Kubernetes' own OpenAPI schemas, strictly
//!   (an unknown or misspelt field fails), at [`KUBERNETES_VERSIONS`], with PyPI's
//!   `kubernetes-validate` (offline schemas);
//! - the rendered objects read into the API types (k8s-openapi, a typed round trip that loses
//!   nothing) wire up: probes on `/health` and `/ready`, resources, a restricted security
//!   context matching the image's user (deploy/image/Containerfile), a SIGTERM grace longer
//!   than Herald's drain, a Service and a PodDisruptionBudget that select the pods, RBAC for the
//!   Argo CD watch and (cluster) the Lease of cluster-mode sources, Redis with its stream on
//!   disk, and a configuration Herald starts with even when kubelet adds its Service variables.
//!
//! A missing tool (kubectl, kubernetes-validate) skips with a message on a developer's machine
//! and fails in CI (`CI` set), where `.ci/run` installs what it can.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PersistentVolumeClaim, PodSpec, Probe, Service, ServiceAccount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The Kubernetes versions whose schemas the manifests are validated against: the one
/// k8s-openapi is built for here (the oldest Herald supports), and the newest the validator has.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.33", "1.37"];

/// The namespace everything lives in (base/kustomization.yaml).
const NAMESPACE: &str = "herald";

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// `false` after a message where `program` is missing on a developer's machine; a failure in CI.
fn have(program: &str, check: &[&str], install: &str) -> bool {
    let found = Command::new(program).args(check).output().is_ok_and(|o| o.status.success());
    if !found {
        let msg = format!("{program} {} failed: {install}", check.join(" "));
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("SKIPPED (tool missing): {msg}");
    }
    found
}

fn have_kubectl() -> bool {
    have(
        "kubectl",
        &["version", "--client"],
        "kubectl (with kustomize 5 built in) renders the overlays; this machine image ships it, \
         Debian's kubernetes-client (1.20) is too old",
    )
}

/// `kubectl kustomize DIR`: the rendered YAML.
fn render(dir: &Path) -> String {
    let out = Command::new("kubectl").arg("kustomize").arg(dir).output().unwrap();
    assert!(out.status.success(), "kubectl kustomize {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn overlays() -> Vec<PathBuf> {
    let dir = deploy_dir().join("kubernetes/overlays");
    let mut all: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    all.sort();
    all
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn every_file_and_overlay_passes_the_kubernetes_schemas() {
    if !have_kubectl()
        || !have(
            "python3",
            &["-c", "import kubernetes_validate"],
            "pip install kubernetes-validate (Kubernetes' OpenAPI schemas, offline)",
        )
    {
        return;
    }
    let root = deploy_dir().join("kubernetes");
    let mut all = Vec::new();
    files(&root, &mut all);
    all.sort();
    let mut to_validate = Vec::new();
    let mut kustomizations = 0;
    for path in all {
        let name = path.file_name().unwrap().to_str().unwrap();
        match name {
            // Kustomize's own format, not an API object: rendered below (base and overlays).
            "kustomization.yaml" => kustomizations += 1,
            // A configMapGenerator source: Herald must accept it as it is.
            "herald.toml" => {
                let text = std::fs::read_to_string(&path).unwrap();
                herald::Config::from_toml_and_env(&text, []).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            _ if name.ends_with(".yaml") => to_validate.push(path),
            _ => panic!("{}: neither a resource, a kustomization nor herald.toml", path.display()),
        }
    }
    let rendered = tempfile::tempdir().unwrap();
    let mut dirs = vec![root.join("base")];
    dirs.extend(overlays());
    assert_eq!(dirs.len(), kustomizations, "every kustomization is rendered: {dirs:?}");
    for dir in &dirs {
        let out = rendered.path().join(format!("{}.yaml", dir.file_name().unwrap().to_str().unwrap()));
        std::fs::write(&out, render(dir)).unwrap();
        to_validate.push(out);
    }
    let mut validate = Command::new("python3");
    validate.args(["-m", "kubernetes_validate", "--strict", "--quiet"]);
    for version in KUBERNETES_VERSIONS {
        validate.args(["-k", version]);
    }
    let out = validate.args(&to_validate).output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "kubernetes-validate --strict:\n{report}");
    assert!(!report.contains("ERROR") && !report.contains("failed"), "{report}");
}

/// The API objects of one rendered overlay.
#[derive(Default)]
struct Manifests {
    namespaces: Vec<Namespace>,
    deployments: Vec<Deployment>,
    stateful_sets: Vec<StatefulSet>,
    services: Vec<Service>,
    config_maps: Vec<ConfigMap>,
    claims: Vec<PersistentVolumeClaim>,
    budgets: Vec<PodDisruptionBudget>,
    accounts: Vec<ServiceAccount>,
    cluster_roles: Vec<ClusterRole>,
    cluster_bindings: Vec<ClusterRoleBinding>,
    roles: Vec<Role>,
    bindings: Vec<RoleBinding>,
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

fn load(overlay: &Path) -> Manifests {
    let file = format!("overlays/{}", overlay.file_name().unwrap().to_string_lossy());
    let docs: Vec<Value> = serde_saphyr::from_multiple(&render(overlay)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut all = Manifests::default();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let (api, kind) = (doc["apiVersion"].as_str().unwrap_or(""), doc["kind"].as_str().unwrap_or(""));
        let cluster_scoped = matches!(kind, "Namespace" | "ClusterRole" | "ClusterRoleBinding");
        let namespace = doc["metadata"]["namespace"].as_str();
        assert_eq!(namespace, (!cluster_scoped).then_some(NAMESPACE), "{file}: {kind} in namespace {namespace:?}");
        match (api, kind) {
            ("v1", "Namespace") => all.namespaces.push(typed(&doc, &file)),
            ("apps/v1", "Deployment") => all.deployments.push(typed(&doc, &file)),
            ("apps/v1", "StatefulSet") => all.stateful_sets.push(typed(&doc, &file)),
            ("v1", "Service") => all.services.push(typed(&doc, &file)),
            ("v1", "ConfigMap") => all.config_maps.push(typed(&doc, &file)),
            ("v1", "PersistentVolumeClaim") => all.claims.push(typed(&doc, &file)),
            ("v1", "ServiceAccount") => all.accounts.push(typed(&doc, &file)),
            ("policy/v1", "PodDisruptionBudget") => all.budgets.push(typed(&doc, &file)),
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => all.cluster_roles.push(typed(&doc, &file)),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => all.cluster_bindings.push(typed(&doc, &file)),
            ("rbac.authorization.k8s.io/v1", "Role") => all.roles.push(typed(&doc, &file)),
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => all.bindings.push(typed(&doc, &file)),
            (api, kind) => panic!("{file}: unexpected {api} {kind}"),
        }
    }
    all
}

fn named<'a, T: k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>>(
    items: &'a [T],
    name: &str,
) -> Option<&'a T> {
    items.iter().find(|i| i.metadata().name.as_deref() == Some(name))
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// What the image runs as and keeps its data in, from deploy/image/Containerfile's `USER` and
/// `VOLUME`.
fn image_user_and_volume() -> ((i64, i64), String) {
    let text = std::fs::read_to_string(deploy_dir().join("image/Containerfile")).unwrap();
    let line = |word: &str| {
        text.lines().find_map(|l| l.strip_prefix(word)).unwrap_or_else(|| panic!("no {word} in the Containerfile"))
    };
    let (uid, gid) = line("USER ").trim().split_once(':').unwrap();
    ((uid.parse().unwrap(), gid.parse().unwrap()), line("VOLUME ").trim().to_owned())
}

/// What kubelet puts into a pod's environment for `services` with service links on (its
/// `FromServices`), at made-up cluster IPs; headless Services get none.
fn kubelet_env(services: &[Service]) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    for (n, service) in services.iter().enumerate() {
        let spec = service.spec.as_ref().unwrap();
        if spec.cluster_ip.as_deref() == Some("None") {
            continue;
        }
        let ip = format!("10.96.0.{}", n + 10);
        let prefix = service.metadata.name.as_deref().unwrap().to_uppercase().replace('-', "_");
        let ports = spec.ports.as_ref().unwrap();
        vars.push((format!("{prefix}_SERVICE_HOST"), ip.clone()));
        vars.push((format!("{prefix}_SERVICE_PORT"), ports[0].port.to_string()));
        for port in ports {
            if let Some(name) = &port.name {
                vars.push((
                    format!("{prefix}_SERVICE_PORT_{}", name.to_uppercase().replace('-', "_")),
                    port.port.to_string(),
                ));
            }
        }
        for (i, port) in ports.iter().enumerate() {
            let proto = port.protocol.clone().unwrap_or_else(|| "TCP".to_owned());
            let link = format!("{}://{ip}:{}", proto.to_lowercase(), port.port);
            if i == 0 {
                vars.push((format!("{prefix}_PORT"), link.clone()));
            }
            let base = format!("{prefix}_PORT_{}_{}", port.port, proto.to_uppercase());
            vars.push((format!("{base}_PROTO"), proto.to_lowercase()));
            vars.push((format!("{base}_PORT"), port.port.to_string()));
            vars.push((format!("{base}_ADDR"), ip.clone()));
            vars.push((base, link));
        }
    }
    vars
}

fn quantity(map: &Option<BTreeMap<String, Quantity>>, key: &str) -> Option<String> {
    map.as_ref()?.get(key).map(|q| q.0.clone())
}

/// The restricted Pod Security Standard, and the rest of what a production pod should say:
/// probes, resources, no service links.
fn check_pod(what: &str, pod: &PodSpec) {
    let security = pod.security_context.as_ref().unwrap_or_else(|| panic!("{what}: a pod securityContext"));
    assert_eq!(security.run_as_non_root, Some(true), "{what}: runAsNonRoot");
    assert!(security.run_as_user.is_some_and(|u| u > 0), "{what}: a non-root runAsUser");
    assert_eq!(security.seccomp_profile.as_ref().map(|p| p.type_.as_str()), Some("RuntimeDefault"), "{what}: seccomp");
    assert_eq!(pod.enable_service_links, Some(false), "{what}: enableServiceLinks: false");
    for c in &pod.containers {
        let what = format!("{what}/{}", c.name);
        let sc = c.security_context.as_ref().unwrap_or_else(|| panic!("{what}: a container securityContext"));
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{what}: allowPrivilegeEscalation");
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{what}: readOnlyRootFilesystem");
        assert_ne!(sc.privileged, Some(true), "{what}: privileged");
        let dropped = sc.capabilities.as_ref().and_then(|c| c.drop.clone()).unwrap_or_default();
        assert!(dropped.iter().any(|d| d == "ALL"), "{what}: capabilities drop ALL");
        assert!(
            sc.capabilities.as_ref().and_then(|c| c.add.as_ref()).is_none_or(|a| a.is_empty()),
            "{what}: adds none"
        );
        let resources = c.resources.as_ref().unwrap_or_else(|| panic!("{what}: resources"));
        assert!(quantity(&resources.requests, "cpu").is_some(), "{what}: a CPU request");
        assert!(quantity(&resources.requests, "memory").is_some(), "{what}: a memory request");
        assert!(quantity(&resources.limits, "memory").is_some(), "{what}: a memory limit");
        assert!(c.liveness_probe.is_some() && c.readiness_probe.is_some(), "{what}: liveness and readiness probes");
    }
}

/// The path of an httpGet probe on the container's named port.
fn probe_path(probe: &Option<Probe>, port: &str) -> String {
    let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
    assert_eq!(get.port, IntOrString::String(port.to_owned()));
    get.path.clone().unwrap()
}

/// The rules of the Role or ClusterRole that some binding to Herald's service account grants.
fn granted(m: &Manifests, account: &str) -> Vec<PolicyRule> {
    let ours = |s: &k8s_openapi::api::rbac::v1::Subject| {
        s.kind == "ServiceAccount" && s.name == account && s.namespace.as_deref() == Some(NAMESPACE)
    };
    let mut rules = Vec::new();
    for b in m.cluster_bindings.iter().filter(|b| b.subjects.iter().flatten().any(ours)) {
        assert_eq!(b.role_ref.kind, "ClusterRole");
        rules.extend(named(&m.cluster_roles, &b.role_ref.name).unwrap().rules.clone().unwrap_or_default());
    }
    for b in m.bindings.iter().filter(|b| b.subjects.iter().flatten().any(ours)) {
        let role = match b.role_ref.kind.as_str() {
            "Role" => named(&m.roles, &b.role_ref.name).unwrap().rules.clone(),
            _ => named(&m.cluster_roles, &b.role_ref.name).unwrap().rules.clone(),
        };
        rules.extend(role.unwrap_or_default());
    }
    rules
}

fn allows(rules: &[PolicyRule], group: &str, resource: &str, verb: &str) -> bool {
    rules.iter().any(|r| {
        r.api_groups.iter().flatten().any(|g| g == group)
            && r.resources.iter().flatten().any(|x| x == resource)
            && r.verbs.iter().any(|v| v == verb)
    })
}

/// What both overlays must hold; returns Herald's configuration and the Deployment's replicas.
fn check_overlay(name: &str, m: &Manifests) -> (herald::Config, i32) {
    let ns = named(&m.namespaces, NAMESPACE).unwrap_or_else(|| panic!("{name}: the namespace"));
    let ns_labels = ns.metadata.labels.clone().unwrap_or_default();
    assert_eq!(ns_labels.get("pod-security.kubernetes.io/enforce").map(String::as_str), Some("restricted"));

    let herald = named(&m.deployments, "herald").unwrap_or_else(|| panic!("{name}: Deployment herald"));
    let spec = herald.spec.as_ref().unwrap();
    let replicas = spec.replicas.unwrap();
    let pod = spec.template.spec.as_ref().unwrap();
    let labels = spec.template.metadata.as_ref().unwrap().labels.clone().unwrap();
    assert!(selects(&spec.selector.match_labels.clone().unwrap(), &labels));
    for s in &m.stateful_sets {
        check_pod(
            &format!("{name}: {}", s.metadata.name.as_deref().unwrap()),
            s.spec.as_ref().unwrap().template.spec.as_ref().unwrap(),
        );
    }
    check_pod(&format!("{name}: herald"), pod);
    let container: &Container = &pod.containers[0];

    // The image deploy/image/build.sh tags, its user, and its data volume.
    assert_eq!(container.image.as_deref(), Some(format!("herald:{}", env!("CARGO_PKG_VERSION")).as_str()));
    let ((uid, gid), volume) = image_user_and_volume();
    let security = pod.security_context.as_ref().unwrap();
    assert_eq!((security.run_as_user, security.run_as_group), (Some(uid), Some(gid)), "{name}: the image's user");
    assert_eq!(security.fs_group, Some(gid), "{name}: volumes writable by the image's group");

    // Probes: startup and liveness on /health, readiness on /ready, on the container's port.
    let port = container.ports.as_ref().unwrap()[0].name.clone().unwrap();
    assert_eq!(probe_path(&container.startup_probe, &port), "/health");
    assert_eq!(probe_path(&container.liveness_probe, &port), "/health");
    assert_eq!(probe_path(&container.readiness_probe, &port), "/ready");

    // The configuration the pods read is one Herald starts with, even with service links on
    // (kubelet's variables for every Service of the overlay), and its drain ends before
    // Kubernetes' SIGKILL.
    let args = container.args.clone().unwrap();
    assert_eq!(args[0], "serve");
    let config_path = &args[args.iter().position(|a| a == "--config").unwrap() + 1];
    let mounts = container.volume_mounts.clone().unwrap();
    let mount = mounts.iter().find(|v| config_path.starts_with(&v.mount_path)).unwrap();
    let volume_of = |mount_name: &str| pod.volumes.as_ref().unwrap().iter().find(|v| v.name == mount_name).unwrap();
    let map_name = volume_of(&mount.name).config_map.as_ref().unwrap().name.clone();
    let map = named(&m.config_maps, &map_name).unwrap_or_else(|| panic!("{name}: ConfigMap {map_name}"));
    let file = Path::new(config_path).file_name().unwrap().to_str().unwrap();
    let toml = &map.data.as_ref().unwrap()[file];
    let env = kubelet_env(&m.services);
    assert!(env.iter().any(|(k, _)| k == "HERALD_SERVICE_HOST"), "{name}: {env:?}");
    let config = herald::Config::from_toml_and_env(toml, env).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(config.listen.ip().is_unspecified(), "listens on every interface in the pod");
    assert_eq!(i32::from(config.listen.port()), container.ports.as_ref().unwrap()[0].container_port);
    let grace = pod.termination_grace_period_seconds.unwrap();
    assert!(config.shutdown_timeout_s.as_secs() < grace as u64, "{name}: drain within the grace ({grace} s)");

    // The embedded log's directory is the image's volume, mounted writable (the root
    // filesystem is not). In cluster mode Redis is the log and data_dir is not used.
    if config.cluster.redis_url.is_none() {
        let data = mounts.iter().find(|v| Path::new(&v.mount_path) == config.data_dir);
        let data = data.unwrap_or_else(|| panic!("{name}: a volume at data_dir {:?}", config.data_dir));
        assert_eq!(data.mount_path, volume, "{name}: data_dir is the image's VOLUME");
        assert_ne!(data.read_only, Some(true));
    }

    // The Service and the PodDisruptionBudget select the pods; the Service reaches the named port.
    let svc = named(&m.services, "herald").unwrap();
    let svc_spec = svc.spec.as_ref().unwrap();
    assert!(selects(&svc_spec.selector.clone().unwrap(), &labels));
    assert_eq!(svc_spec.ports.as_ref().unwrap()[0].target_port, Some(IntOrString::String(port.clone())));
    let pdb = m.budgets.iter().find(|b| {
        let sel = b.spec.as_ref().unwrap().selector.as_ref().unwrap();
        selects(&sel.match_labels.clone().unwrap_or_default(), &labels)
    });
    let pdb = pdb.unwrap_or_else(|| panic!("{name}: a PodDisruptionBudget for the herald pods")).spec.as_ref().unwrap();
    assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(1)), "{name}: one pod at a time");

    // RBAC: the pods' service account may get, list and watch Argo CD Applications.
    let account = pod.service_account_name.clone().unwrap();
    assert!(named(&m.accounts, &account).is_some());
    let rules = granted(m, &account);
    for verb in ["get", "list", "watch"] {
        assert!(allows(&rules, "argoproj.io", "applications", verb), "{name}: {verb} applications");
    }
    (config, replicas)
}

#[test]
fn single_node_overlay_keeps_its_log_on_a_volume() {
    if !have_kubectl() {
        return;
    }
    let dir = overlays().into_iter().find(|o| o.ends_with("single")).unwrap();
    let m = load(&dir);
    let (config, replicas) = check_overlay("single", &m);
    assert_eq!(replicas, 1);
    assert!(config.cluster.redis_url.is_none(), "the embedded log");
    assert_eq!(config.storage, herald::config::Storage::Embedded);
    let spec = named(&m.deployments, "herald").unwrap().spec.as_ref().unwrap();
    let strategy = spec.strategy.as_ref().unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("Recreate"), "one process holds the store: no surge");
    assert!(strategy.rolling_update.is_none());
    // The data directory is on the overlay's PersistentVolumeClaim.
    let pod = spec.template.spec.as_ref().unwrap();
    let mount = pod.containers[0].volume_mounts.iter().flatten().find(|v| Path::new(&v.mount_path) == config.data_dir);
    let volume = pod.volumes.iter().flatten().find(|v| v.name == mount.unwrap().name).unwrap();
    assert!(volume.empty_dir.is_none());
    let claim = &volume.persistent_volume_claim.as_ref().expect("a PersistentVolumeClaim").claim_name;
    let pvc = named(&m.claims, claim).unwrap().spec.as_ref().unwrap();
    assert!(pvc.access_modes.iter().flatten().any(|a| a == "ReadWriteOnce"));
    assert!(quantity(&pvc.resources.as_ref().unwrap().requests, "storage").is_some());
    // Least privilege: no Lease rights where no second node could want the lease.
    assert!(!allows(&granted(&m, "herald"), "coordination.k8s.io", "leases", "update"));
    assert!(m.stateful_sets.is_empty());
}

#[test]
fn cluster_overlay_shares_a_redis_log_and_may_hold_leases() {
    if !have_kubectl() {
        return;
    }
    let dir = overlays().into_iter().find(|o| o.ends_with("cluster")).unwrap();
    let m = load(&dir);
    let (config, replicas) = check_overlay("cluster", &m);
    assert!(replicas >= 3, "several replicas");
    let strategy = named(&m.deployments, "herald").unwrap().spec.as_ref().unwrap().strategy.clone().unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));

    // The Redis URL names the Redis Service, whose pods run Redis with the stream kept on disk.
    let url = config.cluster.redis_url.as_ref().expect("cluster mode").expose().to_owned();
    let redis_svc =
        m.services.iter().find(|s| url.contains(&format!("//{}:", s.metadata.name.as_deref().unwrap()))).unwrap();
    let redis = named(&m.stateful_sets, "herald-redis").unwrap().spec.as_ref().unwrap();
    let redis_labels = redis.template.metadata.as_ref().unwrap().labels.clone().unwrap();
    assert!(selects(&redis_svc.spec.as_ref().unwrap().selector.clone().unwrap(), &redis_labels));
    let redis_container = &redis.template.spec.as_ref().unwrap().containers[0];
    let redis_args = redis_container.args.clone().unwrap();
    assert!(redis_args.windows(2).any(|w| w == ["--appendonly", "yes"]), "{redis_args:?}");
    assert!(redis_args.windows(2).any(|w| w == ["--appendfsync", "always"]), "{redis_args:?}");
    let data_dir = &redis_args[redis_args.iter().position(|a| a == "--dir").unwrap() + 1];
    let mount = redis_container.volume_mounts.iter().flatten().find(|v| &v.mount_path == data_dir).unwrap();
    assert!(redis.volume_claim_templates.iter().flatten().any(|t| t.metadata.name.as_deref() == Some(&mount.name)));

    // Cluster-mode sources: one node at a time holds a coordination.k8s.io Lease in the
    // namespace (SPEC §9), which it reads, creates the first time, and renews or takes over.
    let rules = granted(&m, "herald");
    for verb in ["get", "create", "update"] {
        assert!(allows(&rules, "coordination.k8s.io", "leases", verb), "leases: {verb}");
    }
    let lease_role = m
        .roles
        .iter()
        .find(|r| allows(r.rules.as_deref().unwrap_or_default(), "coordination.k8s.io", "leases", "update"));
    assert!(lease_role.is_some(), "Lease rights from a namespaced Role, not cluster-wide");
}
