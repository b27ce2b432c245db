//! The keystore: keys at rest, encrypted, one file each, under one passphrase.
//!
//! ```text
//! DIR/            0700, owned by the daemon's user
//!   header        0600  format version, Argon2id m/t/p + salt, the wrapped data key
//!   keys/         0700
//!     NAME.key    0600  metadata in clear (bound as associated data) + sealed secret
//! ```
//!
//! A random 32-byte data key seals every key file with XChaCha20-Poly1305; the header holds
//! it wrapped (XChaCha20-Poly1305 again) under a key derived from the passphrase with
//! Argon2id. One KDF run unlocks everything, and changing the passphrase rewrites the header
//! only. docs/KEYSTORE.md specifies the bytes and argues crash safety; [`format`] is the
//! code for the bytes, [`fsio`] for the file-system discipline.
//!
//! Everything here is blocking std I/O: the daemon calls it on its admin thread (tokio's
//! blocking pool).
//!
//! Secret hygiene: the data key lives in a boxed [`Zeroizing`] buffer (moving a [`DataKey`]
//! moves a pointer, not the key), the passphrase-derived key in a [`Zeroizing`] buffer that
//! is filled in place and never moved, plaintext is only ever written into exact-capacity
//! [`Zeroizing`] vectors (so no reallocation leaves a copy behind), and the Argon2 working
//! memory, from which the derived key could be recomputed, is wiped too.

mod format;
mod fsio;

pub(crate) use format::MAX_PASSPHRASE_LEN;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use keyward_protocol::{PayloadFormat, Scheme, validate_key_name};
use zeroize::Zeroizing;

use format::{FormatError, Header, KEY_LEN, NONCE_LEN, TAG_LEN};
use fsio::{Existing, ReadError, Written, io_error};

/// Name of the header file inside the keystore directory.
const HEADER_FILE: &str = "header";
/// Name of the directory of key files.
const KEYS_DIR: &str = "keys";
/// Suffix of a key file: `keys/NAME.key`.
const KEY_SUFFIX: &str = ".key";

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KdfParams {
    /// Memory, in KiB.
    pub(crate) m_cost_kib: u32,
    /// Passes over the memory.
    pub(crate) t_cost: u32,
    /// Lanes.
    pub(crate) p_cost: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane.
    ///
    /// This is RFC 9106's second recommended option (section 4: Argon2id, t = 3,
    /// m = 64 MiB, for memory-constrained settings) and well above OWASP's minimum for
    /// Argon2id (19 MiB, t = 2, p = 1). p = 1 rather than the RFC's 4: this build of argon2
    /// computes lanes one after another, so more lanes would add nothing but time. The cost
    /// is paid once per unlock (0.12 s and 66 MiB, measured on this project's machines),
    /// which is cheap for a person and expensive for a guesser with a stolen disk.
    fn default() -> Self {
        KdfParams {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

/// The data key that seals every key file. Lives on the heap so that moving it does not
/// leave copies in dead stack frames; wiped when dropped; never printed.
pub(crate) struct DataKey(Box<Zeroizing<[u8; KEY_LEN]>>);

impl DataKey {
    fn zeroed() -> Self {
        DataKey(Box::new(Zeroizing::new([0; KEY_LEN])))
    }

    fn generate() -> Result<Self, KeystoreError> {
        let mut key = DataKey::zeroed();
        random(&mut key.0[..])?;
        Ok(key)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        // The cipher keeps its own copy of the key and wipes it on drop.
        XChaCha20Poly1305::new(Key::from_slice(&self.0[..]))
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([REDACTED])")
    }
}

/// What is known about a key without decrypting it. Stored in clear in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyMeta {
    /// The key's name (also its file name).
    pub(crate) name: String,
    /// The scheme it signs with.
    pub(crate) scheme: Scheme,
    /// The exchange's API key id, for display.
    pub(crate) api_key: Option<String>,
    /// When it was imported or generated, in seconds since the Unix epoch.
    pub(crate) created_unix: u64,
    /// The payload format given at import or generate (key file version 2; `None` in a
    /// version 1 file).
    pub(crate) format: Option<PayloadFormat>,
}

/// A key with its secret: PKCS#8 DER for asymmetric keys, the raw secret for HMAC keys.
pub(crate) struct KeyRecord {
    pub(crate) meta: KeyMeta,
    pub(crate) secret: Zeroizing<Vec<u8>>,
    /// A passphrase sealed with the secret (KuCoin's, which the key signs); only in key
    /// file version 3.
    pub(crate) passphrase: Option<Zeroizing<Vec<u8>>>,
}

impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRecord")
            .field("meta", &self.meta)
            .field(
                "secret",
                &format_args!("[REDACTED; {} bytes]", self.secret.len()),
            )
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| format_args!("[REDACTED]")),
            )
            .finish()
    }
}

