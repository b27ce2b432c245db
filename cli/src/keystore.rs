//! `init`, `unlock`, `lock`, `status`, `passwd`.

use std::io::{self, Write as _};

use clap::Args;
use keyward_client::{Client, KeystoreState, Status};

use crate::passphrase::PassphraseSource;

/// Sources of the current and the new passphrase for `passwd`.
#[derive(Debug, Args)]
pub(crate) struct PasswdArgs {
    #[command(flatten)]
    old: PassphraseSource,
    /// Read the new passphrase from this file (its first line).
    #[arg(long, value_name = "PATH")]
    new_passphrase_file: Option<std::path::PathBuf>,
}

pub(crate) fn init(client: &mut Client, source: &PassphraseSource) -> anyhow::Result<()> {
    let passphrase = source.read("New keystore passphrase", true)?;
    client.init(passphrase)?;
    writeln!(io::stdout().lock(), "keystore created and unlocked")?;
    Ok(())
}

pub(crate) fn unlock(client: &mut Client, source: &PassphraseSource) -> anyhow::Result<()> {
    let passphrase = source.read("Keystore passphrase", false)?;
    client.unlock(passphrase)?;
    let status = client.status()?;
    let mut out = io::stdout().lock();
    writeln!(out, "unlocked: {} keys", status.keys)?;
    for bad in &status.unreadable {
        writeln!(
            out,
            "warning: key {} could not be read: {}",
            bad.name, bad.reason
        )?;
    }
    Ok(())
}

pub(crate) fn lock(client: &mut Client) -> anyhow::Result<()> {
    client.lock()?;
    writeln!(io::stdout().lock(), "locked")?;
    Ok(())
}

pub(crate) fn passwd(client: &mut Client, args: &PasswdArgs) -> anyhow::Result<()> {
    let old = args.old.read("Current passphrase", false)?;
    let new_source = match &args.new_passphrase_file {
        Some(path) => PassphraseSource::from_file(path.clone()),
        None => PassphraseSource::default(),
    };
    let new = new_source.read("New passphrase", true)?;
    client.change_passphrase(old, new)?;
    writeln!(io::stdout().lock(), "passphrase changed")?;
    Ok(())
}

pub(crate) fn status(client: &mut Client, json: bool) -> anyhow::Result<()> {
    let status = client.status()?;
    let text = if json {
        status_json(&status)
    } else {
        status_text(&status)
    };
    io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

fn state_name(state: KeystoreState) -> &'static str {
    match state {
        KeystoreState::Uninitialized => "uninitialized",
        KeystoreState::Locked => "locked",
        KeystoreState::Unlocked => "unlocked",
        KeystoreState::Ephemeral => "ephemeral",
        _ => "unknown",
    }
}

fn status_text(status: &Status) -> String {
    let mut text = format!(
        "state: {}\nkeys: {}\n",
        state_name(status.state),
        status.keys
    );
    let secs =
        |value: Option<u64>| value.map_or_else(|| "never".to_owned(), |s| format!("in {s} s"));
    if matches!(status.state, KeystoreState::Unlocked) {
        text.push_str(&format!("idle auto-lock: {}\n", secs(status.idle_lock_in)));
        text.push_str(&format!("maximum unlock: {}\n", secs(status.max_unlock_in)));
    }
    for bad in &status.unreadable {
        text.push_str(&format!("unreadable key {}: {}\n", bad.name, bad.reason));
    }
    text
}

fn status_json(status: &Status) -> String {
    let unreadable: Vec<_> = status
        .unreadable
        .iter()
        .map(|bad| serde_json::json!({"name": bad.name, "reason": bad.reason}))
        .collect();
    let value = serde_json::json!({
        "state": state_name(status.state),
        "keys": status.keys,
        "idle_lock_in": status.idle_lock_in,
        "max_unlock_in": status.max_unlock_in,
        "unreadable": unreadable,
    });
    format!("{value:#}\n")
}
