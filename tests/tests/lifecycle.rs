//! The keystore's state is one truth: lock, unlock, init and passwd are serialized, so after
//! any interleaving `status`, signing and `generate` agree on it. And `status` tells a
//! non-admin peer only about the keys it may use.
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use keyward_client::{ErrorCode, KeyKind, KeystoreState, SecretBytes};
use keyward_tests::keystore::KeystoreDir;
use keyward_tests::{Daemon, is_root, keyward_bin, run};

const PASSPHRASE: &[u8] = b"lifecycle-test passphrase, long enough to be real";

fn passphrase() -> SecretBytes {
    SecretBytes::from(PASSPHRASE.to_vec())
}

/// A pseudo-random number in 0..n from the clock (no rand crate needed for jitter).
fn jitter(n: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    u64::from(nanos.wrapping_mul(2_654_435_761)) % n.max(1)
}

#[test]
fn after_fifty_races_of_lock_against_unlock_status_signing_and_generate_agree() {
    let store = KeystoreDir::new();
    let daemon = Daemon::start_with_keystore(store.path(), &[]);
    daemon
        .keyward_with_passphrases(&["init"], &[PASSPHRASE])
        .success();
    daemon.generate("k", "ed25519");

    // How long an unlock takes here, so that the lock lands anywhere inside it.
    let mut client = daemon.client();
    client.lock().unwrap();
    let started = Instant::now();
    client.unlock(passphrase()).unwrap();
    let unlock_micros = u64::try_from(started.elapsed().as_micros()).unwrap();

    let (mut unlocked_runs, mut locked_runs) = (0, 0);
    for round in 0..50 {
        client.lock().unwrap();
        let barrier = Barrier::new(2);
        let (unlocked, locked) = std::thread::scope(|scope| {
            let unlocker = scope.spawn(|| {
                let mut client = daemon.client();
                barrier.wait();
                client.unlock(passphrase())
            });
            let locker = scope.spawn(|| {
                let mut client = daemon.client();
                barrier.wait();
                std::thread::sleep(Duration::from_micros(jitter(unlock_micros * 5 / 4)));
                client.lock()
            });
            (unlocker.join().unwrap(), locker.join().unwrap())
        });
        unlocked.unwrap_or_else(|err| panic!("round {round}: unlock failed: {err}"));
        locked.unwrap_or_else(|err| panic!("round {round}: lock failed: {err}"));

        let state = client.status().unwrap().state;
        let signed = client.sign("k", b"symbol=BTCUSDT&timestamp=1");
        let generated = client.generate(&format!("g{round}"), KeyKind::Ed25519, None, None);
        match state {
            KeystoreState::Unlocked => {
                unlocked_runs += 1;
                signed.unwrap_or_else(|err| {
                    panic!("round {round}: status says unlocked but signing failed: {err}")
                });
                generated.unwrap_or_else(|err| {
                    panic!("round {round}: status says unlocked but generate failed: {err}")
                });
                client.remove(&format!("g{round}")).unwrap();
            }
            KeystoreState::Locked => {
                locked_runs += 1;
                let err = signed.expect_err("status says locked but a signature came back");
                assert_eq!(err.code(), Some(ErrorCode::Locked), "round {round}: {err}");
                let err = generated.expect_err("status says locked but generate worked");
                assert_eq!(err.code(), Some(ErrorCode::Locked), "round {round}: {err}");
            }
            other => panic!("round {round}: unexpected state {other:?}"),
        }
    }
    eprintln!(
        "unlock takes {unlock_micros} µs; {unlocked_runs} races ended unlocked, {locked_runs} locked"
    );
}

