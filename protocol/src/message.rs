//! The messages: [`Request`] from client to daemon, [`Response`] back.
//!
//! Both are postcard-encoded serde enums: a varint variant index, then the fields in order.
//! New variants are only ever appended, so the indices below are stable; docs/PROTOCOL.md
//! lists them with their bytes.

use serde::{Deserialize, Serialize};

use crate::{ErrorCode, KeyKind, PayloadFormat, Scheme, SecretBytes};

/// A request from a client. The first request on a connection must be [`Request::Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Request {
    /// 0: opens a conversation in protocol `version`.
    Hello {
        /// The protocol version the client speaks ([`crate::PROTOCOL_VERSION`]).
        version: u32,
    },
    /// 1: sign `payload` with the key named `key`.
    Sign {
        /// Key name.
        key: String,
        /// The exact bytes to sign (for Binance: the query string or request body).
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// 2: sign each payload with one key, in one round trip; answered by
    /// [`Response::Signatures`] in the same order, or one error for the whole batch.
    SignBatch {
        /// Key name.
        key: String,
        /// The payloads, each signed separately.
        payloads: Vec<serde_bytes::ByteBuf>,
    },
    /// 3: list the keys this peer may see.
    List,
    /// 4: describe one key, with its public key.
    PublicKey {
        /// Key name.
        key: String,
    },
    /// 5: add a key from its private material (admin).
    Import {
        /// Name for the new key.
        name: String,
        /// For HMAC keys, the scheme (required). For asymmetric keys, optional: it is
        /// detected from the key and, when given, must match.
        scheme: Option<Scheme>,
        /// A PEM private key (PKCS#8, PKCS#1 RSA, SEC1 EC), or the raw HMAC secret.
        material: SecretBytes,
        /// Password of an encrypted PKCS#8 PEM (`ENCRYPTED PRIVATE KEY`).
        pem_passphrase: Option<SecretBytes>,
        /// The exchange's API key id that goes with this key (shown, and signed by Bybit
        /// payloads, which the daemon checks).
        api_key: Option<String>,
        /// The key's payload format, stored with it (protocol version 2). The daemon's
        /// config may set another for this key, which wins.
        format: Option<PayloadFormat>,
    },
    /// 6: generate a key inside the daemon; only its public half is returned (admin).
    Generate {
        /// Name for the new key.
        name: String,
        /// What to generate.
        kind: KeyKind,
        /// The exchange's API key id (shown, and signed by Bybit payloads).
        api_key: Option<String>,
        /// The key's payload format, stored with it (protocol version 2).
        format: Option<PayloadFormat>,
    },
    /// 7: delete a key (admin).
    Remove {
        /// Key name.
        name: String,
    },
    /// 8: report the keystore's state.
    Status,
    /// 9: create the keystore with a passphrase (admin).
    Init {
        /// The new passphrase.
        passphrase: SecretBytes,
    },
    /// 10: unlock the keystore (admin).
    Unlock {
        /// The keystore passphrase.
        passphrase: SecretBytes,
    },
    /// 11: lock the keystore, dropping every decrypted key (admin).
    Lock,
    /// 12: change the keystore passphrase (admin).
    ChangePassphrase {
        /// The current passphrase.
        old: SecretBytes,
        /// The new passphrase.
        new: SecretBytes,
    },
}

impl Request {
    /// A short name of the request kind, for logs and audit records.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Hello { .. } => "hello",
            Request::Sign { .. } => "sign",
            Request::SignBatch { .. } => "sign-batch",
            Request::List => "list",
            Request::PublicKey { .. } => "public-key",
            Request::Import { .. } => "import",
            Request::Generate { .. } => "generate",
            Request::Remove { .. } => "remove",
            Request::Status => "status",
            Request::Init { .. } => "init",
            Request::Unlock { .. } => "unlock",
            Request::Lock => "lock",
            Request::ChangePassphrase { .. } => "change-passphrase",
        }
    }
}

/// What a daemon says about one key. Never contains private material.
///
/// Postcard has no field names, so adding a field here is a protocol version change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Key name.
    pub name: String,
    /// The scheme the key signs with.
    pub scheme: Scheme,
    /// Key size in bits: the RSA modulus, 256 for Ed25519 and P-256, and 8 × the secret's
    /// length in bytes for HMAC.
    pub bits: u32,
    /// DER `SubjectPublicKeyInfo` of the public key; `None` for HMAC keys.
    #[serde(with = "serde_bytes")]
    pub public_key: Option<Vec<u8>>,
    /// `SHA256:` + unpadded base64 of SHA-256 over `public_key` (as ssh-keygen prints);
    /// `None` for HMAC keys, whose secret is not hashed for display.
    pub fingerprint: Option<String>,
    /// The exchange's API key id, if one was given.
    pub api_key: Option<String>,
    /// The format the daemon parses this key's payloads in when its rules judge them: the
    /// key's config section's `format`, else the one stored with the key, else the config's
    /// `[defaults]` one (protocol version 2). `None`: no format, so payload rules refuse
    /// every payload of this key.
    pub format: Option<PayloadFormat>,
}

/// The keystore's state, as [`Response::Status`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KeystoreState {
    /// 0: no keystore yet; `init` creates one.
    Uninitialized,
    /// 1: keys are at rest, encrypted; `unlock` makes them usable.
    Locked,
    /// 2: keys are decrypted in memory and can sign.
    Unlocked,
    /// 3: keys live only in memory and are never written (a daemon started with `--ephemeral`).
    Ephemeral,
}

/// A key file that could not be decrypted or parsed at unlock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadableKey {
    /// Key name (from the file name).
    pub name: String,
    /// Why it could not be read.
    pub reason: String,
}

/// The daemon's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Keystore state.
    pub state: KeystoreState,
    /// Number of usable keys.
    pub keys: u32,
    /// Seconds until the idle auto-lock, if one is armed.
    pub idle_lock_in: Option<u64>,
    /// Seconds until the maximum-lifetime auto-lock, if one is armed.
    pub max_unlock_in: Option<u64>,
    /// Key files that could not be read at the last unlock.
    pub unreadable: Vec<UnreadableKey>,
}

/// A response from the daemon; exactly one per request, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Response {
    /// 0: answer to [`Request::Hello`].
    Hello {
        /// The protocol version the daemon will speak on this connection.
        version: u32,
        /// The largest frame body the daemon accepts.
        max_frame: u32,
    },
    /// 1: a signature.
    Signature {
        /// The scheme it was made with (tells the client how to encode it by default).
        scheme: Scheme,
        /// Raw signature bytes.
        #[serde(with = "serde_bytes")]
        signature: Vec<u8>,
    },
    /// 2: one signature per payload of a [`Request::SignBatch`], in order.
    Signatures {
        /// The scheme they were made with.
        scheme: Scheme,
        /// Raw signature bytes, one per payload.
        signatures: Vec<serde_bytes::ByteBuf>,
    },
    /// 3: the keys this peer may see.
    Keys {
        /// The keys, sorted by name.
        keys: Vec<KeyInfo>,
    },
    /// 4: one key (answer to public-key, import and generate).
    Key {
        /// The key.
        key: KeyInfo,
    },
    /// 5: success with nothing to say.
    Ok,
    /// 6: the request failed. `message` is for people and never contains secret material.
    Error {
        /// Stable code for programs.
        code: ErrorCode,
        /// One line for people.
        message: String,
    },
    /// 7: answer to [`Request::Status`].
    Status(Status),
}

impl Response {
    /// Builds an error response.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Response::Error {
            code,
            message: message.into(),
        }
    }
}
