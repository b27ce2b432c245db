//! The payload rules, judged over a [`ParsedRequest`]: fail closed, one reason per refusal.

use std::fmt;

use super::{Format, ParseError, ParsedRequest, excerpt};

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
