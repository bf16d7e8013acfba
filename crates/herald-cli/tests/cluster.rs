//! Cluster mode (SPEC §10) with real processes: one `redis-server` and three `herald serve
//! --redis` nodes. Cross-node delivery, keyed state and resume on another node, a node killed
//! with -9, a Redis restart, and concurrent publishers on every node, with each subscriber's id
//! sequence checked for gaps and duplicates.
//!
//! `redis-server` must be installed (`.ci/run` does); without it these tests fail and say so.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

fn cluster(redis: &Redis) -> Vec<Node> {
    (0..3).map(|_| Node::start(&redis.url(), &[])).collect()
}

fn batch(topic: &str, from: usize, n: usize) -> String {
    let events: Vec<String> =
        (from..from + n).map(|i| format!(r#"{{"topic":"{topic}","data":{{"n":{i}}}}}"#)).collect();
    format!("[{}]", events.join(","))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_on_any_node_reach_every_node_and_resume_anywhere() {
    let redis = Redis::start();
    let nodes = cluster(&redis);
    let mut followers = Vec::new();
    for node in &nodes {
        let mut rx = follow(round_robin(vec![node.addr]), "topic=orders/**");
        connected(&mut rx).await;
        followers.push(rx);
    }
    let mut published = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        published.extend(publish(node.addr, &batch(&format!("orders/{i}"), i * 10, 10)));
    }
    // Something the subscribers did not ask for is not delivered.
    publish(nodes[0].addr, &batch("other/x", 0, 3));
    let mut seen_by_node = Vec::new();
    for (i, rx) in followers.iter_mut().enumerate() {
        let seen = collect(rx, 30).await;
        assert_exactly(&ids(&seen), &published, &format!("subscriber on node {i}"));
        seen_by_node.push(seen);
    }
    assert!(seen_by_node.windows(2).all(|w| w[0] == w[1]), "every node delivers the same events in one order");

    // A last id from node 0 resumes on node 2: exactly what came after it, then live.
    let all = ids(&seen_by_node[0]);
    let mut rx = follow(round_robin(vec![nodes[2].addr]), &format!("topic=orders/**&lastEventID={}", all[11]));
    connected(&mut rx).await;
    let later = publish(nodes[1].addr, &batch("orders/1", 100, 2));
    let resumed = collect(&mut rx, all.len() - 12 + 2).await;
    let mut want = all[12..].to_vec();
    want.extend(later);
    assert_exactly(&ids(&resumed), &want, "resumed on node 2");
    assert!(resumed.iter().all(|s| !matches!(s, Seen::Control(..))), "no reset: {resumed:?}");

    // An id ahead of the shared stream is unknown on every node.
    let mut rx = follow(round_robin(vec![nodes[1].addr]), "topic=orders/0&lastEventID=99999999999999-0");
    connected(&mut rx).await;
    let first = tokio::time::timeout(PATIENCE, rx.recv()).await.unwrap().unwrap();
    assert_eq!(first, Seen::Control("herald.reset".into(), r#"{"reason":"unknown_id"}"#.into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_state_and_snapshots_are_cluster_wide() {
    let redis = Redis::start();
    let nodes = cluster(&redis);
    // Live followers tell when each node has delivered everything below (a snapshot is exactly
    // as new as what its node has delivered).
    let mut live = Vec::new();
    for node in &nodes {
        let mut rx = follow(round_robin(vec![node.addr]), "topic=apps/*");
        connected(&mut rx).await;
        live.push(rx);
    }
    let set = |key: &str, v: u32| format!(r#"{{"topic":"apps/{key}","type":"app.updated","key":"{key}","data":{v}}}"#);
    publish(nodes[0].addr, &format!("[{},{}]", set("web", 1), set("api", 1)));
    publish(nodes[1].addr, &set("web", 2));
    publish(nodes[2].addr, r#"{"topic":"apps/api","key":"api","tombstone":true,"data":null}"#);
    for rx in &mut live {
        collect(rx, 4).await;
    }

    // Every node's snapshot: web at 2, api gone, whichever node published what.
    for (i, node) in nodes.iter().enumerate() {
        let mut rx = follow(round_robin(vec![node.addr]), "topic=apps/*&snapshot=true");
        connected(&mut rx).await;
        let mut seen = Vec::new();
        loop {
            let s = tokio::time::timeout(PATIENCE, rx.recv()).await.unwrap().unwrap();
            let done = matches!(&s, Seen::Control(kind, _) if kind == "herald.synced");
            seen.push(s);
            if done {
                break;
            }
        }
        let events: Vec<_> = seen.iter().filter(|s| matches!(s, Seen::Event(..))).collect();
        assert_eq!(events.len(), 1, "node {i}: {seen:?}");
        assert!(matches!(events[0], Seen::Event(_, data) if data == "2"), "node {i}: {seen:?}");
    }
    // A node started now loads the state from Redis.
    let late = Node::start(&redis.url(), &[]);
    let mut rx = follow(round_robin(vec![late.addr]), "topic=apps/*&snapshot=true");
    connected(&mut rx).await;
    let seen = collect(&mut rx, 1).await;
    assert!(matches!(&seen[0], Seen::Event(_, data) if data == "2"), "{seen:?}");
    let next = tokio::time::timeout(PATIENCE, rx.recv()).await.unwrap().unwrap();
    assert_eq!(next, Seen::Control("herald.synced".into(), "{}".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_on_all_nodes_every_subscriber_sees_each_event_once_in_order() {
    let redis = Redis::start();
    let nodes = cluster(&redis);
    let mut followers = Vec::new();
    for node in nodes.iter().chain(nodes.iter()) {
        let mut rx = follow(round_robin(vec![node.addr]), "topic=load/**");
        connected(&mut rx).await;
        followers.push(rx);
    }
    let addrs: Vec<_> = nodes.iter().map(|n| n.addr).collect();
    let publishers: Vec<_> = (0..6)
        .map(|p| {
            let addr = addrs[p % addrs.len()];
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for round in 0..40 {
                    // Single events and batches, interleaved with the other publishers.
                    let n = if round % 5 == 0 { 4 } else { 1 };
                    ids.extend(publish(addr, &batch(&format!("load/{p}"), round * 10, n)));
                }
                ids
            })
        })
        .collect();
    let published: Vec<String> = publishers.into_iter().flat_map(|p| p.join().unwrap()).collect();
    assert_eq!(published.len(), 6 * (32 + 8 * 4));
    for (i, rx) in followers.iter_mut().enumerate() {
        let seen = collect(rx, published.len()).await;
        assert_exactly(&ids(&seen), &published, &format!("subscriber {i} on node {}", i % 3));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_a_node_killed_with_sigkill_resume_on_another_and_lose_nothing() {
    let redis = Redis::start();
    let mut nodes = cluster(&redis);
    let addrs: Vec<_> = nodes.iter().map(|n| n.addr).collect();
    // Followers start on node 0 and, like clients behind a load balancer, reconnect to the next
    // node when their stream breaks.
    let mut followers = Vec::new();
    for _ in 0..3 {
        let mut rx = follow(round_robin(addrs.clone()), "topic=jobs/*");
        assert_eq!(connected(&mut rx).await, 0);
        followers.push(rx);
    }
    let mut published = publish(addrs[1], &batch("jobs/a", 0, 20));
    // Everyone has seen the first part from node 0 before it dies.
    let mut seen: Vec<Vec<Seen>> = Vec::new();
    for rx in &mut followers {
        seen.push(collect(rx, 20).await);
    }
    let publisher = {
        let (a, b) = (addrs[1], addrs[2]);
        std::thread::spawn(move || {
            let mut ids = Vec::new();
            for i in 0..60 {
                ids.extend(publish(if i % 2 == 0 { a } else { b }, &batch("jobs/b", i, 1)));
            }
            ids
        })
    };
    nodes[0].kill9();
    published.extend(publisher.join().unwrap());
    for (i, rx) in followers.iter_mut().enumerate() {
        seen[i].extend(collect(rx, 60).await);
        assert_exactly(&ids(&seen[i]), &published, &format!("follower {i}"));
        assert!(seen[i].contains(&Seen::Connected(1)), "follower {i} moved to node 1: {:?}", seen[i]);
        assert!(!seen[i].iter().any(|s| matches!(s, Seen::Control(..))), "no reset: {:?}", seen[i]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_is_not_ready_then_streams_resume_without_gap_or_duplicate() {
    let mut redis = Redis::start();
    let nodes = cluster(&redis);
    let mut followers = Vec::new();
    for node in &nodes {
        let mut rx = follow(round_robin(vec![node.addr]), "topic=r/*");
        connected(&mut rx).await;
        followers.push(rx);
    }
    let mut published = publish(nodes[0].addr, &batch("r/a", 0, 20));
    let mut seen: Vec<Vec<Seen>> = Vec::new();
    for rx in &mut followers {
        seen.push(collect(rx, 20).await);
    }
    for node in &nodes {
        wait_for("the node to be ready", || node.ready() == 200);
    }

    redis.stop();
    for node in &nodes {
        wait_for("/ready to say 503 while Redis is down", || node.ready() == 503);
        let (status, body) = get(node.addr, "/ready");
        assert_eq!(status, 503);
        assert!(body.contains("redis"), "{body}");
    }
    let (status, body) = request(nodes[1].addr, "POST", "/publish", &batch("r/a", 99, 1));
    assert_eq!(status, 503, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"], "log_unavailable", "{body}");

    redis.restart();
    for node in &nodes {
        wait_for("/ready to say 200 once Redis is back", || node.ready() == 200);
    }
    for (i, node) in nodes.iter().enumerate() {
        published.extend(publish(node.addr, &batch("r/b", i * 10, 10)));
    }
    for (i, rx) in followers.iter_mut().enumerate() {
        seen[i].extend(collect(rx, 30).await);
        assert_exactly(&ids(&seen[i]), &published, &format!("subscriber on node {i}"));
    }
    // The stream itself survived: a new subscriber replays all of it from any node.
    let mut rx = follow(round_robin(vec![nodes[2].addr]), "topic=r/*&lastEventID=earliest");
    connected(&mut rx).await;
    assert_exactly(&ids(&collect(&mut rx, 50).await), &published, "replay after the restart");
}

#[test]
fn a_bad_or_unreachable_redis_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let serve =
        |redis: &str| run_herald(&["serve", "--listen", "127.0.0.1:0", "--data-dir", data, "--redis", redis], &[]);
    let (ok, err) = serve("http://127.0.0.1:6379");
    assert!(!ok);
    assert!(err.contains("cluster.redis_url must be a redis:// URL"), "{err}");
    let (ok, err) = serve("redis://:secret@127.0.0.1:notaport");
    assert!(!ok);
    assert!(err.contains("cluster.redis_url is not a usable Redis URL"), "{err}");
    assert!(!err.contains("secret"), "the password stays out of messages: {err}");
    let port = free_port();
    let (ok, err) = serve(&format!("redis://:secret@127.0.0.1:{port}"));
    assert!(!ok);
    assert!(err.contains(&format!("cannot reach Redis at 127.0.0.1:{port}")), "{err}");
    assert!(!err.contains("secret"), "{err}");
    // The environment variable is read too.
    let (ok, err) = run_herald(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", data],
        &[("HERALD_CLUSTER_REDIS_URL", "tcp://nowhere")],
    );
    assert!(!ok);
    assert!(err.contains("cluster.redis_url"), "{err}");
}
