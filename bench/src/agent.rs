//! OpenSSH's `ssh-agent` as the peer to beat: started with `ssh-agent -D -a SOCK`, given
//! keys made by `ssh-keygen` through `ssh-add`, then spoken to directly in its protocol
//! (draft-miller-ssh-agent): a frame is a uint32 length, a type byte and SSH wire fields.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context as _;

use crate::daemon::ChildProcess;

const SSH_AGENT_FAILURE: u8 = 5;
const SSH2_AGENTC_REQUEST_IDENTITIES: u8 = 11;
const SSH2_AGENT_IDENTITIES_ANSWER: u8 = 12;
const SSH2_AGENTC_SIGN_REQUEST: u8 = 13;
const SSH2_AGENT_SIGN_RESPONSE: u8 = 14;
/// Sign-request flag asking for `rsa-sha2-256` (RSASSA-PKCS1-v1_5 with SHA-256).
const SSH_AGENT_RSA_SHA2_256: u32 = 2;

/// Frames above this are refused (OpenSSH's own limit is 256 KiB).
const MAX_FRAME: usize = 256 * 1024;

/// The OpenSSH tools this needs.
const TOOLS: [&str; 3] = ["ssh-agent", "ssh-add", "ssh-keygen"];

/// The first OpenSSH tool missing from `$PATH`, if any.
pub(crate) fn missing_tool() -> Option<&'static str> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    TOOLS
        .into_iter()
        .find(|tool| !std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// The kinds of key compared with keywardd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AgentKeyKind {
    Ed25519,
    Rsa2048,
}

impl AgentKeyKind {
    fn keygen_args(self) -> &'static [&'static str] {
        match self {
            AgentKeyKind::Ed25519 => &["-t", "ed25519"],
            AgentKeyKind::Rsa2048 => &["-t", "rsa", "-b", "2048"],
        }
    }

    fn comment(self) -> &'static str {
        match self {
            AgentKeyKind::Ed25519 => "keyward-bench-ed25519",
            AgentKeyKind::Rsa2048 => "keyward-bench-rsa-2048",
        }
    }

    fn flags(self) -> u32 {
        match self {
            AgentKeyKind::Ed25519 => 0,
            AgentKeyKind::Rsa2048 => SSH_AGENT_RSA_SHA2_256,
        }
    }

    /// The signature format name the agent must answer with.
    fn signature_format(self) -> &'static [u8] {
        match self {
            AgentKeyKind::Ed25519 => b"ssh-ed25519",
            AgentKeyKind::Rsa2048 => b"rsa-sha2-256",
        }
    }
}

/// A running `ssh-agent -D`.
#[derive(Debug)]
pub(crate) struct SshAgent {
    _process: ChildProcess,
    socket: PathBuf,
}

impl SshAgent {
    pub(crate) fn start(dir: &Path) -> anyhow::Result<SshAgent> {
        let socket = dir.join("agent.sock");
        let mut process = ChildProcess::spawn(
            "ssh-agent",
            Command::new("ssh-agent").arg("-D").arg("-a").arg(&socket),
            dir.join("ssh-agent.log"),
        )?;
        process.wait_for(|| UnixStream::connect(&socket))?;
        Ok(SshAgent {
            _process: process,
            socket,
        })
    }

    /// Makes a key with `ssh-keygen -N ''` in `dir` and adds it with `ssh-add`.
    pub(crate) fn add_key(&self, dir: &Path, kind: AgentKeyKind) -> anyhow::Result<()> {
        let file = dir.join(kind.comment());
        run(Command::new("ssh-keygen")
            .args(kind.keygen_args())
            .args(["-q", "-N", "", "-C", kind.comment(), "-f"])
            .arg(&file))?;
        run(Command::new("ssh-add")
            .arg("-q")
            .arg(&file)
            .env("SSH_AUTH_SOCK", &self.socket)
            .env_remove("SSH_ASKPASS")
            .env_remove("DISPLAY"))
    }

