//! OKX v5 REST: the `OK-ACCESS-*` headers.
//!
//! OKX signs `timestamp + method + requestPath + body` with HMAC-SHA256 and sends the
//! signature base64; the timestamp is ISO 8601 with milliseconds (`2020-12-08T09:08:57.715Z`)
//! and GET parameters belong to the request path (OKX API v5, REST Authentication). The
//! daemon's `okx` format parses exactly that string.
//!
//! `OK-ACCESS-PASSPHRASE` is the passphrase chosen when the API key was created, sent as
//! is: it is not a signing secret, and the bot passes it in.

use super::{Headers, HttpRequest, Options, prefixed};
use crate::{Client, Error};

/// The string OKX signs for `request` at `timestamp_ms`.
pub fn signing_string(timestamp_ms: u64, request: &HttpRequest<'_>) -> Result<String, Error> {
    prefixed::signing_string(&iso_timestamp(timestamp_ms), request)
}

/// Signs `request` with the key named `key` and returns the headers OKX expects:
/// `OK-ACCESS-KEY`, `OK-ACCESS-SIGN`, `OK-ACCESS-TIMESTAMP`, `OK-ACCESS-PASSPHRASE`.
pub fn headers(
    client: &mut Client,
    key: &str,
    request: &HttpRequest<'_>,
    passphrase: &str,
    options: &Options<'_>,
) -> Result<Headers, Error> {
    let timestamp = iso_timestamp(options.timestamp());
    let payload = prefixed::signing_string(&timestamp, request)?;
    let api_key = options.api_key_for(client, key)?;
    let signature = client.sign(key, payload.as_bytes())?;
    Ok(vec![
        ("OK-ACCESS-KEY", api_key),
        ("OK-ACCESS-SIGN", signature.to_base64()),
        ("OK-ACCESS-TIMESTAMP", timestamp),
        ("OK-ACCESS-PASSPHRASE", passphrase.to_owned()),
    ])
}

/// `YYYY-MM-DDTHH:MM:SS.sssZ` for milliseconds since the epoch (UTC).
pub fn iso_timestamp(timestamp_ms: u64) -> String {
    let millis = timestamp_ms % 1000;
    let seconds = timestamp_ms / 1000;
    let (day, second_of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day_of_month) = civil_from_days(day);
    format!(
        "{year:04}-{month:02}-{day_of_month:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// The date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`, days >= 0).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn iso_timestamps_of_known_instants() {
        // OKX's documented example; `date -u -d @1607418537.715 +%FT%T.%3NZ`.
        assert_eq!(iso_timestamp(1_607_418_537_715), "2020-12-08T09:08:57.715Z");
        assert_eq!(iso_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_timestamp(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(iso_timestamp(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso_timestamp(4_102_444_800_001), "2100-01-01T00:00:00.001Z");
    }

    #[test]
    fn okxs_documented_signing_string() {
        // OKX API v5, REST Authentication: "2020-12-08T09:08:57.715ZGET/api/v5/account/balance?ccy=BTC".
        let request = HttpRequest::get("/api/v5/account/balance", "ccy=BTC");
        assert_eq!(
            signing_string(1_607_418_537_715, &request).unwrap(),
            "2020-12-08T09:08:57.715ZGET/api/v5/account/balance?ccy=BTC"
        );
    }
}
