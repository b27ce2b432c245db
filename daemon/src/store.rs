//! Where keys persist: nowhere (ephemeral) or in the encrypted keystore directory.
//!
//! Pure persistence: this module creates, opens and rewrites the keystore and its files on
//! the admin thread (tokio's blocking pool, bounded to one thread in main.rs; never a
//! connection's thread). When those steps may run, and what they do to the keys in memory,
//! is the business of `lifecycle.rs`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use keyward_protocol::{ErrorCode, KeyInfo, SecretBytes, UnreadableKey};
use zeroize::Zeroizing;

use crate::failure::Failure;
use crate::keyring::Key;
use crate::keystore::{DataKey, KdfParams, KeyMeta, KeyRecord, Keystore, KeystoreError};
use crate::signer::Signer;

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
}

#[derive(Debug, Default)]
struct VaultState {
    keystore: Option<Keystore>,
    data_key: Option<DataKey>,
}

impl VaultState {
    fn keystore(&self) -> Result<&Keystore, KeystoreError> {
        self.keystore.as_ref().ok_or(KeystoreError::NotInitialized)
    }

    fn keystore_mut(&mut self) -> Result<&mut Keystore, KeystoreError> {
        self.keystore.as_mut().ok_or(KeystoreError::NotInitialized)
    }
}

fn lock_state(state: &Mutex<VaultState>) -> MutexGuard<'_, VaultState> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn no_keystore(what: &str) -> Failure {
    Failure::bad_request(format!(
        "this daemon keeps keys in memory only (--ephemeral): there is no keystore to {what}"
    ))
}

/// Runs keystore I/O and KDF work on the admin thread.
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

    /// The keystore directory, if there is one.
    pub(crate) fn dir(&self) -> Option<&Path> {
        match self {
            Store::Ephemeral => None,
            Store::Keystore(vault) => Some(&vault.dir),
        }
    }

    fn vault(&self, what: &str) -> Result<&Vault, Failure> {
        match self {
            Store::Ephemeral => Err(no_keystore(what)),
            Store::Keystore(vault) => Ok(vault),
        }
    }

    /// The names of the keys persisted in the keystore, readable while it is locked;
    /// `None` for an ephemeral daemon.
    pub(crate) fn key_names(&self) -> Option<Vec<String>> {
        match self {
            Store::Ephemeral => None,
            Store::Keystore(vault) => Some(
                lock_state(&vault.state)
                    .keystore
                    .as_ref()
                    .map(Keystore::key_names)
                    .unwrap_or_default(),
            ),
        }
    }

    /// Forgets the data key (the keyring drops the keys themselves).
    pub(crate) fn forget_data_key(&self) {
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
                format: info.format,
                created_unix: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |since| since.as_secs()),
            },
            secret,
            passphrase: None,
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

    /// Rewrites the key file of `name` with `passphrase` sealed in it (`None`: without one),
    /// before the key in memory changes, so what a client was told is on disk.
    pub(crate) async fn persist_passphrase(
        &self,
        name: &str,
        passphrase: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<(), Failure> {
        let Store::Keystore(vault) = self else {
            return Ok(());
        };
        let state = Arc::clone(&vault.state);
        let name = name.to_owned();
        blocking(move || {
            let state = lock_state(&state);
            let (Some(keystore), Some(data_key)) = (&state.keystore, &state.data_key) else {
                return Err(Failure::new(
                    ErrorCode::Locked,
                    "the keystore is locked; run `keyward unlock`",
                ));
            };
            let mut record = keystore.load(data_key, &name)?;
            record.passphrase = passphrase;
            keystore.replace(data_key, &record).map_err(Failure::from)
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
            let keystore = state.keystore()?;
            keystore.remove(&name).map_err(Failure::from)
        })
        .await
    }

    /// Creates the keystore with `passphrase` and keeps its data key (a new keystore is
    /// unlocked and empty).
    pub(crate) async fn create(&self, passphrase: SecretBytes) -> Result<(), Failure> {
        let vault = self.vault("initialise")?;
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
        .await
    }

    /// Checks `passphrase` against the keystore without touching anything.
    pub(crate) async fn check_passphrase(&self, passphrase: SecretBytes) -> Result<(), Failure> {
        let state = Arc::clone(&self.vault("unlock")?.state);
        blocking(move || {
            let state = lock_state(&state);
            let keystore = state.keystore()?;
            keystore
                .unlock(passphrase.expose())
                .map(drop)
                .map_err(Failure::from)
        })
        .await
    }

    /// Unwraps the data key with `passphrase` (and keeps it), then decrypts and parses every
    /// key file: the keys, and the files that could not be read with the reason for each.
    pub(crate) async fn open_keys(
        &self,
        passphrase: SecretBytes,
    ) -> Result<(Vec<Key>, Vec<UnreadableKey>), Failure> {
        let state = Arc::clone(&self.vault("unlock")?.state);
        blocking(move || {
            let mut state = lock_state(&state);
            let keystore = state.keystore()?;
            let data_key = keystore.unlock(passphrase.expose())?;
            drop(passphrase);
            let loaded = keystore.load_all(&data_key);
            state.data_key = Some(data_key);
            Ok(parse_loaded(loaded))
        })
        .await
    }

    /// Rewraps the data key under `new` (the key files stay as they are).
    pub(crate) async fn change_passphrase(
        &self,
        old: SecretBytes,
        new: SecretBytes,
    ) -> Result<(), Failure> {
        let vault = self.vault("change the passphrase of")?;
        let (state, kdf) = (Arc::clone(&vault.state), vault.kdf);
        blocking(move || {
            let mut state = lock_state(&state);
            let keystore = state.keystore_mut()?;
            keystore
                .change_passphrase(old.expose(), new.expose(), kdf)
                .map_err(Failure::from)
        })
        .await
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
        let KeyRecord {
            meta,
            secret,
            passphrase,
        } = record;
        let parsed = if meta.scheme.is_hmac() {
            Signer::hmac(meta.scheme, &secret)
        } else {
            Signer::from_pkcs8(&secret)
        };
        drop(secret);
        match parsed {
            Ok(signer) if signer.scheme() == meta.scheme => {
                let key = Key::new(meta.name, signer, meta.api_key, meta.format);
                key.set_passphrase(passphrase);
                keys.push(key);
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