/// What [`Keystore::load_all`] found: the keys that decrypted, and why the others did not.
#[derive(Debug)]
pub(crate) struct LoadedKeys {
    /// Sorted by name.
    pub(crate) records: Vec<KeyRecord>,
    /// (key name, or the file name when it is not a key name; why), sorted.
    pub(crate) failures: Vec<(String, KeystoreError)>,
}

/// Why a keystore operation failed. Messages are one line and never contain secret bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum KeystoreError {
    #[error("{path}")]
    Io { path: PathBuf, source: io::Error },
    #[error("the keystore is not initialized (run `keyward init`)")]
    NotInitialized,
    #[error("the keystore is already initialized")]
    AlreadyInitialized,
    /// The passphrase does not unwrap the data key. A header whose parameters or salt were
    /// altered fails the same way: the two cannot be told apart, by design.
    #[error("wrong passphrase")]
    WrongPassphrase,
    #[error(
        "unsupported keystore format version {found} (this keyward reads versions up to {supported})"
    )]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("the keystore header is corrupt: {reason}")]
    CorruptHeader { reason: String },
    #[error("key {name} is unreadable: {reason}")]
    CorruptKey { name: String, reason: String },
    #[error("a key named {0} exists already")]
    KeyExists(String),
    #[error("no key named {0}")]
    UnknownKey(String),
    /// Why the name was refused (from `validate_key_name`).
    #[error("invalid key name: {0}")]
    InvalidName(String),
    #[error("refusing to use {path}: {reason}")]
    UnsafePermissions { path: PathBuf, reason: String },
    #[error("invalid Argon2id parameters: {reason}")]
    InvalidKdfParams { reason: String },
    /// The record cannot be represented (empty or oversized secret, oversized API key id).
    #[error("key {name} cannot be stored: {reason}")]
    InvalidRecord { name: String, reason: String },
    /// The random number generator or a cipher failed; should never happen.
    #[error("cryptographic failure: {0}")]
    Crypto(&'static str),
}

/// An opened keystore: its directory and its parsed header.
pub(crate) struct Keystore {
    dir: PathBuf,
    header: Header,
}

impl fmt::Debug for Keystore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keystore")
            .field("dir", &self.dir)
            .field("kdf", &self.header.params)
            .finish_non_exhaustive()
    }
}

