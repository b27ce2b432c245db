//! Binance: signed query strings.
//!
//! Binance's SIGNED endpoints take the request's parameters plus a `signature` parameter
//! computed over them. For an HMAC secret key the signature is lowercase hex; for an RSA or
//! Ed25519 key it is base64, which must be percent-encoded in a query string because
//! base64 uses `+`, `/` and `=`.
//!
//! Sign exactly the bytes Binance will see: when parameters travel in both the query string
//! and the body, Binance signs the query string followed directly by the body; sign that
//! with [`Client::sign`] and add the result with [`append_signature`].

use crate::{Client, Error, Signature};

/// Signs `query` (e.g. `symbol=BTCUSDT&timestamp=1700000000000`) with the key named `key`
/// and returns it with `&signature=...` appended, ready to send.
///
/// The signature is lowercase hex for HMAC keys and percent-encoded base64 for RSA and
/// Ed25519 keys, as Binance's docs ask. An empty query yields `signature=...` alone.
pub fn signed_query(client: &mut Client, key: &str, query: &str) -> Result<String, Error> {
    let signature = client.sign(key, query.as_bytes())?;
    Ok(append_signature(query, &signature))
}

/// [`signed_query`] for the [`AsyncClient`](crate::AsyncClient).
#[cfg(feature = "tokio")]
pub async fn signed_query_async(
    client: &mut crate::AsyncClient,
    key: &str,
    query: &str,
) -> Result<String, Error> {
    let signature = client.sign(key, query.as_bytes()).await?;
    Ok(append_signature(query, &signature))
}

/// Appends `signature=...` for `signature` to `query`, encoded as [`signed_query`] does.
pub fn append_signature(query: &str, signature: &Signature) -> String {
    let value = if signature.scheme().is_hmac() {
        signature.to_hex()
    } else {
        percent_encode_base64(&signature.to_base64())
    };
    if query.is_empty() {
        format!("signature={value}")
    } else {
        format!("{query}&signature={value}")
    }
}

/// Percent-encodes standard base64 for a query string.
///
/// A general URL encoder would be a dependency for three characters: the base64 alphabet is
/// `A-Z a-z 0-9 + /` plus `=` padding, and of these only `+` (which a query decodes as a
/// space), `/` and `=` are not safe as they are in a query parameter value.
fn percent_encode_base64(base64: &str) -> String {
    let mut out = String::with_capacity(base64.len() + base64.len() / 2);
    for c in base64.chars() {
        match c {
            '+' => out.push_str("%2B"),
            '/' => out.push_str("%2F"),
            '=' => out.push_str("%3D"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_protocol::Scheme;

    #[test]
    fn hmac_signatures_are_lowercase_hex() {
        let sig = Signature::new(Scheme::HmacSha256, vec![0xDE, 0xAD, 0xBE, 0xEF]);
        assert_eq!(
            append_signature("symbol=BTCUSDT&timestamp=1", &sig),
            "symbol=BTCUSDT&timestamp=1&signature=deadbeef"
        );
        assert_eq!(append_signature("", &sig), "signature=deadbeef");
    }

    #[test]
    fn asymmetric_signatures_are_percent_encoded_base64() {
        // base64 "+/8=" has every character that needs escaping.
        let sig = Signature::new(Scheme::Ed25519, vec![0xfb, 0xff]);
        assert_eq!(append_signature("a=1", &sig), "a=1&signature=%2B%2F8%3D");
        let sig = Signature::new(Scheme::RsaPkcs1v15Sha256, b"foobar".to_vec());
        assert_eq!(append_signature("a=1", &sig), "a=1&signature=Zm9vYmFy");
    }

    #[test]
    fn the_percent_encoder_touches_only_the_three_unsafe_characters() {
        assert_eq!(percent_encode_base64("AZaz09+/=="), "AZaz09%2B%2F%3D%3D");
    }
}
