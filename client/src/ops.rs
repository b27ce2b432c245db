//! What the blocking and the async client share: building requests, framing, and turning
//! responses into results. Only the I/O differs between the two clients.

use std::io;
use std::time::Duration;

use keyward_protocol::frame::{self, FrameError, HEADER_LEN};
use keyward_protocol::{
    DecodeError, ErrorCode, KeyInfo, KeyKind, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
    PayloadFormat, Request, Response, Scheme, SecretBytes, Stats, Status, StatusReport, Welcome,
};
use serde_bytes::ByteBuf;
use zeroize::Zeroizing;

use crate::{Error, MAX_RESPONSE_FRAME, Signature};

// ---- framing ----

/// Encodes a request as a whole frame, refusing it before any byte is sent if its body
/// exceeds the daemon's `max_frame`. The frame is zeroized when dropped: it may carry a
/// passphrase or key material.
pub(crate) fn encode(request: &Request, max_frame: u32) -> Result<Zeroizing<Vec<u8>>, Error> {
    keyward_protocol::encode_request(request, max_frame).map_err(|err| match err {
        DecodeError::Frame(FrameError::TooLarge { len, max }) => Error::TooLarge { len, max },
        other => Error::Protocol(other),
    })
}

/// The body length announced by a response header, checked against [`MAX_RESPONSE_FRAME`].
pub(crate) fn body_len(header: [u8; HEADER_LEN]) -> Result<usize, Error> {
    frame::body_len(header, MAX_RESPONSE_FRAME).map_err(|err| Error::Protocol(err.into()))
}

/// Decodes a response body.
pub(crate) fn decode(body: &[u8]) -> Result<Response, Error> {
    keyward_protocol::decode_response(body).map_err(Error::Protocol)
}

/// Maps an error from reading a response: the peer going away is [`Error::Disconnected`].
pub(crate) fn read_error(err: io::Error) -> Error {
    match err.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => Error::Disconnected,
        _ => Error::Io(err),
    }
}

/// True when a write failed because the daemon closed its end, in which case it may have
/// answered with an error first (e.g. "too large") and that answer is worth reading.
pub(crate) fn peer_closed(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}

/// The outcome of a call whose request could not be written in full because the daemon
/// closed the connection: the daemon's error if it sent one before closing, else the failure.
pub(crate) fn after_failed_write(
    write_err: io::Error,
    read: Result<Response, Error>,
) -> Result<Response, Error> {
    match read {
        Ok(response @ Response::Error { .. }) => Ok(response),
        Err(Error::Disconnected) => Err(Error::Disconnected),
        // Any other answer cannot be to a request the daemon did not receive whole.
        Ok(_) | Err(_) => Err(Error::Io(write_err)),
    }
}

// ---- requests ----

pub(crate) fn hello(version: u32) -> Request {
    Request::Hello { version }
}

pub(crate) fn sign(key: &str, payload: &[u8]) -> Request {
    Request::Sign {
        key: key.to_owned(),
        payload: payload.to_vec(),
    }
}

pub(crate) fn sign_batch(key: &str, payloads: &[&[u8]]) -> Request {
    Request::SignBatch {
        key: key.to_owned(),
        payloads: payloads
            .iter()
            .map(|payload| ByteBuf::from(payload.to_vec()))
            .collect(),
    }
}

pub(crate) fn public_key(name: &str) -> Request {
    Request::PublicKey {
        key: name.to_owned(),
    }
}

pub(crate) fn import(
    name: &str,
    scheme: Option<Scheme>,
    material: SecretBytes,
    pem_passphrase: Option<SecretBytes>,
    api_key: Option<String>,
    format: Option<PayloadFormat>,
) -> Request {
    Request::Import {
        name: name.to_owned(),
        scheme,
        material,
        pem_passphrase,
        api_key,
        format,
    }
}

pub(crate) fn generate(
    name: &str,
    kind: KeyKind,
    api_key: Option<String>,
    format: Option<PayloadFormat>,
) -> Request {
    Request::Generate {
        name: name.to_owned(),
        kind,
        api_key,
        format,
    }
}

pub(crate) fn remove(name: &str) -> Request {
    Request::Remove {
        name: name.to_owned(),
    }
}

// ---- responses ----

/// The error for a response that is not the one expected: the daemon's own error if it sent
/// one, else [`Error::UnexpectedResponse`]. Never formats the response or the request.
fn unexpected(response: Response, expected: &'static str) -> Error {
    match response {
        Response::Error { code, message } => Error::Daemon { code, message },
        Response::RateLimited {
            retry_after_ms,
            message,
        } => Error::RateLimited {
            retry_after: Duration::from_millis(retry_after_ms),
            message,
        },
        _ => Error::UnexpectedResponse { expected },
    }
}

