//! The encrypted keystore as a person uses it, with the real binaries: keys survive a
//! restart and sign identically after one unlock; the states uninitialized → unlocked →
//! locked → unlocked and which commands each allows; `passwd`; auto-lock on idleness and on
//! maximum unlocked time; headless unlock at start from a file or systemd's credentials
//! directory; encrypted PKCS#8 imports that persist.
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use keyward_client::{ErrorCode, KeystoreState};
use keyward_tests::keystore::{
    KeystoreDir, TestKey, keys_of_every_scheme, make_key, path_str, snapshot, spki_pem,
};
use keyward_tests::verify::{Check, assert_python_verifies_all};
use keyward_tests::{Daemon, Output, openssl, read, without_daemon_line};

const PASSPHRASE: &[u8] = b"correct horse battery staple, keystore edition";
const NEW_PASSPHRASE: &[u8] = b"a different, equally long passphrase for passwd";
/// A Binance order query (the API documentation's example).
const QUERY: &[u8] = b"symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";

fn init(daemon: &Daemon) {
    let out = daemon.keyward_with_passphrases(&["init"], &[PASSPHRASE]);
    out.success();
    assert_eq!(out.stdout_text(), "keystore created and unlocked\n");
}

fn unlock(daemon: &Daemon, passphrase: &[u8]) -> Output {
    daemon.keyward_with_passphrases(&["unlock"], &[passphrase])
}

