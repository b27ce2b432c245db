//! Bybit v5: "timestamp + API key + recv_window + queryString" for GET, "... + jsonBodyString"
//! for POST, the timestamp in milliseconds and recv_window in milliseconds, 5000 when not sent
//! (bybit-exchange/docs, docs/v5/guide.mdx, Authentication).
//!
//! The API key must be the key's stored API key id: a payload naming another key is not this
//! key's to sign. recv_window is the longest run of digits after the key; a query starting
//! with a digit would only make it look longer, which the max_recv_window_ms rule errs on.
//!
//! Orders are read from the JSON body, and from a query too: the method is not signed.

use super::{Format, ParseError, ParseErrorKind, ParsedRequest, timestamp};

/// The recv_window Bybit applies when none is sent.
const DEFAULT_RECV_WINDOW_MS: u64 = 5000;

pub(crate) fn parse(payload: &[u8], api_key: Option<&str>) -> Result<ParsedRequest, ParseError> {
    let mut request = ParsedRequest::new(Format::Bybit);
    let stamp = payload.get(..13).ok_or_else(|| {
        ParseError::new(
            0,
            ParseErrorKind::UnexpectedEnd("the millisecond timestamp"),
        )
    })?;
    request.timestamp_ms = Some(
        timestamp::millis13(stamp)
            .ok_or_else(|| ParseError::new(0, ParseErrorKind::BadTimestamp))?,
    );
    let api_key = api_key
        .filter(|key| !key.is_empty())
        .ok_or_else(|| ParseError::new(13, ParseErrorKind::NoApiKey))?;
    if !payload[13..].starts_with(api_key.as_bytes()) {
        return Err(ParseError::new(13, ParseErrorKind::ApiKeyMismatch));
    }
    let window_at = 13 + api_key.len();
    let digits = payload[window_at..]
        .iter()
        .position(|byte| !byte.is_ascii_digit())
        .unwrap_or(payload.len() - window_at);
    let window = &payload[window_at..window_at + digits];
    request.recv_window_ms = Some(if window.is_empty() {
        DEFAULT_RECV_WINDOW_MS
    } else if window[0] == b'0' || window.len() > 12 {
        return Err(ParseError::new(
            window_at,
            ParseErrorKind::BadValue("recv_window must be milliseconds without leading zeros"),
        ));
    } else {
        timestamp::digits(window).unwrap_or(u64::MAX)
    });
    let rest_at = window_at + digits;
    let rest = &payload[rest_at..];
    match rest.first() {
        Some(b'{' | b'[') => {
            let body = super::json::parse_body(rest, rest_at)?;
            super::push_json_params(&body, &mut request.params);
            request.orders = super::orders::from_json(&body, Format::Bybit);
        }
        _ => {
            let pairs = super::form::parse(rest, rest_at)?;
            if !rest.is_empty() {
                request.query = Some(super::utf8(rest, rest_at)?.to_owned());
            }
            // The method is not signed, so a form could be a POST body too: judged as well
            // (Bybit's GET endpoints take none of the order fields).
            let named: Vec<(String, String)> = pairs
                .iter()
                .map(|pair| (pair.name.clone(), pair.value.clone()))
                .collect();
            request.orders = super::orders::from_form(&named, Format::Bybit);
            super::push_form_params(pairs, &mut request.params);
        }
    }
    Ok(request)
}
