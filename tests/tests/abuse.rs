//! What a misbehaving or hostile local client can send over a raw socket. Each case gets a
//! typed error or a closed connection, never a hang, a crash or a logged panic (the
//! harness's `Daemon` checks its log and exit status when dropped), and afterwards a normal
//! client is served.
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keyward_client::{ErrorCode, Request, Response};
use keyward_protocol::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, encode_request};
use keyward_tests::Daemon;
use keyward_tests::raw::{RawConn, Reply};

const PAYLOAD: &[u8] = b"symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1&timestamp=1700000000000";

/// A daemon with an Ed25519 key `ed`, and the signature of [`PAYLOAD`] made before any abuse
/// (Ed25519 is deterministic, so the same signature must come back afterwards).
fn daemon_with_key() -> (Daemon, Vec<u8>) {
    let daemon = Daemon::start(&[]);
    let mut client = daemon.client();
    client
        .generate("ed", keyward_client::KeyKind::Ed25519, None, None)
        .unwrap();
    let signature = client.sign("ed", PAYLOAD).unwrap().into_bytes();
    (daemon, signature)
}

/// A fresh client connects, signs, and gets the same signature as before the abuse.
#[track_caller]
fn assert_still_serving(daemon: &mut Daemon, before: &[u8]) {
    daemon.assert_running();
    let mut client = daemon.client();
    assert_eq!(client.sign("ed", PAYLOAD).unwrap().as_bytes(), before);
    assert_eq!(client.list().unwrap().len(), 1);
}

#[track_caller]
fn assert_error(reply: Reply, code: ErrorCode) -> String {
    match reply {
        Reply::Response(Response::Error { code: got, message }) if got == code => {
            assert!(
                !message.is_empty() && !message.contains('\n'),
                "{message:?}"
            );
            message
        }
        other => panic!("expected a {code} error, got {other:?}"),
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut bytes = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    bytes.extend_from_slice(body);
    bytes
}

#[test]
fn garbage_bytes_get_an_error_or_a_closed_connection_and_the_next_client_is_served() {
    let (mut daemon, before) = daemon_with_key();
    let garbage: [&[u8]; 4] = [
        // Someone pointed an HTTP client at the socket: "GET " is a 1.1 GB length.
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        // An ssh-agent request (length 1, SSH_AGENTC_REQUEST_IDENTITIES = 11).
        &[0, 0, 0, 1, 11],
        // A zero-length frame.
        &[0, 0, 0, 0],
        // Bytes with no structure at all, after the handshake below.
        &keyward_tests::pattern(3000),
    ];
    for (i, bytes) in garbage.iter().enumerate() {
        let mut conn = RawConn::connect(daemon.socket());
        if i == 3 {
            conn.hello();
        }
        conn.send(bytes);
        conn.shutdown_write();
        // Whatever it answers must be well-formed frames (`read_reply` checks), then a close
        // once the input is exhausted. (Structureless bytes can happen to form a valid
        // request, so any answer is acceptable; hanging or dying is not.)
        while let Reply::Response(response) = conn.read_reply() {
            if i < 3 {
                assert!(
                    matches!(response, Response::Error { .. }),
                    "garbage #{i} got {response:?}"
                );
            }
        }
        assert_still_serving(&mut daemon, &before);
    }
}

#[test]
fn a_body_that_is_not_a_message_gets_bad_request_and_the_connection_goes_on() {
    let (mut daemon, before) = daemon_with_key();
    let (mut conn, _) = RawConn::connect_and_hello(daemon.socket());
    conn.send(&frame(&[0xff; 8]));
    assert_error(conn.read_reply(), ErrorCode::BadRequest);
    // The frame was whole, so the stream is still in sync and the connection usable.
    match conn.request(&Request::Sign {
        key: "ed".into(),
        payload: PAYLOAD.to_vec(),
    }) {
        Reply::Response(Response::Signature { signature, .. }) => assert_eq!(signature, before),
        other => panic!("expected a signature, got {other:?}"),
    }
    assert_still_serving(&mut daemon, &before);
}

#[test]
fn a_truncated_frame_closes_that_connection_only_and_the_next_client_is_served() {
    let (mut daemon, before) = daemon_with_key();
    let (mut conn, _) = RawConn::connect_and_hello(daemon.socket());
    // The header promises 100 bytes; 10 arrive, then the client hangs up.
    let mut bytes = 100u32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[1; 10]);
    conn.send(&bytes);
    conn.shutdown_write();
    assert_eq!(conn.read_reply(), Reply::Closed);
    // Same before the handshake, and with the header itself cut short.
    for bytes in [&[0u8, 0, 0, 100, 0, 1, 2][..], &[0, 0][..]] {
        let mut conn = RawConn::connect(daemon.socket());
        conn.send(bytes);
        conn.shutdown_write();
        assert_eq!(conn.read_reply(), Reply::Closed);
    }
    assert_still_serving(&mut daemon, &before);
}

#[test]
fn an_unknown_message_variant_gets_bad_request_and_the_next_client_is_served() {
    let (mut daemon, before) = daemon_with_key();
    let (mut conn, _) = RawConn::connect_and_hello(daemon.socket());
    // Variant 200 does not exist; nor does 15, the first index after the last request, in
    // case a daemon ever confuses "unknown" with "not yet handled".
    for variant in [vec![200u8, 1], vec![15], vec![0x80, 0x01]] {
        conn.send(&frame(&variant));
        assert_error(conn.read_reply(), ErrorCode::BadRequest);
    }
    // A known variant whose fields are cut short: Sign with a 5-byte key name that has 2.
    conn.send(&frame(&[1, 5, b'a', b'b']));
    assert_error(conn.read_reply(), ErrorCode::BadRequest);
    // The connection is still in sync.
    assert!(matches!(
        conn.request(&Request::List),
        Reply::Response(Response::Keys { .. })
    ));
    assert_still_serving(&mut daemon, &before);
}

