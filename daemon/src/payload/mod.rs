//! Strict parsers for the strings exchanges sign, and the payload rules that judge them.
//!
//! A key's payload rules (`deny_params`, `allow_paths`, `timestamp_window_ms`, ...) judge a
//! strict parse of the payload in the format of the key's exchange, never the raw bytes:
//! a denylist over bytes of unknown shape cannot be made safe (issue 12). Each format has one
//! parser, in its own module, that accepts exactly the exchange's documented signing string
//! and nothing else. Whatever does not parse is refused, with the reason and a byte position
//! but never more than a short excerpt of the payload, which may be sensitive.
//!
//! The entry point is [`judge`]; [`validate`] checks a key's format and rules at config load.
//! docs/POLICY.md describes each grammar and what each rule sees.

mod binance;
mod bybit;
mod coinbase_jwt;
mod decimal;
mod form;
mod json;
mod kraken;
mod orders;
mod path;
mod rules;
mod timestamp;

#[cfg(test)]
mod corpus;
#[cfg(test)]
mod order_corpus;

use std::fmt;

pub(crate) use decimal::Decimal;
pub(crate) use rules::{Context, OrderRules, Rules, judge, validate};

/// How a key's exchange builds the string it signs: the protocol's type, since clients name
/// it at import and generate and see it in `list`. Names as in the config file.
pub(crate) use keyward_protocol::PayloadFormat as Format;

/// Parses `payload` as `format`'s signing string. `api_key` is the key's stored API key id
/// (Bybit signs it). `Ok(None)` for [`Format::Raw`], which has no parse.
pub(crate) fn parse(
    format: Format,
    payload: &[u8],
    api_key: Option<&str>,
) -> Result<Option<ParsedRequest>, ParseError> {
    let parsed = match format {
        Format::Binance => binance::parse(payload)?,
        Format::Bybit => bybit::parse(payload, api_key)?,
        Format::Okx => path::parse_prefixed(payload, Format::Okx)?,
        Format::Kucoin => path::parse_prefixed(payload, Format::Kucoin)?,
        Format::Bitget => path::parse_prefixed(payload, Format::Bitget)?,
        Format::Kraken => kraken::parse(payload)?,
        Format::CoinbaseJwt => coinbase_jwt::parse(payload)?,
        Format::Raw => return Ok(None),
    };
    Ok(Some(parsed))
}

/// An HTTP method as the exchanges write it in the signing string: upper case only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    const ALL: [Method; 4] = [Method::Get, Method::Post, Method::Put, Method::Delete];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// Where a parameter was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// A form parameter: Binance's parameters, or a query string.
    Form,
    /// A key of a JSON object, at this depth (1 = the body's top level).
    Json { depth: usize },
}

/// One parameter name, with its value when the value is a scalar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Param {
    /// Decoded: percent-escapes and JSON escapes resolved.
    pub(crate) name: String,
    /// The decoded string, the number's text, `true`/`false`/`null`; `None` for an object
    /// or array.
    pub(crate) value: Option<String>,
    pub(crate) place: Place,
}

/// The claims of a Coinbase CDP JWT that rules look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JwtClaims {
    /// Seconds since the epoch.
    pub(crate) nbf: u64,
    pub(crate) exp: u64,
    /// `"METHOD host/path"`; absent in a JWT for a websocket connection.
    pub(crate) uri: Option<String>,
    pub(crate) host: Option<String>,
}

/// One order field as the request spells it: the exchange's name for it (as sent) and its
/// value (a string's contents or a JSON number's own text, never through a float; `None` for
/// an object or array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    pub(crate) name: String,
    pub(crate) value: Option<String>,
}

/// The fields of one order that the order rules judge (see [`orders`] for how each format's
/// orders are found). `quantity` is in the base asset (or the exchange's contracts), and
/// `quote_quantity` in the quote currency; a field whose unit the request does not settle is
/// in both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OrderFields {
    pub(crate) symbol: Option<Field>,
    pub(crate) side: Option<Field>,
    pub(crate) order_type: Option<Field>,
    pub(crate) quantity: Option<Field>,
    pub(crate) price: Option<Field>,
    pub(crate) quote_quantity: Option<Field>,
    /// The order type is a limit type, whose price bounds the fill; exchanges ignore a price
    /// sent with a market order.
    pub(crate) price_binds: bool,
}

