//! The runbooks of docs/OPERATIONS.md (issue 19 §8), tried end to end by
//! `tests/runbooks/test-runbooks` with the built binaries: backup under `umask 077`, testing
//! a backup as root, a passphrase change verified before it is sealed in, lock after a leak,
//! a restore with the backup's passphrase, auto-lock on a headless host.

use std::path::Path;
use std::process::Command;

use keyward_tests::{bin_dir, is_root, keyward_bin, keywardd_bin, run};

#[test]
fn the_operations_runbooks_work_end_to_end() {
    if !is_root() {
        eprintln!("SKIPPED the_operations_runbooks_work_end_to_end: needs root (CI runs as root)");
        return;
    }
    // Fails clearly if the binaries are missing.
    keywardd_bin();
    keyward_bin();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/test-runbooks");
    let out = run(
        Command::new("bash")
            .arg(script)
            .env("KEYWARD_BIN_DIR", bin_dir()),
        None,
    );
    assert_eq!(
        out.code,
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        out.stderr
    );
    assert!(
        out.stdout_text().contains("all runbooks passed"),
        "{}",
        out.stdout_text()
    );
}
