//! SPEC §3's durability promises, attacked on the real binary: kill -9 under concurrent
//! publishers in both durability modes, and a disk that fills up and frees again.
//!
//! Every id a publisher was answered with is counted, and after each crash the restarted node
//! must replay every one of them, once, in order. `RELIABILITY_ROUNDS` (default 3) sets how many
//! crash rounds each mode runs; RELIABILITY.md's figures come from larger values.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{follow, key, round_robin, wait_for, Node, Seen, PATIENCE};

/// `POST /publish` that may fail: the ids when answered 200, else the status (0: no answer).
fn try_publish(addr: SocketAddr, body: &str) -> Result<Vec<String>, u16> {
    let mut s = TcpStream::connect(addr).map_err(|_| 0u16)?;
    s.set_read_timeout(Some(Duration::from_secs(20))).map_err(|_| 0u16)?;
    let head = format!(
        "POST /publish HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).and_then(|()| s.write_all(body.as_bytes())).map_err(|_| 0u16)?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|_| 0u16)?;
    let status: u16 = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    if status != 200 {
        return Err(status);
    }
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(body).map_err(|_| 0u16)?;
    Ok(v["ids"].as_array().into_iter().flatten().filter_map(|id| id.as_str().map(str::to_owned)).collect())
}

/// A `herald.toml` in `dir` with these top-level lines.
fn config(dir: &Path, lines: &str) -> String {
    let path = dir.join("herald.toml");
    std::fs::write(&path, lines).unwrap();
    path.to_str().unwrap().to_owned()
}

fn rounds() -> usize {
    std::env::var("RELIABILITY_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3)
}

/// Four publishers (two of single events, two of batches of ten) until `stop` or until the
/// node stops answering; every id answered 200 goes into `answered`.
fn publishers(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    answered: Arc<Mutex<Vec<String>>>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..4)
        .map(|p| {
            let (stop, answered) = (stop.clone(), answered.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let one = |i: u64| format!(r#"{{"topic":"load/p{p}","key":"k{}","data":{{"n":{i}}}}}"#, i % 7);
                    let body = if p < 2 {
                        one(n)
                    } else {
                        format!("[{}]", (n..n + 10).map(one).collect::<Vec<_>>().join(","))
                    };
                    n += 10;
                    match try_publish(addr, &body) {
                        Ok(ids) => answered.lock().unwrap().extend(ids),
                        Err(_) => return,
                    }
                }
            })
        })
        .collect()
}

/// Replays `topic=load/**` from the earliest event on a fresh node until the marker event
/// published after it arrives: every event id in order.
async fn replay_all(node: &Node) -> Vec<String> {
    let mut rx = follow(round_robin(vec![node.addr]), "topic=load/**&lastEventID=earliest");
    let marker = try_publish(node.addr, r#"{"topic":"load/end","data":"end"}"#).expect("the marker is published");
    let mut ids = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Seen::Event(id, _))) if id == marker[0] => return ids,
            Ok(Some(Seen::Event(id, _))) => ids.push(id),
            Ok(Some(Seen::Control(kind, data))) => panic!("replay from earliest got {kind} {data}"),
            Ok(Some(Seen::Connected(n))) => assert_eq!(n, 0, "the replay stream was cut"),
            Ok(None) | Err(_) => panic!("the replay did not reach the marker; {} events so far", ids.len()),
        }
    }
}

/// Checks that `replayed` holds every answered id once, in increasing order: the number lost.
fn lost(replayed: &[String], answered: &[String], who: &str) -> usize {
    assert!(replayed.windows(2).all(|w| key(&w[0]) < key(&w[1])), "{who}: replay out of order or duplicated");
    let have: BTreeSet<&String> = replayed.iter().collect();
    let missing: Vec<&String> = answered.iter().filter(|id| !have.contains(id)).collect();
    if !missing.is_empty() {
        eprintln!("{who}: {} answered events missing, first {:?}", missing.len(), &missing[..missing.len().min(5)]);
    }
    missing.len()
}

