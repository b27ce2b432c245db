//! KuCoin REST: the `KC-API-*` headers.
//!
//! KuCoin signs `timestamp + method + endpoint + body` with HMAC-SHA256 and sends the
//! signature base64, the timestamp in milliseconds, the query part of the endpoint for GET
//! and DELETE (KuCoin API, Signing a Message). The daemon's `kucoin` format parses exactly
//! that string.
//!
//! Keys of version 2 and 3 also send `KC-API-PASSPHRASE` as base64 of HMAC-SHA256 of the
//! passphrase under the API secret: a constant, computed once when the key is set up (see
//! docs/EXCHANGES.md), that signs nothing by itself. The bot passes that value in; keyward
//! does not sign the passphrase per request, because a key with payload rules would (rightly)
//! refuse a payload that is not a request.

use super::{Headers, HttpRequest, Options, prefixed};
use crate::{Client, Error};

/// The string KuCoin signs for `request` at `timestamp_ms`.
pub fn signing_string(timestamp_ms: u64, request: &HttpRequest<'_>) -> Result<String, Error> {
    prefixed::signing_string(&timestamp_ms.to_string(), request)
}

/// Signs `request` with the key named `key` and returns the headers KuCoin expects:
/// `KC-API-KEY`, `KC-API-SIGN`, `KC-API-TIMESTAMP`, `KC-API-PASSPHRASE` (the value given,
/// for version 2 and 3 keys the signed passphrase) and `KC-API-KEY-VERSION`
/// (`key_version`, 2 or 3 for current keys).
pub fn headers(
    client: &mut Client,
    key: &str,
    request: &HttpRequest<'_>,
    passphrase: &str,
    key_version: u8,
    options: &Options<'_>,
) -> Result<Headers, Error> {
    let timestamp = options.timestamp().to_string();
    let payload = prefixed::signing_string(&timestamp, request)?;
    let api_key = options.api_key_for(client, key)?;
    let signature = client.sign(key, payload.as_bytes())?;
    Ok(vec![
        ("KC-API-KEY", api_key),
        ("KC-API-SIGN", signature.to_base64()),
        ("KC-API-TIMESTAMP", timestamp),
        ("KC-API-PASSPHRASE", passphrase.to_owned()),
        ("KC-API-KEY-VERSION", key_version.to_string()),
    ])
}