#[test]
fn status_tells_a_non_admin_only_about_the_keys_it_may_use() {
    if !is_root() {
        eprintln!("SKIPPED status_tells_a_non_admin_only_about_the_keys_it_may_use: needs root");
        return;
    }
    // Three keys; uid 65534 may use "bot-key" only; "secret-desk" becomes unreadable.
    let store = KeystoreDir::new();
    let config = store.scratch().join("keywardd.toml");
    fs::write(&config, "[keys.\"bot-key\"]\nallow_uids = [65534]\n").unwrap();
    let args = ["--config", config.to_str().unwrap()];
    let mut daemon = Daemon::start_with_keystore(store.path(), &args);
    daemon
        .keyward_with_passphrases(&["init"], &[PASSPHRASE])
        .success();
    for name in ["bot-key", "secret-desk", "other-desk"] {
        daemon.generate(name, "ed25519");
    }
    daemon.stop();
    let damaged = store.path().join("keys/secret-desk.key");
    let mut bytes = fs::read(&damaged).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x40;
    fs::write(&damaged, bytes).unwrap();

    let daemon = Daemon::start_with_keystore(store.path(), &args);
    daemon
        .keyward_with_passphrases(&["unlock"], &[PASSPHRASE])
        .success();
    // The admin sees it all.
    let admin = daemon.keyward(["status"]);
    admin.success();
    let admin = admin.stdout_text();
    assert!(
        admin.contains("keys: 2\n") && admin.contains("secret-desk"),
        "{admin}"
    );

    // The bot sees its one key, and nothing of the others.
    let work = tempfile::tempdir().unwrap();
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let keyward = work.path().join("keyward");
    fs::copy(keyward_bin(), &keyward).unwrap();
    fs::set_permissions(&keyward, fs::Permissions::from_mode(0o755)).unwrap();
    daemon.open_permissions_to_everyone();
    for args in [&["status"][..], &["status", "--json"]] {
        let bot = run(
            Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&keyward)
                .arg("--socket")
                .arg(daemon.socket())
                .args(args)
                .env_remove("KEYWARD_SOCK"),
            None,
        );
        bot.success();
        let text = bot.stdout_text();
        assert!(
            !text.contains("secret-desk") && !text.contains("other-desk"),
            "the bot sees other keys: {text}"
        );
        assert!(
            text.contains("keys: 1\n") || text.contains("\"keys\": 1"),
            "the bot should count its one key: {text}"
        );
    }
}

/// Waits until `pattern` appears `count` times in the daemon's log (or fails after 10 s).
fn wait_for_log(daemon: &Daemon, pattern: &str, count: usize) -> String {
    let started = Instant::now();
    loop {
        let log = daemon.log();
        if log.matches(pattern).count() >= count {
            return log;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "expected {count} × {pattern:?} in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_config_table_naming_no_key_is_reported_at_start_at_unlock_and_at_sighup() {
    // A typo in [keys."..."] silently left the key it meant under [defaults].
    let store = KeystoreDir::new();
    let mut daemon = Daemon::start_with_keystore(store.path(), &[]);
    daemon
        .keyward_with_passphrases(&["init"], &[PASSPHRASE])
        .success();
    daemon.generate("grid-bot", "ed25519");
    daemon.stop();

    let config = store.scratch().join("keywardd.toml");
    fs::write(
        &config,
        "[keys.\"grid-bot\"]\nrate_per_sec = 5\n\n[keys.\"grid-bto\"]\nrate_per_sec = 1\n",
    )
    .unwrap();
    let daemon = Daemon::start_with_keystore(store.path(), &["--config", config.to_str().unwrap()]);
    let typo = "[keys.\"grid-bto\"] table names no key";
    let log = wait_for_log(&daemon, &format!("start: the config's {typo}"), 1);
    assert!(
        !log.contains("[keys.\"grid-bot\"] table names no key"),
        "the key that exists was reported:\n{log}"
    );
    daemon
        .keyward_with_passphrases(&["unlock"], &[PASSPHRASE])
        .success();
    wait_for_log(&daemon, &format!("unlock: the config's {typo}"), 1);

    fs::write(
        &config,
        "[keys.\"grid-bot\"]\nrate_per_sec = 5\n\n[keys.\"gird-bot\"]\n",
    )
    .unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    let log = wait_for_log(
        &daemon,
        "SIGHUP: the config's [keys.\"gird-bot\"] table names no key",
        1,
    );
    assert!(
        !log.contains("SIGHUP: the config's [keys.\"grid-bto\"]"),
        "a table no longer in the config was reported:\n{log}"
    );
}
