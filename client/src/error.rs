//! The one error type of the client.

use core::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use keyward_protocol::{DecodeError, ErrorCode, PROTOCOL_VERSION};

/// Why a call to the daemon failed.
///
/// Messages never contain secret material: requests (which may carry a passphrase or a
/// private key) are never formatted into an error.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The socket could not be connected to; the daemon may not be running.
    Connect {
        /// The socket path that was tried.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// The socket's server may not be trusted: it runs as another user (not root), and the
    /// socket's directory is not one that only that user could have made. Nothing was sent.
    /// See the crate documentation for the rule.
    UntrustedServer {
        /// The socket path that was connected to.
        path: PathBuf,
        /// The server's uid, from `SO_PEERCRED`.
        server_uid: u32,
        /// The server's user name, when the password database knows it.
        server_user: Option<String>,
        /// This process's effective uid.
        client_uid: u32,
        /// Why the socket's directory does not vouch for the server.
        reason: String,
    },
    /// Reading from or writing to the connection failed (including a timeout set with
    /// [`Client::set_timeout`](crate::Client::set_timeout)).
    Io(io::Error),
    /// The daemon sent bytes that are not a valid response frame.
    Protocol(DecodeError),
    /// The request is larger than the daemon's frame limit. Nothing was sent, and the
    /// connection can still be used.
    TooLarge {
        /// Size of the request's frame body, in bytes.
        len: u64,
        /// The daemon's limit (`max_frame` from its Hello).
        max: u32,
    },
    /// The daemon does not speak this client's protocol version
    /// ([`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION)).
    UnsupportedVersion {
        /// What the daemon said: its error message, or the version it answered with.
        daemon: String,
    },
    /// The daemon refused or failed the request; `code` says why.
    Daemon {
        /// The daemon's stable error code.
        code: ErrorCode,
        /// The daemon's one-line message (never contains secret material).
        message: String,
    },
    /// The key's rate limit (or its `orders_per_minute`) is exhausted
    /// ([`ErrorCode::RateLimited`]): wait `retry_after`, then build the payload again with a
    /// fresh timestamp and sign it. A daemon of protocol version 2 sends this as
    /// [`Error::Daemon`] with the wait only in its message; [`Error::retry_after`] reads
    /// either.
    RateLimited {
        /// How long until the same request can succeed.
        retry_after: Duration,
        /// The daemon's one-line message.
        message: String,
    },
    /// The daemon answered with a response of the wrong kind for the request.
    UnexpectedResponse {
        /// What was expected, e.g. `"signature"`.
        expected: &'static str,
    },
    /// The daemon closed the connection before answering; the request may or may not have
    /// been carried out. The connection is dropped and the client's next call opens a new
    /// one. A client made with `from_stream` cannot: it reports every call after a failure
    /// half-way (this one, an I/O error, a timeout, a malformed response, a cancelled call),
    /// and after the daemon closed an idle connection, as this.
    Disconnected,
    /// An exchange helper needs the key's API key id, none was passed, and the key has none
    /// stored (give one with `keyward import --api-key` or `generate --api-key`).
    NoApiKey {
        /// The key name.
        key: String,
    },
    /// An exchange helper was given request parts that the exchange's signing string, or the
    /// daemon's parser of it, cannot hold (e.g. a lower-case path segment with a space).
    /// Nothing was sent.
    InvalidRequest {
        /// What is wrong, naming the part (never a secret: only request parts are checked).
        reason: String,
    },
}

