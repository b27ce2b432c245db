//! End-to-end test harness for keyward: the real `keywardd` and `keyward` binaries, a socket
//! in a temporary directory, and signature checks by implementations that share no code with
//! keyward (Python's `cryptography` via `tests/python/verify.py`, and the OpenSSL CLI).
//!
//! - [`Daemon::start`] spawns `keywardd --ephemeral --socket <tmp>/run/keyward.sock`, waits
//!   until a client can connect, and stops it with SIGTERM when dropped. Dropping it also
//!   checks that the daemon did not die during the test, shut down with status 0, and never
//!   logged a panic (a panicking connection task is otherwise invisible: tokio turns it into
//!   a closed connection).
//! - [`Daemon::keyward`] runs the `keyward` CLI against that daemon and returns an [`Output`].
//! - [`verify`] checks signatures with Python and OpenSSL; [`raw`] speaks the wire protocol
//!   byte by byte, to send what a well-behaved client never would.
//! - [`keystore`] starts daemons on a persistent keystore (`Daemon::start_with_keystore`,
//!   restartable, killable) and extracts the secret parts of test keys; [`scan`] looks for
//!   runs of secret bytes in files and in a daemon's memory.
//!
//! The binaries are found next to the test executable (`target/<profile>/`), or in
//! `$KEYWARD_BIN_DIR`. `cargo test --workspace` builds them, because the daemon and CLI
//! packages have integration tests of their own.
#![deny(missing_docs)]
// A harness failure is a test failure: panicking with a clear message is the right outcome,
// and `Result`s here would only be unwrapped by every caller.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use keyward_client::{Client, ErrorCode};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

pub mod disk;
pub mod hostile;
pub mod keystore;
pub mod raw;
pub mod scan;
pub mod verify;

/// Environment variables that would make a daemon under test depend on the machine it runs
/// on: where its config, keystore and default socket are, and systemd's hand-offs.
const FOREIGN_ENV: [&str; 11] = [
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_RUNTIME_DIR",
    "KEYWARD_SOCK",
    "CREDENTIALS_DIRECTORY",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "JOURNAL_STREAM",
];

/// How long a daemon may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a daemon may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A fresh temporary directory, removed when dropped.
fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("keyward-test-")
        .tempdir()
        .expect("cannot create a temporary directory")
}

/// The directory holding `keywardd` and `keyward`: `$KEYWARD_BIN_DIR`, else the directory
/// above the running test executable (`target/debug/deps/x` → `target/debug/`).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KEYWARD_BIN_DIR").filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("cannot find the test executable");
    let mut dir = exe.parent().expect("test executable has no directory");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("deps directory has no parent");
    }
    dir.to_path_buf()
}

fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} not found; run `cargo test --workspace`, which builds keywardd and keyward \
         (or set KEYWARD_BIN_DIR to the directory holding them)",
        path.display()
    );
    path
}

/// Path of the `keywardd` binary under test.
pub fn keywardd_bin() -> PathBuf {
    binary("keywardd")
}

/// Path of the `keyward` CLI binary under test.
pub fn keyward_bin() -> PathBuf {
    binary("keyward")
}

/// A command running the Python interpreter: `$KEYWARD_PYTHON`, else `python3`.
pub fn python() -> Command {
    let interpreter = std::env::var("KEYWARD_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".into());
    Command::new(interpreter)
}

/// True when the tests run as root (as they do in CI); some tests need it to switch uid.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// What a finished command did.
#[derive(Debug)]
pub struct Output {
    /// Exit code; `None` if it was killed by a signal.
    pub code: Option<i32>,
    /// Everything it wrote to stdout, byte for byte.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr (lossily decoded).
    pub stderr: String,
}

impl Output {
    /// Stdout as text; panics if it is not UTF-8.
    pub fn stdout_text(&self) -> &str {
        std::str::from_utf8(&self.stdout).expect("stdout is not UTF-8")
    }

    /// Asserts the command exited 0 and returns itself.
    #[track_caller]
    pub fn success(&self) -> &Self {
        assert_eq!(self.code, Some(0), "command failed: {self:#?}");
        self
    }

