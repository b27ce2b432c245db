//! Checking a signature against a public key (SPKI DER), as the exchange will.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
    VerificationAlgorithm,
};
use keyward_client::Scheme;

/// Verifies `signature` over `payload` with the public key `spki` (DER SubjectPublicKeyInfo).
pub(crate) fn verify(
    scheme: Scheme,
    spki: &[u8],
    payload: &[u8],
    signature: &[u8],
) -> anyhow::Result<()> {
    let algorithm: &'static dyn VerificationAlgorithm = match scheme {
        Scheme::RsaPkcs1v15Sha256 => &RSA_PKCS1_2048_8192_SHA256,
        Scheme::Ed25519 => &ED25519,
        Scheme::EcdsaP256Sha256 => &ECDSA_P256_SHA256_FIXED,
        other => anyhow::bail!("{other} signatures cannot be checked with a public key"),
    };
    UnparsedPublicKey::new(algorithm, spki)
        .verify(payload, signature)
        .map_err(|_| anyhow::anyhow!("the {scheme} signature does not verify"))
}
