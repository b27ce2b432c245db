//! SIGTERM is a graceful stop: requests in flight are answered, then the daemon exits 0 and
//! removes its socket.
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::thread;
use std::time::{Duration, Instant};

use keyward_tests::Daemon;
use keyward_tests::verify::{Check, assert_python_verifies_all};

/// The largest batch the daemon takes. At a quarter of a millisecond or more per RSA-2048
/// signature it keeps the daemon busy for several times the 50 ms after which the test
/// sends SIGTERM (and a slower machine only widens the gap).
const PAYLOADS: usize = 1024;

#[test]
fn sigterm_lets_a_request_in_flight_finish_then_exits_0_and_removes_the_socket() {
    let mut daemon = Daemon::start(&[]);
    let public = daemon.generate("rsa", "rsa-2048");
    let mut client = daemon.client();
    let payloads: Vec<Vec<u8>> = (0..PAYLOADS)
        .map(|i| format!("symbol=BTCUSDT&n={i}").into_bytes())
        .collect();
    let batch = payloads.clone();
    let worker = thread::spawn(move || {
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        let started = Instant::now();
        let result = client.sign_batch("rsa", &refs);
        (result, started.elapsed())
    });
    thread::sleep(Duration::from_millis(50));
    let asked = Instant::now();
    let status = daemon.stop();
    let (result, took) = worker.join().unwrap();
    let signatures = result.unwrap_or_else(|err| {
        panic!(
            "SIGTERM cut off the request in flight ({err}); log:\n{}",
            daemon.log()
        )
    });
    assert_eq!(signatures.len(), PAYLOADS);
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        daemon.log()
    );
    assert!(!daemon.socket().exists(), "the socket file is still there");
    eprintln!(
        "batch took {took:?}; the daemon exited {:?} after SIGTERM",
        asked.elapsed()
    );
    let checks: Vec<Check<'_>> = [0, PAYLOADS - 1]
        .iter()
        .map(|&i| {
            Check::new(
                "rsa-pkcs1v15-sha256",
                &public,
                &payloads[i],
                signatures[i].as_bytes(),
            )
        })
        .collect();
    assert_python_verifies_all(&checks);
}

#[test]
fn after_sigterm_new_connections_are_refused() {
    let mut daemon = Daemon::start(&[]);
    daemon.generate("ed", "ed25519");
    assert!(daemon.stop().success());
    let out = daemon.keyward(["sign", "ed", "x"]);
    assert!(
        out.error_line(3)
            .contains(daemon.socket().to_str().unwrap())
    );
}

#[test]
fn idle_connections_do_not_hold_up_sigterm_and_read_end_of_file() {
    // Each connection is served by a thread blocked in `read`: shutdown must wake them
    // rather than wait out the 10 s drain for connections that have nothing in flight.
    let mut daemon = Daemon::start(&[]);
    daemon.generate("ed", "ed25519");
    let mut idle: Vec<_> = (0..8).map(|_| daemon.client()).collect();
    idle[0].sign("ed", b"warm").unwrap();
    let asked = Instant::now();
    let status = daemon.stop();
    let took = asked.elapsed();
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        daemon.log()
    );
    assert!(
        took < Duration::from_secs(5),
        "keywardd took {took:?} to stop with idle connections open (the drain waits 10 s)"
    );
    for client in &mut idle {
        assert!(
            client.sign("ed", b"after").is_err(),
            "a stopped daemon signed"
        );
    }
}