impl Keystore {
    /// Opens the keystore in `dir`: `Ok(None)` if it has no header yet (nothing is created).
    ///
    /// Refuses a directory owned by another user or writable by group or others. Deletes
    /// temporary files a crash left behind. Never modifies the header or a key file.
    pub(crate) fn open(dir: &Path) -> Result<Option<Keystore>, KeystoreError> {
        match fs::metadata(dir) {
            Ok(_) => fsio::check_private_dir(dir)?,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(io_error(dir, err)),
        }
        let keys_dir = dir.join(KEYS_DIR);
        match fs::metadata(&keys_dir) {
            Ok(_) => fsio::check_private_dir(&keys_dir)?,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_error(&keys_dir, err)),
        }
        let header_path = dir.join(HEADER_FILE);
        let bytes = match fsio::read_bounded(&header_path, format::MAX_HEADER_FILE_LEN) {
            Ok(bytes) => bytes,
            Err(ReadError::Io(err)) if err.kind() == io::ErrorKind::NotFound => {
                // Key files are only ever written after the header, so keys without a header
                // mean the header was lost. Saying "not initialized" would invite an `init`
                // whose new data key can never open them.
                if has_key_files(&keys_dir)? {
                    return Err(KeystoreError::CorruptHeader {
                        reason: format!(
                            "{} is missing but {} holds key files; restore it from a backup",
                            header_path.display(),
                            keys_dir.display()
                        ),
                    });
                }
                return Ok(None);
            }
            Err(ReadError::Io(err)) => return Err(io_error(&header_path, err)),
            Err(ReadError::NotAFile) => {
                return Err(KeystoreError::CorruptHeader {
                    reason: format!("{} is not a regular file", header_path.display()),
                });
            }
            Err(ReadError::TooLarge(len)) => {
                return Err(KeystoreError::CorruptHeader {
                    reason: format!("{len} bytes, far larger than any keystore header"),
                });
            }
        };
        let header = Header::decode(&bytes).map_err(|err| match err {
            FormatError::Unsupported { found } => unsupported(found, format::HEADER_VERSION),
            FormatError::Corrupt(reason) => KeystoreError::CorruptHeader { reason },
        })?;
        fsio::remove_temp_files(dir);
        fsio::remove_temp_files(&keys_dir);
        Ok(Some(Keystore {
            dir: dir.to_owned(),
            header,
        }))
    }

    /// Creates a keystore in `dir` (and `dir` itself, mode 0700, if missing) with a new
    /// random data key wrapped under `passphrase`. Returns the data key too, so the caller
    /// starts unlocked without a second KDF run.
    pub(crate) fn init(
        dir: &Path,
        passphrase: &[u8],
        params: KdfParams,
    ) -> Result<(Keystore, DataKey), KeystoreError> {
        params
            .check()
            .map_err(|reason| KeystoreError::InvalidKdfParams { reason })?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|err| io_error(parent, err))?;
        }
        fsio::ensure_private_dir(dir)?;
        if Keystore::open(dir)?.is_some() {
            return Err(KeystoreError::AlreadyInitialized);
        }
        fsio::ensure_private_dir(&dir.join(KEYS_DIR))?;
        let data_key = DataKey::generate()?;
        let header = wrap(&data_key, passphrase, params)?;
        // No-clobber: of two racing inits, one wins and the other changes nothing.
        match fsio::write_atomic(dir, HEADER_FILE, &header.encode(), Existing::Keep)? {
            Written::Exists => Err(KeystoreError::AlreadyInitialized),
            Written::Done => Ok((
                Keystore {
                    dir: dir.to_owned(),
                    header,
                },
                data_key,
            )),
        }
    }

    /// Derives the passphrase key and unwraps the data key. Modifies nothing.
    pub(crate) fn unlock(&self, passphrase: &[u8]) -> Result<DataKey, KeystoreError> {
        let header = &self.header;
        let mut kek = Zeroizing::new([0; KEY_LEN]);
        derive_kek(passphrase, &header.params, &header.salt, &mut kek)?;
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&kek[..]));
        let mut data_key = DataKey::zeroed();
        data_key.0.copy_from_slice(&header.wrapped_key);
        cipher
            .decrypt_in_place_detached(
                XNonce::from_slice(&header.nonce),
                &header.aad(),
                &mut data_key.0[..],
                Tag::from_slice(&header.tag),
            )
            .map_err(|_| KeystoreError::WrongPassphrase)?;
        Ok(data_key)
    }

    /// Rewraps the data key under `new` with a fresh salt and nonce and the given
    /// parameters, replacing the header atomically. Key files are not touched.
    pub(crate) fn change_passphrase(
        &mut self,
        old: &[u8],
        new: &[u8],
        params: KdfParams,
    ) -> Result<(), KeystoreError> {
        params
            .check()
            .map_err(|reason| KeystoreError::InvalidKdfParams { reason })?;
        let data_key = self.unlock(old)?;
        let header = wrap(&data_key, new, params)?;
        drop(data_key);
        match fsio::write_atomic(&self.dir, HEADER_FILE, &header.encode(), Existing::Replace) {
            Ok(_) => {
                self.header = header;
                Ok(())
            }
            Err(err) => {
                // The rename may have happened before the failure (say, of the directory
                // fsync): follow whatever header the directory now holds.
                if let Ok(Some(current)) = Keystore::open(&self.dir) {
                    self.header = current.header;
                }
                Err(err)
            }
        }
    }

    /// Seals `record` under `key` into `keys/NAME.key`. Never replaces an existing key.
    pub(crate) fn store(&self, key: &DataKey, record: &KeyRecord) -> Result<(), KeystoreError> {
        let name = &record.meta.name;
        let file = seal(key, record)?;
        let keys_dir = self.keys_dir();
        fsio::ensure_private_dir(&keys_dir)?;
        let file_name = key_file_name(name);
        // A quick answer for the common case; the no-clobber write below is the guarantee.
        if fs::symlink_metadata(keys_dir.join(&file_name)).is_ok() {
            return Err(KeystoreError::KeyExists(name.clone()));
        }
        match fsio::write_atomic(&keys_dir, &file_name, &file, Existing::Keep)? {
            Written::Done => Ok(()),
            Written::Exists => Err(KeystoreError::KeyExists(name.clone())),
        }
    }

    /// Seals `record` under `key` over the existing `keys/NAME.key` (temp file + rename: a
    /// crash leaves the old file or the new one, whole). The caller holds the admin lock, so
    /// nothing removes the file between the check and the rename.
    pub(crate) fn replace(&self, key: &DataKey, record: &KeyRecord) -> Result<(), KeystoreError> {
        let name = &record.meta.name;
        let file = seal(key, record)?;
        let keys_dir = self.keys_dir();
        let file_name = key_file_name(name);
        if fs::symlink_metadata(keys_dir.join(&file_name)).is_err() {
            return Err(KeystoreError::UnknownKey(name.clone()));
        }
        fsio::write_atomic(&keys_dir, &file_name, &file, Existing::Replace).map(drop)
    }

    /// Reads and decrypts one key file.
    pub(crate) fn load(&self, key: &DataKey, name: &str) -> Result<KeyRecord, KeystoreError> {
        check_name(name)?;
        let path = self.keys_dir().join(key_file_name(name));
        match load_one(&key.cipher(), name, &path) {
            Err(KeystoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Err(KeystoreError::UnknownKey(name.to_owned()))
            }
            other => other,
        }
    }

    /// Deletes a key's file (unlink, then fsync of the directory).
    pub(crate) fn remove(&self, name: &str) -> Result<(), KeystoreError> {
        check_name(name)?;
        let keys_dir = self.keys_dir();
        let path = keys_dir.join(key_file_name(name));
        match fs::remove_file(&path) {
            Ok(()) => fsio::sync_dir(&keys_dir),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                Err(KeystoreError::UnknownKey(name.to_owned()))
            }
            Err(err) => Err(io_error(&path, err)),
        }
    }

    /// Decrypts every key file. A file that cannot be read, decoded or authenticated is
    /// reported in `failures` and never stops the others. Temporary files and names that do
    /// not end in `.key` are skipped. Modifies nothing.
    pub(crate) fn load_all(&self, key: &DataKey) -> LoadedKeys {
        let mut loaded = LoadedKeys {
            records: Vec::new(),
            failures: Vec::new(),
        };
        let keys_dir = self.keys_dir();
        let entries = match fs::read_dir(&keys_dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return loaded,
            Err(err) => {
                loaded
                    .failures
                    .push((format!("{KEYS_DIR}/"), io_error(&keys_dir, err)));
                return loaded;
            }
        };
        let cipher = key.cipher();
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) => {
                    loaded
                        .failures
                        .push((format!("{KEYS_DIR}/"), io_error(&keys_dir, err)));
                    continue;
                }
            };
            let file_name = entry.file_name();
            // Not UTF-8: not a name this keystore wrote.
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            if file_name.starts_with('.') {
                continue; // temporary files (and anything hidden)
            }
            let Some(name) = file_name.strip_suffix(KEY_SUFFIX) else {
                continue;
            };
            if let Err(err) = check_name(name) {
                loaded.failures.push((file_name.to_owned(), err));
                continue;
            }
            match load_one(&cipher, name, &entry.path()) {
                Ok(record) => loaded.records.push(record),
                // Removed between listing and reading: not a failure, just gone.
                Err(KeystoreError::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound => {}
                Err(err) => loaded.failures.push((name.to_owned(), err)),
            }
        }
        loaded.records.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
        loaded.failures.sort_by(|a, b| a.0.cmp(&b.0));
        loaded
    }

    /// The names of the keys on disk, from their file names (nothing is decrypted).
    pub(crate) fn key_names(&self) -> Vec<String> {
        key_file_names(&self.dir.join(KEYS_DIR))
    }

    /// The keystore directory.
    #[cfg(test)]
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The Argon2id parameters the header was written with.
    #[cfg(test)]
    pub(crate) fn kdf_params(&self) -> KdfParams {
        self.header.params
    }

    fn keys_dir(&self) -> PathBuf {
        self.dir.join(KEYS_DIR)
    }
}

