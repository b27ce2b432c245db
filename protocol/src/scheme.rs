//! Signature schemes and the key kinds a daemon can generate.

use core::{fmt, str::FromStr};
use serde::{Deserialize, Serialize};

/// A signature scheme: the algorithm a key signs with and what its signature bytes are.
///
/// The wire form is the variant index (postcard); the text form (`Display`/`FromStr`) is the
/// name used by the CLI, the config file and docs/PROTOCOL.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Scheme {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (Binance and Bybit RSA keys); 2048 to 4096 bits.
    RsaPkcs1v15Sha256,
    /// Pure Ed25519 (Binance Ed25519 keys, Coinbase CDP).
    Ed25519,
    /// HMAC-SHA256 over a shared secret (Binance, Bybit, OKX, KuCoin, Bitget secret keys).
    HmacSha256,
    /// HMAC-SHA512 over a shared secret (Kraken).
    HmacSha512,
    /// ECDSA P-256 with SHA-256, signature as fixed-width `r || s` (64 bytes, JWT ES256).
    EcdsaP256Sha256,
}

impl Scheme {
    /// Every scheme, in wire order.
    pub const ALL: [Scheme; 5] = [
        Scheme::RsaPkcs1v15Sha256,
        Scheme::Ed25519,
        Scheme::HmacSha256,
        Scheme::HmacSha512,
        Scheme::EcdsaP256Sha256,
    ];

    /// The scheme's name, e.g. `rsa-pkcs1v15-sha256`.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::RsaPkcs1v15Sha256 => "rsa-pkcs1v15-sha256",
            Scheme::Ed25519 => "ed25519",
            Scheme::HmacSha256 => "hmac-sha256",
            Scheme::HmacSha512 => "hmac-sha512",
            Scheme::EcdsaP256Sha256 => "ecdsa-p256-sha256",
        }
    }

    /// True for the shared-secret schemes, whose keys have no public half.
    pub fn is_hmac(self) -> bool {
        matches!(self, Scheme::HmacSha256 | Scheme::HmacSha512)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A scheme or key-kind name that is not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownScheme(pub String);

impl fmt::Display for UnknownScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown scheme {:?}", self.0)
    }
}

impl std::error::Error for UnknownScheme {}

impl FromStr for Scheme {
    type Err = UnknownScheme;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scheme::ALL
            .into_iter()
            .find(|scheme| scheme.name() == s)
            .ok_or_else(|| UnknownScheme(s.to_owned()))
    }
}

/// What kind of key to generate inside the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KeyKind {
    /// An Ed25519 key.
    Ed25519,
    /// A 2048-bit RSA key (PKCS#1 v1.5, SHA-256).
    Rsa2048,
    /// A 3072-bit RSA key.
    Rsa3072,
    /// A 4096-bit RSA key.
    Rsa4096,
    /// An ECDSA key on P-256.
    EcdsaP256,
}

impl KeyKind {
    /// Every key kind, in wire order.
    pub const ALL: [KeyKind; 5] = [
        KeyKind::Ed25519,
        KeyKind::Rsa2048,
        KeyKind::Rsa3072,
        KeyKind::Rsa4096,
        KeyKind::EcdsaP256,
    ];

    /// The kind's name, e.g. `rsa-2048`.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Ed25519 => "ed25519",
            KeyKind::Rsa2048 => "rsa-2048",
            KeyKind::Rsa3072 => "rsa-3072",
            KeyKind::Rsa4096 => "rsa-4096",
            KeyKind::EcdsaP256 => "ecdsa-p256",
        }
    }

    /// The scheme a key of this kind signs with.
    pub fn scheme(self) -> Scheme {
        match self {
            KeyKind::Ed25519 => Scheme::Ed25519,
            KeyKind::Rsa2048 | KeyKind::Rsa3072 | KeyKind::Rsa4096 => Scheme::RsaPkcs1v15Sha256,
            KeyKind::EcdsaP256 => Scheme::EcdsaP256Sha256,
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyKind {
    type Err = UnknownScheme;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyKind::ALL
            .into_iter()
            .find(|kind| kind.name() == s)
            .ok_or_else(|| UnknownScheme(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for scheme in Scheme::ALL {
            assert_eq!(scheme.name().parse::<Scheme>(), Ok(scheme));
        }
        for kind in KeyKind::ALL {
            assert_eq!(kind.name().parse::<KeyKind>(), Ok(kind));
        }
        assert!("rsa".parse::<Scheme>().is_err());
    }
}
