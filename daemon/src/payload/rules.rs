//! The payload rules, judged over a [`ParsedRequest`]: fail closed, one reason per refusal.

use std::fmt;

use super::{Decimal, Field, Format, OrderFields, ParseError, ParsedRequest, excerpt};

/// A key's payload rules, as plain data (the config module builds it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rules {
    /// Parameter names refused at any depth; matched ignoring case ([`fold`](super::fold)).
    pub(crate) deny_params: Vec<String>,
    /// When not empty, the signed path must be one of these: an entry ending in `/` is a
    /// prefix of whole segments, any other entry an exact path. Matched ignoring ASCII case.
    pub(crate) allow_paths: Vec<String>,
    /// Refused paths: any path that starts with an entry (so `/0/private/Withdraw` also
    /// refuses `/0/private/WithdrawCancel`). Matched ignoring ASCII case.
    pub(crate) deny_paths: Vec<String>,
    /// The signed timestamp (Coinbase: `nbf`) must be within ± this many ms of now.
    pub(crate) timestamp_window_ms: Option<u64>,
    /// Binance's recvWindow and Bybit's recv_window (the default 5000 when absent) must be at
    /// most this.
    pub(crate) max_recv_window_ms: Option<u64>,
    /// Coinbase JWT: `exp - nbf` must be at most this many seconds.
    pub(crate) max_token_lifetime_secs: Option<u64>,
    /// What orders this key may place (issue 17).
    pub(crate) orders: OrderRules,
}

/// A key's order rules: judged on every order in a request ([`ParsedRequest::orders`]);
/// a request with no order (a cancel, a query) passes them. Lists match exactly, in the
/// exchange's own spelling; limits are exact decimals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OrderRules {
    pub(crate) allow_symbols: Vec<String>,
    pub(crate) allow_sides: Vec<String>,
    pub(crate) allow_order_types: Vec<String>,
    /// Base-asset quantity (the exchange's contracts for derivatives).
    pub(crate) max_quantity: Option<Decimal>,
    /// Price × quantity, or a quote quantity, in the quote currency.
    pub(crate) max_notional: Option<Decimal>,
    /// Orders a minute, counted by the policy module (a batch counts each order).
    pub(crate) orders_per_minute: Option<u32>,
}

impl OrderRules {
    pub(crate) fn is_empty(&self) -> bool {
        self.allow_symbols.is_empty()
            && self.allow_sides.is_empty()
            && self.allow_order_types.is_empty()
            && self.max_quantity.is_none()
            && self.max_notional.is_none()
            && self.orders_per_minute.is_none()
    }

    /// The config name of the first rule set, for messages.
    pub(crate) fn first_set(&self) -> Option<&'static str> {
        [
            ("allow_symbols", !self.allow_symbols.is_empty()),
            ("allow_sides", !self.allow_sides.is_empty()),
            ("allow_order_types", !self.allow_order_types.is_empty()),
            ("max_quantity", self.max_quantity.is_some()),
            ("max_notional", self.max_notional.is_some()),
            ("orders_per_minute", self.orders_per_minute.is_some()),
        ]
        .into_iter()
        .find(|(_, set)| *set)
        .map(|(name, _)| name)
    }

    /// One line for the daemon's log: what this key may order.
    pub(crate) fn describe(&self) -> String {
        let list = |items: &[String]| {
            if items.is_empty() {
                "any".to_owned()
            } else {
                items.join(",")
            }
        };
        let limit = |value: &Option<Decimal>| {
            value
                .as_ref()
                .map_or_else(|| "none".to_owned(), Decimal::to_string)
        };
        format!(
            "allow_symbols={} allow_sides={} allow_order_types={} max_quantity={} max_notional={} orders_per_minute={}",
            list(&self.allow_symbols),
            list(&self.allow_sides),
            list(&self.allow_order_types),
            limit(&self.max_quantity),
            limit(&self.max_notional),
            self.orders_per_minute
                .map_or_else(|| "none".to_owned(), |n| n.to_string()),
        )
    }
}

/// The formats whose signed string shows an order's fields.
fn shows_orders(format: Format) -> bool {
    matches!(
        format,
        Format::Binance | Format::Bybit | Format::Okx | Format::Kucoin | Format::Bitget
    )
}

impl Rules {
    /// No rule at all: nothing to judge, so nothing is parsed.
    pub(crate) fn is_empty(&self) -> bool {
        self.deny_params.is_empty()
            && self.allow_paths.is_empty()
            && self.deny_paths.is_empty()
            && self.timestamp_window_ms.is_none()
            && self.max_recv_window_ms.is_none()
            && self.max_token_lifetime_secs.is_none()
            && self.orders.is_empty()
    }

