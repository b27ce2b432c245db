//! `keyward sign`.

use std::io::{self, Read as _, Write as _};

use anyhow::Context as _;
use clap::ValueEnum;
use keyward_client::Client;
use keyward_client::exchanges::{binance, kraken};

use crate::exit::UsageError;
use crate::{Encoding, output};

/// What `sign --format` builds from the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RequestFormat {
    /// The payload is a Binance query string; prints it with `&signature=...` appended.
    BinanceQuery,
    /// The payload is the JSON object of a Binance WebSocket API request's params; prints
    /// them sorted by name with `signature` added.
    BinanceWs,
    /// The payload is Kraken POST data carrying `nonce=...`; prints the API-Sign value for
    /// --path.
    Kraken,
}

/// What to print.
#[derive(Debug)]
pub(crate) enum How {
    /// The bare signature, in this encoding (or the scheme's default).
    Signature(Option<Encoding>),
    /// An exchange request built by the client's helpers; the path for Kraken.
    Request(RequestFormat, Option<String>),
}

pub(crate) fn run(
    client: &mut Client,
    name: &str,
    payload: Option<std::ffi::OsString>,
    how: How,
) -> anyhow::Result<()> {
    let payload = match payload {
        // Byte for byte: an argument is taken as the OS gave it, no UTF-8 check, no trimming.
        Some(arg) => std::os::unix::ffi::OsStringExt::into_vec(arg),
        None => {
            let mut bytes = Vec::new();
            io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .context("cannot read the payload from stdin")?;
            bytes
        }
    };
    match how {
        How::Signature(encoding) => {
            let signature = client.sign(name, &payload)?;
            output::write_signature(&mut io::stdout().lock(), &signature, encoding)?;
        }
        How::Request(format, path) => {
            let text = String::from_utf8(payload)
                .map_err(|_| UsageError("with --format the payload must be UTF-8 text".into()))?;
            let line = request(client, name, format, text.trim_end_matches('\n'), path)?;
            let mut out = io::stdout().lock();
            writeln!(out, "{line}")?;
            out.flush()?;
        }
    }
    Ok(())
}

/// One line: the signed query, the signed params as JSON, or the API-Sign value.
fn request(
    client: &mut Client,
    name: &str,
    format: RequestFormat,
    payload: &str,
    path: Option<String>,
) -> anyhow::Result<String> {
    if path.is_some() && format != RequestFormat::Kraken {
        return Err(UsageError("--path applies to --format kraken only".into()).into());
    }
    Ok(match format {
        RequestFormat::BinanceQuery => binance::signed_query(client, name, payload, "")?,
        RequestFormat::BinanceWs => {
            let params: serde_json::Map<String, serde_json::Value> = serde_json::from_str(payload)
                .map_err(|_| {
                    UsageError(
                        "with --format binance-ws the payload must be a JSON object of params"
                            .into(),
                    )
                })?;
            let texts = params
                .iter()
                .map(|(name, value)| Ok((name.as_str(), param_text(name, value)?)))
                .collect::<Result<Vec<_>, UsageError>>()?;
            let pairs: Vec<(&str, &str)> = texts
                .iter()
                .map(|(name, text)| (*name, text.as_str()))
                .collect();
            let signed = binance::sign_params(client, name, &pairs)?;
            let mut out = params;
            for (name, value) in signed.into_iter().filter(|(name, _)| name == "signature") {
                out.insert(name, serde_json::Value::String(value));
            }
            serde_json::Value::Object(out).to_string()
        }
        RequestFormat::Kraken => {
            let path = path.ok_or_else(|| UsageError("--format kraken needs --path".into()))?;
            let nonce = payload
                .split('&')
                .find_map(|pair| pair.strip_prefix("nonce="))
                .and_then(|nonce| nonce.parse::<u64>().ok())
                .ok_or_else(|| {
                    UsageError(
                        "with --format kraken the payload must be form data with nonce=<digits>"
                            .into(),
                    )
                })?;
            kraken::api_sign(client, name, &path, nonce, payload)?
        }
    })
}

/// A param's value as Binance signs it: a string's text, a number's or a boolean's JSON.
fn param_text(name: &str, value: &serde_json::Value) -> Result<String, UsageError> {
    match value {
        serde_json::Value::String(text) => Ok(text.clone()),
        serde_json::Value::Number(_) | serde_json::Value::Bool(_) => Ok(value.to_string()),
        _ => Err(UsageError(format!(
            "param {name:?}: only strings, numbers and booleans can be signed"
        ))),
    }
}