fn state(daemon: &Daemon) -> KeystoreState {
    daemon.client().status().unwrap().state
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Asserts `out` failed with exit code 5 and one line saying the keystore is locked.
#[track_caller]
fn assert_locked_error(out: &Output, what: &str) {
    let line = out.error_line(5);
    assert!(
        line.contains("locked"),
        "{what}: the error does not say locked: {line}"
    );
    assert!(out.stdout.is_empty(), "{what}: printed {out:#?}");
}

#[test]
fn keys_survive_a_restart_and_sign_identically_after_unlock() {
    let store = KeystoreDir::new();
    let mut keys = keys_of_every_scheme(store.scratch(), "imported-");
    let mut daemon = Daemon::start_with_keystore(store.path(), &[]);
    init(&daemon);
    for key in &keys {
        daemon.import_key(key);
    }
    // One more import, with an API key id and a payload format that must survive too.
    let with_api = make_key(store.scratch(), "with-api-key", "ed25519");
    daemon.import(
        &with_api.name,
        &with_api.file,
        &[
            "--api-key",
            "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
            "--format",
            "binance",
        ],
    );
    keys.push(with_api);
    // Generated inside the daemon: their public key is all that ever leaves it.
    for (name, kind) in [
        ("generated-ed", "ed25519"),
        ("generated-rsa", "rsa-2048"),
        ("generated-ec", "ecdsa-p256"),
    ] {
        let public = daemon.generate(name, kind);
        let verify_key = store.scratch().join(format!("{name}.pub.pem"));
        std::fs::copy(&public, &verify_key).unwrap();
        let scheme = match kind {
            "ed25519" => "ed25519",
            "rsa-2048" => "rsa-pkcs1v15-sha256",
            _ => "ecdsa-p256-sha256",
        };
        keys.push(TestKey {
            name: name.to_owned(),
            scheme,
            file: verify_key.clone(),
            import_args: Vec::new(),
            verify_key,
        });
    }
    let before_list = daemon.keyward(["list", "--json"]);
    before_list.success();
    assert_eq!(
        before_list
            .stdout_text()
            .matches("\"format\": \"binance\"")
            .count(),
        1,
        "{}",
        before_list.stdout_text()
    );
    let before_pubkeys: Vec<Vec<u8>> = keys
        .iter()
        .filter(|key| !key.is_hmac())
        .map(|key| {
            let out = daemon.keyward(["pubkey", &key.name]);
            out.success();
            out.stdout
        })
        .collect();
    let before = daemon.assert_keys_sign_verifiably(&keys, QUERY);
    daemon.stop();

    // On disk: the header and one file per key, private modes.
    assert_eq!(mode(store.path()), 0o700);
    assert_eq!(mode(&store.path().join("keys")), 0o700);
    assert_eq!(mode(&store.path().join("header")), 0o600);
    for key in &keys {
        let file = store.path().join("keys").join(format!("{}.key", key.name));
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }

    let daemon = Daemon::start_with_keystore(store.path(), &[]);
    let status = daemon.client().status().unwrap();
    assert_eq!(
        (status.state, status.keys),
        (KeystoreState::Locked, 0),
        "a restarted daemon starts locked"
    );
    assert_locked_error(&daemon.keyward(["list"]), "list before unlock");
    let out = unlock(&daemon, PASSPHRASE);
    out.success();
    assert_eq!(
        out.stdout_text(),
        format!("unlocked: {} keys\n", keys.len())
    );

    // The same keys, described the same way (names, schemes, bits, fingerprints, API ids,
    // formats).
    let after_list = daemon.keyward(["list", "--json"]);
    after_list.success();
    assert_eq!(after_list.stdout_text(), before_list.stdout_text());
    // Generated keys keep their public key, byte for byte.
    let after_pubkeys: Vec<Vec<u8>> = keys
        .iter()
        .filter(|key| !key.is_hmac())
        .map(|key| {
            let out = daemon.keyward(["pubkey", &key.name]);
            out.success();
            out.stdout
        })
        .collect();
    assert_eq!(after_pubkeys, before_pubkeys, "a public key changed");
    // Every key signs, verifiably under the public key recorded before the restart...
    let after = daemon.assert_keys_sign_verifiably(&keys, QUERY);
    // ...and, for every deterministic scheme, with exactly the same bytes.
    for ((key, before), after) in keys.iter().zip(&before).zip(&after) {
        if key.scheme != "ecdsa-p256-sha256" {
            assert_eq!(
                before, after,
                "{} signs differently after a restart",
                key.name
            );
        }
    }
}

#[test]
fn lifecycle_uninitialized_unlocked_locked_unlocked_and_what_each_state_allows() {
    let store = KeystoreDir::new();
    let key = make_key(store.scratch(), "ed", "ed25519");
    let daemon = Daemon::start_with_keystore(store.path(), &[]);

    // Uninitialized: nothing exists on disk, and every key command says what to do.
    // `status` prints the state and exits 7: no keystore, so nothing can sign.
    let status = daemon.keyward(["status"]);
    assert!(status.error_line(7).contains("keyward init"), "{status:#?}");
    assert_eq!(
        without_daemon_line(status.stdout_text()),
        "state: uninitialized\nkeys: 0\n"
    );
    assert!(
        !store.path().exists(),
        "the daemon created the keystore before init"
    );
    for args in [
        &["sign", "ed", "x"][..],
        &["list"],
        &["pubkey", "ed"],
        &["remove", "ed"],
        &["generate", "ed", "--scheme", "ed25519"],
        &["import", "ed", "--file", path_str(&key.file)],
    ] {
        let out = daemon.keyward(args);
        let line = out.error_line(5);
        assert!(
            line.contains("not initialized") && line.contains("keyward init"),
            "{args:?} on an uninitialized keystore: {line}"
        );
    }
    let out = unlock(&daemon, PASSPHRASE);
    assert!(out.error_line(5).contains("not initialized"), "{out:#?}");
    assert!(!store.path().exists());

    // init: created with private modes, and unlocked at once.
    init(&daemon);
    assert_eq!(state(&daemon), KeystoreState::Unlocked);
    assert_eq!(mode(store.path()), 0o700);
    assert_eq!(mode(&store.path().join("header")), 0o600);
    let header = read(&store.path().join("header"));
    assert_eq!(header.len(), 112);
    assert_eq!(&header[..12], b"KWSTORE\0\0\0\0\x01");
    // A second init is refused and changes nothing.
    let again = daemon.keyward_with_passphrases(&["init"], &[NEW_PASSPHRASE]);
    assert!(
        again.error_line(1).contains("already initialized"),
        "{again:#?}"
    );
    assert_eq!(read(&store.path().join("header")), header);

    daemon.import_key(&key);
    daemon.generate("gen", "ed25519");
    daemon.keyward(["sign", "ed", "x"]).success();

    // lock: every key command is refused with exit 5, and nothing on disk changes.
    let out = daemon.keyward(["lock"]);
    out.success();
    assert_eq!(out.stdout_text(), "locked\n");
    // `status` prints the state and exits 5, as every key command does when locked.
    let status = daemon.keyward(["status"]);
    assert!(
        status.error_line(5).contains("keyward unlock"),
        "{status:#?}"
    );
    assert_eq!(
        without_daemon_line(status.stdout_text()),
        "state: locked\nkeys: 0\n"
    );
    let files = snapshot(store.path());
    let other = make_key(store.scratch(), "other", "hmac-sha256");
    for args in [
        &["sign", "ed", "x"][..],
        &["sign", "gen", "x"],
        &["list"],
        &["pubkey", "ed"],
        &["remove", "ed"],
        &["generate", "new", "--scheme", "ed25519"],
        &[
            "import",
            "other",
            "--file",
            path_str(&other.file),
            "--scheme",
            "hmac-sha256",
        ],
    ] {
        assert_locked_error(&daemon.keyward(args), &format!("{args:?} while locked"));
    }
    assert_eq!(
        snapshot(store.path()),
        files,
        "a refused request changed the keystore"
    );
    // Locking twice is harmless.
    daemon.keyward(["lock"]).success();

    // unlock: both keys are back.
    let out = unlock(&daemon, PASSPHRASE);
    out.success();
    assert_eq!(out.stdout_text(), "unlocked: 2 keys\n");
    daemon.keyward(["sign", "ed", "x"]).success();
    daemon.keyward(["sign", "gen", "x"]).success();
    // Remove persists: after lock and unlock the key stays gone.
    daemon.keyward(["remove", "gen"]).success();
    assert!(!store.path().join("keys/gen.key").exists());

    // passwd: a wrong current passphrase changes nothing...
    let header = read(&store.path().join("header"));
    let out =
        daemon.keyward_with_passphrases(&["passwd"], &[b"not the passphrase", NEW_PASSPHRASE]);
    assert!(out.error_line(1).contains("wrong passphrase"), "{out:#?}");
    assert_eq!(read(&store.path().join("header")), header);
    // ...the right one rewraps the data key: the header changes, the key files do not.
    let keys_before = snapshot(&store.path().join("keys"));
    let out = daemon.keyward_with_passphrases(&["passwd"], &[PASSPHRASE, NEW_PASSPHRASE]);
    out.success();
    assert_eq!(out.stdout_text(), "passphrase changed\n");
    assert_ne!(read(&store.path().join("header")), header);
    assert_eq!(snapshot(&store.path().join("keys")), keys_before);
    assert_eq!(
        state(&daemon),
        KeystoreState::Unlocked,
        "passwd locked the keystore"
    );
    daemon.keyward(["sign", "ed", "x"]).success();
    daemon.keyward(["lock"]).success();
    let out = unlock(&daemon, PASSPHRASE);
    assert!(out.error_line(1).contains("wrong passphrase"), "{out:#?}");
    assert_eq!(state(&daemon), KeystoreState::Locked);
    let out = unlock(&daemon, NEW_PASSPHRASE);
    out.success();
    assert_eq!(out.stdout_text(), "unlocked: 1 keys\n");
    daemon.keyward(["sign", "ed", "x"]).success();
}

/// Polls the daemon's state every 50 ms until it is locked; returns how long that took
/// from `since`. Panics after `limit`.
fn time_until_locked(daemon: &Daemon, since: Instant, limit: Duration) -> Duration {
    let mut client = daemon.client();
    loop {
        if client.status().unwrap().state == KeystoreState::Locked {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < limit,
            "still unlocked after {limit:?}; log:\n{}",
            daemon.log()
        );
        sleep(Duration::from_millis(50));
    }
}

#[test]
fn idle_lock_locks_after_the_idle_time_but_not_while_keys_are_used() {
    let store = KeystoreDir::new();
    let key = make_key(store.scratch(), "ed", "ed25519");
    let daemon = Daemon::start_with_keystore(store.path(), &["--idle-lock", "2"]);
    init(&daemon);
    daemon.import_key(&key);
    // Signing every 250 ms for twice the idle time keeps it unlocked.
    let mut client = daemon.client();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        client.sign("ed", b"keep-alive").unwrap_or_else(|err| {
            panic!(
                "locked after {:?} although signing every 250 ms: {err}",
                started.elapsed()
            )
        });
        sleep(Duration::from_millis(250));
    }
    // Then idle: locked within the idle time plus the once-a-second check.
    let last_use = Instant::now();
    client.sign("ed", b"last").unwrap();
    let took = time_until_locked(&daemon, last_use, Duration::from_secs(6));
    assert!(
        took >= Duration::from_millis(1900) && took <= Duration::from_millis(4000),
        "--idle-lock 2 locked {took:?} after the last signature"
    );
    let err = client.sign("ed", b"after").unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Locked), "{err}");
    assert!(daemon.log().contains("keystore locked (idle timeout)"));
}

