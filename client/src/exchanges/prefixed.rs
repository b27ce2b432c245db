//! The layout OKX, KuCoin and Bitget share: `timestamp + METHOD + path[?query] + body`, signed
//! with HMAC-SHA256 (or RSA, for Bitget) and sent base64 in a header.

use super::{HttpRequest, check_form, check_json_body, check_path, invalid};
use crate::Error;

/// `timestamp + METHOD + path + ("?" + query, if any) + body`, after checking each part
/// against the grammar the daemon parses (docs/POLICY.md, okx/kucoin/bitget).
pub(super) fn signing_string(timestamp: &str, request: &HttpRequest<'_>) -> Result<String, Error> {
    check_path(request.path)?;
    if !request.query.is_empty() {
        check_form("the query", request.query)?;
    }
    if !request.body.is_empty() {
        if !request.method.takes_body() {
            return Err(invalid(format!(
                "a {} request signs no body",
                request.method
            )));
        }
        check_json_body(request.body)?;
    }
    let mut out = String::with_capacity(
        timestamp.len() + 6 + request.path.len() + request.query.len() + 1 + request.body.len(),
    );
    out.push_str(timestamp);
    out.push_str(request.method.as_str());
    out.push_str(request.path);
    if !request.query.is_empty() {
        out.push('?');
        out.push_str(request.query);
    }
    out.push_str(request.body);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_parts_are_joined_with_no_separator_but_the_query_mark() {
        let get = HttpRequest::get("/api/v1/deposit-addresses", "currency=BTC");
        assert_eq!(
            signing_string("1547015186532", &get).unwrap(),
            "1547015186532GET/api/v1/deposit-addresses?currency=BTC"
        );
        let post = HttpRequest::post("/api/v1/deposit-addresses", r#"{"currency":"BTC"}"#);
        assert_eq!(
            signing_string("1547015186532", &post).unwrap(),
            r#"1547015186532POST/api/v1/deposit-addresses{"currency":"BTC"}"#
        );
        let bare = HttpRequest::get("/api/v5/account/balance", "");
        assert_eq!(
            signing_string("2020-12-08T09:08:57.715Z", &bare).unwrap(),
            "2020-12-08T09:08:57.715ZGET/api/v5/account/balance"
        );
    }

    #[test]
    fn a_get_with_a_body_is_refused() {
        let request = HttpRequest {
            body: "{}",
            ..HttpRequest::get("/a", "")
        };
        assert!(signing_string("1", &request).is_err());
    }
}
