//! The blocking client against a fake daemon on a real Unix socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::thread;
use std::time::Duration;

use common::{FakeDaemon, Reply, answer, hello};
use keyward_client::exchanges::binance;
use keyward_client::protocol::frame::{self, HEADER_LEN};
use keyward_client::protocol::{DecodeError, encode_response};
use keyward_client::{
    Client, DEFAULT_MAX_FRAME, Error, ErrorCode, KeyInfo, KeyKind, KeystoreState,
    MAX_RESPONSE_FRAME, PROTOCOL_VERSION, PayloadFormat, Request, Response, Scheme, SecretBytes,
    Status,
};
use serde_bytes::ByteBuf;

fn signature(scheme: Scheme, bytes: &[u8]) -> Response {
    Response::Signature {
        scheme,
        signature: bytes.to_vec(),
    }
}

fn key_info(name: &str) -> KeyInfo {
    KeyInfo {
        name: name.into(),
        scheme: Scheme::Ed25519,
        bits: 256,
        public_key: Some(vec![0x30, 0x2a]),
        fingerprint: Some("SHA256:abc".into()),
        api_key: Some("api-key-id".into()),
        format: Some(PayloadFormat::Binance),
    }
}

#[test]
fn handshake_sends_our_version_and_keeps_the_daemons_frame_limit() {
    let daemon = FakeDaemon::script(vec![hello(1234)]);
    let client = Client::connect(&daemon.path).unwrap();
    assert_eq!(client.max_frame(), 1234);
    assert!(!client.is_broken());
    drop(client);
    assert_eq!(
        daemon.requests(),
        vec![Request::Hello {
            version: PROTOCOL_VERSION
        }]
    );
}

#[test]
fn sign_round_trips_payload_and_signature_bytes_intact() {
    let sig: Vec<u8> = (0..=255u8).rev().collect();
    let daemon = FakeDaemon::start(vec![answer(signature(Scheme::Ed25519, &sig))]);
    let mut client = Client::connect(&daemon.path).unwrap();
    let payload: Vec<u8> = (0..=255u8).chain([0, 0, 0xff]).collect();

    let got = client.sign("binance-main", &payload).unwrap();
    assert_eq!(got.as_bytes(), &sig[..]);
    assert_eq!(got.scheme(), Scheme::Ed25519);
    drop(client);

    let requests = daemon.requests();
    assert_eq!(
        requests[1],
        Request::Sign {
            key: "binance-main".into(),
            payload
        }
    );
}

#[test]
fn sign_batch_is_one_round_trip_with_signatures_in_order() {
    let daemon = FakeDaemon::start(vec![answer(Response::Signatures {
        scheme: Scheme::HmacSha256,
        signatures: vec![ByteBuf::from(vec![1]), ByteBuf::from(vec![2, 2])],
    })]);
    let mut client = Client::connect(&daemon.path).unwrap();
    let got = client.sign_batch("k", &[b"first", b"second"]).unwrap();
    let got: Vec<Vec<u8>> = got.into_iter().map(|s| s.into_bytes()).collect();
    assert_eq!(got, vec![vec![1], vec![2, 2]]);
    drop(client);

    let requests = daemon.requests();
    assert_eq!(requests.len(), 2, "hello and one batch: {requests:?}");
    assert_eq!(
        requests[1],
        Request::SignBatch {
            key: "k".into(),
            payloads: vec![ByteBuf::from(&b"first"[..]), ByteBuf::from(&b"second"[..])],
        }
    );
}

#[test]
fn sign_batch_with_a_signature_missing_is_an_error_not_a_misaligned_result() {
    let daemon = FakeDaemon::start(vec![
        answer(Response::Signatures {
            scheme: Scheme::Ed25519,
            signatures: vec![ByteBuf::from(vec![1])],
        }),
        answer(signature(Scheme::Ed25519, &[9])),
    ]);
    let mut client = Client::connect(&daemon.path).unwrap();
    let err = client.sign_batch("k", &[b"a", b"b"]).unwrap_err();
    assert!(
        matches!(err, Error::UnexpectedResponse { expected } if expected.contains("per payload")),
        "{err:?}"
    );
    // The frame was read whole, so the connection is still in step.
    assert_eq!(client.sign("k", b"c").unwrap().as_bytes(), &[9]);
}

