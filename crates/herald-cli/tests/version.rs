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
    let git = |args: &[&str]| {
        Command::new("git")
            .args(["-C", env!("CARGO_MANIFEST_DIR")])
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_owned())
    };
    let Some(head) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        assert_eq!(printed, format!("herald {} (unknown)\n", env!("CARGO_PKG_VERSION")));
        return;
    };
    let revision = printed
        .strip_prefix(&format!("herald {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(")\n"))
        .unwrap_or_else(|| panic!("{printed:?}"));
    // A commit made while the tests ran moves HEAD past the build: the binary's revision must
    // then still be one of HEAD's ancestors.
    assert!(
        revision == head || git(&["merge-base", "--is-ancestor", revision, "HEAD"]).is_some(),
        "built from {revision:?}, HEAD is {head}"
    );
    assert_eq!(revision.len(), 12, "{printed:?}");
}
