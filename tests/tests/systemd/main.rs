//! systemd integration, without systemd as PID 1: `systemd-socket-activate` passes the
//! listening socket (LISTEN_FDS/LISTEN_PID) and a datagram socket the test binds plays the
//! service manager's NOTIFY_SOCKET. Then the shipped units: their hardening score, and
//! `systemd-analyze verify`, sysusers and tmpfiles in a temporary root.
//!
//! A test whose tool (`systemd-socket-activate`, `systemd-analyze`, ...) is missing says so on
//! stderr and passes; CI installs systemd, so there every test runs.
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod socket_activation;
mod unit_files;

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::sleep;
use std::time::{Duration, Instant};

use keyward_client::Client;
use keyward_tests::verify::{Check, assert_python_verifies};
use keyward_tests::{Output, is_root, keyward_bin, keywardd_bin, run};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

/// The shipped units, relative to the workspace.
fn unit(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("systemd")
        .join(name)
}

/// How long a socket-activated daemon may take to send READY=1 once triggered.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a daemon may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

const PASSPHRASE: &[u8] = b"correct horse battery staple\n";

/// The program `name` on $PATH, or `None` after telling why the test does not run.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        eprintln!("SKIPPED: `{name}` is not installed (CI installs systemd; apt install systemd)");
    }
    found
}

fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("keyward-systemd-")
        .tempdir()
        .expect("cannot create a temporary directory")
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("cannot poll a child") {
            return Some(status);
        }
        if started.elapsed() > timeout {
            return None;
        }
        sleep(Duration::from_millis(10));
    }
}

/// `keywardd ARGS` started the ordinary way (it binds `socket` itself), for preparing a
/// keystore; returns once it serves.
fn start_plain(dir: &Path, socket: &Path, args: &[&OsString]) -> Child {
    let log = dir.join("plain.log");
    let mut child = Command::new(keywardd_bin())
        // Nothing from this machine: no XDG_* paths, no systemd hand-offs.
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("KEYWARD_LOG", "info")
        .arg("--socket")
        .arg(socket)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .expect("cannot start keywardd");
    let started = Instant::now();
    while UnixStream::connect(socket).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "keywardd exited at start ({status}): {}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < READY_TIMEOUT,
            "keywardd did not listen: {}",
            fs::read_to_string(&log).unwrap_or_default()
        );
        sleep(Duration::from_millis(10));
    }
    child
}

fn stop_plain(mut child: Child) {
    kill(
        Pid::from_raw(i32::try_from(child.id()).unwrap()),
        Signal::SIGTERM,
    )
    .unwrap();
    let status = wait_with_timeout(&mut child, STOP_TIMEOUT).expect("keywardd did not stop");
    assert!(status.success(), "keywardd exited with {status}");
}

fn os(text: impl Into<OsString>) -> OsString {
    text.into()
}
