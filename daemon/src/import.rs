//! Turning key material a client sent into a [`Signer`]: PEM detection and parsing.
//!
//! Accepted: PKCS#8 (`PRIVATE KEY`) for every asymmetric scheme, PKCS#1 (`RSA PRIVATE KEY`),
//! SEC1 (`EC PRIVATE KEY`, P-256, with or without a preceding `EC PARAMETERS` block), and raw
//! HMAC secrets. Every buffer holding key bytes is zeroized when dropped.

use keyward_protocol::Scheme;
use zeroize::Zeroizing;

use crate::signer::{KeyError, Signer};

/// A parsed key and the secret to persist for it: PKCS#8 DER for asymmetric keys (whatever
/// format it arrived in), the raw secret for HMAC keys.
pub(crate) struct Imported {
    pub(crate) signer: Signer,
    pub(crate) secret: Zeroizing<Vec<u8>>,
}

/// Parses `material` as the key `scheme` asks for, or detects the scheme from a PEM key.
pub(crate) fn import(
    scheme: Option<Scheme>,
    material: &[u8],
    pem_passphrase: Option<&[u8]>,
) -> Result<Imported, KeyError> {
    if let Some(scheme) = scheme.filter(|s| s.is_hmac()) {
        let signer = Signer::hmac(scheme, material)?;
        return Ok(Imported {
            signer,
            secret: Zeroizing::new(material.to_vec()),
        });
    }
    let (label, der) = find_private_key_pem(material)?;
    let signer = match label.as_str() {
        "PRIVATE KEY" => Signer::from_pkcs8(&der)?,
        "RSA PRIVATE KEY" => Signer::from_pkcs1_rsa(&der)?,
        "EC PRIVATE KEY" => Signer::from_sec1_p256(&der)?,
        "ENCRYPTED PRIVATE KEY" => {
            let Some(password) = pem_passphrase else {
                return Err(rejected(
                    "the PEM key is encrypted; give its password (--pem-passphrase-file)",
                ));
            };
            Signer::from_pkcs8(decrypt_pkcs8(&der, password)?.as_bytes())?
        }
        other => return Err(rejected(&format!("unexpected PEM block {other:?}"))),
    };
    if let Some(wanted) = scheme
        && wanted != signer.scheme()
    {
        return Err(KeyError::Rejected(format!(
            "the key is {}, not {wanted}",
            signer.scheme()
        )));
    }
    let secret = signer
        .private_pkcs8()
        .ok_or_else(|| rejected("the key cannot be re-encoded as PKCS#8"))?;
    Ok(Imported { signer, secret })
}

/// Decrypts an `EncryptedPrivateKeyInfo` (PBES2, as `openssl pkcs8 -topk8 -v2 aes-256-cbc`
/// writes). The plaintext lands in the pkcs8 crate's zeroizing `SecretDocument`.
fn decrypt_pkcs8(der: &[u8], password: &[u8]) -> Result<pkcs8::SecretDocument, KeyError> {
    let encrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(der)
        .map_err(|_| rejected("the encrypted PKCS#8 key is malformed"))?;
    encrypted.decrypt(password).map_err(|_| {
        rejected("cannot decrypt the PEM key: wrong password or unsupported encryption (PBES2 with AES and PBKDF2 or scrypt is supported)")
    })
}

fn rejected(why: &str) -> KeyError {
    KeyError::Rejected(why.to_owned())
}

const PRIVATE_KEY_LABELS: [&str; 4] = [
    "PRIVATE KEY",
    "RSA PRIVATE KEY",
    "EC PRIVATE KEY",
    "ENCRYPTED PRIVATE KEY",
];

/// Finds the first private-key PEM block in `text` and decodes it. Other blocks (an
/// `EC PARAMETERS` block from `openssl ecparam -genkey`, a certificate) are skipped.
fn find_private_key_pem(text: &[u8]) -> Result<(String, Zeroizing<Vec<u8>>), KeyError> {
    let text = std::str::from_utf8(text).map_err(|_| {
        rejected(
            "not a PEM private key (binary data); for an HMAC secret give --scheme hmac-sha256 or hmac-sha512",
        )
    })?;
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let block = &rest[start..];
        let label = block["-----BEGIN ".len()..]
            .split_once("-----")
            .map(|(label, _)| label)
            .unwrap_or_default();
        let end_marker = format!("-----END {label}-----");
        let Some(end) = block.find(&end_marker) else {
            return Err(rejected(&format!("PEM block {label:?} has no END line")));
        };
        let whole = &block[..end + end_marker.len()];
        if PRIVATE_KEY_LABELS.contains(&label) {
            let (decoded_label, der) = pem_rfc7468::decode_vec(whole.as_bytes())
                .map_err(|_| rejected(&format!("PEM block {label:?} is malformed (encrypted legacy PEM is not supported; convert with `openssl pkcs8 -topk8`)")))?;
            return Ok((decoded_label.to_owned(), Zeroizing::new(der)));
        }
        if label == "OPENSSH PRIVATE KEY" {
            return Err(rejected(
                "OpenSSH private keys are not supported; convert with `ssh-keygen -p -m PKCS8 -f FILE`",
            ));
        }
        rest = &block[whole.len()..];
    }
    if text.contains("-----BEGIN PUBLIC KEY-----") {
        return Err(rejected("this is a public key; import the private key"));
    }
    Err(rejected(
        "no PEM private key found (expected PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY); for an HMAC secret give --scheme",
    ))
}
