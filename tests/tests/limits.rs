//! The limits on connections (issue 16), one test per deadline and per cap, each on a daemon
//! configured with small limits so that it fails without the limit instead of waiting for
//! the default one: `RawConn` gives up after 5 s, and every deadline here is 1–3 s.
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use keyward_client::{Client, Error, ErrorCode, KeyKind, Request, Response};
use keyward_tests::hostile::{Holder, keyward_as};
use keyward_tests::raw::{RawConn, Reply, payload_for_frame_body};
use keyward_tests::{Daemon, is_root};

const PAYLOAD: &[u8] = b"symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1&timestamp=1700000000000";

/// A daemon started with `config` as its keywardd.toml (kept in a directory of its own).
fn daemon_with(config: &str) -> (Daemon, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("keywardd.toml");
    std::fs::write(&path, config).unwrap();
    let daemon = Daemon::start(&["--config", path.to_str().unwrap()]);
    (daemon, dir)
}

const DEADLINES: &str =
    "[daemon]\nhello_timeout_secs = 1\nframe_timeout_secs = 1\nidle_timeout_secs = 3\n";

#[track_caller]
fn assert_unavailable(reply: Reply, naming: &str) {
    match reply {
        Reply::Response(Response::Error {
            code: ErrorCode::Unavailable,
            message,
        }) => assert!(message.contains(naming), "{message:?} should name {naming}"),
        other => panic!("expected an Unavailable error naming {naming}, got {other:?}"),
    }
}

#[test]
fn a_connection_that_never_sends_its_first_request_is_closed_after_hello_timeout() {
    let (daemon, _config) = daemon_with(DEADLINES);
    let started = Instant::now();
    let mut conn = RawConn::connect(daemon.socket());
    assert_unavailable(conn.read_reply(), "hello_timeout_secs");
    conn.assert_closed();
    let took = started.elapsed();
    println!("hello_timeout_secs = 1: a silent connection was closed after {took:.2?}");
    // Not the idle timeout (3 s): the first request has a deadline of its own.
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "closed after {took:?}"
    );
    assert!(daemon.log().contains("hello_timeout_secs"));
}

#[test]
fn a_frame_stalled_right_after_its_header_is_closed_after_frame_timeout() {
    let (daemon, _config) = daemon_with(DEADLINES);
    let (mut conn, _) = RawConn::connect_and_hello(daemon.socket());
    // A whole header and nothing more: the old code waited for the body with no deadline.
    conn.send(&100u32.to_be_bytes());
    let started = Instant::now();
    assert_eq!(conn.read_reply(), Reply::Closed);
    let took = started.elapsed();
    println!(
        "frame_timeout_secs = 1: a frame stalled after its header was closed after {took:.2?}"
    );
    assert!(took < Duration::from_millis(2500), "closed after {took:?}");
    assert!(
        daemon.log().contains("frame_timeout_secs"),
        "{}",
        daemon.log()
    );
}

#[test]
fn a_frame_trickling_in_byte_by_byte_is_closed_after_frame_timeout() {
    let (daemon, _config) = daemon_with(DEADLINES);
    let (mut conn, _) = RawConn::connect_and_hello(daemon.socket());
    // Slowloris: a byte every 200 ms keeps every single read short of any per-read timeout
    // (and of the idle one); only a deadline for the whole frame ends it.
    conn.send(&100u32.to_be_bytes());
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        conn.send(&[1]);
        sleep(Duration::from_millis(200));
    }
    // Closed long ago: the end of the stream is already there.
    let asked = Instant::now();
    assert_eq!(conn.read_reply(), Reply::Closed);
    assert!(
        asked.elapsed() < Duration::from_millis(500),
        "the daemon was still reading the trickle after 3 s"
    );
}

#[test]
fn a_connection_idle_between_requests_is_closed_after_idle_timeout_with_a_reason() {
    let (daemon, _config) = daemon_with(DEADLINES);
    let (mut conn, _) = RawConn::connect_and_hello(daemon.socket());
    assert!(matches!(
        conn.request(&Request::List),
        Reply::Response(Response::Keys { .. })
    ));
    let started = Instant::now();
    assert_unavailable(conn.read_reply(), "idle_timeout_secs");
    conn.assert_closed();
    let took = started.elapsed();
    println!("idle_timeout_secs = 3: an idle connection was closed after {took:.2?}");
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_millis(4500),
        "closed after {took:?}"
    );
}

/// A daemon that closes connections idle for a second, with an Ed25519 key "k".
fn idle_daemon() -> (Daemon, tempfile::TempDir) {
    let (daemon, config) = daemon_with("[daemon]\nidle_timeout_secs = 1\n");
    daemon
        .client()
        .generate("k", KeyKind::Ed25519, None, None)
        .unwrap();
    (daemon, config)
}

