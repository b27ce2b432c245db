//! The schemes measured, and keys made in-process with aws-lc-rs: one copy signs here (the
//! in-process baseline) and the same key, imported as PKCS#8 PEM, signs in the daemon.

use anyhow::Context as _;
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{self, SystemRandom};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair, UnparsedPublicKey,
};
use keyward_client::{Client, Scheme, SecretBytes};

/// A scheme (and key size) measured end to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BenchScheme {
    Ed25519,
    HmacSha256,
    EcdsaP256,
    Rsa2048,
    Rsa4096,
}

impl BenchScheme {
    pub(crate) const ALL: [BenchScheme; 5] = [
        BenchScheme::Ed25519,
        BenchScheme::HmacSha256,
        BenchScheme::EcdsaP256,
        BenchScheme::Rsa2048,
        BenchScheme::Rsa4096,
    ];

    /// The label in tables and JSON.
    pub(crate) fn label(self) -> &'static str {
        match self {
            BenchScheme::Ed25519 => "ed25519",
            BenchScheme::HmacSha256 => "hmac-sha256",
            BenchScheme::EcdsaP256 => "ecdsa-p256",
            BenchScheme::Rsa2048 => "rsa-2048",
            BenchScheme::Rsa4096 => "rsa-4096",
        }
    }

    /// The key's name in the daemon.
    pub(crate) fn key_name(self) -> String {
        format!("bench-{}", self.label())
    }

    /// Makes a key: the in-process signer and what `Client::import` needs for the same key.
    pub(crate) fn generate(self) -> anyhow::Result<LocalKey> {
        let rng = SystemRandom::new();
        let failed = || format!("cannot generate an {} key in-process", self.label());
        let (signer, der) = match self {
            BenchScheme::Ed25519 => {
                let doc = Ed25519KeyPair::generate_pkcs8(&rng)
                    .ok()
                    .with_context(failed)?;
                let key =
                    Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|e| anyhow::anyhow!("{e}"))?;
                (Signer::Ed25519(key), doc.as_ref().to_vec())
            }
            BenchScheme::EcdsaP256 => {
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .ok()
                    .with_context(failed)?;
                let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref())
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                (Signer::EcdsaP256(key), doc.as_ref().to_vec())
            }
            BenchScheme::Rsa2048 | BenchScheme::Rsa4096 => {
                let size = if self == BenchScheme::Rsa2048 {
                    KeySize::Rsa2048
                } else {
                    KeySize::Rsa4096
                };
                let key = RsaKeyPair::generate(size).ok().with_context(failed)?;
                let der: Pkcs8V1Der<'static> = key.as_der().ok().with_context(failed)?;
                let der = der.as_ref().to_vec();
                (Signer::Rsa(key), der)
            }
            BenchScheme::HmacSha256 => {
                let mut secret = vec![0u8; 32];
                rand::fill(&mut secret).ok().with_context(failed)?;
                let key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
                return Ok(LocalKey {
                    scheme: self,
                    signer: Signer::Hmac(Box::new(key)),
                    material: secret,
                });
            }
        };
        let pem = pem_rfc7468::encode_string("PRIVATE KEY", pem_rfc7468::LineEnding::LF, &der)
            .map_err(|err| anyhow::anyhow!("cannot PEM-encode a PKCS#8 key: {err}"))?;
        Ok(LocalKey {
            scheme: self,
            signer,
            material: pem.into_bytes(),
        })
    }
}

enum Signer {
    Ed25519(Ed25519KeyPair),
    EcdsaP256(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    // Boxed, as in the daemon: AWS-LC's HMAC context is several times larger than the rest.
    Hmac(Box<hmac::Key>),
}

/// A key held in this process, and its private material for the daemon.
pub(crate) struct LocalKey {
    pub(crate) scheme: BenchScheme,
    signer: Signer,
    /// PKCS#8 PEM, or the raw secret of an HMAC key.
    material: Vec<u8>,
}

impl LocalKey {
    /// Signs in-process exactly as the daemon does, down to returning the signature in a
    /// fresh `Vec` (a bot needs the bytes, and so does the daemon to answer).
    pub(crate) fn sign(&self, payload: &[u8]) -> anyhow::Result<Vec<u8>> {
        match &self.signer {
            Signer::Ed25519(key) => Ok(key.sign(payload).as_ref().to_vec()),
            Signer::EcdsaP256(key) => key
                .sign(&SystemRandom::new(), payload)
                .map(|sig| sig.as_ref().to_vec())
                .map_err(|_| anyhow::anyhow!("ECDSA signing failed")),
            Signer::Rsa(key) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    payload,
                    &mut signature,
                )
                .map_err(|_| anyhow::anyhow!("RSA signing failed"))?;
                Ok(signature)
            }
            Signer::Hmac(key) => Ok(hmac::sign(key, payload).as_ref().to_vec()),
        }
    }

    /// The private material [`LocalKey::from_material`] takes back: PKCS#8 PEM, or an HMAC
    /// secret. For the bare signer, which runs in another process.
    pub(crate) fn material(&self) -> &[u8] {
        &self.material
    }

    /// The same key again, from [`LocalKey::material`].
    pub(crate) fn from_material(scheme: BenchScheme, material: &[u8]) -> anyhow::Result<LocalKey> {
        let bad = |err: aws_lc_rs::error::KeyRejected| {
            anyhow::anyhow!("cannot read the {} key: {err}", scheme.label())
        };
        let signer = if scheme == BenchScheme::HmacSha256 {
            Signer::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA256, material)))
        } else {
            let (label, der) = pem_rfc7468::decode_vec(material)
                .map_err(|err| anyhow::anyhow!("cannot read a PEM key: {err}"))?;
            anyhow::ensure!(label == "PRIVATE KEY", "not a PKCS#8 key: {label}");
            match scheme {
                BenchScheme::Ed25519 => {
                    Signer::Ed25519(Ed25519KeyPair::from_pkcs8(&der).map_err(bad)?)
                }
                BenchScheme::EcdsaP256 => Signer::EcdsaP256(
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                        .map_err(bad)?,
                ),
                _ => Signer::Rsa(RsaKeyPair::from_pkcs8(&der).map_err(bad)?),
            }
        };
        Ok(LocalKey {
            scheme,
            signer,
            material: material.to_vec(),
        })
    }

    /// Imports this key into the daemon under `name`.
    pub(crate) fn import(&self, client: &mut Client, name: &str) -> anyhow::Result<()> {
        let scheme = (self.scheme == BenchScheme::HmacSha256).then_some(Scheme::HmacSha256);
        client
            .import(
                name,
                scheme,
                SecretBytes::new(self.material.clone()),
                None,
                None,
                None,
            )
            .with_context(|| format!("cannot import the {} key", self.scheme.label()))?;
        Ok(())
    }

    /// Checks that `signature`, made by the daemon, comes from this very key: byte-equal to
    /// ours for the deterministic schemes, verified against our public key for ECDSA.
    pub(crate) fn check(&self, payload: &[u8], signature: &[u8]) -> anyhow::Result<()> {
        let same = match &self.signer {
            Signer::EcdsaP256(key) => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.public_key().as_ref())
                    .verify(payload, signature)
                    .is_ok()
            }
            _ => self.sign(payload)? == signature,
        };
        anyhow::ensure!(
            same,
            "the daemon's {} signature is not one of the in-process key",
            self.scheme.label()
        );
        Ok(())
    }
}
