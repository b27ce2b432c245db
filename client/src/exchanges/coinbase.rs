//! Coinbase Advanced Trade with CDP API keys: a JWT for one request.
//!
//! Coinbase's "API key authentication" builds a JWT signed ES256 (ECDSA P-256) or EdDSA
//! (Ed25519) by the API key: header `alg`, `kid` (the API key name,
//! `organizations/{org}/apiKeys/{id}`), `nonce` and `typ: JWT`; claims `sub` (the key name),
//! `iss: "cdp"`, `nbf` (now, in seconds), `exp` (`nbf` + 120) and `uri`, `"METHOD
//! host/path"` without the query. The request is sent with `Authorization: Bearer <jwt>`.
//! The daemon signs the JWS signing input `base64url(header).base64url(claims)` (RFC 7515
//! §5.1), which its `coinbase-jwt` format parses; the signature comes back raw (r‖s for
//! ECDSA) and is appended base64url.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyward_protocol::Scheme;

use super::{Method, Options, check_path, invalid};
use crate::{Client, Error};

/// How long a token is valid, in seconds: Coinbase's own tools use 120.
pub const LIFETIME_SECS: u64 = 120;

/// What a token says, before it is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims<'a> {
    /// `ES256` for an `ecdsa-p256-sha256` key, `EdDSA` for an `ed25519` key.
    pub alg: &'a str,
    /// The API key name: the header's `kid` and the claims' `sub`.
    pub key_name: &'a str,
    /// A random value, fresh for every token (hex).
    pub nonce: &'a str,
    /// Not before, in seconds since the epoch; `exp` is `nbf + LIFETIME_SECS`.
    pub nbf: u64,
    /// `"METHOD host/path"`, or `None` for a websocket token.
    pub uri: Option<String>,
}

/// The JWS signing input of `claims`: `base64url(header) "." base64url(claims)`, members in
/// the order Coinbase's examples write them.
pub fn signing_input(claims: &Claims<'_>) -> String {
    // Written out rather than through a map: serde_json's map sorts its keys, and the order
    // is kept as Coinbase writes it so that tokens compare equal to its examples.
    let header = format!(
        r#"{{"alg":{},"kid":{},"nonce":{},"typ":"JWT"}}"#,
        json_string(claims.alg),
        json_string(claims.key_name),
        json_string(claims.nonce)
    );
    let uri = match &claims.uri {
        Some(uri) => format!(r#","uri":{}"#, json_string(uri)),
        None => String::new(),
    };
    let body = format!(
        r#"{{"sub":{},"iss":"cdp","nbf":{},"exp":{}{uri}}}"#,
        json_string(claims.key_name),
        claims.nbf,
        claims.nbf + LIFETIME_SECS
    );
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(body)
    )
}

/// `text` as a JSON string literal, escaped.
fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// `"METHOD host/path"` for a request, after checking the host and the path as the daemon
/// will (a lower-case host, a strict path, no query).
pub fn uri(method: Method, host: &str, path: &str) -> Result<String, Error> {
    let host_ok = !host.is_empty()
        && host.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b':')
        });
    if !host_ok {
        return Err(invalid(format!(
            "the host {host:?} must be a lower-case host name, e.g. api.coinbase.com"
        )));
    }
    check_path(path)?;
    Ok(format!("{method} {host}{path}"))
}

/// A JWT for one REST request (`Authorization: Bearer <jwt>`), e.g.
/// `jwt(client, "coinbase-main", Method::Get, "api.coinbase.com", "/api/v3/brokerage/accounts", &Options::default())`.
/// The path carries no query: Coinbase does not sign it.
pub fn jwt(
    client: &mut Client,
    key: &str,
    method: Method,
    host: &str,
    path: &str,
    options: &Options<'_>,
) -> Result<String, Error> {
    let uri = uri(method, host, path)?;
    sign(client, key, Some(uri), options)
}

