//! Protocol version 3 end to end, and the version 2 clients a version 3 daemon still serves
//! (docs/PROTOCOL.md section 3): the real `keywardd`, spoken to byte by byte.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use keyward_protocol::{DEFAULT_MAX_FRAME, ErrorCode, KeystoreState, Request, Response};
use keyward_tests::raw::{RawConn, Reply};
use keyward_tests::{Daemon, keywardd_bin, run};

const PAYLOAD: &[u8] = b"symbol=BTCUSDT&side=BUY&timestamp=1700000000000";

fn error_code(reply: Reply) -> (ErrorCode, String) {
    match reply {
        Reply::Response(Response::Error { code, message }) => (code, message),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// A daemon whose key `rl` signs once, then is rate limited for ten seconds.
fn rate_limited_daemon() -> Daemon {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "[keys.rl]\nrate_per_sec = 0.1\nburst = 1\n").unwrap();
    let daemon = Daemon::start(&["--config", config.path().to_str().unwrap()]);
    daemon.generate("rl", "ed25519");
    daemon
}

#[test]
fn the_welcome_names_the_daemon_as_keywardd_version_does() {
    let daemon = Daemon::start(&[]);
    let client = daemon.client();
    assert_eq!(client.protocol_version(), 3);
    let welcome = client.daemon().expect("a version 3 daemon says who it is");
    assert_eq!(welcome.max_frame, DEFAULT_MAX_FRAME);
    let version = run(Command::new(keywardd_bin()).arg("--version"), None);
    version.success();
    let commit = welcome.daemon_commit.as_deref().unwrap_or("unknown");
    assert_eq!(
        version.stdout_text().trim(),
        format!("keywardd {} (commit {commit})", welcome.daemon_version)
    );
    assert_eq!(welcome.daemon_version, env!("CARGO_PKG_VERSION"));
}

#[test]
fn a_version_2_client_is_sent_only_what_version_2_has() {
    let daemon = rate_limited_daemon();
    let mut v2 = RawConn::connect(daemon.socket());
    assert_eq!(
        v2.request(&Request::Hello { version: 2 }),
        Reply::Response(Response::Hello {
            version: 2,
            max_frame: DEFAULT_MAX_FRAME
        })
    );
    // Status: version 2's Status, not StatusReport.
    match v2.request(&Request::Status) {
        Reply::Response(Response::Status(status)) => {
            assert_eq!(status.state, KeystoreState::Ephemeral);
            assert_eq!(status.keys, 1);
        }
        other => panic!("a version 2 client must get Status, got {other:?}"),
    }
    // The version 3 requests are refused, and the connection goes on.
    for request in [Request::Stats, Request::Reload] {
        let (code, message) = error_code(v2.request(&request));
        assert_eq!(code, ErrorCode::BadRequest, "{message}");
        assert!(message.contains("needs protocol version 3"), "{message}");
    }
    // A rate limit is the version 2 error, the wait only in its message.
    let sign = || Request::Sign {
        key: "rl".into(),
        payload: PAYLOAD.to_vec(),
    };
    assert!(matches!(
        v2.request(&sign()),
        Reply::Response(Response::Signature { .. })
    ));
    let (code, message) = error_code(v2.request(&sign()));
    assert_eq!(code, ErrorCode::RateLimited, "{message}");
    assert!(message.contains("retry in "), "{message}");
    // A batch beyond the burst: code 16, which a version 2 client decodes as an unknown code.
    let batch = Request::SignBatch {
        key: "rl".into(),
        payloads: vec![PAYLOAD.to_vec().into(); 2],
    };
    let (code, message) = error_code(v2.request(&batch));
    assert_eq!((code, code.as_u16()), (ErrorCode::BatchExceedsBurst, 16));
    assert!(message.contains("split it"), "{message}");

    // The same refusal on a version 3 connection carries the wait as a field.
    let (mut v3, _) = RawConn::connect_and_hello(daemon.socket());
    match v3.request(&sign()) {
        Reply::Response(Response::RateLimited {
            retry_after_ms,
            message,
        }) => {
            assert!((1..=10_000).contains(&retry_after_ms), "{retry_after_ms}");
            assert!(
                message.contains(&format!("retry in {retry_after_ms} ms")),
                "the field and the message disagree: {retry_after_ms} vs {message}"
            );
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    // And the typed client turns it into an error with the wait.
    let mut client = daemon.client();
    let err = client.sign("rl", PAYLOAD).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::RateLimited));
    let wait = err.retry_after().expect("a wait");
    assert!(wait.as_millis() >= 1 && wait.as_secs() <= 10, "{wait:?}");
}

#[test]
fn versions_the_daemon_does_not_speak_are_refused_and_the_connection_waits_for_another_hello() {
    let daemon = Daemon::start(&[]);
    let mut conn = RawConn::connect(daemon.socket());
    for version in [0, 1, 4, u32::MAX] {
        let (code, message) = error_code(conn.request(&Request::Hello { version }));
        assert_eq!(code, ErrorCode::UnsupportedVersion, "{version}: {message}");
        assert!(message.contains("speaks versions 2 to 3"), "{message}");
    }
    conn.hello();
    assert!(matches!(
        conn.request(&Request::Stats),
        Reply::Response(Response::Stats(_))
    ));
}
