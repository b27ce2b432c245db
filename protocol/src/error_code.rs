//! The stable error codes a daemon answers failures with.

use core::fmt;
use serde::{Deserialize, Serialize};

/// Why a request failed. On the wire this is a `u16` (postcard varint), so that a client
/// built before a code was added still decodes the response, as [`ErrorCode::Other`].
///
/// The numbers are stable: a code is never renumbered or reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "u16", into = "u16")]
#[non_exhaustive]
pub enum ErrorCode {
    /// 1: the client's protocol version is not spoken by this daemon.
    UnsupportedVersion,
    /// 2: the request was malformed, out of order, or had an invalid argument.
    BadRequest,
    /// 3: the frame or payload exceeds the daemon's limit.
    TooLarge,
    /// 4: no key by that name.
    UnknownKey,
    /// 5: a key by that name exists already.
    KeyExists,
    /// 6: key material could not be parsed or is not acceptable.
    InvalidKey,
    /// 7: the peer is not allowed to make this request.
    Denied,
    /// 8: the keystore is locked; unlock it first.
    Locked,
    /// 9: the payload breaks the key's policy.
    PolicyViolation,
    /// 10: the key's rate limit is exhausted; retry later.
    RateLimited,
    /// 11: the daemon failed internally; the details are in its log.
    Internal,
    /// 12: the keystore has not been initialised.
    NotInitialized,
    /// 13: the keystore is initialised already.
    AlreadyInitialized,
    /// 14: the passphrase is wrong.
    WrongPassphrase,
    /// 15: the daemon cannot serve the request now (e.g. it is shutting down).
    Unavailable,
    /// 16: a batch holds more payloads than the key's `burst`: it can never succeed, so
    /// split it (protocol version 3; earlier daemons answered `RateLimited`).
    BatchExceedsBurst,
    /// 17: the config file is invalid; the policy in force is unchanged (answer to a
    /// `Reload`, protocol version 3).
    InvalidConfig,
    /// 18: the key has no stored passphrase to sign (answer to `SignPassphrase`, protocol
    /// version 3); an admin sets one with `SetPassphrase`.
    NoPassphrase,
    /// A code this crate does not know (sent by a newer daemon).
    Other(u16),
}

impl ErrorCode {
    /// The stable number of this code.
    pub fn as_u16(self) -> u16 {
        match self {
            ErrorCode::UnsupportedVersion => 1,
            ErrorCode::BadRequest => 2,
            ErrorCode::TooLarge => 3,
            ErrorCode::UnknownKey => 4,
            ErrorCode::KeyExists => 5,
            ErrorCode::InvalidKey => 6,
            ErrorCode::Denied => 7,
            ErrorCode::Locked => 8,
            ErrorCode::PolicyViolation => 9,
            ErrorCode::RateLimited => 10,
            ErrorCode::Internal => 11,
            ErrorCode::NotInitialized => 12,
            ErrorCode::AlreadyInitialized => 13,
            ErrorCode::WrongPassphrase => 14,
            ErrorCode::Unavailable => 15,
            ErrorCode::BatchExceedsBurst => 16,
            ErrorCode::InvalidConfig => 17,
            ErrorCode::NoPassphrase => 18,
            ErrorCode::Other(n) => n,
        }
    }

    /// A short lowercase name, e.g. `unknown-key`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::UnsupportedVersion => "unsupported-version",
            ErrorCode::BadRequest => "bad-request",
            ErrorCode::TooLarge => "too-large",
            ErrorCode::UnknownKey => "unknown-key",
            ErrorCode::KeyExists => "key-exists",
            ErrorCode::InvalidKey => "invalid-key",
            ErrorCode::Denied => "denied",
            ErrorCode::Locked => "locked",
            ErrorCode::PolicyViolation => "policy-violation",
            ErrorCode::RateLimited => "rate-limited",
            ErrorCode::Internal => "internal",
            ErrorCode::NotInitialized => "not-initialized",
            ErrorCode::AlreadyInitialized => "already-initialized",
            ErrorCode::WrongPassphrase => "wrong-passphrase",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::BatchExceedsBurst => "batch-exceeds-burst",
            ErrorCode::InvalidConfig => "invalid-config",
            ErrorCode::NoPassphrase => "no-passphrase",
            ErrorCode::Other(_) => "other",
        }
    }
}

impl From<u16> for ErrorCode {
    fn from(n: u16) -> Self {
        match n {
            1 => ErrorCode::UnsupportedVersion,
            2 => ErrorCode::BadRequest,
            3 => ErrorCode::TooLarge,
            4 => ErrorCode::UnknownKey,
            5 => ErrorCode::KeyExists,
            6 => ErrorCode::InvalidKey,
            7 => ErrorCode::Denied,
            8 => ErrorCode::Locked,
            9 => ErrorCode::PolicyViolation,
            10 => ErrorCode::RateLimited,
            11 => ErrorCode::Internal,
            12 => ErrorCode::NotInitialized,
            13 => ErrorCode::AlreadyInitialized,
            14 => ErrorCode::WrongPassphrase,
            15 => ErrorCode::Unavailable,
            16 => ErrorCode::BatchExceedsBurst,
            17 => ErrorCode::InvalidConfig,
            18 => ErrorCode::NoPassphrase,
            other => ErrorCode::Other(other),
        }
    }
}

impl From<ErrorCode> for u16 {
    fn from(code: ErrorCode) -> u16 {
        code.as_u16()
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCode::Other(n) => write!(f, "error code {n}"),
            known => f.write_str(known.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_unknown_ones_survive() {
        for n in 0..=40u16 {
            assert_eq!(ErrorCode::from(n).as_u16(), n);
        }
        assert_eq!(ErrorCode::from(999), ErrorCode::Other(999));
    }
}