    /// The first rule `format` cannot judge, by its config name.
    fn unjudgeable(&self, format: Format) -> Option<&'static str> {
        let sees_params = matches!(
            format,
            Format::Binance | Format::Bybit | Format::Okx | Format::Kucoin | Format::Bitget
        );
        let sees_path = matches!(
            format,
            Format::Okx | Format::Kucoin | Format::Bitget | Format::Kraken | Format::CoinbaseJwt
        );
        let paths = !self.allow_paths.is_empty() || !self.deny_paths.is_empty();
        if !self.deny_params.is_empty() && !sees_params {
            Some("deny_params")
        } else if paths && !sees_path {
            Some(if self.allow_paths.is_empty() {
                "deny_paths"
            } else {
                "allow_paths"
            })
        } else if self.timestamp_window_ms.is_some() && format == Format::Kraken {
            Some("timestamp_window_ms")
        } else if self.max_recv_window_ms.is_some()
            && !matches!(format, Format::Binance | Format::Bybit)
        {
            Some("max_recv_window_ms")
        } else if self.max_token_lifetime_secs.is_some() && format != Format::CoinbaseJwt {
            Some("max_token_lifetime_secs")
        } else if !shows_orders(format) {
            self.orders.first_set()
        } else {
            None
        }
    }
}

/// What a judgement needs besides the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Context<'a> {
    /// The daemon's clock, ms since the epoch.
    pub(crate) now_ms: u64,
    /// The key's stored API key id (Bybit signs it).
    pub(crate) api_key: Option<&'a str>,
}

