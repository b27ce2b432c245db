//! Binance: the signature payload is "the query string concatenated without separator to the
//! HTTP body", both `application/x-www-form-urlencoded`, and "any non-ASCII character must
//! be percent-encoded before signing" (binance-spot-api-docs, rest-api.md, SIGNED Endpoint
//! Examples). `timestamp` is milliseconds or microseconds; `recvWindow` milliseconds with up
//! to three decimals, 5000 when absent (rest-api.md, Timing security).
//!
//! With no separator, the query's last value and the body's first name meet: Binance's own
//! example 3 signs `...&timeInForce=GTCquantity=1&price=0.1&...` for the query
//! `...&timeInForce=GTC` and the body `quantity=1&price=0.1&...`. That one segment (the
//! "seam") has two `=`; the body's first name is taken as the longest suffix of the text
//! between them that is a documented Binance parameter, and the payload is refused when there
//! is none. A denied name ending the seam's text is refused whatever the split (see
//! [`ParsedRequest::seam`](super::ParsedRequest)), so the choice of split cannot hide one.

use super::{Format, ParseError, ParseErrorKind, ParsedRequest, form, timestamp};

/// Parameter names from Binance's spot REST docs (rest-api.md request tables) and wallet
/// endpoints: the names a body may start with. Longest match wins.
const KNOWN_PARAMS: &[&str] = &[
    "address",
    "addressTag",
    "amount",
    "asset",
    "clientAlgoId",
    "coin",
    "endTime",
    "fromId",
    "icebergQty",
    "interval",
    "limit",
    "listClientOrderId",
    "name",
    "network",
    "newClientOrderId",
    "newOrderRespType",
    "newQty",
    "orderId",
    "orderListId",
    "origClientOrderId",
    "price",
    "quantity",
    "quoteOrderQty",
    "recvWindow",
    "selfTradePreventionMode",
    "side",
    "startTime",
    "stopPrice",
    "strategyId",
    "strategyType",
    "symbol",
    "symbols",
    "timeInForce",
    "timestamp",
    "trailingDelta",
    "transactionFeeFlag",
    "type",
    "walletType",
    "withdrawOrderId",
    "cancelReplaceMode",
    "cancelNewClientOrderId",
    "cancelOrigClientOrderId",
    "cancelOrderId",
    "cancelRestrictions",
    "pegPriceType",
    "pegOffsetValue",
    "pegOffsetType",
    "positionSide",
    "reduceOnly",
    "closePosition",
    "workingType",
    "priceProtect",
    "activationPrice",
    "callbackRate",
    "goodTillDate",
    "priceMatch",
    "leverage",
    "marginType",
    "dualSidePosition",
    "computeCommissionRates",
    "omitZeroBalances",
    "fromAsset",
    "toAsset",
    "fromAccountType",
    "toAccountType",
];

/// The recvWindow Binance applies when none is signed.
const DEFAULT_RECV_WINDOW_MS: u64 = 5000;

