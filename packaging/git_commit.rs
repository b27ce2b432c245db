// Shared by cli/build.rs and daemon/build.rs (`include!`d): sets KEYWARD_GIT_COMMIT for
// `--version` and the daemon's start line.
//
// The commit comes from $KEYWARD_GIT_COMMIT when set (a build from a source tarball can pass
// it), else from `git rev-parse` in the checkout, else it is "unknown": a build without git
// or without .git must still work, it just cannot say which commit it is.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_owned())
}

fn emit_git_commit() {
    println!("cargo::rerun-if-env-changed=KEYWARD_GIT_COMMIT");
    let commit = match std::env::var("KEYWARD_GIT_COMMIT") {
        Ok(commit) if !commit.is_empty() => commit,
        _ => {
            let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
            match git(&dir, &["rev-parse", "--short=12", "HEAD"]) {
                Some(commit) => {
                    // Rebuild when HEAD moves: HEAD itself (a checkout), the branch it names
                    // (a commit) and packed-refs (after `git gc`). In a worktree HEAD lives in
                    // the worktree's git dir and the refs in the common one.
                    let absolute = |path: String| {
                        let path = PathBuf::from(path);
                        if path.is_absolute() {
                            path
                        } else {
                            dir.join(path)
                        }
                    };
                    if let Some(git_dir) = git(&dir, &["rev-parse", "--git-dir"]).map(absolute) {
                        println!("cargo::rerun-if-changed={}", git_dir.join("HEAD").display());
                    }
                    if let Some(common) =
                        git(&dir, &["rev-parse", "--git-common-dir"]).map(absolute)
                    {
                        if let Some(branch) = git(&dir, &["symbolic-ref", "-q", "HEAD"]) {
                            let file = common.join(branch);
                            if file.exists() {
                                println!("cargo::rerun-if-changed={}", file.display());
                            }
                        }
                        let packed = common.join("packed-refs");
                        if packed.exists() {
                            println!("cargo::rerun-if-changed={}", packed.display());
                        }
                    }
                    commit
                }
                None => "unknown".to_owned(),
            }
        }
    };
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=../packaging/git_commit.rs");
    println!("cargo::rustc-env=KEYWARD_GIT_COMMIT={commit}");
}
