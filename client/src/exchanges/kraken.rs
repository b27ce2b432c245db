//! Kraken spot REST: the `API-Sign` header.
//!
//! Kraken's API-Sign is "HMAC-SHA512 of (URI path + SHA256(nonce + POST data)) and base64
//! decoded secret API key", sent base64 (Kraken REST API, Authentication). The daemon holds
//! the decoded secret as an `hmac-sha512` key (`keyward import --secret-format base64`) and
//! signs the inner message: the path followed by the 32 raw bytes of the SHA-256, which is
//! what its `kraken` format parses.

use sha2::{Digest as _, Sha256};

use super::check_path;
use crate::{Client, Error};

/// The message the key signs: `path` followed by SHA-256(`nonce` + `post_data`).
pub fn signing_input(path: &str, nonce: u64, post_data: &str) -> Result<Vec<u8>, Error> {
    check_path(path)?;
    let mut digest = Sha256::new();
    digest.update(nonce.to_string().as_bytes());
    digest.update(post_data.as_bytes());
    let mut message = Vec::with_capacity(path.len() + 32);
    message.extend_from_slice(path.as_bytes());
    message.extend_from_slice(&digest.finalize());
    Ok(message)
}

/// The `API-Sign` value for a POST to `path` (e.g. `/0/private/AddOrder`) whose form-encoded
/// body `post_data` carries `nonce=<nonce>`: base64 HMAC-SHA512 by the key named `key`.
pub fn api_sign(
    client: &mut Client,
    key: &str,
    path: &str,
    nonce: u64,
    post_data: &str,
) -> Result<String, Error> {
    let message = signing_input(path, nonce, post_data)?;
    Ok(client.sign(key, &message)?.to_base64())
}
