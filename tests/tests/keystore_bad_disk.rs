//! A keystore on a bad disk, with the real daemon: full (ENOSPC), then read-only (EROFS).
//! Every write (import, generate, `passwd`) fails with one clear error naming the cause; the
//! keys already there still sign; nothing is half-written (the directory holds exactly the
//! files it held before, byte for byte, and no temporary file); a restart on the bad disk
//! unlocks with the old passphrase; and once the disk is good again, writes work.
//!
//! Writes must fail for real, and CI runs as root, which ignores permission bits: the
//! keystore lives on a small tmpfs of its own (keyward_tests::disk), filled up or remounted
//! read-only. Without the right to mount, the test says it skipped.
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use keyward_client::{Client, Error, KeyKind, SecretBytes};
use keyward_tests::Daemon;
use keyward_tests::disk::Tmpfs;
use keyward_tests::keystore::{TestKey, make_key, snapshot};

const OLD: &[u8] = b"bad disk passphrase, the one that stays";
const NEW: &[u8] = b"bad disk passphrase, the one that cannot be written";
const PAYLOAD: &[u8] = b"symbol=BTCUSDT&side=BUY&quantity=1&timestamp=1";

/// Every write the daemon can make, each on its own: each must fail with `cause` in its
/// message, and change nothing on disk.
fn assert_every_write_fails(daemon: &Daemon, keystore: &Path, spare: &TestKey, cause: &str) {
    let before = snapshot(keystore);
    let mut client = daemon.client();
    let failed = |result: Result<(), Error>, what: &str| {
        let err = result.expect_err(&format!("{what} succeeded on a bad disk"));
        let message = err.to_string();
        assert!(
            message.contains(cause),
            "{what}: the error does not name the cause ({cause}): {message}"
        );
        assert_eq!(message.lines().count(), 1, "{what}: {message}");
        eprintln!("{what}: {message}");
    };
    failed(
        client
            .import(
                &spare.name,
                None,
                SecretBytes::new(spare.material()),
                None,
                None,
                None,
            )
            .map(drop),
        "import",
    );
    failed(
        client
            .generate("generated-on-a-bad-disk", KeyKind::Ed25519, None, None)
            .map(drop),
        "generate",
    );
    failed(
        client.change_passphrase(
            SecretBytes::new(OLD.to_vec()),
            SecretBytes::new(NEW.to_vec()),
        ),
        "passwd",
    );
    // The CLI says it in one line too.
    let out = daemon.keyward_with_passphrases(&["passwd"], &[OLD, NEW]);
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains(cause), "{out:#?}");
    // Nothing half-written: the same files, the same bytes, no temporary file left.
    assert_eq!(
        names(&snapshot(keystore)),
        names(&before),
        "the files changed on a failed write"
    );
    assert!(
        snapshot(keystore) == before,
        "a file's bytes changed on a failed write"
    );
    // And the daemon still lists what it had.
    let listed: Vec<String> = client.list().unwrap().into_iter().map(|k| k.name).collect();
    assert!(
        !listed.contains(&spare.name) && !listed.iter().any(|n| n == "generated-on-a-bad-disk")
    );
}

fn names(files: &[(PathBuf, Vec<u8>)]) -> Vec<&Path> {
    files.iter().map(|(path, _)| path.as_path()).collect()
}

fn unlock(daemon: &Daemon, passphrase: &[u8]) {
    let mut client: Client = daemon.client();
    client
        .unlock(SecretBytes::new(passphrase.to_vec()))
        .unwrap();
    assert!(client.status().unwrap().unreadable.is_empty());
}

#[test]
fn on_a_full_or_read_only_disk_writes_fail_clearly_and_the_keys_stay_whole() {
    let test = "on_a_full_or_read_only_disk_writes_fail_clearly_and_the_keys_stay_whole";
    let scratch = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&scratch.path().join("disk"), 512, test) else {
        return;
    };
    let keystore = disk.path().join("keystore");
    let keys: Vec<TestKey> = [
        ("ed", "ed25519"),
        ("rsa", "rsa-2048"),
        ("hmac", "hmac-sha256"),
    ]
    .into_iter()
    .map(|(name, kind)| make_key(scratch.path(), name, kind))
    .collect();
    let spare = make_key(scratch.path(), "spare", "ed25519");

    let daemon = Daemon::start_with_keystore(&keystore, &[]);
    daemon.keyward_with_passphrases(&["init"], &[OLD]).success();
    for key in &keys {
        daemon.import_key(key);
    }
    daemon.assert_keys_sign_verifiably(&keys, PAYLOAD);

    // Full.
    let filled = disk.fill();
    eprintln!("filled the tmpfs with {filled} bytes");
    assert_every_write_fails(&daemon, &keystore, &spare, "No space left on device");
    daemon.assert_keys_sign_verifiably(&keys, PAYLOAD);
    drop(daemon);
    // A restart on the full disk unlocks with the old passphrase, every key whole.
    let daemon = Daemon::start_with_keystore(&keystore, &[]);
    unlock(&daemon, OLD);
    daemon.assert_keys_sign_verifiably(&keys, PAYLOAD);
    drop(daemon);

    // Read-only.
    disk.free();
    disk.set_read_only(true);
    let daemon = Daemon::start_with_keystore(&keystore, &[]);
    unlock(&daemon, OLD);
    assert_every_write_fails(&daemon, &keystore, &spare, "Read-only file system");
    daemon.assert_keys_sign_verifiably(&keys, PAYLOAD);
    drop(daemon);

    // A good disk again: writes work, and they last.
    disk.set_read_only(false);
    let daemon = Daemon::start_with_keystore(&keystore, &[]);
    unlock(&daemon, OLD);
    daemon.import_key(&spare);
    daemon
        .keyward_with_passphrases(&["passwd"], &[OLD, NEW])
        .success();
    drop(daemon);
    let daemon = Daemon::start_with_keystore(&keystore, &[]);
    unlock(&daemon, NEW);
    let mut all = keys.clone();
    all.push(spare.clone());
    daemon.assert_keys_sign_verifiably(&all, PAYLOAD);
}
