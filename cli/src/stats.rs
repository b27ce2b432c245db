//! `keyward stats` (JSON) and `keyward stats --prometheus` (the text exposition format, for
//! node_exporter's textfile collector), and `keyward reload`.

use std::fmt::Write as _;
use std::io::{self, Write as _};

use keyward_client::{Client, KeystoreState, Stats, Status, Welcome};

pub(crate) fn stats(client: &mut Client, prometheus: bool) -> anyhow::Result<()> {
    let stats = client.stats()?;
    let text = if prometheus {
        // The keystore's state belongs in the same scrape: "locked" is what to alert on.
        let status = client.status()?;
        prometheus_text(&stats, &status, client.daemon())
    } else {
        format!("{:#}\n", stats_json(&stats))
    };
    io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

pub(crate) fn reload(client: &mut Client) -> anyhow::Result<()> {
    let daemon_section_changed = client.reload()?;
    let mut out = io::stdout().lock();
    writeln!(out, "reloaded: the new policy is in force")?;
    if daemon_section_changed {
        writeln!(
            out,
            "note: the [daemon] section changed; those settings take effect only when keywardd restarts"
        )?;
    }
    Ok(())
}

pub(crate) fn stats_json(stats: &Stats) -> serde_json::Value {
    let signatures: Vec<_> = stats
        .signatures
        .iter()
        .map(|c| serde_json::json!({"key": c.key, "scheme": c.scheme.name(), "count": c.count}))
        .collect();
    let denials: serde_json::Map<String, serde_json::Value> = stats
        .denials
        .iter()
        .map(|d| (d.name.clone(), d.count.into()))
        .collect();
    serde_json::json!({
        "uptime_secs": stats.uptime_secs,
        "signatures": signatures,
        "denials": denials,
        "rate_limited": stats.rate_limited,
        "locked_refusals": stats.locked_refusals,
        "audit_failures": stats.audit_failures,
        "audit_drops": stats.audit_drops,
        "connections_open": stats.connections_open,
        "connections_accepted": stats.connections_accepted,
        "connections_refused": stats.connections_refused,
        "unlocks": stats.unlocks,
        "reloads": stats.reloads,
        "reload_failures": stats.reload_failures,
    })
}

/// A label value as the exposition format wants it: `\`, `"` and newline escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family: HELP and TYPE lines, then its samples (`labels` without braces, or
/// empty, and the value).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

fn one(value: u64) -> Vec<(String, u64)> {
    vec![(String::new(), value)]
}

/// The Prometheus text exposition format (version 0.0.4), every metric named `keyward_*`.
pub(crate) fn prometheus_text(stats: &Stats, status: &Status, daemon: Option<&Welcome>) -> String {
    let mut out = String::new();
    if let Some(daemon) = daemon {
        let commit = daemon.daemon_commit.as_deref().unwrap_or("unknown");
        family(
            &mut out,
            "keyward_build_info",
            "gauge",
            "The keywardd version and git commit (always 1).",
            &[(
                format!(
                    "version=\"{}\",commit=\"{}\"",
                    label(&daemon.daemon_version),
                    label(commit)
                ),
                1,
            )],
        );
    }
    let states = [
        (KeystoreState::Uninitialized, "uninitialized"),
        (KeystoreState::Locked, "locked"),
        (KeystoreState::Unlocked, "unlocked"),
        (KeystoreState::Ephemeral, "ephemeral"),
    ];
    let state_samples: Vec<_> = states
        .iter()
        .map(|(state, name)| {
            (
                format!("state=\"{name}\""),
                u64::from(status.state == *state),
            )
        })
        .collect();
    family(
        &mut out,
        "keyward_keystore_state",
        "gauge",
        "1 for the keystore's current state, 0 for the others; alert on state=\"unlocked\" being 0.",
        &state_samples,
    );
    family(
        &mut out,
        "keyward_keys",
        "gauge",
        "Usable keys in the keystore.",
        &one(u64::from(status.keys)),
    );
    family(
        &mut out,
        "keyward_uptime_seconds",
        "gauge",
        "Seconds since keywardd started.",
        &one(stats.uptime_secs),
    );
    let signatures: Vec<_> = stats
        .signatures
        .iter()
        .map(|c| {
            (
                format!("key=\"{}\",scheme=\"{}\"", label(&c.key), c.scheme.name()),
                c.count,
            )
        })
        .collect();
    family(
        &mut out,
        "keyward_signatures_total",
        "counter",
        "Signatures made, per key and scheme (a batch counts each payload).",
        &signatures,
    );
    let denials: Vec<_> = stats
        .denials
        .iter()
        .map(|d| (format!("reason=\"{}\"", label(&d.name)), d.count))
        .collect();
    family(
        &mut out,
        "keyward_denials_total",
        "counter",
        "Requests refused by a decision, per reason (denied, policy-violation, batch-exceeds-burst).",
        &denials,
    );
    let counters = [
        (
            "keyward_rate_limited_total",
            "Sign requests refused by a rate limit.",
            stats.rate_limited,
        ),
        (
            "keyward_locked_refusals_total",
            "Sign requests refused because the keystore was locked.",
            stats.locked_refusals,
        ),
        (
            "keyward_audit_failures_total",
            "Audit records that could not be written.",
            stats.audit_failures,
        ),
        (
            "keyward_audit_drops_total",
            "Audit records dropped because the audit writer's queue was full.",
            stats.audit_drops,
        ),
        (
            "keyward_connections_accepted_total",
            "Connections accepted for service.",
            stats.connections_accepted,
        ),
        (
            "keyward_connections_refused_total",
            "Connections refused at accept (no right at all, or a connection limit).",
            stats.connections_refused,
        ),
        (
            "keyward_unlocks_total",
            "Successful unlocks.",
            stats.unlocks,
        ),
        (
            "keyward_reloads_total",
            "Successful config reloads (SIGHUP or keyward reload).",
            stats.reloads,
        ),
        (
            "keyward_reload_failures_total",
            "Reloads refused because the new config was invalid.",
            stats.reload_failures,
        ),
    ];
    for (name, help, value) in counters {
        family(&mut out, name, "counter", help, &one(value));
    }
    family(
        &mut out,
        "keyward_connections_open",
        "gauge",
        "Connections being served now.",
        &one(stats.connections_open),
    );
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use keyward_client::Scheme;
    use keyward_client::protocol::{NamedCount, SignatureCount};

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let stats = Stats {
            uptime_secs: 5,
            signatures: vec![SignatureCount {
                key: "k".into(),
                scheme: Scheme::Ed25519,
                count: 2,
            }],
            denials: vec![NamedCount {
                name: "denied".into(),
                count: 1,
            }],
            rate_limited: 0,
            locked_refusals: 0,
            audit_failures: 0,
            audit_drops: 0,
            connections_open: 1,
            connections_accepted: 3,
            connections_refused: 0,
            unlocks: 1,
            reloads: 0,
            reload_failures: 0,
        };
        let status = Status {
            state: KeystoreState::Locked,
            keys: 0,
            idle_lock_in: None,
            max_unlock_in: None,
            unreadable: Vec::new(),
        };
        let text = prometheus_text(&stats, &status, None);
        assert!(text.contains("keyward_signatures_total{key=\"k\",scheme=\"ed25519\"} 2\n"));
        assert!(text.contains("keyward_keystore_state{state=\"locked\"} 1\n"));
        assert!(text.contains("keyward_keystore_state{state=\"unlocked\"} 0\n"));
        let mut typed = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed = rest.split(' ').next().map(str::to_owned);
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(typed.as_deref(), Some(name), "{line}");
            }
        }
    }
}