    /// Asserts the command exited with `code`, printed exactly one line on stderr and did not
    /// panic; returns that line (without its newline).
    #[track_caller]
    pub fn error_line(&self, code: i32) -> &str {
        assert_eq!(self.code, Some(code), "wrong exit code: {self:#?}");
        assert!(
            !self.stderr.contains("panicked"),
            "the command panicked: {self:#?}"
        );
        let line = self
            .stderr
            .strip_suffix('\n')
            .unwrap_or_else(|| panic!("stderr does not end with a newline: {self:#?}"));
        assert!(
            !line.is_empty() && !line.contains('\n'),
            "stderr is not exactly one line: {self:#?}"
        );
        line
    }
}

/// The text of `keyward status` without its last line, which must name this build's
/// daemon: `daemon: keywardd VERSION (commit C)`.
#[track_caller]
pub fn without_daemon_line(status: &str) -> &str {
    let body = status.strip_suffix('\n').unwrap_or(status);
    let (rest, last) = body.rsplit_once('\n').unwrap_or(("", body));
    let expected = format!("daemon: keywardd {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(
        last.starts_with(&expected) && last.ends_with(')'),
        "the last line of `keyward status` should name the daemon: {status:?}"
    );
    &status[..rest.len() + usize::from(!rest.is_empty())]
}

/// Runs `command` to completion, feeding it `stdin` (or /dev/null when `None`).
pub fn run(command: &mut Command, stdin: Option<&[u8]>) -> Output {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let bytes = bytes.to_vec();
        // Written from a thread so a child that prints before reading cannot deadlock us.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    let out = child.wait_with_output().expect("cannot wait for a command");
    Output {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the `keyward` CLI with exactly `args` (no `--socket` added) and no stdin.
pub fn keyward<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(
        Command::new(keyward_bin())
            .args(args)
            .env_remove("KEYWARD_SOCK"),
        None,
    )
}

/// How a daemon that was expected to serve ended instead.
#[derive(Debug)]
pub struct StartFailure {
    /// Its exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Everything it logged.
    pub log: String,
}

impl StartFailure {
    /// The last line the daemon logged (its reason for exiting), without timestamps or level.
    pub fn last_line(&self) -> &str {
        self.log.lines().last().unwrap_or_default()
    }
}

/// A running `keywardd --ephemeral` on a socket in its own temporary directory.
///
/// Dropping it sends SIGTERM and waits; unless the test is already failing, it then asserts
/// that the daemon had not died on its own, exited 0, and logged no panic.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    dir: TempDir,
    socket: PathBuf,
    log: PathBuf,
    stopped: bool,
}

impl Daemon {
    /// Starts `keywardd --ephemeral --socket <tmp>/run/keyward.sock` plus `args`, and waits
    /// until a client completes the handshake. Panics with the daemon's stderr if it exits
    /// first or does not listen within 10 s.
    pub fn start(args: &[&str]) -> Daemon {
        let dir = temp_dir();
        let socket = dir.path().join("run").join("keyward.sock");
        let home = dir.path().to_path_buf();
        Daemon::spawn(Command::new(keywardd_bin()), dir, &home, socket, args)
    }

    /// Like [`Daemon::start`], with `KEYWARD_LOG` set to `filter` (e.g. `trace`) instead
    /// of `info`.
    pub fn start_logging(filter: &str, args: &[&str]) -> Daemon {
        let dir = temp_dir();
        let socket = dir.path().join("run").join("keyward.sock");
        let mut command = Command::new(keywardd_bin());
        command.env("KEYWARD_LOG", filter);
        let home = dir.path().to_path_buf();
        Daemon::spawn(command, dir, &home, socket, args)
    }

    /// Like [`Daemon::start`], with `env` set for the daemon (variables of
    /// the machine's own that the harness otherwise removes, such as `JOURNAL_STREAM`, stay
    /// when given here).
    pub fn start_with_env(env: &[(&str, &str)], args: &[&str]) -> Daemon {
        let dir = temp_dir();
        let socket = dir.path().join("run").join("keyward.sock");
        let mut command = Command::new(keywardd_bin());
        command.envs(env.iter().copied());
        let home = dir.path().to_path_buf();
        Daemon::spawn(command, dir, &home, socket, args)
    }