#[test]
fn idle_lock_of_one_second_locks_an_unused_keystore_within_two() {
    let store = KeystoreDir::new();
    let daemon = Daemon::start_with_keystore(store.path(), &["--idle-lock", "1"]);
    init(&daemon);
    let unlocked_at = Instant::now();
    let took = time_until_locked(&daemon, unlocked_at, Duration::from_secs(5));
    // The deadline is checked once a second: 1 to 2 s, plus some slack for a loaded machine.
    assert!(
        took >= Duration::from_millis(900) && took <= Duration::from_millis(3000),
        "--idle-lock 1 locked after {took:?}"
    );
    assert_eq!(
        without_daemon_line(daemon.keyward(["status"]).stdout_text()),
        "state: locked\nkeys: 0\n"
    );
}

#[test]
fn max_unlock_locks_even_while_keys_are_used() {
    let store = KeystoreDir::new();
    let key = make_key(store.scratch(), "ed", "ed25519");
    let daemon = Daemon::start_with_keystore(store.path(), &["--max-unlock", "2"]);
    init(&daemon);
    let unlocked_at = Instant::now();
    daemon.import_key(&key);
    let mut client = daemon.client();
    let locked_after = loop {
        match client.sign("ed", b"busy") {
            Ok(_) => {}
            Err(err) => {
                assert_eq!(err.code(), Some(ErrorCode::Locked), "{err}");
                break unlocked_at.elapsed();
            }
        }
        assert!(
            unlocked_at.elapsed() < Duration::from_secs(6),
            "--max-unlock 2 never locked a busy keystore"
        );
        sleep(Duration::from_millis(100));
    };
    assert!(
        locked_after >= Duration::from_millis(1800) && locked_after <= Duration::from_millis(4000),
        "--max-unlock 2 locked after {locked_after:?}"
    );
    assert!(
        daemon
            .log()
            .contains("keystore locked (maximum unlock time)")
    );
    assert_eq!(state(&daemon), KeystoreState::Locked);
}

