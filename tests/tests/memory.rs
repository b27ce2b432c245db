//! What the daemon's memory holds, read as root through `/proc/PID/mem`: after `lock`, no
//! 32-byte run of any imported private key in either byte order (PKCS#8 DER, PEM text, RSA
//! d/p/q/dp/dq/qinv, the Ed25519 seed, the ECDSA scalar, the HMAC secrets), of the data key or
//! of the passphrase-derived key; once `unlock` or `passwd` has returned, no run of a
//! passphrase at all.
//!
//! A scan that finds nothing proves nothing unless it can find something, so every scan must
//! also find a key's name (held by the daemon's policy for its whole life), and the scan made
//! while unlocked must find the RSA prime and the data key: the memory where they lived is
//! read again after `lock`, and they are gone from it.
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use keyward_tests::keystore::{
    KeySecrets, KeystoreDir, base64, derive_keys, hex, key_secrets, random_bytes,
};
use keyward_tests::scan::{MemoryScan, Needles, scan_process};
use keyward_tests::{Daemon, is_root, openssl};

/// The run length: a 32-byte run of a key is a key (or most of one).
const RUN: usize = 32;

/// The label of the key-name marker: the one thing every scan must find.
const NAME_LABEL: &str = "key name (non-secret marker)";

struct Keys {
    /// (name, scheme, PEM file, secrets) of the asymmetric keys.
    pems: Vec<(String, &'static str, PathBuf, KeySecrets)>,
    /// (name, scheme, secret file, secret, `--secret-format`) of the HMAC keys.
    hmacs: Vec<(String, &'static str, PathBuf, Vec<u8>, &'static str)>,
    /// An exchange passphrase stored with the first HMAC key (`keyward passphrase`), and
    /// the file that holds it.
    exchange_passphrase: Vec<u8>,
    exchange_passphrase_file: PathBuf,
}

fn unique_name(prefix: &str) -> String {
    format!("memscan-{prefix}-{}", hex(&random_bytes(16)))
}

fn make_keys(dir: &Path) -> Keys {
    let mut pems = Vec::new();
    for (prefix, scheme, args) in [
        (
            "rsa",
            "rsa-pkcs1v15-sha256",
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ][..],
        ),
        ("ed", "ed25519", &["genpkey", "-algorithm", "ed25519"][..]),
        (
            "ec",
            "ecdsa-p256-sha256",
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ][..],
        ),
    ] {
        let path = dir.join(format!("{prefix}.pem"));
        std::fs::write(&path, openssl(args)).unwrap();
        let secrets = key_secrets(&path, None);
        // The PEM text in memory is found through the DER `cryptography` wrote: check they
        // are the same bytes.
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            secrets.pkcs8_pem(),
            "OpenSSL's and cryptography's PKCS#8 differ for {prefix}"
        );
        pems.push((unique_name(prefix), scheme, path, secrets));
    }
    // The shapes exchanges hand out: Binance 64 characters, Bybit 36, Kraken 64 random
    // bytes written in base64.
    let mut hmacs = Vec::new();
    for (prefix, scheme, secret, format) in [
        (
            "binance",
            "hmac-sha256",
            hex(&random_bytes(32)).into_bytes(),
            "text",
        ),
        (
            "bybit",
            "hmac-sha256",
            hex(&random_bytes(18)).into_bytes(),
            "text",
        ),
        ("kraken", "hmac-sha512", random_bytes(64), "base64"),
    ] {
        let path = dir.join(format!("{prefix}.secret"));
        let written = if format == "base64" {
            base64(&secret).into_bytes()
        } else {
            secret.clone()
        };
        std::fs::write(&path, written).unwrap();
        hmacs.push((unique_name(prefix), scheme, path, secret, format));
    }
    // Longer than KuCoin allows (32), so that a scan's 32-byte run can find it.
    let exchange_passphrase = hex(&random_bytes(24)).into_bytes();
    let exchange_passphrase_file = dir.join("exchange.passphrase");
    std::fs::write(&exchange_passphrase_file, &exchange_passphrase).unwrap();
    Keys {
        pems,
        hmacs,
        exchange_passphrase,
        exchange_passphrase_file,
    }
}

