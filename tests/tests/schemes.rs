//! Every scheme, imported (keys made by OpenSSL, in each PEM form) and generated inside the
//! daemon: `keyward sign` output verifies with Python's `cryptography` (and OpenSSL), under a
//! public key keyward did not produce where possible, and fails for another payload.
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use keyward_tests::verify::{self, Check, assert_python_verifies_all};
use keyward_tests::{Daemon, openssl, read};

/// A Binance order query (DEVELOPERS.md's example).
const QUERY: &str = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";

fn default_encoding(scheme: &str) -> &'static str {
    if scheme.starts_with("hmac-") {
        "hex"
    } else {
        "base64"
    }
}

/// Signs [`QUERY`] with `keyward sign NAME QUERY` (as an argument) and the same bytes on
/// stdin; checks the default encoding's shape and that Python verifies it under `key`.
/// Returns the signature text (from the argument form).
fn assert_signs_verifiably(
    daemon: &Daemon,
    name: &str,
    scheme: &str,
    key: &Path,
    bits: Option<u32>,
) -> Vec<u8> {
    let by_arg = daemon.keyward(["sign", name, QUERY]);
    by_arg.success();
    let by_stdin = daemon.sign(name, QUERY.as_bytes(), &[]);
    let encoding = default_encoding(scheme);
    let text = by_arg.stdout_text();
    assert!(text.ends_with('\n'), "no newline after the signature");
    let body = text.trim_end_matches('\n');
    match encoding {
        "hex" => assert!(
            body.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "default encoding of {scheme} is not lowercase hex: {body}"
        ),
        _ => assert!(
            body.len().is_multiple_of(4) && !body.contains(['-', '_']),
            "default encoding of {scheme} is not padded base64: {body}"
        ),
    }
    let checks: Vec<Check<'_>> = [&by_arg.stdout, &by_stdin]
        .into_iter()
        .map(|signature| {
            let check = Check::new(scheme, key, QUERY.as_bytes(), signature).encoding(encoding);
            match bits {
                Some(bits) => check.bits(bits),
                None => check,
            }
        })
        .collect();
    assert_python_verifies_all(&checks);
    if scheme != "ecdsa-p256-sha256" {
        // Every scheme but ECDSA is deterministic: the argument and stdin carry the same bytes.
        assert_eq!(
            by_arg.stdout, by_stdin,
            "argument and stdin signatures differ"
        );
    }
    by_arg.stdout
}

/// `openssl pkey -pubout` of a private key file, saved next to it: a public key keyward had
/// no hand in.
fn openssl_public_key(private: &Path) -> PathBuf {
    let public = private.with_extension("pub.pem");
    openssl(&[
        "pkey",
        "-in",
        path_str(private),
        "-pubout",
        "-out",
        path_str(&public),
    ]);
    public
}

/// Asserts that `keyward pubkey NAME` prints exactly the SPKI PEM OpenSSL derived.
fn assert_pubkey_is(daemon: &Daemon, name: &str, public: &Path) {
    let out = daemon.keyward(["pubkey", name]);
    out.success();
    assert_eq!(
        out.stdout_text(),
        String::from_utf8(read(public)).unwrap(),
        "`keyward pubkey {name}` differs from OpenSSL's public key"
    );
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// An RSA key made by OpenSSL, imported both as PKCS#8 and as PKCS#1: each form signs the
/// same bytes (PKCS#1 v1.5 is deterministic), and Python verifies them under OpenSSL's
/// public key, which `keyward pubkey` reproduces exactly.
fn imported_rsa_signs_verifiably_in_both_pem_forms(bits: u32, generate_pkcs1_first: bool) {
    let daemon = Daemon::start(&[]);
    let pkcs8 = daemon.dir().join("rsa.pkcs8.pem");
    let pkcs1 = daemon.dir().join("rsa.pkcs1.pem");
    let bits_arg = bits.to_string();
    if generate_pkcs1_first {
        openssl(&[
            "genrsa",
            "-traditional",
            "-out",
            path_str(&pkcs1),
            &bits_arg,
        ]);
        openssl(&[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            path_str(&pkcs1),
            "-out",
            path_str(&pkcs8),
        ]);
    } else {
        let keygen_bits = format!("rsa_keygen_bits:{bits}");
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            &keygen_bits,
            "-out",
            path_str(&pkcs8),
        ]);
        openssl(&[
            "rsa",
            "-in",
            path_str(&pkcs8),
            "-traditional",
            "-out",
            path_str(&pkcs1),
        ]);
    }
    assert!(
        String::from_utf8(read(&pkcs8))
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    assert!(
        String::from_utf8(read(&pkcs1))
            .unwrap()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----")
    );
    let public = openssl_public_key(&pkcs8);

    daemon.import("rsa-p8", &pkcs8, &[]);
    daemon.import("rsa-p1", &pkcs1, &["--scheme", "rsa-pkcs1v15-sha256"]);
    assert_pubkey_is(&daemon, "rsa-p8", &public);
    assert_pubkey_is(&daemon, "rsa-p1", &public);
    let scheme = "rsa-pkcs1v15-sha256";
    let from_pkcs8 = assert_signs_verifiably(&daemon, "rsa-p8", scheme, &public, Some(bits));
    let from_pkcs1 = assert_signs_verifiably(&daemon, "rsa-p1", scheme, &public, Some(bits));
    assert_eq!(
        from_pkcs8, from_pkcs1,
        "the PKCS#8 and PKCS#1 imports sign differently"
    );
}

