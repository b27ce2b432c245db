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

/// Blocks that may sit beside a private key and are skipped: `openssl ecparam -genkey`
/// writes `EC PARAMETERS` first, and a bundle may hold a certificate or a public key.
const SKIPPED_LABELS: [&str; 4] = [
    "EC PARAMETERS",
    "CERTIFICATE",
    "PUBLIC KEY",
    "RSA PUBLIC KEY",
];

const BEGIN: &str = "-----BEGIN ";
const DASHES: &str = "-----";

/// Finds the first private-key PEM block in `text` and decodes it. Other known blocks (an
/// `EC PARAMETERS` block from `openssl ecparam -genkey`, a certificate) are skipped.
///
/// Errors name the problem and a line number, never the text: in a malformed file the
/// "label" or the rest of a line may be the base64 of the key itself (a BEGIN line missing
/// one dash once made the whole key body the label, echoed in the error, the journal and
/// the audit log). Only labels from the fixed lists above are ever quoted.
fn find_private_key_pem(text: &[u8]) -> Result<(String, Zeroizing<Vec<u8>>), KeyError> {
    let text = std::str::from_utf8(text).map_err(|_| {
        rejected(
            "not a PEM private key (binary data); for an HMAC secret give --scheme hmac-sha256 or hmac-sha512",
        )
    })?;
    let mut offset = 0;
    while let Some(found) = text[offset..].find(BEGIN) {
        let start = offset + found;
        let line = line_number(text, start);
        let label = begin_label(&text[start..]).ok_or_else(|| {
            rejected(&format!(
                "line {line}: malformed PEM BEGIN line (it must read -----BEGIN <LABEL>----- on a line of its own)"
            ))
        })?;
        let end_marker = format!("-----END {label}-----");
        let Some(end) = text[start..].find(&end_marker) else {
            return Err(rejected(&format!(
                "line {line}: the PEM block that begins here has no matching END line"
            )));
        };
        let block = &text[start..start + end + end_marker.len()];
        if let Some(&known) = PRIVATE_KEY_LABELS.iter().find(|&&known| known == label) {
            let (decoded_label, der) = pem_rfc7468::decode_vec(block.as_bytes()).map_err(|_| {
                rejected(&format!(
                    "line {line}: the {known} block is malformed (bad base64, headers or line breaks; encrypted legacy PEM is not supported: convert with `openssl pkcs8 -topk8`)"
                ))
            })?;
            if decoded_label != known {
                return Err(rejected(&format!(
                    "line {line}: the {known} block is malformed"
                )));
            }
            return Ok((known.to_owned(), Zeroizing::new(der)));
        }
        if label == "OPENSSH PRIVATE KEY" {
            return Err(rejected(
                "OpenSSH private keys are not supported; convert with `ssh-keygen -p -m PKCS8 -f FILE`",
            ));
        }
        if !SKIPPED_LABELS.contains(&label) {
            return Err(rejected(&format!(
                "line {line}: unsupported PEM block (expected PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"
            )));
        }
        offset = start + block.len();
    }
    if text.contains("-----BEGIN PUBLIC KEY-----") {
        return Err(rejected("this is a public key; import the private key"));
    }
    Err(rejected(
        "no PEM private key found (expected PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY); for an HMAC secret give --scheme",
    ))
}

/// The label of the BEGIN line at the start of `block`, if that line is exactly
/// `-----BEGIN <LABEL>-----` (optionally followed by `\r`) with a label of RFC 7468's
/// characters: printable ASCII without `-` except between words.
fn begin_label(block: &str) -> Option<&str> {
    let line = block.lines().next()?;
    let line = line.strip_suffix('\r').unwrap_or(line);
    let label = line.strip_prefix(BEGIN)?.strip_suffix(DASHES)?;
    let well_formed = !label.is_empty()
        && label.len() <= 64
        && label
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ' || b == b'-')
        && !label.starts_with(['-', ' '])
        && !label.ends_with(['-', ' '])
        && !label.contains("--");
    well_formed.then_some(label)
}

/// The 1-based line number of byte `at` in `text`.
fn line_number(text: &str, at: usize) -> usize {
    text[..at].bytes().filter(|&b| b == b'\n').count() + 1
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // The body of a real Ed25519 PKCS#8 key (RFC 8410's example).
    const BODY: &str = "MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC";

    fn error_of(text: &str) -> String {
        match find_private_key_pem(text.as_bytes()) {
            Err(KeyError::Rejected(why)) => why,
            Err(other) => panic!("unexpected error {other:?}"),
            Ok(_) => panic!("accepted {text:?}"),
        }
    }

    #[test]
    fn a_begin_line_missing_a_dash_is_refused_without_echoing_the_key() {
        // The review's case: one dash missing made the key body the "label".
        for text in [
            format!("-----BEGIN PRIVATE KEY----\n{BODY}\n-----END PRIVATE KEY-----\n"),
            format!("-----BEGIN PRIVATE KEY{BODY}-----\n-----END PRIVATE KEY-----\n"),
            format!("-----BEGIN {BODY}-----\n{BODY}\n-----END {BODY}-----\n"),
            format!("junk\n-----BEGIN PRIVATE KEY-----\n{BODY}\n-----END PRIVATE KEY----\n"),
            format!("-----BEGIN PRIVATE KEY-----\n{BODY}!!\n-----END PRIVATE KEY-----\n"),
        ] {
            let why = error_of(&text);
            assert!(!why.contains(&BODY[..16]), "key material in {why:?}");
            assert!(!why.contains("MC4C") && !why.contains('\n'), "{why:?}");
            assert!(why.contains("line "), "no position in {why:?}");
        }
        assert!(error_of(&format!("x\n\n-----BEGIN PRIVATE KEY----\n{BODY}\n")).contains("line 3"));
    }

    #[test]
    fn known_neighbour_blocks_are_skipped_and_unknown_ones_refused() {
        let params =
            "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n";
        let key = format!("-----BEGIN PRIVATE KEY-----\n{BODY}\n-----END PRIVATE KEY-----\n");
        let (label, der) = find_private_key_pem(format!("{params}{key}").as_bytes()).unwrap();
        assert_eq!(label, "PRIVATE KEY");
        assert_eq!(der.len(), 48);
        let why = error_of(&format!(
            "-----BEGIN SECRET STUFF-----\nAAAA\n-----END SECRET STUFF-----\n{key}"
        ));
        assert!(
            why.contains("unsupported PEM block") && !why.contains("SECRET STUFF"),
            "{why}"
        );
    }
}
