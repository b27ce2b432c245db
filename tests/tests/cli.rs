//! The `keyward` command as a person meets it: the demo, the key commands, and documented
//! exit codes with one clear line on stderr for every failure.
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use keyward_tests::{Daemon, keyward, keyward_bin, openssl, run};

#[test]
fn demo_exits_0_and_prints_two_signed_query_strings_then_cleans_up() {
    let out = keyward(["demo"]);
    out.success();
    let text = out.stdout_text();
    let signed: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("signed query: "))
        .collect();
    assert_eq!(
        signed.len(),
        2,
        "expected two signed query strings:\n{text}"
    );
    for query in &signed {
        let (params, signature) = query
            .split_once("&signature=")
            .unwrap_or_else(|| panic!("no signature parameter: {query}"));
        assert!(params.starts_with("symbol=BTCUSDT&") && params.contains("&timestamp="));
        // Percent-encoded base64: no raw '+', '/' or '=' may reach a query string.
        assert!(
            !signature.is_empty() && !signature.contains(['+', '/', '=', '&']),
            "{signature}"
        );
    }
    assert_eq!(
        text.matches("signature verifies against the public key: yes")
            .count(),
        2
    );
    // Its throwaway daemon is gone, and so is its socket directory.
    let socket = text
        .lines()
        .find_map(|line| line.strip_prefix("started a throwaway keywardd on "))
        .expect("the demo names its socket");
    assert!(!Path::new(socket).exists(), "the demo left {socket} behind");
}

#[test]
fn signing_with_an_unknown_key_exits_1_naming_the_key() {
    let daemon = Daemon::start(&[]);
    let out = daemon.keyward(["sign", "binance-mian", "symbol=BTCUSDT"]);
    let line = out.error_line(1);
    assert!(line.contains("binance-mian"), "{line}");
    assert!(out.stdout.is_empty());
    for args in [&["pubkey", "binance-mian"][..], &["remove", "binance-mian"]] {
        let out = daemon.keyward(args);
        assert!(out.error_line(1).contains("binance-mian"), "{out:#?}");
    }
}

