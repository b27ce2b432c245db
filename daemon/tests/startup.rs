//! `keywardd` starting and stopping, as a process: where it agrees to listen, where it
//! refuses to (with a clear message and a nonzero exit), and a clean SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use keyward_protocol::{
    PROTOCOL_VERSION, Request, Response, decode_response, encode_request, frame,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const KEYWARDD: &str = env!("CARGO_BIN_EXE_keywardd");
const TIMEOUT: Duration = Duration::from_secs(10);

/// A daemon process; killed (SIGKILL) if a test leaves it running.
struct Proc {
    child: Child,
    stderr: PathBuf,
}

impl Proc {
    fn start(socket: &Path, log_dir: &Path) -> Proc {
        let stderr = log_dir.join(format!(
            "keywardd-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut command = Command::new(KEYWARDD);
        // Nothing of this machine's own setup (a config in ~/.config, XDG directories,
        // systemd's variables) may change what the daemon under test does.
        command.env("HOME", log_dir);
        for variable in [
            "XDG_CONFIG_HOME",
            "XDG_DATA_HOME",
            "XDG_RUNTIME_DIR",
            "CREDENTIALS_DIRECTORY",
            "LISTEN_FDS",
            "LISTEN_PID",
            "LISTEN_FDNAMES",
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
        ] {
            command.env_remove(variable);
        }
        let child = command
            .arg("--ephemeral")
            .arg("--socket")
            .arg(socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Proc { child, stderr }
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// Waits for the process to exit on its own; panics after the timeout.
    fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < TIMEOUT,
                "keywardd is still running after {TIMEOUT:?}; stderr:\n{}",
                self.stderr()
            );
            sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the socket answers a Hello; panics if the process exits first.
    fn wait_serving(&mut self, socket: &Path) {
        let start = Instant::now();
        while !answers_hello(socket) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("keywardd exited ({status}); stderr:\n{}", self.stderr());
            }
            assert!(
                start.elapsed() < TIMEOUT,
                "keywardd did not listen; stderr:\n{}",
                self.stderr()
            );
            sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    matches!(decode_response(&body), Ok(Response::Hello { .. }))
}

/// Starts a daemon that must refuse to start: returns its stderr after checking it exited
/// nonzero with a one-line-per-record log whose last record names the reason.
fn refused(socket: &Path, log_dir: &Path) -> String {
    let mut daemon = Proc::start(socket, log_dir);
    let status = daemon.wait_exit();
    let stderr = daemon.stderr();
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
    let mut daemon = Proc::start(&socket, tmp.path());
    daemon.wait_serving(&socket);
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
        let stderr = refused(&socket, tmp.path());
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
    let stderr = refused(&socket, tmp.path());
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
    let mut first = Proc::start(&socket, tmp.path());
    first.wait_serving(&socket);

    let stderr = refused(&socket, tmp.path());
    assert!(
        stderr.contains("already listening") && stderr.contains(socket.to_str().unwrap()),
        "the message should say another keywardd listens there:\n{stderr}"
    );
    // The refused daemon must not have removed the first one's socket on its way out.
    assert!(socket.exists(), "the second daemon deleted the live socket");
    assert!(answers_hello(&socket), "the first daemon stopped serving");
    assert!(first.child.try_wait().unwrap().is_none());
}

#[test]
fn refuses_a_socket_path_that_is_not_a_socket_and_leaves_the_file_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o700);
    let path = dir.join("keyward.sock");
    fs::write(&path, b"precious").unwrap();
    let stderr = refused(&path, tmp.path());
    assert!(stderr.contains("not a socket"), "{stderr}");
    assert_eq!(fs::read(&path).unwrap(), b"precious");
}

#[test]
fn replaces_a_stale_socket_left_by_a_daemon_that_was_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("run").join("keyward.sock");
    let mut first = Proc::start(&socket, tmp.path());
    first.wait_serving(&socket);
    first.signal(Signal::SIGKILL);
    first.wait_exit();
    assert!(socket.exists(), "SIGKILL leaves the socket file behind");
    assert!(!answers_hello(&socket));

    let mut second = Proc::start(&socket, tmp.path());
    second.wait_serving(&socket);
}

#[test]
fn sigterm_and_sigint_remove_the_socket_and_exit_0_even_with_an_idle_client_connected() {
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        let tmp = tempfile::tempdir().unwrap();
        let socket = tmp.path().join("run").join("keyward.sock");
        let mut daemon = Proc::start(&socket, tmp.path());
        daemon.wait_serving(&socket);
        // A bot that keeps its connection open between orders must not hold up shutdown.
        let idle = UnixStream::connect(&socket).unwrap();
        let asked = Instant::now();
        daemon.signal(signal);
        let status = daemon.wait_exit();
        let stderr = daemon.stderr();
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
    let stderr = refused(&socket, tmp.path());
    assert!(stderr.contains("already listening"), "{stderr}");
    assert!(socket.exists());
}
