//! Exit codes, and the one line printed for an error.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | any other failure (bad key file, unknown key, daemon-side error, ...) |
//! | 2 | usage error (bad flags or arguments) |
//! | 3 | the daemon is unreachable (not running, wrong socket path) or its socket is not trusted (another user's server) |
//! | 4 | denied: this user may not make that request, or the key's policy refuses the payload |
//! | 5 | the keystore is locked (or not initialised) |
//! | 6 | rate limited: retry later |
//! | 7 | `keyward status`: the keystore is not initialised (it prints the state first) |
//! | 8 | `keyward reload`: the new config is invalid; the old policy stays in force |
//!
//! `keyward status` also exits 5 when the keystore is locked, after printing the state, so
//! that monitoring can run it as a check: 0 means keys can sign.

use keyward_client::{Error as ClientError, ErrorCode};

/// Documented in `keyward --help` ([`HELP`]) and the table above; never renumbered.
pub(crate) const FAILURE: u8 = 1;
pub(crate) const USAGE: u8 = 2;
pub(crate) const UNREACHABLE: u8 = 3;
pub(crate) const DENIED: u8 = 4;
pub(crate) const LOCKED: u8 = 5;
pub(crate) const RATE_LIMITED: u8 = 6;
pub(crate) const UNINITIALIZED: u8 = 7;
pub(crate) const INVALID_CONFIG: u8 = 8;

/// The help text's table of exit codes.
pub(crate) const HELP: &str = "\
Exit codes:
  0  success
  1  failure (bad key file, unknown key, daemon-side error, ...)
  2  usage error
  3  daemon unreachable (not running, or wrong --socket / KEYWARD_SOCK), or its
     socket belongs to another user and is not trusted (nothing was sent)
  4  denied (this user may not make that request, or the key's policy refuses the payload)
  5  keystore locked (run `keyward unlock`) or not initialised (`keyward init`);
     `keyward status` exits 5 when locked, after printing the state
  6  rate limited (retry later)
  7  `keyward status`: the keystore is not initialised (after printing the state)
  8  `keyward reload`: the new config is invalid; the old policy stays in force";

/// A command that did its work but must still exit non-zero (e.g. `status` on a locked
/// keystore): its code and the one line for stderr.
#[derive(Debug)]
pub(crate) struct Exit {
    code: u8,
    message: &'static str,
}

impl Exit {
    pub(crate) fn new(code: u8, message: &'static str) -> Exit {
        Exit { code, message }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message)
    }
}

impl std::error::Error for Exit {}

/// A mistake in how the command was called, found after argument parsing.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The exit code for an error, found by looking through its chain of causes.
pub(crate) fn code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<UsageError>() {
            return USAGE;
        }
        if let Some(exit) = cause.downcast_ref::<Exit>() {
            return exit.code;
        }
        if let Some(client) = cause.downcast_ref::<ClientError>() {
            return match client {
                // The socket's permissions refused us: that is a denial, not an absent daemon.
                ClientError::Connect { source, .. }
                    if source.kind() == std::io::ErrorKind::PermissionDenied =>
                {
                    DENIED
                }
                ClientError::Connect { .. } | ClientError::UntrustedServer { .. } => UNREACHABLE,
                // `sign --format` was given a payload the exchange's signing string cannot hold.
                ClientError::InvalidRequest { .. } => USAGE,
                _ => match client.code() {
                    // A batch larger than the burst is refused by the key's policy for good.
                    Some(
                        ErrorCode::Denied
                        | ErrorCode::PolicyViolation
                        | ErrorCode::BatchExceedsBurst,
                    ) => DENIED,
                    Some(ErrorCode::InvalidConfig) => INVALID_CONFIG,
                    Some(ErrorCode::Locked | ErrorCode::NotInitialized) => LOCKED,
                    Some(ErrorCode::RateLimited) => RATE_LIMITED,
                    _ => FAILURE,
                },
            };
        }
    }
    FAILURE
}

/// The error as one line: the chain of contexts joined with ": ", newlines folded.
pub(crate) fn one_line(err: &anyhow::Error) -> String {
    format!("{err:#}").replace(['\n', '\r'], " ")
}
