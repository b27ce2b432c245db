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
    /// 13: the daemon's counters, answered by [`Response::Stats`] (protocol version 3;
    /// admins and `status_uids`/`status_gids`).
    Stats,
    /// 14: re-read the config file and put its policy in force, answered by
    /// [`Response::Reloaded`] or, when the new file is invalid, by an error with
    /// [`ErrorCode::InvalidConfig`] (protocol version 3; admin).
    Reload,
    /// 15: store `passphrase` with the HMAC key `key`, sealed in its key file, replacing
    /// any it had; `None` removes it. Answered by [`Response::Ok`] (protocol version 3;
    /// admin). KuCoin API keys of version 2 and 3 sign their passphrase
    /// (docs/EXCHANGES.md); the daemon never returns it, only [`Request::SignPassphrase`]'s
    /// HMAC of it.
    SetPassphrase {
        /// Key name.
        key: String,
        /// The passphrase (1 to 256 bytes), or `None` to remove the stored one.
        passphrase: Option<SecretBytes>,
    },
    /// 16: sign the passphrase stored with `key` (HMAC of the passphrase under the key's
    /// secret), answered by [`Response::Signature`], or by an error with
    /// [`ErrorCode::NoPassphrase`] when the key has none. Allowed to whoever may sign with
    /// the key; payload rules do not apply, since the signed bytes are the admin's, not the
    /// peer's (protocol version 3).
    SignPassphrase {
        /// Key name.
        key: String,
    },
}

impl Request {
    /// The first protocol version that has this request: a daemon refuses a request that
    /// the version spoken on the connection does not have, since its answer would be a
    /// response that version cannot decode.
    pub fn since_version(&self) -> u32 {
        match self {
            Request::Stats
            | Request::Reload
            | Request::SetPassphrase { .. }
            | Request::SignPassphrase { .. } => 3,
            _ => 1,
        }
    }

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
            Request::Stats => "stats",
            Request::Reload => "reload",
            Request::SetPassphrase { .. } => "set-passphrase",
            Request::SignPassphrase { .. } => "sign-passphrase",
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
    /// 7: answer to [`Request::Status`] in protocol version 2. A version 3 connection gets
    /// [`Response::StatusReport`] instead.
    Status(Status),
    /// 8: answer to [`Request::Hello`] in protocol version 3 and later: [`Response::Hello`]'s
    /// fields, then which daemon this is. A version 2 Hello still gets [`Response::Hello`].
    Welcome(Welcome),
    /// 9: the key's rate limit (or `orders_per_minute`) is exhausted (protocol version 3;
    /// a version 2 connection gets [`Response::Error`] with [`ErrorCode::RateLimited`]).
    /// Retrying the same request after `retry_after_ms` can succeed; a payload with a
    /// timestamp should be rebuilt, and signed again, with a fresh one.
    RateLimited {
        /// Milliseconds until the request can succeed (at least 1).
        retry_after_ms: u64,
        /// One line for people.
        message: String,
    },
    /// 10: answer to [`Request::Status`] in protocol version 3.
    StatusReport(StatusReport),
    /// 11: answer to [`Request::Stats`] (protocol version 3).
    Stats(Stats),
    /// 12: answer to [`Request::Reload`]: the new policy is in force (protocol version 3).
    Reloaded {
        /// The config's `[daemon]` section differs from the one read at start; those
        /// settings apply only at the next start.
        daemon_section_changed: bool,
    },
}

impl Response {
    /// The first protocol version that has this response: a daemon never sends a peer a
    /// response its version cannot decode (docs/PROTOCOL.md, section 6).
    pub fn since_version(&self) -> u32 {
        match self {
            Response::Welcome(_)
            | Response::RateLimited { .. }
            | Response::StatusReport(_)
            | Response::Stats(_)
            | Response::Reloaded { .. } => 3,
            _ => 1,
        }
    }
}

/// The answer to a version 3 Hello ([`Response::Welcome`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The protocol version the daemon will speak on this connection.
    pub version: u32,
    /// The largest frame body the daemon accepts.
    pub max_frame: u32,
    /// The daemon's release, e.g. `0.1.0`.
    pub daemon_version: String,
    /// The git commit the daemon was built from (as `keywardd --version` prints it), if
    /// known.
    pub daemon_commit: Option<String>,
}

/// The daemon's state with what only version 3 can carry ([`Response::StatusReport`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The keystore's state, as a version 2 [`Response::Status`] has it.
    pub status: Status,
    /// Each key's order rules, sorted by key name; `None` unless the peer is an admin.
    pub order_rules: Option<Vec<KeyOrderRules>>,
}

/// The order rules in force for one key (issue 17). An empty list or an absent limit is no
/// rule: anything goes for that field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyOrderRules {
    /// Key name.
    pub key: String,
    /// Symbols the key may order, in the exchange's spelling; empty: any.
    pub allow_symbols: Vec<String>,
    /// Sides the key may order; empty: any.
    pub allow_sides: Vec<String>,
    /// Order types the key may place; empty: any.
    pub allow_order_types: Vec<String>,
    /// Largest base-asset quantity of one order, as an exact decimal string.
    pub max_quantity: Option<String>,
    /// Largest price × quantity (or quote quantity) of one order, as an exact decimal string.
    pub max_notional: Option<String>,
    /// Most orders a minute.
    pub orders_per_minute: Option<u32>,
}

/// How many signatures one key made with one scheme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureCount {
    /// Key name.
    pub key: String,
    /// The scheme the signatures were made with.
    pub scheme: Scheme,
    /// Signatures made (a batch counts each payload).
    pub count: u64,
}

/// A counter with a name, e.g. denials of one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedCount {
    /// What is counted, e.g. `policy-violation`.
    pub name: String,
    /// How many.
    pub count: u64,
}

/// The daemon's counters since it started ([`Response::Stats`]). Every `u64` but
/// `connections_open` only grows while the daemon runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// Signatures made, per key and scheme, sorted by key then scheme.
    pub signatures: Vec<SignatureCount>,
    /// Requests refused by a decision, per reason (the error code's name: `denied`,
    /// `policy-violation`, `batch-exceeds-burst`), sorted by name.
    pub denials: Vec<NamedCount>,
    /// Sign requests refused by a rate limit (`rate_per_sec` or `orders_per_minute`).
    pub rate_limited: u64,
    /// Sign requests refused because the keystore was locked.
    pub locked_refusals: u64,
    /// Audit records that could not be written.
    pub audit_failures: u64,
    /// Audit records dropped because the audit writer's queue was full.
    pub audit_drops: u64,
    /// Connections being served now.
    pub connections_open: u64,
    /// Connections accepted and served.
    pub connections_accepted: u64,
    /// Connections refused (no right at all, or a connection limit).
    pub connections_refused: u64,
    /// Successful unlocks.
    pub unlocks: u64,
    /// Successful reloads (SIGHUP or `Reload`).
    pub reloads: u64,
    /// Reloads refused because the new config was invalid.
    pub reload_failures: u64,
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
