//! Printing keys and signatures.

use std::io::{self, Write};

use keyward_client::{KeyInfo, Signature};

use crate::Encoding;

/// A public key (DER SPKI) as PEM, the form exchanges ask you to upload.
pub(crate) fn spki_pem(der: &[u8]) -> anyhow::Result<String> {
    pem_rfc7468::encode_string("PUBLIC KEY", pem_rfc7468::LineEnding::LF, der)
        .map_err(|err| anyhow::anyhow!("cannot encode the public key as PEM: {err}"))
}

/// The public key of `key` as PEM, or an error for HMAC keys, which have none.
pub(crate) fn public_pem(key: &KeyInfo) -> anyhow::Result<String> {
    match &key.public_key {
        Some(der) => spki_pem(der),
        None => anyhow::bail!(
            "{} is an {} key: it has no public key",
            key.name,
            key.scheme
        ),
    }
}

/// Writes a signature in `encoding` (hex for HMAC keys, base64 otherwise when `None`).
pub(crate) fn write_signature(
    out: &mut impl Write,
    signature: &Signature,
    encoding: Option<Encoding>,
) -> io::Result<()> {
    let encoding = encoding.unwrap_or(if signature.scheme().is_hmac() {
        Encoding::Hex
    } else {
        Encoding::Base64
    });
    match encoding {
        Encoding::Raw => out.write_all(signature.as_bytes())?,
        Encoding::Hex => writeln!(out, "{}", signature.to_hex())?,
        Encoding::Base64 => writeln!(out, "{}", signature.to_base64())?,
        Encoding::Base64url => writeln!(out, "{}", signature.to_base64url())?,
    }
    out.flush()
}

/// `list` as an aligned table.
pub(crate) fn key_table(keys: &[KeyInfo]) -> String {
    let rows: Vec<[String; 6]> = keys
        .iter()
        .map(|key| {
            [
                key.name.clone(),
                key.scheme.to_string(),
                key.bits.to_string(),
                key.format.map_or_else(|| "-".into(), |f| f.to_string()),
                key.fingerprint.clone().unwrap_or_else(|| "-".into()),
                key.api_key.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let header = ["NAME", "SCHEME", "BITS", "FORMAT", "FINGERPRINT", "API KEY"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut table = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        table.push_str(cells.join("  ").trim_end());
        table.push('\n');
    }
    table
}

/// `list --json`: an array of objects, public keys as PEM.
pub(crate) fn key_json(keys: &[KeyInfo]) -> serde_json::Value {
    keys.iter()
        .map(|key| {
            serde_json::json!({
                "name": key.name,
                "scheme": key.scheme.name(),
                "bits": key.bits,
                "format": key.format.map(|f| f.name()),
                "fingerprint": key.fingerprint,
                "api_key": key.api_key,
                "public_key": key.public_key.as_deref().and_then(|der| spki_pem(der).ok()),
            })
        })
        .collect()
}
