//! Who may sign what (issue 4), end to end with the real `keywardd` and `keyward`: the socket
//! group, per-key allow lists (uids, primary and supplementary groups), payload rules, rate
//! limits, the audit log, SIGHUP reload, config validation at start and order rules.
//!
//! Other users are real other uids: `setpriv` runs a copy of `keyward`, or a small Perl relay
//! that connects to the socket as that user and hands the connection to a Rust [`Client`] in
//! this process (so the daemon's `SO_PEERCRED` sees the other user, and the test still gets
//! typed errors and a connection it can keep open across a SIGHUP). Tests that need another
//! uid skip when not run as root; CI runs them as root.
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// One file per section: each tests one part of the policy.
mod allow_lists;
mod audit;
mod audit_ops;
mod config;
mod formats;
mod kucoin_passphrase;
mod monitoring;
mod orders;
mod payload;
mod rate_limit;
mod sighup;

use std::collections::HashMap;
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keyward_client::{Client, Error, ErrorCode, KeyKind, Scheme, SecretBytes};
use keyward_tests::scan::{assert_no_run, find_run};
use keyward_tests::verify::{Check, assert_python_verifies_all};
use keyward_tests::{Daemon, Output, audit_log, is_root, keyward_bin, keywardd_bin, openssl, run};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A spare gid for the socket group, and one for a group of bots; neither needs to exist in
/// /etc/group (the config takes numbers, and setpriv takes numeric groups).
const SOCKET_GID: u32 = 4242;
const BOT_GID: u32 = 4343;

/// Another user, as setpriv makes it: real and effective uid/gid, and exactly these
/// supplementary groups.
#[derive(Debug, Clone, Copy)]
struct User {
    uid: u32,
    gid: u32,
    groups: &'static [u32],
}

/// `nobody`/`nogroup` with no supplementary groups.
const NOBODY: User = User {
    uid: 65534,
    gid: 65534,
    groups: &[],
};

impl User {
    /// `setpriv --reuid U --regid G (--clear-groups | --groups=...) PROGRAM`.
    fn command(self, program: &Path) -> Command {
        let mut command = Command::new("setpriv");
        command
            .arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid));
        if self.groups.is_empty() {
            command.arg("--clear-groups");
        } else {
            let groups: Vec<String> = self.groups.iter().map(u32::to_string).collect();
            command.arg(format!("--groups={}", groups.join(",")));
        }
        command.arg(program);
        command
    }
}

/// Skips (returns false) when not root: only root can run a client as another uid.
fn can_switch_uid(test: &str) -> bool {
    if is_root() {
        return true;
    }
    eprintln!("SKIPPED {test}: it needs root to run clients as other uids with setpriv");
    false
}

/// A config file in a private temporary directory (which also holds the audit log when a
/// test asks for one). `set` rewrites it, for SIGHUP.
#[derive(Debug)]
struct ConfigFile {
    dir: TempDir,
    path: PathBuf,
}