/// Past the daemon's idle timeout (1 s), with a margin.
const PAST_IDLE: Duration = Duration::from_millis(1600);

#[track_caller]
fn assert_closed_for_idleness(daemon: &Daemon, closes: usize) {
    let log = daemon.log();
    let seen = log.matches("(idle_timeout_secs)").count();
    assert!(
        seen >= closes,
        "the daemon closed {seen} idle connections, expected {closes}:\n{log}"
    );
}

#[test]
fn a_client_that_sat_past_the_idle_timeout_reconnects_and_signs() {
    // A bot that trades every 15 minutes holds one client; the daemon closed its connection
    // in between. The old client raised the daemon's idle notice on the next order.
    let (daemon, _config) = idle_daemon();
    let mut client = daemon.client();
    client.sign("k", PAYLOAD).unwrap();
    for round in 1..=2 {
        sleep(PAST_IDLE);
        assert_closed_for_idleness(&daemon, round);
        let signature = client.sign("k", PAYLOAD).unwrap();
        assert_eq!(signature.as_bytes().len(), 64);
        assert!(!client.is_broken());
    }
    // A timeout set on the client is kept on the reopened connection.
    client.set_timeout(Some(Duration::from_secs(7))).unwrap();
    sleep(PAST_IDLE);
    client.list().unwrap();
}

#[test]
fn an_async_client_that_sat_past_the_idle_timeout_reconnects_and_signs() {
    let (daemon, _config) = idle_daemon();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = keyward_client::AsyncClient::connect(daemon.socket())
            .await
            .unwrap();
        client.sign("k", PAYLOAD).await.unwrap();
        for round in 1..=2 {
            tokio::time::sleep(PAST_IDLE).await;
            assert_closed_for_idleness(&daemon, round);
            let signature = client.sign("k", PAYLOAD).await.unwrap();
            assert_eq!(signature.as_bytes().len(), 64);
            assert!(!client.is_broken());
        }
    });
}

#[test]
fn a_client_made_from_a_stream_cannot_reconnect_and_reports_disconnected() {
    let (daemon, _config) = idle_daemon();
    let stream = std::os::unix::net::UnixStream::connect(daemon.socket()).unwrap();
    let mut client = Client::from_stream(stream).unwrap();
    client.list().unwrap();
    sleep(PAST_IDLE);
    assert!(matches!(
        client.sign("k", PAYLOAD).unwrap_err(),
        Error::Disconnected
    ));
    assert!(client.is_broken());
    assert!(matches!(client.list().unwrap_err(), Error::Disconnected));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let stream = tokio::net::UnixStream::connect(daemon.socket())
            .await
            .unwrap();
        let mut client = keyward_client::AsyncClient::from_stream(stream)
            .await
            .unwrap();
        client.list().await.unwrap();
        tokio::time::sleep(PAST_IDLE).await;
        assert!(matches!(
            client.sign("k", PAYLOAD).await.unwrap_err(),
            Error::Disconnected
        ));
        assert!(client.is_broken());
    });
}

#[test]
fn a_client_whose_daemon_restarted_reconnects_and_one_that_cannot_says_why() {
    let (mut daemon, config) = idle_daemon();
    let mut client = daemon.client();
    client.list().unwrap();
    let socket = daemon.socket().to_owned();
    daemon.stop();
    // The daemon is gone: the call fails to reconnect, with the reason, and sends nothing.
    assert!(matches!(
        client.list().unwrap_err(),
        Error::Connect { ref path, .. } if *path == socket
    ));
    // A new daemon on the same socket: the same client carries on.
    let config_path = config.path().join("keywardd.toml");
    let _again = Daemon::start_on(&socket, &["--config", config_path.to_str().unwrap()]);
    client.list().unwrap();
    assert!(!client.is_broken());
}

