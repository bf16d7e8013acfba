//! `herald --version` names the git revision the binary was built from (build.rs), so a
//! running node's build can be told from its output alone.

#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn version_names_the_git_revision() {
    let out = Command::new(env!("CARGO_BIN_EXE_herald")).arg("--version").output().unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    // The revision of this checkout (build.rs rebuilds when HEAD moves); `unknown` only where
    // the source has no git history, as in a tarball.
    let head = Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(|| "unknown".to_owned(), |o| String::from_utf8(o.stdout).unwrap().trim().to_owned());
    assert_eq!(printed, format!("herald {} ({head})\n", env!("CARGO_PKG_VERSION")));
}
