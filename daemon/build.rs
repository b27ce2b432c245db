//! Records the git commit this binary is built from (`--version`).

include!("../packaging/git_commit.rs");

fn main() {
    emit_git_commit();
}
