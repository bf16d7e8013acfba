//! `--demo`: the simulated Argo CD publishes through the real `argocd` preset, to a real Herald.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{get_json, open, Herald};
use herald_kube::{demo, Running};
use http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn the_board_topic_receives_the_simulated_deployments() {
    let herald = Herald::start(common::memory_config()).await;
    let mut running = Running::default();
    running.demo(&herald.hub, demo::Options { period: Duration::from_millis(40), seed: 42 }).unwrap();
    let mut board = open(herald.addr, "/events?topic=argocd/applications/**&lastEventID=earliest").await;
    let mut names = std::collections::BTreeSet::new();
    let mut phases = std::collections::BTreeSet::new();
    for i in 0..40 {
        let (kind, data) = board.next_json().await;
        if i < 7 {
            assert_eq!(kind, "application.added");
        } else {
            assert_eq!(kind, "application.updated");
        }
        assert_eq!(data["demo"], true, "{data}");
        assert!(data["project"].as_str().unwrap().starts_with("demo-"));
        for field in ["namespace", "syncStatus", "healthStatus", "revision", "operationPhase", "message", "lastSync"] {
            assert!(data.get(field).is_some(), "{field} in {data}");
        }
        names.insert(format!("{}/{}", data["namespace"].as_str().unwrap(), data["name"].as_str().unwrap()));
        phases.insert(data["operationPhase"].as_str().unwrap_or("").to_owned());
    }
    assert_eq!(names.len(), 7);
    assert!(phases.contains("Running") && phases.contains("Succeeded"), "{phases:?}");
    // The objects behind it are served by the Argo CD API, labelled as demo.
    let (status, list) = get_json(herald.addr, "/api/v1/applications?projects=demo-payments").await;
    assert_eq!(status, StatusCode::OK);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["metadata"]["labels"]["herald.dev/demo"], json!("true"));
    assert_eq!(get_json(herald.addr, "/ready").await.0, StatusCode::OK, "the demo has no readiness gate");
    running.shutdown(Duration::from_secs(5)).await;
    herald.stop().await;
}

#[tokio::test]
async fn the_demo_refuses_to_share_its_topics_with_a_watched_argo_cd() {
    let mut config = common::memory_config();
    config.sources.kubernetes.push(herald::sources::KubernetesSource::argocd(None));
    let hub = herald::Hub::open(config).await.unwrap();
    let err = Running::default().demo(&hub, demo::Options::default()).unwrap_err().to_string();
    assert!(err.contains("overlaps"), "{err}");
    // Narrowed to Argo CD's own namespace, it does not overlap.
    let mut config = common::memory_config();
    config.sources.kubernetes.push(herald::sources::KubernetesSource::argocd(Some("argocd")));
    let hub = herald::Hub::open(config).await.unwrap();
    let mut running = Running::default();
    running.demo(&hub, demo::Options::default()).unwrap();
    running.shutdown(Duration::from_secs(5)).await;
}