/// A whole key file for `record`, sealed under `key`: version 3 when the record has a
/// passphrase, else version 2 (docs/KEYSTORE.md).
fn seal(key: &DataKey, record: &KeyRecord) -> Result<Zeroizing<Vec<u8>>, KeystoreError> {
    let name = &record.meta.name;
    check_name(name)?;
    let invalid = |reason: String| KeystoreError::InvalidRecord {
        name: name.clone(),
        reason,
    };
    let secret_len = record.secret.len();
    if secret_len == 0 {
        return Err(invalid("the secret is empty".to_owned()));
    }
    if secret_len > format::MAX_SECRET_LEN {
        return Err(invalid(format!(
            "the secret is {secret_len} bytes, more than {}",
            format::MAX_SECRET_LEN
        )));
    }
    let passphrase = record.passphrase.as_deref().map(Vec::as_slice);
    if passphrase.is_some_and(|p| p.is_empty() || p.len() > MAX_PASSPHRASE_LEN) {
        return Err(invalid(format!(
            "the passphrase must be 1 to {MAX_PASSPHRASE_LEN} bytes"
        )));
    }
    let (version, plain_len) = match passphrase {
        Some(p) => (
            format::KEY_VERSION,
            format::sealed_len_v3(secret_len, p.len()),
        ),
        None => (format::KEY_VERSION_PLAIN, secret_len),
    };
    let meta = format::encode_key_meta(&record.meta, version).map_err(invalid)?;

    let mut nonce = [0; NONCE_LEN];
    random(&mut nonce)?;
    // Exact capacity: the plaintext copied in below is encrypted in place and the
    // vector never reallocates, so no plaintext is left in freed memory.
    let total = meta.len() + NONCE_LEN + plain_len + TAG_LEN;
    let mut file = Zeroizing::new(Vec::with_capacity(total));
    file.extend_from_slice(&meta);
    file.extend_from_slice(&nonce);
    match passphrase {
        Some(p) => format::encode_sealed(&mut file, &record.secret, p),
        None => file.extend_from_slice(&record.secret),
    }
    let (aad, rest) = file.split_at_mut(meta.len());
    let tag = key.cipher().encrypt_in_place_detached(
        XNonce::from_slice(&nonce),
        aad,
        &mut rest[NONCE_LEN..],
    );
    burn_stack();
    let tag = tag.map_err(|_| KeystoreError::Crypto("encryption failed"))?;
    file.extend_from_slice(&tag);
    debug_assert_eq!(file.len(), total);
    Ok(file)
}

