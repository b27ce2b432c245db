//! The daemon's shared state: the keyring, the keystore's lifecycle, the policy in force and
//! the audit log. Request handling is in `handler/`.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use keyward_protocol::{SecretBytes, Status};

use crate::audit::AuditLog;
use crate::failure::Failure;
use crate::keyring::Keyring;
use crate::lifecycle::{AutoLock, Lifecycle};
use crate::limits::Limits;
use crate::peer::Peer;
use crate::policy::{Policy, RateLimiter};
use crate::refusals::Refusals;
use crate::reload::ConfigSource;
use crate::store::Store;

/// Settings fixed at start.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Largest request frame body accepted.
    pub(crate) max_frame: u32,
    /// When the keystore locks by itself.
    pub(crate) auto_lock: AutoLock,
    /// Limits on connections.
    pub(crate) limits: Limits,
}

#[derive(Debug)]
pub(crate) struct Daemon {
    pub(crate) settings: Settings,
    /// The daemon's own uid: always served, and always an admin (the policy adds others).
    pub(crate) uid: u32,
    pub(crate) keyring: Keyring,
    /// Init, unlock, lock, passphrase change, adding and removing keys (one admin lock).
    pub(crate) lifecycle: Lifecycle,
    pub(crate) audit: AuditLog,
    /// Refused connections, counted per uid and interval.
    pub(crate) refusals: Refusals,
    pub(crate) rates: RateLimiter,
    /// The policy in force; a reload replaces the whole snapshot at once.
    policy: RwLock<Arc<Policy>>,
    /// Where a reload reads the config from.
    pub(crate) config_source: ConfigSource,
}

impl Daemon {
    pub(crate) fn new(
        settings: Settings,
        store: Store,
        policy: Policy,
        audit: AuditLog,
        config_source: ConfigSource,
    ) -> Arc<Daemon> {
        let lifecycle = Lifecycle::new(store, settings.auto_lock);
        Arc::new(Daemon {
            settings,
            uid: nix::unistd::geteuid().as_raw(),
            keyring: lifecycle.initial_keyring(),
            lifecycle,
            audit,
            refusals: Refusals::default(),
            rates: RateLimiter::default(),
            policy: RwLock::new(Arc::new(policy)),
            config_source,
        })
    }

    /// The policy in force now.
    pub(crate) fn policy(&self) -> Arc<Policy> {
        Arc::clone(
            &self
                .policy
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// Puts a new policy in force (SIGHUP); requests already past their checks are unaffected.
    pub(crate) fn set_policy(&self, policy: Policy) {
        *self
            .policy
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(policy);
    }

    /// May this peer talk to the daemon at all?
    pub(crate) fn may_connect(&self, peer: &Peer) -> bool {
        self.policy().may_connect(peer, self.uid)
    }

    /// Records a use of the keys (restarts the idle auto-lock clock).
    pub(crate) fn touch(&self) {
        self.lifecycle.touch();
    }

    pub(crate) async fn unlock(&self, passphrase: SecretBytes) -> Result<(), Failure> {
        self.lifecycle.unlock(&self.keyring, passphrase).await?;
        crate::stats::global().record_unlock();
        self.warn_about_unknown_key_tables("unlock");
        self.report_format_disagreements("unlock");
        Ok(())
    }

    /// Warns (in the log) about each `[keys."NAME"]` table of the policy that names no key:
    /// a typo there would otherwise leave the key it meant under `[defaults]`, silently.
    /// Called at start, after unlock and after SIGHUP; `when` says which.
    pub(crate) fn warn_about_unknown_key_tables(&self, when: &str) {
        let policy = self.policy();
        if policy.keys.is_empty() {
            return;
        }
        let known: BTreeSet<String> = match self.keyring.list() {
            Ok(keys) => keys.into_iter().map(|key| key.name).collect(),
            Err(_) => match self.lifecycle.key_names() {
                Some(names) => names.into_iter().collect(),
                None => return,
            },
        };
        for name in policy.keys.keys().filter(|name| !known.contains(*name)) {
            tracing::warn!(
                key = %name,
                "{when}: the config's [keys.{name:?}] table names no key in the keystore (a typo?); \
                 it applies to nothing, and a key it was meant for falls under [defaults]"
            );
        }
    }

    /// Logs each key whose config section sets another format than the one stored with it
    /// (the config's wins). Called when either side changes: unlock, SIGHUP.
    pub(crate) fn report_format_disagreements(&self, when: &str) {
        let Ok(keys) = self.keyring.list() else {
            return;
        };
        let policy = self.policy();
        for key in &keys {
            if let Some(warning) = policy.format_disagreement(key) {
                tracing::warn!("{when}: {warning}");
            }
        }
    }

    /// Drops every decrypted key (a no-op for an ephemeral daemon).
    pub(crate) async fn lock(&self, why: &str) {
        self.lifecycle.lock(&self.keyring, why).await;
    }

    /// Locks when an auto-lock deadline has passed. Called periodically.
    pub(crate) async fn enforce_auto_lock(&self) {
        self.lifecycle.enforce_auto_lock(&self.keyring).await;
    }

    pub(crate) fn status(&self) -> Status {
        self.lifecycle.status(&self.keyring)
    }
}
