//! Strict `application/x-www-form-urlencoded` parsing, for Binance's parameters and for the
//! query strings of the other formats.
//!
//! Stricter than `form_urlencoded::parse`, which never fails: every pair is `name=value` with
//! a non-empty name and exactly one raw `=`; no empty pairs (`a=1&&b=2`, a trailing `&`);
//! only printable ASCII raw (anything else must be percent-encoded, as Binance requires);
//! `%` must start a valid escape; the decoded text must be UTF-8; `+` is a space, as every
//! form decoder reads it; and a name that appears twice (ignoring ASCII case) is refused.

use super::{ParseError, ParseErrorKind};

/// One decoded pair, with the offset of its first byte in the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pair {
    pub(crate) name: String,
    pub(crate) value: String,
    pub(crate) at: usize,
}

/// Parses a whole form; `offset` is where `text` starts in the payload. An empty text is an
/// empty form.
pub(crate) fn parse(text: &[u8], offset: usize) -> Result<Vec<Pair>, ParseError> {
    let mut pairs = Vec::new();
    if text.is_empty() {
        return Ok(pairs);
    }
    let mut at = offset;
    for segment in text.split(|&byte| byte == b'&') {
        pairs.push(pair(segment, at)?);
        at += segment.len() + 1;
    }
    refuse_duplicates(&pairs)?;
    Ok(pairs)
}

/// One `name=value` segment.
pub(crate) fn pair(segment: &[u8], at: usize) -> Result<Pair, ParseError> {
    let mut parts = segment.splitn(2, |&byte| byte == b'=');
    let name = parts.next().unwrap_or_default();
    let Some(value) = parts.next() else {
        return Err(ParseError::new(at, ParseErrorKind::BadPair));
    };
    if name.is_empty() {
        return Err(ParseError::new(at, ParseErrorKind::BadPair));
    }
    if let Some(eq) = value.iter().position(|&byte| byte == b'=') {
        return Err(ParseError::new(
            at + name.len() + 1 + eq,
            ParseErrorKind::BadPair,
        ));
    }
    Ok(Pair {
        name: decode(name, at)?,
        value: decode(value, at + name.len() + 1)?,
        at,
    })
}

/// Refuses a name that appears twice, ignoring case ([`fold`](super::fold)): a server may
/// match either way.
pub(crate) fn refuse_duplicates(pairs: &[Pair]) -> Result<(), ParseError> {
    for (i, later) in pairs.iter().enumerate() {
        let folded = super::fold(&later.name);
        if pairs[..i]
            .iter()
            .any(|earlier| super::fold(&earlier.name) == folded)
        {
            return Err(ParseError::new(
                later.at,
                ParseErrorKind::Duplicate(later.name.clone()),
            ));
        }
    }
    Ok(())
}

/// Percent-decodes one name or value (`+` is a space). `offset` locates errors.
pub(crate) fn decode(text: &[u8], offset: usize) -> Result<String, ParseError> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'%' => {
                let hex = |at: usize| text.get(at).and_then(|&b| char::from(b).to_digit(16));
                let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2)) else {
                    return Err(ParseError::new(
                        offset + i,
                        ParseErrorKind::BadPercentEscape,
                    ));
                };
                // Two hex digits: at most 0xff.
                out.push(u8::try_from(high * 16 + low).unwrap_or(u8::MAX));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte @ (b'&' | b'=' | b'#') | byte @ (0..=0x20 | 0x7f..=0xff) => {
                return Err(ParseError::new(offset + i, ParseErrorKind::RawByte(byte)));
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| ParseError::new(offset, ParseErrorKind::InvalidUtf8))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> ParseErrorKind {
        parse(text.as_bytes(), 0).unwrap_err().kind
    }

    #[test]
    fn pairs_decode_and_keep_their_order() {
        let pairs = parse(b"a=1&addr%65ss=T%2Bx&b=hello+world&c=", 0).unwrap();
        let decoded: Vec<_> = pairs
            .iter()
            .map(|p| (p.name.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(
            decoded,
            [
                ("a", "1"),
                ("address", "T+x"),
                ("b", "hello world"),
                ("c", "")
            ]
        );
        assert_eq!(parse(b"", 0).unwrap(), []);
    }

    #[test]
    fn each_strictness_rule_has_its_own_error() {
        let cases: &[(&str, ParseErrorKind)] = &[
            ("a=1&a=2", ParseErrorKind::Duplicate("a".into())),
            ("a=1&%61=2", ParseErrorKind::Duplicate("a".into())),
            (
                "timestamp=1&TimeStamp=2",
                ParseErrorKind::Duplicate("TimeStamp".into()),
            ),
            ("a=1&&b=2", ParseErrorKind::BadPair),
            ("a=1&", ParseErrorKind::BadPair),
            ("&a=1", ParseErrorKind::BadPair),
            ("a", ParseErrorKind::BadPair),
            ("=1", ParseErrorKind::BadPair),
            ("a=1=2", ParseErrorKind::BadPair),
            ("a=%4", ParseErrorKind::BadPercentEscape),
            ("a=%zz", ParseErrorKind::BadPercentEscape),
            ("a=%ff", ParseErrorKind::InvalidUtf8),
            ("a=b c", ParseErrorKind::RawByte(b' ')),
            ("a=b#c", ParseErrorKind::RawByte(b'#')),
            ("a=\u{e9}", ParseErrorKind::RawByte(0xc3)),
            ("a=b\nc", ParseErrorKind::RawByte(b'\n')),
        ];
        for (text, expected) in cases {
            assert_eq!(&kind(text), expected, "{text:?}");
        }
        assert_eq!(
            parse(b"a=1&b=%zz", 7).unwrap_err(),
            ParseError::new(13, ParseErrorKind::BadPercentEscape)
        );
    }
}