#[test]
fn a_huge_length_prefix_gets_too_large_without_the_daemon_reading_on_and_the_next_client_is_served()
{
    let (mut daemon, before) = daemon_with_key();
    for greet in [false, true] {
        let mut conn = RawConn::connect(daemon.socket());
        if greet {
            conn.hello();
        }
        conn.send(&[0xff, 0xff, 0xff, 0xff]);
        // No body follows and the write side stays open: the daemon must answer from the
        // header alone instead of waiting for 4 GiB.
        assert_error(conn.read_reply(), ErrorCode::TooLarge);
        conn.assert_closed();
    }
    assert_still_serving(&mut daemon, &before);
}

#[test]
fn a_request_before_hello_gets_bad_request_and_hello_still_works_after() {
    let (mut daemon, before) = daemon_with_key();
    let mut conn = RawConn::connect(daemon.socket());
    let message = assert_error(
        conn.request(&Request::Sign {
            key: "ed".into(),
            payload: PAYLOAD.to_vec(),
        }),
        ErrorCode::BadRequest,
    );
    assert!(message.contains("Hello"), "{message}");
    assert_error(conn.request(&Request::List), ErrorCode::BadRequest);
    conn.hello();
    // A second Hello is out of order too.
    assert_error(
        conn.request(&Request::Hello {
            version: PROTOCOL_VERSION,
        }),
        ErrorCode::BadRequest,
    );
    assert!(matches!(
        conn.request(&Request::List),
        Reply::Response(Response::Keys { .. })
    ));
    assert_still_serving(&mut daemon, &before);
}

#[test]
fn hello_with_an_unknown_version_gets_unsupported_version_not_a_hang() {
    let (mut daemon, before) = daemon_with_key();
    let mut conn = RawConn::connect(daemon.socket());
    // 1: a client of protocol version 1, whose Import, Generate and KeyInfo lack the format
    // field of version 2; it must get a typed error it can decode, not a misread answer.
    // (Version 2 is still spoken: tests/tests/protocol_versions.rs.)
    for version in [MIN_PROTOCOL_VERSION - 1, 999, 0, u32::MAX] {
        let message = assert_error(
            conn.request(&Request::Hello { version }),
            ErrorCode::UnsupportedVersion,
        );
        assert!(
            message.contains(&version.to_string())
                && message.contains(&PROTOCOL_VERSION.to_string()),
            "the message should name both versions: {message}"
        );
    }
    // Nothing is served until a supported Hello.
    assert_error(conn.request(&Request::List), ErrorCode::BadRequest);
    conn.hello();
    assert_still_serving(&mut daemon, &before);
}

#[test]
fn trailing_bytes_after_a_valid_message_get_bad_request() {
    let (mut daemon, before) = daemon_with_key();
    let mut conn = RawConn::connect(daemon.socket());
    let hello = encode_request(
        &Request::Hello {
            version: PROTOCOL_VERSION,
        },
        u32::MAX,
    )
    .unwrap();
    let mut body = hello[4..].to_vec();
    body.push(0);
    conn.send(&frame(&body));
    let message = assert_error(conn.read_reply(), ErrorCode::BadRequest);
    assert!(message.contains("bytes"), "{message}");
    // The trailing bytes did not count as a Hello: the connection is still un-greeted.
    assert_error(conn.request(&Request::List), ErrorCode::BadRequest);
    conn.hello();
    let sign = encode_request(
        &Request::Sign {
            key: "ed".into(),
            payload: PAYLOAD.to_vec(),
        },
        u32::MAX,
    )
    .unwrap();
    let mut body = sign[4..].to_vec();
    body.extend_from_slice(b"extra");
    conn.send(&frame(&body));
    assert_error(conn.read_reply(), ErrorCode::BadRequest);
    assert_still_serving(&mut daemon, &before);
}

#[test]
fn many_abusive_connections_at_once_do_not_stop_the_daemon() {
    let (mut daemon, before) = daemon_with_key();
    let socket = daemon.socket().to_path_buf();
    let threads: Vec<_> = (0..32)
        .map(|i| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut conn = RawConn::connect(&socket);
                match i % 4 {
                    0 => conn.send(&[0xff; 4]),
                    1 => conn.send(&keyward_tests::pattern(100 + i)),
                    2 => {
                        conn.hello();
                        conn.send(&frame(&[200]));
                    }
                    _ => conn.send(&[0, 0, 0, 50, 1, 2, 3]),
                }
                conn.shutdown_write();
                while let Reply::Response(Response::Error { .. }) = conn.read_reply() {}
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_still_serving(&mut daemon, &before);
}

#[test]
fn a_client_stalled_mid_frame_does_not_hold_up_other_clients() {
    let (mut daemon, before) = daemon_with_key();
    // Ten clients each start a frame and stop sending, keeping their connections open.
    let stalled: Vec<RawConn> = (0..10)
        .map(|_| {
            let (mut conn, _) = RawConn::connect_and_hello(daemon.socket());
            conn.send(&[0, 0, 0, 100, 1, 2, 3]);
            conn
        })
        .collect();
    let started = std::time::Instant::now();
    assert_still_serving(&mut daemon, &before);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "a normal client waited {:?} behind stalled ones",
        started.elapsed()
    );
    drop(stalled);
}