#[test]
fn a_client_that_does_not_take_its_responses_is_closed_after_frame_timeout() {
    let (daemon, _config) = daemon_with(DEADLINES);
    let mut admin = daemon.client();
    admin.generate("rsa", KeyKind::Rsa2048, None, None).unwrap();
    let (mut conn, _) = RawConn::connect_and_hello(daemon.socket());
    // Three batches of 1024 RSA signatures: 3 × 260 KiB of responses, more than the socket
    // buffer holds. The client then reads 4 KiB every 50 ms (80 KB/s): every write the
    // daemon makes progresses within a second, so only a deadline for a whole response
    // (1 s here; one takes 3 s at this pace) ends it.
    let payloads: Vec<serde_bytes::ByteBuf> = (0..1024u32)
        .map(|i| serde_bytes::ByteBuf::from(i.to_be_bytes().to_vec()))
        .collect();
    let batch = Request::SignBatch {
        key: "rsa".into(),
        payloads,
    };
    for _ in 0..3 {
        conn.send_request(&batch);
    }
    let total_expected = 3 * 1024 * 256;
    let mut stream = conn.into_stream();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut received = 0usize;
    let mut buf = vec![0u8; 4096];
    let started = Instant::now();
    let mut ended = false;
    while started.elapsed() < Duration::from_secs(20) {
        use std::io::Read;
        match stream.read(&mut buf) {
            Ok(0) => {
                ended = true;
                break;
            }
            Ok(n) => received += n,
            // Closed with requests still unread on its side: a reset.
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {
                ended = true;
                break;
            }
            Err(err) => panic!("no data and no close: {err}"),
        }
        sleep(Duration::from_millis(50));
    }
    assert!(ended, "the daemon kept writing for 20 s");
    println!(
        "frame_timeout_secs = 1: a client reading 4 KiB every 50 ms was cut off after \
         {received} of {total_expected} bytes, {:.1?} after it began reading",
        started.elapsed()
    );
    assert!(
        received < total_expected,
        "all {received} bytes arrived: the slow reader was never cut off"
    );
    assert!(daemon.log().contains("did not take its response"));
    // Others are served after (on a new connection: the admin's first one idled out).
    daemon.client().sign("rsa", PAYLOAD).unwrap();
}

#[test]
fn half_sent_large_frames_beyond_the_budget_are_refused_and_small_ones_still_served() {
    let (daemon, _config) = daemon_with("[daemon]\nframe_budget_bytes = 100000\n");
    let mut admin = daemon.client();
    admin.generate("ed", KeyKind::Ed25519, None, None).unwrap();
    // One connection holds 60,000 bytes of the 100,000-byte budget with a half-sent frame.
    let (mut holder, _) = RawConn::connect_and_hello(daemon.socket());
    let body = keyward_protocol::encode_request(
        &Request::Sign {
            key: "ed".into(),
            payload: payload_for_frame_body("ed", 60_000),
        },
        u32::MAX,
    )
    .unwrap();
    assert_eq!(body.len(), 60_004);
    holder.send(&body[..1000]);
    sleep(Duration::from_millis(200));
    // A second one does not fit: answered at its header, not left waiting for its body.
    let (mut over, _) = RawConn::connect_and_hello(daemon.socket());
    over.send(&60_000u32.to_be_bytes());
    assert_unavailable(over.read_reply(), "frame_budget_bytes");
    over.assert_closed();
    // Signature requests are small and never counted: served meanwhile.
    admin.sign("ed", PAYLOAD).unwrap();
    // The first frame completes and is answered; its budget is given back.
    holder.send(&body[1000..]);
    assert!(matches!(
        holder.read_reply(),
        Reply::Response(Response::Signature { .. })
    ));
    let (mut again, _) = RawConn::connect_and_hello(daemon.socket());
    again.send(&body);
    assert!(matches!(
        again.read_reply(),
        Reply::Response(Response::Signature { .. })
    ));
}

#[test]
fn a_frame_budget_smaller_than_max_frame_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keywardd.toml");
    std::fs::write(&path, "[daemon]\nframe_budget_bytes = 65536\n").unwrap();
    let socket = dir.path().join("run").join("keyward.sock");
    let mut daemon = Daemon::launch_on(
        &socket,
        &["--config", path.to_str().unwrap(), "--max-frame", "100000"],
    );
    let status = daemon.wait_exit();
    assert_eq!(status.code(), Some(1));
    assert!(
        daemon
            .log()
            .contains("frame_budget_bytes (65536) is smaller than --max-frame"),
        "{}",
        daemon.log()
    );
}

/// Skips (returns false) when not root: only root can make connections as other uids.
fn can_switch_uid(test: &str) -> bool {
    if is_root() {
        return true;
    }
    eprintln!("SKIPPED {test}: it needs root to connect as other uids (CI runs the tests as root)");
    false
}

const HOSTILE: u32 = 65533;
const BOT: u32 = 65534;

