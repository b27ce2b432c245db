//! `keyward-bench`: measures a real `keywardd` against the limits a signature cannot beat
//! (the same signature made in-process with aws-lc-rs, a ping-pong over a Unix socket) and
//! against its peer (OpenSSH's `ssh-agent`), all side by side in one run; with the Python
//! client (`python/benchmarks/roundtrip.py`, see `python.rs`) in the same rounds.
//!
//! ```text
//! cargo build --release && cargo run --release -p keyward-bench -- [--quick] [--json]
//! ```
//!
//! `keywardd` is taken from next to this executable (`target/<profile>/keywardd`), from
//! `$KEYWARD_BIN_DIR`, or from `--keywardd PATH`. `--quick` is the CI smoke mode: few
//! iterations, no RSA-4096, and ssh-agent only if it is installed; its figures check that
//! every measurement works and mean nothing as timings.
//!
//! A hidden `--load SOCKET SCHEME THREADS SECONDS` mode signs against a keywardd started by
//! hand (e.g. `keywardd --ephemeral --socket S`), for `perf record -p` or `perf stat -p` to
//! watch: it imports a fresh key of SCHEME, prints the single-connection p50 round trip, then
//! keeps THREADS connections signing for SECONDS and prints signatures per second.
//!
//! Two more hidden modes are this executable re-run as the far end of a measurement:
//! `--echo-server` (the socket floor, echo.rs) and `--bare-signer` (bare.rs).
//!
//! Measurements that are compared with each other are interleaved in rounds (A, B, A, B...)
//! so that a noisy neighbour on a shared machine slows both sides of a ratio alike.
#![forbid(unsafe_code)]

mod agent;
mod bare;
mod daemon;
mod echo;
mod keys;
mod measure;
mod noise;
mod python;
mod report;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

const USAGE: &str = "usage: keyward-bench [--quick] [--json] [--keywardd PATH]

  --quick          CI smoke mode: few iterations, no RSA-4096; checks that everything works
  --json           print the report as one JSON object instead of tables
  --keywardd PATH  the daemon to measure [default: keywardd next to this executable,
                   else in $KEYWARD_BIN_DIR]";

/// What the command line asked for.
#[derive(Debug)]
struct Options {
    quick: bool,
    json: bool,
    keywardd: Option<PathBuf>,
}

enum Command {
    Bench(Options),
    /// Hidden: the far end of the socket floor measurement (see [`echo`]).
    EchoServer(PathBuf),
    /// Hidden: the bare signer, the least an out-of-process signer costs (see [`bare`]).
    BareSigner {
        socket: PathBuf,
        keydir: PathBuf,
    },
    /// Hidden: signs against an already running keywardd, for a profiler attached to it.
    Load(run::Load),
    Help,
}

fn parse_args() -> anyhow::Result<Command> {
    let mut args = std::env::args_os().skip(1);
    let mut options = Options {
        quick: false,
        json: false,
        keywardd: None,
    };
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--quick") => options.quick = true,
            Some("--json") => options.json = true,
            Some("--keywardd") => {
                options.keywardd = Some(args.next().context("--keywardd needs a path")?.into());
            }
            Some("--echo-server") => {
                let path = args.next().context("--echo-server needs a path")?;
                return Ok(Command::EchoServer(path.into()));
            }
            Some("--bare-signer") => {
                let socket = args.next().context("--bare-signer needs a socket path")?;
                let keydir = args.next().context("--bare-signer needs a key directory")?;
                return Ok(Command::BareSigner {
                    socket: socket.into(),
                    keydir: keydir.into(),
                });
            }
            Some("--load") => {
                let mut next = |what: &str| -> anyhow::Result<String> {
                    args.next()
                        .and_then(|arg| arg.into_string().ok())
                        .with_context(|| format!("--load needs {what}"))
                };
                let socket = PathBuf::from(next("a socket path")?);
                let scheme = next("a scheme")?;
                let threads = next("a thread count")?.parse()?;
                let seconds = next("a duration in seconds")?.parse()?;
                return Ok(Command::Load(run::Load::new(
                    socket, &scheme, threads, seconds,
                )?));
            }
            Some("-h" | "--help") => return Ok(Command::Help),
            _ => anyhow::bail!("unexpected argument {arg:?}\n{USAGE}"),
        }
    }
    Ok(Command::Bench(options))
}

fn main() -> ExitCode {
    let command = match parse_args() {
        Ok(command) => command,
        Err(err) => {
            eprintln!("keyward-bench: {err:#}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Help => emit(&format!("{USAGE}\n")),
        Command::EchoServer(path) => echo::serve(&path),
        Command::BareSigner { socket, keydir } => bare::serve(&socket, &keydir),
        Command::Load(load) => load.run(),
        Command::Bench(options) => run::run(&options.plan())
            .map(|report| {
                if options.json {
                    format!("{}\n", report.to_json())
                } else {
                    report.render()
                }
            })
            .and_then(|text| emit(&text)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("keyward-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes `text` to stdout. A closed pipe (`keyward-bench | head`) is not an error.
pub(crate) fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err.into()),
        _ => Ok(()),
    }
}

impl Options {
    fn plan(&self) -> run::Plan {
        if self.quick {
            run::Plan::quick(self.keywardd.clone())
        } else {
            run::Plan::full(self.keywardd.clone())
        }
    }
}
