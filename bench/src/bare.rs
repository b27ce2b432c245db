//! The bare signer: the least an out-of-process signer can cost. A second process holds the
//! very keys the daemon holds and, on its own thread per connection with blocking I/O,
//! reads a length-prefixed payload, signs it with aws-lc-rs as the daemon does, and writes
//! the signature back. No framing library, no protocol, no policy, no audit, no lookups.
//!
//! Why it is measured: on a virtual machine, a client that blocks while its request is served
//! lets its vCPU go idle, and waking an idle vCPU costs more the longer it slept (tens of µs
//! after a 2 ms RSA-4096 signature, against a few after a 12 µs Ed25519 one). That cost is
//! the machine's, and every out-of-process signer pays it, keywardd or this one; "keywardd
//! round trip − bare signer round trip" is what keywardd itself adds. The far end is this
//! same executable re-run as `--bare-signer SOCKET KEYDIR`.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::Context as _;

use crate::daemon::ChildProcess;
use crate::keys::{BenchScheme, LocalKey};

/// The hidden `--bare-signer SOCKET KEYDIR` mode: loads every `KEYDIR/<scheme>.key` written by
/// [`BareSigner::start`], then serves connections until killed. A connection's first byte is
/// the scheme's index in [`BenchScheme::ALL`]; then each request is a `u32` (LE) length and
/// the payload, each answer a `u32` (LE) length and the signature.
pub(crate) fn serve(socket: &Path, keydir: &Path) -> anyhow::Result<()> {
    let mut keys = Vec::new();
    for scheme in BenchScheme::ALL {
        let path = key_path(keydir, scheme);
        let key = match std::fs::read(&path) {
            Ok(material) => Some(LocalKey::from_material(scheme, &material)?),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
        };
        keys.push(key);
    }
    let keys = Arc::new(keys);
    let listener =
        UnixListener::bind(socket).with_context(|| format!("cannot bind {}", socket.display()))?;
    for stream in listener.incoming() {
        let stream = stream.context("accept failed")?;
        let keys = Arc::clone(&keys);
        std::thread::spawn(move || {
            // A connection that breaks the protocol is dropped; the bench then reports it.
            let _ = serve_connection(stream, &keys);
        });
    }
    Ok(())
}

fn serve_connection(mut stream: UnixStream, keys: &[Option<LocalKey>]) -> anyhow::Result<()> {
    let mut index = [0u8; 1];
    stream.read_exact(&mut index)?;
    let key = keys
        .get(usize::from(index[0]))
        .and_then(Option::as_ref)
        .context("no key for that scheme")?;
    let mut payload = Vec::new();
    loop {
        let mut length = [0u8; 4];
        if stream.read_exact(&mut length).is_err() {
            return Ok(()); // the bench closed the connection
        }
        payload.resize(u32::from_le_bytes(length) as usize, 0);
        stream.read_exact(&mut payload)?;
        let signature = key.sign(&payload)?;
        let mut answer = Vec::with_capacity(4 + signature.len());
        answer.extend_from_slice(&u32::try_from(signature.len())?.to_le_bytes());
        answer.extend_from_slice(&signature);
        stream.write_all(&answer)?;
    }
}

fn key_path(keydir: &Path, scheme: BenchScheme) -> PathBuf {
    keydir.join(format!("{}.key", scheme.label()))
}

/// The bare signer child process.
#[derive(Debug)]
pub(crate) struct BareSigner {
    process: ChildProcess,
    socket: PathBuf,
}

impl BareSigner {
    /// Writes `keys` (throwaway benchmark keys) into `dir`, readable by this user only, and
    /// starts the bare signer on them.
    pub(crate) fn start<'a>(
        dir: &Path,
        keys: impl IntoIterator<Item = &'a LocalKey>,
    ) -> anyhow::Result<BareSigner> {
        let keydir = dir.join("bare-keys");
        std::fs::create_dir(&keydir).context("cannot create the bare signer's key directory")?;
        for key in keys {
            let path = key_path(&keydir, key.scheme);
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .and_then(|mut file| file.write_all(key.material()))
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        let socket = dir.join("bare.sock");
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let mut process = ChildProcess::spawn(
            "the bare signer",
            Command::new(exe)
                .arg("--bare-signer")
                .arg(&socket)
                .arg(&keydir),
            dir.join("bare.log"),
        )?;
        process.wait_for(|| UnixStream::connect(&socket))?;
        Ok(BareSigner { process, socket })
    }

    /// A connection that signs with the key of `scheme`.
    pub(crate) fn connect(&mut self, scheme: BenchScheme) -> anyhow::Result<BareConnection> {
        self.process.check_alive()?;
        let mut stream =
            UnixStream::connect(&self.socket).context("cannot connect to the bare signer")?;
        let index = BenchScheme::ALL
            .iter()
            .position(|known| *known == scheme)
            .context("unknown scheme")?;
        stream.write_all(&[u8::try_from(index)?])?;
        Ok(BareConnection {
            stream,
            request: Vec::new(),
            answer: Vec::new(),
        })
    }
}

/// One connection to the bare signer, for one scheme.
#[derive(Debug)]
pub(crate) struct BareConnection {
    stream: UnixStream,
    request: Vec<u8>,
    answer: Vec<u8>,
}

impl BareConnection {
    /// One round trip: the payload there, its signature back (left in [`Self::signature`]).
    pub(crate) fn sign(&mut self, payload: &[u8]) -> anyhow::Result<()> {
        self.send(payload)?;
        let mut length = [0u8; 4];
        self.stream
            .read_exact(&mut length)
            .context("the bare signer closed the connection")?;
        self.answer.resize(u32::from_le_bytes(length) as usize, 0);
        self.stream.read_exact(&mut self.answer)?;
        Ok(())
    }

    /// [`Self::sign`], but waiting for the answer by polling a non-blocking socket instead of
    /// sleeping in `read`: the client's CPU never goes idle, so nothing has to wake it. The
    /// difference to [`Self::sign`] is the wake-up cost bare.rs is about. A diagnostic only:
    /// no client should burn a CPU like this.
    pub(crate) fn sign_polling(&mut self, payload: &[u8]) -> anyhow::Result<()> {
        self.send(payload)?;
        self.stream.set_nonblocking(true)?;
        let mut length = [0u8; 4];
        let read = poll_exact(&mut self.stream, &mut length).and_then(|()| {
            self.answer.resize(u32::from_le_bytes(length) as usize, 0);
            poll_exact(&mut self.stream, &mut self.answer)
        });
        self.stream.set_nonblocking(false)?;
        read
    }

    /// Writes one request: the payload's length and the payload, in one write.
    fn send(&mut self, payload: &[u8]) -> anyhow::Result<()> {
        self.request.clear();
        self.request
            .extend_from_slice(&u32::try_from(payload.len())?.to_le_bytes());
        self.request.extend_from_slice(payload);
        self.stream.write_all(&self.request)?;
        Ok(())
    }

    /// The last signature received.
    pub(crate) fn signature(&self) -> &[u8] {
        &self.answer
    }
}

/// `read_exact` on a non-blocking stream, spinning while nothing has arrived.
fn poll_exact(stream: &mut UnixStream, mut buf: &mut [u8]) -> anyhow::Result<()> {
    while !buf.is_empty() {
        match stream.read(buf) {
            Ok(0) => anyhow::bail!("the bare signer closed the connection"),
            Ok(n) => buf = &mut buf[n..],
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}
