//! The floor: a 64-byte ping-pong over a Unix stream socket between two processes, the least
//! any request/response over the daemon's socket can cost (two context switches, four
//! syscalls, no work). The far end is this same executable re-run as `--echo-server PATH`.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::Command;

use anyhow::Context as _;

use crate::daemon::ChildProcess;

/// Bytes per ping and per pong.
pub(crate) const PING_LEN: usize = 64;

/// The hidden `--echo-server PATH` mode: echoes every 64-byte message on every connection
/// until the peer closes; exits when killed.
pub(crate) fn serve(path: &Path) -> anyhow::Result<()> {
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot bind {}", path.display()))?;
    for stream in listener.incoming() {
        let mut stream = stream.context("accept failed")?;
        std::thread::spawn(move || {
            let mut buf = [0u8; PING_LEN];
            while stream.read_exact(&mut buf).is_ok() {
                if stream.write_all(&buf).is_err() {
                    break;
                }
            }
        });
    }
    Ok(())
}

/// The echo server child process.
#[derive(Debug)]
pub(crate) struct EchoServer {
    process: ChildProcess,
    socket: std::path::PathBuf,
}

impl EchoServer {
    pub(crate) fn start(dir: &Path) -> anyhow::Result<EchoServer> {
        let socket = dir.join("echo.sock");
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let mut process = ChildProcess::spawn(
            "the echo server",
            Command::new(exe).arg("--echo-server").arg(&socket),
            dir.join("echo.log"),
        )?;
        process.wait_for(|| UnixStream::connect(&socket))?;
        Ok(EchoServer { process, socket })
    }

    pub(crate) fn connect(&mut self) -> anyhow::Result<Ping> {
        self.process.check_alive()?;
        let stream =
            UnixStream::connect(&self.socket).context("cannot connect to the echo server")?;
        Ok(Ping {
            stream,
            buf: [0x5a; PING_LEN],
        })
    }
}

/// One connection to the echo server.
#[derive(Debug)]
pub(crate) struct Ping {
    stream: UnixStream,
    buf: [u8; PING_LEN],
}

impl Ping {
    /// One round trip: 64 bytes there, the same 64 back.
    pub(crate) fn round_trip(&mut self) -> anyhow::Result<()> {
        self.stream.write_all(&self.buf)?;
        self.stream.read_exact(&mut self.buf)?;
        Ok(())
    }
}
