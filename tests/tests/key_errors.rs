//! An error about key material names the problem and a position, never the material: broken
//! PEMs and secrets are imported, and no 16-byte run of the key appears on the CLI's stderr,
//! in the daemon's log (at trace level) or in the audit log.
//!
//! The review's case: `-----BEGIN PRIVATE KEY----` (one dash missing) made the PEM parser
//! take the base64 body as the block's label and echo it in "has no END line".
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;

use keyward_tests::scan::Needles;
use keyward_tests::{Daemon, openssl};

/// A 16-byte run of a secret anywhere is a leak.
const RUN: usize = 16;

const HMAC_SECRET: &str = "Zk3mQ9vX2pL7wR4tY8nB5cH1jD6gF0sAeU";

/// The PEM with its BEGIN line missing one dash, and other breakages of the same key.
fn broken_variants(pem: &str, der: &[u8]) -> Vec<(String, String)> {
    let body: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let label = pem
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("-----BEGIN ")
        .trim_end_matches("-----")
        .to_owned();
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let joined = body.join("\n");
    let mut bad_base64 = joined.clone();
    bad_base64.replace_range(10..12, "!*");
    // The DER minus its last 9 bytes, re-encoded as a well-formed PEM body (64-column lines).
    let truncated_der: String = keyward_tests::keystore::base64(&der[..der.len() - 9])
        .as_bytes()
        .chunks(64)
        .map(|line| format!("{}\n", String::from_utf8_lossy(line)))
        .collect();
    vec![
        (
            "begin-missing-a-dash".into(),
            format!("-----BEGIN {label}----\n{joined}\n{end}\n"),
        ),
        (
            "end-missing-a-dash".into(),
            format!("{begin}\n{joined}\n-----END {label}----\n"),
        ),
        (
            "body-on-the-begin-line".into(),
            format!("-----BEGIN {label}{joined}-----\n{end}\n"),
        ),
        ("no-end-line".into(), format!("{begin}\n{joined}\n")),
        (
            "bad-base64".into(),
            format!("{begin}\n{bad_base64}\n{end}\n"),
        ),
        (
            "truncated-der".into(),
            format!("{begin}\n{truncated_der}{end}\n"),
        ),
        ("truncated-text".into(), pem[..pem.len() * 2 / 3].to_owned()),
        (
            "label-is-body".into(),
            format!("-----BEGIN {}-----\n{joined}\n", body[0]),
        ),
    ]
}

#[test]
fn broken_pems_and_secrets_leave_no_run_of_the_key_on_stderr_in_the_log_or_in_the_audit_log() {
    let config_dir = tempfile::tempdir().unwrap();
    let audit = config_dir.path().join("audit.jsonl");
    let config = config_dir.path().join("keywardd.toml");
    fs::write(
        &config,
        format!(
            "[daemon]\naudit_log = \"{}\"\naudit_payloads = true\n",
            audit.display()
        ),
    )
    .unwrap();
    let daemon = Daemon::start_logging("trace", &["--config", config.to_str().unwrap()]);
    let dir = daemon.dir();
    let mut needles = Needles::new(RUN);
    let mut stderrs = Vec::new();

    let import = |name: &str, file: &Path, extra: &[&str]| {
        let mut args = vec!["import", name, "--file", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = daemon.keyward(&args);
        // One clear line, exit 1: refused, not crashed.
        out.error_line(1);
        out
    };

    for (scheme, genpkey) in [
        ("ed25519", &["-algorithm", "ed25519"][..]),
        (
            "rsa",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        ),
        (
            "p256",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        ),
    ] {
        let key = dir.join(format!("{scheme}.pem"));
        let mut args = vec!["genpkey"];
        args.extend_from_slice(genpkey);
        args.extend_from_slice(&["-out", key.to_str().unwrap()]);
        openssl(&args);
        let pem = fs::read_to_string(&key).unwrap();
        let der = openssl(&["pkey", "-in", key.to_str().unwrap(), "-outform", "DER"]);
        needles.add(format!("{scheme} DER"), &der);
        needles.add(format!("{scheme} PEM text"), pem.as_bytes());
        for (case, text) in broken_variants(&pem, &der) {
            let file = daemon.write(&format!("{scheme}-{case}.pem"), text.as_bytes());
            stderrs.push((format!("{scheme} {case}"), import("k", &file, &[]).stderr));
        }
        // An encrypted PEM with the wrong password.
        let encrypted = dir.join(format!("{scheme}.enc.pem"));
        openssl(&[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-in",
            key.to_str().unwrap(),
            "-passout",
            "pass:the-right-password",
            "-out",
            encrypted.to_str().unwrap(),
        ]);
        let wrong = daemon.write("wrong-password", b"not-the-password\n");
        stderrs.push((
            format!("{scheme} wrong password"),
            import(
                "k",
                &encrypted,
                &["--pem-passphrase-file", wrong.to_str().unwrap()],
            )
            .stderr,
        ));
        // The right key, declared as the wrong scheme.
        let declared = if scheme == "rsa" {
            "ed25519"
        } else {
            "rsa-pkcs1v15-sha256"
        };
        stderrs.push((
            format!("{scheme} wrong scheme"),
            import("k", &key, &["--scheme", declared]).stderr,
        ));
    }

    // HMAC secrets: bad base64, bad hex, a secret too short, a PEM given as a secret.
    needles.add("hmac secret", HMAC_SECRET.as_bytes());
    for (case, contents, extra) in [
        (
            "bad-base64",
            format!("{HMAC_SECRET}!!"),
            &["--scheme", "hmac-sha256", "--secret-format", "base64"][..],
        ),
        (
            "bad-hex",
            HMAC_SECRET.to_owned(),
            &["--scheme", "hmac-sha512", "--secret-format", "hex"],
        ),
        (
            "too-short",
            HMAC_SECRET[..12].to_owned(),
            &["--scheme", "hmac-sha256"],
        ),
        ("no-scheme", HMAC_SECRET.to_owned(), &[]),
    ] {
        let file = daemon.write(&format!("hmac-{case}"), contents.as_bytes());
        stderrs.push((format!("hmac {case}"), import("h", &file, extra).stderr));
    }

    // Nothing was imported, and no error anywhere holds a run of any key.
    let list = daemon.keyward(["list", "--json"]);
    list.success();
    assert_eq!(list.stdout_text().trim(), "[]");
    for (case, stderr) in &stderrs {
        let found = needles.find_in(stderr.as_bytes(), 0);
        assert!(found.is_empty(), "{case}: key material on stderr: {stderr}");
        assert!(
            !stderr.contains("MII") && !stderr.contains("MC4C") && !stderr.contains("MIG"),
            "{case}: base64 DER on stderr: {stderr}"
        );
    }
    let log = daemon.log();
    let found = needles.find_in(log.as_bytes(), 0);
    assert!(
        found.is_empty(),
        "key material in the daemon log: {found:?}"
    );
    // Secrets that are not valid base64 or hex are refused by the CLI before it connects;
    // every PEM case reaches the daemon and is audited.
    let pem_cases = stderrs.len() - 4;
    let audit_text = keyward_tests::audit_log(&audit, pem_cases);
    assert!(
        audit_text.lines().count() >= pem_cases,
        "every refused import should be audited ({pem_cases}): {audit_text}"
    );
    let found = needles.find_in(audit_text.as_bytes(), 0);
    assert!(found.is_empty(), "key material in the audit log: {found:?}");
}
