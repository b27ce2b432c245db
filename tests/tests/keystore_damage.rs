//! A keystore meets a wrong passphrase, a truncated header, a key file with a flipped byte,
//! and a format version from the future. Each gives its own clear one-line error; nothing on
//! disk is written while it fails (every byte under the directory is compared); and once the
//! original file is put back, every key unlocks and signs exactly as before.
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keyward_client::KeystoreState;
use keyward_tests::keystore::{KeystoreDir, TestKey, make_key, snapshot};
use keyward_tests::{Daemon, read};

const PASSPHRASE: &[u8] = b"damage-test passphrase, long enough to be real";
const PAYLOAD: &[u8] =
    b"symbol=BTCUSDT&side=SELL&type=MARKET&quantity=0.01&timestamp=1700000000000";

/// A keystore with three keys, the signatures each made before any damage, and the path
/// of the stopped daemon's keystore.
struct Fixture {
    store: KeystoreDir,
    keys: Vec<TestKey>,
    signatures: Vec<Vec<u8>>,
}

impl Fixture {
    fn new() -> Fixture {
        let store = KeystoreDir::new();
        let keys = vec![
            make_key(store.scratch(), "alpha", "ed25519"),
            make_key(store.scratch(), "bravo", "hmac-sha256"),
            make_key(store.scratch(), "charlie", "ed25519"),
        ];
        let mut daemon = Daemon::start_with_keystore(store.path(), &[]);
        daemon
            .keyward_with_passphrases(&["init"], &[PASSPHRASE])
            .success();
        for key in &keys {
            daemon.import_key(key);
        }
        let signatures = daemon.assert_keys_sign_verifiably(&keys, PAYLOAD);
        daemon.stop();
        Fixture {
            store,
            keys,
            signatures,
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.store.path().join(relative)
    }

    fn key_file(&self, name: &str) -> PathBuf {
        self.path(&format!("keys/{name}.key"))
    }

    /// Puts `original` back at `relative`, then asserts a fresh daemon unlocks every key
    /// and each signs exactly as before the damage (all three schemes are deterministic).
    fn restore_and_check(&self, relative: &str, original: &[u8]) {
        std::fs::write(self.path(relative), original).unwrap();
        let daemon = Daemon::start_with_keystore(self.store.path(), &[]);
        let out = daemon.keyward_with_passphrases(&["unlock"], &[PASSPHRASE]);
        out.success();
        assert_eq!(out.stdout_text(), "unlocked: 3 keys\n");
        let signatures = daemon.assert_keys_sign_verifiably(&self.keys, PAYLOAD);
        assert_eq!(signatures, self.signatures, "a key signs differently now");
    }
}

/// The one ERROR line a daemon that refused to start logged, without its timestamp.
fn start_error(log: &str) -> &str {
    let errors: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(" ERROR "))
        .collect();
    assert_eq!(errors.len(), 1, "not exactly one error line:\n{log}");
    assert!(!log.contains("panicked"), "{log}");
    errors[0]
        .split_once(" ERROR ")
        .map(|(_, message)| message)
        .unwrap()
}

fn refused_start(store: &Path) -> String {
    let failed = Daemon::try_start_with_keystore(store, &[], &[])
        .expect_err("the daemon started on a damaged keystore");
    assert_eq!(failed.code, Some(1), "{}", failed.log);
    start_error(&failed.log).to_owned()
}

