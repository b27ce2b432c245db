//! Strict encoding and decoding of whole frames.

use core::fmt;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::frame::{self, FrameError, HEADER_LEN};
use crate::{Request, Response};

/// Why bytes could not be turned into a message, or a message into a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame header or size is not acceptable.
    Frame(FrameError),
    /// The body is not a valid postcard encoding of the message type (unknown variant,
    /// truncated field, invalid UTF-8, ...).
    Invalid(String),
    /// The message decoded, but bytes were left over after it.
    TrailingBytes(usize),
    /// The message decoded, but not from its one canonical encoding (e.g. a varint padded
    /// with `0x80` continuation bytes). Every message has exactly one valid byte form.
    NonCanonical,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Frame(err) => err.fmt(f),
            DecodeError::Invalid(why) => write!(f, "malformed message: {why}"),
            DecodeError::TrailingBytes(n) => write!(f, "{n} unexpected bytes after the message"),
            DecodeError::NonCanonical => f.write_str("message is not in its canonical encoding"),
        }
    }
}

// No `source()`: the Display text already says everything, the frame error's included, so
// an error chain (`{:#}`, anyhow) printing sources too would say it twice.
impl std::error::Error for DecodeError {}

impl From<FrameError> for DecodeError {
    fn from(err: FrameError) -> Self {
        DecodeError::Frame(err)
    }
}

/// Encodes `message` as a whole frame (header + body) no longer than `max` bytes of body.
///
/// The buffer is sized exactly before anything is written, so it never reallocates and
/// leaves no stray copy of a secret field behind; it is zeroized when dropped.
fn encode<T: Serialize>(message: &T, max: u32) -> Result<Zeroizing<Vec<u8>>, DecodeError> {
    let invalid = |err: postcard::Error| DecodeError::Invalid(err.to_string());
    let body_len = postcard::serialize_with_flavor(message, postcard::ser_flavors::Size::default())
        .map_err(invalid)?;
    let header = frame::header_for(body_len, max)?;
    let mut out = Zeroizing::new(vec![0u8; HEADER_LEN + body_len]);
    let (head, body) = out.split_at_mut(HEADER_LEN);
    head.copy_from_slice(&header);
    postcard::to_slice(message, body).map_err(invalid)?;
    Ok(out)
}