/// Decodes `bytes` as a header file and as a key file, as [`Keystore::open`] and
/// [`Keystore::load_all`] do (no I/O, no cryptography), and checks that what decodes encodes
/// back: the same header bytes, the same key metadata. Panics otherwise. The entry point of
/// the fuzz targets (fuzz/, built with `--cfg fuzzing`) and of the property tests.
#[cfg(any(test, fuzzing))]
#[allow(clippy::expect_used)] // a failed round trip is the finding: it must panic
pub(crate) fn check_file_decoders(bytes: &[u8]) {
    if let Ok(header) = Header::decode(bytes) {
        assert_eq!(&header.encode()[..], bytes, "a header does not re-encode");
    }
    // Version 1 key files are read, never written: versions 2 and 3 re-encode.
    if let Ok(sealed) = format::decode_key_file(bytes)
        && sealed.version >= 2
    {
        let mut again = format::encode_key_meta(&sealed.meta, sealed.version)
            .expect("decoded metadata encodes");
        again.extend_from_slice(sealed.nonce);
        again.extend_from_slice(sealed.ciphertext);
        again.extend_from_slice(sealed.tag);
        let reread = format::decode_key_file(&again).expect("re-encoded key file decodes");
        assert_eq!(
            reread.version, sealed.version,
            "the version does not round-trip"
        );
        assert_eq!(reread.meta, sealed.meta, "key metadata does not round-trip");
        assert_eq!(
            (reread.nonce, reread.ciphertext, reread.tag),
            (sealed.nonce, sealed.ciphertext, sealed.tag)
        );
    }
}