/// A JWT without a `uri` claim, for Coinbase's websocket feeds.
pub fn ws_jwt(client: &mut Client, key: &str, options: &Options<'_>) -> Result<String, Error> {
    sign(client, key, None, options)
}

fn sign(
    client: &mut Client,
    key: &str,
    uri: Option<String>,
    options: &Options<'_>,
) -> Result<String, Error> {
    let info = client.public_key(key)?;
    let alg = match info.scheme {
        Scheme::EcdsaP256Sha256 => "ES256",
        Scheme::Ed25519 => "EdDSA",
        other => {
            return Err(invalid(format!(
                "key {key} is {other}; a Coinbase JWT needs an ecdsa-p256-sha256 or ed25519 key"
            )));
        }
    };
    let key_name = match options.api_key {
        Some(name) => name.to_owned(),
        None => info
            .api_key
            .filter(|name| !name.is_empty())
            .ok_or_else(|| Error::NoApiKey {
                key: key.to_owned(),
            })?,
    };
    let nonce = random_nonce()?;
    let claims = Claims {
        alg,
        key_name: &key_name,
        nonce: &nonce,
        nbf: options.timestamp() / 1000,
        uri,
    };
    let input = signing_input(&claims);
    let signature = client.sign(key, input.as_bytes())?;
    Ok(format!("{input}.{}", signature.to_base64url()))
}

/// 16 random bytes as hex, as Coinbase's examples make the nonce.
fn random_nonce() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes)
        .map_err(|err| invalid(format!("no randomness for the JWT nonce: {err}")))?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const KEY_NAME: &str = "organizations/11111111-2222-3333-4444-555555555555/apiKeys/66666666-7777-8888-9999-000000000000";

    #[test]
    fn the_signing_input_matches_the_daemons_accepted_corpus_token() {
        // daemon/testdata/payload/coinbase-jwt/accept-advanced-trade-list-accounts (issue 12).
        let claims = Claims {
            alg: "ES256",
            key_name: KEY_NAME,
            nonce: "3d8a9c1f0b5e4a7d",
            nbf: 1_700_000_000,
            uri: Some(
                uri(
                    Method::Get,
                    "api.coinbase.com",
                    "/api/v3/brokerage/accounts",
                )
                .unwrap(),
            ),
        };
        assert_eq!(
            signing_input(&claims),
            "eyJhbGciOiJFUzI1NiIsImtpZCI6Im9yZ2FuaXphdGlvbnMvMTExMTExMTEtMjIyMi0zMzMzLTQ0NDQtNTU1NTU1NTU1NTU1L2FwaUtleXMvNjY2NjY2NjYtNzc3Ny04ODg4LTk5OTktMDAwMDAwMDAwMDAwIiwibm9uY2UiOiIzZDhhOWMxZjBiNWU0YTdkIiwidHlwIjoiSldUIn0.eyJzdWIiOiJvcmdhbml6YXRpb25zLzExMTExMTExLTIyMjItMzMzMy00NDQ0LTU1NTU1NTU1NTU1NS9hcGlLZXlzLzY2NjY2NjY2LTc3NzctODg4OC05OTk5LTAwMDAwMDAwMDAwMCIsImlzcyI6ImNkcCIsIm5iZiI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAwMTIwLCJ1cmkiOiJHRVQgYXBpLmNvaW5iYXNlLmNvbS9hcGkvdjMvYnJva2VyYWdlL2FjY291bnRzIn0"
        );
    }

    #[test]
    fn hosts_and_paths_the_daemon_would_refuse_are_refused_here() {
        assert!(uri(Method::Get, "API.coinbase.com", "/a").is_err());
        assert!(uri(Method::Get, "api.coinbase.com", "/a?b=1").is_err());
        assert!(uri(Method::Get, "", "/a").is_err());
        assert_eq!(
            uri(Method::Post, "api.coinbase.com", "/api/v3/brokerage/orders").unwrap(),
            "POST api.coinbase.com/api/v3/brokerage/orders"
        );
    }
}
