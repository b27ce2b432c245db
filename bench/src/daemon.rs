//! Child processes the benchmark starts (keywardd, ssh-agent, the echo server): started on a
//! socket in the run's temporary directory, stopped with SIGTERM when dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use keyward_client::Client;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a child may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a child may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A child process, stopped (SIGTERM, then SIGKILL after 5 s) when dropped.
#[derive(Debug)]
pub(crate) struct ChildProcess {
    child: Child,
    name: &'static str,
    log: PathBuf,
}

impl ChildProcess {
    /// Spawns `command` with stdin and stdout closed and stderr to `log`.
    pub(crate) fn spawn(
        name: &'static str,
        command: &mut Command,
        log: PathBuf,
    ) -> anyhow::Result<ChildProcess> {
        let stderr =
            File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {name} ({command:?})"))?;
        Ok(ChildProcess { child, name, log })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Calls `connect` until it succeeds, the child exits, or the start timeout passes.
    pub(crate) fn wait_for<T, E: std::fmt::Display>(
        &mut self,
        mut connect: impl FnMut() -> Result<T, E>,
    ) -> anyhow::Result<T> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "{} exited at start ({status}); its stderr:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            match connect() {
                Ok(value) => return Ok(value),
                Err(err) if started.elapsed() > START_TIMEOUT => anyhow::bail!(
                    "{} did not listen within {START_TIMEOUT:?} ({err}); its stderr:\n{}",
                    self.name,
                    self.log_text()
                ),
                Err(_) => sleep(Duration::from_millis(10)),
            }
        }
    }

    /// Fails, with the child's stderr, if it has exited.
    pub(crate) fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            anyhow::bail!(
                "{} exited during the benchmark ({status}); its stderr:\n{}",
                self.name,
                self.log_text()
            );
        }
        Ok(())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `keywardd --ephemeral` on a socket of its own.
#[derive(Debug)]
pub(crate) struct Keywardd {
    process: ChildProcess,
    socket: PathBuf,
}

impl Keywardd {
    /// Starts `program --ephemeral --socket <dir>/<name>/keyward.sock` and waits until a
    /// client completes the handshake.
    pub(crate) fn start(program: &Path, dir: &Path, name: &str) -> anyhow::Result<Keywardd> {
        Keywardd::start_with(program, dir, name, None, &[])
    }

    /// [`Keywardd::start`] with a keystore in `keystore` instead of `--ephemeral` (`init` it
    /// first), and `env` added to its environment.
    pub(crate) fn start_with(
        program: &Path,
        dir: &Path,
        name: &str,
        keystore: Option<&Path>,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Keywardd> {
        let socket = dir.join(name).join("keyward.sock");
        let mut command = Command::new(program);
        match keystore {
            Some(keystore) => command.arg("--keystore").arg(keystore),
            None => command.arg("--ephemeral"),
        };
        command
            .arg("--socket")
            .arg(&socket)
            .env("KEYWARD_LOG", "warn")
            .envs(env.iter().copied());
        let mut process =
            ChildProcess::spawn("keywardd", &mut command, dir.join(format!("{name}.log")))?;
        process.wait_for(|| Client::connect(&socket))?;
        Ok(Keywardd { process, socket })
    }

    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    /// A new connection, after the handshake.
    pub(crate) fn connect(&self) -> anyhow::Result<Client> {
        Client::connect(&self.socket).context("cannot connect to keywardd")
    }

    /// The daemon's resident set size now (VmRSS), in KiB.
    pub(crate) fn rss_kib(&mut self) -> anyhow::Result<u64> {
        self.process.check_alive()?;
        proc_status_kib(self.process.pid(), "VmRSS")
    }

    /// The daemon's peak resident set size so far (VmHWM), in KiB.
    pub(crate) fn peak_rss_kib(&mut self) -> anyhow::Result<u64> {
        self.process.check_alive()?;
        proc_status_kib(self.process.pid(), "VmHWM")
    }

    /// The daemon's locked memory (VmLck), in KiB: under `mlockall(MCL_FUTURE)`, every
    /// mapping counts in full against RLIMIT_MEMLOCK.
    pub(crate) fn locked_kib(&mut self) -> anyhow::Result<u64> {
        self.process.check_alive()?;
        proc_status_kib(self.process.pid(), "VmLck")
    }

    /// The daemon's mapped address space (VmSize), in KiB: what `mlockall(MCL_FUTURE)`
    /// would count, where memory could not be locked.
    pub(crate) fn mapped_kib(&mut self) -> anyhow::Result<u64> {
        self.process.check_alive()?;
        proc_status_kib(self.process.pid(), "VmSize")
    }

    pub(crate) fn check_alive(&mut self) -> anyhow::Result<()> {
        self.process.check_alive()
    }
}

/// A `kB` field of /proc/PID/status.
fn proc_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in {path}"))
}

/// The keywardd to measure: `explicit`, else `keywardd` in `$KEYWARD_BIN_DIR`, else next to
/// this executable (`cargo build` puts them side by side in `target/<profile>/`).
pub(crate) fn locate_keywardd(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let candidate = match explicit {
        Some(path) => path.to_path_buf(),
        None => match std::env::var_os("KEYWARD_BIN_DIR").filter(|dir| !dir.is_empty()) {
            Some(dir) => PathBuf::from(dir).join("keywardd"),
            None => std::env::current_exe()
                .context("cannot find this executable")?
                .parent()
                .context("this executable has no directory")?
                .join("keywardd"),
        },
    };
    anyhow::ensure!(
        candidate.is_file(),
        "{} not found: build it first (`cargo build --release` builds keywardd and this \
         benchmark side by side), or give --keywardd PATH",
        candidate.display()
    );
    Ok(candidate)
}
