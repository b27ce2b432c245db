//! Key names: what a daemon accepts, checked the same way on both sides of the socket.

use core::fmt;

/// Longest key name, in bytes.
pub const MAX_KEY_NAME_LEN: usize = 64;

/// A key name that is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidKeyName {
    /// Why it is refused.
    pub reason: &'static str,
}

impl fmt::Display for InvalidKeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid key name: {}", self.reason)
    }
}

impl std::error::Error for InvalidKeyName {}

/// Checks a key name: 1 to 64 bytes of ASCII letters, digits, `.`, `_` and `-`, starting with
/// a letter or digit. Names become file names in the keystore, so nothing else is allowed
/// (no `/`, no leading dot, no spaces).
pub fn validate_key_name(name: &str) -> Result<(), InvalidKeyName> {
    let Some(first) = name.bytes().next() else {
        return Err(InvalidKeyName {
            reason: "it is empty",
        });
    };
    if name.len() > MAX_KEY_NAME_LEN {
        return Err(InvalidKeyName {
            reason: "it is longer than 64 bytes",
        });
    }
    if !first.is_ascii_alphanumeric() {
        return Err(InvalidKeyName {
            reason: "it must start with a letter or digit",
        });
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(InvalidKeyName {
            reason: "only letters, digits, '.', '_' and '-' are allowed",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_and_bad_names() {
        for good in ["binance-main", "a", "Kraken_2.prod", &"x".repeat(64)] {
            assert_eq!(validate_key_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            ".hidden",
            "../etc",
            "a/b",
            "sp ace",
            "é",
            &"x".repeat(65),
            "-x",
        ] {
            assert!(validate_key_name(bad).is_err(), "{bad}");
        }
    }
}