#[test]
fn a_daemon_error_becomes_error_daemon_with_its_code_and_message() {
    let daemon = FakeDaemon::start(vec![
        answer(Response::error(ErrorCode::Locked, "keystore is locked")),
        answer(Response::error(
            ErrorCode::UnknownKey,
            "no key named \"nope\"",
        )),
        answer(signature(Scheme::Ed25519, &[7])),
    ]);
    let mut client = Client::connect(&daemon.path).unwrap();

    let err = client.sign("k", b"x").unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Locked));
    assert_eq!(err.to_string(), "keystore is locked");
    assert!(matches!(
        err,
        Error::Daemon { code: ErrorCode::Locked, ref message } if message == "keystore is locked"
    ));

    let err = client.public_key("nope").unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownKey));

    // A daemon error leaves the connection usable.
    assert!(!client.is_broken());
    assert_eq!(client.sign("k", b"x").unwrap().as_bytes(), &[7]);
}

#[test]
fn an_oversized_request_fails_locally_and_the_connection_stays_usable() {
    let daemon = FakeDaemon::script(vec![hello(64), answer(signature(Scheme::Ed25519, &[1]))]);
    let mut client = Client::connect(&daemon.path).unwrap();

    let err = client.sign("k", &[0u8; 100]).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::TooLarge));
    match err {
        Error::TooLarge { len, max } => {
            assert!(len > 100, "{len}");
            assert_eq!(max, 64);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(!client.is_broken());

    assert_eq!(client.sign("k", b"small").unwrap().as_bytes(), &[1]);
    drop(client);
    // The daemon never saw the oversized request.
    let requests = daemon.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(
        requests[1],
        Request::Sign {
            key: "k".into(),
            payload: b"small".to_vec()
        }
    );
}

#[test]
fn eof_before_a_response_is_disconnected_and_the_next_call_reconnects() {
    let daemon = FakeDaemon::connections(vec![
        vec![Box::new(|_| Reply::Close)],
        vec![answer(Response::Keys {
            keys: vec![key_info("k")],
        })],
    ]);
    let mut client = Client::connect(&daemon.path).unwrap();
    assert!(matches!(
        client.sign("k", b"x").unwrap_err(),
        Error::Disconnected
    ));
    assert!(client.is_broken());
    // A new connection, with its own handshake; the failed request is not sent again.
    assert_eq!(client.list().unwrap(), vec![key_info("k")]);
    assert!(!client.is_broken());
    drop(client);
    assert_eq!(
        daemon.requests_by_connection(),
        vec![
            vec![
                Request::Hello {
                    version: PROTOCOL_VERSION
                },
                Request::Sign {
                    key: "k".into(),
                    payload: b"x".to_vec()
                }
            ],
            vec![
                Request::Hello {
                    version: PROTOCOL_VERSION
                },
                Request::List
            ],
        ]
    );
}

#[test]
fn a_short_or_undecodable_response_drops_the_connection_and_the_next_call_reconnects() {
    // The header announces 100 bytes, 5 come, then the daemon closes: a short read.
    let mut short = 100u32.to_be_bytes().to_vec();
    short.extend_from_slice(b"abcde");
    // A whole frame whose body is no response (no such variant).
    let mut garbage = 3u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(&[0xff, 0xff, 0xff]);
    let daemon = FakeDaemon::connections(vec![
        vec![Box::new(move |_| Reply::RawThenClose(short))],
        vec![
            Box::new(move |_| Reply::Raw(garbage)),
            // Never reached: after the garbage the client does not trust this connection.
            answer(signature(Scheme::Ed25519, &[0xee])),
        ],
        vec![answer(signature(Scheme::Ed25519, &[3]))],
    ]);
    let mut client = Client::connect(&daemon.path).unwrap();

    let err = client.sign("k", b"first").unwrap_err();
    assert!(matches!(err, Error::Disconnected), "{err:?}");
    assert!(client.is_broken());

    let err = client.sign("k", b"second").unwrap_err();
    assert!(matches!(err, Error::Protocol(_)), "{err:?}");
    assert!(client.is_broken());

    assert_eq!(client.sign("k", b"third").unwrap().as_bytes(), &[3]);
    drop(client);
    let sent: Vec<usize> = daemon
        .requests_by_connection()
        .iter()
        .map(Vec::len)
        .collect();
    // Hello and one request on each connection: nothing was sent twice.
    assert_eq!(sent, vec![2, 2, 2]);
}

#[test]
fn a_client_made_from_a_stream_reports_disconnected_after_a_failure_half_way() {
    let daemon = FakeDaemon::start(vec![Box::new(|_| {
        Reply::After(Duration::from_millis(300), Response::Ok)
    })]);
    let stream = std::os::unix::net::UnixStream::connect(&daemon.path).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut client = Client::from_stream(stream).unwrap();
    let err = client.lock().unwrap_err();
    assert!(matches!(err, Error::Io(_)), "{err:?}");
    assert!(client.is_broken());
    // No path to reconnect to.
    assert!(matches!(client.list().unwrap_err(), Error::Disconnected));
    assert!(matches!(client.list().unwrap_err(), Error::Disconnected));
    drop(client);
    assert_eq!(daemon.requests().len(), 2);
}

#[test]
fn an_unsupported_version_is_a_typed_error() {
    // Refused at version 3 and at version 2, the oldest the client offers.
    let refusal = || {
        answer(Response::error(
            ErrorCode::UnsupportedVersion,
            "this daemon speaks protocol version 7",
        ))
    };
    let daemon = FakeDaemon::script(vec![refusal(), refusal()]);
    let err = Client::connect(&daemon.path).unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedVersion { daemon } if daemon.contains("version 7")),
        "{err:?}"
    );
    assert_eq!(err.code(), Some(ErrorCode::UnsupportedVersion));
    assert!(err.to_string().contains("version 7"), "{err}");

    // A daemon that answers Hello with a version other than ours is refused too.
    let daemon = FakeDaemon::script(vec![answer(Response::Hello {
        version: PROTOCOL_VERSION + 1,
        max_frame: DEFAULT_MAX_FRAME,
    })]);
    let err = Client::connect(&daemon.path).unwrap_err();
    assert!(matches!(err, Error::UnsupportedVersion { .. }), "{err:?}");

    // Any other error to Hello is the daemon's error, e.g. at its connection limit.
    let daemon = FakeDaemon::script(vec![answer(Response::error(
        ErrorCode::Unavailable,
        "too many connections",
    ))]);
    let err = Client::connect(&daemon.path).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unavailable));
}