    /// Like [`Daemon::start`], with the daemon's stderr (its log file) announced as the
    /// journal: `JOURNAL_STREAM` holds the log file's device and inode, as systemd sets it
    /// for a service whose output goes to the journal.
    pub fn start_journal(args: &[&str]) -> Daemon {
        use std::os::unix::fs::MetadataExt as _;
        let dir = temp_dir();
        let socket = dir.path().join("run").join("keyward.sock");
        // `launch` truncates this same file (same inode) and makes it the daemon's stderr.
        let log = File::create(dir.path().join("keywardd.log")).expect("cannot create the log");
        let meta = log.metadata().expect("cannot stat the log");
        let mut command = Command::new(keywardd_bin());
        command.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
        let home = dir.path().to_path_buf();
        Daemon::spawn(command, dir, &home, socket, args)
    }

    /// Like [`Daemon::start`], but the daemon runs as `uid` (and gid `uid`, no supplementary
    /// groups) through `setpriv`, from a copy of `keywardd` in the temporary directory, with
    /// its socket in a directory that `uid` owns (mode 0700) inside the root-owned temporary
    /// directory: the layout of a system daemon's `/run/keyward`, which clients of other
    /// uids trust. Needs root.
    pub fn start_as(uid: u32, args: &[&str]) -> Daemon {
        Daemon::start_as_limited(uid, None, args)
    }

    /// Like [`Daemon::start_as`], with `RLIMIT_NPROC` set to `threads` when given: `uid` may
    /// then run at most that many threads (the daemon's own included), so that creating a
    /// connection's thread fails. Use a uid nothing else on the machine runs as. Needs root
    /// and bash.
    pub fn start_as_limited(uid: u32, threads: Option<u32>, args: &[&str]) -> Daemon {
        let dir = temp_dir();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
            .expect("cannot open up the temporary directory");
        let program = dir.path().join("keywardd");
        fs::copy(keywardd_bin(), &program).expect("cannot copy keywardd");
        fs::set_permissions(&program, fs::Permissions::from_mode(0o755))
            .expect("cannot make the keywardd copy executable");
        let home = dir.path().join("home");
        fs::create_dir(&home).expect("cannot create the daemon's directory");
        std::os::unix::fs::chown(&home, Some(uid), Some(uid))
            .expect("cannot chown the daemon's directory (not root?)");
        let mut command = match threads {
            // bash's ulimit sets the limit, then setpriv runs keywardd with it as `uid`.
            Some(threads) => {
                let mut bash = Command::new("bash");
                bash.arg("-c")
                    .arg(format!("ulimit -u {threads} && exec setpriv \"$@\""))
                    .arg("bash");
                bash
            }
            None => Command::new("setpriv"),
        };
        command
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .arg("--clear-groups")
            .arg(program);
        let run = dir.path().join("run");
        fs::create_dir(&run).expect("cannot create the socket's directory");
        fs::set_permissions(&run, fs::Permissions::from_mode(0o700))
            .expect("cannot chmod the socket's directory");
        std::os::unix::fs::chown(&run, Some(uid), Some(uid))
            .expect("cannot chown the socket's directory");
        Daemon::spawn(command, dir, &home, run.join("keyward.sock"), args)
    }

    /// Starts `keywardd --ephemeral --socket SOCKET ARGS` on a socket the test chose (its log
    /// and `$HOME` in a temporary directory of its own) and waits until it serves; for tests
    /// of where the daemon agrees to listen.
    pub fn start_on(socket: &Path, args: &[&str]) -> Daemon {
        let mut daemon = Daemon::launch_on(socket, args);
        if let Err(failed) = daemon.wait_until_serving() {
            panic!(
                "keywardd exited at start ({:?}); its stderr:\n{}",
                failed.code, failed.log
            );
        }
        daemon
    }

    /// Like [`Daemon::start_on`] without waiting: for a daemon that should refuse to start
    /// (see [`Daemon::wait_exit`]), or a socket another daemon already serves.
    pub fn launch_on(socket: &Path, args: &[&str]) -> Daemon {
        let dir = temp_dir();
        let home = dir.path().to_path_buf();
        let ephemeral = [OsStr::new("--ephemeral")];
        Daemon::launch(
            Command::new(keywardd_bin()),
            dir,
            &home,
            socket.to_owned(),
            &ephemeral,
            args,
        )
    }