#[test]
fn imported_rsa_2048_key_signs_verifiably_from_pkcs8_and_pkcs1() {
    imported_rsa_signs_verifiably_in_both_pem_forms(2048, false);
}

#[test]
fn imported_rsa_3072_key_signs_verifiably_from_pkcs1_and_pkcs8() {
    imported_rsa_signs_verifiably_in_both_pem_forms(3072, true);
}

#[test]
fn imported_rsa_4096_key_signs_verifiably_from_pkcs8_and_pkcs1() {
    imported_rsa_signs_verifiably_in_both_pem_forms(4096, false);
}

#[test]
fn imported_ed25519_pkcs8_key_signs_verifiably() {
    let daemon = Daemon::start(&[]);
    let private = daemon.dir().join("ed25519.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "ed25519",
        "-out",
        path_str(&private),
    ]);
    let public = openssl_public_key(&private);
    daemon.import("ed", &private, &["--scheme", "ed25519"]);
    assert_pubkey_is(&daemon, "ed", &public);
    assert_signs_verifiably(&daemon, "ed", "ed25519", &public, None);
}

#[test]
fn imported_ecdsa_p256_pkcs8_key_signs_verifiably() {
    let daemon = Daemon::start(&[]);
    let private = daemon.dir().join("p256.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        path_str(&private),
    ]);
    assert!(
        String::from_utf8(read(&private))
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    let public = openssl_public_key(&private);
    daemon.import("p256", &private, &[]);
    assert_pubkey_is(&daemon, "p256", &public);
    assert_signs_verifiably(&daemon, "p256", "ecdsa-p256-sha256", &public, Some(256));
}

#[test]
fn imported_ecdsa_p256_sec1_key_after_an_ec_parameters_block_signs_verifiably() {
    let daemon = Daemon::start(&[]);
    let private = daemon.dir().join("sec1.pem");
    openssl(&[
        "ecparam",
        "-genkey",
        "-name",
        "prime256v1",
        "-out",
        path_str(&private),
    ]);
    let text = String::from_utf8(read(&private)).unwrap();
    assert!(
        text.starts_with("-----BEGIN EC PARAMETERS-----")
            && text.contains("-----BEGIN EC PRIVATE KEY-----"),
        "not the SEC1-with-parameters form this test is about:\n{text}"
    );
    let public = openssl_public_key(&private);
    daemon.import("sec1", &private, &["--scheme", "ecdsa-p256-sha256"]);
    assert_pubkey_is(&daemon, "sec1", &public);
    assert_signs_verifiably(&daemon, "sec1", "ecdsa-p256-sha256", &public, Some(256));
}