/// What a strict parse of a payload found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedRequest {
    pub(crate) format: Format,
    pub(crate) method: Option<Method>,
    /// The request path as signed (no query), for the formats that sign it.
    pub(crate) path: Option<String>,
    /// The raw query string (after `?`), when there is one.
    pub(crate) query: Option<String>,
    /// Every form parameter and every JSON key at any depth, in payload order.
    pub(crate) params: Vec<Param>,
    /// The request time, in ms since the epoch, read where the exchange reads it.
    pub(crate) timestamp_ms: Option<u64>,
    /// The validity window the exchange applies (the signed value, else its default), ms.
    pub(crate) recv_window_ms: Option<u64>,
    pub(crate) jwt: Option<JwtClaims>,
    /// Every order in the request, one per batch element or order-list leg; empty for a
    /// request that is not an order (a cancel, a query).
    pub(crate) orders: Vec<OrderFields>,
    /// Binance only: the decoded text where the query's last value meets the body's first
    /// name with no separator. A denied name at its end is refused whatever the split.
    pub(crate) seam: Option<String>,
}

impl ParsedRequest {
    fn new(format: Format) -> ParsedRequest {
        ParsedRequest {
            format,
            method: None,
            path: None,
            query: None,
            params: Vec::new(),
            timestamp_ms: None,
            recv_window_ms: None,
            jwt: None,
            orders: Vec::new(),
            seam: None,
        }
    }

    /// The value of the first parameter at the top level (form, or JSON depth 1) named
    /// exactly `name`.
    #[cfg(test)]
    fn top_level(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|param| {
                param.name == name && matches!(param.place, Place::Form | Place::Json { depth: 1 })
            })
            .and_then(|param| param.value.as_deref())
    }
}

/// Why a payload does not parse in its format.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum ParseErrorKind {
    /// The payload ended where more was required.
    UnexpectedEnd(&'static str),
    /// Something else than the named element.
    Expected(&'static str),
    /// Bytes after a complete payload.
    TrailingData,
    /// Not UTF-8 where text is required.
    InvalidUtf8,
    /// A byte the format does not allow raw (e.g. non-ASCII in a Binance query).
    RawByte(u8),
    /// `%` not followed by two hex digits.
    BadPercentEscape,
    /// A JSON escape that is not one of JSON's, or a \u escape that is not a scalar value
    /// (a lone or reversed surrogate).
    BadEscape,
    /// A control character inside a JSON string.
    ControlInString,
    /// A JSON number that is not strict (leading zeros, `+`, `.5`, `NaN`, too long, ...).
    BadNumber,
    /// Objects and arrays nested deeper than the cap.
    TooDeep,
    /// A name that appears twice (equal ignoring ASCII case) in one object or one form.
    Duplicate(String),
    /// A form pair without `=`, with an empty name, or with a raw `=` in its value.
    BadPair,
    /// The timestamp is not in the exchange's format.
    BadTimestamp,
    /// The HTTP method is not GET, POST, PUT or DELETE in upper case.
    BadMethod,
    /// The path has a character, segment or escape that a server could read two ways.
    BadPath(&'static str),
    /// A GET or DELETE with a body, which the exchange would not sign.
    BodyNotAllowed,
    /// The API key in a Bybit payload is not the key's stored API key id.
    ApiKeyMismatch,
    /// This format signs the API key id and the key has none stored.
    NoApiKey,
    /// A parameter the exchange reads has a value it does not accept.
    BadValue(&'static str),
    /// Base64url that is padded, non-canonical or has characters outside the alphabet.
    BadBase64,
    /// The JWT header or claims miss something or hold something the exchange refuses.
    BadJwt(&'static str),
    /// Binance: where the query ends and the body starts cannot be told.
    AmbiguousSeam,
}

/// A payload that does not parse: what and where (a byte offset into the payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    pub(crate) at: usize,
    pub(crate) kind: ParseErrorKind,
}

impl ParseError {
    pub(crate) fn new(at: usize, kind: ParseErrorKind) -> ParseError {
        ParseError { at, kind }
    }

    /// The same error at `offset` bytes further: for a part parsed on its own.
    fn shifted(self, offset: usize) -> ParseError {
        ParseError {
            at: self.at + offset,
            kind: self.kind,
        }
    }
}

impl fmt::Display for ParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseErrorKind::UnexpectedEnd(what) => write!(f, "the payload ends before {what}"),
            ParseErrorKind::Expected(what) => write!(f, "expected {what}"),
            ParseErrorKind::TrailingData => f.write_str("unexpected data after the end"),
            ParseErrorKind::InvalidUtf8 => f.write_str("invalid UTF-8"),
            ParseErrorKind::RawByte(byte) => {
                write!(f, "byte 0x{byte:02x} must be percent-encoded")
            }
            ParseErrorKind::BadPercentEscape => f.write_str("invalid percent-escape"),
            ParseErrorKind::BadEscape => f.write_str("invalid JSON escape"),
            ParseErrorKind::ControlInString => f.write_str("control character in a JSON string"),
            ParseErrorKind::BadNumber => f.write_str("not a strict JSON number"),
            ParseErrorKind::TooDeep => write!(f, "nested deeper than {}", json::MAX_DEPTH),
            ParseErrorKind::Duplicate(name) => {
                write!(f, "parameter {:?} appears twice", excerpt(name))
            }
            ParseErrorKind::BadPair => f.write_str("not a name=value pair"),
            ParseErrorKind::BadTimestamp => f.write_str("not a timestamp in this format"),
            ParseErrorKind::BadMethod => {
                f.write_str("expected GET, POST, PUT or DELETE in upper case")
            }
            ParseErrorKind::BadPath(why) => write!(f, "path refused: {why}"),
            ParseErrorKind::BodyNotAllowed => f.write_str("a GET or DELETE request signs no body"),
            ParseErrorKind::ApiKeyMismatch => {
                f.write_str("the API key in the payload is not this key's API key id")
            }
            ParseErrorKind::NoApiKey => {
                f.write_str("this format signs the API key id and this key has none stored")
            }
            ParseErrorKind::BadValue(what) => write!(f, "{what}"),
            ParseErrorKind::BadBase64 => f.write_str("invalid unpadded base64url"),
            ParseErrorKind::BadJwt(what) => write!(f, "JWT refused: {what}"),
            ParseErrorKind::AmbiguousSeam => f.write_str(
                "query and body meet without '&' and the body's first parameter cannot be told",
            ),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind, self.at)
    }
}

