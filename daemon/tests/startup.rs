//! `keywardd` starting and stopping, as a process: where it agrees to listen, where it
//! refuses to (with a clear message and a nonzero exit), and a clean SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use keyward_protocol::{
    PROTOCOL_VERSION, Request, Response, decode_response, encode_request, frame,
};
use keyward_tests::Daemon;
use nix::sys::signal::Signal;

const TIMEOUT: Duration = Duration::from_secs(10);

/// True if a keywardd on `socket` completes the handshake.
fn answers_hello(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let hello = encode_request(
        &Request::Hello {
            version: PROTOCOL_VERSION,
        },
        u32::MAX,
    )
    .unwrap();
    if stream.write_all(&hello).is_err() {
        return false;
    }
    let mut header = [0u8; frame::HEADER_LEN];
    if stream.read_exact(&mut header).is_err() {
        return false;
    }
    let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut body).unwrap();
    matches!(
        decode_response(&body),
        Ok(Response::Welcome(welcome)) if welcome.version == PROTOCOL_VERSION
    )
}

/// Starts a daemon that must refuse to start: returns its stderr after checking it exited
/// nonzero with a one-line-per-record log whose last record names the reason.
fn refused(socket: &Path) -> String {
    let mut daemon = Daemon::launch_on(socket, &[]);
    let status = daemon.wait_exit();
    let stderr = daemon.log();
    assert!(
        !status.success(),
        "keywardd started on {} although it should refuse; stderr:\n{stderr}",
        socket.display()
    );
    assert_eq!(status.code(), Some(1), "{status}; stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn creates_a_missing_socket_directory_0700_and_the_socket_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("a").join("b").join("keyward.sock");
    let _daemon = Daemon::start_on(&socket, &[]);
    assert!(answers_hello(&socket));
    let dir_mode = fs::metadata(socket.parent().unwrap()).unwrap().mode() & 0o7777;
    let socket_meta = fs::symlink_metadata(&socket).unwrap();
    assert!(socket_meta.file_type().is_socket());
    assert_eq!(dir_mode, 0o700);
    assert_eq!(socket_meta.mode() & 0o7777, 0o600);
}

#[test]
fn refuses_a_socket_directory_that_group_or_others_can_write() {
    let tmp = tempfile::tempdir().unwrap();
    for mode in [0o777, 0o770, 0o1777, 0o702] {
        let dir = tmp.path().join(format!("run-{mode:o}"));
        fs::create_dir(&dir).unwrap();
        chmod(&dir, mode);
        let socket = dir.join("keyward.sock");
        let stderr = refused(&socket);
        assert!(
            stderr.contains("writable by group or others")
                && stderr.contains(dir.to_str().unwrap()),
            "mode {mode:o}: the message should name the directory and the problem:\n{stderr}"
        );
        assert!(!socket.exists(), "mode {mode:o}: a socket was created");
        // The daemon must not "fix" a directory it refuses.
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o7777, mode);
    }
}

#[test]
fn refuses_a_socket_directory_owned_by_another_uid() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: only root can chown a directory to another uid (CI runs as root)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("theirs");
    fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o700);
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    let socket = dir.join("keyward.sock");
    let stderr = refused(&socket);
    assert!(
        stderr.contains("owned by uid 65534") && stderr.contains(dir.to_str().unwrap()),
        "the message should name the directory and its owner:\n{stderr}"
    );
    assert!(!socket.exists());
}

#[test]
fn refuses_a_second_daemon_on_a_live_socket_and_leaves_the_first_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("run").join("keyward.sock");
    let mut first = Daemon::start_on(&socket, &[]);
    assert!(answers_hello(&socket));

    let stderr = refused(&socket);
    assert!(
        stderr.contains("already listening") && stderr.contains(socket.to_str().unwrap()),
        "the message should say another keywardd listens there:\n{stderr}"
    );
    // The refused daemon must not have removed the first one's socket on its way out.
    assert!(socket.exists(), "the second daemon deleted the live socket");
    assert!(answers_hello(&socket), "the first daemon stopped serving");
    first.assert_running();
}

#[test]
fn refuses_a_socket_path_that_is_not_a_socket_and_leaves_the_file_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o700);
    let path = dir.join("keyward.sock");
    fs::write(&path, b"precious").unwrap();
    let stderr = refused(&path);
    assert!(stderr.contains("not a socket"), "{stderr}");
    assert_eq!(fs::read(&path).unwrap(), b"precious");
}

#[test]
fn replaces_a_stale_socket_left_by_a_daemon_that_was_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("run").join("keyward.sock");
    let mut first = Daemon::start_on(&socket, &[]);
    assert!(answers_hello(&socket));
    first.signal(Signal::SIGKILL);
    first.wait_exit();
    assert!(socket.exists(), "SIGKILL leaves the socket file behind");
    assert!(!answers_hello(&socket));

    let _second = Daemon::start_on(&socket, &[]);
    assert!(answers_hello(&socket));
}

#[test]
fn sigterm_and_sigint_remove_the_socket_and_exit_0_even_with_an_idle_client_connected() {
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        let tmp = tempfile::tempdir().unwrap();
        let socket = tmp.path().join("run").join("keyward.sock");
        let mut daemon = Daemon::start_on(&socket, &[]);
        assert!(answers_hello(&socket));
        // A bot that keeps its connection open between orders must not hold up shutdown.
        let idle = UnixStream::connect(&socket).unwrap();
        let asked = Instant::now();
        daemon.signal(signal);
        let status = daemon.wait_exit();
        let stderr = daemon.log();
        assert!(
            status.success(),
            "{signal}: exited with {status}; stderr:\n{stderr}"
        );
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "{signal}: shutdown took {:?} with an idle client connected",
            asked.elapsed()
        );
        assert!(!socket.exists(), "{signal}: the socket file is still there");
        assert!(!stderr.contains("panicked"), "{stderr}");
        drop(idle);
    }
}

#[test]
fn a_listener_that_is_not_keywardd_is_not_mistaken_for_a_stale_socket() {
    // Something else listens on the path (say, a second keywardd still starting up, or
    // another program): it is live, so the daemon must refuse rather than delete it.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o700);
    let socket = dir.join("keyward.sock");
    let _other = UnixListener::bind(&socket).unwrap();
    let stderr = refused(&socket);
    assert!(stderr.contains("already listening"), "{stderr}");
    assert!(socket.exists());
}