/// What a handshake agreed.
#[derive(Debug, Clone)]
pub(crate) struct Handshake {
    /// The protocol version spoken on the connection.
    pub(crate) version: u32,
    /// The daemon's request size limit.
    pub(crate) max_frame: u32,
    /// The daemon's answer to a version 3 Hello; `None` from a version 2 daemon.
    pub(crate) welcome: Option<Welcome>,
}

/// The answer to [`hello`] with `asked`: the handshake, or `Ok(None)` when the daemon does
/// not speak `asked` but may speak the older version, which the caller then tries
/// (docs/PROTOCOL.md section 3: a version 3 client can use a version 2 daemon).
pub(crate) fn expect_hello(response: Response, asked: u32) -> Result<Option<Handshake>, Error> {
    match response {
        Response::Welcome(welcome) if welcome.version == asked => Ok(Some(Handshake {
            version: asked,
            max_frame: welcome.max_frame,
            welcome: Some(welcome),
        })),
        Response::Hello { version, max_frame } if version == asked && asked < 3 => {
            Ok(Some(Handshake {
                version,
                max_frame,
                welcome: None,
            }))
        }
        Response::Hello { version, .. } => Err(Error::UnsupportedVersion {
            daemon: format!("it answered with version {version}"),
        }),
        Response::Welcome(welcome) => Err(Error::UnsupportedVersion {
            daemon: format!("it answered with version {}", welcome.version),
        }),
        Response::Error {
            code: ErrorCode::UnsupportedVersion,
            ..
        } if asked > MIN_PROTOCOL_VERSION => Ok(None),
        Response::Error {
            code: ErrorCode::UnsupportedVersion,
            message,
        } => Err(Error::UnsupportedVersion { daemon: message }),
        other => Err(unexpected(other, "hello")),
    }
}

/// The versions a client offers, newest first.
pub(crate) fn versions() -> impl Iterator<Item = u32> {
    (MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).rev()
}

/// Refuses locally a request the connection's version does not have: a version 2 daemon
/// would answer it `BadRequest`, and this says why.
pub(crate) fn check_version(request: &Request, version: u32) -> Result<(), Error> {
    if request.since_version() > version {
        return Err(Error::UnsupportedVersion {
            daemon: format!(
                "it speaks version {version}, which has no {} request (upgrade keywardd)",
                request.kind()
            ),
        });
    }
    Ok(())
}

pub(crate) fn expect_signature(response: Response) -> Result<Signature, Error> {
    match response {
        Response::Signature { scheme, signature } => Ok(Signature::new(scheme, signature)),
        other => Err(unexpected(other, "signature")),
    }
}

/// Checks the answer to [`sign_batch`]: exactly one signature per payload, or the daemon
/// broke the protocol and no signature can be matched to its payload safely.
pub(crate) fn expect_signatures(
    response: Response,
    payloads: usize,
) -> Result<Vec<Signature>, Error> {
    match response {
        Response::Signatures { scheme, signatures } if signatures.len() == payloads => {
            Ok(signatures
                .into_iter()
                .map(|signature| Signature::new(scheme, signature.into_vec()))
                .collect())
        }
        Response::Signatures { .. } => Err(Error::UnexpectedResponse {
            expected: "one signature per payload",
        }),
        other => Err(unexpected(other, "signatures")),
    }
}

pub(crate) fn expect_keys(response: Response) -> Result<Vec<KeyInfo>, Error> {
    match response {
        Response::Keys { keys } => Ok(keys),
        other => Err(unexpected(other, "key list")),
    }
}

pub(crate) fn expect_key(response: Response) -> Result<KeyInfo, Error> {
    match response {
        Response::Key { key } => Ok(key),
        other => Err(unexpected(other, "key")),
    }
}

/// The answer to `Status` in either version: a version 2 daemon's `Status` has no order
/// rules.
pub(crate) fn expect_status_report(response: Response) -> Result<StatusReport, Error> {
    match response {
        Response::StatusReport(report) => Ok(report),
        Response::Status(status) => Ok(StatusReport {
            status,
            order_rules: None,
        }),
        other => Err(unexpected(other, "status")),
    }
}

pub(crate) fn expect_status(response: Response) -> Result<Status, Error> {
    expect_status_report(response).map(|report| report.status)
}

pub(crate) fn expect_stats(response: Response) -> Result<Stats, Error> {
    match response {
        Response::Stats(stats) => Ok(stats),
        other => Err(unexpected(other, "stats")),
    }
}

