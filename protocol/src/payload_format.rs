//! Payload formats: how a key's exchange builds the string it signs.

use core::{fmt, str::FromStr};
use serde::{Deserialize, Serialize};

/// How a key's exchange builds the string it signs. The daemon's payload rules judge a
/// strict parse of each payload in this format (docs/POLICY.md gives each grammar).
///
/// The wire form is the variant index (postcard); the text form (`Display`/`FromStr`) is the
/// name used by the CLI, the config file and docs/PROTOCOL.md. Deliberately exhaustive: a
/// new format needs a parser in the daemon and is a protocol version change. Self-describing
/// serde formats (JSON, TOML) spell it by name; postcard ignores names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PayloadFormat {
    /// 0: `query`, or `query` + `body` (both form-encoded), concatenated with no separator.
    Binance,
    /// 1: Bybit v5: `timestamp + api_key + recv_window + (query | JSON body)`.
    Bybit,
    /// 2: `ISO-8601 timestamp + METHOD + path[?query] + [JSON body]`.
    Okx,
    /// 3: `ms timestamp + METHOD + path[?query] + [JSON body]`.
    Kucoin,
    /// 4: `ms timestamp + METHOD + path[?query] + [JSON body]`.
    Bitget,
    /// 5: `URI path + SHA-256(nonce + POST data)` (32 raw bytes).
    Kraken,
    /// 6: the JWT signing input `base64url(header).base64url(claims)` of a Coinbase CDP key.
    CoinbaseJwt,
    /// 7: no parse: any bytes. A raw key may have no payload rules.
    Raw,
}

impl PayloadFormat {
    /// Every format, in wire order.
    pub const ALL: [PayloadFormat; 8] = [
        PayloadFormat::Binance,
        PayloadFormat::Bybit,
        PayloadFormat::Okx,
        PayloadFormat::Kucoin,
        PayloadFormat::Bitget,
        PayloadFormat::Kraken,
        PayloadFormat::CoinbaseJwt,
        PayloadFormat::Raw,
    ];

    /// The format's name, e.g. `coinbase-jwt`.
    pub fn name(self) -> &'static str {
        match self {
            PayloadFormat::Binance => "binance",
            PayloadFormat::Bybit => "bybit",
            PayloadFormat::Okx => "okx",
            PayloadFormat::Kucoin => "kucoin",
            PayloadFormat::Bitget => "bitget",
            PayloadFormat::Kraken => "kraken",
            PayloadFormat::CoinbaseJwt => "coinbase-jwt",
            PayloadFormat::Raw => "raw",
        }
    }
}

impl fmt::Display for PayloadFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A payload format name that is not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPayloadFormat(pub String);

impl fmt::Display for UnknownPayloadFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // At most 32 characters of what was given: it came from a file or a command line.
        let shown: String = self.0.chars().take(32).collect();
        let more = if shown.len() < self.0.len() {
            "..."
        } else {
            ""
        };
        write!(
            f,
            "unknown payload format \"{}{more}\"; expected one of ",
            shown.escape_debug()
        )?;
        for (i, format) in PayloadFormat::ALL.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{format}")?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownPayloadFormat {}

impl FromStr for PayloadFormat {
    type Err = UnknownPayloadFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PayloadFormat::ALL
            .into_iter()
            .find(|format| format.name() == s)
            .ok_or_else(|| UnknownPayloadFormat(s.to_owned()))
    }
}
