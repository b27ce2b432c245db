//! The Python column: the pure-Python client (`python/`) signing against the same daemon,
//! in the same rounds as the Rust client, next to what Python bots do today (signing
//! in-process with `cryptography`, and `hmac` from the standard library).
//!
//! `python3 python/benchmarks/roundtrip.py --serve` runs as a child process. It prints one
//! JSON line describing its rows; each `run N` on its stdin makes it time N iterations of
//! every row and answer one JSON line of samples in nanoseconds. The harness sends one
//! `run` per round, between the blocks of its own probes, so a noisy neighbour slows the
//! Python and the Rust figures alike.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;

/// The script, in this repository.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../python/benchmarks/roundtrip.py")
}

/// One row the script times.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Row {
    pub(crate) name: String,
    /// The scheme label (`ed25519`, `hmac-sha256`, `rsa-2048`).
    pub(crate) scheme: String,
    /// `keywardd` (a Python client round trip) or `in-process`.
    pub(crate) via: String,
}

#[derive(Debug, Deserialize)]
struct Ready {
    python: String,
    rows: Vec<Row>,
    notes: Vec<String>,
}

/// The running script.
#[derive(Debug)]
pub(crate) struct PythonBench {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// e.g. `CPython 3.11.7`.
    pub(crate) python: String,
    pub(crate) rows: Vec<Row>,
    pub(crate) notes: Vec<String>,
}

impl PythonBench {
    /// Starts the script against `socket`, with the daemon's Ed25519 and HMAC-SHA256 keys;
    /// returns once it has warmed up (`warmup` iterations per row).
    pub(crate) fn start(
        socket: &Path,
        ed25519: &str,
        hmac: &str,
        warmup: usize,
    ) -> anyhow::Result<PythonBench> {
        let script = script();
        anyhow::ensure!(script.is_file(), "{} not found", script.display());
        let mut child = Command::new("python3")
            .arg(&script)
            .arg("--socket")
            .arg(socket)
            .args(["--ed25519", ed25519, "--hmac", hmac, "--serve", "-n"])
            .arg((warmup * 10).to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot run python3")?;
        let stdin = child.stdin.take().context("python3 has no stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("python3 has no stdout")?);
        let mut bench = PythonBench {
            child,
            stdin,
            stdout,
            python: String::new(),
            rows: Vec::new(),
            notes: Vec::new(),
        };
        let ready: Ready = serde_json::from_str(&bench.line()?)
            .with_context(|| format!("{} did not start", script.display()))?;
        bench.python = ready.python;
        bench.rows = ready.rows;
        bench.notes = ready.notes;
        Ok(bench)
    }

    fn line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .context("cannot read from python3")?;
        anyhow::ensure!(!line.is_empty(), "the Python benchmark exited");
        Ok(line)
    }

    /// Times `n` iterations of every row; the samples by row name.
    pub(crate) fn run(&mut self, n: usize) -> anyhow::Result<BTreeMap<String, Vec<Duration>>> {
        writeln!(self.stdin, "run {n}").context("cannot write to python3")?;
        self.stdin.flush().context("cannot write to python3")?;
        let block: BTreeMap<String, Vec<u64>> =
            serde_json::from_str(&self.line()?).context("the Python benchmark failed")?;
        Ok(block
            .into_iter()
            .map(|(name, samples)| {
                (
                    name,
                    samples.into_iter().map(Duration::from_nanos).collect(),
                )
            })
            .collect())
    }
}

impl Drop for PythonBench {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        if self.child.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(50));
            if self.child.try_wait().ok().flatten().is_none() {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}
