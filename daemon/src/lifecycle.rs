//! The keystore's lifecycle and every change to the set of keys: init, unlock (with a growing
//! delay after wrong passphrases), lock (asked for, auto-lock, shutdown), passphrase change,
//! adding and removing a key.
//!
//! All of them run under one admin lock, taken in [`Lifecycle::admin`] and nowhere else, so
//! no two of them interleave: "exists?" and "add" cannot be split, parallel passphrase guesses
//! queue up behind each other's delay, and a lock cannot slip in between an unlock's KDF and
//! the moment its keys become usable.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use keyward_protocol::{
    ErrorCode, KeyInfo, KeystoreState, PayloadFormat, SecretBytes, Status, UnreadableKey,
};
use tokio::sync::{Mutex as AsyncMutex, MutexGuard as AsyncMutexGuard};
use zeroize::Zeroizing;

use crate::failure::Failure;
use crate::keyring::{Key, Keyring};
use crate::keystore::MAX_PASSPHRASE_LEN;
use crate::signer::{KeyError, Signer};
use crate::store::Store;

/// Longest wait after a wrong passphrase (ssh-agent also stops growing at 10 s).
const MAX_WRONG_PASSPHRASE_DELAY: Duration = Duration::from_secs(10);

/// When the auto-lock fires; fixed at start.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AutoLock {
    /// Lock after this long without a signature (`None`: never).
    pub(crate) idle: Option<Duration>,
    /// Lock this long after unlock, used or not (`None`: never).
    pub(crate) max_unlocked: Option<Duration>,
}

#[derive(Debug)]
struct Timers {
    unlocked_at: Option<Instant>,
    last_used: Instant,
}

/// Where the keys persist, and the state of the keystore's lifecycle.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    store: Store,
    auto_lock: AutoLock,
    /// Serialises every operation of this module (see the module docs).
    admin: AsyncMutex<()>,
    timers: Mutex<Timers>,
    unreadable: Mutex<Vec<UnreadableKey>>,
    wrong_passphrases: AtomicU32,
}

/// Proof that the admin lock is held.
type AdminGuard<'a> = AsyncMutexGuard<'a, ()>;