#[test]
fn a_daemon_error_sent_before_it_closes_survives_a_failed_write() {
    // A daemon whose limit is high enough that the client sends a big request, but which
    // refuses it after the header alone and closes without reading the body.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyward.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let daemon = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        assert!(matches!(
            common::read_request(&mut stream),
            Some(Request::Hello { .. })
        ));
        let hello = common::welcome(64 * 1024 * 1024);
        stream
            .write_all(&encode_response(&hello, u32::MAX).unwrap())
            .unwrap();
        let mut header = [0u8; HEADER_LEN];
        stream.read_exact(&mut header).unwrap();
        let refusal = Response::error(ErrorCode::TooLarge, "request exceeds 64 KiB");
        stream
            .write_all(&encode_response(&refusal, u32::MAX).unwrap())
            .unwrap();
        // Dropping the stream with the body unread resets the client's side.
    });

    let mut client = Client::connect(&path).unwrap();
    // Far more than the socket buffers hold, so the write is still going when the daemon
    // closes.
    let err = client.sign("k", &vec![0u8; 8 * 1024 * 1024]).unwrap_err();
    daemon.join().unwrap();
    assert_eq!(err.code(), Some(ErrorCode::TooLarge), "{err:?}");
    assert_eq!(err.to_string(), "request exceeds 64 KiB");
    // The daemon has closed; the client does not use the connection again but reconnects,
    // and here nobody listens any more.
    assert!(client.is_broken());
    assert!(matches!(
        client.status().unwrap_err(),
        Error::Connect { path: ref tried, .. } if *tried == path
    ));
}

#[test]
fn a_timed_out_call_is_not_resent_and_the_next_call_reconnects_instead_of_reading_a_stale_answer() {
    let daemon = FakeDaemon::connections(vec![
        vec![Box::new(|_| {
            Reply::After(Duration::from_millis(300), signature(Scheme::Ed25519, &[1]))
        })],
        vec![answer(signature(Scheme::Ed25519, &[2]))],
    ]);
    let mut client = Client::connect(&daemon.path).unwrap();
    client.set_timeout(Some(Duration::from_millis(50))).unwrap();

    let err = client.sign("k", b"first").unwrap_err();
    assert!(matches!(err, Error::Io(_)), "{err:?}");
    assert_eq!(err.to_string(), "timed out waiting for keywardd");
    assert!(client.is_broken());
    thread::sleep(Duration::from_millis(400));
    // The answer to "first" has been sent by now; it must not become the answer to
    // "second", which goes on a new connection (with the same short timeout).
    assert_eq!(client.sign("k", b"second").unwrap().as_bytes(), &[2]);
    assert!(!client.is_broken());
    drop(client);
    let requests = daemon.requests_by_connection();
    let payloads: Vec<Vec<&[u8]>> = requests
        .iter()
        .map(|connection| {
            connection
                .iter()
                .filter_map(|request| match request {
                    Request::Sign { payload, .. } => Some(&payload[..]),
                    _ => None,
                })
                .collect()
        })
        .collect();
    assert_eq!(payloads, vec![vec![&b"first"[..]], vec![&b"second"[..]]]);
}

