//! One signing key of any scheme, parsed once, behind one type.
//!
//! Every scheme is signed by aws-lc-rs: it is the only backend measured here that leaves no
//! copy of a private key in memory once the key is dropped (AWS-LC cleanses what it frees),
//! and it is within 20% of the fastest for RSA and the fastest for Ed25519.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
use keyward_protocol::{KeyKind, Scheme};
use zeroize::Zeroizing;

/// Smallest RSA modulus accepted, in bits. Binance asks for 2048 or more.
const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted: 4096 is the largest the exchanges document, and larger keys
/// would let one request hold a signing thread for tens of milliseconds.
const MAX_RSA_BITS: usize = 4096;
/// HMAC secrets shorter than this are refused: no exchange issues one, and a short one is a
/// sign that the wrong file or format was given.
const MIN_HMAC_SECRET_LEN: usize = 16;

/// Why key material was refused. Messages never contain key bytes.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    #[error("{0}")]
    Rejected(String),
    #[error("key generation failed")]
    Generation,
}

/// Signing failed inside the crypto library (should not happen with a parsed key).
#[derive(Debug, thiserror::Error)]
#[error("signing failed")]
pub(crate) struct SignError;

/// A parsed signing key. Dropping it frees (and AWS-LC cleanses) the key material.
pub(crate) enum Signer {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
    EcdsaP256(EcdsaKeyPair),
    Hmac {
        // Boxed: AWS-LC's HMAC context is held by value and is several times larger than
        // the other variants.
        key: Box<hmac::Key>,
        scheme: Scheme,
        bits: u32,
    },
}

// Deliberately not derived: nothing about a key but its scheme is printed.
impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.scheme())
    }
}

