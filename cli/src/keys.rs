//! `import`, `generate`, `list`, `pubkey`, `remove`, `passphrase`.

use std::io::{self, Write as _};
use std::path::PathBuf;

use anyhow::Context as _;
use base64::Engine as _;
use clap::{Args, ValueEnum};
use keyward_client::{Client, KeyInfo, KeyKind, PayloadFormat, Scheme, SecretBytes};
use zeroize::Zeroizing;

use crate::exit::UsageError;
use crate::input::{read_secret_file, trim_end};
use crate::output;

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// Name for the key (letters, digits, '.', '_', '-').
    name: String,
    /// The key file: a PEM private key, or an HMAC secret; `-` reads stdin.
    #[arg(long, value_name = "PATH|-")]
    file: PathBuf,
    /// The scheme: required for HMAC secrets; for PEM keys it is detected (and checked if given).
    #[arg(long, value_parser = crate::parse_scheme)]
    scheme: Option<Scheme>,
    /// How an HMAC secret is written in the file [default: text].
    #[arg(long, value_enum, value_name = "FORMAT")]
    secret_format: Option<SecretFormat>,
    /// The exchange's API key id that goes with this key (shown by `list`).
    #[arg(long, value_name = "ID")]
    api_key: Option<String>,
    /// File holding the password of an encrypted PEM key (ENCRYPTED PRIVATE KEY).
    #[arg(long, value_name = "PATH")]
    pem_passphrase_file: Option<PathBuf>,
    /// The key's payload format, which payload rules parse its payloads in: binance, bybit,
    /// okx, kucoin, bitget, kraken, coinbase-jwt or raw (the daemon's config may override it).
    #[arg(long, value_parser = crate::parse_format, value_name = "NAME")]
    format: Option<PayloadFormat>,
    /// File holding the exchange API key's passphrase (KuCoin), stored sealed with the key
    /// and only ever returned signed (`-` reads stdin). Not the PEM password
    /// (--pem-passphrase-file). HMAC keys only.
    #[arg(long, value_name = "PATH|-")]
    api_passphrase_file: Option<PathBuf>,
}

/// `keyward passphrase`: store, replace or remove the exchange passphrase of an HMAC key.
#[derive(Debug, Args)]
pub(crate) struct PassphraseArgs {
    /// Key name.
    #[arg(add = crate::completions::key_names())]
    name: String,
    /// File holding the passphrase (`-` reads stdin; one trailing newline is dropped).
    /// Without it, keyward asks on the terminal.
    #[arg(long, value_name = "PATH|-", conflicts_with = "remove")]
    file: Option<PathBuf>,
    /// Remove the stored passphrase instead.
    #[arg(long)]
    remove: bool,
}

/// How an HMAC secret is written down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SecretFormat {
    /// The text itself, without trailing whitespace (Binance, Bybit, OKX, KuCoin).
    Text,
    /// Base64 of the secret bytes (Kraken).
    Base64,
    /// Hex of the secret bytes.
    Hex,
}

impl ImportArgs {
    /// Usage mistakes clap cannot see, checked before connecting to the daemon.
    pub(crate) fn validate(&self) -> Result<(), UsageError> {
        if self.secret_format.is_some() && !self.scheme.is_some_and(Scheme::is_hmac) {
            return Err(UsageError(
                "--secret-format applies to HMAC secrets only (--scheme hmac-sha256 or hmac-sha512)"
                    .into(),
            ));
        }
        if self.api_passphrase_file.is_some() && !self.scheme.is_some_and(Scheme::is_hmac) {
            return Err(UsageError(
                "--api-passphrase-file applies to HMAC keys only (KuCoin: --scheme hmac-sha256)"
                    .into(),
            ));
        }
        Ok(())
    }
}

pub(crate) fn import(client: &mut Client, args: ImportArgs) -> anyhow::Result<()> {
    let hmac = args.scheme.is_some_and(Scheme::is_hmac);
    let raw = read_secret_file(&args.file)?;
    let material = if hmac {
        decode_secret(&raw, args.secret_format.unwrap_or(SecretFormat::Text))
            .with_context(|| format!("cannot read the secret in {}", args.file.display()))?
    } else {
        raw
    };
    let pem_passphrase = match &args.pem_passphrase_file {
        Some(path) => Some(secret(trim_newline(&read_secret_file(path)?))),
        // An encrypted PEM and no password file: ask on the terminal, as ssh-add does
        // (only when run interactively; scripts get the daemon's clear error instead).
        None if !hmac
            && io::IsTerminal::is_terminal(&io::stdin())
            && contains(&material, b"-----BEGIN ENCRYPTED PRIVATE KEY-----") =>
        {
            Some(prompt_pem_password()?)
        }
        None => None,
    };
    let api_passphrase = match &args.api_passphrase_file {
        Some(path) => Some(read_passphrase_file(path)?),
        None => None,
    };
    if api_passphrase.is_some() && client.protocol_version() < 3 {
        anyhow::bail!(
            "keywardd speaks protocol version {}, which cannot store a passphrase (upgrade keywardd)",
            client.protocol_version()
        );
    }
    let key = client.import(
        &args.name,
        args.scheme,
        secret(&material),
        pem_passphrase,
        args.api_key,
        args.format,
    )?;
    if let Some(passphrase) = api_passphrase
        && let Err(err) = client.set_passphrase(&key.name, Some(passphrase))
    {
        // All or nothing: a key without the passphrase it was imported with would fail
        // later, far from here. The error names no secret.
        let undone = client.remove(&key.name);
        return Err(anyhow::Error::new(err).context(match undone {
            Ok(()) => format!("storing the passphrase of {} failed; the key was not kept", key.name),
            Err(_) => format!(
                "storing the passphrase of {} failed, and so did removing the key; run `keyward passphrase {}`",
                key.name, key.name
            ),
        }));
    }
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "imported {} ({}, {})",
        key.name,
        key.scheme,
        key.fingerprint.as_deref().unwrap_or("no public key")
    )?;
    warn_if_overridden(&key, args.format);
    Ok(())
}

