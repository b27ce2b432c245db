//! `init`, `unlock`, `lock`, `status`, `passwd`.

use std::io::{self, Write as _};

use clap::Args;
use keyward_client::{Client, KeyOrderRules, KeystoreState, Status, StatusReport, Welcome};

use crate::exit::{self, Exit};
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

/// Prints the state, then exits non-zero when no key can sign: [`exit::LOCKED`] when
/// locked, [`exit::UNINITIALIZED`] when there is no keystore (for monitoring).
pub(crate) fn status(client: &mut Client, json: bool) -> anyhow::Result<()> {
    let report = client.status_report()?;
    let daemon = client.daemon();
    let text = if json {
        status_json(&report, daemon)
    } else {
        status_text(&report, daemon)
    };
    io::stdout().lock().write_all(text.as_bytes())?;
    match report.status.state {
        KeystoreState::Locked => {
            Err(Exit::new(exit::LOCKED, "the keystore is locked; run `keyward unlock`").into())
        }
        KeystoreState::Uninitialized => Err(Exit::new(
            exit::UNINITIALIZED,
            "the keystore is not initialized; run `keyward init`",
        )
        .into()),
        _ => Ok(()),
    }
}

fn daemon_line(daemon: Option<&Welcome>) -> String {
    match daemon {
        Some(daemon) => format!(
            "keywardd {} (commit {})",
            daemon.daemon_version,
            daemon.daemon_commit.as_deref().unwrap_or("unknown")
        ),
        None => "keywardd of protocol version 2 (too old to tell its version)".to_owned(),
    }
}

/// One line of a key's order rules, as the daemon logs them.
fn rules_line(rules: &KeyOrderRules) -> String {
    let list = |items: &[String]| {
        if items.is_empty() {
            "any".to_owned()
        } else {
            items.join(",")
        }
    };
    let limit = |value: &Option<String>| value.clone().unwrap_or_else(|| "none".to_owned());
    format!(
        "allow_symbols={} allow_sides={} allow_order_types={} max_quantity={} max_notional={} orders_per_minute={}",
        list(&rules.allow_symbols),
        list(&rules.allow_sides),
        list(&rules.allow_order_types),
        limit(&rules.max_quantity),
        limit(&rules.max_notional),
        rules
            .orders_per_minute
            .map_or_else(|| "none".to_owned(), |n| n.to_string()),
    )
}

fn has_rules(rules: &KeyOrderRules) -> bool {
    !rules.allow_symbols.is_empty()
        || !rules.allow_sides.is_empty()
        || !rules.allow_order_types.is_empty()
        || rules.max_quantity.is_some()
        || rules.max_notional.is_some()
        || rules.orders_per_minute.is_some()
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

fn status_text(report: &StatusReport, daemon: Option<&Welcome>) -> String {
    let mut text = keystore_text(&report.status);
    // Keys without order rules are left out of the text (JSON lists every key).
    for rules in report.order_rules.iter().flatten().filter(|r| has_rules(r)) {
        text.push_str(&format!(
            "order rules of {}: {}\n",
            rules.key,
            rules_line(rules)
        ));
    }
    text.push_str(&format!("daemon: {}\n", daemon_line(daemon)));
    text
}

fn keystore_text(status: &Status) -> String {
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

fn status_json(report: &StatusReport, daemon: Option<&Welcome>) -> String {
    let status = &report.status;
    let order_rules = report.order_rules.as_ref().map(|all| {
        all.iter()
            .map(|rules| {
                serde_json::json!({
                    "key": rules.key,
                    "allow_symbols": rules.allow_symbols,
                    "allow_sides": rules.allow_sides,
                    "allow_order_types": rules.allow_order_types,
                    "max_quantity": rules.max_quantity,
                    "max_notional": rules.max_notional,
                    "orders_per_minute": rules.orders_per_minute,
                })
            })
            .collect::<Vec<_>>()
    });
    let daemon = daemon.map(|daemon| {
        serde_json::json!({
            "version": daemon.daemon_version,
            "commit": daemon.daemon_commit,
            "protocol": daemon.version,
        })
    });
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
        "order_rules": order_rules,
        "daemon": daemon,
    });
    format!("{value:#}\n")
}
