//! Signature checks by implementations that share no code with keyward.
//!
//! [`python`] runs `tests/python/verify.py` (Python's `cryptography`, and its `hmac` module);
//! [`openssl`] and [`openssl_hmac_hex`] run the OpenSSL CLI. Both say "valid" or "not valid"
//! only when the check itself ran: a crashed or misused checker panics, so a test expecting
//! "not valid" cannot pass because the checker broke.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::run;

/// The verifier script.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join("verify.py")
}

/// One signature to check.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    /// keyward scheme name, e.g. `ed25519` or `hmac-sha256`.
    pub scheme: &'a str,
    /// The public key as SPKI PEM, or (for HMAC) a file holding the raw secret bytes.
    pub key: &'a Path,
    /// The signed bytes.
    pub payload: &'a [u8],
    /// The signature exactly as `keyward sign` printed it (or raw bytes).
    pub signature: &'a [u8],
    /// How `signature` is encoded: `raw`, `hex`, `base64` or `base64url`.
    pub encoding: &'a str,
    /// When set, the check also fails unless the key has this many bits.
    pub expect_bits: Option<u32>,
}

impl<'a> Check<'a> {
    /// A check of a raw signature, with no key-size expectation.
    pub fn new(scheme: &'a str, key: &'a Path, payload: &'a [u8], signature: &'a [u8]) -> Self {
        Check {
            scheme,
            key,
            payload,
            signature,
            encoding: "raw",
            expect_bits: None,
        }
    }

    /// The same check, with `signature` in `encoding`.
    pub fn encoding(self, encoding: &'a str) -> Self {
        Check { encoding, ..self }
    }

    /// The same check, also requiring a key of `bits` bits.
    pub fn bits(self, bits: u32) -> Self {
        Check {
            expect_bits: Some(bits),
            ..self
        }
    }
}

/// Asks `tests/python/verify.py` whether the signature is valid.
pub fn python(check: &Check<'_>) -> bool {
    let scratch = tempfile::tempdir().expect("cannot create a scratch directory");
    let payload = scratch.path().join("payload");
    let signature = scratch.path().join("signature");
    std::fs::write(&payload, check.payload).expect("cannot write the payload");
    std::fs::write(&signature, check.signature).expect("cannot write the signature");
    let mut command = crate::python();
    command
        .arg(script())
        .args(["--scheme", check.scheme, "--encoding", check.encoding])
        .arg("--key")
        .arg(check.key)
        .arg("--payload")
        .arg(&payload)
        .arg("--signature")
        .arg(&signature);
    if let Some(bits) = check.expect_bits {
        command.args(["--expect-bits", &bits.to_string()]);
    }
    let out = run(&mut command, None);
    match out.code {
        Some(0) => true,
        Some(1) => false,
        _ => panic!(
            "verify.py could not check the signature (is Python's `cryptography` installed? \
             `pip install -r tests/requirements.txt`): {out:#?}"
        ),
    }
}

