//! The daemon's shared state: the keyring, where keys persist, and who the peers are.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use keyward_protocol::{KeystoreState, Status, UnreadableKey};
use tokio::sync::{Mutex as AsyncMutex, MutexGuard as AsyncMutexGuard};

use crate::audit::AuditLog;
use crate::keyring::Keyring;
use crate::peer::Peer;
use crate::policy::{Policy, RateLimiter};
use crate::store::Store;

/// Settings fixed at start.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Largest request frame body accepted.
    pub(crate) max_frame: u32,
    /// Lock after this long without a signature (`None`: never).
    pub(crate) idle_lock: Option<Duration>,
    /// Lock this long after unlock, used or not (`None`: never).
    pub(crate) max_unlock: Option<Duration>,
}

#[derive(Debug)]
struct Timers {
    unlocked_at: Option<Instant>,
    last_used: Instant,
}

#[derive(Debug)]
pub(crate) struct Daemon {
    pub(crate) settings: Settings,
    /// The daemon's own uid: it and root are served.
    pub(crate) uid: u32,
    pub(crate) keyring: Keyring,
    pub(crate) store: Store,
    pub(crate) audit: AuditLog,
    pub(crate) rates: RateLimiter,
    /// The policy in force; SIGHUP replaces the whole snapshot at once.
    policy: RwLock<Arc<Policy>>,
    /// Serialises requests that change keys, so "exists?" and "add" cannot interleave.
    admin: AsyncMutex<()>,
    timers: Mutex<Timers>,
    unreadable: Mutex<Vec<UnreadableKey>>,
}

impl Daemon {
    pub(crate) fn new(
        settings: Settings,
        store: Store,
        policy: Policy,
        audit: AuditLog,
    ) -> Arc<Daemon> {
        let keyring = if store.is_ephemeral() {
            Keyring::unlocked_empty()
        } else {
            Keyring::default()
        };
        Arc::new(Daemon {
            settings,
            uid: nix::unistd::geteuid().as_raw(),
            keyring,
            store,
            audit,
            rates: RateLimiter::default(),
            policy: RwLock::new(Arc::new(policy)),
            admin: AsyncMutex::new(()),
            timers: Mutex::new(Timers {
                unlocked_at: None,
                last_used: Instant::now(),
            }),
            unreadable: Mutex::new(Vec::new()),
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

    pub(crate) async fn admin(&self) -> AsyncMutexGuard<'_, ()> {
        self.admin.lock().await
    }

    fn timers(&self) -> std::sync::MutexGuard<'_, Timers> {
        self.timers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a use of the keys (restarts the idle auto-lock clock).
    pub(crate) fn touch(&self) {
        self.timers().last_used = Instant::now();
    }

    /// Records a successful unlock and the key files that could not be read.
    pub(crate) fn mark_unlocked(&self, unreadable: Vec<UnreadableKey>) {
        let now = Instant::now();
        let mut timers = self.timers();
        timers.unlocked_at = Some(now);
        timers.last_used = now;
        *self.unreadable.lock().unwrap_or_else(|p| p.into_inner()) = unreadable;
    }

    /// Drops every decrypted key. A no-op for an ephemeral daemon, whose keys exist nowhere
    /// else: locking would simply destroy them.
    pub(crate) fn lock(&self, why: &str) {
        if self.store.is_ephemeral() {
            return;
        }
        self.store.lock();
        if self.keyring.is_unlocked() {
            self.keyring.lock();
            self.timers().unlocked_at = None;
            tracing::info!("keystore locked ({why})");
        }
    }

    /// How long until each auto-lock fires, if armed.
    fn lock_deadlines(&self) -> (Option<Duration>, Option<Duration>) {
        let timers = self.timers();
        let Some(unlocked_at) = timers.unlocked_at else {
            return (None, None);
        };
        let now = Instant::now();
        let left = |since: Instant, ttl: Duration| (since + ttl).saturating_duration_since(now);
        (
            self.settings
                .idle_lock
                .map(|ttl| left(timers.last_used, ttl)),
            self.settings.max_unlock.map(|ttl| left(unlocked_at, ttl)),
        )
    }

    /// Locks when an auto-lock deadline has passed. Called periodically.
    pub(crate) fn enforce_auto_lock(&self) {
        match self.lock_deadlines() {
            (Some(idle), _) if idle.is_zero() => self.lock("idle timeout"),
            (_, Some(max)) if max.is_zero() => self.lock("maximum unlock time"),
            _ => {}
        }
    }

    pub(crate) fn status(&self) -> Status {
        let unlocked = self.keyring.is_unlocked();
        let state = if self.store.is_ephemeral() {
            KeystoreState::Ephemeral
        } else if !self.store.is_initialized() {
            KeystoreState::Uninitialized
        } else if unlocked {
            KeystoreState::Unlocked
        } else {
            KeystoreState::Locked
        };
        let (idle, max) = self.lock_deadlines();
        Status {
            state,
            keys: u32::try_from(self.keyring.len()).unwrap_or(u32::MAX),
            idle_lock_in: idle.map(|d| d.as_secs()),
            max_unlock_in: max.map(|d| d.as_secs()),
            unreadable: if unlocked {
                self.unreadable
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
            } else {
                Vec::new()
            },
        }
    }
}
