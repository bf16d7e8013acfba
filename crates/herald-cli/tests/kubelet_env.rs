//! `herald serve` in a pod next to the Services of `deploy/kubernetes/`, with service links on:
//! kubelet puts Docker-link variables for every Service of the namespace into the environment
//! (`HERALD_SERVICE_HOST`, `HERALD_PORT=tcp://…`, `HERALD_REDIS_PORT_6379_TCP_ADDR`, …), where
//! `HERALD_*` is Herald's configuration. The real binary starts with the full set, says so once
//! at debug, and still refuses any other unknown `HERALD_*` name. (`crates/herald-kube/tests/
//! manifests.rs` derives the same set from the rendered manifests' Services.)

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{get, Node, BIN, PATIENCE};

/// Exactly what kubelet injects (its `envvars.FromServices`) for the Services the manifests
/// create: `herald` (port `http` 80/TCP, both overlays) and `herald-redis` (port `redis`
/// 6379/TCP, the cluster overlay); and `kubernetes`, which every pod gets.
fn kubelet_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
        ("KUBERNETES_SERVICE_PORT", "443"),
        ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
        ("KUBERNETES_PORT", "tcp://10.96.0.1:443"),
        ("KUBERNETES_PORT_443_TCP", "tcp://10.96.0.1:443"),
        ("KUBERNETES_PORT_443_TCP_PROTO", "tcp"),
        ("KUBERNETES_PORT_443_TCP_PORT", "443"),
        ("KUBERNETES_PORT_443_TCP_ADDR", "10.96.0.1"),
        ("HERALD_SERVICE_HOST", "10.96.112.7"),
        ("HERALD_SERVICE_PORT", "80"),
        ("HERALD_SERVICE_PORT_HTTP", "80"),
        ("HERALD_PORT", "tcp://10.96.112.7:80"),
        ("HERALD_PORT_80_TCP", "tcp://10.96.112.7:80"),
        ("HERALD_PORT_80_TCP_PROTO", "tcp"),
        ("HERALD_PORT_80_TCP_PORT", "80"),
        ("HERALD_PORT_80_TCP_ADDR", "10.96.112.7"),
        ("HERALD_REDIS_SERVICE_HOST", "10.96.40.3"),
        ("HERALD_REDIS_SERVICE_PORT", "6379"),
        ("HERALD_REDIS_SERVICE_PORT_REDIS", "6379"),
        ("HERALD_REDIS_PORT", "tcp://10.96.40.3:6379"),
        ("HERALD_REDIS_PORT_6379_TCP", "tcp://10.96.40.3:6379"),
        ("HERALD_REDIS_PORT_6379_TCP_PROTO", "tcp"),
        ("HERALD_REDIS_PORT_6379_TCP_PORT", "6379"),
        ("HERALD_REDIS_PORT_6379_TCP_ADDR", "10.96.40.3"),
    ]
}

#[test]
fn starts_with_the_variables_kubelet_injects_and_says_so_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start_in(dir.path(), &[], &kubelet_env(), "info,herald::config=debug");
    assert_eq!(get(node.addr, "/health").0, 200);
    node.signal("-TERM");
    assert!(node.wait(PATIENCE).success());
    let log = node.log.lock().unwrap().clone();
    let said: Vec<_> = log.lines().filter(|l| l.contains("Service variables Kubernetes injects")).collect();
    assert_eq!(said.len(), 1, "one debug line:\n{log}");
    assert!(said[0].contains("DEBUG"), "{}", said[0]);
    for (name, _) in kubelet_env().iter().filter(|(n, _)| n.starts_with("HERALD_")) {
        assert!(said[0].contains(name), "{name} named in {}", said[0]);
    }
}

/// Runs `herald serve` with `env` added, which must fail to start: its stderr.
fn refused(env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("herald serve started with {env:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    stderr
}

#[test]
fn other_unknown_herald_variables_still_stop_the_start() {
    // A misspelt key next to kubelet's set: today's message, naming only the user's variable.
    let mut env = kubelet_env();
    env.push(("HERALD_HEARTBEAT", "5"));
    let msg = refused(&env);
    assert!(msg.contains("invalid configuration: unknown field `heartbeat`"), "{msg}");
    assert!(msg.contains("(environment variables in effect: HERALD_HEARTBEAT)"), "{msg}");

    // Kubelet's name with a value kubelet never writes is the user's own setting: refused.
    let msg = refused(&[("HERALD_PORT", "8080")]);
    assert!(msg.contains("unknown field `port`"), "{msg}");
    assert!(msg.contains("(environment variables in effect: HERALD_PORT)"), "{msg}");
}