#[test]
fn a_response_of_the_wrong_kind_names_what_was_expected() {
    let daemon = FakeDaemon::start(vec![
        answer(Response::Ok),
        answer(Response::Keys { keys: vec![] }),
    ]);
    let mut client = Client::connect(&daemon.path).unwrap();
    let err = client.list().unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnexpectedResponse {
                expected: "key list"
            }
        ),
        "{err:?}"
    );
    let err = client.sign("k", b"x").unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnexpectedResponse {
                expected: "signature"
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("expected signature"), "{err}");
}

#[test]
fn a_response_above_the_response_limit_is_refused_before_its_body() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyward.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let daemon = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        common::read_request(&mut stream).unwrap();
        // Only a header, announcing one byte more than the client accepts.
        stream
            .write_all(&(MAX_RESPONSE_FRAME + 1).to_be_bytes())
            .unwrap();
        // Wait for the client to go away.
        let _ = stream.read(&mut [0u8; 1]);
    });
    let err = Client::connect(&path).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Protocol(DecodeError::Frame(frame::FrameError::TooLarge { .. }))
        ),
        "{err:?}"
    );
    daemon.join().unwrap();
}

#[test]
fn admin_calls_send_what_they_are_given_and_map_the_answers() {
    let status = Status {
        state: KeystoreState::Unlocked,
        keys: 2,
        idle_lock_in: Some(60),
        max_unlock_in: None,
        unreadable: vec![],
    };
    let daemon = FakeDaemon::start(vec![
        answer(Response::Ok),
        answer(Response::Ok),
        answer(Response::Key {
            key: key_info("imported"),
        }),
        answer(Response::Key {
            key: key_info("generated"),
        }),
        answer(Response::Keys {
            keys: vec![key_info("generated"), key_info("imported")],
        }),
        answer(Response::Status(status.clone())),
        answer(Response::Ok),
        answer(Response::Ok),
        answer(Response::Ok),
    ]);
    let mut client = Client::connect(&daemon.path).unwrap();
    let secret = |s: &str| SecretBytes::new(s.as_bytes().to_vec());

    client.init(secret("first passphrase")).unwrap();
    client.unlock(secret("first passphrase")).unwrap();
    let info = client
        .import(
            "imported",
            Some(Scheme::HmacSha256),
            secret("hmac secret"),
            None,
            Some("api-key-id".into()),
            None,
        )
        .unwrap();
    assert_eq!(info.name, "imported");
    let info = client
        .generate(
            "generated",
            KeyKind::Ed25519,
            None,
            Some(PayloadFormat::Okx),
        )
        .unwrap();
    assert_eq!(info.name, "generated");
    assert_eq!(client.list().unwrap().len(), 2);
    assert_eq!(client.status().unwrap(), status);
    client.remove("imported").unwrap();
    client
        .change_passphrase(secret("first passphrase"), secret("second passphrase"))
        .unwrap();
    client.lock().unwrap();
    drop(client);

    let requests = daemon.requests();
    assert_eq!(
        requests[1..],
        [
            Request::Init {
                passphrase: secret("first passphrase")
            },
            Request::Unlock {
                passphrase: secret("first passphrase")
            },
            Request::Import {
                name: "imported".into(),
                scheme: Some(Scheme::HmacSha256),
                material: secret("hmac secret"),
                pem_passphrase: None,
                api_key: Some("api-key-id".into()),
                format: None,
            },
            Request::Generate {
                name: "generated".into(),
                kind: KeyKind::Ed25519,
                api_key: None,
                format: Some(PayloadFormat::Okx),
            },
            Request::List,
            Request::Status,
            Request::Remove {
                name: "imported".into()
            },
            Request::ChangePassphrase {
                old: secret("first passphrase"),
                new: secret("second passphrase"),
            },
            Request::Lock,
        ]
    );
}