#[test]
fn one_uid_cannot_take_another_uids_places_and_admins_get_through_when_all_are_taken() {
    if !can_switch_uid("one_uid_cannot_take_another_uids_places_and_admins_get_through") {
        return;
    }
    let (mut daemon, _config) = daemon_with(&format!(
        "[daemon]\nmax_connections = 9\nmax_connections_per_uid = 4\nadmin_connections = 4\n\
         [keys.k]\nallow_uids = [{HOSTILE}, {BOT}]\n"
    ));
    daemon.generate("k", "ed25519");
    daemon.open_permissions_to_everyone();

    // The hostile uid opens 10: it gets 4, the 6 others are answered and closed at once.
    let hostile = Holder::open(daemon.socket(), HOSTILE, 10, false);
    // The bot's uid still has places of its own: it signs.
    let started = Instant::now();
    keyward_as(&daemon, BOT, &["sign", "k"], Some(PAYLOAD)).success();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // Now the bot's uid holds its 4 as well: every shared place is taken.
    let bot = Holder::open(daemon.socket(), BOT, 4, false);
    let out = keyward_as(&daemon, BOT, &["sign", "k"], Some(PAYLOAD));
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("max_connections_per_uid"), "{out:#?}");
    // An admin gets through on the reserved places, at once: two of them (half of 4).
    let started = Instant::now();
    let mut first = daemon.client();
    daemon.keyward(["status"]).success();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    first.list().unwrap();
    drop(first);

    let held = hostile.release();
    assert_eq!(held.answered, 6, "{held:?}");
    assert_eq!(held.open, 4, "{held:?}");
    let held = bot.release();
    assert_eq!(held.open, 4, "{held:?}");
    assert!(daemon.log().contains("max_connections_per_uid"));
    daemon.assert_running();
}

#[test]
fn when_every_place_is_taken_a_non_admin_is_answered_at_once_and_an_admin_still_served() {
    if !can_switch_uid("when_every_place_is_taken_a_non_admin_is_answered_at_once") {
        return;
    }
    let (mut daemon, _config) = daemon_with(&format!(
        "[daemon]\nmax_connections = 4\nmax_connections_per_uid = 4\nadmin_connections = 2\n\
         [keys.k]\nallow_uids = [{HOSTILE}, {BOT}]\n"
    ));
    daemon.generate("k", "ed25519");
    daemon.open_permissions_to_everyone();
    let hostile = Holder::open(daemon.socket(), HOSTILE, 4, false);
    // Full: the bot is answered Unavailable at once, not left in the backlog.
    let started = Instant::now();
    let out = keyward_as(&daemon, BOT, &["sign", "k"], Some(PAYLOAD));
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("max_connections"), "{out:#?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    // The admin gets through on its reserved places: `lock` is answered by the daemon (an
    // ephemeral one refuses to destroy its keys, which says the request was served), and
    // `status` succeeds.
    let started = Instant::now();
    let lock = daemon.keyward(["lock"]);
    assert!(lock.stderr.contains("ephemeral"), "{lock:#?}");
    daemon.keyward(["status"]).success();
    assert!(started.elapsed() < Duration::from_secs(1));
    // Monitoring sees the refusal at accept (docs/MONITORING.md: connections_refused).
    let stats = daemon.keyward(["stats"]);
    stats.success();
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert!(stats["connections_refused"].as_u64() >= Some(1), "{stats}");
    drop(hostile);
    daemon.assert_running();
}

#[test]
fn a_connection_the_system_refuses_a_thread_is_answered_and_the_daemon_goes_on() {
    if !can_switch_uid("a_connection_the_system_refuses_a_thread_is_answered") {
        return;
    }
    // uid 64999 may run 5 threads: the daemon's own two and three connections'. (What
    // an exhausted memlock budget does to pthread_create under mlockall, RLIMIT_NPROC does
    // here: the thread is refused with EAGAIN.)
    let mut daemon = Daemon::start_as_limited(64999, Some(5), &[]);
    let conns: Vec<RawConn> = (0..8).map(|_| RawConn::connect(daemon.socket())).collect();
    sleep(Duration::from_millis(300));
    let mut refused = 0;
    let mut served = 0;
    for mut conn in conns {
        // A served connection answers its Hello; a refused one has already said why.
        conn.send_request(&Request::Hello {
            version: keyward_protocol::PROTOCOL_VERSION,
        });
        match conn.read_reply() {
            Reply::Response(Response::Hello { .. } | Response::Welcome(_)) => served += 1,
            Reply::Response(Response::Error {
                code: ErrorCode::Unavailable,
                message,
            }) => {
                assert!(message.contains("cannot start a thread"), "{message}");
                refused += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    println!("RLIMIT_NPROC = 5: of 8 connections, {served} served, {refused} refused a thread");
    assert!(
        refused >= 1 && served >= 1,
        "{served} served, {refused} refused"
    );
    // Their threads gone, the daemon serves again. A served connection's thread ends once
    // it reads the close, which a loaded machine may take a while to schedule: until then
    // the limit still refuses a thread, so wait for the answer rather than a fixed time.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        daemon.assert_running();
        match Client::connect(daemon.socket()).and_then(|mut client| client.status()) {
            Ok(_) => break,
            Err(err) if Instant::now() < deadline => {
                assert!(err.to_string().contains("cannot start a thread"), "{err}");
                sleep(Duration::from_millis(100));
            }
            Err(err) => panic!("the daemon did not serve again: {err}"),
        }
    }
    assert!(
        daemon
            .log()
            .contains("cannot start a thread for a connection")
    );
}
