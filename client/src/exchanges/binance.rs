//! Binance: signed REST query strings and signed WebSocket API params.
//!
//! Binance's SIGNED endpoints take the request's parameters plus a `signature` computed over
//! "the query string concatenated without separator to the HTTP body" (binance-spot-api-docs,
//! rest-api.md, SIGNED Endpoint Examples). For an HMAC secret key the signature is lowercase
//! hex; for an RSA or Ed25519 key it is base64, percent-encoded in a query string because
//! base64 uses `+`, `/` and `=`. The daemon's `binance` format parses exactly that string.
//!
//! The WebSocket API signs the request's `params` sorted by name, as `name=value` pairs
//! joined by `&` (websocket-api/request-security.md, SIGNED request example).
//!
//! The `X-MBX-APIKEY` header (REST) and the `apiKey` param (WebSocket) take the key's API key
//! id: [`api_key`](super::api_key) returns the stored one.

use super::{check_form, check_form_text, invalid};
use crate::{Client, Error, Signature};

/// Signs `query` + `body` (e.g. `symbol=BTCUSDT&timestamp=1700000000000` and `""`) with the
/// key named `key` and returns `query` with `&signature=...` appended, ready to send; the
/// body is sent unchanged.
///
/// Both parts are form-encoded as they will be sent, and are checked as the daemon parses
/// them. When both are non-empty they meet with no separator, so the body's first parameter
/// must be one the daemon knows to tell where the query ends (docs/POLICY.md); sending every
/// parameter in one part avoids the question.
pub fn signed_query(
    client: &mut Client,
    key: &str,
    query: &str,
    body: &str,
) -> Result<String, Error> {
    let payload = payload(query, body)?;
    let signature = client.sign(key, payload.as_bytes())?;
    Ok(append_signature(query, &signature))
}

/// [`signed_query`] for the [`AsyncClient`](crate::AsyncClient).
#[cfg(feature = "tokio")]
pub async fn signed_query_async(
    client: &mut crate::AsyncClient,
    key: &str,
    query: &str,
    body: &str,
) -> Result<String, Error> {
    let payload = payload(query, body)?;
    let signature = client.sign(key, payload.as_bytes()).await?;
    Ok(append_signature(query, &signature))
}

/// What Binance signs for `query` and `body`: the two, with no separator.
pub fn payload(query: &str, body: &str) -> Result<String, Error> {
    for (what, part) in [("the query", query), ("the body", body)] {
        if !part.is_empty() {
            check_form(what, part)?;
        }
    }
    Ok(format!("{query}{body}"))
}

/// Signs WebSocket API `params` with the key named `key` and returns them sorted by name,
/// with `signature` added last. Values are given as they appear in the request's JSON
/// (numbers as their digits, `true`/`false`); include `apiKey` and `timestamp`.
pub fn sign_params(
    client: &mut Client,
    key: &str,
    params: &[(&str, &str)],
) -> Result<Vec<(String, String)>, Error> {
    let (sorted, payload) = ws_payload(params)?;
    let signature = client.sign(key, payload.as_bytes())?;
    let mut signed = sorted;
    signed.push(("signature".to_owned(), encode(&signature, false)));
    Ok(signed)
}

/// The WebSocket API signature payload: `params` sorted by name, as `name=value` pairs joined
/// by `&`; also returns the sorted params.
///
/// Binance signs the values as they are, so a value the daemon's form parser would read
/// differently (a space, `&`, `=`, `%`, `+`, non-ASCII) is refused here rather than signed
/// in a form Binance would not check.
#[allow(clippy::type_complexity)]
pub fn ws_payload(params: &[(&str, &str)]) -> Result<(Vec<(String, String)>, String), Error> {
    let mut sorted: Vec<(String, String)> = params
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, value) in &sorted {
        if name == "signature" {
            return Err(invalid("params already hold a signature"));
        }
        for text in [name, value] {
            if text.contains(['%', '+']) {
                return Err(invalid(format!(
                    "WebSocket param {name:?}: {text:?} holds '%' or '+', which the daemon would decode"
                )));
            }
            check_form_text("a WebSocket param", text)?;
        }
    }
    let payload = sorted
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&");
    check_form("the WebSocket params", &payload)?;
    Ok((sorted, payload))
}

/// Appends `signature=...` for `signature` to `query`, encoded as [`signed_query`] does.
pub fn append_signature(query: &str, signature: &Signature) -> String {
    let value = encode(signature, true);
    if query.is_empty() {
        format!("signature={value}")
    } else {
        format!("{query}&signature={value}")
    }
}

/// Lowercase hex for HMAC keys; base64 for RSA and Ed25519 keys, percent-encoded when it goes
/// into a query string (a JSON string needs no escaping).
fn encode(signature: &Signature, for_query: bool) -> String {
    if signature.scheme().is_hmac() {
        signature.to_hex()
    } else if for_query {
        percent_encode_base64(&signature.to_base64())
    } else {
        signature.to_base64()
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
#[allow(clippy::unwrap_used)]
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
        assert_eq!(
            encode(&Signature::new(Scheme::Ed25519, vec![0xfb, 0xff]), false),
            "+/8="
        );
    }

    #[test]
    fn the_percent_encoder_touches_only_the_three_unsafe_characters() {
        assert_eq!(percent_encode_base64("AZaz09+/=="), "AZaz09%2B%2F%3D%3D");
    }

    #[test]
    fn query_and_body_are_joined_with_no_separator() {
        // Binance's example 3 (rest-api.md before f83a5bf): query + body, no '&' between.
        assert_eq!(
            payload(
                "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC",
                "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
            )
            .unwrap(),
            "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTCquantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
        );
        assert!(payload("a=1&", "").is_err());
        assert!(payload("a=é", "").is_err());
    }

    #[test]
    fn binances_websocket_example_payload() {
        // websocket-api/request-security.md, "SIGNED request example (HMAC)", step 1.
        let params = [
            ("symbol", "BTCUSDT"),
            ("side", "SELL"),
            ("type", "LIMIT"),
            ("timeInForce", "GTC"),
            ("quantity", "0.01000000"),
            ("price", "52000.00"),
            ("newOrderRespType", "ACK"),
            ("recvWindow", "100"),
            ("timestamp", "1645423376532"),
            (
                "apiKey",
                "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
            ),
        ];
        let (sorted, payload) = ws_payload(&params).unwrap();
        assert_eq!(
            payload,
            "apiKey=vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A&newOrderRespType=ACK&price=52000.00&quantity=0.01000000&recvWindow=100&side=SELL&symbol=BTCUSDT&timeInForce=GTC&timestamp=1645423376532&type=LIMIT"
        );
        assert_eq!(sorted[0].0, "apiKey");
        for bad in [
            ("a", "x y"),
            ("a", "1&b=2"),
            ("a", "50%"),
            ("a", "1+1"),
            ("signature", "x"),
        ] {
            assert!(ws_payload(&[bad]).is_err(), "{bad:?}");
        }
    }
}