/// Decodes one message from a frame body, refusing trailing bytes and non-canonical forms.
fn decode<'a, T: Deserialize<'a> + Serialize>(body: &'a [u8]) -> Result<T, DecodeError> {
    let (message, rest) =
        postcard::take_from_bytes(body).map_err(|err| DecodeError::Invalid(err.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    // postcard accepts over-long varints; a padded varint re-encodes shorter, so comparing
    // sizes (no allocation) is enough to insist on the one canonical form.
    let canonical_len =
        postcard::serialize_with_flavor(&message, postcard::ser_flavors::Size::default())
            .map_err(|err| DecodeError::Invalid(err.to_string()))?;
    if canonical_len != body.len() {
        return Err(DecodeError::NonCanonical);
    }
    Ok(message)
}

/// Encodes a request as a frame; fails if its body would exceed `max` bytes.
pub fn encode_request(request: &Request, max: u32) -> Result<Zeroizing<Vec<u8>>, DecodeError> {
    encode(request, max)
}

/// Encodes a response as a frame; fails if its body would exceed `max` bytes.
pub fn encode_response(response: &Response, max: u32) -> Result<Zeroizing<Vec<u8>>, DecodeError> {
    encode(response, max)
}

/// Decodes a request from a frame body (the bytes after the 4-byte header).
pub fn decode_request(body: &[u8]) -> Result<Request, DecodeError> {
    decode(body)
}

/// Decodes a response from a frame body (the bytes after the 4-byte header).
pub fn decode_response(body: &[u8]) -> Result<Response, DecodeError> {
    decode(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DEFAULT_MAX_FRAME, ErrorCode, SecretBytes};

    fn body(frame: &[u8]) -> &[u8] {
        frame::split_frame(frame, DEFAULT_MAX_FRAME)
            .unwrap()
            .unwrap()
            .0
    }

    #[test]
    fn a_request_round_trips() {
        let request = Request::Sign {
            key: "binance-main".into(),
            payload: (0..=255).collect(),
        };
        let frame = encode_request(&request, DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(decode_request(body(&frame)).unwrap(), request);
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let frame = encode_request(&Request::List, DEFAULT_MAX_FRAME).unwrap();
        let mut bytes = body(&frame).to_vec();
        bytes.push(0);
        assert_eq!(decode_request(&bytes), Err(DecodeError::TrailingBytes(1)));
    }

    #[test]
    fn unknown_variants_and_truncation_are_refused() {
        assert!(matches!(
            decode_request(&[200]),
            Err(DecodeError::Invalid(_))
        ));
        // Sign with a key name that claims 5 bytes but has 2.
        assert!(matches!(
            decode_request(&[1, 5, b'a', b'b']),
            Err(DecodeError::Invalid(_))
        ));
        assert!(matches!(decode_response(&[]), Err(DecodeError::Invalid(_))));
    }

    #[test]
    fn padded_varints_are_refused() {
        // List (variant 3) with its index written in two bytes.
        assert_eq!(
            decode_request(&[0x83, 0x00]),
            Err(DecodeError::NonCanonical)
        );
        // Hello { version: 1 } with the version padded.
        assert_eq!(
            decode_request(&[0x00, 0x81, 0x80, 0x00]),
            Err(DecodeError::NonCanonical)
        );
        assert_eq!(
            decode_request(&[0x00, 0x01]),
            Ok(Request::Hello { version: 1 })
        );
    }

    #[test]
    fn oversized_messages_are_not_encoded() {
        let request = Request::Sign {
            key: "k".into(),
            payload: vec![0; 100],
        };
        assert!(matches!(
            encode_request(&request, 50),
            Err(DecodeError::Frame(FrameError::TooLarge { .. }))
        ));
    }

    #[test]
    fn error_codes_travel_as_numbers() {
        let response = Response::error(ErrorCode::Locked, "keystore is locked");
        let frame = encode_response(&response, DEFAULT_MAX_FRAME).unwrap();
        // variant 6, code 8, then the message string.
        assert_eq!(&body(&frame)[..2], &[6, 8]);
        assert_eq!(decode_response(body(&frame)).unwrap(), response);
    }

    #[test]
    fn secrets_decode_without_debug_leaks() {
        let request = Request::Unlock {
            passphrase: SecretBytes::new(b"correct horse".to_vec()),
        };
        let frame = encode_request(&request, DEFAULT_MAX_FRAME).unwrap();
        let decoded = decode_request(body(&frame)).unwrap();
        assert_eq!(decoded, request);
        assert!(!format!("{decoded:?}").contains("horse"));
    }

    /// These texts reach people: the CLI and the clients print them as the cause of a
    /// refused frame or message. Each is one line, says what was wrong, and is said once in
    /// an error chain.
    #[test]
    fn error_texts_are_pinned_and_said_once_in_a_chain() {
        use std::error::Error as _;
        let cases: [(DecodeError, &str); 5] = [
            (
                FrameError::TooLarge {
                    len: 70_000,
                    max: 65_536,
                }
                .into(),
                "frame of 70000 bytes exceeds the limit of 65536 bytes",
            ),
            (FrameError::Empty.into(), "empty frame"),
            (
                DecodeError::Invalid("unexpected end of input".into()),
                "malformed message: unexpected end of input",
            ),
            (
                DecodeError::TrailingBytes(3),
                "3 unexpected bytes after the message",
            ),
            (
                DecodeError::NonCanonical,
                "message is not in its canonical encoding",
            ),
        ];
        for (err, text) in cases {
            assert_eq!(err.to_string(), text);
            assert!(
                err.source().is_none(),
                "{text}: would print twice in a chain"
            );
        }
    }
}