pub(crate) fn parse(payload: &[u8]) -> Result<ParsedRequest, ParseError> {
    let mut request = ParsedRequest::new(Format::Binance);
    let mut pairs = Vec::new();
    if !payload.is_empty() {
        let mut at = 0;
        for segment in payload.split(|&byte| byte == b'&') {
            let equals = segment.iter().filter(|&&byte| byte == b'=').count();
            if equals == 2 {
                if request.seam.is_some() {
                    return Err(ParseError::new(at, ParseErrorKind::AmbiguousSeam));
                }
                let (before, after, seam) = split_seam(segment, at)?;
                request.seam = Some(seam);
                pairs.push(before);
                pairs.push(after);
            } else {
                pairs.push(form::pair(segment, at)?);
            }
            at += segment.len() + 1;
        }
    }
    form::refuse_duplicates(&pairs)?;
    for pair in &pairs {
        let value_at = pair.at + pair.name.len() + 1;
        match pair.name.as_str() {
            "timestamp" => {
                request.timestamp_ms =
                    Some(timestamp::binance(pair.value.as_bytes()).ok_or_else(|| {
                        ParseError::new(
                            value_at,
                            ParseErrorKind::BadValue(
                                "timestamp must be 13 digits of ms or 16 of microseconds",
                            ),
                        )
                    })?);
            }
            "recvWindow" => {
                request.recv_window_ms =
                    Some(recv_window(pair.value.as_bytes()).ok_or_else(|| {
                        ParseError::new(
                            value_at,
                            ParseErrorKind::BadValue(
                                "recvWindow must be milliseconds with at most 3 decimals",
                            ),
                        )
                    })?);
            }
            _ => {}
        }
    }
    request.recv_window_ms.get_or_insert(DEFAULT_RECV_WINDOW_MS);
    let named: Vec<(String, String)> = pairs
        .iter()
        .map(|pair| (pair.name.clone(), pair.value.clone()))
        .collect();
    request.orders = super::orders::from_form(&named, Format::Binance);
    // USDⓈ-M futures' `POST /fapi/v1/batchOrders`: the orders are a JSON array in one value.
    if let Some(batch) = pairs
        .iter()
        .find(|pair| super::fold(&pair.name) == "batchorders")
    {
        let value_at = batch.at + batch.name.len() + 1;
        let list = super::json::parse_body(batch.value.as_bytes(), value_at).map_err(|_| {
            ParseError::new(
                value_at,
                ParseErrorKind::BadValue("batchOrders must be a strict JSON array of orders"),
            )
        })?;
        request
            .orders
            .extend(super::orders::from_json(&list, Format::Binance));
    }
    super::push_form_params(pairs, &mut request.params);
    Ok(request)
}

/// `name1=value1name2=value2` → the two pairs and the decoded text between the `=`s.
fn split_seam(segment: &[u8], at: usize) -> Result<(form::Pair, form::Pair, String), ParseError> {
    let first = segment.iter().position(|&b| b == b'=').unwrap_or(0);
    let second = first
        + 1
        + segment[first + 1..]
            .iter()
            .position(|&b| b == b'=')
            .unwrap_or(0);
    let middle = &segment[first + 1..second];
    let seam = form::decode(middle, at + first + 1)?;
    let split = KNOWN_PARAMS
        .iter()
        .filter(|name| middle.ends_with(name.as_bytes()))
        .map(|name| name.len())
        .max()
        .ok_or_else(|| ParseError::new(at + first + 1, ParseErrorKind::AmbiguousSeam))?;
    let boundary = second - split;
    let before = form::pair(&segment[..boundary], at)?;
    let after = form::pair(&segment[boundary..], at + boundary)?;
    Ok((before, after, seam))
}

/// `5000`, `6000.346`: milliseconds, rounded up to whole milliseconds.
fn recv_window(text: &[u8]) -> Option<u64> {
    let (whole, fraction) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], Some(&text[dot + 1..])),
        None => (text, None),
    };
    if whole.len() > 12 || (whole.len() > 1 && whole[0] == b'0') {
        return None;
    }
    let ms = timestamp::digits(whole)?;
    match fraction {
        None => Some(ms),
        Some(digits) if (1..=3).contains(&digits.len()) => {
            let part = timestamp::digits(digits)?;
            Some(ms + u64::from(part > 0))
        }
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recv_window_forms() {
        assert_eq!(recv_window(b"5000"), Some(5000));
        assert_eq!(recv_window(b"6000.346"), Some(6001));
        assert_eq!(recv_window(b"6000.000"), Some(6000));
        assert_eq!(recv_window(b"0"), Some(0));
        for bad in [
            "",
            "05000",
            "5000.",
            "5000.1234",
            "5e3",
            "-1",
            ".5",
            "1.2.3",
        ] {
            assert_eq!(recv_window(bad.as_bytes()), None, "{bad}");
        }
    }
}
