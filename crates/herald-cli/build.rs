//! Puts the git revision the binary was built from into `herald --version` (`GIT_REVISION`), so
//! a node's build can be told from its output alone. A source tree without `.git` (a tarball,
//! a vendored copy) or a machine without git builds as well, with the revision `unknown`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let revision = git(&dir, &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=GIT_REVISION={revision}");
    // Build again when HEAD moves: a checkout (HEAD), a commit on the current branch (its ref,
    // loose or packed). The ref files live in the common git directory of a worktree.
    if let (Some(git_dir), Some(common)) = (
        git(&dir, &["rev-parse", "--absolute-git-dir"]),
        git(&dir, &["rev-parse", "--path-format=absolute", "--git-common-dir"]),
    ) {
        let common = Path::new(&common);
        println!("cargo:rerun-if-changed={}", Path::new(&git_dir).join("HEAD").display());
        println!("cargo:rerun-if-changed={}", common.join("packed-refs").display());
        if let Some(branch) = git(&dir, &["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={}", common.join(branch).display());
        }
    }
}

/// `git ARGS` in `dir`: its trimmed output when it succeeds.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}
