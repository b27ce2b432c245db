//! Exact non-negative decimals for the order rules: `max_quantity`, `max_notional` and the
//! order fields they judge are compared digit by digit, never through a float, so that
//! `0.1 + 0.2` style rounding cannot carry a value past a limit.
//!
//! Why not a crate: `rust_decimal` holds 28 significant digits (96-bit mantissa), so a
//! 64-character JSON number or the product of two does not fit and `from_str` rounds what does
//! not; `bigdecimal` accepts exponents and signs that an order field must not carry. What the
//! rules need is small: parse one strict grammar, multiply two values, compare.
//!
//! The grammar is the one exchanges document for their decimal strings, and the only one
//! accepted: `(0|[1-9][0-9]*)(\.[0-9]+)?`, at most [`MAX_LEN`] characters. Refused: signs
//! (`-1`, `+1`), exponents (`1e3`, which a JSON number may carry), leading zeros (`01`,
//! which a server may read as octal or reject), a bare point (`.5`, `5.`), whitespace,
//! `_` separators, `NaN`/`Infinity`, and anything else.

use std::cmp::Ordering;
use std::fmt;

/// The longest decimal text accepted: the JSON parser's cap on numbers.
pub(crate) const MAX_LEN: usize = 64;

/// An exact non-negative decimal: `digits × 10^-scale`, normalised (no leading zeros in
/// `digits`, no trailing zeros in the fraction), so that equal values are equal structs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Decimal {
    /// Most significant first, each 0..=9; empty for zero.
    digits: Vec<u8>,
    /// How many of `digits` are after the point.
    scale: usize,
}

/// Why a text is not a decimal in the rules' grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecimalError {
    Empty,
    TooLong,
    Sign,
    Exponent,
    LeadingZero,
    BarePoint,
    NotADigit,
}

impl fmt::Display for DecimalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecimalError::Empty => "empty",
            DecimalError::TooLong => "longer than 64 characters",
            DecimalError::Sign => "a sign is not allowed",
            DecimalError::Exponent => "an exponent is not allowed",
            DecimalError::LeadingZero => "a leading zero is not allowed",
            DecimalError::BarePoint => "a point needs digits on both sides",
            DecimalError::NotADigit => "only digits and one '.' are allowed",
        })
    }
}

impl std::error::Error for DecimalError {}