/// Everything that must not be in memory after `lock`, plus the name marker.
fn needles(keys: &Keys, passphrases: &[&[u8]], derived: &[(Vec<u8>, Vec<u8>)]) -> Needles {
    let mut needles = Needles::new(RUN);
    for (_, scheme, _, secrets) in &keys.pems {
        for (part, bytes) in &secrets.parts {
            needles.add_both_orders(&format!("{scheme} {part}"), bytes);
        }
        // Runs of the DER with at least 8 bytes of secret in them: the rest is the public
        // key, which may stay in memory.
        needles.add_both_orders(
            &format!("{scheme} PKCS#8 DER"),
            secrets.secret_span_of_der(RUN - 8),
        );
        // The PEM lines (as imported) that encode any secret byte.
        let range = secrets.secret_range_of_der(0);
        let pem = secrets.pkcs8_pem();
        let lines: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let first = range.start / 48;
        let last = (range.end - 1) / 48;
        let text = lines[first..=last].join("\n");
        needles.add(format!("{scheme} PEM text"), text.as_bytes());
    }
    for (name, scheme, _, secret, _) in &keys.hmacs {
        let exchange = name.split('-').nth(1).unwrap();
        needles.add_both_orders(&format!("{scheme} secret ({exchange})"), secret);
    }
    // In memory while unlocked (the key signs it), like the keys; gone after lock.
    needles.add_both_orders("exchange passphrase (KuCoin)", &keys.exchange_passphrase);
    for (i, passphrase) in passphrases.iter().enumerate() {
        needles.add_both_orders(&format!("passphrase {i}"), passphrase);
    }
    for (i, (kek, data_key)) in derived.iter().enumerate() {
        needles.add_both_orders(&format!("key-encryption key {i}"), kek);
        needles.add_both_orders(&format!("data key {i}"), data_key);
    }
    needles.add(NAME_LABEL, keys.pems[0].0.as_bytes());
    needles
}

fn scan(daemon: &Daemon, needles: &Needles, when: &str) -> MemoryScan {
    let started = Instant::now();
    let scan = scan_process(daemon.pid(), needles);
    eprintln!(
        "scan {when}: {} MiB in {} regions read in {:.2} s; found:\n{}",
        scan.bytes_read() / (1024 * 1024),
        scan.regions.iter().filter(|r| r.read > 0).count(),
        started.elapsed().as_secs_f64(),
        scan.describe()
    );
    assert!(
        !scan.found(NAME_LABEL).is_empty(),
        "scan {when}: the key name held by the policy was not found, so this scan cannot see \
         the daemon's heap and proves nothing"
    );
    scan
}

/// Records, in `failures`, every secret the scan found whose label `allowed` refuses.
fn check_only(
    failures: &mut Vec<String>,
    scan: &MemoryScan,
    when: &str,
    allowed: impl Fn(&str) -> bool,
) {
    let bad: Vec<String> = scan
        .found
        .iter()
        .filter(|(_, hit)| !allowed(&hit.label))
        .map(|(_, hit)| format!("{} ({} bytes at {:#x})", hit.label, hit.len, hit.at))
        .collect();
    if !bad.is_empty() {
        failures.push(format!(
            "{when}: the daemon's memory holds secrets:\n    {}",
            bad.join("\n    ")
        ));
    }
}

fn sign_with_every_key(daemon: &Daemon, keys: &Keys) {
    for (name, ..) in &keys.pems {
        daemon.sign(name, b"symbol=BTCUSDT&timestamp=1", &[]);
    }
    for (name, ..) in &keys.hmacs {
        daemon.sign(name, b"symbol=BTCUSDT&timestamp=1", &[]);
    }
    daemon.client().sign_passphrase(&keys.hmacs[0].0).unwrap();
}