#[test]
fn a_wrong_passphrase_exits_1_costs_a_growing_delay_and_changes_nothing() {
    let fixture = Fixture::new();
    let before = snapshot(fixture.store.path());
    let daemon = Daemon::start_with_keystore(fixture.store.path(), &[]);
    let mut took = Vec::new();
    for guess in [
        &b"wrong guess one"[..],
        b"wrong guess two",
        b"wrong guess three",
    ] {
        let started = Instant::now();
        let out = daemon.keyward_with_passphrases(&["unlock"], &[guess]);
        took.push(started.elapsed());
        assert_eq!(out.error_line(1), "keyward: wrong passphrase");
        assert!(out.stdout.is_empty());
    }
    eprintln!("wrong passphrases took {took:?}");
    // 0.25 s, 0.5 s, 1 s on top of the KDF run each time.
    assert!(took[0] >= Duration::from_millis(250), "{took:?}");
    assert!(took[1] >= Duration::from_millis(500), "{took:?}");
    assert!(took[2] >= Duration::from_millis(1000), "{took:?}");
    // That the delay grows is read from the daemon's log, in order: comparing the wall
    // times of consecutive guesses compares KDF runs too, whose time varies by more than
    // the 0.25 s step on a loaded machine (the lower bounds above hold regardless).
    let log = daemon.log();
    let delays: Vec<&str> = log
        .lines()
        .filter_map(|line| {
            line.split("answering in ")
                .nth(1)?
                .split_whitespace()
                .next()
        })
        .collect();
    assert_eq!(
        delays,
        ["250ms", "500ms", "1s"],
        "the delay does not grow:\n{log}"
    );
    assert_eq!(
        daemon.client().status().unwrap().state,
        KeystoreState::Locked
    );
    assert_eq!(
        snapshot(fixture.store.path()),
        before,
        "a wrong passphrase changed the keystore"
    );
    // The right passphrase still works, and resets the delay.
    daemon
        .keyward_with_passphrases(&["unlock"], &[PASSPHRASE])
        .success();
    daemon.assert_keys_sign_verifiably(&fixture.keys, PAYLOAD);
    daemon.keyward(["lock"]).success();
    let started = Instant::now();
    let out = daemon.keyward_with_passphrases(&["unlock"], &[b"wrong again"]);
    out.error_line(1);
    let after_reset = started.elapsed();
    assert!(
        after_reset < took[2],
        "the delay was not reset by a correct passphrase: {after_reset:?}"
    );
    assert_eq!(snapshot(fixture.store.path()), before);
}

#[test]
fn a_truncated_header_is_a_corrupt_header_and_nothing_is_written() {
    let fixture = Fixture::new();
    let original = read(&fixture.path("header"));
    assert_eq!(original.len(), 112);
    for len in [0, 5, 11, 12, 40, 111] {
        std::fs::write(fixture.path("header"), &original[..len]).unwrap();
        let damaged = snapshot(fixture.store.path());
        let error = refused_start(fixture.store.path());
        assert!(
            error.starts_with("cannot open the keystore ")
                && error.contains("the keystore header is corrupt"),
            "truncated to {len} bytes: {error}"
        );
        assert_eq!(
            snapshot(fixture.store.path()),
            damaged,
            "a refused start changed the keystore (header truncated to {len})"
        );
    }
    // Trailing bytes are corruption too: version 1 has no optional fields.
    let mut longer = original.clone();
    longer.push(0);
    std::fs::write(fixture.path("header"), &longer).unwrap();
    let error = refused_start(fixture.store.path());
    assert!(error.contains("header is corrupt"), "{error}");
    // A missing header with key files present is not "uninitialized" (an init would make a
    // data key that can never open them).
    std::fs::remove_file(fixture.path("header")).unwrap();
    let error = refused_start(fixture.store.path());
    assert!(
        error.contains("header is corrupt") && error.contains("missing"),
        "{error}"
    );
    fixture.restore_and_check("header", &original);
}

#[test]
fn a_header_altered_in_place_is_refused_as_a_wrong_passphrase_would_be() {
    let fixture = Fixture::new();
    let original = read(&fixture.path("header"));
    // m lowered to make guessing cheaper (offset 12), a salt byte, a wrapped-key byte:
    // authentication fails exactly as for a wrong passphrase.
    for (offset, what) in [
        (15, "Argon2 memory"),
        (30, "salt"),
        (70, "wrapped data key"),
    ] {
        let mut damaged = original.clone();
        damaged[offset] ^= 0x01;
        std::fs::write(fixture.path("header"), &damaged).unwrap();
        let files = snapshot(fixture.store.path());
        let daemon = Daemon::start_with_keystore(fixture.store.path(), &[]);
        let out = daemon.keyward_with_passphrases(&["unlock"], &[PASSPHRASE]);
        assert_eq!(
            out.error_line(1),
            "keyward: wrong passphrase",
            "altered {what}"
        );
        drop(daemon);
        assert_eq!(snapshot(fixture.store.path()), files);
    }
    fixture.restore_and_check("header", &original);
}