/// Why a payload is refused. Each message is one line and quotes at most a short excerpt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum Refusal {
    /// The key has payload rules and no declared format.
    NoFormat,
    /// The key has payload rules and the format `raw`, which has no parse.
    RawWithRules,
    /// A rule that this format's signed string cannot show (e.g. deny_params on Kraken).
    NotJudgeable {
        rule: &'static str,
        format: Format,
    },
    /// The payload does not parse in the key's format.
    Unparsed {
        format: Format,
        error: ParseError,
    },
    DeniedParam {
        name: String,
    },
    DeniedPath {
        path: String,
    },
    PathNotAllowed {
        path: String,
    },
    /// A path rule is set and the payload signs no path (a Coinbase websocket JWT).
    NoPath,
    NoTimestamp {
        window_ms: u64,
    },
    Stale {
        skew_ms: u64,
        window_ms: u64,
    },
    RecvWindow {
        recv_window_ms: u64,
        max_ms: u64,
    },
    TokenLifetime {
        lifetime_secs: u64,
        max_secs: u64,
    },
    /// An order rule refused one order: which rule, and why (the field and its value).
    Order {
        /// `(index from 1, count)` when the request holds more than one order.
        position: Option<(usize, usize)>,
        rule: &'static str,
        why: String,
    },
    /// More orders than `orders_per_minute` allows in one request.
    TooManyOrders {
        orders: usize,
        per_minute: u32,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoFormat => f.write_str(
                "this key has payload rules but no payload format; set format in its config \
                 section or give the key one with --format",
            ),
            Refusal::RawWithRules => {
                f.write_str("this key's format is raw, which payload rules cannot judge")
            }
            Refusal::NotJudgeable { rule, format } => {
                write!(f, "{rule} cannot be judged on {format} payloads")
            }
            Refusal::Unparsed { format, error } => {
                write!(f, "payload is not a valid {format} signing string: {error}")
            }
            Refusal::DeniedParam { name } => {
                write!(
                    f,
                    "parameter {:?} is not allowed for this key",
                    excerpt(name)
                )
            }
            Refusal::DeniedPath { path } => {
                write!(f, "path {:?} is denied for this key", excerpt(path))
            }
            Refusal::PathNotAllowed { path } => {
                write!(
                    f,
                    "path {:?} is not in this key's allow_paths",
                    excerpt(path)
                )
            }
            Refusal::NoPath => f.write_str("this key has path rules and the payload signs no path"),
            Refusal::NoTimestamp { window_ms } => write!(
                f,
                "this key requires exactly one timestamp parameter within ±{window_ms} ms of now"
            ),
            Refusal::Stale { skew_ms, window_ms } => write!(
                f,
                "timestamp is {skew_ms} ms from the daemon's clock; this key allows ±{window_ms} ms"
            ),
            Refusal::RecvWindow {
                recv_window_ms,
                max_ms,
            } => write!(
                f,
                "receive window of {recv_window_ms} ms exceeds this key's limit of {max_ms} ms"
            ),
            Refusal::TokenLifetime {
                lifetime_secs,
                max_secs,
            } => write!(
                f,
                "JWT lives {lifetime_secs} s (exp - nbf); this key allows {max_secs} s"
            ),
            Refusal::Order {
                position,
                rule,
                why,
            } => {
                if let Some((index, count)) = position {
                    write!(f, "order {index} of {count}: ")?;
                }
                write!(f, "{rule}: {why}")
            }
            Refusal::TooManyOrders { orders, per_minute } => write!(
                f,
                "orders_per_minute: a request of {orders} orders exceeds this key's limit of {per_minute} a minute"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// A config mistake found by [`validate`]: the config field to name, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InvalidRules {
    /// The field of the policy section at fault, as the config file spells it.
    pub(crate) field: &'static str,
    /// One line, to follow `SECTION.FIELD: `.
    pub(crate) reason: String,
}

impl fmt::Display for InvalidRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Result<(), InvalidRules> {
    Err(InvalidRules {
        field,
        reason: reason.into(),
    })
}

/// Checks a policy section's format and rules together, at config load.
///
/// `format` is the section's own `format`, if it sets one. Then:
/// - `raw` with any rule is an error: raw has no parse.
/// - A rule the format's signed string cannot show is an error (deny_params on Kraken or
///   Coinbase, path rules on Binance or Bybit, timestamp_window_ms on Kraken,
///   max_recv_window_ms outside Binance and Bybit, max_token_lifetime_secs outside Coinbase).
///
/// A section without a format may have rules: each key it covers is judged in the format
/// stored with the key (`--format` at import or generate), and a key with neither refuses
/// every payload ([`Refusal::NoFormat`]). What can be checked here is that some format
/// could judge the rules together; if none can (say deny_paths with max_recv_window_ms),
/// every payload of every key would be refused, which is a mistake to report now.
pub(crate) fn validate(format: Option<Format>, rules: &Rules) -> Result<(), InvalidRules> {
    for (field, paths) in [
        ("allow_paths", &rules.allow_paths),
        ("deny_paths", &rules.deny_paths),
    ] {
        if let Some(path) = paths.iter().find(|path| !path.starts_with('/')) {
            return invalid(field, format!("{:?} must start with '/'", excerpt(path)));
        }
    }
    if rules.deny_params.iter().any(String::is_empty) {
        return invalid("deny_params", "holds an empty name");
    }
    if rules.is_empty() {
        return Ok(());
    }
    match format {
        Some(Format::Raw) => invalid(
            "format",
            "raw has no parse, so a section with format raw can have no payload rules",
        ),
        Some(format) => match rules.unjudgeable(format) {
            Some(rule) if rules.orders.first_set() == Some(rule) => invalid(
                rule,
                format!(
                    "order rules cannot be judged on {format} payloads: {}; see docs/POLICY.md",
                    match format {
                        Format::Kraken => "the order's fields are hashed, only the path is signed",
                        Format::CoinbaseJwt =>
                            "the JWT signs the path only, the order body is not signed",
                        _ => "the signed string does not show the order",
                    }
                ),
            ),
            Some(rule) => invalid(
                rule,
                format!(
                    "cannot be judged on {format} payloads: the signed string does not show it"
                ),
            ),
            None => Ok(()),
        },
        None => {
            let judgeable = Format::ALL
                .into_iter()
                .any(|format| format != Format::Raw && rules.unjudgeable(format).is_none());
            if judgeable {
                Ok(())
            } else {
                invalid(
                    "format",
                    "no payload format can judge all of this section's rules together \
                     (path rules and max_recv_window_ms, deny_params and \
                     max_token_lifetime_secs, ...); see docs/POLICY.md",
                )
            }
        }
    }
}

/// Judges one payload for a key with `format` (`None`: none declared) and `rules`.
///
/// `Ok(None)`: the key has no rules, so nothing was parsed. `Ok(Some(parsed))`: every rule
/// passed. Fails closed: rules without a format, rules on raw, a rule the format cannot show,
/// and any payload that does not parse are all refused.
pub(crate) fn judge(
    format: Option<Format>,
    payload: &[u8],
    rules: &Rules,
    ctx: Context<'_>,
) -> Result<Option<ParsedRequest>, Refusal> {
    if rules.is_empty() {
        return Ok(None);
    }
    let format = format.ok_or(Refusal::NoFormat)?;
    if format == Format::Raw {
        return Err(Refusal::RawWithRules);
    }
    if let Some(rule) = rules.unjudgeable(format) {
        return Err(Refusal::NotJudgeable { rule, format });
    }
    let parsed = super::parse(format, payload, ctx.api_key)
        .map_err(|error| Refusal::Unparsed { format, error })?
        .ok_or(Refusal::RawWithRules)?;
    check_params(&parsed, rules)?;
    check_paths(&parsed, rules)?;
    check_times(&parsed, rules, ctx.now_ms)?;
    check_orders(&parsed, &rules.orders)?;
    Ok(Some(parsed))
}

fn denied<'a>(rules: &'a Rules, name: &str) -> Option<&'a String> {
    let name = super::fold(name);
    rules
        .deny_params
        .iter()
        .find(|denied| super::fold(denied) == name)
}