impl std::error::Error for ParseError {}

/// At most 32 characters of `text`, for messages: payloads may be sensitive and long.
pub(crate) fn excerpt(text: &str) -> String {
    const MAX: usize = 32;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

/// `name` case-folded the way Java's `equalsIgnoreCase` compares characters (upper case, then
/// lower case), so that `addreſs` (long s) and `ADDRESS` both fold to `address`: exchanges that
/// match names ignoring case must not find a denied name that the rules missed.
pub(crate) fn fold(name: &str) -> String {
    name.chars()
        .flat_map(char::to_uppercase)
        .flat_map(char::to_lowercase)
        .collect()
}

/// `text` as UTF-8, or the position of the first invalid byte.
fn utf8(bytes: &[u8], offset: usize) -> Result<&str, ParseError> {
    std::str::from_utf8(bytes)
        .map_err(|err| ParseError::new(offset + err.valid_up_to(), ParseErrorKind::InvalidUtf8))
}

/// Adds `params` (from one form or one JSON document) to `into`.
fn push_json_params(value: &json::Value, into: &mut Vec<Param>) {
    value.walk(&mut |name, value, depth| {
        into.push(Param {
            name: name.to_owned(),
            value: value.scalar_text(),
            place: Place::Json { depth },
        });
    });
}

fn push_form_params(pairs: Vec<form::Pair>, into: &mut Vec<Param>) {
    into.extend(pairs.into_iter().map(|pair| Param {
        name: pair.name,
        value: Some(pair.value),
        place: Place::Form,
    }));
}

/// The property the fuzz targets (fuzz/) and the property tests (properties.rs) check on
/// every format: `data` is parsed as `format`, then judged under strict rules (deny_params, a
/// timestamp window where the format has one, order rules where it has orders). Never a
/// panic, and whatever does not parse is refused: the rules never judge bytes of unknown
/// shape. Compiled in tests and under `--cfg fuzzing` only.
#[cfg(any(test, fuzzing))]
pub(crate) fn check_parse_and_judge(format: Format, data: &[u8]) {
    let api_key = Some("fuzz-api-key");
    let parsed = parse(format, data, api_key);
    let mut rules = Rules {
        deny_params: vec!["address".to_owned()],
        timestamp_window_ms: Some(5000),
        ..Rules::default()
    };
    if validate(Some(format), &rules).is_err() {
        rules.timestamp_window_ms = None;
    }
    let mut with_orders = rules.clone();
    with_orders.orders = OrderRules {
        allow_symbols: vec!["BTCUSDT".to_owned(), "BTC-USDT".to_owned()],
        max_quantity: Decimal::parse("1.5").ok(),
        max_notional: Decimal::parse("100000").ok(),
        ..OrderRules::default()
    };
    for rules in [rules, with_orders] {
        if validate(Some(format), &rules).is_err() {
            continue;
        }
        let ctx = Context {
            now_ms: 1_700_000_000_000,
            api_key,
        };
        let judged = judge(Some(format), data, &rules, ctx);
        if parsed.is_err() {
            assert!(
                judged.is_err(),
                "{format:?}: judged a payload that does not parse"
            );
        }
    }
}