#[test]
fn after_lock_the_daemons_memory_holds_no_key_and_after_unlock_no_passphrase() {
    if !is_root() {
        eprintln!(
            "SKIPPED: reading a non-dumpable daemon's /proc/PID/mem needs root (or CAP_SYS_PTRACE)"
        );
        return;
    }
    let store = KeystoreDir::new();
    let keys = make_keys(store.scratch());
    // The policy keeps a key's name in the daemon's memory whatever the keystore's state:
    // the marker every scan must find.
    let config = store.scratch().join("keywardd.toml");
    std::fs::write(&config, format!("[keys.\"{}\"]\n", keys.pems[0].0)).unwrap();
    // Every stage is checked, and every finding reported at the end: one bug should not hide
    // the next.
    let mut failures = Vec::new();
    let mut daemon =
        Daemon::start_with_keystore(store.path(), &["--config", config.to_str().unwrap()]);
    let old = format!("memory-scan passphrase {}", hex(&random_bytes(24))).into_bytes();
    let new = format!("memory-scan new passphrase {}", hex(&random_bytes(24))).into_bytes();
    daemon
        .keyward_with_passphrases(&["init"], &[&old])
        .success();
    for (name, _, path, _) in &keys.pems {
        daemon.import(name, path, &[]);
    }
    for (name, scheme, path, _, format) in &keys.hmacs {
        daemon.import(name, path, &["--scheme", scheme, "--secret-format", format]);
    }
    daemon
        .keyward([
            "passphrase",
            &keys.hmacs[0].0,
            "--file",
            keys.exchange_passphrase_file.to_str().unwrap(),
        ])
        .success();
    sign_with_every_key(&daemon, &keys);
    let derived_old = derive_keys(store.path(), &old);
    let needles_old = needles(&keys, &[&old, &new], std::slice::from_ref(&derived_old));

    // A. Imported (parsed, re-encoded, sealed into the keystore), used, then locked.
    daemon.keyward(["lock"]).success();
    let scan_a = scan(&daemon, &needles_old, "A: after import and lock");
    check_only(
        &mut failures,
        &scan_a,
        "A: after import and lock",
        |label| label == NAME_LABEL,
    );
    daemon.stop();

    // B. A new daemon, unlocked: the keys come from the keystore only. Once unlock has
    //    returned no passphrase and no KEK remains; the keys themselves and the data key are
    //    there to be found (the positive controls).
    let mut daemon =
        Daemon::start_with_keystore(store.path(), &["--config", config.to_str().unwrap()]);
    daemon
        .keyward_with_passphrases(&["unlock"], &[&old])
        .success();
    let scan_b = scan(&daemon, &needles_old, "B: after unlock");
    check_only(
        &mut failures,
        &scan_b,
        "B: after unlock returned",
        |label| !label.starts_with("passphrase") && !label.starts_with("key-encryption key"),
    );
    let rsa_p = scan_b.found("rsa-pkcs1v15-sha256 p").len()
        + scan_b.found("rsa-pkcs1v15-sha256 p (reversed)").len();
    assert!(
        rsa_p > 0,
        "the RSA prime p is not in the daemon's memory while it is unlocked, in either byte \
         order: the scan cannot see where keys live"
    );
    assert!(
        !scan_b.found("data key 0").is_empty(),
        "the data key is not in the daemon's memory while it is unlocked"
    );
    sign_with_every_key(&daemon, &keys);

    // C. Locked: every key loaded at unlock is gone, from the very memory where scan B
    //    found it.
    daemon.keyward(["lock"]).success();
    let scan_c = scan(&daemon, &needles_old, "C: after unlock and lock");
    check_only(
        &mut failures,
        &scan_c,
        "C: after unlock and lock",
        |label| label == NAME_LABEL,
    );
    let unread: Vec<String> = scan_b
        .found
        .iter()
        .filter(|(region, hit)| {
            let region = &scan_b.regions[*region];
            hit.label != NAME_LABEL
                && !scan_c.was_read(hit.at)
                // Still mapped (an unmapped region's memory is gone, which is fine).
                && scan_c
                    .regions
                    .iter()
                    .any(|r| r.start == region.start && hit.at < r.end)
        })
        .map(|(_, hit)| format!("{} at {:#x}", hit.label, hit.at))
        .collect();
    assert!(
        unread.is_empty(),
        "the scan after lock did not read memory where keys were while unlocked: {unread:?}"
    );

    // D. A passphrase change (which unwraps with the old and wraps with the new): once it
    //    has returned, neither passphrase and neither KEK remains.
    daemon
        .keyward_with_passphrases(&["unlock"], &[&old])
        .success();
    daemon
        .keyward_with_passphrases(&["passwd"], &[&old, &new])
        .success();
    let derived_new = derive_keys(store.path(), &new);
    assert_eq!(
        derived_old.1, derived_new.1,
        "passwd must rewrap the same data key"
    );
    let needles_both = needles(&keys, &[&old, &new], &[derived_old, derived_new]);
    let scan_d = scan(&daemon, &needles_both, "D: after passwd");
    check_only(
        &mut failures,
        &scan_d,
        "D: after passwd returned",
        |label| !label.starts_with("passphrase") && !label.starts_with("key-encryption key"),
    );

    // E. Locked once more.
    daemon.keyward(["lock"]).success();
    let scan_e = scan(&daemon, &needles_both, "E: after passwd and lock");
    check_only(
        &mut failures,
        &scan_e,
        "E: after passwd and lock",
        |label| label == NAME_LABEL,
    );
    daemon.stop();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Regression test for the stack copies of sealed and opened secrets: the RustCrypto
/// XChaCha20 implementation reads every 64-byte block it encrypts or decrypts in place into a
/// stack temporary (`inout`'s `xor_in2out`), so a secret whose length is a multiple of 64 —
/// a Binance HMAC secret, a Kraken one — left its last block(s) in clear in a dead stack frame
/// of the blocking thread that sealed it (at import) or opened it (at unlock), after `lock`.
#[test]
fn a_secret_of_a_multiple_of_64_bytes_leaves_no_copy_on_the_stack_after_seal_or_open() {
    if !is_root() {
        eprintln!(
            "SKIPPED: reading a non-dumpable daemon's /proc/PID/mem needs root (or CAP_SYS_PTRACE)"
        );
        return;
    }
    let mut failures = Vec::new();
    for len in [64, 128, 256] {
        let store = KeystoreDir::new();
        let name = unique_name(&format!("stack{len}"));
        let config = store.scratch().join("keywardd.toml");
        std::fs::write(&config, format!("[keys.\"{name}\"]\n")).unwrap();
        let secret = random_bytes(len);
        let file = store.scratch().join("secret.hex");
        std::fs::write(&file, hex(&secret)).unwrap();
        let mut needles = Needles::new(RUN);
        needles.add_both_orders(&format!("{len}-byte HMAC secret"), &secret);
        needles.add(NAME_LABEL, name.as_bytes());
        let passphrase = format!("stack test passphrase {}", hex(&random_bytes(16))).into_bytes();

        let mut daemon =
            Daemon::start_with_keystore(store.path(), &["--config", config.to_str().unwrap()]);
        daemon
            .keyward_with_passphrases(&["init"], &[&passphrase])
            .success();
        daemon.import(
            &name,
            &file,
            &["--scheme", "hmac-sha512", "--secret-format", "hex"],
        );
        daemon.keyward(["lock"]).success();
        let sealed = scan(
            &daemon,
            &needles,
            &format!("{len} bytes, after import and lock"),
        );
        check_only(
            &mut failures,
            &sealed,
            &format!("{len}-byte secret, sealed at import, then lock"),
            |label| label == NAME_LABEL,
        );
        daemon
            .keyward_with_passphrases(&["unlock"], &[&passphrase])
            .success();
        daemon.keyward(["lock"]).success();
        let opened = scan(
            &daemon,
            &needles,
            &format!("{len} bytes, after unlock and lock"),
        );
        check_only(
            &mut failures,
            &opened,
            &format!("{len}-byte secret, opened at unlock, then lock"),
            |label| label == NAME_LABEL,
        );
        daemon.stop();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