#[test]
fn connecting_to_a_missing_socket_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.sock");
    let err = Client::connect(&path).unwrap_err();
    assert!(
        matches!(&err, Error::Connect { path: p, .. } if *p == path),
        "{err:?}"
    );
    let shown = err.to_string();
    assert!(shown.contains(&*path.to_string_lossy()), "{shown}");
    assert!(shown.contains("daemon running"), "{shown}");
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn binance_signed_query_with_an_hmac_key_appends_lowercase_hex() {
    let daemon = FakeDaemon::start(vec![
        answer(signature(Scheme::HmacSha256, &[0xAB, 0xCD, 0x01])),
        answer(signature(Scheme::HmacSha256, &[0x0F])),
    ]);
    let mut client = Client::connect(&daemon.path).unwrap();
    let query = "symbol=BTCUSDT&side=BUY&timestamp=1700000000000";
    assert_eq!(
        binance::signed_query(&mut client, "hmac", query, "").unwrap(),
        format!("{query}&signature=abcd01")
    );
    assert_eq!(
        binance::signed_query(&mut client, "hmac", "", "").unwrap(),
        "signature=0f"
    );
    drop(client);
    let requests = daemon.requests();
    assert_eq!(
        requests[1],
        Request::Sign {
            key: "hmac".into(),
            payload: query.as_bytes().to_vec()
        }
    );
    assert_eq!(
        requests[2],
        Request::Sign {
            key: "hmac".into(),
            payload: vec![]
        }
    );
}

#[test]
fn binance_signed_query_with_an_ed25519_key_appends_percent_encoded_base64() {
    // base64 of these bytes is "+/+/+/8=": every character Binance needs escaped.
    let sig = [0xfb, 0xff, 0xbf, 0xfb, 0xff];
    let daemon = FakeDaemon::start(vec![answer(signature(Scheme::Ed25519, &sig))]);
    let mut client = Client::connect(&daemon.path).unwrap();
    let got = binance::signed_query(&mut client, "ed", "timestamp=1", "").unwrap();
    assert_eq!(got, "timestamp=1&signature=%2B%2F%2B%2F%2B%2F8%3D");
}

/// `keyward_client::binance` moved to `exchanges::binance`; code written against the old path
/// still compiles (with a deprecation warning) and signs the same way.
#[test]
#[allow(deprecated)]
fn the_old_binance_path_still_compiles_and_signs() {
    let daemon = FakeDaemon::start(vec![answer(signature(Scheme::HmacSha256, &[0xAB]))]);
    let mut client = Client::connect(&daemon.path).unwrap();
    assert_eq!(
        keyward_client::binance::signed_query(&mut client, "hmac", "a=1").unwrap(),
        "a=1&signature=ab"
    );
}

#[test]
fn a_version_2_daemon_is_spoken_to_in_version_2() {
    // An older keywardd refuses Hello 3; the client says Hello 2 on the same connection.
    let daemon = FakeDaemon::script(vec![
        Box::new(|request| {
            assert_eq!(request, &Request::Hello { version: 3 });
            Reply::Send(Response::error(
                ErrorCode::UnsupportedVersion,
                "protocol version 3 is not supported; this daemon speaks version 2",
            ))
        }),
        Box::new(|request| {
            assert_eq!(request, &Request::Hello { version: 2 });
            Reply::Send(Response::Hello {
                version: 2,
                max_frame: 2048,
            })
        }),
        answer(Response::error(
            ErrorCode::RateLimited,
            "rate limit of key \"k\" reached (1/s); retry in 42 ms",
        )),
    ]);
    let mut client = Client::connect(&daemon.path).unwrap();
    assert_eq!((client.protocol_version(), client.max_frame()), (2, 2048));
    assert!(client.daemon().is_none());
    let err = client.sign("k", b"x").unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_millis(42)));
    // Version 3 requests are refused here, and never reach the old daemon.
    let err = client.stats().unwrap_err();
    assert!(matches!(err, Error::UnsupportedVersion { .. }), "{err:?}");
    assert!(err.to_string().contains("no stats request"), "{err}");
    assert!(!client.is_broken());
    drop(client);
    assert_eq!(daemon.requests().len(), 3, "stats must not be sent");
}

#[test]
fn the_default_timeout_ends_a_call_the_daemon_never_answers() {
    // The daemon reads the request and never answers (a backlogged or stuck daemon).
    let daemon = FakeDaemon::start(vec![Box::new(|_| {
        Reply::After(Duration::from_secs(8), Response::Ok)
    })]);
    let mut client = Client::connect(&daemon.path).unwrap();
    let started = std::time::Instant::now();
    let err = client.status().unwrap_err();
    let took = started.elapsed();
    assert!(matches!(&err, Error::Io(_)), "{err:?}");
    assert_eq!(err.to_string(), "timed out waiting for keywardd");
    assert!(
        took >= keyward_client::DEFAULT_TIMEOUT - Duration::from_millis(100)
            && took < keyward_client::DEFAULT_TIMEOUT + Duration::from_secs(2),
        "{took:?}"
    );
    assert!(
        client.is_broken(),
        "a late answer must not be taken for the next call's"
    );
}
