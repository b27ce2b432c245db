//! The Rust clients after a call that failed half-way, against the real keywardd: the daemon
//! is stopped (SIGSTOP) while a request is on the connection, so the call times out and its
//! answer comes late. The next call must go on a new connection and get its own answer, not
//! the late one, and the timed-out request must not be sent again.
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::ErrorKind;
use std::thread::sleep;
use std::time::Duration;

use keyward_client::{AsyncClient, Error, KeyKind, Signature};
use keyward_tests::Daemon;
use nix::sys::signal::Signal;

const FIRST: &[u8] = b"symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1&timestamp=1700000000000";
const SECOND: &[u8] = b"symbol=BTCUSDT&side=SELL&type=MARKET&quantity=1&timestamp=1700000000001";

/// Short enough to keep the test quick, long enough for a loaded machine to answer a sign.
const TIMEOUT: Duration = Duration::from_millis(500);

/// A daemon with an Ed25519 key "k" (deterministic signatures: the expected ones can be
/// made in advance), and the signatures of FIRST and SECOND, asked on a connection of their
/// own.
fn daemon_and_signatures() -> (Daemon, Signature, Signature) {
    let daemon = Daemon::start(&[]);
    let mut admin = daemon.client();
    admin.generate("k", KeyKind::Ed25519, None, None).unwrap();
    let first = admin.sign("k", FIRST).unwrap();
    let second = admin.sign("k", SECOND).unwrap();
    assert_ne!(first.as_bytes(), second.as_bytes());
    (daemon, first, second)
}

#[track_caller]
fn assert_timed_out(err: &Error) {
    assert!(
        matches!(err, Error::Io(io) if matches!(io.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "expected a timeout, got {err:?}"
    );
}

/// The signatures the daemon counted (its `Stats`), to show no request was sent twice.
fn signatures_made(daemon: &Daemon) -> u64 {
    let stats = daemon.client().stats().unwrap();
    stats.signatures.iter().map(|counted| counted.count).sum()
}

#[test]
fn a_client_whose_call_timed_out_reconnects_and_gets_its_own_answer_not_the_late_one() {
    let (daemon, _first, second) = daemon_and_signatures();
    let mut client = daemon.client();
    client.set_timeout(Some(TIMEOUT)).unwrap();
    client.list().unwrap();
    let made = signatures_made(&daemon);

    daemon.freeze();
    assert_timed_out(&client.sign("k", FIRST).unwrap_err());
    assert!(client.is_broken());
    // Still stopped: reopening the connection fails too (its handshake times out), and the
    // next call tries again.
    assert_timed_out(&client.sign("k", SECOND).unwrap_err());
    assert!(client.is_broken());
    daemon.signal(Signal::SIGCONT);
    // Let the daemon answer FIRST on the old connection, late, if it still can.
    sleep(Duration::from_millis(200));

    let got = client.sign("k", SECOND).unwrap();
    assert_eq!(
        got.as_bytes(),
        second.as_bytes(),
        "not the signature of SECOND"
    );
    assert!(!client.is_broken());
    client.list().unwrap();
    // FIRST was signed at most once (the daemon read it before it was stopped, or after),
    // SECOND once: nothing was resent.
    let now = signatures_made(&daemon);
    assert!(
        (made + 1..=made + 2).contains(&now),
        "{made} signatures before, {now} after"
    );
}

#[test]
fn an_async_client_whose_call_timed_out_reconnects_and_gets_its_own_answer() {
    let (daemon, _first, second) = daemon_and_signatures();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = AsyncClient::connect(daemon.socket()).await.unwrap();
        client.set_timeout(Some(TIMEOUT));
        client.list().await.unwrap();

        daemon.freeze();
        assert_timed_out(&client.sign("k", FIRST).await.unwrap_err());
        assert!(client.is_broken());
        daemon.signal(Signal::SIGCONT);
        tokio::time::sleep(Duration::from_millis(200)).await;

        let got = client.sign("k", SECOND).await.unwrap();
        assert_eq!(got.as_bytes(), second.as_bytes());
        assert!(!client.is_broken());
    });
}
