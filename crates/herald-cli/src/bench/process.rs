//! The memory of the server under test, read from `/proc` (Linux only).
//!
//! The server is every process that holds the listening socket of the port under test (found
//! through `/proc/net/tcp*` and `/proc/*/fd`), or the pids given with `--server-pid`. For Herald
//! that is one process; for nginx it is the master and its workers, which share memory, so the
//! report gives both the sum of `VmRSS` and the sum of `Pss` (proportional set size: shared pages
//! split between the processes that map them, so the sum counts them once).

use anyhow::{bail, Context};

/// The memory of the server's processes at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Memory {
    pub(crate) rss: u64,
    pub(crate) pss: u64,
}

/// The pids of the processes listening on `port`.
pub(crate) fn listeners(port: u16) -> anyhow::Result<Vec<u32>> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st ... inode (field 9); st 0A = LISTEN.
            if f.len() > 9 && f[3] == "0A" {
                let local_port = f[1].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
                if local_port == Some(port) {
                    inodes.push(format!("socket:[{}]", f[9]));
                }
            }
        }
    }
    if inodes.is_empty() {
        bail!("no process listens on port {port}; pass --server-pid");
    }
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        if fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| inodes.iter().any(|i| l.as_os_str() == i.as_str())))
        {
            pids.push(pid);
        }
    }
    if pids.is_empty() {
        bail!("cannot see which process listens on port {port} (another user's?); pass --server-pid");
    }
    pids.sort_unstable();
    Ok(pids)
}

/// The summed memory of `pids`.
pub(crate) fn memory(pids: &[u32]) -> anyhow::Result<Memory> {
    let mut total = Memory::default();
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("pid {pid}"))?;
        total.rss += kib_field(&status, "VmRSS:").context("no VmRSS")? * 1024;
        let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        total.pss += kib_field(&rollup, "Pss:").unwrap_or(0) * 1024;
    }
    Ok(total)
}

fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}
