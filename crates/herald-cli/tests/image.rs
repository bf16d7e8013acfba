//! The container image, built as an operator would: `deploy/image/build.sh` (a release build,
//! then `buildah bud` of `deploy/image/Containerfile`, FROM scratch), then checked from outside
//! and run: what is in it (the binary without debug info, exactly the libraries it links, no
//! shell), how it runs (UID 65532, the data directory as a volume), and `herald serve` inside it
//! (`buildah run --isolation chroot` shares the host's network, so it listens on loopback)
//! taking a publish, delivering it to a subscriber, and draining on SIGTERM with
//! `herald.shutdown` and exit 0.
//!
//! buildah keeps this test's images in a storage of its own (a temporary directory), never the
//! machine's. Without buildah the test is skipped with a message (`apt-get install buildah`);
//! in CI (`CI` set), where `.ci/run` installs it, it fails instead. The release build is the
//! slow part: `.ci/run` makes it once, before the tests, and build.sh then finds it done.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{get, publish, signal, Node, RawStream, PATIENCE};

const TAG: &str = "herald-smoke-test:latest";

/// The image's user and data volume, as the Containerfile and the manifests state them.
const USER: &str = "65532:65532";
const DATA: &str = "/var/lib/herald";

/// buildah with this test's own storage; removes every container and image from it on drop.
struct Buildah {
    dir: tempfile::TempDir,
}

impl Buildah {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let conf = format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/root\"\nrunroot = \"{0}/run\"\n",
            dir.path().display()
        );
        std::fs::write(dir.path().join("storage.conf"), conf).unwrap();
        Self { dir }
    }

    /// A command that uses this storage (`program` is buildah, or a script that runs it).
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command.env("CONTAINERS_STORAGE_CONF", self.dir.path().join("storage.conf")).env("STORAGE_DRIVER", "vfs");
        command
    }

    /// `buildah ARGS`, which must succeed: its standard output, trimmed.
    fn run(&self, args: &[&str]) -> String {
        let out = self.command("buildah").args(args).output().unwrap();
        assert!(out.status.success(), "buildah {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }
}

impl Drop for Buildah {
    fn drop(&mut self) {
        for args in [&["umount", "--all"][..], &["rm", "--all"], &["rmi", "--all", "--force"]] {
            let _ = self.command("buildah").args(args).stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
    }
}

/// Runs `command` to completion within `limit`: (success, stdout + stderr).
fn run_within(mut command: Command, limit: Duration) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let file = std::fs::File::create(&log).unwrap();
    let mut child = command.stdout(file.try_clone().unwrap()).stderr(file).spawn().unwrap();
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("gave up after {limit:?}:\n{}", std::fs::read_to_string(&log).unwrap());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    (status.success(), std::fs::read_to_string(&log).unwrap())
}

/// The processes below `pid` (children, grandchildren, ...), from /proc.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let Some(ppid) = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)) else { continue };
        parent_of.push((child, ppid.parse::<u32>().unwrap()));
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.split_off(1)
}

/// Every file in `dir`, as absolute paths inside it.
fn tree(dir: &Path, under: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let inside = under.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            out.push(inside.clone());
            tree(&path, &inside, out);
        } else {
            out.push(inside);
        }
    }
}