fn check_params(parsed: &ParsedRequest, rules: &Rules) -> Result<(), Refusal> {
    for param in &parsed.params {
        if denied(rules, &param.name).is_some() {
            return Err(Refusal::DeniedParam {
                name: param.name.clone(),
            });
        }
    }
    if let Some(seam) = &parsed.seam {
        let seam = super::fold(seam);
        if let Some(name) = rules
            .deny_params
            .iter()
            .find(|name| seam.ends_with(&super::fold(name)))
        {
            return Err(Refusal::DeniedParam { name: name.clone() });
        }
    }
    Ok(())
}

fn check_paths(parsed: &ParsedRequest, rules: &Rules) -> Result<(), Refusal> {
    if rules.allow_paths.is_empty() && rules.deny_paths.is_empty() {
        return Ok(());
    }
    let path = parsed.path.as_deref().ok_or(Refusal::NoPath)?;
    let lower = path.to_ascii_lowercase();
    let starts = |entry: &String| lower.starts_with(&entry.to_ascii_lowercase());
    if rules.deny_paths.iter().any(starts) {
        return Err(Refusal::DeniedPath {
            path: path.to_owned(),
        });
    }
    let allowed = rules.allow_paths.iter().any(|entry| {
        if entry.ends_with('/') {
            starts(entry)
        } else {
            entry.eq_ignore_ascii_case(path)
        }
    });
    if !rules.allow_paths.is_empty() && !allowed {
        return Err(Refusal::PathNotAllowed {
            path: path.to_owned(),
        });
    }
    Ok(())
}

fn check_times(parsed: &ParsedRequest, rules: &Rules, now_ms: u64) -> Result<(), Refusal> {
    if let Some(window_ms) = rules.timestamp_window_ms {
        let stamp = parsed
            .timestamp_ms
            .ok_or(Refusal::NoTimestamp { window_ms })?;
        // A JWT's nbf is whole seconds: compare it with now in whole seconds.
        let now = if parsed.format == Format::CoinbaseJwt {
            now_ms / 1000 * 1000
        } else {
            now_ms
        };
        let skew_ms = now.abs_diff(stamp);
        if skew_ms > window_ms {
            return Err(Refusal::Stale { skew_ms, window_ms });
        }
    }
    if let Some(max_ms) = rules.max_recv_window_ms {
        let recv_window_ms = parsed.recv_window_ms.unwrap_or(u64::MAX);
        if recv_window_ms > max_ms {
            return Err(Refusal::RecvWindow {
                recv_window_ms,
                max_ms,
            });
        }
    }
    if let (Some(max_secs), Some(jwt)) = (rules.max_token_lifetime_secs, &parsed.jwt) {
        let lifetime_secs = jwt.exp.saturating_sub(jwt.nbf);
        if lifetime_secs > max_secs {
            return Err(Refusal::TokenLifetime {
                lifetime_secs,
                max_secs,
            });
        }
    }
    Ok(())
}

fn check_orders(parsed: &ParsedRequest, rules: &OrderRules) -> Result<(), Refusal> {
    if rules.is_empty() {
        return Ok(());
    }
    let count = parsed.orders.len();
    if let Some(per_minute) = rules.orders_per_minute
        && count > usize::try_from(per_minute).unwrap_or(usize::MAX)
    {
        return Err(Refusal::TooManyOrders {
            orders: count,
            per_minute,
        });
    }
    // A batch is refused whole when any one order is: the first refusal is the reason.
    for (index, order) in parsed.orders.iter().enumerate() {
        check_order(order, rules).map_err(|(rule, why)| Refusal::Order {
            position: (count > 1).then_some((index + 1, count)),
            rule,
            why,
        })?;
    }
    Ok(())
}