impl ConfigFile {
    fn new(text: &str) -> ConfigFile {
        let dir = tempfile::Builder::new()
            .prefix("keyward-policy-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("keywardd.toml");
        let config = ConfigFile { dir, path };
        config.set(text);
        config
    }

    fn set(&self, text: &str) {
        fs::write(&self.path, text).unwrap();
    }

    fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Starts an ephemeral daemon with `--config FILE`.
fn start(config: &ConfigFile) -> Daemon {
    Daemon::start(&["--config", config.path()])
}

/// Makes the test directory traversable (0755) and puts a 0755 copy of `keyward` in it, so
/// other uids can reach the socket's directory and run the CLI; the socket directory and the
/// socket keep the modes the daemon gave them.
fn keyward_for_everyone(daemon: &Daemon) -> PathBuf {
    fs::set_permissions(daemon.dir(), fs::Permissions::from_mode(0o755)).unwrap();
    let copy = daemon.dir().join("keyward");
    if !copy.exists() {
        fs::copy(keyward_bin(), &copy).unwrap();
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    }
    copy
}

/// Runs `keyward --socket SOCKET ARGS` as `user`.
///
/// Retries while exec fails with ETXTBSY: a process forked by another test thread while
/// [`keyward_for_everyone`] was writing the copy holds that write descriptor until it execs
/// its own program, and the kernel refuses to run a file open for writing meanwhile.
fn keyward_as(
    user: User,
    keyward: &Path,
    daemon: &Daemon,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> Output {
    let started = Instant::now();
    loop {
        let mut command = user.command(keyward);
        command
            .arg("--socket")
            .arg(daemon.socket())
            .args(args)
            .env_remove("KEYWARD_SOCK");
        let out = run(&mut command, stdin);
        let busy = out.code == Some(126) && out.stderr.contains("Text file busy");
        if !busy || started.elapsed() > Duration::from_secs(5) {
            return out;
        }
        sleep(Duration::from_millis(10));
    }
}

/// Connects to the socket in ARGV[0] and relays bytes both ways between it and stdin/stdout
/// (one socketpair end, shared with the test) until either side closes. Perl, because it is
/// on every Debian machine and any uid can run it.
const PERL_RELAY: &str = r#"
use strict; use Socket; use IO::Select;
socket(my $s, PF_UNIX, SOCK_STREAM, 0) or die "socket: $!\n";
connect($s, pack_sockaddr_un($ARGV[0])) or die "connect: $!\n";
my %to = (fileno(STDIN) => $s, fileno($s) => \*STDOUT);
my $select = IO::Select->new(\*STDIN, $s);
while (1) {
    for my $from ($select->can_read) {
        my $n = sysread($from, my $buf, 65536);
        exit 0 unless $n;
        my $off = 0;
        while ($off < $n) {
            my $w = syswrite($to{fileno($from)}, $buf, $n - $off, $off);
            defined $w or exit 0;
            $off += $w;
        }
    }
}
"#;

/// A client connection made by another user (through [`PERL_RELAY`]).
#[derive(Debug)]
struct Bridged {
    client: Client,
    child: Child,
}

impl Bridged {
    /// The pid the daemon sees for this connection (setpriv execs Perl in place).
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Bridged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects to the daemon as `user`, with the handshake done.
fn connect_as(user: User, daemon: &Daemon) -> Result<Bridged, Error> {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let child = {
        let mut command = user.command(Path::new("/usr/bin/perl"));
        command
            .arg("-e")
            .arg(PERL_RELAY)
            .arg(daemon.socket())
            .stdin(Stdio::from(OwnedFd::from(theirs.try_clone().unwrap())))
            .stdout(Stdio::from(OwnedFd::from(theirs)))
            .stderr(Stdio::null());
        // The command (and its copies of our socketpair end) is dropped here, so the relay's
        // exit is an EOF for the client.
        command.spawn().unwrap()
    };
    let mut bridged_child = child;
    let client = Client::from_stream(ours).and_then(|mut client| {
        client.set_timeout(Some(Duration::from_secs(10)))?;
        Ok(client)
    });
    match client {
        Ok(client) => Ok(Bridged {
            client,
            child: bridged_child,
        }),
        Err(err) => {
            let _ = bridged_child.kill();
            let _ = bridged_child.wait();
            Err(err)
        }
    }
}

/// The daemon's message and code, from a failed call.
#[track_caller]
fn daemon_error(err: &Error) -> (ErrorCode, &str) {
    match err {
        Error::Daemon { code, message } => (*code, message.as_str()),
        Error::RateLimited { message, .. } => (ErrorCode::RateLimited, message.as_str()),
        other => panic!("expected an error from the daemon, got {other:?}"),
    }
}

/// Asserts `result` is the daemon refusing with `code`; returns its message.
#[track_caller]
fn refused_with<T: std::fmt::Debug>(result: Result<T, Error>, code: ErrorCode) -> String {
    let err = result.expect_err("the daemon accepted a request it must refuse");
    let (got, message) = daemon_error(&err);
    assert_eq!(got, code, "wrong error code; message: {message}");
    message.to_owned()
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// `PREFIX&timestamp=<now in ms>`.
fn fresh(prefix: &str) -> String {
    format!("{prefix}&timestamp={}", now_ms())
}

/// The pid of this test's `keywardd` (the one serving its socket).
fn daemon_pid(daemon: &Daemon) -> Pid {
    let socket = daemon.socket().as_os_str().as_bytes();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        if args.first().is_some_and(|a| a.ends_with(b"keywardd")) && args.contains(&socket) {
            return Pid::from_raw(pid);
        }
    }
    panic!("no keywardd process serves {}", daemon.socket().display());
}

/// Waits until `needle` occurs at least `count` times in the daemon's log; returns the log.
#[track_caller]
fn wait_for_log(daemon: &Daemon, needle: &str, count: usize) -> String {
    let started = Instant::now();
    loop {
        let log = daemon.log();
        if log.matches(needle).count() >= count {
            return log;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the daemon did not log {needle:?} ({count}×) within 10 s; its stderr:\n{log}"
        );
        sleep(Duration::from_millis(10));
    }
}

/// SHA-256 of `bytes` in hex, by the OpenSSL CLI (not by keyward's own crypto).
fn sha256_hex(bytes: &[u8]) -> String {
    let out = run(
        Command::new("openssl").args(["dgst", "-sha256", "-r"]),
        Some(bytes),
    );
    assert_eq!(out.code, Some(0), "openssl dgst failed: {out:#?}");
    let hex = out
        .stdout_text()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(hex.len(), 64, "{out:#?}");
    hex
}

/// Names of the keys in `keyward list --json` output.
fn listed_names(out: &Output) -> Vec<String> {
    out.success();
    let keys: Value = serde_json::from_slice(&out.stdout).unwrap();
    keys.as_array()
        .unwrap()
        .iter()
        .map(|key| key["name"].as_str().unwrap().to_owned())
        .collect()
}