/// One HMAC secret imported in each `--secret-format`: all three sign identically, and
/// Python's `hmac` agrees under the raw secret.
fn hmac_secret_signs_verifiably_in_every_format(scheme: &str) {
    let daemon = Daemon::start(&[]);
    // A printable secret, so that the text form can hold it too.
    let secret = b"Zx9-Kq2P/vT8+rLm0aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789==";
    let raw = daemon.write("secret.raw", secret);
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let base64 = String::from_utf8(openssl_base64(&daemon, secret)).unwrap();

    let text = format!("{}\n", String::from_utf8_lossy(secret));
    // (key name, --secret-format, file contents); the text form is also the default.
    let forms: [(&str, Option<&str>, String); 4] = [
        ("default", None, text.clone()),
        ("text", Some("text"), text),
        ("hex", Some("hex"), format!("{hex}\n")),
        ("base64", Some("base64"), base64),
    ];
    let mut signatures = Vec::new();
    for (name, format, contents) in &forms {
        let file = daemon.write(&format!("secret.{name}"), contents.as_bytes());
        let mut extra = vec!["--scheme", scheme];
        if let Some(format) = format {
            extra.extend(["--secret-format", format]);
        }
        daemon.import(name, &file, &extra);
        signatures.push(assert_signs_verifiably(&daemon, name, scheme, &raw, None));
    }
    assert!(
        signatures.windows(2).all(|pair| pair[0] == pair[1]),
        "the text, hex and base64 forms of one secret sign differently: {signatures:?}"
    );

    // A binary secret with NUL, 0xff and trailing whitespace bytes survives hex and base64
    // byte for byte (only the file's text is trimmed, never the decoded secret).
    let binary: Vec<u8> = [0u8, 0xff, 0x7f, 0x80]
        .into_iter()
        .chain(keyward_tests::pattern(40))
        .chain(*b" \n\t ")
        .collect();
    let raw = daemon.write("binary.raw", &binary);
    let hex: String = binary.iter().map(|b| format!("{b:02x}")).collect();
    let hex_file = daemon.write("binary.hex", format!("{hex}\n").as_bytes());
    let b64_file = daemon.write("binary.b64", &openssl_base64(&daemon, &binary));
    daemon.import(
        "bin-hex",
        &hex_file,
        &["--scheme", scheme, "--secret-format", "hex"],
    );
    daemon.import(
        "bin-b64",
        &b64_file,
        &["--scheme", scheme, "--secret-format", "base64"],
    );
    let a = assert_signs_verifiably(&daemon, "bin-hex", scheme, &raw, None);
    let b = assert_signs_verifiably(&daemon, "bin-b64", scheme, &raw, None);
    assert_eq!(a, b);
}

/// Base64 of `bytes` on one line, by OpenSSL.
fn openssl_base64(daemon: &Daemon, bytes: &[u8]) -> Vec<u8> {
    let input = daemon.write("to-encode", bytes);
    openssl(&["base64", "-A", "-in", path_str(&input)])
}

#[test]
fn imported_hmac_sha256_secret_signs_verifiably_in_text_hex_and_base64_form() {
    hmac_secret_signs_verifiably_in_every_format("hmac-sha256");
}

#[test]
fn imported_hmac_sha512_secret_signs_verifiably_in_text_hex_and_base64_form() {
    hmac_secret_signs_verifiably_in_every_format("hmac-sha512");
}

/// `keyward generate` makes the key inside the daemon; the public key it prints (and that
/// `pubkey` repeats) verifies the signatures, and is a key of the requested size.
fn generated_key_signs_verifiably(kind: &str, scheme: &str, bits: Option<u32>) {
    let daemon = Daemon::start(&[]);
    let public = daemon.generate("gen", kind);
    assert_signs_verifiably(&daemon, "gen", scheme, &public, bits);
}

#[test]
fn generated_ed25519_key_signs_verifiably_under_its_printed_public_key() {
    generated_key_signs_verifiably("ed25519", "ed25519", None);
}

#[test]
fn generated_rsa_2048_key_signs_verifiably_under_its_printed_public_key() {
    generated_key_signs_verifiably("rsa-2048", "rsa-pkcs1v15-sha256", Some(2048));
}

#[test]
fn generated_rsa_3072_key_signs_verifiably_under_its_printed_public_key() {
    generated_key_signs_verifiably("rsa-3072", "rsa-pkcs1v15-sha256", Some(3072));
}

#[test]
fn generated_rsa_4096_key_signs_verifiably_under_its_printed_public_key() {
    generated_key_signs_verifiably("rsa-4096", "rsa-pkcs1v15-sha256", Some(4096));
}

#[test]
fn generated_ecdsa_p256_key_signs_verifiably_under_its_printed_public_key() {
    generated_key_signs_verifiably("ecdsa-p256", "ecdsa-p256-sha256", Some(256));
}

#[test]
fn every_encoding_prints_a_signature_that_verifies() {
    let daemon = Daemon::start(&[]);
    let encodings = ["base64", "base64url", "hex", "raw"];
    // (scheme, key file, encoding, signature text)
    let mut signed = Vec::new();
    for (name, kind, scheme) in [
        ("ed", "ed25519", "ed25519"),
        ("p256", "ecdsa-p256", "ecdsa-p256-sha256"),
    ] {
        let public = daemon.generate(name, kind);
        for encoding in encodings {
            let signature = daemon.sign(name, QUERY.as_bytes(), &["--encoding", encoding]);
            match encoding {
                "raw" => assert_eq!(signature.len(), 64, "raw {scheme} is 64 bytes, no newline"),
                "base64url" => assert!(!signature.contains(&b'='), "base64url is unpadded"),
                _ => assert_eq!(signature.last(), Some(&b'\n')),
            }
            signed.push((scheme, public.clone(), encoding, signature));
        }
    }
    // HMAC: base64 (OKX, KuCoin, Kraken) and raw too, not just the default hex.
    let secret = daemon.write("secret", b"an-okx-style-secret-0123456789ABCDEF");
    daemon.import("okx", &secret, &["--scheme", "hmac-sha256"]);
    for encoding in encodings {
        let signature = daemon.sign("okx", QUERY.as_bytes(), &["--encoding", encoding]);
        signed.push(("hmac-sha256", secret.clone(), encoding, signature));
    }
    assert_eq!(daemon.sign("okx", b"x", &["--encoding", "raw"]).len(), 32);
    let checks: Vec<Check<'_>> = signed
        .iter()
        .map(|(scheme, key, encoding, signature)| {
            Check::new(scheme, key, QUERY.as_bytes(), signature).encoding(encoding)
        })
        .collect();
    assert_python_verifies_all(&checks);
}

