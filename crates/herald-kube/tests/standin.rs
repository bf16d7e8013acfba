//! Kubernetes sources against a STAND-IN API server (tests/common: real HTTP on 127.0.0.1, the
//! list+watch wire protocol, recorded Argo CD Application shapes), through a real Herald and
//! real SSE subscribers. No Kubernetes cluster is involved: these tests show that Herald
//! speaks the protocol and survives its faults as the stand-in plays them, not that it has run
//! against a live API server.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{eventually, fixture, get_json, open, FakeApi, Herald, Kind, Stream};
use herald::sources::KubernetesSource;
use herald_kube::Running;
use http::StatusCode;
use serde_json::{json, Value};

const QUIET: Duration = Duration::from_millis(1500);

/// A stand-in with the three fixture Applications, a Herald, and the `argocd` preset watching.
async fn argocd_setup() -> (FakeApi, Herald, Running) {
    let api = FakeApi::start(vec![Kind::applications()]).await;
    for name in ["guestbook", "payments-api", "ingress"] {
        api.put(&Kind::applications(), fixture(name));
    }
    let herald = Herald::start(common::memory_config()).await;
    let mut running = Running::default();
    running.watch(&herald.hub, api.client(), &KubernetesSource::argocd(None)).unwrap();
    eventually(herald.addr, "/ready", |s, _| s == StatusCode::OK).await;
    (api, herald, running)
}

/// Reads the snapshot part of a `snapshot=true` stream: (type, topic-less data) until synced.
async fn snapshot(stream: &mut Stream) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    loop {
        let (kind, data) = stream.next_json().await;
        if kind == "herald.synced" {
            return out;
        }
        out.push((kind, data));
    }
}