#[test]
fn status_shows_the_seconds_until_each_auto_lock() {
    let store = KeystoreDir::new();
    let daemon =
        Daemon::start_with_keystore(store.path(), &["--idle-lock", "300", "--max-unlock", "600"]);
    init(&daemon);
    let text = daemon.keyward(["status"]);
    text.success();
    let text = text.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..2], ["state: unlocked", "keys: 0"], "{text}");
    assert!(
        ["idle auto-lock: in 299 s", "idle auto-lock: in 300 s"].contains(&lines[2]),
        "{text}"
    );
    assert!(
        ["maximum unlock: in 599 s", "maximum unlock: in 600 s"].contains(&lines[3]),
        "{text}"
    );
    assert_eq!(lines.len(), 5, "{text}");
    without_daemon_line(text);
    let json = daemon.keyward(["status", "--json"]);
    json.success();
    let json = json.stdout_text();
    assert!(json.contains("\"state\": \"unlocked\""), "{json}");
    assert!(
        json.contains("\"idle_lock_in\": 299") || json.contains("\"idle_lock_in\": 300"),
        "{json}"
    );
    assert!(
        json.contains("\"max_unlock_in\": 599") || json.contains("\"max_unlock_in\": 600"),
        "{json}"
    );
    // Locked: no timers.
    daemon.keyward(["lock"]).success();
    let json = daemon.keyward(["status", "--json"]);
    let json = json.stdout_text();
    assert!(
        json.contains("\"idle_lock_in\": null") && json.contains("\"max_unlock_in\": null"),
        "{json}"
    );

    // Without auto-lock, status says so.
    let store = KeystoreDir::new();
    let daemon = Daemon::start_with_keystore(store.path(), &[]);
    init(&daemon);
    let status = daemon.keyward(["status"]);
    status.success();
    assert_eq!(
        without_daemon_line(status.stdout_text()),
        "state: unlocked\nkeys: 0\nidle auto-lock: never\nmaximum unlock: never\n"
    );
}