type OrderRefusal = (&'static str, String);

/// `name "value"` as a message quotes a field: the exchange's name, at most a short excerpt.
fn quoted(field: &Field) -> String {
    match &field.value {
        Some(value) => format!("{} {:?}", excerpt(&field.name), excerpt(value)),
        None => format!("{} (an object or array)", excerpt(&field.name)),
    }
}

fn check_listed(
    rule: &'static str,
    allowed: &[String],
    field: Option<&Field>,
    what: &str,
) -> Result<(), OrderRefusal> {
    if allowed.is_empty() {
        return Ok(());
    }
    let field = field.ok_or_else(|| (rule, format!("the order names no {what}")))?;
    if field
        .value
        .as_ref()
        .is_some_and(|value| allowed.iter().any(|entry| entry == value))
    {
        Ok(())
    } else {
        Err((
            rule,
            format!("{} is not allowed for this key", quoted(field)),
        ))
    }
}

/// The exact decimal in `field`, or a refusal naming `rule`.
fn decimal(rule: &'static str, field: &Field) -> Result<Decimal, OrderRefusal> {
    let value = field
        .value
        .as_deref()
        .ok_or_else(|| (rule, format!("{} is not a decimal", quoted(field))))?;
    Decimal::parse(value).map_err(|err| {
        (
            rule,
            format!("{} is not an exact decimal ({err})", quoted(field)),
        )
    })
}

fn check_order(order: &OrderFields, rules: &OrderRules) -> Result<(), OrderRefusal> {
    check_listed(
        "allow_symbols",
        &rules.allow_symbols,
        order.symbol.as_ref(),
        "symbol",
    )?;
    check_listed(
        "allow_sides",
        &rules.allow_sides,
        order.side.as_ref(),
        "side",
    )?;
    check_listed(
        "allow_order_types",
        &rules.allow_order_types,
        order.order_type.as_ref(),
        "order type",
    )?;
    if let Some(max) = &rules.max_quantity {
        const RULE: &str = "max_quantity";
        let field = order.quantity.as_ref().ok_or_else(|| {
            (
                RULE,
                match &order.quote_quantity {
                    Some(quote) => format!(
                        "the order is sized in the quote currency ({}), so its base quantity cannot be known",
                        quoted(quote)
                    ),
                    None => "the order gives no quantity".to_owned(),
                },
            )
        })?;
        let quantity = decimal(RULE, field)?;
        if &quantity > max {
            return Err((
                RULE,
                format!(
                    "{} {quantity} exceeds this key's limit of {max}",
                    excerpt(&field.name)
                ),
            ));
        }
    }
    if let Some(max) = &rules.max_notional {
        const RULE: &str = "max_notional";
        if let Some(field) = &order.quote_quantity {
            let quote = decimal(RULE, field)?;
            if &quote > max {
                return Err((
                    RULE,
                    format!(
                        "{} {quote} exceeds this key's limit of {max}",
                        excerpt(&field.name)
                    ),
                ));
            }
        }
        match (&order.quantity, &order.price) {
            (None, _) if order.quote_quantity.is_some() => {}
            (None, _) => return Err((RULE, "the order gives no quantity".to_owned())),
            (Some(quantity_field), Some(price)) if order.price_binds => {
                let quantity = decimal(RULE, quantity_field)?;
                let price_value = decimal(RULE, price)?;
                let notional = price_value.mul(&quantity);
                if &notional > max {
                    return Err((
                        RULE,
                        format!(
                            "{} {price_value} × {} {quantity} = {notional} exceeds this key's limit of {max}",
                            excerpt(&price.name),
                            excerpt(&quantity_field.name)
                        ),
                    ));
                }
            }
            (Some(_), _) => {
                let kind = order
                    .order_type
                    .as_ref()
                    .map_or_else(|| "no order type".to_owned(), quoted);
                return Err((
                    RULE,
                    format!(
                        "an order without a limit price ({kind}) has a notional that cannot be known"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The rules' view of where each parameter sits, for messages and tests.
#[cfg(test)]
pub(crate) fn names_at_depth(parsed: &ParsedRequest, depth: usize) -> Vec<&str> {
    parsed
        .params
        .iter()
        .filter(|param| param.place == super::Place::Json { depth })
        .map(|param| param.name.as_str())
        .collect()
}