/// The daemon answers with the format in force; when the config overrides the one given,
/// say so (payloads will be parsed in the config's).
fn warn_if_overridden(key: &KeyInfo, given: Option<PayloadFormat>) {
    if let Some(given) = given
        && key.format != Some(given)
    {
        eprintln!(
            "warning: the daemon's config sets format {} for key {}; its payloads are judged as {} (--format {given} is stored with the key)",
            key.format.map_or("none", PayloadFormat::name),
            key.name,
            key.format.map_or("none", PayloadFormat::name),
        );
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

fn prompt_pem_password() -> anyhow::Result<SecretBytes> {
    let password = Zeroizing::new(rpassword::prompt_password("Password of the PEM key: ").context(
        "the PEM key is encrypted and there is no terminal to ask for its password; give --pem-passphrase-file",
    )?);
    Ok(secret(password.as_bytes()))
}

fn secret(bytes: &[u8]) -> SecretBytes {
    SecretBytes::new(bytes.to_vec())
}

/// Drops one trailing newline (`echo pw > file`), keeping any other byte of a password.
fn trim_newline(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

fn decode_secret(raw: &[u8], format: SecretFormat) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let text = trim_end(raw);
    let decoded = match format {
        SecretFormat::Text => text.to_vec(),
        SecretFormat::Base64 => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| anyhow::anyhow!("it is not valid base64"))?,
        SecretFormat::Hex => {
            hex::decode(text).map_err(|_| anyhow::anyhow!("it is not valid hex"))?
        }
    };
    if decoded.is_empty() {
        anyhow::bail!("the secret is empty");
    }
    Ok(Zeroizing::new(decoded))
}

pub(crate) fn generate(
    client: &mut Client,
    name: &str,
    kind: KeyKind,
    api_key: Option<String>,
    format: Option<PayloadFormat>,
) -> anyhow::Result<()> {
    let key = client.generate(name, kind, api_key, format)?;
    let pem = output::public_pem(&key)?;
    eprintln!(
        "generated {} ({}, {})",
        key.name,
        kind,
        key.fingerprint.as_deref().unwrap_or("-")
    );
    warn_if_overridden(&key, format);
    io::stdout().lock().write_all(pem.as_bytes())?;
    Ok(())
}

pub(crate) fn list(client: &mut Client, json: bool) -> anyhow::Result<()> {
    let keys = client.list()?;
    let text = if json {
        let mut text = serde_json::to_string_pretty(&output::key_json(&keys))?;
        text.push('\n');
        text
    } else {
        output::key_table(&keys)
    };
    io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

pub(crate) fn pubkey(client: &mut Client, name: &str) -> anyhow::Result<()> {
    let key = client.public_key(name)?;
    io::stdout()
        .lock()
        .write_all(output::public_pem(&key)?.as_bytes())?;
    Ok(())
}

/// Reads an exchange passphrase from a file: one trailing newline dropped, never empty.
fn read_passphrase_file(path: &std::path::Path) -> anyhow::Result<SecretBytes> {
    let raw = read_secret_file(path)?;
    let passphrase = trim_newline(&raw);
    if passphrase.is_empty() {
        anyhow::bail!("{} holds no passphrase", path.display());
    }
    Ok(secret(passphrase))
}

pub(crate) fn passphrase(client: &mut Client, args: PassphraseArgs) -> anyhow::Result<()> {
    let passphrase = if args.remove {
        None
    } else if let Some(path) = &args.file {
        Some(read_passphrase_file(path)?)
    } else {
        let typed = Zeroizing::new(
            rpassword::prompt_password(format!("Exchange passphrase of {}: ", args.name))
                .context("there is no terminal to ask for the passphrase; give --file")?,
        );
        if typed.is_empty() {
            anyhow::bail!("no passphrase given");
        }
        Some(secret(typed.as_bytes()))
    };
    let removed = passphrase.is_none();
    client.set_passphrase(&args.name, passphrase)?;
    let what = if removed {
        "removed the passphrase of"
    } else {
        "stored the passphrase of"
    };
    writeln!(io::stdout().lock(), "{what} {}", args.name)?;
    Ok(())
}

pub(crate) fn remove(client: &mut Client, name: &str) -> anyhow::Result<()> {
    client.remove(name)?;
    writeln!(io::stdout().lock(), "removed {name}")?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn secrets_decode_in_each_format() {
        assert_eq!(
            &decode_secret(b"abc\n", SecretFormat::Text).unwrap()[..],
            b"abc"
        );
        assert_eq!(
            &decode_secret(b"AAEC\n", SecretFormat::Base64).unwrap()[..],
            &[0, 1, 2]
        );
        assert_eq!(
            &decode_secret(b"00ff", SecretFormat::Hex).unwrap()[..],
            &[0, 255]
        );
        assert!(decode_secret(b"zz", SecretFormat::Hex).is_err());
        assert!(decode_secret(b"\n", SecretFormat::Text).is_err());
    }
}
