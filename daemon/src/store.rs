//! Where keys persist: nowhere (ephemeral) or in the encrypted keystore directory, and the
//! keystore's lifecycle: init, unlock (with a growing delay after wrong passphrases), lock,
//! passphrase change.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keyward_protocol::{ErrorCode, KeyInfo, SecretBytes, UnreadableKey};
use zeroize::Zeroizing;

use crate::daemon::Daemon;
use crate::failure::Failure;
use crate::keyring::Key;
use crate::keystore::{DataKey, KdfParams, KeyMeta, KeyRecord, Keystore, KeystoreError};
use crate::signer::Signer;

/// Longest wait after a wrong passphrase (ssh-agent also stops growing at 10 s).
const MAX_WRONG_PASSPHRASE_DELAY: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) enum Store {
    /// Keys live in memory only and die with the daemon (`--ephemeral`, `keyward demo`).
    Ephemeral,
    /// Keys are sealed in a keystore directory and decrypted at unlock.
    Keystore(Vault),
}

/// The keystore and, while unlocked, its data key (needed to seal newly added keys).
#[derive(Debug)]
pub(crate) struct Vault {
    kdf: KdfParams,
    dir: PathBuf,
    state: Arc<Mutex<VaultState>>,
    wrong_passphrases: AtomicU32,
}

#[derive(Debug, Default)]
struct VaultState {
    keystore: Option<Keystore>,
    data_key: Option<DataKey>,
}

fn lock_state(state: &Mutex<VaultState>) -> MutexGuard<'_, VaultState> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl From<KeystoreError> for Failure {
    fn from(err: KeystoreError) -> Failure {
        let code = match &err {
            KeystoreError::NotInitialized => ErrorCode::NotInitialized,
            KeystoreError::AlreadyInitialized => ErrorCode::AlreadyInitialized,
            KeystoreError::WrongPassphrase => ErrorCode::WrongPassphrase,
            KeystoreError::KeyExists(_) => ErrorCode::KeyExists,
            KeystoreError::UnknownKey(_) => ErrorCode::UnknownKey,
            KeystoreError::InvalidName(_) => ErrorCode::BadRequest,
            KeystoreError::InvalidRecord { .. } => ErrorCode::InvalidKey,
            _ => {
                tracing::error!("keystore: {err}");
                ErrorCode::Internal
            }
        };
        // The I/O variant keeps the OS reason as its source (for `{:#}` chains); a client
        // gets one line with both.
        let message = match &err {
            KeystoreError::Io { source, .. } => format!("{err}: {source}"),
            _ => err.to_string(),
        };
        Failure::new(code, message)
    }
}

fn no_keystore(what: &str) -> Failure {
    Failure::bad_request(format!(
        "this daemon keeps keys in memory only (--ephemeral): there is no keystore to {what}"
    ))
}

/// Runs keystore I/O and KDF work on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| Failure::internal("keystore task failed", &err))?
}

impl Store {
    /// Opens the keystore at `dir` (which may not exist yet: `init` creates it).
    pub(crate) fn open(dir: &Path, kdf: KdfParams) -> Result<Store, KeystoreError> {
        let keystore = Keystore::open(dir)?;
        Ok(Store::Keystore(Vault {
            kdf,
            dir: dir.to_owned(),
            state: Arc::new(Mutex::new(VaultState {
                keystore,
                data_key: None,
            })),
            wrong_passphrases: AtomicU32::new(0),
        }))
    }

    pub(crate) fn is_ephemeral(&self) -> bool {
        matches!(self, Store::Ephemeral)
    }

    pub(crate) fn is_initialized(&self) -> bool {
        match self {
            Store::Ephemeral => true,
            Store::Keystore(vault) => lock_state(&vault.state).keystore.is_some(),
        }
    }

    /// Forgets the data key (the keyring drops the keys themselves).
    pub(crate) fn lock(&self) {
        if let Store::Keystore(vault) = self {
            lock_state(&vault.state).data_key = None;
        }
    }