    pub(crate) fn connect(&self) -> anyhow::Result<AgentConnection> {
        let stream = UnixStream::connect(&self.socket).context("cannot connect to ssh-agent")?;
        Ok(AgentConnection {
            stream,
            response: Vec::new(),
        })
    }
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{command:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// A connection to ssh-agent.
#[derive(Debug)]
pub(crate) struct AgentConnection {
    stream: UnixStream,
    response: Vec<u8>,
}

/// A sign request for one key and payload, encoded once.
#[derive(Debug)]
pub(crate) struct SignRequest {
    frame: Vec<u8>,
    kind: AgentKeyKind,
}

impl AgentConnection {
    /// Sends one message (type byte and body) and reads the answer into `self.response`;
    /// returns its type byte.
    fn call(&mut self, frame: &[u8]) -> anyhow::Result<u8> {
        self.stream.write_all(frame)?;
        let mut header = [0u8; 4];
        self.stream.read_exact(&mut header)?;
        let len = u32::from_be_bytes(header) as usize;
        anyhow::ensure!(
            (1..=MAX_FRAME).contains(&len),
            "ssh-agent sent a frame of {len} bytes"
        );
        self.response.resize(len, 0);
        self.stream.read_exact(&mut self.response)?;
        Ok(self.response[0])
    }

    /// The blob of the key `kind` added, from SSH2_AGENTC_REQUEST_IDENTITIES.
    pub(crate) fn key_blob(&mut self, kind: AgentKeyKind) -> anyhow::Result<Vec<u8>> {
        let answer = self.call(&frame(&[SSH2_AGENTC_REQUEST_IDENTITIES]))?;
        anyhow::ensure!(
            answer == SSH2_AGENT_IDENTITIES_ANSWER,
            "ssh-agent answered message {answer} to REQUEST_IDENTITIES"
        );
        let mut reader = Reader(&self.response[1..]);
        let count = reader.u32()?;
        for _ in 0..count {
            let blob = reader.string()?;
            let comment = reader.string()?;
            if comment == kind.comment().as_bytes() {
                return Ok(blob.to_vec());
            }
        }
        anyhow::bail!("ssh-agent does not list the {} key", kind.comment())
    }

    /// Encodes SSH2_AGENTC_SIGN_REQUEST: string key blob, string data, uint32 flags.
    pub(crate) fn sign_request(blob: &[u8], data: &[u8], kind: AgentKeyKind) -> SignRequest {
        let mut body = vec![SSH2_AGENTC_SIGN_REQUEST];
        put_string(&mut body, blob);
        put_string(&mut body, data);
        body.extend_from_slice(&kind.flags().to_be_bytes());
        SignRequest {
            frame: frame(&body),
            kind,
        }
    }

    /// One signature; checks that it is a signature of the expected format.
    pub(crate) fn sign(&mut self, request: &SignRequest) -> anyhow::Result<()> {
        let answer = self.call(&request.frame)?;
        anyhow::ensure!(
            answer != SSH_AGENT_FAILURE,
            "ssh-agent refused to sign (SSH_AGENT_FAILURE)"
        );
        anyhow::ensure!(
            answer == SSH2_AGENT_SIGN_RESPONSE,
            "ssh-agent answered message {answer} to SIGN_REQUEST"
        );
        let mut outer = Reader(&self.response[1..]);
        let mut signature = Reader(outer.string()?);
        let format = signature.string()?;
        anyhow::ensure!(
            format == request.kind.signature_format(),
            "ssh-agent signed with {:?}, not {:?}",
            String::from_utf8_lossy(format),
            String::from_utf8_lossy(request.kind.signature_format())
        );
        Ok(())
    }
}

/// A length-prefixed frame around `body`.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(4 + body.len());
    put_string(&mut frame, body);
    frame
}

/// An SSH `string`: uint32 length, then the bytes.
fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Reads SSH wire fields from a message.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> anyhow::Result<&'a [u8]> {
        anyhow::ensure!(n <= self.0.len(), "ssh-agent sent a truncated message");
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u32(&mut self) -> anyhow::Result<u32> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn string(&mut self) -> anyhow::Result<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }
}
