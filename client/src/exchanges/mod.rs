//! Exchange helpers: each builds the exact string an exchange signs, has the daemon sign it
//! with a key in keyward, and returns what the exchange expects (a signed query, headers, a
//! JWT). One module per exchange; docs/EXCHANGES.md says which key types each takes and how
//! to register them.
//!
//! The strings built here are the ones the daemon's payload rules parse (docs/POLICY.md,
//! one grammar per `format`): a key with rules signs a helper's output and refuses a payload
//! in another shape. The helpers check the request parts they are given against the same
//! grammar first, so a part the daemon would refuse fails here with
//! [`Error::InvalidRequest`] and nothing is sent.
//!
//! Helpers that send an API key id take one per call in [`Options::api_key`] (platforms that
//! sign for many users' API keys with one keyward key need that), and otherwise use the id
//! stored with the key (`keyward import --api-key`), at the cost of one more round trip to
//! the daemon. Timestamps default to the system clock; [`Options::timestamp_ms`] pins one
//! (tests, or a clock offset from the exchange's server time).
//!
//! ```no_run
//! use keyward_client::Client;
//! use keyward_client::exchanges::{HttpRequest, Options, okx};
//!
//! # fn main() -> Result<(), keyward_client::Error> {
//! let mut client = Client::from_env()?;
//! let request = HttpRequest::get("/api/v5/account/balance", "ccy=BTC");
//! let headers = okx::headers(&mut client, "okx-main", &request, "my-passphrase", &Options::default())?;
//! for (name, value) in headers {
//!     println!("{name}: {value}");
//! }
//! # Ok(())
//! # }
//! ```

pub mod binance;
pub mod bitget;
pub mod bybit;
pub mod coinbase;
pub mod kraken;
pub mod kucoin;
pub mod okx;
mod prefixed;

use core::fmt;
use core::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Client, Error};

/// HTTP headers to add to a request, in the order the exchange documents them.
pub type Headers = Vec<(&'static str, String)>;

/// An HTTP method, written upper case in every signing string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`: parameters in the query, no body.
    Get,
    /// `POST`: parameters in the JSON body.
    Post,
    /// `PUT`: parameters in the JSON body.
    Put,
    /// `DELETE`: parameters in the query, no body.
    Delete,
}

impl Method {
    /// The method as signed: `GET`, `POST`, `PUT` or `DELETE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }

    /// GET and DELETE sign no body: the exchanges (and the daemon's parsers) refuse one.
    fn takes_body(self) -> bool {
        matches!(self, Method::Post | Method::Put)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = Error;

    /// `GET`, `POST`, `PUT` or `DELETE`, in any case (the signing string is upper case).
    fn from_str(s: &str) -> Result<Method, Error> {
        [Method::Get, Method::Post, Method::Put, Method::Delete]
            .into_iter()
            .find(|method| method.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| invalid("the method must be GET, POST, PUT or DELETE"))
    }
}

/// The parts of a REST request that the exchanges sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpRequest<'a> {
    /// The method.
    pub method: Method,
    /// The request path, e.g. `/api/v5/account/balance`: starts with `/`, no query, no
    /// percent-escapes, no empty or dot segments.
    pub path: &'a str,
    /// The query string without `?`, already form-encoded as it will be sent; `""` for none.
    pub query: &'a str,
    /// The body exactly as it will be sent (a JSON object or array, no surrounding
    /// whitespace); `""` for none.
    pub body: &'a str,
}

impl<'a> HttpRequest<'a> {
    /// A GET of `path` with `query` (`""` for none).
    pub fn get(path: &'a str, query: &'a str) -> HttpRequest<'a> {
        HttpRequest {
            method: Method::Get,
            path,
            query,
            body: "",
        }
    }

    /// A DELETE of `path` with `query` (`""` for none).
    pub fn delete(path: &'a str, query: &'a str) -> HttpRequest<'a> {
        HttpRequest {
            method: Method::Delete,
            path,
            query,
            body: "",
        }
    }

    /// A POST of the JSON `body` to `path`.
    pub fn post(path: &'a str, body: &'a str) -> HttpRequest<'a> {
        HttpRequest {
            method: Method::Post,
            path,
            query: "",
            body,
        }
    }

    /// A PUT of the JSON `body` to `path`.
    pub fn put(path: &'a str, body: &'a str) -> HttpRequest<'a> {
        HttpRequest {
            method: Method::Put,
            path,
            query: "",
            body,
        }
    }
}

/// What a helper would otherwise look up or read from the clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options<'a> {
    /// The API key id to send (and, for Bybit and Coinbase, to sign); `None` uses the one
    /// stored with the key.
    pub api_key: Option<&'a str>,
    /// The request time in milliseconds since the epoch; `None` uses the system clock.
    pub timestamp_ms: Option<u64>,
}

