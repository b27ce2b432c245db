//! The unlocked keys in memory, looked up by name on every signature.
//!
//! `None` inside the lock means "locked": no key is in memory at all. Locking swaps the map
//! out and drops it, and with it every parsed key (which AWS-LC cleanses as it frees them).
//! Signing clones an `Arc` under a read lock and signs outside it, so a slow RSA signature
//! never holds the lock and admin requests never wait on one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use keyward_protocol::{KeyInfo, PayloadFormat};
use zeroize::Zeroizing;

use crate::signer::{Signer, fingerprint};
use crate::stats::{self, SignatureCounter};

/// A key ready to sign, with what may be said about it.
pub(crate) struct Key {
    /// What is stored with the key. `info.format` is the format stored with it (given at
    /// import or generate); what a client is shown, and what the rules judge with, is the
    /// policy's choice (`Policy::format_for`), which the handler fills in.
    pub(crate) info: KeyInfo,
    pub(crate) signer: Signer,
    /// This key's signature counter in [`crate::stats`], found at its first signature.
    signatures: OnceLock<SignatureCounter>,
    /// The passphrase stored with the key (KuCoin's), which only ever leaves as this key's
    /// signature of it. Behind a mutex so an admin can set it on a key in use.
    passphrase: Mutex<Option<Zeroizing<Vec<u8>>>>,
}

impl std::fmt::Debug for PassphraseShown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0 { "[REDACTED]" } else { "None" })
    }
}

/// How `Key`'s Debug shows the passphrase: whether there is one, never its bytes.
struct PassphraseShown(bool);

impl Key {
    pub(crate) fn new(
        name: String,
        signer: Signer,
        api_key: Option<String>,
        format: Option<PayloadFormat>,
    ) -> Key {
        let public_key = signer.public_key_spki();
        let info = KeyInfo {
            name,
            scheme: signer.scheme(),
            bits: signer.bits(),
            fingerprint: public_key.as_deref().map(fingerprint),
            public_key,
            api_key,
            format,
        };
        Key {
            info,
            signer,
            signatures: OnceLock::new(),
            passphrase: Mutex::new(None),
        }
    }

    fn passphrase_slot(&self) -> std::sync::MutexGuard<'_, Option<Zeroizing<Vec<u8>>>> {
        // Poison only means a panic elsewhere; the slot is replaced whole, never half-set.
        self.passphrase
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Replaces the stored passphrase (`None` removes it); the old one is zeroized.
    pub(crate) fn set_passphrase(&self, passphrase: Option<Zeroizing<Vec<u8>>>) {
        *self.passphrase_slot() = passphrase;
    }

    /// Whether a passphrase is stored with the key.
    pub(crate) fn has_passphrase(&self) -> bool {
        self.passphrase_slot().is_some()
    }

    /// Calls `f` with the stored passphrase, if any, without copying it out.
    pub(crate) fn with_passphrase<T>(&self, f: impl FnOnce(Option<&[u8]>) -> T) -> T {
        let slot = self.passphrase_slot();
        f(slot.as_deref().map(Vec::as_slice))
    }

    /// Counts `n` signatures made with this key: one atomic add (the counter is looked up
    /// in the registry once per loaded key).
    pub(crate) fn count_signatures(&self, n: usize) {
        let counter = self
            .signatures
            .get_or_init(|| stats::global().signature_counter(&self.info.name, self.info.scheme));
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("info", &self.info)
            .field("signer", &self.signer)
            .field("passphrase", &PassphraseShown(self.has_passphrase()))
            .finish_non_exhaustive()
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum KeyringError {
    #[error("the keystore is locked; run `keyward unlock`")]
    Locked,
    #[error("the keystore is not initialized (locked, with no keys); run `keyward init`")]
    NotInitialized,
    #[error("no key named {0:?}")]
    UnknownKey(String),
    #[error("a key named {0:?} exists already")]
    Exists(String),
}

type Keys = BTreeMap<String, Arc<Key>>;

#[derive(Debug, Default)]
pub(crate) struct Keyring {
    keys: RwLock<Option<Keys>>,
    /// Locked because there is no keystore yet (until the first unlock, which `init` does):
    /// the error then says to run `keyward init`, not `keyward unlock`.
    uninitialized: AtomicBool,
}

impl Keyring {
    /// A keyring that starts unlocked and empty (ephemeral mode).
    pub(crate) fn unlocked_empty() -> Keyring {
        Keyring {
            keys: RwLock::new(Some(Keys::new())),
            uninitialized: AtomicBool::new(false),
        }
    }

    /// A locked keyring whose keystore does not exist yet.
    pub(crate) fn uninitialized() -> Keyring {
        Keyring {
            keys: RwLock::new(None),
            uninitialized: AtomicBool::new(true),
        }
    }

    fn locked(&self) -> KeyringError {
        if self.uninitialized.load(Ordering::Relaxed) {
            KeyringError::NotInitialized
        } else {
            KeyringError::Locked
        }
    }

    // A poisoned lock only means a thread panicked while holding it; the map itself is
    // always in a consistent state (every mutation is a single insert/remove/swap).
    fn read(&self) -> RwLockReadGuard<'_, Option<Keys>> {
        self.keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Option<Keys>> {
        self.keys
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn is_unlocked(&self) -> bool {
        self.read().is_some()
    }

    pub(crate) fn len(&self) -> usize {
        self.read().as_ref().map_or(0, BTreeMap::len)
    }

    pub(crate) fn get(&self, name: &str) -> Result<Arc<Key>, KeyringError> {
        let keys = self.read();
        let keys = keys.as_ref().ok_or_else(|| self.locked())?;
        keys.get(name)
            .cloned()
            .ok_or_else(|| KeyringError::UnknownKey(name.to_owned()))
    }

    /// Every key's description, sorted by name.
    pub(crate) fn list(&self) -> Result<Vec<KeyInfo>, KeyringError> {
        let keys = self.read();
        let keys = keys.as_ref().ok_or_else(|| self.locked())?;
        Ok(keys.values().map(|key| key.info.clone()).collect())
    }

    pub(crate) fn contains(&self, name: &str) -> Result<bool, KeyringError> {
        let keys = self.read();
        Ok(keys
            .as_ref()
            .ok_or_else(|| self.locked())?
            .contains_key(name))
    }

    pub(crate) fn insert(&self, key: Key) -> Result<KeyInfo, KeyringError> {
        let mut keys = self.write();
        let keys = keys.as_mut().ok_or_else(|| self.locked())?;
        if keys.contains_key(&key.info.name) {
            return Err(KeyringError::Exists(key.info.name.clone()));
        }
        let info = key.info.clone();
        keys.insert(info.name.clone(), Arc::new(key));
        Ok(info)
    }

    pub(crate) fn remove(&self, name: &str) -> Result<(), KeyringError> {
        let mut keys = self.write();
        let keys = keys.as_mut().ok_or_else(|| self.locked())?;
        keys.remove(name)
            .map(drop)
            .ok_or_else(|| KeyringError::UnknownKey(name.to_owned()))
    }

    /// Replaces the contents with `loaded` and marks the keyring unlocked.
    pub(crate) fn unlock_with(&self, loaded: Vec<Key>) {
        let keys = loaded
            .into_iter()
            .map(|key| (key.info.name.clone(), Arc::new(key)))
            .collect();
        *self.write() = Some(keys);
        self.uninitialized.store(false, Ordering::Relaxed);
    }

    /// Drops every key. A signature in flight keeps its own `Arc` and finishes; the key is
    /// freed when it does.
    pub(crate) fn lock(&self) {
        let dropped = self.write().take();
        drop(dropped);
    }
}
