//! systemd integration, without systemd as PID 1: `systemd-socket-activate` passes the
//! listening socket (LISTEN_FDS/LISTEN_PID) and a datagram socket the test binds plays the
//! service manager's NOTIFY_SOCKET. Then the shipped units: their hardening score, and
//! `systemd-analyze verify`, sysusers and tmpfiles in a temporary root.
//!
//! A test whose tool (`systemd-socket-activate`, `systemd-analyze`, ...) is missing says so on
//! stderr and passes; CI installs systemd, so there every test runs.
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

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

/// The service manager's side of sd_notify: a datagram socket, read by a thread, each
/// message handed over in arrival order.
struct Notifications {
    path: PathBuf,
    messages: Receiver<String>,
    seen: Vec<String>,
}

impl Notifications {
    fn bind(path: PathBuf) -> Notifications {
        let socket = UnixDatagram::bind(&path)
            .unwrap_or_else(|err| panic!("cannot bind {}: {err}", path.display()));
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let (sender, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0; 4096];
            loop {
                match socket.recv(&mut buf) {
                    Ok(n) => {
                        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                        if sender.send(text).is_err() {
                            return;
                        }
                    }
                    Err(err)
                        if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                    {
                        // Nobody listens any more: the test is over.
                        if sender.send(String::new()).is_err() {
                            return;
                        }
                    }
                    Err(err) => panic!("reading the notify socket: {err}"),
                }
            }
        });
        Notifications {
            path,
            messages,
            seen: Vec::new(),
        }
    }

    /// Waits for a message with the line `line` (e.g. `READY=1`) and returns it whole.
    fn wait_for(&mut self, line: &str, timeout: Duration) -> Option<String> {
        if let Some(found) = self.seen.iter().find(|m| m.lines().any(|l| l == line)) {
            return Some(found.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(message) if message.is_empty() => {}
                Ok(message) => {
                    let matches = message.lines().any(|l| l == line);
                    self.seen.push(message.clone());
                    if matches {
                        return Some(message);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Every message received so far, waiting `settle` for late ones.
    fn all(&mut self, settle: Duration) -> &[String] {
        let deadline = Instant::now() + settle;
        while let Ok(message) = self
            .messages
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if !message.is_empty() {
                self.seen.push(message);
            }
        }
        &self.seen
    }
}

/// `keywardd` started by `systemd-socket-activate -l SOCKET`: it is exec'd (same pid) on the
/// first connection, with LISTEN_FDS=1 and LISTEN_PID set, and only the variables passed
/// with `--setenv` (the environment is otherwise cleared here).
struct Activated {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
    stopped: bool,
}

impl Activated {
    /// Listens on `dir/activation/keyward.sock` (and on `extra` more `-l` addresses); the
    /// daemon gets `args`, and `env` through `--setenv`. `flags` go to systemd-socket-activate
    /// before the listen addresses (e.g. `--datagram`).
    fn start(
        program: &Path,
        dir: &Path,
        flags: &[&str],
        extra: &[PathBuf],
        env: &[(&str, OsString)],
        args: &[OsString],
    ) -> Activated {
        let activation = dir.join("activation");
        fs::create_dir(&activation).unwrap();
        let socket = activation.join("keyward.sock");
        let log = dir.join("keywardd.log");
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .args(flags)
            .arg("--listen")
            .arg(&socket);
        for more in extra {
            command.arg("--listen").arg(more);
        }
        let mut has_log_filter = false;
        for (name, value) in env {
            has_log_filter |= *name == "KEYWARD_LOG";
            let mut assignment = OsString::from(format!("--setenv={name}="));
            assignment.push(value);
            command.arg(assignment);
        }
        if !has_log_filter {
            command.arg("--setenv=KEYWARD_LOG=info");
        }
        let child = command
            .arg(keywardd_bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("cannot start systemd-socket-activate");
        let mut activated = Activated {
            child,
            socket,
            log,
            stopped: false,
        };
        // systemd-socket-activate creates the socket, then waits for a connection.
        let started = Instant::now();
        while !activated.socket.exists() {
            if let Some(status) = activated.child.try_wait().unwrap() {
                activated.stopped = true;
                panic!(
                    "systemd-socket-activate exited ({status}): {}",
                    activated.log()
                );
            }
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "systemd-socket-activate did not create {}: {}",
                activated.socket.display(),
                activated.log()
            );
            sleep(Duration::from_millis(10));
        }
        activated
    }

    /// Connects once and hangs up: systemd-socket-activate execs keywardd on the first
    /// connection, and keywardd serves (and closes) this one like any other.
    fn trigger(&self) {
        // The file appears at bind(), a moment before listen(): until then, ECONNREFUSED.
        let started = Instant::now();
        loop {
            match UnixStream::connect(&self.socket) {
                Ok(stream) => return drop(stream),
                Err(err) if err.kind() == ErrorKind::ConnectionRefused => {
                    assert!(
                        started.elapsed() < READY_TIMEOUT,
                        "the passed socket never listened: {err}"
                    );
                    sleep(Duration::from_millis(10));
                }
                Err(err) => panic!("cannot connect to the passed socket: {err}"),
            }
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap())
    }

    /// A client whose reads time out, so an unserved socket fails the test instead of
    /// hanging it.
    fn client(&self) -> Client {
        let stream = UnixStream::connect(&self.socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Client::from_stream(stream).unwrap_or_else(|err| {
            panic!(
                "the daemon does not answer: {err}; its log:\n{}",
                self.log()
            )
        })
    }

    fn keyward(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        run(
            Command::new(keyward_bin())
                .arg("--socket")
                .arg(&self.socket)
                .args(args)
                .env_remove("KEYWARD_SOCK"),
            stdin,
        )
    }

    /// Waits for the daemon to exit on its own.
    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let status = wait_with_timeout(&mut self.child, timeout)
            .unwrap_or_else(|| panic!("keywardd did not exit; its log:\n{}", self.log()));
        self.stopped = true;
        status
    }

    /// SIGTERM, then waits.
    fn stop(&mut self) -> ExitStatus {
        kill(self.pid(), Signal::SIGTERM).unwrap();
        self.wait(STOP_TIMEOUT)
    }

    /// Waits for READY=1, and fails with the log and the likely reason if it does not come.
    fn ready(&mut self, notify: &mut Notifications) -> String {
        match notify.wait_for("READY=1", READY_TIMEOUT) {
            Some(message) => message,
            None => panic!(
                "no READY=1 on NOTIFY_SOCKET within {READY_TIMEOUT:?} of the first connection \
                 (is daemon/src/systemd.rs wired into keywardd's main?); messages: {:?}; log:\n{}",
                notify.seen,
                self.log()
            ),
        }
    }
}

impl Drop for Activated {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
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

/// Generates an Ed25519 key through the CLI and returns the file holding its public PEM.
fn generate(activated: &Activated, dir: &Path, name: &str) -> PathBuf {
    let out = activated.keyward(&["generate", name, "--scheme", "ed25519"], None);
    out.success();
    let pem = dir.join(format!("{name}.pub.pem"));
    fs::write(&pem, &out.stdout).unwrap();
    pem
}

fn os(text: impl Into<OsString>) -> OsString {
    text.into()
}

#[test]
fn socket_activated_daemon_signs_reports_ready_and_stopping_and_never_makes_a_socket() {
    let Some(activate) = tool("systemd-socket-activate") else {
        return;
    };
    let tmp = temp_dir();
    let dir = tmp.path();
    let mut notify = Notifications::bind(dir.join("notify.sock"));
    // Where this daemon would bind if it ignored the passed socket: it must stay absent.
    let own = dir.join("own").join("keyward.sock");
    let mut daemon = Activated::start(
        &activate,
        dir,
        &[],
        &[],
        &[("NOTIFY_SOCKET", os(&notify.path)), ("HOME", os(dir))],
        &[os("--ephemeral"), os("--socket"), os(&own)],
    );
    daemon.trigger();
    let ready = daemon.ready(&mut notify);
    assert!(
        ready
            .lines()
            .any(|l| l.starts_with("STATUS=") && l.contains("0 keys")),
        "READY=1 should carry a STATUS= line with the key count: {ready:?}"
    );
    // READY=1 means served: a new connection is answered at once.
    let mut client = daemon.client();
    client.status().unwrap();

    let public = generate(&daemon, dir, "ed");
    let payload = b"symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1&timestamp=1700000000000";
    let signature = client.sign("ed", payload).unwrap();
    assert_python_verifies(&Check::new(
        "ed25519",
        &public,
        payload,
        signature.as_bytes(),
    ));

    assert_eq!(
        names_in(&dir.join("activation")),
        ["keyward.sock"],
        "the socket-activated daemon created a file next to the passed socket"
    );
    assert!(
        !own.exists() && !dir.join("own").exists(),
        "the socket-activated daemon bound --socket {} as well",
        own.display()
    );

    drop(client);
    let status = daemon.stop();
    let log = daemon.log();
    assert!(
        status.success(),
        "exit status {status} after SIGTERM; log:\n{log}"
    );
    assert!(
        notify
            .wait_for("STOPPING=1", Duration::from_secs(5))
            .is_some(),
        "no STOPPING=1 after SIGTERM; messages: {:?}",
        notify.seen
    );
    // The socket belongs to whoever passed it (systemd removes it with RemoveOnStop=).
    assert!(
        daemon.socket.exists(),
        "keywardd removed a socket file it did not create"
    );
    assert!(!log.contains("panicked"), "keywardd panicked:\n{log}");
    let ready_count = notify
        .all(Duration::from_millis(100))
        .iter()
        .filter(|m| m.lines().any(|l| l == "READY=1"))
        .count();
    assert_eq!(
        ready_count, 1,
        "READY=1 must be sent once: {:?}",
        notify.seen
    );
}

/// Initialises a keystore in `dir/keystore` with [`PASSPHRASE`] through a daemon started the
/// ordinary way (not socket-activated), optionally generating an Ed25519 key `key`; returns
/// the keystore and that key's public PEM.
fn keystore_with_one_key(dir: &Path, key: Option<&str>) -> (PathBuf, Option<Vec<u8>>) {
    let keystore = dir.join("keystore");
    let passphrase_file = dir.join("passphrase");
    fs::write(&passphrase_file, PASSPHRASE).unwrap();
    let plain_socket = dir.join("plain").join("keyward.sock");
    let plain = start_plain(dir, &plain_socket, &[&os("--keystore"), &os(&keystore)]);
    let keyward = |args: &[&OsStr]| {
        run(
            Command::new(keyward_bin())
                .arg("--socket")
                .arg(&plain_socket)
                .args(args),
            None,
        )
    };
    keyward(&[
        OsStr::new("init"),
        OsStr::new("--passphrase-file"),
        passphrase_file.as_os_str(),
    ])
    .success();
    let public = key.map(|name| {
        let out = keyward(&[
            OsStr::new("generate"),
            OsStr::new(name),
            OsStr::new("--scheme"),
            OsStr::new("ed25519"),
        ]);
        out.success();
        out.stdout
    });
    stop_plain(plain);
    (keystore, public)
}

/// What systemd's LoadCredentialEncrypted= leaves: a private directory holding a read-only
/// file `passphrase` with `contents`.
fn credentials_dir(dir: &Path, contents: &[u8]) -> PathBuf {
    let credentials = dir.join("credentials");
    fs::create_dir(&credentials).unwrap();
    fs::set_permissions(&credentials, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(credentials.join("passphrase"), contents).unwrap();
    fs::set_permissions(
        credentials.join("passphrase"),
        fs::Permissions::from_mode(0o400),
    )
    .unwrap();
    credentials
}

#[test]
fn credential_passphrase_unlocks_before_ready() {
    let Some(activate) = tool("systemd-socket-activate") else {
        return;
    };
    let tmp = temp_dir();
    let dir = tmp.path();
    let (keystore, public_pem) = keystore_with_one_key(dir, Some("bot"));
    let public = dir.join("bot.pub.pem");
    fs::write(&public, public_pem.unwrap()).unwrap();
    let credentials = credentials_dir(dir, PASSPHRASE);

    let mut notify = Notifications::bind(dir.join("notify.sock"));
    let mut daemon = Activated::start(
        &activate,
        dir,
        &[],
        &[],
        &[
            ("NOTIFY_SOCKET", os(&notify.path)),
            ("CREDENTIALS_DIRECTORY", os(&credentials)),
            ("HOME", os(dir)),
        ],
        &[
            os("--keystore"),
            os(&keystore),
            os("--socket"),
            os(dir.join("own").join("keyward.sock")),
        ],
    );
    daemon.trigger();
    let ready = daemon.ready(&mut notify);
    // Asked the moment READY=1 arrived: already unlocked, no window in which a bot is
    // told "locked".
    let status = daemon.keyward(&["status"], None);
    status.success();
    assert!(
        status.stdout_text().contains("state: unlocked"),
        "`keyward status` right after READY=1 is not unlocked: {status:#?}"
    );
    assert!(
        ready.contains("STATUS=unlocked, 1 key"),
        "READY=1 should report the unlocked state and key count: {ready:?}"
    );

    let payload = b"symbol=ETHUSDT&timestamp=1700000000001";
    let signature = daemon.client().sign("bot", payload).unwrap();
    assert_python_verifies(&Check::new(
        "ed25519",
        &public,
        payload,
        signature.as_bytes(),
    ));

    assert!(daemon.stop().success(), "log:\n{}", daemon.log());
    assert!(
        notify
            .wait_for("STOPPING=1", Duration::from_secs(5))
            .is_some(),
        "no STOPPING=1: {:?}",
        notify.seen
    );
}

#[test]
fn a_wrong_credential_passphrase_exits_without_ready() {
    let Some(activate) = tool("systemd-socket-activate") else {
        return;
    };
    let tmp = temp_dir();
    let dir = tmp.path();
    let (keystore, _) = keystore_with_one_key(dir, None);
    let credentials = credentials_dir(dir, b"not the passphrase\n");
    let mut notify = Notifications::bind(dir.join("notify.sock"));
    let mut daemon = Activated::start(
        &activate,
        dir,
        &[],
        &[],
        &[
            ("NOTIFY_SOCKET", os(&notify.path)),
            ("CREDENTIALS_DIRECTORY", os(&credentials)),
            ("HOME", os(dir)),
        ],
        &[os("--keystore"), os(&keystore)],
    );
    daemon.trigger();
    let status = daemon.wait(READY_TIMEOUT);
    assert_eq!(status.code(), Some(1), "log:\n{}", daemon.log());
    assert!(
        daemon.log().contains("cannot unlock"),
        "the log should say why: {}",
        daemon.log()
    );
    let messages = notify.all(Duration::from_millis(200));
    assert!(
        !messages.iter().any(|m| m.lines().any(|l| l == "READY=1")),
        "READY=1 was sent although the unlock failed: {messages:?}"
    );
}

#[test]
fn passed_sockets_keywardd_cannot_serve_are_refused() {
    let Some(activate) = tool("systemd-socket-activate") else {
        return;
    };
    // A datagram socket.
    let tmp = temp_dir();
    let mut daemon = Activated::start(
        &activate,
        tmp.path(),
        &["--datagram"],
        &[],
        &[("HOME", os(tmp.path()))],
        &[
            os("--ephemeral"),
            os("--socket"),
            os(tmp.path().join("own.sock")),
        ],
    );
    UnixDatagram::unbound()
        .unwrap()
        .send_to(b"wake up", &daemon.socket)
        .unwrap();
    let status = daemon.wait(READY_TIMEOUT);
    let log = daemon.log();
    assert_eq!(status.code(), Some(1), "log:\n{log}");
    assert!(
        log.contains("datagram") && log.contains("listening Unix stream socket"),
        "{log}"
    );

    // Two sockets: keywardd serves exactly one.
    let tmp = temp_dir();
    let mut daemon = Activated::start(
        &activate,
        tmp.path(),
        &[],
        &[tmp.path().join("second.sock")],
        &[("HOME", os(tmp.path()))],
        &[
            os("--ephemeral"),
            os("--socket"),
            os(tmp.path().join("own.sock")),
        ],
    );
    daemon.trigger();
    let status = daemon.wait(READY_TIMEOUT);
    let log = daemon.log();
    assert_eq!(status.code(), Some(1), "log:\n{log}");
    assert!(log.contains("LISTEN_FDS=2"), "{log}");
}

#[test]
fn watchdog_pings_at_half_of_watchdog_usec() {
    let Some(activate) = tool("systemd-socket-activate") else {
        return;
    };
    let tmp = temp_dir();
    let dir = tmp.path();
    let mut notify = Notifications::bind(dir.join("notify.sock"));
    let mut daemon = Activated::start(
        &activate,
        dir,
        &[],
        &[],
        &[
            ("NOTIFY_SOCKET", os(&notify.path)),
            // 0.4 s: a ping every 0.2 s.
            ("WATCHDOG_USEC", os("400000")),
            ("HOME", os(dir)),
        ],
        &[os("--ephemeral")],
    );
    daemon.trigger();
    daemon.ready(&mut notify);
    sleep(Duration::from_millis(1100));
    let pings = notify
        .all(Duration::from_millis(50))
        .iter()
        .filter(|m| m.as_str() == "WATCHDOG=1")
        .count();
    assert!(
        (3..=9).contains(&pings),
        "expected about 5 WATCHDOG=1 in 1.1 s at 0.2 s intervals, got {pings}: {:?}",
        notify.seen
    );
    assert!(daemon.stop().success());
}

/// The "Overall exposure level" figure `systemd-analyze security` printed.
fn exposure(out: &Output) -> f64 {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), out.stderr);
    text.lines()
        .find_map(|line| line.split("Overall exposure level for ").nth(1))
        .and_then(|rest| rest.split(": ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|figure| figure.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in the output: {out:#?}"))
}

fn security(analyze: &Path, unit: &Path, threshold: u32) -> Output {
    run(
        Command::new(analyze)
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(format!("--threshold={threshold}"))
            .arg(unit),
        None,
    )
}

/// `--threshold=N` compares on systemd's internal 0-100 scale (exposure × 10) and fails
/// when the exposure is above N: 9 passes 0.9 and fails 1.0, i.e. "below 1.0" (SAFE band).
const SAFE_THRESHOLD: u32 = 9;

#[test]
fn shipped_service_scores_in_the_safe_band() {
    let Some(analyze) = tool("systemd-analyze") else {
        return;
    };
    let service = unit("keywardd.service");
    let out = security(&analyze, &service, SAFE_THRESHOLD);
    let score = exposure(&out);
    eprintln!("keywardd.service exposure: {score}");
    assert_eq!(
        out.code,
        Some(0),
        "exposure {score} is above the SAFE band (threshold {SAFE_THRESHOLD}): {out:#?}"
    );
    assert!(score < 1.0, "exposure {score} is not below 1.0");

    // The threshold really is enforced: a unit above it fails...
    assert_ne!(security(&analyze, &service, 0).code, Some(0));
    // ...and so does a weakened copy of ours at the CI threshold.
    let tmp = temp_dir();
    let weak = tmp.path().join("keywardd.service");
    let text = fs::read_to_string(&service).unwrap();
    let weakened: String = text
        .lines()
        .filter(|line| {
            ![
                "SystemCallFilter=",
                "PrivateNetwork=",
                "ProtectSystem=",
                "CapabilityBoundingSet=",
                "RestrictAddressFamilies=",
            ]
            .iter()
            .any(|setting| line.starts_with(setting))
        })
        .map(|line| format!("{line}\n"))
        .collect();
    fs::write(&weak, weakened).unwrap();
    let out = security(&analyze, &weak, SAFE_THRESHOLD);
    assert_ne!(
        out.code,
        Some(0),
        "a unit without its sandbox scored {}; the CI check would not catch a weaker unit",
        exposure(&out)
    );
}

/// Settings that would score better and silently break keywardd's access control.
#[test]
fn service_sandbox_keeps_what_peer_credentials_need() {
    let text = fs::read_to_string(unit("keywardd.service")).unwrap();
    let setting = |name: &str| {
        // The last assignment wins, as in systemd.
        text.lines()
            .rev()
            .find_map(|line| line.strip_prefix(&format!("{name}=")))
            .map(str::trim)
    };
    // A user namespace maps every uid but the service's own to `nobody`, SO_PEERCRED
    // included: every bot would look like uid 65534 to the policy.
    assert!(
        !matches!(setting("PrivateUsers"), Some("yes" | "true" | "1" | "on")),
        "PrivateUsers= would turn every peer's uid into 65534"
    );
    // keywardd reads a peer's supplementary groups from /proc/PID/status; hiding other
    // users' processes would drop them, and allow_gids would stop matching.
    assert!(
        !matches!(
            setting("ProtectProc"),
            Some("invisible" | "noaccess" | "ptraceable")
        ),
        "ProtectProc= would hide bots' /proc/PID/status and with it their groups"
    );
    assert_eq!(setting("Type"), Some("notify"));
    let exec = setting("ExecStart").unwrap();
    assert!(exec.starts_with("/usr/local/bin/keywardd ") && exec.contains("--require-mlock"));
    assert!(setting("LimitMEMLOCK").is_some());
    assert!(setting("WatchdogSec").is_some());

    // One socket path everywhere.
    let socket = fs::read_to_string(unit("keywardd.socket")).unwrap();
    assert!(socket.contains("\nListenStream=/run/keyward/keyward.sock\n"));
    assert!(socket.contains("\nSocketMode=0660\n") && socket.contains("\nSocketGroup=keyward\n"));
    let tmpfiles = fs::read_to_string(unit("keyward.tmpfiles")).unwrap();
    assert!(tmpfiles.contains("\nd /run/keyward "));
}

/// A temporary root with the host's systemd units (for sysinit.target and friends), the
/// binaries where the units say, and `/bin/kill` for ExecReload=.
fn install_root(root: &Path) -> bool {
    let host_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .iter()
        .map(Path::new)
        .find(|dir| dir.join("sysinit.target").exists());
    let Some(host_units) = host_units else {
        eprintln!("SKIPPED: no systemd unit directory with sysinit.target on this host");
        return false;
    };
    fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
    run(
        Command::new("cp")
            .arg("-a")
            .arg(host_units)
            .arg(root.join("usr/lib/systemd/system")),
        None,
    )
    .success();
    fs::create_dir_all(root.join("usr/local/bin")).unwrap();
    fs::copy(keywardd_bin(), root.join("usr/local/bin/keywardd")).unwrap();
    fs::copy(keyward_bin(), root.join("usr/local/bin/keyward")).unwrap();
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    let kill = ["/usr/bin/kill", "/bin/kill"]
        .iter()
        .map(Path::new)
        .find(|path| path.is_file())
        .expect("no kill binary on this host");
    fs::copy(kill, root.join("usr/bin/kill")).unwrap();
    symlink("usr/bin", root.join("bin")).unwrap();
    fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
    true
}

fn verify(analyze: &Path, extra: &[&str], units: &[PathBuf]) -> Output {
    run(
        Command::new(analyze)
            .args(["verify", "--man=no"])
            .args(extra)
            .args(units),
        None,
    )
}

/// `systemd-analyze verify` exits 0 on many problems (an unknown setting, a value it cannot
/// parse): it only warns. So a clean result is exit 0 *and* nothing said about our units.
#[track_caller]
fn assert_clean(out: &Output, what: &str) {
    let complaints: Vec<&str> = out
        .stderr
        .lines()
        .filter(|line| line.contains("keyward"))
        .collect();
    assert!(
        out.code == Some(0) && complaints.is_empty(),
        "systemd-analyze verify on {what}: {out:#?}"
    );
}

#[test]
fn units_pass_systemd_analyze_verify_when_installed() {
    let Some(analyze) = tool("systemd-analyze") else {
        return;
    };
    let tmp = temp_dir();
    let root = tmp.path().join("root");
    if !install_root(&root) {
        return;
    }
    let system = root.join("etc/systemd/system");
    let root_arg = format!("--root={}", root.display());
    for name in [
        "keywardd.service",
        "keywardd.socket",
        "keyward-user.service",
        "keyward-user.socket",
    ] {
        fs::copy(unit(name), system.join(name)).unwrap();
    }
    let out = verify(
        &analyze,
        &[&root_arg],
        &[
            system.join("keywardd.service"),
            system.join("keywardd.socket"),
        ],
    );
    assert_clean(&out, "the system units");

    // The user units, as system units in the root: settings, dependencies and the binary.
    let out = verify(
        &analyze,
        &[&root_arg],
        &[
            system.join("keyward-user.service"),
            system.join("keyward-user.socket"),
        ],
    );
    assert_clean(&out, "the user units in the temporary root");

    // And in user mode (which cannot take --root): ExecStart pointed at the built binary.
    let user = tmp.path().join("user");
    let runtime = tmp.path().join("runtime");
    fs::create_dir_all(&user).unwrap();
    fs::create_dir_all(&runtime).unwrap();
    fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700)).unwrap();
    let service = fs::read_to_string(unit("keyward-user.service"))
        .unwrap()
        .replace("/usr/local/bin/keywardd", keywardd_bin().to_str().unwrap());
    fs::write(user.join("keyward-user.service"), service).unwrap();
    fs::copy(
        unit("keyward-user.socket"),
        user.join("keyward-user.socket"),
    )
    .unwrap();
    let out = run(
        Command::new(&analyze)
            .env("XDG_RUNTIME_DIR", &runtime)
            .args(["verify", "--man=no", "--user"])
            .arg(user.join("keyward-user.service"))
            .arg(user.join("keyward-user.socket")),
        None,
    );
    assert_clean(&out, "the user units in user mode");

    // verify does check the path in ExecStart=: without the binary it fails.
    fs::remove_file(root.join("usr/local/bin/keywardd")).unwrap();
    let out = verify(&analyze, &[&root_arg], &[system.join("keywardd.service")]);
    assert!(
        out.code != Some(0) && out.stderr.contains("/usr/local/bin/keywardd"),
        "verify passed with no keywardd installed: {out:#?}"
    );
}

#[test]
fn sysusers_and_tmpfiles_create_the_user_and_private_directories() {
    let (Some(sysusers), Some(tmpfiles)) = (tool("systemd-sysusers"), tool("systemd-tmpfiles"))
    else {
        return;
    };
    if !is_root() {
        eprintln!("SKIPPED: creating files owned by another user needs root");
        return;
    }
    let tmp = temp_dir();
    let root = tmp.path();
    fs::create_dir(root.join("etc")).unwrap();
    let root_arg = format!("--root={}", root.display());
    // Absolute paths: both tools resolve relative ones inside the root.
    let sysusers_file = fs::canonicalize(unit("keyward.sysusers")).unwrap();
    let tmpfiles_file = fs::canonicalize(unit("keyward.tmpfiles")).unwrap();
    run(
        Command::new(sysusers).arg(&root_arg).arg(sysusers_file),
        None,
    )
    .success();
    let passwd = fs::read_to_string(root.join("etc/passwd")).unwrap();
    let entry: Vec<&str> = passwd
        .lines()
        .find(|line| line.starts_with("keyward:"))
        .unwrap_or_else(|| panic!("no keyward user in {passwd}"))
        .split(':')
        .collect();
    let uid: u32 = entry[2].parse().unwrap();
    let gid: u32 = entry[3].parse().unwrap();
    assert!(uid > 0 && uid < 1000, "not a system uid: {entry:?}");
    assert_eq!(entry[5], "/var/lib/keyward");
    assert!(
        fs::read_to_string(root.join("etc/group"))
            .unwrap()
            .lines()
            .any(|line| line.starts_with(&format!("keyward:x:{gid}:"))),
        "no keyward group"
    );

    run(
        Command::new(tmpfiles)
            .arg(&root_arg)
            .arg("--create")
            .arg(tmpfiles_file),
        None,
    )
    .success();
    for (path, mode, owner, group) in [
        ("run/keyward", 0o750, uid, gid),
        ("var/lib/keyward", 0o700, uid, gid),
        ("var/log/keyward", 0o700, uid, gid),
        ("etc/keyward", 0o750, 0, gid),
    ] {
        let meta = fs::metadata(root.join(path)).unwrap();
        assert_eq!(
            (meta.mode() & 0o7777, meta.uid(), meta.gid()),
            (mode, owner, group),
            "/{path}: mode, owner, group"
        );
    }
}

/// The example policy file in systemd/ is valid for this keywardd, the commented-out key
/// table included (with names that exist on any host substituted).
#[test]
fn example_config_is_accepted() {
    let tmp = temp_dir();
    let dir = tmp.path();
    let audit = dir.join("audit.jsonl");
    let text = fs::read_to_string(unit("keywardd.toml"))
        .unwrap()
        .replace("\"keyward\"", "\"root\"")
        .replace("\"bot-binance\"", "\"root\"")
        .replace("/var/log/keyward/audit.jsonl", audit.to_str().unwrap())
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            // Uncomment the example key table (and only settings, not prose).
            Some(rest) if rest.starts_with("[keys.") || rest.contains(" = ") => rest.to_owned(),
            _ => line.to_owned(),
        })
        .map(|line| format!("{line}\n"))
        .collect::<String>();
    assert!(text.contains("\n[keys.\"binance-main\"]\n"), "{text}");
    let config = dir.join("keywardd.toml");
    fs::write(&config, text).unwrap();
    let socket = dir.join("run").join("keyward.sock");
    let daemon = start_plain(
        dir,
        &socket,
        &[&os("--config"), &os(&config), &os("--ephemeral")],
    );
    stop_plain(daemon);
    assert!(
        audit.exists(),
        "the audit log named in the example was not opened"
    );
}

