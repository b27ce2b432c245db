//! Wire protocol of keyward, the signing agent for exchange API keys.
//!
//! This crate does no I/O. It defines the two message enums ([`Request`], [`Response`]),
//! the stable [`ErrorCode`] a daemon answers failures with, and the framing: a 4-byte
//! big-endian length followed by that many bytes of postcard-encoded message
//! ([`frame`]). docs/PROTOCOL.md in the repository specifies the bytes for other languages.
//!
//! Decoding is strict: an unknown variant, trailing bytes after a message, or a length above
//! the frame limit is an error, never a panic and never a guess.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod codec;
mod error_code;
pub mod frame;
mod message;
mod name;
mod payload_format;
mod scheme;
mod secret;
mod socket_path;

pub use codec::{DecodeError, decode_request, decode_response, encode_request, encode_response};
pub use error_code::ErrorCode;
pub use message::{
    KeyInfo, KeyOrderRules, KeystoreState, NamedCount, Request, Response, SignatureCount, Stats,
    Status, StatusReport, UnreadableKey, Welcome,
};
pub use name::{InvalidKeyName, MAX_KEY_NAME_LEN, validate_key_name};
pub use payload_format::{PayloadFormat, UnknownPayloadFormat};
pub use scheme::{KeyKind, Scheme, UnknownScheme};
pub use secret::SecretBytes;
pub use socket_path::{default_socket_path, run_user_dir};

/// The protocol version this crate speaks; sent in [`Request::Hello`] and echoed back.
///
/// Version 2 added the payload format: a last field `format: Option<PayloadFormat>` in
/// [`Request::Import`], [`Request::Generate`] and [`KeyInfo`]. Postcard has no field names,
/// so version 1 and version 2 peers cannot read each other's messages.
///
/// Version 3 only appended: requests `Stats` and `Reload`, responses `Welcome` (the Hello
/// answer, with the daemon's version), `RateLimited` (with `retry_after_ms`),
/// `StatusReport`, `Stats` and `Reloaded`, and error codes 16 and 17. A version 3 daemon
/// still speaks version 2 to a peer whose Hello says 2 ([`MIN_PROTOCOL_VERSION`]), sending
/// it only messages version 2 has.
pub const PROTOCOL_VERSION: u32 = 3;

/// The oldest protocol version a daemon of this crate speaks; a Hello below it, or above
/// [`PROTOCOL_VERSION`], is answered `UnsupportedVersion`.
pub const MIN_PROTOCOL_VERSION: u32 = 2;

/// Default largest request frame body, in bytes (64 KiB). A daemon may be configured with
/// another and announces it in [`Response::Hello`].
pub const DEFAULT_MAX_FRAME: u32 = 64 * 1024;

/// Largest response frame body a daemon sends and a client accepts (16 MiB). Responses may
/// be larger than requests: a batch of 4096-bit RSA signatures is 512 bytes per payload.
pub const MAX_RESPONSE_FRAME: u32 = 16 * 1024 * 1024;

/// Most payloads one [`Request::SignBatch`] may carry; a larger batch is refused with
/// [`ErrorCode::TooLarge`]. Bounds the response and the time one request holds a signer.
pub const MAX_BATCH: usize = 1024;
