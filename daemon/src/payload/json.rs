//! A strict JSON parser (RFC 8259) for request bodies, written for judging rather than for
//! reading data: duplicate keys are refused (after unescaping, ignoring case), numbers
//! keep their text, nesting is capped, and nothing may follow the document.
//!
//! Why not serde_json: it keeps the last of two duplicate keys silently (an exchange may read
//! the first), turns numbers into floats unless a crate-wide feature changes every user of
//! it, and reports no byte offset that a caller can add to. The tests check this parser
//! against serde_json on random documents (whatever this one accepts, serde_json accepts with
//! the same meaning).

use super::{ParseError, ParseErrorKind};

/// Objects and arrays nested deeper than this are refused: no exchange body comes close
/// (OKX batch orders: an array of objects, depth 2), and recursion stays bounded.
pub(crate) const MAX_DEPTH: usize = 32;

/// A number longer than this is refused; 64 characters hold any price or quantity.
const MAX_NUMBER_LEN: usize = 64;

/// A parsed JSON value. Object members keep their order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    /// The number's own text, strict per RFC 8259.
    Number(String),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The text of a scalar (a string's contents, a number's text, `true`, `false`, `null`);
    /// `None` for an array or an object.
    pub(crate) fn scalar_text(&self) -> Option<String> {
        match self {
            Value::Null => Some("null".to_owned()),
            Value::Bool(value) => Some(value.to_string()),
            Value::Number(text) | Value::String(text) => Some(text.clone()),
            Value::Array(_) | Value::Object(_) => None,
        }
    }

    /// Calls `visit(key, value, depth)` for every object member at any depth, depth 1 being
    /// the members of a top-level object (or of the objects in a top-level array).
    pub(crate) fn walk(&self, visit: &mut impl FnMut(&str, &Value, usize)) {
        self.walk_at(visit, 1);
    }

    fn walk_at(&self, visit: &mut impl FnMut(&str, &Value, usize), depth: usize) {
        match self {
            Value::Object(members) => {
                for (key, value) in members {
                    visit(key, value, depth);
                    value.walk_at(visit, depth + 1);
                }
            }
            Value::Array(items) => {
                for item in items {
                    item.walk_at(visit, depth);
                }
            }
            _ => {}
        }
    }
}

/// Parses `text` as one JSON object or array, with no whitespace around it and nothing after.
/// Errors carry offsets into `text` plus `offset`.
pub(crate) fn parse_body(text: &[u8], offset: usize) -> Result<Value, ParseError> {
    let text = super::utf8(text, offset)?;
    let mut parser = Parser {
        text: text.as_bytes(),
        pos: 0,
    };
    let value = match parser.peek() {
        Some(b'{' | b'[') => parser.value(0),
        Some(_) => Err(parser.error(ParseErrorKind::Expected("a JSON object or array"))),
        None => Err(parser.error(ParseErrorKind::UnexpectedEnd("the JSON body"))),
    }
    .map_err(|err| err.shifted(offset))?;
    if parser.pos != parser.text.len() {
        return Err(ParseError::new(
            offset + parser.pos,
            ParseErrorKind::TrailingData,
        ));
    }
    Ok(value)
}

/// Parses `text` as one JSON object (a JWT's header or claims).
pub(crate) fn parse_object(text: &[u8], offset: usize) -> Result<Vec<(String, Value)>, ParseError> {
    match parse_body(text, offset)? {
        Value::Object(members) => Ok(members),
        _ => Err(ParseError::new(
            offset,
            ParseErrorKind::Expected("a JSON object"),
        )),
    }
}