    /// Spawns the daemon (`--ephemeral`) with `home` as its `$HOME`, so that nothing of the
    /// machine's own setup (a config file in ~/.config, XDG directories, systemd's variables)
    /// leaks in, and waits until it serves.
    fn spawn(
        command: Command,
        dir: TempDir,
        home: &Path,
        socket: PathBuf,
        args: &[&str],
    ) -> Daemon {
        let ephemeral = [OsStr::new("--ephemeral")];
        let mut daemon = Daemon::launch(command, dir, home, socket, &ephemeral, args);
        if let Err(failed) = daemon.wait_until_serving() {
            panic!(
                "keywardd exited at start ({:?}); its stderr:\n{}",
                failed.code, failed.log
            );
        }
        daemon
    }

    /// Starts `command` as keywardd with `store_args` (`--ephemeral`, or `--keystore DIR`),
    /// `--socket SOCKET` and `args`, logging to a file in `dir`; does not wait.
    pub(crate) fn launch(
        mut command: Command,
        dir: TempDir,
        home: &Path,
        socket: PathBuf,
        store_args: &[&OsStr],
        args: &[&str],
    ) -> Daemon {
        let log = dir.path().join("keywardd.log");
        let has_filter = command.get_envs().any(|(key, _)| key == "KEYWARD_LOG");
        if !has_filter {
            command.env("KEYWARD_LOG", "info");
        }
        command.env("HOME", home);
        // Remove the machine's own variables, but not one the caller set on purpose (e.g.
        // CREDENTIALS_DIRECTORY for a headless unlock).
        let chosen: Vec<std::ffi::OsString> =
            command.get_envs().map(|(key, _)| key.to_owned()).collect();
        for variable in FOREIGN_ENV {
            if !chosen.iter().any(|key| key == variable) {
                command.env_remove(variable);
            }
        }
        let child = command
            .args(store_args)
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("cannot create the daemon log"))
            .spawn()
            .expect("cannot start keywardd");
        Daemon {
            child,
            dir,
            socket,
            log,
            stopped: false,
        }
    }

    /// Waits until a client completes the handshake (or is refused: the daemon is up), or
    /// says how the daemon exited instead. Panics if it neither serves nor exits in time.
    pub(crate) fn wait_until_serving(&mut self) -> Result<(), StartFailure> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("cannot poll keywardd") {
                self.stopped = true;
                return Err(StartFailure {
                    code: status.code(),
                    log: self.log(),
                });
            }
            match Client::connect(&self.socket) {
                Ok(_) => return Ok(()),
                // It answered, if only to refuse us: it is up.
                Err(err) if err.code() == Some(ErrorCode::Denied) => return Ok(()),
                Err(err) if started.elapsed() > START_TIMEOUT => panic!(
                    "keywardd did not serve {} within {START_TIMEOUT:?} ({err}); its stderr:\n{}",
                    self.socket.display(),
                    self.log()
                ),
                Err(_) => sleep(Duration::from_millis(10)),
            }
        }
    }

    /// The daemon's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The test's temporary directory (the socket is in its `run/` subdirectory).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the daemon has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A new client connection, handshake done.
    pub fn client(&self) -> Client {
        Client::connect(&self.socket).unwrap_or_else(|err| {
            panic!(
                "cannot connect to keywardd: {err}; its stderr:\n{}",
                self.log()
            )
        })
    }

    /// Asserts the daemon process is still running.
    #[track_caller]
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("cannot poll keywardd") {
            self.stopped = true;
            panic!("keywardd exited ({status}); its stderr:\n{}", self.log());
        }
    }

    /// Writes `bytes` to the file `name` in the temporary directory and returns its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir().join(name);
        fs::write(&path, bytes).expect("cannot write a test file");
        path
    }

    /// [`Daemon::write`], readable by every user (0644): for a `keyward` run under another
    /// uid. Returns the path as a string, for an argument.
    pub fn write_world_readable(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.write(name, bytes);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
            .expect("cannot make a test file readable");
        path.to_str().expect("a UTF-8 temp path").to_owned()
    }

    /// Runs `keyward --socket <socket> ARGS` with no stdin.
    pub fn keyward<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(&mut self.keyward_command(args), None)
    }

    /// Runs `keyward --socket <socket> ARGS` with `stdin` as its standard input.
    pub fn keyward_stdin<I, S>(&self, args: I, stdin: &[u8]) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(&mut self.keyward_command(args), Some(stdin))
    }

    /// The command `keyward --socket <socket> ARGS`.
    fn keyward_command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(keyward_bin());
        command
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .env_remove("KEYWARD_SOCK");
        command
    }

    /// Generates a key in the daemon with `keyward generate NAME --scheme KIND`, and returns
    /// the path of a file holding the public key PEM it printed. Asserts that `keyward pubkey
    /// NAME` prints the same PEM.
    pub fn generate(&self, name: &str, kind: &str) -> PathBuf {
        let out = self.keyward(["generate", name, "--scheme", kind]);
        out.success();
        let pem = out.stdout_text();
        assert!(
            pem.starts_with("-----BEGIN PUBLIC KEY-----\n")
                && pem.ends_with("-----END PUBLIC KEY-----\n"),
            "generate did not print an SPKI PEM: {out:#?}"
        );
        let again = self.keyward(["pubkey", name]);
        again.success();
        assert_eq!(
            again.stdout_text(),
            pem,
            "`pubkey` and `generate` disagree on the public key"
        );
        self.write(&format!("{name}.pub.pem"), pem.as_bytes())
    }

    /// Imports the file `key` with `keyward import NAME --file KEY EXTRA...` and asserts it
    /// succeeded.
    pub fn import(&self, name: &str, key: &Path, extra: &[&str]) {
        let mut args: Vec<&OsStr> = vec!["import".as_ref(), name.as_ref(), "--file".as_ref()];
        args.push(key.as_os_str());
        args.extend(extra.iter().map(OsStr::new));
        self.keyward(args).success();
    }

    /// Signs `payload` with `keyward sign NAME` (payload on stdin) and the given extra
    /// arguments (e.g. `["--encoding", "raw"]`); asserts success and returns stdout.
    pub fn sign(&self, name: &str, payload: &[u8], extra: &[&str]) -> Vec<u8> {
        let mut args = vec!["sign", name];
        args.extend_from_slice(extra);
        let out = self.keyward_stdin(args, payload);
        out.success();
        out.stdout
    }

    /// Opens the temporary directory, the socket's directory and the socket to everyone
    /// (0755, 0777, 0777), so that only the daemon's peer-credential check stands between
    /// another user and the daemon.
    pub fn open_permissions_to_everyone(&self) {
        let set = |path: &Path, mode: u32| {
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
                .unwrap_or_else(|err| panic!("chmod {mode:o} {}: {err}", path.display()));
        };
        set(self.dir(), 0o755);
        set(self.socket.parent().expect("socket has a directory"), 0o777);
        set(&self.socket, 0o777);
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits in i32"));
        kill(pid, signal).expect("cannot signal keywardd");
    }

    /// Stops the daemon (SIGSTOP) and waits until every one of its threads is stopped:
    /// kill() returns once the signal is queued, and on a busy machine a thread can still
    /// accept, read and answer before the stop reaches it. `signal(Signal::SIGCONT)` resumes.
    pub fn freeze(&self) {
        self.signal(Signal::SIGSTOP);
        let tasks = format!("/proc/{}/task", self.pid());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let all_stopped = fs::read_dir(&tasks)
                .expect("cannot list keywardd's threads")
                .all(|task| {
                    let stat = task
                        .map(|task| {
                            fs::read_to_string(task.path().join("stat")).unwrap_or_default()
                        })
                        .unwrap_or_default();
                    // The state follows the command name, which is in parentheses.
                    stat.rsplit_once(") ")
                        .is_some_and(|(_, rest)| rest.starts_with('T'))
                });
            if all_stopped {
                return;
            }
            assert!(Instant::now() < deadline, "keywardd did not stop");
            sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the daemon to exit on its own (after a signal, or refusing to start);
    /// panics with its log if it still runs after 15 s. Dropping the `Daemon` afterwards
    /// checks nothing more.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let asked = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("cannot poll keywardd") {
                self.stopped = true;
                return status;
            }
            assert!(
                asked.elapsed() < STOP_TIMEOUT,
                "keywardd is still running after {STOP_TIMEOUT:?}; its stderr:\n{}",
                self.log()
            );
            sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM and waits for the daemon to exit (SIGKILL after 15 s). The temporary
    /// directory stays until the `Daemon` is dropped, so a test can look at what is left.
    pub fn stop(&mut self) -> ExitStatus {
        let status = self.terminate();
        self.stopped = true;
        status
    }

    fn terminate(&mut self) -> ExitStatus {
        if let Some(status) = self.child.try_wait().expect("cannot poll keywardd") {
            return status;
        }
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits in i32"));
        let _ = kill(pid, Signal::SIGTERM);
        let asked = Instant::now();
        while asked.elapsed() < STOP_TIMEOUT {
            if let Some(status) = self.child.try_wait().expect("cannot poll keywardd") {
                return status;
            }
            sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let status = self.child.wait().expect("cannot wait for keywardd");
        if !std::thread::panicking() {
            panic!(
                "keywardd did not exit within {STOP_TIMEOUT:?} of SIGTERM; its stderr:\n{}",
                self.log()
            );
        }
        status
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        let died_early = self.child.try_wait().ok().flatten();
        let status = self.terminate();
        if std::thread::panicking() {
            return;
        }
        let log = self.log();
        if let Some(early) = died_early {
            panic!("keywardd died during the test ({early}); its stderr:\n{log}");
        }
        assert!(
            status.success(),
            "keywardd exited with {status} after SIGTERM; its stderr:\n{log}"
        );
        assert!(
            !log.contains("panicked"),
            "keywardd logged a panic; its stderr:\n{log}"
        );
        assert!(
            !self.socket.exists(),
            "keywardd left its socket behind after SIGTERM"
        );
    }
}

