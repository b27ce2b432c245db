//! Reloading the config file while serving. SIGHUP and the `Reload` request (`keyward
//! reload`, which the unit's `ExecReload=` runs) both call [`reload`], so that every way
//! reports the same outcome; only the request has someone to answer.
//!
//! Only the policy part of the file reloads: the `[daemon]` section (socket, keystore,
//! audit log, limits) is read at start, and a change there is reported, not applied.
//!
//! Every reload also reopens the audit log at its path, so that logrotate can move the file
//! away and have the next record start a new one. That happens even when the new config is
//! invalid: rotation must not depend on the policy file.

use std::path::PathBuf;

use crate::config::{self, DaemonConfig};
use crate::daemon::Daemon;
use crate::policy::Policy;

/// Where the config came from, and its `[daemon]` section at start (to tell a reload that
/// changed it that the change waits for a restart).
#[derive(Debug, Clone)]
pub(crate) struct ConfigSource {
    /// The file, and whether it must exist (`--config` given, or the default path).
    /// `None`: no file, so a reload puts the built-in defaults in force.
    pub(crate) file: Option<(PathBuf, bool)>,
    /// The `[daemon]` section read at start.
    pub(crate) daemon_at_start: DaemonConfig,
}

/// What a successful reload changed, for the log and for whoever asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reloaded {
    /// The `[daemon]` section differs from the one in force: it applies at the next start.
    pub(crate) daemon_section_changed: bool,
    /// Why the audit log could not be reopened (records go on to the file open before).
    pub(crate) audit_reopen_error: Option<String>,
}

/// Re-reads the config file and puts its policy in force. An invalid file changes nothing:
/// the old policy stays in force and the error (one line) is returned. `trigger` names the
/// cause in log lines ("SIGHUP").
pub(crate) fn reload(daemon: &Daemon, trigger: &str) -> Result<Reloaded, String> {
    // Logged by reopen() on failure; reported to whoever asked below.
    let audit_reopen_error = daemon.audit.reopen().err();
    let source = &daemon.config_source;
    let loaded = match &source.file {
        Some((path, must_exist)) => config::load(path, *must_exist).map_err(|err| err.to_string()),
        None => config::parse(""),
    };
    let new = match loaded {
        Ok(new) => new,
        Err(err) => {
            tracing::error!(
                "{trigger}: the new config is invalid, the old policy stays in force: {err}"
            );
            crate::stats::global().record_reload(false);
            return Err(match audit_reopen_error {
                Some(audit) => format!("{err}; and {audit}"),
                None => err,
            });
        }
    };
    daemon.set_policy(new.policy);
    crate::stats::global().record_reload(true);
    tracing::info!("{trigger}: policy reloaded");
    daemon.warn_about_unknown_key_tables(trigger);
    daemon.report_format_disagreements(trigger);
    log_order_rules(&daemon.policy(), trigger);
    let daemon_section_changed = new.daemon != source.daemon_at_start;
    if daemon_section_changed {
        tracing::warn!(
            "{trigger}: the [daemon] section changed; those settings take effect only at restart"
        );
    }
    Ok(Reloaded {
        daemon_section_changed,
        audit_reopen_error,
    })
}

/// Logs each policy section's order rules (issue 17). An admin also sees them per key in
/// `keyward status` (the wire's `StatusReport`).
pub(crate) fn log_order_rules(policy: &Policy, when: &str) {
    for line in policy.order_rules_report() {
        tracing::info!("{when}: order rules: {line}");
    }
}