#[test]
fn image_builds_and_serves_publishes_subscribes_and_drains() {
    let have_buildah = Command::new("buildah").arg("--version").output().is_ok_and(|o| o.status.success());
    if !have_buildah {
        let msg = "buildah is not installed: apt-get install -y --no-install-recommends buildah (.ci/run installs it)";
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("SKIPPED (tool missing): {msg}");
        return;
    }
    let buildah = Buildah::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");

    // Built as the README says, by the script (a release build first: long the first time).
    let mut build = buildah.command(root.join("deploy/image/build.sh"));
    build.arg(TAG).stdin(Stdio::null());
    let (built, log) = run_within(build, Duration::from_secs(3600));
    assert!(built, "deploy/image/build.sh:\n{log}");

    // How it runs: a non-root user, the data directory as a volume, /herald as the entry point.
    let config = |field: &str| buildah.run(&["inspect", "--type", "image", "--format", field, TAG]);
    assert_eq!(config("{{.OCIv1.Config.User}}"), USER);
    assert!(config("{{.OCIv1.Config.Volumes}}").contains(DATA));
    assert_eq!(config("{{.OCIv1.Config.Entrypoint}}"), "[/herald]");
    assert_eq!(config("{{.OCIv1.Config.WorkingDir}}"), DATA);
    let size = buildah.run(&["images", "--format", "{{.Size}}", TAG]);
    eprintln!("image {TAG}: {size}");

    // What is in it: the binary without debug info, exactly the libraries ldd names for it (at
    // the paths the loader looks in), and the few files build.sh writes; no shell.
    let container = buildah.run(&["from", TAG]);
    let mounted = PathBuf::from(buildah.run(&["mount", &container]));
    let binary = mounted.join("herald");
    let sections = Command::new("readelf").args(["-S", "--wide"]).arg(&binary).output().unwrap();
    let sections = String::from_utf8(sections.stdout).unwrap();
    assert!(sections.contains(".text"), "{sections}");
    // (`.debug_gdb_scripts`, 34 bytes that name rustc's pretty-printers, is loaded, not debug info.)
    for debug in [".debug_info", ".debug_line", ".debug_str"] {
        assert!(!sections.contains(debug), "{debug} left in the image's binary:\n{sections}");
    }
    let ldd = Command::new("ldd").arg(&binary).output().unwrap();
    let mut expected: Vec<PathBuf> = String::from_utf8(ldd.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            match l.split_once(" => ") {
                Some((_, path)) => Some(path.split(" (").next().unwrap().to_owned()),
                None if l.starts_with('/') => Some(l.split(" (").next().unwrap().to_owned()),
                None => None, // linux-vdso: the kernel's, not a file
            }
        })
        .map(PathBuf::from)
        .collect();
    assert!(expected.iter().any(|p| p.to_string_lossy().contains("libc.so")), "{expected:?}");
    expected.extend(
        [
            "/herald",
            "/etc/passwd",
            "/etc/group",
            "/etc/nsswitch.conf",
            "/etc/herald/herald.toml",
            "/etc/ssl/certs/ca-certificates.crt",
        ]
        .map(PathBuf::from),
    );
    let mut files = Vec::new();
    tree(&mounted, Path::new("/"), &mut files);
    let mut regular: Vec<PathBuf> =
        files.iter().filter(|p| mounted.join(p.strip_prefix("/").unwrap()).is_file()).cloned().collect();
    regular.sort();
    expected.sort();
    assert_eq!(regular, expected, "the image's files");
    assert!(files.contains(&PathBuf::from(DATA)));
    buildah.run(&["umount", &container]);

    // The binary names the revision it was built from, the one build.sh labelled the image with
    // (both read at build time: HEAD may have moved since).
    let version = buildah.run(&["run", "--isolation", "chroot", &container, "--", "/herald", "--version"]);
    let revision = config("{{index .OCIv1.Config.Labels \"org.opencontainers.image.revision\"}}");
    assert!(revision == "unknown" || (revision.len() == 12 && revision.bytes().all(|b| b.is_ascii_hexdigit())));
    assert_eq!(version, format!("herald {} ({revision})", env!("CARGO_PKG_VERSION")));

    // `herald serve` inside, with the image's own configuration; the container shares the
    // host's network, so the node is on this machine's loopback.
    let mut serve = buildah.command("buildah");
    serve
        .args(["run", "--isolation", "chroot", &container, "--"])
        .args(["/herald", "serve", "--config", "/etc/herald/herald.toml", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info");
    let mut node = Node::spawn(serve);
    assert!(node.log.lock().unwrap().contains(&format!("storage={DATA}")), "{}", node.log.lock().unwrap());
    assert_eq!(get(node.addr, "/health").0, 200);
    common::wait_for("/ready", || node.ready() == 200);

    let mut stream = RawStream::open(node.addr, "/events?topic=smoke/**");
    stream.wait_for("retry:");
    let ids = publish(node.addr, r#"{"topic":"smoke/image","type":"smoke.tested","data":{"from":"host"}}"#);
    stream.wait_for(&format!("id: {}", ids[0]));
    assert!(stream.text.contains(r#"data: {"from":"host"}"#), "{}", stream.text);

    // SIGTERM to the server itself (buildah run answers a signal by killing its child).
    let server = descendants(node.pid())
        .into_iter()
        .find(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"/herald\0serve\0")))
        .expect("the herald process under buildah run");
    let status = std::fs::read_to_string(format!("/proc/{server}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid.split_whitespace().skip(1).all(|u| u == "65532"), "runs as the image's user: {uid}");
    signal(server, "-TERM");
    stream.wait_for("event: herald.shutdown");
    let exit = node.wait(PATIENCE);
    assert!(exit.success(), "exit {exit:?}:\n{}", node.log.lock().unwrap());
    assert!(node.log.lock().unwrap().contains("stopped"), "{}", node.log.lock().unwrap());
}