/// A keystore with one Ed25519 key, made and left by a daemon that has stopped.
fn prepared_keystore() -> (KeystoreDir, TestKey) {
    let store = KeystoreDir::new();
    let key = make_key(store.scratch(), "ed", "ed25519");
    let mut daemon = Daemon::start_with_keystore(store.path(), &[]);
    init(&daemon);
    daemon.import_key(&key);
    daemon.stop();
    (store, key)
}

#[test]
fn passphrase_file_and_credentials_directory_unlock_at_start() {
    let (store, key) = prepared_keystore();
    // The first line of the file; the newline `echo` adds is not part of it.
    let file = store.scratch().join("passphrase-file");
    std::fs::write(&file, [PASSPHRASE, b"\n"].concat()).unwrap();
    let daemon = Daemon::start_with_keystore(store.path(), &["--passphrase-file", path_str(&file)]);
    let status = daemon.client().status().unwrap();
    assert_eq!((status.state, status.keys), (KeystoreState::Unlocked, 1));
    daemon.assert_keys_sign_verifiably(std::slice::from_ref(&key), QUERY);
    drop(daemon);

    // systemd's LoadCredentialEncrypted= hands the passphrase over as a file named
    // `passphrase` in $CREDENTIALS_DIRECTORY.
    let credentials = store.scratch().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    std::fs::write(credentials.join("passphrase"), PASSPHRASE).unwrap();
    let daemon = Daemon::try_start_with_keystore(
        store.path(),
        &[],
        &[("CREDENTIALS_DIRECTORY", credentials.as_os_str())],
    )
    .unwrap_or_else(|failed| panic!("did not start: {}", failed.log));
    let status = daemon.client().status().unwrap();
    assert_eq!((status.state, status.keys), (KeystoreState::Unlocked, 1));
    daemon.assert_keys_sign_verifiably(std::slice::from_ref(&key), QUERY);
    drop(daemon);

    // Without either, the daemon starts locked.
    let daemon = Daemon::start_with_keystore(store.path(), &[]);
    assert_eq!(state(&daemon), KeystoreState::Locked);
}

/// Daemon arguments, environment, the reason expected in the error, the path it must name.
type HeadlessCase<'a> = (&'a [&'a str], &'a [(&'a str, &'a OsStr)], &'a str, &'a Path);

#[test]
fn a_wrong_or_missing_headless_passphrase_makes_the_daemon_exit_1_with_one_clear_line() {
    let (store, _key) = prepared_keystore();
    let files = snapshot(store.path());
    let wrong = store.scratch().join("wrong");
    std::fs::write(&wrong, b"not the passphrase\n").unwrap();
    let credentials = store.scratch().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    std::fs::copy(&wrong, credentials.join("passphrase")).unwrap();
    let missing = store.scratch().join("no-such-file");

    let cases: [HeadlessCase<'_>; 3] = [
        (
            &["--passphrase-file", path_str(&wrong)],
            &[],
            "wrong passphrase",
            &wrong,
        ),
        (
            &[],
            &[("CREDENTIALS_DIRECTORY", credentials.as_os_str())],
            "wrong passphrase",
            &credentials,
        ),
        (
            &["--passphrase-file", path_str(&missing)],
            &[],
            "cannot read the passphrase file",
            &missing,
        ),
    ];
    for (args, env, reason, path) in cases {
        let failed = Daemon::try_start_with_keystore(store.path(), args, env)
            .err()
            .unwrap_or_else(|| panic!("{args:?} {env:?}: the daemon started"));
        assert_eq!(failed.code, Some(1), "{}", failed.log);
        let errors: Vec<&str> = failed
            .log
            .lines()
            .filter(|line| line.contains("ERROR"))
            .collect();
        assert_eq!(errors.len(), 1, "not one error line:\n{}", failed.log);
        assert_eq!(errors[0], failed.last_line());
        assert!(
            errors[0].contains(reason) && errors[0].contains(path_str(path)),
            "{args:?}: {}",
            errors[0]
        );
        assert!(!failed.log.contains("panicked"), "{}", failed.log);
    }
    assert_eq!(
        snapshot(store.path()),
        files,
        "a failed headless unlock changed the keystore"
    );

    // An uninitialized keystore cannot be unlocked headless either.
    let empty = KeystoreDir::new();
    let good = store.scratch().join("good");
    std::fs::write(&good, PASSPHRASE).unwrap();
    let failed =
        Daemon::try_start_with_keystore(empty.path(), &["--passphrase-file", path_str(&good)], &[])
            .expect_err("the daemon started on an uninitialized keystore");
    assert_eq!(failed.code, Some(1));
    assert!(
        failed.last_line().contains("not initialized"),
        "{}",
        failed.log
    );
}