impl Signer {
    /// Parses an unencrypted PKCS#8 DER private key of any asymmetric scheme.
    pub(crate) fn from_pkcs8(der: &[u8]) -> Result<Signer, KeyError> {
        if let Ok(key) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            return Ok(Signer::Ed25519(key));
        }
        if let Ok(key) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
            return Ok(Signer::EcdsaP256(key));
        }
        match RsaKeyPair::from_pkcs8(der) {
            Ok(key) => Signer::rsa(key),
            Err(_) => Err(KeyError::Rejected(
                "not an RSA (2048-4096 bit), Ed25519 or ECDSA P-256 PKCS#8 private key".into(),
            )),
        }
    }

    /// Parses a PKCS#1 `RSAPrivateKey` DER.
    pub(crate) fn from_pkcs1_rsa(der: &[u8]) -> Result<Signer, KeyError> {
        let key = RsaKeyPair::from_der(der)
            .map_err(|_| KeyError::Rejected("not a valid PKCS#1 RSA private key".into()))?;
        Signer::rsa(key)
    }

    /// Parses a SEC1 `ECPrivateKey` DER on P-256.
    pub(crate) fn from_sec1_p256(der: &[u8]) -> Result<Signer, KeyError> {
        EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map(Signer::EcdsaP256)
            .map_err(|_| {
                KeyError::Rejected("not a valid SEC1 EC private key on P-256 (prime256v1)".into())
            })
    }

    /// Wraps an HMAC secret.
    pub(crate) fn hmac(scheme: Scheme, secret: &[u8]) -> Result<Signer, KeyError> {
        let algorithm = match scheme {
            Scheme::HmacSha256 => hmac::HMAC_SHA256,
            Scheme::HmacSha512 => hmac::HMAC_SHA512,
            other => {
                return Err(KeyError::Rejected(format!(
                    "{other} keys are PEM private keys, not secrets"
                )));
            }
        };
        if secret.len() < MIN_HMAC_SECRET_LEN {
            return Err(KeyError::Rejected(format!(
                "HMAC secret is {} bytes; at least {MIN_HMAC_SECRET_LEN} are required",
                secret.len()
            )));
        }
        let bits = u32::try_from(secret.len() * 8)
            .map_err(|_| KeyError::Rejected("HMAC secret is too long".into()))?;
        Ok(Signer::Hmac {
            key: Box::new(hmac::Key::new(algorithm, secret)),
            scheme,
            bits,
        })
    }

    fn rsa(key: RsaKeyPair) -> Result<Signer, KeyError> {
        let bits = key.public_modulus_len() * 8;
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
            return Err(KeyError::Rejected(format!(
                "RSA key of {bits} bits; {MIN_RSA_BITS} to {MAX_RSA_BITS} bits are supported"
            )));
        }
        Ok(Signer::Rsa(key))
    }

    /// Makes a new key inside the daemon. Returns it and its PKCS#8 DER (for the keystore).
    pub(crate) fn generate(kind: KeyKind) -> Result<(Signer, Zeroizing<Vec<u8>>), KeyError> {
        let signer = match kind {
            KeyKind::Ed25519 => {
                Signer::Ed25519(Ed25519KeyPair::generate().map_err(|_| KeyError::Generation)?)
            }
            KeyKind::Rsa2048 => Signer::rsa(
                RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generation)?,
            )?,
            KeyKind::Rsa3072 => Signer::rsa(
                RsaKeyPair::generate(KeySize::Rsa3072).map_err(|_| KeyError::Generation)?,
            )?,
            KeyKind::Rsa4096 => Signer::rsa(
                RsaKeyPair::generate(KeySize::Rsa4096).map_err(|_| KeyError::Generation)?,
            )?,
            KeyKind::EcdsaP256 => Signer::EcdsaP256(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| KeyError::Generation)?,
            ),
            _ => return Err(KeyError::Rejected(format!("cannot generate {kind} keys"))),
        };
        let pkcs8 = signer.private_pkcs8().ok_or(KeyError::Generation)?;
        Ok((signer, pkcs8))
    }

    /// The private key as PKCS#8 DER (asymmetric keys only), in a zeroizing buffer. Used once,
    /// to seal a new key into the keystore; the library's own buffer is zeroized on drop.
    pub(crate) fn private_pkcs8(&self) -> Option<Zeroizing<Vec<u8>>> {
        let copy = |der: &[u8]| Zeroizing::new(der.to_vec());
        match self {
            Signer::Rsa(key) => {
                let der: Pkcs8V1Der<'static> = key.as_der().ok()?;
                Some(copy(der.as_ref()))
            }
            Signer::Ed25519(key) => key.to_pkcs8v1().ok().map(|doc| copy(doc.as_ref())),
            Signer::EcdsaP256(key) => key.to_pkcs8v1().ok().map(|doc| copy(doc.as_ref())),
            Signer::Hmac { .. } => None,
        }
    }

    pub(crate) fn scheme(&self) -> Scheme {
        match self {
            Signer::Rsa(_) => Scheme::RsaPkcs1v15Sha256,
            Signer::Ed25519(_) => Scheme::Ed25519,
            Signer::EcdsaP256(_) => Scheme::EcdsaP256Sha256,
            Signer::Hmac { scheme, .. } => *scheme,
        }
    }

    pub(crate) fn bits(&self) -> u32 {
        match self {
            // The modulus is at most 4096 bits (checked at parse time), so this cannot truncate.
            Signer::Rsa(key) => (key.public_modulus_len() * 8) as u32,
            Signer::Ed25519(_) | Signer::EcdsaP256(_) => 256,
            Signer::Hmac { bits, .. } => *bits,
        }
    }

    /// DER SubjectPublicKeyInfo of the public key; `None` for HMAC.
    pub(crate) fn public_key_spki(&self) -> Option<Vec<u8>> {
        let spki = match self {
            Signer::Rsa(key) => key.public_key().as_der().ok()?.as_ref().to_vec(),
            Signer::Ed25519(key) => key.public_key().as_der().ok()?.as_ref().to_vec(),
            Signer::EcdsaP256(key) => key.public_key().as_der().ok()?.as_ref().to_vec(),
            Signer::Hmac { .. } => return None,
        };
        Some(spki)
    }

    /// Signs `payload`, returning the raw signature bytes.
    pub(crate) fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignError> {
        match self {
            Signer::Rsa(key) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    payload,
                    &mut signature,
                )
                .map_err(|_| SignError)?;
                Ok(signature)
            }
            Signer::Ed25519(key) => Ok(key.sign(payload).as_ref().to_vec()),
            Signer::EcdsaP256(key) => key
                .sign(&SystemRandom::new(), payload)
                .map(|sig| sig.as_ref().to_vec())
                .map_err(|_| SignError),
            Signer::Hmac { key, .. } => Ok(hmac::sign(key, payload).as_ref().to_vec()),
        }
    }
    /// Signs `message` that is itself a secret (a passphrase stored with the key), then wipes
    /// the stack the signature used. AWS-LC's HMAC keeps the message's last partial block in
    /// its context, which aws-lc-rs holds on the calling thread's stack: without the wipe a
    /// whole short passphrase stays there, in a dead frame, until the stack is reused (found
    /// by tests/tests/memory.rs after `lock`).
    pub(crate) fn sign_secret(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let signature = sign_out_of_line(self, message);
        wipe_stack();
        signature
    }
}

