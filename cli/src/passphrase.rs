//! Getting a passphrase: a terminal prompt, a file, or an inherited descriptor — never argv
//! or the environment, which other users can read through /proc.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use keyward_client::SecretBytes;
use zeroize::Zeroizing;

use crate::exit::UsageError;
use crate::input::read_secret_file;

/// Where a passphrase comes from.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct PassphraseSource {
    /// Read the passphrase from this file (its first line).
    #[arg(long, value_name = "PATH", conflicts_with = "passphrase_fd")]
    passphrase_file: Option<PathBuf>,
    /// Read the passphrase from this open file descriptor (its first line).
    #[arg(long, value_name = "N")]
    passphrase_fd: Option<u32>,
}

impl PassphraseSource {
    /// A source reading the given file.
    pub(crate) fn from_file(path: PathBuf) -> PassphraseSource {
        PassphraseSource {
            passphrase_file: Some(path),
            passphrase_fd: None,
        }
    }

    /// Reads the passphrase; prompts on the terminal when no file or fd was given.
    /// `confirm` asks twice on a terminal (for a new passphrase).
    pub(crate) fn read(&self, prompt: &str, confirm: bool) -> anyhow::Result<SecretBytes> {
        let secret = if let Some(path) = &self.passphrase_file {
            first_line(path)?
        } else if let Some(fd) = self.passphrase_fd {
            // /dev/fd/N opens the inherited descriptor without any unsafe fd juggling.
            first_line(&PathBuf::from(format!("/dev/fd/{fd}")))?
        } else {
            prompt_tty(prompt, confirm)?
        };
        if secret.expose().is_empty() {
            return Err(UsageError("the passphrase is empty".into()).into());
        }
        Ok(secret)
    }
}

fn first_line(path: &Path) -> anyhow::Result<SecretBytes> {
    let bytes = read_secret_file(path)?;
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Ok(SecretBytes::new(line.to_vec()))
}

fn prompt_tty(prompt: &str, confirm: bool) -> anyhow::Result<SecretBytes> {
    let first = Zeroizing::new(rpassword::prompt_password(format!("{prompt}: ")).context(
        "cannot read a passphrase from the terminal (use --passphrase-file or --passphrase-fd)",
    )?);
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password("Repeat it: ")
                .context("cannot read the passphrase again")?,
        );
        if *first != *again {
            anyhow::bail!("the two passphrases differ");
        }
    }
    Ok(SecretBytes::new(first.as_bytes().to_vec()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// An empty passphrase is refused before anything is sent: `init` must not make a
    /// keystore anyone can open, and a stray newline must not count as a passphrase.
    #[test]
    fn an_empty_first_line_is_refused_and_the_first_line_is_the_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let read = |contents: &[u8]| {
            let path = dir.path().join("passphrase");
            std::fs::write(&path, contents).unwrap();
            PassphraseSource::from_file(path).read("Passphrase", false)
        };
        for empty in [&b""[..], b"\n", b"\r\n", b"\nsecond line"] {
            let err = read(empty).expect_err("an empty passphrase was accepted");
            assert_eq!(format!("{err:#}"), "the passphrase is empty", "{empty:?}");
        }
        assert_eq!(
            read(b"pass phrase\r\nnext").unwrap().expose(),
            b"pass phrase"
        );
    }
}
