//! Bitget REST: the `ACCESS-*` headers.
//!
//! Bitget signs `timestamp + method.toUpperCase() + requestPath + "?" + queryString + body`
//! (the `?` only with a query), the timestamp in milliseconds, and sends the signature
//! base64: HMAC-SHA256 for secret keys, RSA (SHA-256) for RSA keys (Bitget API, Quick Start,
//! Signature). The daemon's `bitget` format parses exactly that string.
//!
//! `ACCESS-PASSPHRASE` is the passphrase chosen when the API key was created, sent as is.

use super::{Headers, HttpRequest, Options, prefixed};
use crate::{Client, Error};

/// The string Bitget signs for `request` at `timestamp_ms`.
pub fn signing_string(timestamp_ms: u64, request: &HttpRequest<'_>) -> Result<String, Error> {
    prefixed::signing_string(&timestamp_ms.to_string(), request)
}

/// Signs `request` with the key named `key` and returns the headers Bitget expects:
/// `ACCESS-KEY`, `ACCESS-SIGN`, `ACCESS-TIMESTAMP`, `ACCESS-PASSPHRASE`.
pub fn headers(
    client: &mut Client,
    key: &str,
    request: &HttpRequest<'_>,
    passphrase: &str,
    options: &Options<'_>,
) -> Result<Headers, Error> {
    let timestamp = options.timestamp().to_string();
    let payload = prefixed::signing_string(&timestamp, request)?;
    let api_key = options.api_key_for(client, key)?;
    let signature = client.sign(key, payload.as_bytes())?;
    Ok(vec![
        ("ACCESS-KEY", api_key),
        ("ACCESS-SIGN", signature.to_base64()),
        ("ACCESS-TIMESTAMP", timestamp),
        ("ACCESS-PASSPHRASE", passphrase.to_owned()),
    ])
}