/// [`Signer::sign`] in a frame of its own, so that everything the signature puts on the stack
/// lies below the caller's frame, where [`wipe_stack`] reaches.
#[inline(never)]
fn sign_out_of_line(signer: &Signer, message: &[u8]) -> Result<Vec<u8>, SignError> {
    signer.sign(message)
}

/// Zeroes the 16 KiB of stack below the caller's frame: far more than an HMAC signature
/// uses, and a small part of a connection thread's stack (server.rs, `CONNECTION_STACK`).
#[inline(never)]
fn wipe_stack() {
    use zeroize::Zeroize as _;
    let mut scratch = [0u8; 16 * 1024];
    scratch.zeroize();
    std::hint::black_box(&scratch);
}

/// `SHA256:` + unpadded base64 of SHA-256 over the SPKI DER, as `ssh-keygen -l` prints.
pub(crate) fn fingerprint(spki: &[u8]) -> String {
    let hash = digest::digest(&digest::SHA256, spki);
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(hash.as_ref())
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
    };

    #[test]
    fn binance_hmac_example_matches_its_published_signature() {
        let signer = Signer::hmac(
            Scheme::HmacSha256,
            b"NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j",
        )
        .unwrap();
        let payload = b"symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
        assert_eq!(
            hex::encode(signer.sign(payload).unwrap()),
            "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
        );
    }

    #[test]
    fn generated_keys_sign_verifiably_and_reparse_from_their_pkcs8() {
        for kind in [KeyKind::Ed25519, KeyKind::EcdsaP256, KeyKind::Rsa2048] {
            let (signer, pkcs8) = Signer::generate(kind).unwrap();
            assert_eq!(signer.scheme(), kind.scheme());
            let spki = signer.public_key_spki().unwrap();
            let signature = signer.sign(b"payload").unwrap();
            let alg: &dyn aws_lc_rs::signature::VerificationAlgorithm = match kind {
                KeyKind::Ed25519 => &ED25519,
                KeyKind::EcdsaP256 => &ECDSA_P256_SHA256_FIXED,
                _ => &RSA_PKCS1_2048_8192_SHA256,
            };
            UnparsedPublicKey::new(alg, &spki)
                .verify(b"payload", &signature)
                .unwrap();
            assert!(
                UnparsedPublicKey::new(alg, &spki)
                    .verify(b"payloaD", &signature)
                    .is_err()
            );
            let again = Signer::from_pkcs8(&pkcs8).unwrap();
            assert_eq!(again.public_key_spki().unwrap(), spki);
        }
    }

    #[test]
    fn short_hmac_secrets_and_wrong_schemes_are_refused() {
        assert!(Signer::hmac(Scheme::HmacSha256, b"short").is_err());
        assert!(Signer::hmac(Scheme::Ed25519, &[7; 32]).is_err());
        assert!(Signer::from_pkcs8(b"not a key").is_err());
    }
}
