//! Coinbase CDP keys sign a JWT (ES256 or EdDSA); the daemon signs the JWS signing input
//! `base64url(header) "." base64url(claims)` (RFC 7515 §5.1). The claims carry `nbf` and
//! `exp` (seconds; Coinbase's tools set exp = nbf + 120) and `uri`, "METHOD host/path"
//! (Coinbase Advanced Trade, API key authentication; CDP SDKs put it in a one-element `uris`
//! array). The request body is not signed, so only the method, host, path and times can be
//! judged.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::json::Value;
use super::{Format, JwtClaims, ParseError, ParseErrorKind, ParsedRequest};

pub(crate) fn parse(payload: &[u8]) -> Result<ParsedRequest, ParseError> {
    let dot = payload
        .iter()
        .position(|&b| b == b'.')
        .ok_or_else(|| ParseError::new(payload.len(), ParseErrorKind::Expected("'.'")))?;
    let (header_b64, claims_b64) = (&payload[..dot], &payload[dot + 1..]);
    let header = decode_object(header_b64, 0)?;
    let claims = decode_object(claims_b64, dot + 1)?;
    let bad = |what| ParseError::new(0, ParseErrorKind::BadJwt(what));
    match member(&header, "alg") {
        Some(Value::String(alg)) if alg == "ES256" || alg == "EdDSA" => {}
        _ => return Err(bad("header alg must be ES256 or EdDSA")),
    }
    match member(&header, "typ") {
        None => {}
        Some(Value::String(typ)) if typ == "JWT" => {}
        Some(_) => return Err(bad("header typ must be JWT")),
    }
    if !matches!(member(&header, "kid"), Some(Value::String(_))) {
        return Err(bad("header kid must be the API key name"));
    }
    let bad = |what| ParseError::new(dot + 1, ParseErrorKind::BadJwt(what));
    let seconds = |name| match member(&claims, name) {
        Some(Value::Number(text)) if text.bytes().all(|b| b.is_ascii_digit()) => {
            super::timestamp::digits(text.as_bytes())
        }
        _ => None,
    };
    let nbf = seconds("nbf").ok_or_else(|| bad("claim nbf must be whole seconds"))?;
    let exp = seconds("exp").ok_or_else(|| bad("claim exp must be whole seconds"))?;
    if exp <= nbf {
        return Err(bad("claim exp must be after nbf"));
    }
    let uri = match (member(&claims, "uri"), member(&claims, "uris")) {
        (None, None) => None,
        (Some(Value::String(uri)), None) => Some(uri.clone()),
        (None, Some(Value::Array(uris))) => match uris.as_slice() {
            [Value::String(uri)] => Some(uri.clone()),
            _ => return Err(bad("claim uris must hold exactly one uri")),
        },
        _ => return Err(bad("claims need one uri string, not uri and uris")),
    };
    let mut request = ParsedRequest::new(Format::CoinbaseJwt);
    let mut host = None;
    if let Some(uri) = &uri {
        let (method, found_host, path) =
            split_uri(uri).ok_or_else(|| bad("claim uri must be \"METHOD host/path\""))?;
        request.method = Some(method);
        request.path = Some(path.to_owned());
        host = Some(found_host.to_owned());
    }
    request.timestamp_ms = Some(nbf.saturating_mul(1000));
    request.jwt = Some(JwtClaims {
        nbf,
        exp,
        uri,
        host,
    });
    Ok(request)
}

fn member<'a>(members: &'a [(String, Value)], name: &str) -> Option<&'a Value> {
    members
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

fn decode_object(text: &[u8], at: usize) -> Result<Vec<(String, Value)>, ParseError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| ParseError::new(at, ParseErrorKind::BadBase64))?;
    // Offsets inside decoded JSON do not map onto the payload; report the part's start.
    super::json::parse_object(&bytes, 0).map_err(|err| ParseError::new(at, err.kind))
}

/// `"GET api.coinbase.com/api/v3/brokerage/accounts"` → (GET, host, path). No query: the
/// uri claim holds none.
fn split_uri(uri: &str) -> Option<(super::Method, &str, &str)> {
    let (method, rest) = uri.split_once(' ')?;
    let method = super::Method::ALL
        .into_iter()
        .find(|m| m.as_str() == method)?;
    let slash = rest.find('/')?;
    let (host, path) = rest.split_at(slash);
    let host_ok = !host.is_empty()
        && host.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b':')
        });
    if !host_ok {
        return None;
    }
    let (checked, end) = super::path::path(path.as_bytes(), 0).ok()?;
    (end == path.len()).then_some((method, host, checked))
}