struct Parser<'a> {
    /// Valid UTF-8: multi-byte characters are only ever copied whole, inside strings.
    text: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, kind: ParseErrorKind) -> ParseError {
        ParseError::new(self.pos, kind)
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), ParseError> {
        match self.peek() {
            Some(found) if found == byte => {
                self.pos += 1;
                Ok(())
            }
            Some(_) => Err(self.error(ParseErrorKind::Expected(what))),
            None => Err(self.error(ParseErrorKind::UnexpectedEnd(what))),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(_) => Err(self.error(ParseErrorKind::Expected("a JSON value"))),
            None => Err(self.error(ParseErrorKind::UnexpectedEnd("a JSON value"))),
        }
    }

    fn literal(&mut self, word: &'static str, value: Value) -> Result<Value, ParseError> {
        if self.text[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error(ParseErrorKind::Expected("a JSON value")))
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error(ParseErrorKind::TooDeep));
        }
        self.pos += 1; // '{'
        let mut members: Vec<(String, Value)> = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_whitespace();
            let key_at = self.pos;
            if self.peek() != Some(b'"') {
                return Err(match self.peek() {
                    None => self.error(ParseErrorKind::UnexpectedEnd("an object key")),
                    Some(_) => self.error(ParseErrorKind::Expected("an object key")),
                });
            }
            let key = self.string()?;
            let folded = super::fold(&key);
            if members.iter().any(|(seen, _)| super::fold(seen) == folded) {
                return Err(ParseError::new(key_at, ParseErrorKind::Duplicate(key)));
            }
            self.skip_whitespace();
            self.expect(b':', "':'")?;
            self.skip_whitespace();
            let value = self.value(depth)?;
            members.push((key, value));
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(members));
                }
                Some(_) => return Err(self.error(ParseErrorKind::Expected("',' or '}'"))),
                None => return Err(self.error(ParseErrorKind::UnexpectedEnd("'}'"))),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error(ParseErrorKind::TooDeep));
        }
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.value(depth)?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                Some(_) => return Err(self.error(ParseErrorKind::Expected("',' or ']'"))),
                None => return Err(self.error(ParseErrorKind::UnexpectedEnd("']'"))),
            }
        }
    }

    /// A string, escapes decoded. The opening quote is at `pos`.
    fn string(&mut self) -> Result<String, ParseError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let start = self.pos;
            while let Some(byte) = self.peek() {
                if byte == b'"' || byte == b'\\' || byte < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // The text is valid UTF-8 and the run stops only at ASCII bytes, so the run is
            // whole characters.
            out.push_str(&String::from_utf8_lossy(&self.text[start..self.pos]));
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let escape_at = self.pos;
                    self.pos += 1;
                    let Some(kind) = self.peek() else {
                        return Err(self.error(ParseErrorKind::UnexpectedEnd("the escape")));
                    };
                    self.pos += 1;
                    let decoded = match kind {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape(escape_at)?,
                        _ => return Err(ParseError::new(escape_at, ParseErrorKind::BadEscape)),
                    };
                    out.push(decoded);
                }
                Some(_) => return Err(self.error(ParseErrorKind::ControlInString)),
                None => return Err(self.error(ParseErrorKind::UnexpectedEnd("the closing '\"'"))),
            }
        }
    }

    /// After `\u`: four hex digits, and for a high surrogate a `\u` low surrogate too.
    fn unicode_escape(&mut self, escape_at: usize) -> Result<char, ParseError> {
        let bad = || ParseError::new(escape_at, ParseErrorKind::BadEscape);
        let first = self.hex4().ok_or_else(bad)?;
        let code = match first {
            0xD800..=0xDBFF => {
                if !self.text[self.pos..].starts_with(b"\\u") {
                    return Err(bad());
                }
                self.pos += 2;
                let second = self.hex4().ok_or_else(bad)?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(bad());
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(bad()),
            _ => first,
        };
        char::from_u32(code).ok_or_else(bad)
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.text.get(self.pos..self.pos + 4)?;
        let mut value = 0;
        for &digit in digits {
            value = value * 16 + char::from(digit).to_digit(16)?;
        }
        self.pos += 4;
        Some(value)
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        let bad = || ParseError::new(start, ParseErrorKind::BadNumber);
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(bad());
                }
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(bad()),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(bad());
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(bad());
            }
            self.digits();
        }
        // A letter or another sign right after (`1x`, `1-2`) is garbage, not a delimiter.
        if matches!(
            self.peek(),
            Some(b'a'..=b'z' | b'A'..=b'Z' | b'+' | b'-' | b'.')
        ) {
            return Err(bad());
        }
        if self.pos - start > MAX_NUMBER_LEN {
            return Err(bad());
        }
        Ok(Value::Number(
            String::from_utf8_lossy(&self.text[start..self.pos]).into_owned(),
        ))
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> ParseErrorKind {
        parse_body(text.as_bytes(), 0).unwrap_err().kind
    }

    #[test]
    fn escapes_decode_to_the_name_they_spell() {
        let value = parse_body(br#"{"\u0061ddr\u0065ss":"x","\ud83d\ude00":1}"#, 0).unwrap();
        let Value::Object(members) = value else {
            panic!("not an object")
        };
        assert_eq!(members[0].0, "address");
        assert_eq!(members[1].0, "\u{1f600}");
    }

    #[test]
    fn each_strictness_rule_has_its_own_error() {
        let cases: &[(&str, ParseErrorKind)] = &[
            (r#"{"a":1,"a":2}"#, ParseErrorKind::Duplicate("a".into())),
            (
                r#"{"a":1,"\u0061":2}"#,
                ParseErrorKind::Duplicate("a".into()),
            ),
            (r#"{"a":1,"A":2}"#, ParseErrorKind::Duplicate("A".into())),
            (r#"{"a":01}"#, ParseErrorKind::BadNumber),
            (r#"{"a":-}"#, ParseErrorKind::BadNumber),
            (r#"{"a":1.}"#, ParseErrorKind::BadNumber),
            (r#"{"a":.5}"#, ParseErrorKind::Expected("a JSON value")),
            (r#"{"a":+1}"#, ParseErrorKind::Expected("a JSON value")),
            (r#"{"a":NaN}"#, ParseErrorKind::Expected("a JSON value")),
            (
                r#"{"a":Infinity}"#,
                ParseErrorKind::Expected("a JSON value"),
            ),
            (r#"{"a":1e}"#, ParseErrorKind::BadNumber),
            (r#"{"a":1x}"#, ParseErrorKind::BadNumber),
            (r#"{"a":"\ud800"}"#, ParseErrorKind::BadEscape),
            (r#"{"a":"\udc00\ud800"}"#, ParseErrorKind::BadEscape),
            (r#"{"a":"\ud800\u0041"}"#, ParseErrorKind::BadEscape),
            (r#"{"a":"\x41"}"#, ParseErrorKind::BadEscape),
            (r#"{"a":"\u00g1"}"#, ParseErrorKind::BadEscape),
            ("{\"a\":\"\t\"}", ParseErrorKind::ControlInString),
            (r#"{"a":1}x"#, ParseErrorKind::TrailingData),
            (r#"{"a":1} "#, ParseErrorKind::TrailingData),
            (r#"{"a":1}{"b":2}"#, ParseErrorKind::TrailingData),
            (
                r#" {"a":1}"#,
                ParseErrorKind::Expected("a JSON object or array"),
            ),
            (
                r#""text""#,
                ParseErrorKind::Expected("a JSON object or array"),
            ),
            (r#"{"a":1,}"#, ParseErrorKind::Expected("an object key")),
            (r#"[1,]"#, ParseErrorKind::Expected("a JSON value")),
            (r#"{'a':1}"#, ParseErrorKind::Expected("an object key")),
            (r#"{"a":1"#, ParseErrorKind::UnexpectedEnd("'}'")),
            (r#"{"a":tru}"#, ParseErrorKind::Expected("a JSON value")),
        ];
        for (text, expected) in cases {
            assert_eq!(&kind(text), expected, "{text}");
        }
        let long = format!("{{\"a\":1{}}}", "0".repeat(64));
        assert_eq!(kind(&long), ParseErrorKind::BadNumber);
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(kind(&deep), ParseErrorKind::TooDeep);
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse_body(ok.as_bytes(), 0).is_ok());
        assert_eq!(
            parse_body(b"{\"a\":\"\xff\"}", 10).unwrap_err(),
            ParseError::new(16, ParseErrorKind::InvalidUtf8)
        );
    }

    #[test]
    fn numbers_keep_their_text() {
        let value = parse_body(br#"[0, -0.5, 1e-7, 12345678901234567890123, 2E+3]"#, 0).unwrap();
        let texts: Vec<_> = match value {
            Value::Array(items) => items.iter().filter_map(Value::scalar_text).collect(),
            _ => Vec::new(),
        };
        assert_eq!(
            texts,
            ["0", "-0.5", "1e-7", "12345678901234567890123", "2E+3"]
        );
    }
}
