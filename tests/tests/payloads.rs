//! Payloads are signed byte for byte, from empty up to exactly the frame limit; one byte over
//! is a clear error, and the daemon keeps serving.
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use keyward_client::{Error, ErrorCode, Response, Scheme, SecretBytes};
use keyward_protocol::DEFAULT_MAX_FRAME;
use keyward_tests::raw::{RawConn, Reply, payload_for_frame_body};
use keyward_tests::verify::{Check, assert_python_verifies, assert_python_verifies_all};
use keyward_tests::{Daemon, pattern};

const HMAC_SECRET: &[u8] = b"payload-tests-hmac-secret-0123456789";

/// A daemon with one key of each scheme; returns (name, scheme, key file for verify.py).
fn daemon_with_every_scheme() -> (Daemon, Vec<(&'static str, &'static str, PathBuf)>) {
    let daemon = Daemon::start(&[]);
    let mut keys = Vec::new();
    for (name, kind, scheme) in [
        ("ed", "ed25519", "ed25519"),
        ("p256", "ecdsa-p256", "ecdsa-p256-sha256"),
        ("rsa", "rsa-2048", "rsa-pkcs1v15-sha256"),
    ] {
        keys.push((name, scheme, daemon.generate(name, kind)));
    }
    let secret = daemon.write("hmac.secret", HMAC_SECRET);
    for (name, scheme) in [("h256", "hmac-sha256"), ("h512", "hmac-sha512")] {
        daemon.import(name, &secret, &["--scheme", scheme]);
        keys.push((name, scheme, secret.clone()));
    }
    (daemon, keys)
}