/// `LimitMEMLOCK=` of the shipped unit lets keywardd lock its memory with
/// `--require-mlock` as an unprivileged user, under `MALLOC_ARENA_MAX=2` like the unit.
/// Raising the hard limit needs CAP_SYS_RESOURCE; without it the test says so and passes.
#[test]
fn unit_memlock_limit_lets_an_unprivileged_keywardd_lock_its_memory() {
    let (Some(prlimit), Some(setpriv)) = (tool("prlimit"), tool("setpriv")) else {
        return;
    };
    if !is_root() {
        eprintln!("SKIPPED: switching to another user needs root");
        return;
    }
    let text = fs::read_to_string(unit("keywardd.service")).unwrap();
    let limit = text
        .lines()
        .find_map(|line| line.strip_prefix("LimitMEMLOCK="))
        .expect("no LimitMEMLOCK= in keywardd.service");
    let bytes: u64 = match limit.strip_suffix('M') {
        Some(mib) => mib.parse::<u64>().unwrap() * 1024 * 1024,
        None => match limit.strip_suffix('G') {
            Some(gib) => gib.parse::<u64>().unwrap() * 1024 * 1024 * 1024,
            None => limit.parse().unwrap(),
        },
    };
    let probe = run(
        Command::new(&prlimit)
            .arg(format!("--memlock={bytes}:{bytes}"))
            .arg("true"),
        None,
    );
    if probe.code != Some(0) {
        eprintln!(
            "SKIPPED: cannot raise RLIMIT_MEMLOCK to {limit} here (no CAP_SYS_RESOURCE): {}",
            probe.stderr.trim()
        );
        return;
    }

    let tmp = temp_dir();
    let dir = tmp.path();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    let program = dir.join("keywardd");
    fs::copy(keywardd_bin(), &program).unwrap();
    fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
    let home = dir.join("home");
    fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    let socket = home.join("run").join("keyward.sock");
    let log = dir.join("keywardd.log");
    let mut child = Command::new(&prlimit)
        .arg(format!("--memlock={bytes}:{bytes}"))
        .arg(&setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&program)
        .args(["--ephemeral", "--require-mlock", "--socket"])
        .arg(&socket)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("MALLOC_ARENA_MAX", "2")
        .env("KEYWARD_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while UnixStream::connect(&socket).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "keywardd refused LimitMEMLOCK={limit} ({status}): {}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(started.elapsed() < READY_TIMEOUT, "keywardd did not listen");
        sleep(Duration::from_millis(10));
    }
    // Keys, an RSA burst and the blocking pool's threads: the allocations that would hit
    // the limit if it were too small (a refused mmap aborts the daemon).
    let keyward = |args: &[&str], stdin: Option<&[u8]>| {
        run(
            Command::new(keyward_bin())
                .arg("--socket")
                .arg(&socket)
                .args(args),
            stdin,
        )
    };
    for i in 0..20 {
        keyward(
            &["generate", &format!("ed{i}"), "--scheme", "ed25519"],
            None,
        )
        .success();
    }
    keyward(&["generate", "rsa", "--scheme", "rsa-4096"], None).success();
    let mut client = Client::connect(&socket).unwrap();
    let payloads: Vec<Vec<u8>> = (0..64).map(|i| format!("n={i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    client.sign_batch("rsa", &refs).unwrap();
    let status = fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let locked = status
        .lines()
        .find(|line| line.starts_with("VmLck:"))
        .unwrap()
        .to_owned();
    eprintln!("under LimitMEMLOCK={limit}: {locked}");
    assert!(!locked.ends_with(" 0 kB"), "memory is not locked: {locked}");
    kill(
        Pid::from_raw(i32::try_from(child.id()).unwrap()),
        Signal::SIGTERM,
    )
    .unwrap();
    let status = wait_with_timeout(&mut child, STOP_TIMEOUT).expect("keywardd did not stop");
    assert!(
        status.success(),
        "{status}: {}",
        fs::read_to_string(&log).unwrap_or_default()
    );
}
