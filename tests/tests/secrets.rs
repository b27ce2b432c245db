//! Secrets stay secret: no key material, HMAC secret, PEM password or payload appears in the
//! daemon's log (even at trace level), in any output of the CLI, or in an error.
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keyward_client::{Request, Response, SecretBytes};
use keyward_protocol::encode_request;
use keyward_tests::raw::{RawConn, Reply};
use keyward_tests::{Daemon, openssl};

const HMAC_SECRET: &str = "SECRETMARKER-hmac-7f3a9c1e5b2d4f6a8c0e";
const BINARY_SECRET_HEX: &str = "5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e7";
const PEM_PASSWORD: &str = "PASSWORDMARKER-correct-horse";
const PAYLOAD: &str = "PAYLOADMARKER&symbol=BTCUSDT&timestamp=1700000000000";

/// The base64 lines of a PEM's body: any of them in a log would leak part of the key.
fn pem_body_lines(pem: &[u8]) -> Vec<String> {
    String::from_utf8(pem.to_vec())
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with("-----") && line.len() >= 16)
        .map(str::to_owned)
        .collect()
}

#[test]
fn no_secret_or_payload_reaches_the_daemon_log_even_at_trace_level() {
    let daemon = Daemon::start_logging("trace", &[]);
    let mut outputs = Vec::new();

    // HMAC secrets: text, hex, and a too-short one that is refused.
    let secret = daemon.write("hmac.secret", format!("{HMAC_SECRET}\n").as_bytes());
    daemon.import("h", &secret, &["--scheme", "hmac-sha256"]);
    let hex = daemon.write("hmac.hex", BINARY_SECRET_HEX.as_bytes());
    daemon.import(
        "hx",
        &hex,
        &["--scheme", "hmac-sha512", "--secret-format", "hex"],
    );
    let short = daemon.write("short", b"SHORTMARK\n");
    outputs.push(daemon.keyward([
        "import",
        "short",
        "--file",
        short.to_str().unwrap(),
        "--scheme",
        "hmac-sha256",
    ]));

    // PEM keys: plain RSA and Ed25519, an encrypted one, and a corrupt one.
    let rsa = openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
    ]);
    let ed = openssl(&["genpkey", "-algorithm", "ed25519"]);
    let rsa_file = daemon.write("rsa.pem", &rsa);
    let ed_file = daemon.write("ed.pem", &ed);
    daemon.import("rsa", &rsa_file, &[]);
    daemon.import("ed", &ed_file, &[]);
    let password = daemon.write("password", PEM_PASSWORD.as_bytes());
    let encrypted = daemon.dir().join("enc.pem");
    openssl(&[
        "pkcs8",
        "-topk8",
        "-in",
        ed_file.to_str().unwrap(),
        "-passout",
        &format!("pass:{PEM_PASSWORD}"),
        "-out",
        encrypted.to_str().unwrap(),
    ]);
    daemon.import(
        "enc",
        &encrypted,
        &["--pem-passphrase-file", password.to_str().unwrap()],
    );
    let wrong = daemon.write("wrong", b"PASSWORDMARKER-wrong");
    outputs.push(daemon.keyward([
        "import",
        "enc2",
        "--file",
        encrypted.to_str().unwrap(),
        "--pem-passphrase-file",
        wrong.to_str().unwrap(),
    ]));
    let mut corrupt = rsa.clone();
    let at = corrupt.len() / 2;
    corrupt[at..at + 4].copy_from_slice(b"!!!!");
    let corrupt_file = daemon.write("corrupt.pem", &corrupt);
    outputs.push(daemon.keyward(["import", "bad", "--file", corrupt_file.to_str().unwrap()]));

    // Signing, successful and not.
    for key in ["h", "hx", "rsa", "ed", "enc", "no-such-key"] {
        outputs.push(daemon.keyward(["sign", key, PAYLOAD]));
    }
    // A raw Import request with trailing garbage (decoded, then refused).
    let (mut conn, _) = RawConn::connect_and_hello(daemon.socket());
    let frame = encode_request(
        &Request::Import {
            name: "raw".into(),
            scheme: Some(keyward_client::Scheme::HmacSha256),
            material: SecretBytes::new(HMAC_SECRET.as_bytes().to_vec()),
            pem_passphrase: None,
            api_key: None,
            format: None,
        },
        u32::MAX,
    )
    .unwrap();
    let mut body = frame[4..].to_vec();
    body.push(0);
    let mut bad_frame = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    bad_frame.extend_from_slice(&body);
    conn.send(&bad_frame);
    assert!(matches!(
        conn.read_reply(),
        Reply::Response(Response::Error { .. })
    ));
    outputs.push(daemon.keyward(["list"]));
    outputs.push(daemon.keyward(["list", "--json"]));

    let log = daemon.log();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "the log is not at trace level, so this test proves little:\n{log}"
    );
    let mut forbidden: Vec<String> = vec![
        HMAC_SECRET.into(),
        BINARY_SECRET_HEX.into(),
        "SHORTMARK".into(),
        "PASSWORDMARKER".into(),
        "PAYLOADMARKER".into(),
    ];
    forbidden.extend(pem_body_lines(&rsa));
    forbidden.extend(pem_body_lines(&ed));
    for secret in &forbidden {
        assert!(
            !log.contains(secret.as_str()),
            "the daemon logged secret material {secret:?}:\n{log}"
        );
        for out in &outputs {
            let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), out.stderr);
            assert!(
                !printed.contains(secret.as_str()),
                "the CLI printed secret material {secret:?}: {out:#?}"
            );
        }
    }
}