/// (scheme, key file, payload, signature): checked together in one run of Python.
type Signed = (&'static str, PathBuf, Vec<u8>, Vec<u8>);

fn assert_all_verify(signed: &[Signed]) {
    let checks: Vec<Check<'_>> = signed
        .iter()
        .map(|(scheme, key, payload, signature)| Check::new(scheme, key, payload, signature))
        .collect();
    assert_python_verifies_all(&checks);
}

#[test]
fn every_byte_value_signs_byte_for_byte_through_stdin() {
    let (daemon, keys) = daemon_with_every_scheme();
    // 0..=255 then 255..=0: every value, NUL and newlines at both ends and in the middle.
    let payload: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let mut client = daemon.client();
    let mut signed = Vec::new();
    for (name, scheme, key) in &keys {
        let signature = daemon.sign(name, &payload, &["--encoding", "raw"]);
        signed.push((*scheme, key.clone(), payload.clone(), signature.clone()));
        if *scheme != "ecdsa-p256-sha256" {
            let direct = client.sign(name, &payload).unwrap();
            assert_eq!(
                direct.as_bytes(),
                signature,
                "{name}: CLI and client disagree"
            );
        }
    }
    assert_all_verify(&signed);
}

#[test]
fn every_nonzero_byte_value_signs_byte_for_byte_as_an_argument() {
    let (daemon, keys) = daemon_with_every_scheme();
    // An argument cannot hold NUL; everything else, invalid UTF-8 included, must pass as is.
    let payload: Vec<u8> = (1..=255u8).collect();
    let arg = OsString::from_vec(payload.clone());
    let mut signed = Vec::new();
    for (name, scheme, key) in &keys {
        let out = daemon.keyward([
            OsString::from("sign"),
            OsString::from(name),
            arg.clone(),
            OsString::from("--encoding"),
            OsString::from("raw"),
        ]);
        out.success();
        signed.push((*scheme, key.clone(), payload.clone(), out.stdout));
    }
    assert_all_verify(&signed);
}

#[test]
fn an_empty_payload_signs_verifiably_from_stdin_an_argument_and_the_client() {
    let (daemon, keys) = daemon_with_every_scheme();
    let mut client = daemon.client();
    let mut signed = Vec::new();
    for (name, scheme, key) in &keys {
        let from_stdin = daemon.sign(name, b"", &["--encoding", "raw"]);
        let from_arg = daemon.keyward(["sign", name, "", "--encoding", "raw"]);
        from_arg.success();
        let from_client = client.sign(name, b"").unwrap();
        for signature in [from_stdin, from_arg.stdout, from_client.into_bytes()] {
            signed.push((*scheme, key.clone(), Vec::new(), signature));
        }
    }
    assert_all_verify(&signed);
}

#[test]
fn a_payload_whose_frame_is_exactly_the_limit_signs_verifiably() {
    let (daemon, keys) = daemon_with_every_scheme();
    let mut client = daemon.client();
    assert_eq!(client.max_frame(), DEFAULT_MAX_FRAME);
    let mut signed = Vec::new();
    for (name, scheme, key) in &keys {
        let payload = payload_for_frame_body(name, DEFAULT_MAX_FRAME);
        let from_cli = daemon.sign(name, &payload, &["--encoding", "raw"]);
        let from_client = client.sign(name, &payload).unwrap().into_bytes();
        signed.push((*scheme, key.clone(), payload.clone(), from_cli));
        signed.push((*scheme, key.clone(), payload, from_client));
    }
    assert_all_verify(&signed);
}

#[test]
fn payload_one_byte_over_the_frame_limit_is_refused_and_the_daemon_keeps_serving() {
    let daemon = Daemon::start(&[]);
    let public = daemon.generate("ed", "ed25519");
    let fits = payload_for_frame_body("ed", DEFAULT_MAX_FRAME);
    let mut over = fits.clone();
    over.push(0x42);

    // The CLI: exit 1, one line that says what the limit is.
    let out = daemon.keyward_stdin(["sign", "ed"], &over);
    let line = out.error_line(1);
    assert!(out.stdout.is_empty(), "a signature was printed: {out:#?}");
    assert!(
        line.contains(&DEFAULT_MAX_FRAME.to_string()) && line.contains("exceeds"),
        "the message does not explain the limit: {line}"
    );

    // The client refuses locally, with the sizes, and its connection stays usable.
    let mut client = daemon.client();
    match client.sign("ed", &over) {
        Err(Error::TooLarge { len, max }) => {
            assert_eq!(
                (len, max),
                (u64::from(DEFAULT_MAX_FRAME) + 1, DEFAULT_MAX_FRAME)
            );
        }
        other => panic!("expected Error::TooLarge, got {other:?}"),
    }
    assert!(!client.is_broken());
    let same_connection = client.sign("ed", &fits).unwrap();
    let new_connection = daemon.client().sign("ed", &fits).unwrap();
    assert_eq!(same_connection, new_connection);
    assert_python_verifies(&Check::new(
        "ed25519",
        &public,
        &fits,
        new_connection.as_bytes(),
    ));
    daemon.keyward_stdin(["sign", "ed"], &fits).success();
}

#[test]
fn a_frame_announcing_one_byte_over_the_limit_gets_too_large_and_the_daemon_keeps_serving() {
    let mut daemon = Daemon::start(&[]);
    daemon.generate("ed", "ed25519");
    let expected = daemon.client().sign("ed", b"still here").unwrap();

    // Only the header: the daemon must judge the length before any body byte arrives.
    let (mut conn, max) = RawConn::connect_and_hello(daemon.socket());
    conn.send(&(max + 1).to_be_bytes());
    assert_too_large_or_closed(conn.read_reply());
    conn.assert_closed();

    // Header and the whole over-long body, as a client that does not check would send.
    let (mut conn, max) = RawConn::connect_and_hello(daemon.socket());
    let payload = payload_for_frame_body("ed", max + 1);
    conn.send_request(&keyward_client::Request::Sign {
        key: "ed".into(),
        payload,
    });
    assert_too_large_or_closed(conn.read_reply());

    daemon.assert_running();
    assert_eq!(daemon.client().sign("ed", b"still here").unwrap(), expected);
}

fn assert_too_large_or_closed(reply: Reply) {
    match reply {
        Reply::Response(Response::Error {
            code: ErrorCode::TooLarge,
            message,
        }) => assert!(
            !message.is_empty() && !message.contains('\n'),
            "{message:?}"
        ),
        Reply::Closed => {}
        other => panic!("expected a TooLarge error or a closed connection, got {other:?}"),
    }
}

#[test]
fn a_daemon_started_with_max_frame_announces_and_enforces_that_limit() {
    const MAX: u32 = 4096;
    let daemon = Daemon::start(&["--max-frame", &MAX.to_string()]);
    let mut client = daemon.client();
    assert_eq!(client.max_frame(), MAX);
    let secret = daemon.write("secret", HMAC_SECRET);
    client
        .import(
            "h",
            Some(Scheme::HmacSha256),
            SecretBytes::new(HMAC_SECRET.to_vec()),
            None,
            None,
            None,
        )
        .unwrap();
    let fits = payload_for_frame_body("h", MAX);
    let signature = client.sign("h", &fits).unwrap();
    assert_python_verifies(&Check::new(
        "hmac-sha256",
        &secret,
        &fits,
        signature.as_bytes(),
    ));
    let mut over = fits;
    over.push(0);
    assert!(matches!(
        client.sign("h", &over),
        Err(Error::TooLarge { max: MAX, .. })
    ));
    let (mut conn, announced) = RawConn::connect_and_hello(daemon.socket());
    assert_eq!(announced, MAX);
    conn.send(&(MAX + 1).to_be_bytes());
    assert_too_large_or_closed(conn.read_reply());
    // The CLI learns the limit from the Hello too.
    daemon.keyward_stdin(["sign", "h"], &over).error_line(1);
}

#[test]
fn a_batch_signs_each_payload_in_order_exactly_as_single_requests_do() {
    let (daemon, keys) = daemon_with_every_scheme();
    let mut client = daemon.client();
    let all_bytes: Vec<u8> = (0..=255).collect();
    let big = pattern(10_000);
    let payloads: Vec<&[u8]> = vec![b"", b"a", &all_bytes, b"symbol=BTCUSDT&timestamp=1", &big];
    let mut signed = Vec::new();
    for (name, scheme, key) in &keys {
        let batch = client.sign_batch(name, &payloads).unwrap();
        assert_eq!(batch.len(), payloads.len());
        for (payload, signature) in payloads.iter().zip(batch) {
            if *scheme != "ecdsa-p256-sha256" {
                assert_eq!(signature, client.sign(name, payload).unwrap(), "{name}");
            }
            signed.push((
                *scheme,
                key.clone(),
                payload.to_vec(),
                signature.into_bytes(),
            ));
        }
    }
    assert_all_verify(&signed);
}