impl Error {
    /// The stable error code of this failure, for a program to branch on.
    ///
    /// `Some` for [`Error::Daemon`], for [`Error::UnsupportedVersion`]
    /// ([`ErrorCode::UnsupportedVersion`]) and for the local [`Error::TooLarge`]
    /// ([`ErrorCode::TooLarge`], the same answer the daemon would have given); `None` for
    /// connection and protocol failures.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Daemon { code, .. } => Some(*code),
            Error::RateLimited { .. } => Some(ErrorCode::RateLimited),
            Error::UnsupportedVersion { .. } => Some(ErrorCode::UnsupportedVersion),
            Error::TooLarge { .. } => Some(ErrorCode::TooLarge),
            _ => None,
        }
    }

    /// How long to wait before retrying, for a rate-limit refusal: the daemon's field
    /// (protocol version 3), else the `retry in N ms` of a version 2 daemon's message.
    /// `None` for every other error, including [`ErrorCode::BatchExceedsBurst`], which
    /// waiting cannot cure. docs/INTEGRATING.md says what to do with each code.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => Some(*retry_after),
            Error::Daemon {
                code: ErrorCode::RateLimited,
                message,
            } => {
                let digits = message.split("retry in ").nth(1)?;
                let end = digits
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(digits.len());
                let ms = digits.get(..end)?.parse().ok()?;
                Some(Duration::from_millis(ms))
            }
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    // The text of a `source()` error is not repeated here (it would print twice in an error
    // chain); instead each message says what the source's kind means for keyward.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connect { path, source } => {
                let path = path.display();
                match source.kind() {
                    io::ErrorKind::NotFound => {
                        write!(f, "no keywardd socket at {path} (is the daemon running?)")
                    }
                    io::ErrorKind::ConnectionRefused => {
                        write!(f, "nothing is listening on {path} (is the daemon running?)")
                    }
                    io::ErrorKind::PermissionDenied => write!(
                        f,
                        "permission denied connecting to {path} (may this user use keywardd?)"
                    ),
                    _ => write!(
                        f,
                        "cannot connect to keywardd at {path} (is the daemon running?)"
                    ),
                }
            }
            Error::UntrustedServer {
                path,
                server_uid,
                server_user,
                client_uid,
                reason,
            } => {
                let owner = match server_user {
                    Some(name) => format!("uid {server_uid} ({name})"),
                    None => format!("uid {server_uid}"),
                };
                write!(
                    f,
                    "refusing the socket {}: its server runs as {owner}, not as you (uid {client_uid}) or root, and {reason}; nothing was sent. Point --socket or KEYWARD_SOCK at your keywardd's socket (e.g. in $XDG_RUNTIME_DIR)",
                    path.display()
                )
            }
            Error::Io(err) => match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    f.write_str("timed out waiting for keywardd")
                }
                _ => f.write_str("I/O error on the connection to keywardd"),
            },
            Error::Protocol(_) => f.write_str("keywardd sent a malformed response"),
            Error::TooLarge { len, max } => write!(
                f,
                "request of {len} bytes exceeds the daemon's limit of {max} bytes"
            ),
            Error::UnsupportedVersion { daemon } => write!(
                f,
                "keywardd does not speak protocol version {PROTOCOL_VERSION}: {daemon}"
            ),
            Error::Daemon { code, message } => {
                if message.is_empty() {
                    write!(f, "keywardd refused the request: {code}")
                } else {
                    f.write_str(message)
                }
            }
            Error::RateLimited { message, .. } => f.write_str(message),
            Error::UnexpectedResponse { expected } => write!(
                f,
                "keywardd sent an unexpected response (expected {expected})"
            ),
            Error::Disconnected => f.write_str("the connection to keywardd is closed"),
            Error::NoApiKey { key } => write!(
                f,
                "key {key} has no API key id stored; pass one to the helper, or add the key with --api-key"
            ),
            Error::InvalidRequest { reason } => write!(f, "cannot build the request: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Connect { source, .. } => Some(source),
            Error::Io(err) => Some(err),
            Error::Protocol(err) => Some(err),
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn connect_errors_name_the_path_and_keep_the_os_reason_as_source() {
        let err = Error::Connect {
            path: "/run/keyward/keyward.sock".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        let shown = err.to_string();
        assert!(shown.contains("/run/keyward/keyward.sock"), "{shown}");
        assert!(shown.contains("daemon running"), "{shown}");
        assert!(err.source().is_some());
        assert_eq!(err.code(), None);
    }

    /// Each reason a connect fails has its own advice, and the OS error, an I/O error and
    /// a malformed frame stay reachable as the source (cargo mutants found these unchecked).
    #[test]
    fn each_connect_failure_says_what_it_means_and_sources_are_kept() {
        let connect = |kind| {
            Error::Connect {
                path: "/s".into(),
                source: io::Error::from(kind),
            }
            .to_string()
        };
        for (kind, start) in [
            (io::ErrorKind::NotFound, "no keywardd socket at /s"),
            (
                io::ErrorKind::ConnectionRefused,
                "nothing is listening on /s",
            ),
            (
                io::ErrorKind::PermissionDenied,
                "permission denied connecting to /s",
            ),
            (io::ErrorKind::Other, "cannot connect to keywardd at /s"),
        ] {
            let text = connect(kind);
            assert!(text.starts_with(start), "{kind:?}: {text}");
        }

        let io_err = Error::Io(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(io_err.source().is_some());
        let protocol = Error::Protocol(DecodeError::TrailingBytes(1));
        assert_eq!(
            protocol.source().map(ToString::to_string).as_deref(),
            Some("1 unexpected bytes after the message")
        );
    }

    #[test]
    fn daemon_errors_show_the_daemons_message_and_code() {
        let err = Error::Daemon {
            code: ErrorCode::Locked,
            message: "keystore is locked; run `keyward unlock`".into(),
        };
        assert_eq!(err.to_string(), "keystore is locked; run `keyward unlock`");
        assert_eq!(err.code(), Some(ErrorCode::Locked));
        let bare = Error::Daemon {
            code: ErrorCode::Denied,
            message: String::new(),
        };
        assert_eq!(bare.to_string(), "keywardd refused the request: denied");
    }

    #[test]
    fn an_untrusted_server_is_named_by_uid_and_user_with_what_to_do() {
        let err = Error::UntrustedServer {
            path: "/tmp/keyward-1000/keyward.sock".into(),
            server_uid: 1001,
            server_user: Some("mallory".into()),
            client_uid: 1000,
            reason: "its directory is writable by group or others (mode 777)".into(),
        };
        let shown = err.to_string();
        for part in [
            "/tmp/keyward-1000/keyward.sock",
            "uid 1001 (mallory)",
            "uid 1000",
            "mode 777",
            "KEYWARD_SOCK",
        ] {
            assert!(shown.contains(part), "{part:?} missing from {shown}");
        }
        assert_eq!(err.code(), None);
    }

    #[test]
    fn every_message_is_one_line() {
        let errors = [
            Error::Io(io::Error::from(io::ErrorKind::TimedOut)),
            Error::Protocol(DecodeError::TrailingBytes(1)),
            Error::TooLarge {
                len: 70000,
                max: 65536,
            },
            Error::UnsupportedVersion {
                daemon: "it answered with version 2".into(),
            },
            Error::UnexpectedResponse {
                expected: "signature",
            },
            Error::Disconnected,
            Error::UntrustedServer {
                path: "/tmp/keyward-1000/keyward.sock".into(),
                server_uid: 1001,
                server_user: Some("mallory".into()),
                client_uid: 1000,
                reason: "its directory sits in a directory that users other than root can write"
                    .into(),
            },
        ];
        for err in errors {
            let shown = err.to_string();
            assert!(!shown.is_empty() && !shown.contains('\n'), "{shown:?}");
        }
    }
}