/// Reads, checks and decrypts one key file.
fn load_one(
    cipher: &XChaCha20Poly1305,
    name: &str,
    path: &Path,
) -> Result<KeyRecord, KeystoreError> {
    let corrupt = |reason: String| KeystoreError::CorruptKey {
        name: name.to_owned(),
        reason,
    };
    let bytes = fsio::read_bounded(path, format::MAX_KEY_FILE_LEN).map_err(|err| match err {
        ReadError::Io(err) => io_error(path, err),
        ReadError::NotAFile => corrupt("not a regular file".to_owned()),
        ReadError::TooLarge(len) => corrupt(format!("{len} bytes, larger than any key file")),
    })?;
    let sealed = format::decode_key_file(&bytes).map_err(|err| match err {
        FormatError::Unsupported { found } => unsupported(found, format::KEY_VERSION),
        FormatError::Corrupt(reason) => corrupt(reason),
    })?;
    if sealed.meta.name != name {
        // A renamed file would otherwise sign under a name it was not given.
        return Err(corrupt(format!(
            "the file is named {name}{KEY_SUFFIX} but holds the key {:?}",
            sealed.meta.name
        )));
    }
    // Exact capacity, decrypted in place: the plaintext exists only in this buffer.
    let mut secret = Zeroizing::new(Vec::with_capacity(sealed.ciphertext.len()));
    secret.extend_from_slice(sealed.ciphertext);
    let opened = cipher.decrypt_in_place_detached(
        XNonce::from_slice(sealed.nonce),
        sealed.aad,
        &mut secret[..],
        Tag::from_slice(sealed.tag),
    );
    burn_stack();
    opened.map_err(|_| {
        corrupt(
            "authentication failed: the file was altered, or was sealed by another keystore"
                .to_owned(),
        )
    })?;
    if sealed.version < 3 {
        return Ok(KeyRecord {
            meta: sealed.meta,
            secret,
            passphrase: None,
        });
    }
    // Version 3: the plaintext is the secret and the passphrase, each copied out into its
    // own exact-size buffer; `secret` (the whole plaintext) is zeroized when dropped.
    let (key_secret, passphrase) = format::decode_sealed(&secret).map_err(|err| match err {
        FormatError::Corrupt(reason) => corrupt(reason),
        FormatError::Unsupported { found } => unsupported(found, format::KEY_VERSION),
    })?;
    let exact = |bytes: &[u8]| {
        let mut out = Zeroizing::new(Vec::with_capacity(bytes.len()));
        out.extend_from_slice(bytes);
        out
    };
    Ok(KeyRecord {
        meta: sealed.meta,
        secret: exact(key_secret),
        passphrase: passphrase.map(exact),
    })
}

