//! The error a request ends in: a stable code for programs and one line for people.

use std::time::Duration;

use keyward_protocol::{ErrorCode, Response};

use crate::keyring::KeyringError;
use crate::keystore::KeystoreError;
use crate::signer::{KeyError, SignError};

/// A request that failed. The message goes to the client and the log, so it is built only
/// from names and reasons, never from key material or passphrases.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    /// For a rate-limit refusal: how long until the same request can succeed.
    pub(crate) retry_after: Option<Duration>,
}

impl Failure {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A rate-limit refusal that can succeed after `wait`.
    pub(crate) fn rate_limited(message: impl Into<String>, wait: Duration) -> Failure {
        Failure {
            retry_after: Some(wait),
            ..Failure::new(ErrorCode::RateLimited, message)
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Failure {
        Failure::new(ErrorCode::BadRequest, message)
    }

    /// An internal fault: the client gets a generic line, the details go to the log.
    pub(crate) fn internal(context: &str, detail: &dyn std::fmt::Display) -> Failure {
        tracing::error!("{context}: {detail}");
        Failure::new(
            ErrorCode::Internal,
            format!("{context}; see the daemon's log"),
        )
    }

    /// The answer in protocol `version`: version 3 carries a rate limit's wait as a field
    /// ([`Response::RateLimited`]), version 2 only in the message.
    pub(crate) fn into_response(self, version: u32) -> Response {
        match self.retry_after {
            Some(wait) if version >= 3 && self.code == ErrorCode::RateLimited => {
                Response::RateLimited {
                    retry_after_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1),
                    message: self.message,
                }
            }
            _ => Response::error(self.code, self.message),
        }
    }
}

impl From<KeyringError> for Failure {
    fn from(err: KeyringError) -> Failure {
        let code = match err {
            KeyringError::Locked => ErrorCode::Locked,
            KeyringError::NotInitialized => ErrorCode::NotInitialized,
            KeyringError::UnknownKey(_) => ErrorCode::UnknownKey,
            KeyringError::Exists(_) => ErrorCode::KeyExists,
        };
        Failure::new(code, err.to_string())
    }
}

impl From<KeyError> for Failure {
    fn from(err: KeyError) -> Failure {
        match err {
            KeyError::Rejected(why) => Failure::new(ErrorCode::InvalidKey, why),
            KeyError::Generation => Failure::internal("key generation failed", &err),
        }
    }
}

impl From<SignError> for Failure {
    fn from(err: SignError) -> Failure {
        Failure::internal("signing failed", &err)
    }
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
