//! Request paths, and the `timestamp + METHOD + path[?query] + [JSON body]` formats of OKX,
//! KuCoin and Bitget.
//!
//! - OKX: "timestamp + method + requestPath + body", timestamp "ISO format with
//!   milliseconds, e.g. 2020-12-08T09:08:57.715Z", GET parameters "counted as requestPath,
//!   not body" (OKX API v5, REST Authentication, Signature).
//! - KuCoin: "timestamp + method + endpoint + body", timestamp in milliseconds, "for GET,
//!   DELETE request, the endpoint needs to contain the query string" (KuCoin API, Signing a
//!   Message).
//! - Bitget: "timestamp + method.toUpperCase() + requestPath + "?" + queryString + body",
//!   timestamp in milliseconds (Bitget API, Quick Start, Signature).

use super::{Format, Method, ParseError, ParseErrorKind, ParsedRequest, timestamp};

/// Parses `payload` in the OKX, KuCoin or Bitget layout.
pub(crate) fn parse_prefixed(payload: &[u8], format: Format) -> Result<ParsedRequest, ParseError> {
    let mut request = ParsedRequest::new(format);
    // The timestamp.
    let rest = match format {
        Format::Okx => {
            let stamp = payload.get(..24).ok_or_else(|| {
                ParseError::new(0, ParseErrorKind::UnexpectedEnd("the ISO-8601 timestamp"))
            })?;
            request.timestamp_ms = Some(
                timestamp::iso8601_millis(stamp)
                    .ok_or_else(|| ParseError::new(0, ParseErrorKind::BadTimestamp))?,
            );
            24
        }
        _ => {
            let end = payload
                .iter()
                .position(|byte| !byte.is_ascii_digit())
                .unwrap_or(payload.len());
            request.timestamp_ms = Some(
                timestamp::millis13(&payload[..end])
                    .ok_or_else(|| ParseError::new(0, ParseErrorKind::BadTimestamp))?,
            );
            end
        }
    };
    let (method, after_method) = method(payload, rest)?;
    request.method = Some(method);
    let (path, after_path) = path(payload, after_method)?;
    request.path = Some(path.to_owned());
    let mut at = after_path;
    if payload.get(at) == Some(&b'?') {
        let start = at + 1;
        let end = payload[start..]
            .iter()
            .position(|&byte| byte == b'{' || byte == b'[')
            .map_or(payload.len(), |i| start + i);
        let query = &payload[start..end];
        if query.is_empty() {
            return Err(ParseError::new(
                start,
                ParseErrorKind::Expected("a query after '?'"),
            ));
        }
        let pairs = super::form::parse(query, start)?;
        if method != Method::Get {
            // A query is read by some servers on any method: a non-GET one is judged too.
            let named: Vec<(String, String)> = pairs
                .iter()
                .map(|pair| (pair.name.clone(), pair.value.clone()))
                .collect();
            request.orders = super::orders::from_form(&named, format);
        }
        super::push_form_params(pairs, &mut request.params);
        request.query = Some(super::utf8(query, start)?.to_owned());
        at = end;
    }
    if at < payload.len() {
        if payload[at] != b'{' && payload[at] != b'[' {
            return Err(ParseError::new(
                at,
                ParseErrorKind::BadPath("a character outside A-Z a-z 0-9 - _ . ~ /"),
            ));
        }
        if matches!(method, Method::Get | Method::Delete) {
            return Err(ParseError::new(at, ParseErrorKind::BodyNotAllowed));
        }
        let body = super::json::parse_body(&payload[at..], at)?;
        super::push_json_params(&body, &mut request.params);
        request
            .orders
            .extend(super::orders::from_json(&body, format));
    }
    Ok(request)
}

/// An upper-case HTTP method at `at`, followed by the path's `/`. Returns it and where the
/// path starts.
pub(crate) fn method(payload: &[u8], at: usize) -> Result<(Method, usize), ParseError> {
    let rest = &payload[at.min(payload.len())..];
    let letters = rest
        .iter()
        .position(|byte| !byte.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    if letters == 0 && rest.is_empty() {
        return Err(ParseError::new(
            at,
            ParseErrorKind::UnexpectedEnd("the HTTP method"),
        ));
    }
    let word = &rest[..letters];
    Method::ALL
        .into_iter()
        .find(|method| method.as_str().as_bytes() == word)
        .map(|method| (method, at + letters))
        .ok_or_else(|| ParseError::new(at, ParseErrorKind::BadMethod))
}

/// A strict absolute path at `at`: `/segment(/segment)*`, each segment one or more of
/// `A-Z a-z 0-9 - _ . ~`, none `.` or `..`. Percent-escapes, empty segments and anything a
/// server could normalise into another path are refused, so that the path the rules judge is
/// the path the exchange routes. Returns the path and the offset after it.
pub(crate) fn path(payload: &[u8], at: usize) -> Result<(&str, usize), ParseError> {
    if payload.get(at) != Some(&b'/') {
        return Err(ParseError::new(
            at,
            ParseErrorKind::Expected("a path starting with '/'"),
        ));
    }
    let end = payload[at..]
        .iter()
        .position(|&byte| !is_path_byte(byte))
        .map_or(payload.len(), |i| at + i);
    let text = super::utf8(&payload[at..end], at)?;
    check_segments(text, at)?;
    if let Some(&byte) = payload.get(end)
        && matches!(byte, b'%' | b'\\' | b'#' | b';' | b'+' | b'@' | b':' | b',')
    {
        return Err(ParseError::new(
            end,
            ParseErrorKind::BadPath("a character a server may decode or route two ways"),
        ));
    }
    Ok((text, end))
}

fn is_path_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'/' | b'-' | b'_' | b'.' | b'~')
}

/// Refuses empty, `.` and `..` segments in a path that starts with `/`.
pub(crate) fn check_segments(text: &str, at: usize) -> Result<(), ParseError> {
    let mut offset = at + 1;
    for segment in text[1..].split('/') {
        let why = match segment {
            "" => Some("an empty segment"),
            "." | ".." => Some("a dot segment"),
            _ => None,
        };
        if let Some(why) = why {
            return Err(ParseError::new(offset, ParseErrorKind::BadPath(why)));
        }
        offset += segment.len() + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_could_route_two_ways_are_refused() {
        let ok = |text: &str| path(text.as_bytes(), 0).map(|(p, _)| p.to_owned());
        assert_eq!(ok("/api/v5/trade/order").unwrap(), "/api/v5/trade/order");
        assert_eq!(ok("/a{").unwrap(), "/a");
        for bad in [
            "api",
            "/",
            "//api/v5",
            "/api//v5",
            "/api/v5/",
            "/api/./v5",
            "/api/../asset/withdrawal",
            "/api/v5/asset%2Fwithdrawal",
            "/api/v5\\asset",
            "/api/v5;x=1",
        ] {
            assert!(ok(bad).is_err(), "{bad}");
        }
    }
}