/// `n` bytes of a fixed pseudo-random pattern (xorshift32), in which every byte value
/// occurs once `n` is a few thousand.
pub fn pattern(n: usize) -> Vec<u8> {
    let mut state: u32 = 0x9E37_79B9;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_be_bytes()[0]
        })
        .collect()
}

/// Runs `openssl ARGS` and returns its stdout; panics with its stderr if it fails.
pub fn openssl(args: &[&str]) -> Vec<u8> {
    let out = run(Command::new("openssl").args(args), None);
    assert_eq!(out.code, Some(0), "openssl {args:?} failed: {out:#?}");
    out.stdout
}

/// Reads a whole file; panics with its path if it cannot.
pub fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

/// The audit log at `path` once it holds at least `records` complete lines and has not grown
/// for 100 ms. keywardd writes records from a thread of its own (daemon/src/audit.rs), so a
/// record can land just after the response that it records; this waits for it (10 s at most,
/// then panics with what the file holds).
#[track_caller]
pub fn audit_log(path: &Path, records: usize) -> String {
    let started = Instant::now();
    let mut last = (String::new(), Instant::now());
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        let complete = text.matches('\n').count();
        if text != last.0 {
            last = (text.clone(), Instant::now());
        }
        if complete >= records && last.1.elapsed() >= Duration::from_millis(100) {
            return text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the audit log {} did not reach {records} records in 10 s; it holds:\n{text}",
            path.display()
        );
        sleep(Duration::from_millis(10));
    }
}

/// One `keyward` command line for each admin request, with the request's name in the
/// daemon's refusal ("uid N may not NAME"): for tests that a non-admin is refused them all.
/// `secret`, `passphrase` and `new_passphrase` are files the caller's user can read; `key`
/// is a key to try to remove.
pub fn admin_commands<'a>(
    secret: &'a str,
    passphrase: &'a str,
    new_passphrase: &'a str,
    key: &'a str,
) -> [(Vec<&'a str>, &'static str); 7] {
    [
        (vec!["generate", "x", "--scheme", "ed25519"], "generate"),
        (
            vec!["import", "x", "--file", secret, "--scheme", "hmac-sha256"],
            "import",
        ),
        (vec!["remove", key], "remove"),
        (vec!["lock"], "lock"),
        (vec!["unlock", "--passphrase-file", passphrase], "unlock"),
        (vec!["init", "--passphrase-file", passphrase], "init"),
        (
            vec![
                "passwd",
                "--passphrase-file",
                passphrase,
                "--new-passphrase-file",
                new_passphrase,
            ],
            "change-passphrase",
        ),
    ]
}