#[test]
fn importing_a_bad_key_file_exits_1_with_one_line_and_no_panic() {
    let daemon = Daemon::start(&[]);
    let ed = daemon.dir().join("ed.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "ed25519",
        "-out",
        ed.to_str().unwrap(),
    ]);
    let good = String::from_utf8(std::fs::read(&ed).unwrap()).unwrap();
    let body_start = good.find('\n').unwrap() + 1;
    let truncated = &good[..good.len() - 30];
    let mut corrupt = good.clone();
    corrupt.replace_range(body_start..body_start + 8, "!!!!!!!!");
    let public = daemon.dir().join("ed.pub.pem");
    openssl(&[
        "pkey",
        "-in",
        ed.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    let spki = std::fs::read(&public).unwrap();
    let not_a_key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";

    let cases: [(&str, &[u8]); 9] = [
        ("empty", b""),
        ("text", b"this is not a key\n"),
        ("binary", &[0, 159, 146, 150, 0xff, 0xfe]),
        ("truncated", truncated.as_bytes()),
        ("corrupt-base64", corrupt.as_bytes()),
        ("public-key", &spki),
        ("not-a-key", not_a_key.as_bytes()),
        (
            "openssh",
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
        ),
        (
            "rsa-1024",
            &openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"]),
        ),
    ];
    for (name, contents) in cases {
        let file = daemon.write(&format!("{name}.pem"), contents);
        let out = daemon.keyward(["import", name, "--file", file.to_str().unwrap()]);
        out.error_line(1);
        assert!(
            !out.stderr.contains("BEGIN") && !out.stderr.contains("MC4CAQAw"),
            "key material in the error: {out:#?}"
        );
    }
    // A file that does not exist names the path.
    let out = daemon.keyward(["import", "x", "--file", "/nonexistent/key.pem"]);
    assert!(
        out.error_line(1).contains("/nonexistent/key.pem"),
        "{out:#?}"
    );
    // A PEM of one scheme imported as another.
    let out = daemon.keyward([
        "import",
        "ed",
        "--file",
        ed.to_str().unwrap(),
        "--scheme",
        "rsa-pkcs1v15-sha256",
    ]);
    out.error_line(1);
    // None of those left a key behind, and the daemon is still fine.
    let list = daemon.keyward(["list", "--json"]);
    list.success();
    assert_eq!(list.stdout_text().trim(), "[]");
}

#[test]
fn bad_hmac_secrets_exit_1_with_one_line() {
    let daemon = Daemon::start(&[]);
    let cases: [(&str, &str, &[u8]); 4] = [
        ("short", "text", b"tooshort\n"),
        ("not-hex", "hex", b"zz00112233445566778899aabbccddeeff\n"),
        ("not-base64", "base64", b"!!!not base64!!!\n"),
        ("empty", "text", b"\n \n"),
    ];
    for (name, format, contents) in cases {
        let file = daemon.write(name, contents);
        let out = daemon.keyward([
            "import",
            name,
            "--file",
            file.to_str().unwrap(),
            "--scheme",
            "hmac-sha256",
            "--secret-format",
            format,
        ]);
        let line = out.error_line(1);
        let secret = std::str::from_utf8(contents).unwrap().trim();
        assert!(
            secret.is_empty() || !line.contains(secret),
            "the secret is echoed in the error: {line}"
        );
    }
}

#[test]
fn pubkey_of_an_hmac_key_exits_1_saying_it_has_none() {
    let daemon = Daemon::start(&[]);
    let secret = daemon.write("secret", b"hmac-secret-with-no-public-half-0123");
    daemon.import("h", &secret, &["--scheme", "hmac-sha512"]);
    let out = daemon.keyward(["pubkey", "h"]);
    let line = out.error_line(1);
    assert!(line.contains("public key") && line.contains('h'), "{line}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_key_name_in_use_or_invalid_is_refused_with_exit_1() {
    let daemon = Daemon::start(&[]);
    daemon.generate("ed", "ed25519");
    let out = daemon.keyward(["generate", "ed", "--scheme", "ed25519"]);
    assert!(out.error_line(1).contains("ed"), "{out:#?}");
    for bad in ["../escape", ".hidden", "has space", &"x".repeat(65)] {
        let out = daemon.keyward(["generate", bad, "--scheme", "ed25519"]);
        out.error_line(1);
    }
    // The original key is untouched.
    daemon.keyward(["sign", "ed", "x"]).success();
}

#[test]
fn remove_deletes_a_key_and_it_can_no_longer_sign() {
    let daemon = Daemon::start(&[]);
    daemon.generate("gone", "ed25519");
    daemon.generate("kept", "ed25519");
    daemon.keyward(["remove", "gone"]).success();
    assert!(
        daemon
            .keyward(["sign", "gone", "x"])
            .error_line(1)
            .contains("gone")
    );
    daemon.keyward(["remove", "gone"]).error_line(1);
    daemon.keyward(["sign", "kept", "x"]).success();
}

#[test]
fn list_shows_name_scheme_bits_format_api_key_and_the_openssl_computed_fingerprint() {
    let daemon = Daemon::start(&[]);
    let public = daemon.generate("binance-ed", "ed25519");
    let secret = daemon.write("secret", b"list-test-hmac-secret-0123456789");
    daemon.import(
        "bybit",
        &secret,
        &[
            "--scheme",
            "hmac-sha256",
            "--api-key",
            "XyZ-api-key-id",
            "--format",
            "bybit",
        ],
    );
    daemon
        .keyward([
            "generate", "okx-ed", "--scheme", "ed25519", "--format", "okx",
        ])
        .success();
    // SHA256: + unpadded base64 of SHA-256 over the DER SPKI, as ssh-keygen prints it,
    // computed here by OpenSSL.
    let der = openssl(&[
        "pkey",
        "-pubin",
        "-in",
        public.to_str().unwrap(),
        "-outform",
        "DER",
    ]);
    let der_file = daemon.write("spki.der", &der);
    let digest = openssl(&["dgst", "-sha256", "-binary", der_file.to_str().unwrap()]);
    let digest_file = daemon.write("digest", &digest);
    let b64 = openssl(&["base64", "-A", "-in", digest_file.to_str().unwrap()]);
    let fingerprint = format!(
        "SHA256:{}",
        String::from_utf8(b64).unwrap().trim_end_matches('=')
    );

    let table = daemon.keyward(["list"]);
    table.success();
    let text = table.stdout_text();
    let ed_row = text
        .lines()
        .find(|line| line.starts_with("binance-ed "))
        .unwrap_or_else(|| panic!("no row for binance-ed:\n{text}"));
    assert!(
        ed_row.contains("ed25519") && ed_row.contains(&fingerprint),
        "{ed_row}\nexpected {fingerprint}"
    );
    let hmac_row = text
        .lines()
        .find(|line| line.starts_with("bybit "))
        .unwrap_or_else(|| panic!("no row for bybit:\n{text}"));
    assert!(
        hmac_row.contains("hmac-sha256  256   bybit ") && hmac_row.contains("XyZ-api-key-id"),
        "{hmac_row}"
    );
    assert!(text.starts_with("NAME "), "{text}");
    assert!(
        text.lines()
            .next()
            .unwrap()
            .contains(" BITS  FORMAT  FINGERPRINT"),
        "{text}"
    );
    // No format: "-".
    assert!(ed_row.contains(" 256   -  "), "{ed_row}");
    let okx_row = text.lines().find(|l| l.starts_with("okx-ed ")).unwrap();
    assert!(okx_row.contains(" okx "), "{okx_row}");
    assert!(
        !text.contains("list-test-hmac-secret"),
        "the secret is listed"
    );

    let json = daemon.keyward(["list", "--json"]);
    json.success();
    let json = json.stdout_text();
    assert!(
        json.contains(&format!("\"fingerprint\": \"{fingerprint}\"")),
        "{json}"
    );
    assert!(
        json.contains("\"bits\": 256") && json.contains("\"api_key\": \"XyZ-api-key-id\""),
        "{json}"
    );
    let keys: serde_json::Value = serde_json::from_str(json).unwrap();
    let formats: Vec<_> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|key| (key["name"].as_str().unwrap(), key["format"].clone()))
        .collect();
    assert_eq!(
        formats,
        [
            ("binance-ed", serde_json::Value::Null),
            ("bybit", "bybit".into()),
            ("okx-ed", "okx".into()),
        ]
    );
    // An unknown name is a usage error, before anything reaches the daemon.
    let out = daemon.keyward([
        "generate", "x", "--scheme", "ed25519", "--format", "binanse",
    ]);
    assert!(
        out.stderr.contains("expected one of binance, bybit, okx"),
        "{out:#?}"
    );
}

#[test]
fn the_socket_comes_from_keyward_sock_when_no_flag_is_given() {
    let daemon = Daemon::start(&[]);
    daemon.generate("ed", "ed25519");
    let out = run(
        Command::new(keyward_bin())
            .args(["sign", "ed", "x"])
            .env("KEYWARD_SOCK", daemon.socket()),
        None,
    );
    out.success();
    // --socket wins over the environment.
    let out = run(
        Command::new(keyward_bin())
            .arg("--socket")
            .arg(daemon.socket())
            .args(["sign", "ed", "x"])
            .env("KEYWARD_SOCK", "/nonexistent/keyward.sock"),
        None,
    );
    out.success();
}

#[test]
fn a_daemon_that_went_away_is_exit_3_naming_the_socket() {
    let mut daemon = Daemon::start(&[]);
    let socket = daemon.socket().to_path_buf();
    assert!(daemon.stop().success());
    assert!(!socket.exists(), "SIGTERM left the socket behind");
    let out = keyward(["--socket", socket.to_str().unwrap(), "list"]);
    assert!(
        out.error_line(3).contains(socket.to_str().unwrap()),
        "{out:#?}"
    );
}

#[test]
fn import_reads_a_pem_key_or_an_hmac_secret_from_stdin_with_file_dash() {
    let daemon = Daemon::start(&[]);
    let pem = openssl(&["genpkey", "-algorithm", "ed25519"]);
    let out = daemon.keyward_stdin(["import", "from-stdin", "--file", "-"], &pem);
    out.success();
    assert!(
        out.stdout_text().contains("from-stdin") && out.stdout_text().contains("SHA256:"),
        "{out:#?}"
    );
    daemon.keyward(["sign", "from-stdin", "x"]).success();

    let secret = b"NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j\n";
    daemon
        .keyward_stdin(
            ["import", "hmac", "--file", "-", "--scheme", "hmac-sha256"],
            secret,
        )
        .success();
    let signature = daemon.keyward([
        "sign",
        "hmac",
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559",
    ]);
    assert_eq!(
        signature.stdout_text(),
        "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71\n"
    );
}

#[test]
fn secret_format_without_an_hmac_scheme_exits_2_with_a_daemon_running() {
    let daemon = Daemon::start(&[]);
    let file = daemon.write("secret", b"00112233445566778899aabbccddeeff");
    let path = file.to_str().unwrap();
    for extra in [&[][..], &["--scheme", "ed25519"]] {
        let mut args = vec!["import", "k", "--file", path, "--secret-format", "hex"];
        args.extend_from_slice(extra);
        let out = daemon.keyward(&args);
        assert!(out.error_line(2).contains("--secret-format"), "{out:#?}");
    }
    assert_eq!(
        daemon.keyward(["list", "--json"]).stdout_text().trim(),
        "[]"
    );
}
