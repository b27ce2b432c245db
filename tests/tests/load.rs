//! Load and hostile connections (issue 16 §4), sized for a debug build on 2 cores:
//! - 256 clients × 200 signatures across every scheme, each checked by Python's
//!   `cryptography` (an implementation that shares no code with keyward); p50/p99 printed;
//! - 2,000 connections from one uid, idle or half-sent, while another uid and an admin are
//!   answered within 1 s;
//! - 10,000 connections of random bytes and 10,000 random frames of a valid length, every
//!   one answered or closed, RSS afterwards within 10 %.
//!
//! Run with `--nocapture` to see the figures (docs/SECURITY.md, "Tested", quotes them).
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use keyward_client::{ErrorCode, Response, Scheme, SecretBytes};
use keyward_tests::hostile::{Holder, keyward_as, rss_kib};
use keyward_tests::raw::{RawConn, Reply};
use keyward_tests::verify::{Check, assert_python_verifies_all, python_batch};
use keyward_tests::{Daemon, is_root};

const CLIENTS: usize = 256;
const SIGNATURES_PER_CLIENT: usize = 200;

/// (key name, verify.py scheme): every scheme keyward signs with.
const KEYS: [(&str, &str); 5] = [
    ("ed", "ed25519"),
    ("rsa", "rsa-pkcs1v15-sha256"),
    ("hmac256", "hmac-sha256"),
    ("hmac512", "hmac-sha512"),
    ("ecdsa", "ecdsa-p256-sha256"),
];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[test]
fn two_hundred_fifty_six_clients_sign_two_hundred_times_each_and_every_signature_verifies() {
    let daemon = Daemon::start(&[]);
    let mut key_files = Vec::new();
    for (name, scheme) in KEYS {
        let file = match scheme {
            "ed25519" => daemon.generate(name, "ed25519"),
            "rsa-pkcs1v15-sha256" => daemon.generate(name, "rsa-2048"),
            "ecdsa-p256-sha256" => daemon.generate(name, "ecdsa-p256"),
            hmac => {
                let secret = format!("load-test-{hmac}-secret-0123456789abcdef").into_bytes();
                let scheme = if hmac == "hmac-sha256" {
                    Scheme::HmacSha256
                } else {
                    Scheme::HmacSha512
                };
                daemon
                    .client()
                    .import(
                        name,
                        Some(scheme),
                        SecretBytes::new(secret.clone()),
                        None,
                        None,
                        None,
                    )
                    .unwrap();
                daemon.write(&format!("{name}.secret"), &secret)
            }
        };
        key_files.push(file);
    }

    // Every client connects first; all start at once. Client c's n-th signature uses key
    // (c + n) mod 5, so every client signs with every scheme, 40 times each.
    let start = Arc::new(Barrier::new(CLIENTS));
    let started = Instant::now();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let mut client = daemon.client();
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                (0..SIGNATURES_PER_CLIENT)
                    .map(|n| {
                        let key = (c + n) % KEYS.len();
                        let payload = format!(
                            "symbol=BTCUSDT&side=BUY&quantity={c}.{n}&timestamp=1700{c:03}{n:03}"
                        )
                        .into_bytes();
                        let asked = Instant::now();
                        let signature = client
                            .sign(KEYS[key].0, &payload)
                            .unwrap_or_else(|err| panic!("client {c} request {n}: {err}"))
                            .into_bytes();
                        (key, payload, signature, asked.elapsed())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<(usize, Vec<u8>, Vec<u8>, Duration)> = threads
        .into_iter()
        .flat_map(|thread| thread.join().unwrap())
        .collect();
    let wall = started.elapsed();
    assert_eq!(results.len(), CLIENTS * SIGNATURES_PER_CLIENT);

    let mut all: Vec<Duration> = results.iter().map(|r| r.3).collect();
    all.sort_unstable();
    println!(
        "load: {} clients x {} signatures = {} in {wall:.1?} ({:.0}/s); latency p50 {:?} p99 {:?} max {:?}",
        CLIENTS,
        SIGNATURES_PER_CLIENT,
        results.len(),
        results.len() as f64 / wall.as_secs_f64(),
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        all[all.len() - 1]
    );
    for (k, (name, scheme)) in KEYS.iter().enumerate() {
        let mut own: Vec<Duration> = results.iter().filter(|r| r.0 == k).map(|r| r.3).collect();
        own.sort_unstable();
        println!(
            "load:   {scheme:<20} ({name}): {} signatures, p50 {:?} p99 {:?}",
            own.len(),
            percentile(&own, 0.50),
            percentile(&own, 0.99)
        );
        assert_eq!(own.len(), CLIENTS * SIGNATURES_PER_CLIENT / KEYS.len());
    }

    // Every signature, checked by Python's cryptography in one batch.
    let checks: Vec<Check<'_>> = results
        .iter()
        .map(|(k, payload, signature, _)| {
            Check::new(KEYS[*k].1, &key_files[*k], payload, signature)
        })
        .collect();
    let verified = Instant::now();
    let answers = python_batch(&checks);
    let invalid = answers.iter().filter(|valid| !**valid).count();
    println!(
        "load: {} signatures checked by Python's cryptography in {:.1?}: {invalid} invalid",
        answers.len(),
        verified.elapsed()
    );
    assert_eq!(invalid, 0);
    // And the check can fail: one per scheme, with its payload tampered with.
    let sample: Vec<Check<'_>> = (0..KEYS.len()).map(|k| checks[k]).collect();
    assert_python_verifies_all(&sample);
}

const HOSTILE: u32 = 65533;
const BOT: u32 = 65534;
const PAYLOAD: &[u8] = b"symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1&timestamp=1700000000000";

#[test]
fn while_one_uid_holds_two_thousand_idle_or_half_sent_connections_another_uid_and_an_admin_are_answered_within_a_second()
 {
    if !is_root() {
        eprintln!("SKIPPED: it needs root to connect as other uids (CI runs the tests as root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keywardd.toml");
    std::fs::write(
        &config,
        format!("[keys.k]\nallow_uids = [{HOSTILE}, {BOT}]\n"),
    )
    .unwrap();
    // The default limits, as shipped.
    let mut daemon = Daemon::start(&["--config", config.to_str().unwrap()]);
    daemon.generate("k", "ed25519");
    daemon.open_permissions_to_everyone();

    let opened = Instant::now();
    let hostile = Holder::open(daemon.socket(), HOSTILE, 2000, true);
    println!(
        "hostile: uid {HOSTILE} opened 2000 connections (every second one half-sent: a 60,000-byte \
         length prefix and 1,000 bytes) in {:.1?}",
        opened.elapsed()
    );

    let mut worst_bot = Duration::ZERO;
    let mut worst_admin = Duration::ZERO;
    for _ in 0..3 {
        let asked = Instant::now();
        let out = keyward_as(&daemon, BOT, &["sign", "k"], Some(PAYLOAD));
        out.success();
        worst_bot = worst_bot.max(asked.elapsed());

        let asked = Instant::now();
        let mut admin = daemon.client();
        admin.status().unwrap();
        let lock = daemon.keyward(["lock"]);
        // An ephemeral daemon refuses to destroy its keys: the answer shows it was served.
        assert!(lock.stderr.contains("ephemeral"), "{lock:#?}");
        worst_admin = worst_admin.max(asked.elapsed());
    }
    println!(
        "hostile: meanwhile uid {BOT} signed (keyward sign, process start included) in at most \
         {worst_bot:.1?}, the admin's status + lock took at most {worst_admin:.1?}"
    );
    assert!(worst_bot < Duration::from_secs(1), "{worst_bot:?}");
    assert!(worst_admin < Duration::from_secs(1), "{worst_admin:?}");

    let held = hostile.release();
    println!(
        "hostile: of the 2000, {} were answered Unavailable and closed, {} closed, {} still open",
        held.answered, held.closed, held.open
    );
    // At most the per-uid cap (256) got places; the rest were answered and closed at once.
    assert!(held.answered >= 2000 - 256, "{held:?}");
    assert_eq!(held.answered + held.closed + held.open, 2000);
    daemon.assert_running();
}

/// xorshift64: reproducible garbage.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Sends random bytes (1–64 of them, no structure) on a fresh connection, closes the writing
/// half, and reads until the daemon closes (`read_reply` fails the test on an invalid frame
/// or after 5 s without an answer or a close). Returns how many replies came.
fn random_bytes_on_a_fresh_connection(daemon: &Daemon, rng: &mut Rng) -> usize {
    let mut conn = RawConn::connect(daemon.socket());
    let n = 1 + (rng.next() % 64) as usize;
    conn.send(&rng.bytes(n));
    conn.shutdown_write();
    let mut replies = 0;
    while let Reply::Response(_) = conn.read_reply() {
        replies += 1;
    }
    replies
}

/// Sends `frames` frames of a valid length (1–2048) and random body on one connection,
/// before any Hello, and reads one answer to each. A body that happens to be a Hello would
/// greet the connection; the caller then starts a new one.
fn random_frames_on_one_connection(daemon: &Daemon, rng: &mut Rng, frames: usize) -> usize {
    let mut conn = RawConn::connect(daemon.socket());
    for sent in 0..frames {
        let len = 1 + (rng.next() % 2048) as usize;
        conn.send_frame(&rng.bytes(len));
        match conn.read_reply() {
            // A body that happens to be a Hello of another version is refused as such.
            Reply::Response(Response::Error {
                code: ErrorCode::BadRequest | ErrorCode::UnsupportedVersion,
                ..
            }) => {}
            Reply::Response(Response::Hello { .. } | Response::Welcome(_)) => return sent + 1,
            other => panic!("garbage frame {sent} got {other:?}"),
        }
    }
    frames
}

#[test]
fn ten_thousand_garbage_frames_are_each_answered_or_closed_and_rss_returns_within_ten_percent() {
    let mut daemon = Daemon::start(&[]);
    let mut client = daemon.client();
    client
        .generate("ed", keyward_client::KeyKind::Ed25519, None, None)
        .unwrap();
    let before_sig = client.sign("ed", PAYLOAD).unwrap();
    drop(client);
    const THREADS: usize = 4;
    // Returns (connections of random bytes that got an answer before the close, frames of
    // random bodies answered): every one of the latter must be.
    let run = |per_thread_bytes: usize, per_thread_frames: usize, seed: u64| {
        thread::scope(|scope| {
            let workers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let daemon = &daemon;
                    scope.spawn(move || {
                        let mut rng = Rng(seed + t as u64 * 7919);
                        let answered = (0..per_thread_bytes)
                            .filter(|_| random_bytes_on_a_fresh_connection(daemon, &mut rng) > 0)
                            .count();
                        let mut left = per_thread_frames;
                        while left > 0 {
                            left -=
                                random_frames_on_one_connection(daemon, &mut rng, left.min(250));
                        }
                        (answered, per_thread_frames)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|worker| worker.join().unwrap())
                .fold((0, 0), |(a, f), (a2, f2)| (a + a2, f + f2))
        })
    };
    // Warm up (allocator arenas, thread stacks) with the same mix, then measure.
    run(100, 100, 1);
    let pid = daemon.pid();
    let before = rss_kib(pid);
    let started = Instant::now();
    let (answered, frames) = run(10_000 / THREADS, 10_000 / THREADS, 0x9E37_79B9_7F4A_7C15);
    let took = started.elapsed();
    sleep_until_quiet();
    let after = rss_kib(pid);
    println!(
        "garbage: 10,000 connections of random bytes ({answered} answered with an error frame \
         before the close, the rest closed: a header cut short) and {frames} random \
         valid-length frames (each answered BadRequest) in {took:.1?}; RSS {before} KiB \
         before, {after} KiB after ({:+.1} %)",
        (after as f64 - before as f64) * 100.0 / before as f64
    );
    assert_eq!(frames, 10_000);
    assert!(
        (after as f64) <= before as f64 * 1.10,
        "RSS grew from {before} KiB to {after} KiB"
    );
    daemon.assert_running();
    let mut client = daemon.client();
    assert_eq!(client.sign("ed", PAYLOAD).unwrap(), before_sig);
}

/// Lets the last connections' threads finish.
fn sleep_until_quiet() {
    thread::sleep(Duration::from_millis(300));
}