#[test]
fn an_encrypted_pkcs8_import_persists_and_survives_a_restart() {
    let store = KeystoreDir::new();
    let dir = store.scratch();
    let password = dir.join("pem-password");
    std::fs::write(&password, b"PEM password for the encrypted key\n").unwrap();
    let mut keys = Vec::new();
    // PBES2 with PBKDF2 + AES-256-CBC (OpenSSL's default), and with scrypt.
    for (name, kind, cipher) in [
        ("enc-rsa", "rsa-2048", &["-v2", "aes-256-cbc"][..]),
        ("enc-ed", "ed25519", &["-scrypt"][..]),
    ] {
        let plain = make_key(dir, name, kind);
        let encrypted = dir.join(format!("{name}.encrypted.pem"));
        let mut args = vec!["pkcs8", "-topk8", "-in", path_str(&plain.file)];
        args.extend_from_slice(cipher);
        let passout = format!("file:{}", path_str(&password));
        args.extend(["-passout", &passout, "-out", path_str(&encrypted)]);
        openssl(&args);
        assert!(
            String::from_utf8(read(&encrypted))
                .unwrap()
                .starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
        );
        keys.push(TestKey {
            file: encrypted,
            ..plain
        });
    }
    let mut daemon = Daemon::start_with_keystore(store.path(), &[]);
    init(&daemon);
    for key in &keys {
        // Without its password, or with a wrong one, the import fails and stores nothing.
        let out = daemon.keyward(["import", &key.name, "--file", path_str(&key.file)]);
        assert!(out.error_line(1).contains("encrypted"), "{out:#?}");
        let wrong = dir.join("wrong-password");
        std::fs::write(&wrong, b"wrong\n").unwrap();
        let out = daemon.keyward([
            "import",
            &key.name,
            "--file",
            path_str(&key.file),
            "--pem-passphrase-file",
            path_str(&wrong),
        ]);
        assert!(out.error_line(1).contains("password"), "{out:#?}");
        assert!(!store.path().join(format!("keys/{}.key", key.name)).exists());
        daemon.import(
            &key.name,
            &key.file,
            &["--pem-passphrase-file", path_str(&password)],
        );
    }
    let before = daemon.assert_keys_sign_verifiably(&keys, QUERY);
    daemon.stop();

    let daemon = Daemon::start_with_keystore(store.path(), &[]);
    unlock(&daemon, PASSPHRASE).success();
    let after = daemon.assert_keys_sign_verifiably(&keys, QUERY);
    assert_eq!(before, after, "the keys sign differently after a restart");
    // The public keys are OpenSSL's, derived from the encrypted files.
    for key in &keys {
        let info = daemon.client().public_key(&key.name).unwrap();
        assert_eq!(
            spki_pem(info.public_key.as_deref().unwrap()).as_bytes(),
            read(&key.verify_key)
        );
    }
    let checks: Vec<Check<'_>> = keys
        .iter()
        .zip(&after)
        .map(|(key, signature)| Check::new(key.scheme, &key.verify_key, QUERY, signature))
        .collect();
    assert_python_verifies_all(&checks);
}

#[test]
fn a_wrong_passphrase_is_refused_even_while_the_keystore_is_unlocked() {
    let store = KeystoreDir::new();
    let daemon = Daemon::start_with_keystore(store.path(), &[]);
    init(&daemon);
    // A person who mistypes must not be told "unlocked": they would learn only at the next
    // restart that the passphrase they believe in is not the one.
    let out = unlock(&daemon, b"not the passphrase at all");
    assert_eq!(out.error_line(1), "keyward: wrong passphrase", "{out:#?}");
    assert_eq!(state(&daemon), KeystoreState::Unlocked);
    // The right one is fine.
    unlock(&daemon, PASSPHRASE).success();
}