pub(crate) fn expect_reloaded(response: Response) -> Result<bool, Error> {
    match response {
        Response::Reloaded {
            daemon_section_changed,
        } => Ok(daemon_section_changed),
        other => Err(unexpected(other, "reloaded")),
    }
}

pub(crate) fn expect_ok(response: Response) -> Result<(), Error> {
    match response {
        Response::Ok => Ok(()),
        other => Err(unexpected(other, "ok")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_request_over_the_limit_is_refused_with_its_size() {
        let err = encode(&sign("k", &[0; 100]), 64).unwrap_err();
        match err {
            Error::TooLarge { len, max } => {
                assert!(len > 100, "{len}");
                assert_eq!(max, 64);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn responses_above_the_response_limit_are_refused_before_the_body() {
        assert!(matches!(
            body_len((MAX_RESPONSE_FRAME + 1).to_be_bytes()),
            Err(Error::Protocol(DecodeError::Frame(
                FrameError::TooLarge { .. }
            )))
        ));
        assert_eq!(
            body_len(MAX_RESPONSE_FRAME.to_be_bytes()).unwrap(),
            MAX_RESPONSE_FRAME as usize
        );
    }

    #[test]
    fn an_error_answer_becomes_a_daemon_error_and_anything_else_unexpected() {
        let err = expect_ok(Response::error(ErrorCode::Denied, "not yours")).unwrap_err();
        assert!(matches!(
            err,
            Error::Daemon { code: ErrorCode::Denied, ref message } if message == "not yours"
        ));
        let err = expect_signature(Response::Ok).unwrap_err();
        assert!(matches!(
            err,
            Error::UnexpectedResponse {
                expected: "signature"
            }
        ));
    }

    #[test]
    fn a_rate_limit_becomes_an_error_with_its_wait() {
        let err = expect_signature(Response::RateLimited {
            retry_after_ms: 1500,
            message: "retry in 1500 ms".into(),
        })
        .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::RateLimited));
        assert_eq!(err.retry_after(), Some(Duration::from_millis(1500)));
        assert_eq!(err.to_string(), "retry in 1500 ms");
        // From a version 2 daemon the wait is only in the message.
        let v2 = expect_signature(Response::error(
            ErrorCode::RateLimited,
            "rate limit of key \"k\" reached (1/s); retry in 250 ms",
        ))
        .unwrap_err();
        assert_eq!(v2.retry_after(), Some(Duration::from_millis(250)));
        let burst = Error::Daemon {
            code: ErrorCode::BatchExceedsBurst,
            message: "a batch of 3 exceeds key \"k\"'s burst of 2; split it".into(),
        };
        assert_eq!(burst.retry_after(), None);
    }

    #[test]
    fn the_handshake_falls_back_to_version_2_only_on_unsupported_version() {
        let unsupported = || Response::error(ErrorCode::UnsupportedVersion, "speaks version 2");
        assert!(expect_hello(unsupported(), 3).unwrap().is_none());
        assert!(matches!(
            expect_hello(unsupported(), 2),
            Err(Error::UnsupportedVersion { .. })
        ));
        let v2 = expect_hello(
            Response::Hello {
                version: 2,
                max_frame: 1024,
            },
            2,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (v2.version, v2.max_frame, v2.welcome.is_none()),
            (2, 1024, true)
        );
        // A version 3 Hello must be answered with Welcome.
        assert!(
            expect_hello(
                Response::Hello {
                    version: 3,
                    max_frame: 1024
                },
                3
            )
            .is_err()
        );
        assert!(check_version(&Request::Stats, 2).is_err());
        assert!(check_version(&Request::Stats, 3).is_ok());
        // The stored passphrase's requests are version 3 too: a version 2 connection never
        // sends them.
        let sign = Request::SignPassphrase { key: "k".into() };
        let set = Request::SetPassphrase {
            key: "k".into(),
            passphrase: None,
        };
        for request in [&sign, &set] {
            assert!(check_version(request, 2).is_err(), "{request:?}");
            assert!(check_version(request, 3).is_ok(), "{request:?}");
        }
        assert!(check_version(&Request::List, 2).is_ok());
    }

    #[test]
    fn a_daemon_error_sent_before_closing_survives_a_failed_write() {
        let broken = || io::Error::from(io::ErrorKind::BrokenPipe);
        let answer = Response::error(ErrorCode::TooLarge, "frame too large");
        assert_eq!(
            after_failed_write(broken(), Ok(answer.clone())).unwrap(),
            answer
        );
        assert!(matches!(
            after_failed_write(broken(), Err(Error::Disconnected)),
            Err(Error::Disconnected)
        ));
        assert!(matches!(
            after_failed_write(broken(), Ok(Response::Ok)),
            Err(Error::Io(_))
        ));
    }
}