#[test]
fn an_unknown_format_version_is_named_and_nothing_is_written() {
    let fixture = Fixture::new();
    // The header: version at bytes 8..12, big-endian (docs/KEYSTORE.md).
    let original = read(&fixture.path("header"));
    assert_eq!(&original[8..12], &[0, 0, 0, 1]);
    let mut future = original.clone();
    future[8..12].copy_from_slice(&2u32.to_be_bytes());
    // A later format may be longer: the version is reported whatever the length.
    future.extend_from_slice(&[0xAA; 40]);
    std::fs::write(fixture.path("header"), &future).unwrap();
    let damaged = snapshot(fixture.store.path());
    let error = refused_start(fixture.store.path());
    assert!(
        error.contains(
            "unsupported keystore format version 2 (this keyward reads versions up to 1)"
        ),
        "{error}"
    );
    assert_eq!(snapshot(fixture.store.path()), damaged);
    std::fs::write(fixture.path("header"), &original).unwrap();

    // A key file of a later version: that key is named, the others load.
    let key_file = fixture.key_file("bravo");
    let original_key = read(&key_file);
    // Key files without a stored passphrase are version 2 (the payload format; version 3
    // seals a passphrase too); the header is still version 1.
    assert_eq!(&original_key[..12], b"KWKEY\0\0\0\0\0\0\x02");
    let mut future_key = original_key.clone();
    future_key[8..12].copy_from_slice(&7u32.to_be_bytes());
    std::fs::write(&key_file, &future_key).unwrap();
    let damaged = snapshot(fixture.store.path());
    let daemon = Daemon::start_with_keystore(fixture.store.path(), &[]);
    let out = daemon.keyward_with_passphrases(&["unlock"], &[PASSPHRASE]);
    out.success();
    assert_eq!(
        out.stdout_text(),
        "unlocked: 2 keys\nwarning: key bravo could not be read: \
         unsupported keystore format version 7 (this keyward reads versions up to 3)\n"
    );
    let good: Vec<TestKey> = fixture
        .keys
        .iter()
        .filter(|key| key.name != "bravo")
        .cloned()
        .collect();
    daemon.assert_keys_sign_verifiably(&good, PAYLOAD);
    drop(daemon);
    assert_eq!(snapshot(fixture.store.path()), damaged);
    fixture.restore_and_check("keys/bravo.key", &original_key);
}

#[test]
fn a_damaged_key_file_is_reported_by_name_and_the_other_keys_unlock() {
    let fixture = Fixture::new();
    let bravo = fixture.key_file("bravo");
    let original = read(&bravo);
    // One bit of the ciphertext, then one bit of the clear metadata (the creation time,
    // bound as associated data), then a truncation.
    let created_at = 12 + 1 + 5 + 1 + 11 + 1; // version, name, scheme, API key flag
    let mut flipped_secret = original.clone();
    let last = flipped_secret.len() - 20;
    flipped_secret[last] ^= 0x80;
    let mut flipped_meta = original.clone();
    flipped_meta[created_at + 7] ^= 0x01;
    let truncated = original[..original.len() - 5].to_vec();
    for (what, damaged, reason) in [
        (
            "flipped ciphertext bit",
            &flipped_secret,
            "authentication failed",
        ),
        (
            "flipped metadata bit",
            &flipped_meta,
            "authentication failed",
        ),
        ("truncated file", &truncated, ""),
    ] {
        std::fs::write(&bravo, damaged).unwrap();
        let files = snapshot(fixture.store.path());
        let daemon = Daemon::start_with_keystore(fixture.store.path(), &[]);
        let out = daemon.keyward_with_passphrases(&["unlock"], &[PASSPHRASE]);
        out.success();
        let text = out.stdout_text();
        assert!(
            text.starts_with("unlocked: 2 keys\nwarning: key bravo could not be read: ")
                && text.lines().count() == 2
                && text.contains(reason),
            "{what}: {text}"
        );
        let status = daemon.keyward(["status"]);
        status.success();
        let status = status.stdout_text();
        assert!(
            status.starts_with("state: unlocked\nkeys: 2\n")
                && status.contains("\nunreadable key bravo: ")
                && status.contains(reason),
            "{what}: {status}"
        );
        let json = daemon.keyward(["status", "--json"]);
        assert!(
            json.stdout_text().contains("\"name\": \"bravo\""),
            "{what}: {json:#?}"
        );
        // The other two sign; bravo is simply not there.
        let good: Vec<TestKey> = fixture
            .keys
            .iter()
            .filter(|key| key.name != "bravo")
            .cloned()
            .collect();
        daemon.assert_keys_sign_verifiably(&good, PAYLOAD);
        let out = daemon.keyward(["sign", "bravo", "x"]);
        assert!(out.error_line(1).contains("bravo"), "{what}: {out:#?}");
        drop(daemon);
        assert_eq!(
            snapshot(fixture.store.path()),
            files,
            "{what}: unlocking a damaged keystore changed it"
        );
    }
    fixture.restore_and_check("keys/bravo.key", &original);
}