impl Decimal {
    /// Parses the strict grammar above.
    pub(crate) fn parse(text: &str) -> Result<Decimal, DecimalError> {
        let bytes = text.as_bytes();
        if bytes.is_empty() {
            return Err(DecimalError::Empty);
        }
        if bytes.len() > MAX_LEN {
            return Err(DecimalError::TooLong);
        }
        if matches!(bytes[0], b'-' | b'+') {
            return Err(DecimalError::Sign);
        }
        if !bytes
            .iter()
            .all(|&b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        {
            return Err(DecimalError::NotADigit);
        }
        if bytes.iter().any(|&b| b == b'e' || b == b'E') {
            return Err(DecimalError::Exponent);
        }
        let (whole, fraction) = match bytes.iter().position(|&b| b == b'.') {
            Some(dot) => (&bytes[..dot], Some(&bytes[dot + 1..])),
            None => (bytes, None),
        };
        let all_digits = |part: &[u8]| part.iter().all(u8::is_ascii_digit);
        if whole.is_empty() || fraction.is_some_and(<[u8]>::is_empty) {
            return Err(DecimalError::BarePoint);
        }
        if !all_digits(whole) || !fraction.is_none_or(all_digits) {
            return Err(DecimalError::NotADigit);
        }
        if whole.len() > 1 && whole[0] == b'0' {
            return Err(DecimalError::LeadingZero);
        }
        let fraction = fraction.unwrap_or_default();
        let digits: Vec<u8> = whole.iter().chain(fraction).map(|&b| b - b'0').collect();
        Ok(Decimal::normalised(digits, fraction.len()))
    }

    fn normalised(mut digits: Vec<u8>, mut scale: usize) -> Decimal {
        while scale > 0 && digits.last() == Some(&0) {
            digits.pop();
            scale -= 1;
        }
        let leading = digits.iter().take_while(|&&d| d == 0).count();
        digits.drain(..leading);
        if digits.is_empty() {
            scale = 0;
        }
        Decimal { digits, scale }
    }

    /// The exact product.
    pub(crate) fn mul(&self, other: &Decimal) -> Decimal {
        if self.digits.is_empty() || other.digits.is_empty() {
            return Decimal {
                digits: Vec::new(),
                scale: 0,
            };
        }
        // Schoolbook multiplication, least significant first; at most 64 digits each.
        let a: Vec<u32> = self.digits.iter().rev().map(|&d| u32::from(d)).collect();
        let b: Vec<u32> = other.digits.iter().rev().map(|&d| u32::from(d)).collect();
        let mut out = vec![0u32; a.len() + b.len()];
        for (i, &x) in a.iter().enumerate() {
            let mut carry = 0;
            for (j, &y) in b.iter().enumerate() {
                let total = out[i + j] + x * y + carry;
                out[i + j] = total % 10;
                carry = total / 10;
            }
            let mut k = i + b.len();
            while carry > 0 {
                let total = out[k] + carry;
                out[k] = total % 10;
                carry = total / 10;
                k += 1;
            }
        }
        // Each entry is a digit 0..=9 after the carries.
        let digits = out
            .iter()
            .rev()
            .map(|&d| u8::try_from(d).unwrap_or(9))
            .collect();
        Decimal::normalised(digits, self.scale + other.scale)
    }

    /// The power of ten of the most significant digit (meaningless for zero).
    fn top_power(&self) -> isize {
        self.digits.len() as isize - 1 - self.scale as isize
    }

    /// The digit at `10^power` (power may be negative), 0 outside the digits.
    fn digit_at(&self, power: isize) -> u8 {
        let index = self.top_power() - power;
        if index < 0 {
            return 0;
        }
        self.digits.get(index as usize).copied().unwrap_or(0)
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Decimal) -> Ordering {
        match (self.digits.is_empty(), other.digits.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        // Normalised, the leading digit is non-zero: a higher top power is a larger number.
        match self.top_power().cmp(&other.top_power()) {
            Ordering::Equal => {}
            unequal => return unequal,
        }
        let low = -(self.scale.max(other.scale) as isize);
        let mut power = self.top_power();
        while power >= low {
            match self.digit_at(power).cmp(&other.digit_at(power)) {
                Ordering::Equal => power -= 1,
                unequal => return unequal,
            }
        }
        Ordering::Equal
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Decimal) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.digits.is_empty() {
            return f.write_str("0");
        }
        let text: String = self.digits.iter().map(|d| char::from(b'0' + d)).collect();
        if self.scale == 0 {
            return f.write_str(&text);
        }
        if self.scale >= text.len() {
            // 0.000123: zeros between the point and the first digit.
            return write!(f, "0.{}{text}", "0".repeat(self.scale - text.len()));
        }
        let (whole, fraction) = text.split_at(text.len() - self.scale);
        write!(f, "{whole}.{fraction}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(text: &str) -> Decimal {
        Decimal::parse(text).unwrap()
    }

    #[test]
    fn the_grammar_refuses_each_ambiguous_spelling() {
        let cases: &[(&str, DecimalError)] = &[
            ("", DecimalError::Empty),
            ("-1", DecimalError::Sign),
            ("+1", DecimalError::Sign),
            ("-0", DecimalError::Sign),
            ("1e3", DecimalError::Exponent),
            ("1E-3", DecimalError::Exponent),
            ("0.1e1", DecimalError::Exponent),
            ("01", DecimalError::LeadingZero),
            ("00.5", DecimalError::LeadingZero),
            (".5", DecimalError::BarePoint),
            ("5.", DecimalError::BarePoint),
            (".", DecimalError::BarePoint),
            ("1.2.3", DecimalError::NotADigit),
            (" 1", DecimalError::NotADigit),
            ("1 ", DecimalError::NotADigit),
            ("1_000", DecimalError::NotADigit),
            ("1,5", DecimalError::NotADigit),
            ("NaN", DecimalError::NotADigit),
            ("Infinity", DecimalError::NotADigit),
            ("0x10", DecimalError::NotADigit),
            ("١", DecimalError::NotADigit),
        ];
        for (text, expected) in cases {
            assert_eq!(Decimal::parse(text), Err(*expected), "{text:?}");
        }
        assert_eq!(Decimal::parse(&"1".repeat(65)), Err(DecimalError::TooLong));
        assert!(Decimal::parse(&"1".repeat(64)).is_ok());
    }

    #[test]
    fn equal_values_compare_equal_whatever_the_trailing_zeros() {
        assert_eq!(d("1.50"), d("1.5"));
        assert_eq!(d("0.000"), d("0"));
        assert_eq!(d("10"), d("10.0"));
        assert_eq!(d("1.5").to_string(), "1.5");
        assert_eq!(d("0.000120").to_string(), "0.00012");
        assert_eq!(d("100").to_string(), "100");
        assert_eq!(d("0").to_string(), "0");
    }

    #[test]
    fn comparisons_are_exact() {
        assert!(d("0.30000000000000000001") > d("0.3"));
        assert!(d("0.29999999999999999999") < d("0.3"));
        assert!(d("1000.0000000001") > d("1000"));
        assert!(d("999.9999999999") < d("1000"));
        assert!(d("10") > d("9.99"));
        assert!(d("0.1") > d("0.09"));
        assert!(d("0") < d("0.0000001"));
        // 0.1 × 3 is exactly 0.3 (a float says 0.30000000000000004).
        assert_eq!(d("0.1").mul(&d("3")), d("0.3"));
        assert_eq!(d("0.1").mul(&d("0.2")), d("0.02"));
        assert_eq!(d("60000.01").mul(&d("0.5")), d("30000.005"));
        assert_eq!(d("0").mul(&d("5")), d("0"));
        let big = "9".repeat(64);
        let product = d(&big).mul(&d(&big));
        assert!(product > d(&big));
        assert_eq!(product.to_string().len(), 128);
    }

    /// A decimal text in the grammar: whole part, optional fraction.
    fn decimal_text() -> impl Strategy<Value = String> {
        ("(0|[1-9][0-9]{0,18})", proptest::option::of("[0-9]{1,18}")).prop_map(
            |(whole, fraction)| match fraction {
                Some(fraction) => format!("{whole}.{fraction}"),
                None => whole,
            },
        )
    }

    /// `text` as an exact rational: (numerator, power of ten of the denominator), as u128
    /// for texts of at most 19 + 18 digits.
    fn rational(text: &str) -> (u128, u32) {
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let numerator = format!("{whole}{fraction}").parse::<u128>().unwrap();
        (numerator, u32::try_from(fraction.len()).unwrap())
    }

    fn rational_cmp(a: &str, b: &str) -> Ordering {
        let ((na, sa), (nb, sb)) = (rational(a), rational(b));
        // Bring both to the larger scale: at most 40 digits, within u128 when the scale
        // difference is small; use checked arithmetic and a digit compare when not.
        let scale = sa.max(sb);
        let widen = |n: u128, s: u32| {
            n.checked_mul(10u128.pow(scale - s))
                .map(|n| format!("{n:0>80}"))
                .unwrap_or_else(|| format!("{n}{}", "0".repeat((scale - s) as usize)))
        };
        let (wa, wb) = (widen(na, sa), widen(nb, sb));
        let pad = |s: String| format!("{s:0>120}");
        pad(wa).cmp(&pad(wb))
    }

    proptest! {
        /// The ordering is the ordering of the exact values, checked against an
        /// independent rational comparison.
        #[test]
        fn ordering_matches_exact_rationals(a in decimal_text(), b in decimal_text()) {
            prop_assert_eq!(d(&a).cmp(&d(&b)), rational_cmp(&a, &b), "{} vs {}", a, b);
        }

        /// Whatever text is accepted under a limit is not beyond it: a value at or under
        /// the limit by the rules' comparison is at or under it as an exact rational.
        #[test]
        fn no_accepted_text_is_beyond_the_limit(limit in decimal_text(), value in decimal_text()) {
            if d(&value) <= d(&limit) {
                prop_assert_ne!(rational_cmp(&value, &limit), Ordering::Greater);
            }
        }

        /// Display round-trips, and parsing never panics on arbitrary text.
        #[test]
        fn display_round_trips(text in decimal_text(), junk in "\\PC{0,70}") {
            let value = d(&text);
            prop_assert_eq!(d(&value.to_string()), value);
            let _ = Decimal::parse(&junk);
        }

        /// The product is exact: a × b compared with an integer product of the numerators.
        #[test]
        fn products_are_exact(a in "[1-9][0-9]{0,8}(\\.[0-9]{1,8})?", b in "[1-9][0-9]{0,8}(\\.[0-9]{1,8})?") {
            let ((na, sa), (nb, sb)) = (rational(&a), rational(&b));
            let product = na * nb;
            let scale = (sa + sb) as usize;
            let text = format!("{product:0>width$}", width = scale + 1);
            let (whole, fraction) = text.split_at(text.len() - scale);
            let expected = if scale == 0 { whole.to_owned() } else { format!("{whole}.{fraction}") };
            let whole_trimmed = expected.trim_start_matches('0');
            let expected = if whole_trimmed.starts_with('.') || whole_trimmed.is_empty() {
                format!("0{whole_trimmed}")
            } else {
                whole_trimmed.to_owned()
            };
            prop_assert_eq!(d(&a).mul(&d(&b)), d(&expected));
        }
    }
}