impl<'a> Options<'a> {
    /// Sends `api_key` instead of the key's stored API key id.
    pub fn with_api_key(mut self, api_key: &'a str) -> Options<'a> {
        self.api_key = Some(api_key);
        self
    }

    /// Signs `timestamp_ms` instead of the system clock's time.
    pub fn at(mut self, timestamp_ms: u64) -> Options<'a> {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    fn timestamp(&self) -> u64 {
        self.timestamp_ms.unwrap_or_else(now_ms)
    }

    fn api_key_for(&self, client: &mut Client, key: &str) -> Result<String, Error> {
        match self.api_key {
            Some(id) => Ok(id.to_owned()),
            None => api_key(client, key),
        }
    }
}

/// The API key id stored with the key named `key` (e.g. Binance's `X-MBX-APIKEY` value), or
/// [`Error::NoApiKey`].
pub fn api_key(client: &mut Client, key: &str) -> Result<String, Error> {
    client
        .public_key(key)?
        .api_key
        .filter(|id| !id.is_empty())
        .ok_or_else(|| Error::NoApiKey {
            key: key.to_owned(),
        })
}

/// Milliseconds since the Unix epoch, from the system clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidRequest {
        reason: reason.into(),
    }
}

/// A request path as the daemon's parsers accept it: `/segment(/segment)*`, each segment one
/// or more of `A-Z a-z 0-9 - _ . ~`, never `.` or `..`.
fn check_path(path: &str) -> Result<(), Error> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(invalid(format!("the path {path:?} must start with '/'")));
    };
    for segment in rest.split('/') {
        let ok = !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
        if !ok {
            return Err(invalid(format!(
                "the path {path:?} must be /segment(/segment)*, each of A-Z a-z 0-9 - _ . ~ (no query, escapes, empty or dot segments)"
            )));
        }
    }
    Ok(())
}

/// Strict form data, as the daemon parses Binance's payloads and the others' queries:
/// `name=value` pairs joined by `&`, a non-empty name, one `=` per pair, printable ASCII
/// (other bytes percent-encoded), `%` starting two hex digits, no name twice (ignoring case).
fn check_form(what: &str, form: &str) -> Result<(), Error> {
    let mut names: Vec<String> = Vec::new();
    for pair in form.split('&') {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(invalid(format!("{what}: {pair:?} is not name=value")));
        };
        if name.is_empty() || value.contains('=') {
            return Err(invalid(format!("{what}: {pair:?} is not name=value")));
        }
        for part in [name, value] {
            check_form_text(what, part)?;
        }
        let folded = name.to_ascii_lowercase();
        if names.contains(&folded) {
            return Err(invalid(format!("{what}: {name:?} appears twice")));
        }
        names.push(folded);
    }
    Ok(())
}

fn check_form_text(what: &str, text: &str) -> Result<(), Error> {
    let bytes = text.as_bytes();
    for (i, &byte) in bytes.iter().enumerate() {
        let ok = match byte {
            b'%' => bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)),
            b'#' | b'&' | b'=' => false,
            0x21..=0x7e => true,
            _ => false,
        };
        if !ok {
            return Err(invalid(format!(
                "{what}: {text:?} must be percent-encoded printable ASCII"
            )));
        }
    }
    Ok(())
}

/// A JSON body as the daemon parses one: an object or array with nothing around it.
fn check_json_body(body: &str) -> Result<(), Error> {
    let framed = matches!(
        (body.as_bytes().first(), body.as_bytes().last()),
        (Some(b'{'), Some(b'}')) | (Some(b'['), Some(b']'))
    );
    if !framed || serde_json::from_str::<serde_json::Value>(body).is_err() {
        return Err(invalid(
            "the body must be one JSON object or array, with no whitespace around it",
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_the_daemon_would_refuse_are_refused_here() {
        assert!(check_path("/api/v5/account/balance").is_ok());
        for bad in [
            "api/v5",
            "/",
            "/api//v5",
            "/api/v5/",
            "/api/../asset",
            "/api/./v5",
            "/api/v5?x=1",
            "/api%2Fv5",
            "/api v5",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forms_the_daemon_would_refuse_are_refused_here() {
        assert!(check_form("query", "a=1&b=%20x&c=").is_ok());
        for bad in [
            "a", "=1", "a=1&&b=2", "a=1&", "a=1=2", "a=%zz", "a=b c", "a=é", "a=1&A=2", "a=#",
        ] {
            assert!(check_form("query", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bodies_must_be_one_bare_json_document() {
        assert!(check_json_body(r#"{"a":1}"#).is_ok());
        assert!(check_json_body(r#"[{"a":1}]"#).is_ok());
        for bad in [" {}", "{} ", "{", "1", r#""a""#, "{}{}"] {
            assert!(check_json_body(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn methods_parse_in_any_case_and_sign_upper_case() {
        assert_eq!("post".parse::<Method>().unwrap(), Method::Post);
        assert_eq!(Method::Delete.to_string(), "DELETE");
        assert!("PATCH".parse::<Method>().is_err());
    }
}