/// Checks many signatures in one run of `verify.py --batch` (Python's start-up is most of
/// the cost of a check); one answer per check, in order.
pub fn python_batch(checks: &[Check<'_>]) -> Vec<bool> {
    let scratch = tempfile::tempdir().expect("cannot create a scratch directory");
    let mut manifest = String::new();
    for (i, check) in checks.iter().enumerate() {
        let payload = scratch.path().join(format!("{i}.payload"));
        let signature = scratch.path().join(format!("{i}.signature"));
        std::fs::write(&payload, check.payload).expect("cannot write the payload");
        std::fs::write(&signature, check.signature).expect("cannot write the signature");
        let bits = check
            .expect_bits
            .map_or_else(|| "-".to_owned(), |bits| bits.to_string());
        let fields = [
            check.scheme.to_owned(),
            check.encoding.to_owned(),
            bits,
            path_field(check.key),
            path_field(&payload),
            path_field(&signature),
        ];
        manifest.push_str(&fields.join("\t"));
        manifest.push('\n');
    }
    let manifest_path = scratch.path().join("manifest");
    std::fs::write(&manifest_path, manifest).expect("cannot write the manifest");
    let out = run(
        crate::python()
            .arg(script())
            .arg("--batch")
            .arg(&manifest_path),
        None,
    );
    let answers: Vec<&str> = std::str::from_utf8(&out.stdout)
        .unwrap_or_default()
        .lines()
        .collect();
    let understood = answers
        .iter()
        .all(|answer| matches!(*answer, "valid" | "invalid"));
    if out.code != Some(0) || answers.len() != checks.len() || !understood {
        panic!(
            "verify.py could not check the signatures (is Python's `cryptography` installed? \
             `pip install -r tests/requirements.txt`): {out:#?}"
        );
    }
    answers.iter().map(|answer| *answer == "valid").collect()
}

fn path_field(path: &Path) -> String {
    let text = path.to_str().expect("test paths are UTF-8");
    assert!(!text.contains(['\t', '\n']), "unusable path {text:?}");
    text.to_owned()
}

/// Asserts that Python finds the signature valid for its payload, and not valid for the
/// payload with one byte appended (so the check is known to be able to fail).
///
/// Uses the script's one-check form (exit status 0/1); [`assert_python_verifies_all`] uses
/// its batch form.
#[track_caller]
pub fn assert_python_verifies(check: &Check<'_>) {
    assert!(
        python(check),
        "Python's cryptography rejects the {} signature {:?} ({})",
        check.scheme,
        String::from_utf8_lossy(check.signature),
        check.encoding
    );
    let mut tampered = check.payload.to_vec();
    tampered.push(b'!');
    assert!(
        !python(&Check {
            payload: &tampered,
            ..*check
        }),
        "a {} signature also verifies for another payload: the check proves nothing",
        check.scheme
    );
}

/// [`assert_python_verifies`] for many signatures, in one run of Python.
#[track_caller]
pub fn assert_python_verifies_all(checks: &[Check<'_>]) {
    let tampered: Vec<Vec<u8>> = checks
        .iter()
        .map(|check| {
            let mut payload = check.payload.to_vec();
            payload.push(b'!');
            payload
        })
        .collect();
    let mut all = checks.to_vec();
    all.extend(
        checks
            .iter()
            .zip(&tampered)
            .map(|(check, payload)| Check { payload, ..*check }),
    );
    let answers = python_batch(&all);
    let (genuine, forged) = answers.split_at(checks.len());
    for ((check, valid), forged_valid) in checks.iter().zip(genuine).zip(forged) {
        assert!(
            valid,
            "Python's cryptography rejects the {} signature {:?} ({})",
            check.scheme,
            String::from_utf8_lossy(check.signature),
            check.encoding
        );
        assert!(
            !forged_valid,
            "a {} signature also verifies for another payload: the check proves nothing",
            check.scheme
        );
    }
}

/// Asks the OpenSSL CLI whether the raw `signature` over `payload` is valid under the SPKI
/// PEM `public_key`. Supports `rsa-pkcs1v15-sha256` and `ed25519`.
pub fn openssl(scheme: &str, public_key: &Path, payload: &[u8], signature: &[u8]) -> bool {
    let scratch = tempfile::tempdir().expect("cannot create a scratch directory");
    let payload_file = scratch.path().join("payload");
    let signature_file = scratch.path().join("signature");
    std::fs::write(&payload_file, payload).expect("cannot write the payload");
    std::fs::write(&signature_file, signature).expect("cannot write the signature");
    let mut command = Command::new("openssl");
    let (ok, bad) = match scheme {
        "rsa-pkcs1v15-sha256" => {
            command
                .args(["dgst", "-sha256", "-verify"])
                .arg(public_key)
                .arg("-signature")
                .arg(&signature_file)
                .arg(&payload_file);
            ("Verified OK", "Verification failure")
        }
        "ed25519" => {
            command
                .args(["pkeyutl", "-verify", "-pubin", "-rawin", "-inkey"])
                .arg(public_key)
                .arg("-in")
                .arg(&payload_file)
                .arg("-sigfile")
                .arg(&signature_file);
            (
                "Signature Verified Successfully",
                "Signature Verification Failure",
            )
        }
        other => panic!("the OpenSSL check does not support {other}"),
    };
    let out = run(&mut command, None);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), out.stderr);
    if out.code == Some(0) && said.contains(ok) {
        true
    } else if said.contains(bad) {
        false
    } else {
        panic!("openssl could not check the signature: {out:#?}")
    }
}

/// HMAC of `payload` under `secret` in lowercase hex, computed by `openssl dgst -mac HMAC`;
/// `digest` is `sha256` or `sha512`.
pub fn openssl_hmac_hex(digest: &str, secret: &[u8], payload: &[u8]) -> String {
    let scratch = tempfile::tempdir().expect("cannot create a scratch directory");
    let payload_file = scratch.path().join("payload");
    std::fs::write(&payload_file, payload).expect("cannot write the payload");
    let hexkey: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let out = run(
        Command::new("openssl")
            .args(["dgst", &format!("-{digest}"), "-mac", "HMAC", "-macopt"])
            .arg(format!("hexkey:{hexkey}"))
            .arg(&payload_file),
        None,
    );
    assert_eq!(out.code, Some(0), "openssl dgst -mac HMAC failed: {out:#?}");
    // "HMAC-SHA2-256(file)= <hex>"
    let text = out.stdout_text().trim();
    text.rsplit(' ')
        .next()
        .expect("openssl printed a MAC")
        .to_owned()
}
