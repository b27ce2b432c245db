//! `keyward demo`: the whole path on a throwaway daemon, in a few seconds.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use keyward_client::exchanges::binance;
use keyward_client::{Client, KeyKind};

use crate::{output, verify};

/// How long the demo waits for its daemon to listen.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A daemon child that is stopped (SIGTERM, then waited for) when dropped, whatever happens.
struct DemoDaemon(Child);

impl Drop for DemoDaemon {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = self.0.wait();
    }
}

/// `keywardd` next to this executable (cargo and installs put them side by side), else PATH.
fn daemon_program() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("keywardd")))
        .filter(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from("keywardd"))
}

fn start_daemon(dir: &Path, socket: &Path) -> anyhow::Result<(DemoDaemon, Client)> {
    let program = daemon_program();
    // An empty config of its own: the user's keywardd.toml (policy, audit log) is not the
    // demo's business.
    let config = dir.join("keywardd.toml");
    std::fs::write(&config, "").context("cannot write the demo's config")?;
    let child = Command::new(&program)
        .arg("--ephemeral")
        .arg("--config")
        .arg(&config)
        .arg("--socket")
        .arg(socket)
        .env("KEYWARD_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    let mut daemon = DemoDaemon(child);
    let started = Instant::now();
    loop {
        match Client::connect(socket) {
            Ok(client) => return Ok((daemon, client)),
            Err(err) if started.elapsed() > START_TIMEOUT => {
                return Err(err).context("the demo daemon did not start listening");
            }
            Err(_) => {
                if let Some(status) = daemon.0.try_wait()? {
                    anyhow::bail!("the demo daemon exited at start ({status})");
                }
                sleep(Duration::from_millis(20));
            }
        }
    }
}

pub(crate) fn run() -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("keyward-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let socket = dir.path().join("run").join("keyward.sock");
    let (_daemon, mut client) = start_daemon(dir.path(), &socket)?;
    println!("started a throwaway keywardd on {}", socket.display());

    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let query = format!(
        "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.001&price=20000&recvWindow=5000&timestamp={timestamp}"
    );
    println!("order query: {query}\n");

    for (name, kind) in [
        ("demo-ed25519", KeyKind::Ed25519),
        ("demo-rsa", KeyKind::Rsa2048),
    ] {
        let key = client.generate(name, kind, None, None)?;
        let spki = key
            .public_key
            .as_deref()
            .context("a generated key came back without its public key")?;
        println!("generated {name} ({kind}), public key to upload to Binance:");
        print!("{}", output::spki_pem(spki)?);

        let signature = client.sign(name, query.as_bytes())?;
        verify::verify(key.scheme, spki, query.as_bytes(), signature.as_bytes())
            .with_context(|| format!("{name}: signature check failed"))?;
        println!("signature verifies against the public key: yes");
        println!(
            "signed query: {}\n",
            binance::append_signature(&query, &signature)
        );
    }
    println!("stopping the demo daemon; its keys existed only in its memory");
    Ok(())
}