fn by_name(events: &[(String, Value)]) -> Vec<(String, String)> {
    let mut out: Vec<_> = events
        .iter()
        .map(|(k, d)| (k.clone(), d["name"].as_str().or(d["metadata"]["name"].as_str()).unwrap().to_owned()))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn ready_waits_for_the_first_list() {
    let mut api = FakeApi::new(vec![Kind::applications()]).await;
    api.put(&Kind::applications(), fixture("guestbook"));
    let herald = Herald::start(common::memory_config()).await;
    let mut running = Running::default();
    running.watch(&herald.hub, api.client(), &KubernetesSource::argocd(None)).unwrap();
    // The API server is not up: the node serves, but is not ready.
    let (status, body) = get_json(herald.addr, "/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "starting");
    assert_eq!(body["waiting_for"], json!(["kubernetes:argoproj.io/v1alpha1/Application"]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get_json(herald.addr, "/ready").await.0, StatusCode::SERVICE_UNAVAILABLE);
    api.listen().await;
    let body = eventually(herald.addr, "/ready", |s, _| s == StatusCode::OK).await;
    assert_eq!(body["status"], "ready");
    assert!(body.get("waiting_for").is_none());
    running.shutdown(Duration::from_secs(5)).await;
    herald.stop().await;
}

#[tokio::test]
async fn changes_become_keyed_events_and_noise_publishes_nothing() {
    let (api, herald, running) = argocd_setup().await;
    let apps = Kind::applications();
    let mut board = open(herald.addr, "/events?topic=argocd/applications/**&snapshot=true").await;
    let mut objects = open(herald.addr, "/events?topic=argocd/objects/**&snapshot=true").await;

    // The initial list: one keyed `application.added` per application, on each output.
    let listed = snapshot(&mut board).await;
    assert_eq!(
        by_name(&listed),
        [
            ("application.added".into(), "guestbook".into()),
            ("application.added".into(), "ingress-nginx".into()),
            ("application.added".into(), "payments-api".into())
        ]
    );
    let guestbook = &listed.iter().find(|(_, d)| d["name"] == "guestbook").unwrap().1;
    assert_eq!(
        *guestbook,
        json!({"name": "guestbook", "namespace": "argocd", "project": "web", "syncStatus": "Synced",
            "healthStatus": "Healthy", "revision": "53e28ff20cc530b9ada2173fbbd64d48338583ba",
            "operationPhase": "Succeeded", "message": "successfully synced (all tasks run)",
            "lastSync": "2024-05-02T13:58:44Z"})
    );
    let full = snapshot(&mut objects).await;
    assert_eq!(full.len(), 3);
    let object = &full.iter().find(|(_, d)| d["metadata"]["name"] == "guestbook").unwrap().1;
    assert_eq!(object["kind"], "Application");
    assert_eq!(object["spec"]["project"], "web");
    assert!(object["metadata"].get("managedFields").is_none(), "managedFields are left out");
    assert_eq!(object["status"]["history"].as_array().unwrap().len(), 2);

    // Status noise: Argo CD's controller rewrites reconciledAt/observedAt on every
    // reconciliation. Nothing is published on either topic.
    api.update(&apps, "argocd", "guestbook", |a| a["status"]["reconciledAt"] = json!("2024-05-02T14:06:19Z"));
    api.update(&apps, "team-payments", "payments-api", |a| {
        a["status"]["reconciledAt"] = json!("2024-05-02T14:04:55Z");
        a["status"]["observedAt"] = json!("2024-05-02T14:04:55Z");
        a["metadata"]["generation"] = json!(88);
    });
    board.expect_quiet(QUIET).await;
    objects.expect_quiet(Duration::from_millis(10)).await;

    // A real change: a new commit makes guestbook OutOfSync.
    api.update(&apps, "argocd", "guestbook", |a| {
        a["status"]["sync"]["status"] = json!("OutOfSync");
        a["status"]["sync"]["revision"] = json!("8f1c2d3e4b5a69788796a5b4c3d2e1f0a9b8c7d6");
    });
    let (kind, data) = board.next_json().await;
    assert_eq!(kind, "application.updated");
    assert_eq!(
        (data["syncStatus"].as_str(), data["revision"].as_str()),
        (Some("OutOfSync"), Some("8f1c2d3e4b5a69788796a5b4c3d2e1f0a9b8c7d6"))
    );
    let (kind, data) = objects.next_json().await;
    assert_eq!((kind.as_str(), data["status"]["sync"]["status"].as_str()), ("application.updated", Some("OutOfSync")));

    // A label change matters to the full object (selectors), not to the board.
    api.update(&apps, "argocd", "guestbook", |a| a["metadata"]["labels"]["env"] = json!("staging"));
    let (kind, data) = objects.next_json().await;
    assert_eq!((kind.as_str(), data["metadata"]["labels"]["env"].as_str()), ("application.updated", Some("staging")));
    board.expect_quiet(QUIET).await;

    // A new application, then a deletion: a tombstone carrying the last state.
    let mut new = fixture("guestbook");
    new["metadata"]["name"] = json!("guestbook-canary");
    api.put(&apps, new);
    let (kind, data) = board.next_json().await;
    assert_eq!((kind.as_str(), data["name"].as_str()), ("application.added", Some("guestbook-canary")));
    api.delete(&apps, "team-payments", "payments-api");
    let (kind, data) = board.next_json().await;
    assert_eq!(
        (kind.as_str(), data["name"].as_str(), data["healthStatus"].as_str()),
        ("application.deleted", Some("payments-api"), Some("Degraded"))
    );
    let mut after = open(herald.addr, "/events?topic=argocd/applications/**&snapshot=true").await;
    let mut names: Vec<String> = by_name(&snapshot(&mut after).await).into_iter().map(|(_, n)| n).collect();
    names.sort();
    assert_eq!(names, ["guestbook", "guestbook-canary", "ingress-nginx"]);
    assert_eq!(api.counts().0, 1, "one list; everything else came through the watch");

    running.shutdown(Duration::from_secs(5)).await;
    herald.stop().await;
}

#[tokio::test]
async fn an_expired_watch_relists_and_tombstones_what_vanished_meanwhile() {
    let (api, herald, running) = argocd_setup().await;
    let apps = Kind::applications();
    let mut board = open(herald.addr, "/events?topic=argocd/applications/**&snapshot=true").await;
    assert_eq!(snapshot(&mut board).await.len(), 3);

    // While the watch hears nothing: one deletion, one real change, one noise-only change,
    // one creation. Then the history the watch would resume from is compacted away, and the
    // connection drops: resuming gets 410 Gone, and the watcher lists again.
    api.partition();
    api.delete(&apps, "team-payments", "payments-api");
    api.update(&apps, "argocd", "ingress-nginx", |a| {
        a["status"]["health"]["status"] = json!("Healthy");
        a["status"]["operationState"]["phase"] = json!("Succeeded");
        a["status"]["operationState"]["message"] = json!("successfully synced (all tasks run)");
        a["status"]["operationState"]["finishedAt"] = json!("2024-05-02T14:03:02Z");
    });
    api.update(&apps, "argocd", "guestbook", |a| a["status"]["reconciledAt"] = json!("2024-05-02T14:09:19Z"));
    let mut created = fixture("payments-api");
    created["metadata"]["name"] = json!("payments-worker");
    api.put(&apps, created);
    api.compact();
    api.cut_watches();

    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(board.next_json().await);
    }
    assert_eq!(
        by_name(&got),
        [
            ("application.added".into(), "payments-worker".into()),
            ("application.deleted".into(), "payments-api".into()),
            ("application.updated".into(), "ingress-nginx".into())
        ]
    );
    let ingress = &got.iter().find(|(_, d)| d["name"] == "ingress-nginx").unwrap().1;
    assert_eq!(
        (ingress["healthStatus"].as_str(), ingress["lastSync"].as_str()),
        (Some("Healthy"), Some("2024-05-02T14:03:02Z"))
    );
    // Unchanged guestbook (only reconciledAt moved) publishes nothing.
    board.expect_quiet(QUIET).await;
    let (lists, _, expired) = api.counts();
    assert_eq!((lists, expired), (2, 1), "one 410, one relist");

    // And the watch goes on after the relist.
    api.update(&apps, "argocd", "guestbook", |a| a["status"]["health"]["status"] = json!("Progressing"));
    let (kind, data) = board.next_json().await;
    assert_eq!((kind.as_str(), data["healthStatus"].as_str()), ("application.updated", Some("Progressing")));

    running.shutdown(Duration::from_secs(5)).await;
    herald.stop().await;
}

#[tokio::test]
async fn a_dropped_connection_resumes_without_relisting() {
    let (api, herald, running) = argocd_setup().await;
    let apps = Kind::applications();
    let mut board = open(herald.addr, "/events?topic=argocd/applications/*/guestbook").await;
    // Writes made while no watch is connected are replayed from the resumed version.
    api.partition();
    api.update(&apps, "argocd", "guestbook", |a| a["status"]["operationState"]["phase"] = json!("Running"));
    api.cut_watches();
    let (kind, data) = board.next_json().await;
    assert_eq!((kind.as_str(), data["operationPhase"].as_str()), ("application.updated", Some("Running")));
    let (lists, watches, expired) = api.counts();
    assert_eq!((lists, expired), (1, 0));
    assert!(watches >= 2, "watched again: {watches}");
    running.shutdown(Duration::from_secs(5)).await;
    herald.stop().await;
}

#[tokio::test]
async fn an_api_server_restart_is_survived() {
    let (mut api, herald, running) = argocd_setup().await;
    let apps = Kind::applications();
    let mut board = open(herald.addr, "/events?topic=argocd/applications/**").await;
    api.stop().await;
    // Changed while the API server is down; seen once it is back on the same port.
    api.update(&apps, "argocd", "ingress-nginx", |a| a["status"]["health"]["status"] = json!("Healthy"));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Herald keeps serving (and stays ready) meanwhile.
    assert_eq!(get_json(herald.addr, "/ready").await.0, StatusCode::OK);
    api.listen().await;
    let (kind, data) = board.next_json().await;
    assert_eq!(
        (kind.as_str(), data["name"].as_str(), data["healthStatus"].as_str()),
        ("application.updated", Some("ingress-nginx"), Some("Healthy"))
    );
    api.update(&apps, "argocd", "guestbook", |a| a["status"]["sync"]["status"] = json!("OutOfSync"));
    let (_, data) = board.next_json().await;
    assert_eq!((data["name"].as_str(), data["syncStatus"].as_str()), (Some("guestbook"), Some("OutOfSync")));
    running.shutdown(Duration::from_secs(5)).await;
    herald.stop().await;
}

#[tokio::test]
async fn a_herald_restart_republishes_nothing_that_did_not_change() {
    let dir = tempfile::tempdir().unwrap();
    let config = herald::Config { data_dir: dir.path().to_owned(), ..common::memory_config() };
    let config = herald::Config { storage: herald::config::Storage::Embedded, ..config };
    let api = FakeApi::start(vec![Kind::applications()]).await;
    let apps = Kind::applications();
    for name in ["guestbook", "payments-api", "ingress"] {
        api.put(&apps, fixture(name));
    }
    let herald = Herald::start(config.clone()).await;
    let mut running = Running::default();
    running.watch(&herald.hub, api.client(), &KubernetesSource::argocd(None)).unwrap();
    eventually(herald.addr, "/ready", |s, _| s == StatusCode::OK).await;
    let mut board = open(herald.addr, "/events?topic=argocd/**&lastEventID=earliest").await;
    let mut last = String::new();
    for _ in 0..6 {
        last = board.next_event().await.id.unwrap();
    }
    running.shutdown(Duration::from_secs(5)).await;
    drop(board);
    herald.stop().await;

    // While Herald is down: guestbook is deleted, ingress changes, payments gets status noise.
    api.delete(&apps, "argocd", "guestbook");
    api.update(&apps, "argocd", "ingress-nginx", |a| a["status"]["health"]["status"] = json!("Healthy"));
    api.update(&apps, "team-payments", "payments-api", |a| a["status"]["reconciledAt"] = json!("2024-05-02T15:00:00Z"));

    let herald = Herald::start(config).await;
    let mut running = Running::default();
    running.watch(&herald.hub, api.client(), &KubernetesSource::argocd(None)).unwrap();
    let mut board = open(herald.addr, &format!("/events?topic=argocd/applications/**&lastEventID={last}")).await;
    let mut got = vec![board.next_json().await, board.next_json().await];
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        by_name(&got),
        [("application.deleted".into(), "guestbook".into()), ("application.updated".into(), "ingress-nginx".into())]
    );
    board.expect_quiet(QUIET).await;
    running.shutdown(Duration::from_secs(5)).await;
    herald.stop().await;
}

#[tokio::test]
async fn any_resource_with_the_default_template_and_a_label_selector() {
    let api = FakeApi::start(vec![Kind::configmaps(), Kind::namespaces()]).await;
    let cm = |ns: &str, name: &str, app: &str, v: &str| {
        json!({"metadata": {"name": name, "namespace": ns, "labels": {"app": app},
            "managedFields": [{"manager": "kubectl-client-side-apply"}]}, "data": {"v": v}})
    };
    api.put(&Kind::configmaps(), cm("default", "web-config", "web", "1"));
    api.put(&Kind::configmaps(), cm("kube-system", "coredns", "dns", "1"));
    api.put(&Kind::namespaces(), json!({"metadata": {"name": "default"}, "status": {"phase": "Active"}}));
    let herald = Herald::start(common::memory_config()).await;
    let source: herald::sources::Sources = toml::from_str(
        "[[kubernetes]]\ngroup = \"\"\nversion = \"v1\"\nkind = \"ConfigMap\"\nlabel_selector = \"app=web\"\n\n\
         [[kubernetes]]\ngroup = \"\"\nversion = \"v1\"\nkind = \"Namespace\"\ntopic = \"cluster/namespaces/<name>\"\n",
    )
    .unwrap();
    source.validate().unwrap();
    let mut running = Running::default();
    for s in &source.kubernetes {
        running.watch(&herald.hub, api.client(), s).unwrap();
    }
    eventually(herald.addr, "/ready", |s, _| s == StatusCode::OK).await;
    let mut all = open(herald.addr, "/events?topic=kube/**&topic=cluster/**&snapshot=true&envelope=true").await;
    let mut listed = snapshot(&mut all).await;
    listed.sort_by(|a, b| a.1["topic"].as_str().cmp(&b.1["topic"].as_str()));
    let summary: Vec<_> =
        listed.iter().map(|(k, e)| (k.as_str(), e["topic"].as_str().unwrap(), e["key"].as_str().unwrap())).collect();
    assert_eq!(
        summary,
        [
            ("namespace.added", "cluster/namespaces/default", "default"),
            ("configmap.added", "kube/core/configmap/default/web-config", "default/web-config")
        ]
    );
    let web = &listed[1].1["data"];
    assert_eq!((web["data"]["v"].as_str(), web["metadata"].get("managedFields")), (Some("1"), None));
    api.update(&Kind::configmaps(), "default", "web-config", |c| c["data"]["v"] = json!("2"));
    api.update(&Kind::configmaps(), "kube-system", "coredns", |c| c["data"]["v"] = json!("2"));
    let (kind, e) = all.next_json().await;
    assert_eq!((kind.as_str(), e["data"]["data"]["v"].as_str()), ("configmap.updated", Some("2")));
    api.delete(&Kind::configmaps(), "default", "web-config");
    let (kind, e) = all.next_json().await;
    assert_eq!(
        (kind.as_str(), e["tombstone"].as_bool(), e["key"].as_str()),
        ("configmap.deleted", Some(true), Some("default/web-config"))
    );
    all.expect_quiet(QUIET).await;
    running.shutdown(Duration::from_secs(5)).await;
    herald.stop().await;
}

#[tokio::test]
async fn argo_cd_stream_api_from_a_watched_cluster() {
    let (api, herald, running) = argocd_setup().await;
    let apps = Kind::applications();
    let mut stream = open(herald.addr, "/api/v1/stream/applications").await;
    assert_eq!(stream.status, StatusCode::OK);
    let mut names = Vec::new();
    for _ in 0..3 {
        let (_, data) = stream.next_json().await;
        assert_eq!(data["result"]["type"], "ADDED");
        names.push(
            data["result"]["application"]["metadata"]["namespace"].as_str().unwrap().to_owned()
                + "/"
                + data["result"]["application"]["metadata"]["name"].as_str().unwrap(),
        );
    }
    assert_eq!(
        names,
        ["argocd/guestbook", "argocd/ingress-nginx", "team-payments/payments-api"],
        "sorted by namespace/name"
    );
    api.update(&apps, "argocd", "guestbook", |a| a["status"]["sync"]["status"] = json!("OutOfSync"));
    let (_, data) = stream.next_json().await;
    assert_eq!(data["result"]["type"], "MODIFIED");
    let rv = data["result"]["application"]["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    assert_eq!(rv, api.get(&apps, "argocd", "guestbook").unwrap()["metadata"]["resourceVersion"].as_str().unwrap());
    api.delete(&apps, "argocd", "guestbook");
    let (_, data) = stream.next_json().await;
    assert_eq!(
        (data["result"]["type"].as_str(), data["result"]["application"]["metadata"]["name"].as_str()),
        (Some("DELETED"), Some("guestbook"))
    );
    let (status, list) = get_json(herald.addr, "/api/v1/applications?projects=payments").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["metadata"]["name"], "payments-api");
    running.shutdown(Duration::from_secs(5)).await;
    herald.stop().await;
}