    /// Seals a new key into the keystore before it becomes usable, so a key that was
    /// acknowledged to the client is never lost.
    pub(crate) async fn persist(
        &self,
        info: &KeyInfo,
        secret: Zeroizing<Vec<u8>>,
    ) -> Result<(), Failure> {
        let Store::Keystore(vault) = self else {
            return Ok(());
        };
        let record = KeyRecord {
            meta: KeyMeta {
                name: info.name.clone(),
                scheme: info.scheme,
                api_key: info.api_key.clone(),
                created_unix: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |since| since.as_secs()),
            },
            secret,
        };
        let state = Arc::clone(&vault.state);
        blocking(move || {
            let state = lock_state(&state);
            let (Some(keystore), Some(data_key)) = (&state.keystore, &state.data_key) else {
                return Err(Failure::new(
                    ErrorCode::Locked,
                    "the keystore is locked; run `keyward unlock`",
                ));
            };
            keystore.store(data_key, &record).map_err(Failure::from)
        })
        .await
    }

    /// Deletes a key's file before the key leaves memory.
    pub(crate) async fn forget(&self, name: &str) -> Result<(), Failure> {
        let Store::Keystore(vault) = self else {
            return Ok(());
        };
        let state = Arc::clone(&vault.state);
        let name = name.to_owned();
        blocking(move || {
            let state = lock_state(&state);
            let keystore = state
                .keystore
                .as_ref()
                .ok_or(KeystoreError::NotInitialized)?;
            keystore.remove(&name).map_err(Failure::from)
        })
        .await
    }

    pub(crate) async fn init(
        &self,
        daemon: &Daemon,
        passphrase: SecretBytes,
    ) -> Result<(), Failure> {
        let Store::Keystore(vault) = self else {
            return Err(no_keystore("initialise"));
        };
        let _admin = daemon.admin().await;
        let (state, dir, kdf) = (Arc::clone(&vault.state), vault.dir.clone(), vault.kdf);
        blocking(move || {
            let mut state = lock_state(&state);
            if state.keystore.is_some() {
                return Err(KeystoreError::AlreadyInitialized.into());
            }
            let (keystore, data_key) = Keystore::init(&dir, passphrase.expose(), kdf)?;
            state.keystore = Some(keystore);
            state.data_key = Some(data_key);
            Ok(())
        })
        .await?;
        daemon.keyring.unlock_with(Vec::new());
        daemon.mark_unlocked(Vec::new());
        tracing::info!(keystore = %vault.dir.display(), "keystore created and unlocked");
        Ok(())
    }

    pub(crate) async fn unlock(
        &self,
        daemon: &Daemon,
        passphrase: SecretBytes,
    ) -> Result<(), Failure> {
        let Store::Keystore(vault) = self else {
            return Err(no_keystore("unlock"));
        };
        let _admin = daemon.admin().await;
        if daemon.keyring.is_unlocked() {
            // Still check the passphrase: telling someone who mistyped it that it worked
            // would be wrong, and a free oracle would skip the wrong-passphrase delay.
            let state = Arc::clone(&vault.state);
            let checked = blocking(move || {
                let state = lock_state(&state);
                let keystore = state
                    .keystore
                    .as_ref()
                    .ok_or(KeystoreError::NotInitialized)?;
                keystore
                    .unlock(passphrase.expose())
                    .map(drop)
                    .map_err(Failure::from)
            })
            .await;
            return vault.after_passphrase_check(checked).await;
        }
        let state = Arc::clone(&vault.state);
        let unlocked = blocking(move || {
            let mut state = lock_state(&state);
            let keystore = state
                .keystore
                .as_ref()
                .ok_or(KeystoreError::NotInitialized)?;
            let data_key = keystore.unlock(passphrase.expose())?;
            drop(passphrase);
            let loaded = keystore.load_all(&data_key);
            state.data_key = Some(data_key);
            Ok(parse_loaded(loaded))
        })
        .await;
        let (keys, unreadable) = vault.after_passphrase_check(unlocked).await?;
        for bad in &unreadable {
            tracing::warn!(key = %bad.name, "key could not be read at unlock: {}", bad.reason);
        }
        tracing::info!(
            keys = keys.len(),
            unreadable = unreadable.len(),
            "keystore unlocked"
        );
        daemon.keyring.unlock_with(keys);
        daemon.mark_unlocked(unreadable);
        Ok(())
    }

    pub(crate) async fn change_passphrase(
        &self,
        daemon: &Daemon,
        old: SecretBytes,
        new: SecretBytes,
    ) -> Result<(), Failure> {
        let Store::Keystore(vault) = self else {
            return Err(no_keystore("change the passphrase of"));
        };
        let _admin = daemon.admin().await;
        let (state, kdf) = (Arc::clone(&vault.state), vault.kdf);
        let changed = blocking(move || {
            let mut state = lock_state(&state);
            let keystore = state
                .keystore
                .as_mut()
                .ok_or(KeystoreError::NotInitialized)?;
            keystore
                .change_passphrase(old.expose(), new.expose(), kdf)
                .map_err(Failure::from)
        })
        .await;
        vault.after_passphrase_check(changed).await?;
        tracing::info!("keystore passphrase changed");
        Ok(())
    }
}

impl Vault {
    /// Makes every wrong passphrase cost the caller a growing delay (0.25 s, doubling, at
    /// most 10 s) before the error is returned. The admin lock is held meanwhile, so
    /// parallel guesses queue up behind it instead of running side by side.
    async fn after_passphrase_check<T>(&self, result: Result<T, Failure>) -> Result<T, Failure> {
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
}

/// Parses each decrypted record into a key; a record that fails is reported, not fatal.
fn parse_loaded(loaded: crate::keystore::LoadedKeys) -> (Vec<Key>, Vec<UnreadableKey>) {
    let mut unreadable: Vec<UnreadableKey> = loaded
        .failures
        .into_iter()
        .map(|(name, err)| UnreadableKey {
            reason: match err {
                KeystoreError::CorruptKey { reason, .. } => reason,
                other => other.to_string(),
            },
            name,
        })
        .collect();
    let mut keys = Vec::with_capacity(loaded.records.len());
    for record in loaded.records {
        let KeyRecord { meta, secret } = record;
        let parsed = if meta.scheme.is_hmac() {
            Signer::hmac(meta.scheme, &secret)
        } else {
            Signer::from_pkcs8(&secret)
        };
        drop(secret);
        match parsed {
            Ok(signer) if signer.scheme() == meta.scheme => {
                keys.push(Key::new(meta.name, signer, meta.api_key))
            }
            Ok(signer) => unreadable.push(UnreadableKey {
                reason: format!(
                    "the file says {} but holds a {} key",
                    meta.scheme,
                    signer.scheme()
                ),
                name: meta.name,
            }),
            Err(err) => unreadable.push(UnreadableKey {
                reason: err.to_string(),
                name: meta.name,
            }),
        }
    }
    (keys, unreadable)
}
