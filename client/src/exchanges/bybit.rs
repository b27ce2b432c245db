//! Bybit v5 REST: the `X-BAPI-*` headers, for HMAC and RSA keys.
//!
//! Bybit signs `timestamp + api_key + recv_window + queryString` for GET and
//! `... + jsonBodyString` for POST, the timestamp and the window in milliseconds; the
//! signature is lowercase hex for HMAC keys and base64 for RSA keys (bybit-exchange/docs,
//! v5/guide.mdx, Authentication). The daemon's `bybit` format parses exactly that string and
//! checks that the API key in it is the key's stored API key id.

use super::{Headers, HttpRequest, Options, check_form, check_json_body, invalid};
use crate::{Client, Error, Signature};

/// The receive window Bybit applies when none is sent, in milliseconds.
pub const DEFAULT_RECV_WINDOW_MS: u64 = 5000;

/// The string Bybit signs: `timestamp_ms + api_key + recv_window_ms` and the query (GET,
/// DELETE) or the JSON body (POST, PUT) of `request`. The path is not signed.
pub fn signing_string(
    timestamp_ms: u64,
    api_key: &str,
    recv_window_ms: u64,
    request: &HttpRequest<'_>,
) -> Result<String, Error> {
    if api_key.is_empty() {
        return Err(invalid("the Bybit API key id must not be empty"));
    }
    if recv_window_ms == 0 {
        // Signed as "0", which Bybit and the daemon read as no window at all.
        return Err(invalid("the Bybit receive window must be at least 1 ms"));
    }
    let params = if request.method.takes_body() {
        if !request.query.is_empty() {
            return Err(invalid(format!(
                "a Bybit {} request signs its body, not a query",
                request.method
            )));
        }
        if !request.body.is_empty() {
            check_json_body(request.body)?;
        }
        request.body
    } else {
        if !request.body.is_empty() {
            return Err(invalid(format!(
                "a {} request signs no body",
                request.method
            )));
        }
        if !request.query.is_empty() {
            check_form("the query", request.query)?;
        }
        request.query
    };
    Ok(format!("{timestamp_ms}{api_key}{recv_window_ms}{params}"))
}

/// Signs `request` with the key named `key` and returns the headers Bybit expects:
/// `X-BAPI-API-KEY`, `X-BAPI-TIMESTAMP`, `X-BAPI-RECV-WINDOW`, `X-BAPI-SIGN`.
pub fn headers(
    client: &mut Client,
    key: &str,
    request: &HttpRequest<'_>,
    recv_window_ms: u64,
    options: &Options<'_>,
) -> Result<Headers, Error> {
    let timestamp_ms = options.timestamp();
    let api_key = options.api_key_for(client, key)?;
    let payload = signing_string(timestamp_ms, &api_key, recv_window_ms, request)?;
    let signature = client.sign(key, payload.as_bytes())?;
    Ok(vec![
        ("X-BAPI-API-KEY", api_key),
        ("X-BAPI-TIMESTAMP", timestamp_ms.to_string()),
        ("X-BAPI-RECV-WINDOW", recv_window_ms.to_string()),
        ("X-BAPI-SIGN", encode(&signature)),
    ])
}

/// Lowercase hex for HMAC keys, base64 for RSA keys, as Bybit reads `X-BAPI-SIGN`.
pub fn encode(signature: &Signature) -> String {
    if signature.scheme().is_hmac() {
        signature.to_hex()
    } else {
        signature.to_base64()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bybits_documented_signing_strings() {
        // bybit-exchange/docs v5/guide.mdx, "Create A Request" (GET and POST).
        let get = HttpRequest::get(
            "/v5/order/realtime",
            "category=option&symbol=BTC-29JUL22-25000-C",
        );
        assert_eq!(
            signing_string(1_658_384_314_791, "XXXXXXXXXX", 5000, &get).unwrap(),
            "1658384314791XXXXXXXXXX5000category=option&symbol=BTC-29JUL22-25000-C"
        );
        let post = HttpRequest::post("/v5/order/create", r#"{"category": "option"}"#);
        assert_eq!(
            signing_string(1_658_385_579_423, "XXXXXXXXXX", 5000, &post).unwrap(),
            r#"1658385579423XXXXXXXXXX5000{"category": "option"}"#
        );
    }
}
