//! What the blocking and the async client share: building requests, framing, and turning
//! responses into results. Only the I/O differs between the two clients.

use std::io;

use keyward_protocol::frame::{self, FrameError, HEADER_LEN};
use keyward_protocol::{
    DecodeError, ErrorCode, KeyInfo, KeyKind, PROTOCOL_VERSION, PayloadFormat, Request, Response,
    Scheme, SecretBytes, Status,
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

pub(crate) fn hello() -> Request {
    Request::Hello {
        version: PROTOCOL_VERSION,
    }
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
        _ => Error::UnexpectedResponse { expected },
    }
}

/// Checks the answer to [`hello`] and returns the daemon's `max_frame`.
pub(crate) fn expect_hello(response: Response) -> Result<u32, Error> {
    match response {
        Response::Hello { version, max_frame } if version == PROTOCOL_VERSION => Ok(max_frame),
        Response::Hello { version, .. } => Err(Error::UnsupportedVersion {
            daemon: format!("it answered with version {version}"),
        }),
        Response::Error {
            code: ErrorCode::UnsupportedVersion,
            message,
        } => Err(Error::UnsupportedVersion { daemon: message }),
        other => Err(unexpected(other, "hello")),
    }
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

pub(crate) fn expect_status(response: Response) -> Result<Status, Error> {
    match response {
        Response::Status(status) => Ok(status),
        other => Err(unexpected(other, "status")),
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