/// kill -9 while four publishers run, restart, replay from the earliest: every answered event is
/// there, in order, once; over several rounds on the same data directory.
async fn kill9_loop(mode: &str, extra: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = config(dir.path(), &format!("durability = \"{mode}\"\n{extra}"));
    let answered = Arc::new(Mutex::new(Vec::new()));
    let mut total_lost = 0;
    for round in 0..rounds() {
        let mut node = Node::start_in(&data, &["--config", &cfg], &[], "info");
        let stop = Arc::new(AtomicBool::new(false));
        let before = answered.lock().unwrap().len();
        let threads = publishers(node.addr, stop.clone(), answered.clone());
        // Different moments in each round: early, mid-flush, late.
        let load = Duration::from_millis(300 + 350 * (round as u64 % 4));
        wait_for("publishers to be answered", || answered.lock().unwrap().len() > before + 50);
        std::thread::sleep(load);
        node.kill9();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        let node = Node::start_in(&data, &["--config", &cfg], &[], "info");
        let replayed = replay_all(&node).await;
        let answered = answered.lock().unwrap().clone();
        // Cumulative: an event lost in an earlier round is still missing in this one.
        total_lost = lost(&replayed, &answered, &format!("{mode} round {round}"));
        drop(node);
    }
    let answered = answered.lock().unwrap().len();
    // The line RELIABILITY.md quotes.
    eprintln!("kill -9 under load: durability={mode} rounds={} answered={answered} lost={total_lost}", rounds());
    assert_eq!(total_lost, 0, "{mode}: answered events were lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_under_load_loses_nothing_answered_with_always() {
    kill9_loop("always", "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_under_load_loses_nothing_answered_with_batched() {
    // A long flush interval: every kill lands between two fsyncs.
    kill9_loop("batched", "flush_ms = 1000").await;
}

/// A tmpfs of its own, unmounted on drop; `None` (with the reason) where mounting is not
/// allowed (not root, or no CAP_SYS_ADMIN).
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Self(dir))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

/// `GET /ready`: status and body.
fn ready(addr: SocketAddr) -> (u16, String) {
    common::get(addr, "/ready")
}

/// Fills a small disk until publishes are refused: 507 `log_full`, `/ready` 503 with the reason,
/// one error line rather than one per retry, subscribers keep what they were sent; frees space:
/// publishing resumes without a restart; restarts: nothing answered is missing.
async fn full_disk(mode: &str) {
    let disk = match Tmpfs::mount("24m") {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!(
                "SKIPPED full_disk({mode}): cannot mount a tmpfs here ({why}); run the tests as root to include it"
            );
            return;
        }
    };
    // Ballast, freed later to give the node space again.
    let ballast = disk.path().join("ballast");
    std::fs::write(&ballast, vec![1u8; 6 << 20]).unwrap();
    let data = disk.path().join("data");
    let cfgdir = tempfile::tempdir().unwrap();
    let cfg = config(cfgdir.path(), &format!("durability = \"{mode}\"\nflush_ms = 100\n"));
    let node = Node::start_in(&data, &["--config", &cfg], &[], "info");
    let mut live = follow(round_robin(vec![node.addr]), "topic=load/**");
    common::connected(&mut live).await;

    let blob = "x".repeat(60_000);
    let mut answered = Vec::new();
    let mut refused = None;
    for i in 0..2000 {
        match try_publish(node.addr, &format!(r#"{{"topic":"load/fill","data":"{i}{blob}"}}"#)) {
            Ok(ids) => answered.extend(ids),
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
    }
    assert_eq!(refused, Some(507), "{mode}: a full disk answers 507 (after {} answered)", answered.len());
    assert!(!answered.is_empty(), "{mode}: the disk filled before the first publish");
    // In batched mode the flush that hits the full disk may come just after a 200.
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = ready(node.addr);
    assert_eq!(status, 503, "{mode}: /ready while the disk is full: {body}");
    assert!(body.contains("log_full"), "{mode}: /ready says why: {body}");
    let (status, body) = common::request(node.addr, "POST", "/publish", r#"{"topic":"load/x","data":1}"#);
    assert_eq!(status, 507, "{mode}: {body}");
    assert!(body.contains("log_full"), "{body}");
    // Retries for two seconds: the error is logged once, not once per retry.
    std::thread::sleep(Duration::from_secs(2));
    let errors = node.log.lock().unwrap().matches("the event log cannot write").count();
    assert_eq!(errors, 1, "{mode}: one error line per state change:\n{}", node.log.lock().unwrap());

    // Subscribers were sent every answered event, and a replay still works.
    let mut seen = Vec::new();
    while seen.len() < answered.len() {
        match tokio::time::timeout(PATIENCE, live.recv()).await {
            Ok(Some(Seen::Event(id, _))) => seen.push(id),
            Ok(Some(_)) => {}
            _ => panic!("{mode}: the live stream stopped at {} of {}", seen.len(), answered.len()),
        }
    }
    assert_eq!(seen, answered, "{mode}: the live subscriber saw exactly the answered events");

    // Space returns: publishing resumes by itself.
    std::fs::remove_file(&ballast).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ready(node.addr).0 != 200 {
        assert!(Instant::now() < deadline, "{mode}: /ready never recovered: {:?}", ready(node.addr));
        std::thread::sleep(Duration::from_millis(100));
    }
    let more = try_publish(node.addr, r#"{"topic":"load/after","data":"after"}"#).expect("publishing resumed");
    answered.extend(more);
    assert!(node.log.lock().unwrap().contains("the event log can write again"));

    // Stopped and started again: every answered event is on disk.
    node.signal("-TERM");
    let mut node = node;
    assert!(node.wait(Duration::from_secs(15)).success(), "{mode}: clean exit");
    let node = Node::start_in(&data, &["--config", &cfg], &[], "info");
    let replayed = replay_all(&node).await;
    assert_eq!(lost(&replayed, &answered, mode), 0, "{mode}: answered events lost to the full disk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_publishes_loses_nothing_and_recovers_with_always() {
    full_disk("always").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_publishes_loses_nothing_and_recovers_with_batched() {
    full_disk("batched").await;
}
