//! The timestamp notations the exchanges sign.

/// Exactly 13 digits, no leading zero: milliseconds since the epoch (2001 to 2286), as
/// Bybit, KuCoin and Bitget send them.
pub(crate) fn millis13(text: &[u8]) -> Option<u64> {
    if text.len() != 13 || text[0] == b'0' {
        return None;
    }
    digits(text)
}

/// Binance: 13 digits of milliseconds or 16 of microseconds (General API Information:
/// "timestamp ... either in milliseconds or microseconds"); returns milliseconds.
pub(crate) fn binance(text: &[u8]) -> Option<u64> {
    match text.len() {
        13 => millis13(text),
        16 if text[0] != b'0' => digits(text).map(|micros| micros / 1000),
        _ => None,
    }
}

/// `YYYY-MM-DDTHH:MM:SS.sssZ` exactly (OKX: "ISO format with milliseconds, e.g.
/// 2020-12-08T09:08:57.715Z"); returns milliseconds since the epoch.
pub(crate) fn iso8601_millis(text: &[u8]) -> Option<u64> {
    if text.len() != 24 {
        return None;
    }
    let shape = b"dddd-dd-ddTdd:dd:dd.dddZ";
    for (&byte, &want) in text.iter().zip(shape) {
        let ok = if want == b'd' {
            byte.is_ascii_digit()
        } else {
            byte == want
        };
        if !ok {
            return None;
        }
    }
    let num = |range: std::ops::Range<usize>| digits(&text[range]);
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second, millis) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    if year < 1970 || !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let month_index = usize::try_from(month - 1).ok()?;
    if day == 0 || day > month_days[month_index] {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some((((days * 24 + hour) * 60 + minute) * 60 + second) * 1000 + millis)
}

/// Days from 1970-01-01 to the given date (Howard Hinnant's algorithm, years >= 1970).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let month_from_march = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// All ASCII digits, as a number (no overflow: callers pass at most 16 digits).
pub(crate) fn digits(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 19 {
        return None;
    }
    text.iter().try_fold(0u64, |acc, &byte| {
        byte.is_ascii_digit()
            .then(|| acc * 10 + u64::from(byte - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_timestamps_convert_to_epoch_millis() {
        // OKX's documented example; `date -u -d 2020-12-08T09:08:57.715Z +%s%3N`.
        assert_eq!(
            iso8601_millis(b"2020-12-08T09:08:57.715Z"),
            Some(1_607_418_537_715)
        );
        assert_eq!(iso8601_millis(b"1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            iso8601_millis(b"2024-02-29T23:59:59.999Z"),
            Some(1_709_251_199_999)
        );
        for bad in [
            "2020-12-08T09:08:57.715",
            "2020-12-08T09:08:57Z",
            "2020-12-08T09:08:57.7150Z",
            "2020-12-08 09:08:57.715Z",
            "2020-12-08t09:08:57.715z",
            "2020-12-08T09:08:57.715+00:00",
            "2023-02-29T00:00:00.000Z",
            "2020-13-08T09:08:57.715Z",
            "2020-12-08T24:08:57.715Z",
            "+020-12-08T09:08:57.715Z",
        ] {
            assert_eq!(iso8601_millis(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn millisecond_and_microsecond_forms() {
        assert_eq!(millis13(b"1499827319559"), Some(1_499_827_319_559));
        assert_eq!(millis13(b"0499827319559"), None);
        assert_eq!(millis13(b"149982731955"), None);
        assert_eq!(millis13(b"14998273195590"), None);
        assert_eq!(binance(b"1499827319559000"), Some(1_499_827_319_559));
        assert_eq!(binance(b"14998273195590"), None);
        assert_eq!(binance(b"1499827319559+"), None);
    }
}