// A poisoned lock only means a thread panicked while holding it; what it guards is always
// consistent (every update is a single assignment).
fn ignore_poison<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Lifecycle {
    pub(crate) fn new(store: Store, auto_lock: AutoLock) -> Lifecycle {
        Lifecycle {
            store,
            auto_lock,
            admin: AsyncMutex::new(()),
            timers: Mutex::new(Timers {
                unlocked_at: None,
                last_used: Instant::now(),
            }),
            unreadable: Mutex::new(Vec::new()),
            wrong_passphrases: AtomicU32::new(0),
        }
    }

    /// The keyring this lifecycle starts with: unlocked and empty when keys live in memory
    /// only, otherwise locked.
    pub(crate) fn initial_keyring(&self) -> Keyring {
        if self.store.is_ephemeral() {
            Keyring::unlocked_empty()
        } else if self.store.is_initialized() {
            Keyring::default()
        } else {
            Keyring::uninitialized()
        }
    }

    pub(crate) fn is_ephemeral(&self) -> bool {
        self.store.is_ephemeral()
    }

    /// The names of the keys in the keystore, known even while it is locked (`None` for an
    /// ephemeral daemon, whose keys exist only in the keyring).
    pub(crate) fn key_names(&self) -> Option<Vec<String>> {
        self.store.key_names()
    }

    /// The one place the admin lock is taken.
    async fn admin(&self) -> AdminGuard<'_> {
        self.admin.lock().await
    }

    fn timers(&self) -> MutexGuard<'_, Timers> {
        ignore_poison(&self.timers)
    }

    /// Records a use of the keys (restarts the idle auto-lock clock).
    pub(crate) fn touch(&self) {
        self.timers().last_used = Instant::now();
    }

    /// Records a successful unlock and the key files that could not be read.
    fn mark_unlocked(&self, _admin: &AdminGuard<'_>, unreadable: Vec<UnreadableKey>) {
        let now = Instant::now();
        let mut timers = self.timers();
        timers.unlocked_at = Some(now);
        timers.last_used = now;
        *ignore_poison(&self.unreadable) = unreadable;
    }

    /// Creates the keystore; it starts unlocked and empty.
    pub(crate) async fn init(
        &self,
        keyring: &Keyring,
        passphrase: SecretBytes,
    ) -> Result<(), Failure> {
        let admin = self.admin().await;
        self.store.create(passphrase).await?;
        keyring.unlock_with(Vec::new());
        self.mark_unlocked(&admin, Vec::new());
        if let Some(dir) = self.store.dir() {
            tracing::info!(keystore = %dir.display(), "keystore created and unlocked");
        }
        Ok(())
    }

    /// Unlocks the keystore: every key file is decrypted and parsed. Already unlocked, the
    /// passphrase is still checked: telling someone who mistyped it that it worked would be
    /// wrong, and a free oracle would skip the wrong-passphrase delay.
    pub(crate) async fn unlock(
        &self,
        keyring: &Keyring,
        passphrase: SecretBytes,
    ) -> Result<(), Failure> {
        let admin = self.admin().await;
        if keyring.is_unlocked() {
            let checked = self.store.check_passphrase(passphrase).await;
            return self.after_passphrase_check(&admin, checked).await;
        }
        let opened = self.store.open_keys(passphrase).await;
        let (keys, unreadable) = self.after_passphrase_check(&admin, opened).await?;
        for bad in &unreadable {
            tracing::warn!(key = %bad.name, "key could not be read at unlock: {}", bad.reason);
        }
        tracing::info!(
            keys = keys.len(),
            unreadable = unreadable.len(),
            "keystore unlocked"
        );
        keyring.unlock_with(keys);
        self.mark_unlocked(&admin, unreadable);
        Ok(())
    }

    /// Drops every decrypted key and the data key. A no-op for an ephemeral daemon, whose keys
    /// exist nowhere else: locking would simply destroy them.
    pub(crate) async fn lock(&self, keyring: &Keyring, why: &str) {
        if self.store.is_ephemeral() {
            return;
        }
        let _admin = self.admin().await;
        self.store.forget_data_key();
        if keyring.is_unlocked() {
            keyring.lock();
            self.timers().unlocked_at = None;
            tracing::info!("keystore locked ({why})");
        }
    }

    pub(crate) async fn change_passphrase(
        &self,
        old: SecretBytes,
        new: SecretBytes,
    ) -> Result<(), Failure> {
        let admin = self.admin().await;
        let changed = self.store.change_passphrase(old, new).await;
        self.after_passphrase_check(&admin, changed).await?;
        tracing::info!("keystore passphrase changed");
        Ok(())
    }

    /// Adds a key made by `make` (which parses or generates it, on the admin thread: an RSA
    /// key costs milliseconds to parse and an RSA-4096 key seconds to generate). The key is
    /// persisted (when there is a keystore) before it becomes usable, so a key acknowledged
    /// to the client is never lost.
    pub(crate) async fn add_key(
        &self,
        keyring: &Keyring,
        name: String,
        api_key: Option<String>,
        format: Option<PayloadFormat>,
        make: impl FnOnce() -> Result<(Signer, Zeroizing<Vec<u8>>), KeyError> + Send + 'static,
    ) -> Result<KeyInfo, Failure> {
        let _admin = self.admin().await;
        if keyring.contains(&name)? {
            return Err(Failure::new(
                ErrorCode::KeyExists,
                format!("a key named {name:?} exists already"),
            ));
        }
        let (signer, secret) = tokio::task::spawn_blocking(make)
            .await
            .map_err(|err| Failure::internal("adding the key failed", &err))??;
        let key = Key::new(name, signer, api_key, format);
        self.store.persist(&key.info, secret).await?;
        Ok(keyring.insert(key)?)
    }

    /// Removes a key: its file first, then the key in memory.
    /// Stores `passphrase` with the HMAC key `name` (`None` removes it): sealed into its key
    /// file first, then set on the key in memory.
    pub(crate) async fn set_passphrase(
        &self,
        keyring: &Keyring,
        name: &str,
        passphrase: Option<SecretBytes>,
    ) -> Result<(), Failure> {
        let _admin = self.admin().await;
        let key = keyring.get(name)?;
        if !key.info.scheme.is_hmac() {
            return Err(Failure::bad_request(format!(
                "key {name:?} is a {} key; a passphrase is stored only with an HMAC key, which \
                 signs it (KuCoin)",
                key.info.scheme
            )));
        }
        let passphrase = match passphrase {
            Some(p) if p.expose().is_empty() || p.expose().len() > MAX_PASSPHRASE_LEN => {
                return Err(Failure::bad_request(format!(
                    "the passphrase must be 1 to {MAX_PASSPHRASE_LEN} bytes, not {}",
                    p.expose().len()
                )));
            }
            // One exact-size zeroizing copy; the request's own is zeroized when dropped.
            Some(p) => Some(Zeroizing::new(p.expose().to_vec())),
            None => None,
        };
        self.store
            .persist_passphrase(name, passphrase.clone())
            .await?;
        key.set_passphrase(passphrase);
        Ok(())
    }

    pub(crate) async fn remove_key(&self, keyring: &Keyring, name: &str) -> Result<(), Failure> {
        let _admin = self.admin().await;
        if !keyring.contains(name)? {
            return Err(Failure::new(
                ErrorCode::UnknownKey,
                format!("no key named {name:?}"),
            ));
        }
        self.store.forget(name).await?;
        keyring.remove(name)?;
        Ok(())
    }

    /// Makes every wrong passphrase cost the caller a growing delay (0.25 s, doubling, at
    /// most 10 s) before the error is returned. The admin lock is held meanwhile (the guard
    /// proves it), so parallel guesses queue up behind it instead of running side by side.
    async fn after_passphrase_check<T>(
        &self,
        _admin: &AdminGuard<'_>,
        result: Result<T, Failure>,
    ) -> Result<T, Failure> {
        match result {
            Err(failure) if failure.code == ErrorCode::WrongPassphrase => {
                let failures = self
                    .wrong_passphrases
                    .fetch_add(1, Ordering::SeqCst)
                    .saturating_add(1);
                let delay = Duration::from_millis(250)
                    .saturating_mul(1 << failures.saturating_sub(1).min(6))
                    .min(MAX_WRONG_PASSPHRASE_DELAY);
                tracing::warn!(
                    failures,
                    "wrong keystore passphrase; answering in {delay:?}"
                );
                tokio::time::sleep(delay).await;
                Err(failure)
            }
            Ok(value) => {
                self.wrong_passphrases.store(0, Ordering::SeqCst);
                Ok(value)
            }
            Err(other) => Err(other),
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
            self.auto_lock.idle.map(|ttl| left(timers.last_used, ttl)),
            self.auto_lock
                .max_unlocked
                .map(|ttl| left(unlocked_at, ttl)),
        )
    }

    /// Locks when an auto-lock deadline has passed. Called periodically.
    pub(crate) async fn enforce_auto_lock(&self, keyring: &Keyring) {
        match self.lock_deadlines() {
            (Some(idle), _) if idle.is_zero() => self.lock(keyring, "idle timeout").await,
            (_, Some(max)) if max.is_zero() => self.lock(keyring, "maximum unlock time").await,
            _ => {}
        }
    }

    pub(crate) fn status(&self, keyring: &Keyring) -> Status {
        let unlocked = keyring.is_unlocked();
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
            keys: u32::try_from(keyring.len()).unwrap_or(u32::MAX),
            idle_lock_in: idle.map(|d| d.as_secs()),
            max_unlock_in: max.map(|d| d.as_secs()),
            unreadable: if unlocked {
                ignore_poison(&self.unreadable).clone()
            } else {
                Vec::new()
            },
        }
    }
}
