//! KuCoin REST: the `KC-API-*` headers.
//!
//! KuCoin signs `timestamp + method + endpoint + body` with HMAC-SHA256 and sends the
//! signature base64, the timestamp in milliseconds, the query part of the endpoint for GET
//! and DELETE (KuCoin API, Signing a Message). The daemon's `kucoin` format parses exactly
//! that string.
//!
//! Keys of version 2 and 3 also send `KC-API-PASSPHRASE` as base64 of HMAC-SHA256 of the
//! passphrase under the API secret. keyward holds that passphrase as key metadata, sealed in
//! the key file (`keyward import --passphrase-file`, `keyward passphrase`), and signs it on
//! request ([`Client::sign_passphrase`]) without payload rules, since the bytes are the
//! admin's, not the bot's; so the bot's config carries neither the passphrase nor its
//! signature. [`Passphrase::Stored`] (also `None`) asks the daemon for it; a `&str` is a value
//! the bot computed itself, sent as it is (the way before keyward stored passphrases).

use super::{Headers, HttpRequest, Options, prefixed};
use crate::{Client, Error};

/// Where `KC-API-PASSPHRASE` comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Passphrase<'a> {
    /// The daemon's signature of the passphrase stored with the key, base64: one more round
    /// trip per call (protocol version 3; a key without one fails with
    /// [`ErrorCode::NoPassphrase`](crate::ErrorCode::NoPassphrase)).
    Stored,
    /// This header value, sent as it is: the already signed passphrase of a version 2 or 3
    /// key, or the plain passphrase of a version 1 key.
    Value(&'a str),
}

impl core::fmt::Debug for Passphrase<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // A version 1 key's value is the passphrase itself: never shown.
        match self {
            Passphrase::Stored => f.write_str("Stored"),
            Passphrase::Value(_) => f.write_str("Value([REDACTED])"),
        }
    }
}

impl<'a> From<&'a str> for Passphrase<'a> {
    fn from(value: &'a str) -> Self {
        Passphrase::Value(value)
    }
}

impl<'a> From<Option<&'a str>> for Passphrase<'a> {
    /// `None` is [`Passphrase::Stored`].
    fn from(value: Option<&'a str>) -> Self {
        value.map_or(Passphrase::Stored, Passphrase::Value)
    }
}

/// The `KC-API-PASSPHRASE` value of the passphrase stored with `key`: base64 of the daemon's
/// HMAC-SHA256 of it under the key's secret.
pub fn signed_passphrase(client: &mut Client, key: &str) -> Result<String, Error> {
    Ok(client.sign_passphrase(key)?.to_base64())
}

/// The string KuCoin signs for `request` at `timestamp_ms`.
pub fn signing_string(timestamp_ms: u64, request: &HttpRequest<'_>) -> Result<String, Error> {
    prefixed::signing_string(&timestamp_ms.to_string(), request)
}

/// Signs `request` with the key named `key` and returns the headers KuCoin expects:
/// `KC-API-KEY`, `KC-API-SIGN`, `KC-API-TIMESTAMP`, `KC-API-PASSPHRASE` and
/// `KC-API-KEY-VERSION` (`key_version`, 2 or 3 for current keys).
///
/// `passphrase`: [`Passphrase::Stored`] or `None` signs the passphrase stored with the key
/// (the default to use); a `&str` is sent as it is.
pub fn headers<'p>(
    client: &mut Client,
    key: &str,
    request: &HttpRequest<'_>,
    passphrase: impl Into<Passphrase<'p>>,
    key_version: u8,
    options: &Options<'_>,
) -> Result<Headers, Error> {
    let timestamp = options.timestamp().to_string();
    let payload = prefixed::signing_string(&timestamp, request)?;
    let api_key = options.api_key_for(client, key)?;
    // First: a key without a stored passphrase fails before a signature is spent.
    let passphrase = match passphrase.into() {
        Passphrase::Stored => signed_passphrase(client, key)?,
        Passphrase::Value(value) => value.to_owned(),
    };
    let signature = client.sign(key, payload.as_bytes())?;
    Ok(vec![
        ("KC-API-KEY", api_key),
        ("KC-API-SIGN", signature.to_base64()),
        ("KC-API-TIMESTAMP", timestamp),
        ("KC-API-PASSPHRASE", passphrase),
        ("KC-API-KEY-VERSION", key_version.to_string()),
    ])
}