/// Wraps `data_key` under a key derived from `passphrase` with a new salt and nonce.
fn wrap(data_key: &DataKey, passphrase: &[u8], params: KdfParams) -> Result<Header, KeystoreError> {
    let mut header = Header {
        params,
        salt: [0; format::SALT_LEN],
        nonce: [0; NONCE_LEN],
        wrapped_key: [0; KEY_LEN],
        tag: [0; TAG_LEN],
    };
    random(&mut header.salt)?;
    random(&mut header.nonce)?;
    let mut kek = Zeroizing::new([0; KEY_LEN]);
    derive_kek(passphrase, &params, &header.salt, &mut kek)?;
    let cipher = XChaCha20Poly1305::new(Key::from_slice(&kek[..]));
    // Encrypted in place in a wiped buffer: the clear data key is copied only here.
    let mut buffer = Zeroizing::new([0; KEY_LEN]);
    buffer.copy_from_slice(&data_key.0[..]);
    let tag = cipher
        .encrypt_in_place_detached(
            XNonce::from_slice(&header.nonce),
            &header.aad(),
            &mut buffer[..],
        )
        .map_err(|_| KeystoreError::Crypto("encryption failed"))?;
    header.wrapped_key = *buffer;
    header.tag.copy_from_slice(&tag);
    Ok(header)
}

/// Argon2id (version 0x13) of `passphrase` and `salt` into `out`.
fn derive_kek(
    passphrase: &[u8],
    params: &KdfParams,
    salt: &[u8],
    out: &mut [u8; KEY_LEN],
) -> Result<(), KeystoreError> {
    let invalid = |err: argon2::Error| KeystoreError::InvalidKdfParams {
        reason: err.to_string(),
    };
    let argon_params = Params::new(
        params.m_cost_kib,
        params.t_cost,
        params.p_cost,
        Some(KEY_LEN),
    )
    .map_err(invalid)?;
    // Our own working memory, wiped on drop: argon2 0.5's `hash_password_into` frees its
    // blocks without wiping them, and its last blocks determine the output, so what it
    // leaves in the heap would let anyone who reads the process recompute the key.
    let mut memory = Zeroizing::new(vec![Block::default(); argon_params.block_count()]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params)
        .hash_password_into_with_memory(passphrase, salt, &mut out[..], &mut memory[..])
        .map_err(invalid)
}

/// Fills `buf` from the operating system's CSPRNG (through AWS-LC).
fn random(buf: &mut [u8]) -> Result<(), KeystoreError> {
    aws_lc_rs::rand::fill(buf)
        .map_err(|_| KeystoreError::Crypto("the random number generator failed"))
}

fn check_name(name: &str) -> Result<(), KeystoreError> {
    validate_key_name(name).map_err(|err| KeystoreError::InvalidName(err.reason.to_owned()))
}

fn key_file_name(name: &str) -> String {
    format!("{name}{KEY_SUFFIX}")
}

/// `supported`: the newest version of that kind of file this keyward reads.
fn unsupported(found: u32, supported: u32) -> KeystoreError {
    KeystoreError::UnsupportedVersion { found, supported }
}

/// The names of the key files in `keys_dir` (without reading them): what the keystore holds
/// while it is locked. Unreadable directories and odd names are skipped.
fn key_file_names(keys_dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(keys_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry
                .file_name()
                .to_str()?
                .strip_suffix(KEY_SUFFIX)?
                .to_owned();
            (!name.starts_with('.')).then_some(name)
        })
        .collect()
}

/// True if `keys_dir` holds anything that looks like a key file.
fn has_key_files(keys_dir: &Path) -> Result<bool, KeystoreError> {
    match fs::read_dir(keys_dir) {
        Ok(entries) => Ok(entries.flatten().any(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| !name.starts_with('.') && name.ends_with(KEY_SUFFIX))
        })),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(io_error(keys_dir, err)),
    }
}

/// Wipes the 64 KiB of stack below the caller's frame. The RustCrypto ciphers copy each
/// block they process into stack temporaries (`inout`'s `xor_in2out` reads the input block
/// by value), so sealing or opening a secret leaves its last blocks in clear in dead stack
/// frames of the calling thread, where nothing overwrites them until the stack is reused.
#[inline(never)]
fn burn_stack() {
    use zeroize::Zeroize as _;
    let mut scratch = [0u8; 64 * 1024];
    scratch.zeroize();
    std::hint::black_box(&scratch);
}