#[test]
fn rsa_ed25519_and_hmac_signatures_also_verify_with_the_openssl_cli() {
    let daemon = Daemon::start(&[]);
    let payload = QUERY.as_bytes();
    let mut tampered = payload.to_vec();
    tampered.push(b'0');
    for (name, kind, scheme) in [
        ("rsa", "rsa-2048", "rsa-pkcs1v15-sha256"),
        ("ed", "ed25519", "ed25519"),
    ] {
        let public = daemon.generate(name, kind);
        let signature = daemon.sign(name, payload, &["--encoding", "raw"]);
        assert!(
            verify::openssl(scheme, &public, payload, &signature),
            "OpenSSL rejects the {scheme} signature"
        );
        assert!(
            !verify::openssl(scheme, &public, &tampered, &signature),
            "OpenSSL accepts the {scheme} signature for another payload"
        );
    }
    // An imported OpenSSL key, checked by OpenSSL under its own public key.
    let private = daemon.dir().join("ossl-ed.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "ed25519",
        "-out",
        path_str(&private),
    ]);
    let public = openssl_public_key(&private);
    daemon.import("ossl-ed", &private, &[]);
    let signature = daemon.sign("ossl-ed", payload, &["--encoding", "raw"]);
    assert!(verify::openssl("ed25519", &public, payload, &signature));

    for (scheme, digest) in [("hmac-sha256", "sha256"), ("hmac-sha512", "sha512")] {
        let secret = b"kraken-or-binance-secret-0123456789";
        let file = daemon.write(&format!("{scheme}.secret"), secret);
        daemon.import(scheme, &file, &["--scheme", scheme]);
        let ours = String::from_utf8(daemon.sign(scheme, payload, &[])).unwrap();
        assert_eq!(
            ours.trim_end(),
            verify::openssl_hmac_hex(digest, secret, payload),
            "{scheme} differs from OpenSSL's HMAC"
        );
    }
}

#[test]
fn imported_encrypted_pkcs8_keys_sign_verifiably_given_their_pem_password() {
    let daemon = Daemon::start(&[]);
    let password = daemon.write("password", b"correct horse battery staple\n");
    let wrong = daemon.write("wrong", b"incorrect horse\n");
    // PBES2 with PBKDF2 + AES-256-CBC (OpenSSL's default), and with scrypt.
    for (name, algorithm, scheme, pbe) in [
        (
            "ed-pbkdf2",
            "ed25519",
            "ed25519",
            &["-v2", "aes-256-cbc"][..],
        ),
        ("rsa-scrypt", "RSA", "rsa-pkcs1v15-sha256", &["-scrypt"][..]),
    ] {
        let plain = daemon.dir().join(format!("{name}.pem"));
        openssl(&["genpkey", "-algorithm", algorithm, "-out", path_str(&plain)]);
        let public = openssl_public_key(&plain);
        let encrypted = daemon.dir().join(format!("{name}.enc.pem"));
        let mut args = vec!["pkcs8", "-topk8", "-in", path_str(&plain)];
        args.extend_from_slice(pbe);
        args.extend([
            "-passout",
            "pass:correct horse battery staple",
            "-out",
            path_str(&encrypted),
        ]);
        openssl(&args);
        assert!(
            String::from_utf8(read(&encrypted))
                .unwrap()
                .starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        );
        let file = path_str(&encrypted);

        let without = daemon.keyward(["import", name, "--file", file]);
        let line = without.error_line(1);
        assert!(line.contains("encrypted"), "{line}");
        let wrong_password = daemon.keyward([
            "import",
            name,
            "--file",
            file,
            "--pem-passphrase-file",
            path_str(&wrong),
        ]);
        wrong_password.error_line(1);
        assert!(!wrong_password.stderr.contains("incorrect horse"));

        daemon.import(
            name,
            &encrypted,
            &["--pem-passphrase-file", path_str(&password)],
        );
        assert_pubkey_is(&daemon, name, &public);
        assert_signs_verifiably(&daemon, name, scheme, &public, None);
    }
}
