//! The bytes of the two keystore files: the header (format version 1) and key files (format
//! version 2, which adds the payload format, and version 3, whose sealed part holds a
//! passphrase after the secret; version 1 key files still read, with neither). No
//! I/O and no cryptography here: encoding, strict decoding, and the associated data each
//! file's AEAD binds.
//!
//! docs/KEYSTORE.md describes the same layout for people; the two must agree.
//!
//! Every integer is big-endian. A decoder reads the magic, then the version, and only then
//! looks at the rest, so that a file written by a later format is reported as an unsupported
//! version rather than as corruption.

use keyward_protocol::{PayloadFormat, Scheme, validate_key_name};

use super::{KdfParams, KeyMeta};

/// The header format version this code writes and reads.
pub(super) const HEADER_VERSION: u32 = 1;
/// The newest key file format version; this code reads every version from 1 up to it.
/// Version 2 appended the payload format to the metadata; version 3 seals a passphrase with
/// the secret ([`encode_sealed`]). A key with a passphrase is written in version 3, any other
/// in version 2 ([`KEY_VERSION_PLAIN`]), so a keystore without passphrases still reads in
/// the release before version 3.
pub(super) const KEY_VERSION: u32 = 3;
/// The key file version written for a key without a passphrase.
pub(super) const KEY_VERSION_PLAIN: u32 = 2;

/// Largest passphrase sealed with a key (KuCoin's are at most 32 characters).
pub(crate) const MAX_PASSPHRASE_LEN: usize = 256;

/// First bytes of the header file.
pub(super) const HEADER_MAGIC: [u8; 8] = *b"KWSTORE\0";
/// First bytes of every key file.
pub(super) const KEY_MAGIC: [u8; 8] = *b"KWKEY\0\0\0";

/// Argon2id salt length: 128 bits, as RFC 9106 section 3.1 recommends.
pub(super) const SALT_LEN: usize = 16;
/// XChaCha20-Poly1305 nonce length. 192 random bits: collisions are negligible however many
/// files are ever sealed under one data key.
pub(super) const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
pub(super) const TAG_LEN: usize = 16;
/// Length of the data key and of the passphrase-derived key.
pub(super) const KEY_LEN: usize = 32;

/// Header bytes bound as associated data: magic, version, m, t, p, salt.
const HEADER_AAD_LEN: usize = 8 + 4 + 4 + 4 + 4 + SALT_LEN;
/// Total length of a version 1 header file.
pub(super) const HEADER_LEN: usize = HEADER_AAD_LEN + NONCE_LEN + KEY_LEN + TAG_LEN;

/// Largest secret a key file may hold. An RSA-4096 PKCS#8 DER is under 2.5 KiB.
pub(super) const MAX_SECRET_LEN: usize = 64 * 1024;
/// Largest key file read: metadata (under 66 KiB) + nonce + the largest secret + tag.
pub(super) const MAX_KEY_FILE_LEN: u64 = 160 * 1024;
/// Largest header file read. A version 1 header is [`HEADER_LEN`] bytes; later versions may
/// be longer, and must still be read far enough to report their version.
pub(super) const MAX_HEADER_FILE_LEN: u64 = 64 * 1024;

/// Largest Argon2 memory cost accepted, in KiB (4 GiB). A header asking for more is corrupt,
/// not a reason to let the allocator abort the daemon.
pub(super) const MAX_M_COST_KIB: u32 = 4 * 1024 * 1024;
/// Largest Argon2 pass count accepted.
pub(super) const MAX_T_COST: u32 = 256;
/// Largest Argon2 lane count accepted (lanes run one after another in this build).
pub(super) const MAX_P_COST: u32 = 64;

/// Why a file could not be decoded. The caller turns it into the error of its layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FormatError {
    /// A keyward file of a format version this code does not read.
    Unsupported { found: u32 },
    /// Not a valid file of the supported version.
    Corrupt(String),
}

fn corrupt(reason: impl Into<String>) -> FormatError {
    FormatError::Corrupt(reason.into())
}

impl KdfParams {
    /// Checks the parameters against Argon2's rules and this format's limits.
    pub(super) fn check(&self) -> Result<(), String> {
        let KdfParams {
            m_cost_kib: m,
            t_cost: t,
            p_cost: p,
        } = *self;
        if !(1..=MAX_P_COST).contains(&p) {
            return Err(format!("parallelism {p} is outside 1..={MAX_P_COST}"));
        }
        if !(1..=MAX_T_COST).contains(&t) {
            return Err(format!("pass count {t} is outside 1..={MAX_T_COST}"));
        }
        // p <= 64, so 8 * p cannot overflow.
        if m < 8 * p || m > MAX_M_COST_KIB {
            return Err(format!(
                "memory cost {m} KiB is outside {}..={MAX_M_COST_KIB} KiB",
                8 * p
            ));
        }
        Ok(())
    }
}

/// The parsed header file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) params: KdfParams,
    pub(super) salt: [u8; SALT_LEN],
    pub(super) nonce: [u8; NONCE_LEN],
    /// The data key encrypted under the passphrase-derived key (not secret).
    pub(super) wrapped_key: [u8; KEY_LEN],
    pub(super) tag: [u8; TAG_LEN],
}

impl Header {
    /// The associated data of the data-key wrapping: every header byte before the nonce.
    pub(super) fn aad(&self) -> [u8; HEADER_AAD_LEN] {
        let mut out = [0u8; HEADER_AAD_LEN];
        let mut w = Writer::new(&mut out);
        w.put(&HEADER_MAGIC);
        w.put(&HEADER_VERSION.to_be_bytes());
        w.put(&self.params.m_cost_kib.to_be_bytes());
        w.put(&self.params.t_cost.to_be_bytes());
        w.put(&self.params.p_cost.to_be_bytes());
        w.put(&self.salt);
        out
    }

    /// The whole header file.
    pub(super) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let mut w = Writer::new(&mut out);
        w.put(&self.aad());
        w.put(&self.nonce);
        w.put(&self.wrapped_key);
        w.put(&self.tag);
        out
    }

    /// Decodes a header file: exact length, known version, parameters within limits.
    pub(super) fn decode(bytes: &[u8]) -> Result<Header, FormatError> {
        let mut r = Reader::new(bytes);
        check_magic_and_version(&mut r, &HEADER_MAGIC, "keystore header", HEADER_VERSION)?;
        if bytes.len() != HEADER_LEN {
            return Err(if bytes.len() < HEADER_LEN {
                corrupt(format!("truncated: {} of {HEADER_LEN} bytes", bytes.len()))
            } else {
                corrupt(format!(
                    "{} unexpected bytes after the header",
                    bytes.len() - HEADER_LEN
                ))
            });
        }
        let params = KdfParams {
            m_cost_kib: r.u32()?,
            t_cost: r.u32()?,
            p_cost: r.u32()?,
        };
        params.check().map_err(corrupt)?;
        Ok(Header {
            params,
            salt: r.array()?,
            nonce: r.array()?,
            wrapped_key: r.array()?,
            tag: r.array()?,
        })
    }
}

/// Reads the magic and the version (1 to `newest`), so that a later format is told apart from
/// garbage. Returns the version.
fn check_magic_and_version(
    r: &mut Reader<'_>,
    magic: &[u8; 8],
    what: &str,
    newest: u32,
) -> Result<u32, FormatError> {
    let head = r.rest();
    let n = head.len().min(magic.len());
    if head[..n] != magic[..n] {
        return Err(corrupt(format!("not a keyward {what} (wrong magic bytes)")));
    }
    if head.len() < magic.len() + 4 {
        return Err(corrupt(format!(
            "truncated: {} bytes, too short for a {what}",
            head.len()
        )));
    }
    r.take(magic.len())?;
    let found = r.u32()?;
    if !(1..=newest).contains(&found) {
        return Err(FormatError::Unsupported { found });
    }
    Ok(found)
}

/// Encodes a key's metadata in key file `version` (2 or 3; they differ only in the sealed
/// part): the plaintext part of a key file, and its associated data.
///
/// Fails if a field cannot be represented (an API key id longer than 65535 bytes).
pub(super) fn encode_key_meta(meta: &KeyMeta, version: u32) -> Result<Vec<u8>, String> {
    let name = meta.name.as_bytes();
    let scheme = meta.scheme.name().as_bytes();
    let name_len = u8::try_from(name.len()).map_err(|_| "the name is too long".to_owned())?;
    let scheme_len =
        u8::try_from(scheme.len()).map_err(|_| "the scheme name is too long".to_owned())?;
    let mut out = Vec::with_capacity(8 + 4 + 1 + name.len() + 1 + scheme.len() + 3 + 8 + 64);
    out.extend_from_slice(&KEY_MAGIC);
    out.extend_from_slice(&version.to_be_bytes());
    out.push(name_len);
    out.extend_from_slice(name);
    out.push(scheme_len);
    out.extend_from_slice(scheme);
    match &meta.api_key {
        None => out.push(0),
        Some(api_key) => {
            let len = u16::try_from(api_key.len())
                .map_err(|_| "the API key id is longer than 65535 bytes".to_owned())?;
            out.push(1);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(api_key.as_bytes());
        }
    }
    out.extend_from_slice(&meta.created_unix.to_be_bytes());
    // Version 2: the payload format's name, length-prefixed; length 0 is "none".
    let format = meta.format.map_or("", PayloadFormat::name).as_bytes();
    out.push(u8::try_from(format.len()).map_err(|_| "the format name is too long".to_owned())?);
    out.extend_from_slice(format);
    Ok(out)
}

/// The length of the plaintext a version 3 file seals: `u32` secret length, the secret,
/// `u16` passphrase length, the passphrase.
pub(super) fn sealed_len_v3(secret_len: usize, passphrase_len: usize) -> usize {
    4 + secret_len + 2 + passphrase_len
}

/// Appends the plaintext a version 3 file seals to `out` (which the caller sized exactly and
/// zeroizes). Lengths are checked by the caller.
pub(super) fn encode_sealed(out: &mut Vec<u8>, secret: &[u8], passphrase: &[u8]) {
    // Both fit: the secret is at most MAX_SECRET_LEN, the passphrase MAX_PASSPHRASE_LEN.
    let secret_len = u32::try_from(secret.len()).unwrap_or(u32::MAX);
    let passphrase_len = u16::try_from(passphrase.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&secret_len.to_be_bytes());
    out.extend_from_slice(secret);
    out.extend_from_slice(&passphrase_len.to_be_bytes());
    out.extend_from_slice(passphrase);
}

/// Splits a decrypted version 3 plaintext into the secret and the passphrase (`None` when
/// its length is 0). Strict: the lengths must add up to exactly the plaintext.
pub(super) fn decode_sealed(plain: &[u8]) -> Result<(&[u8], Option<&[u8]>), FormatError> {
    let mut r = Reader::new(plain);
    let secret_len = usize::try_from(u32::from_be_bytes(r.array()?))
        .map_err(|_| corrupt("the sealed secret length does not fit"))?;
    let secret = r.take(secret_len)?;
    if secret.is_empty() {
        return Err(corrupt("the sealed secret is empty"));
    }
    let passphrase_len = usize::from(u16::from_be_bytes(r.array()?));
    let passphrase = r.take(passphrase_len)?;
    if !r.rest().is_empty() {
        return Err(corrupt(format!(
            "{} unexpected bytes after the sealed passphrase",
            r.rest().len()
        )));
    }
    Ok((secret, (!passphrase.is_empty()).then_some(passphrase)))
}

/// A decoded key file whose secret is still sealed. Borrows the file's bytes.
#[derive(Debug)]
pub(super) struct SealedKey<'a> {
    /// The file's format version: 3 seals the secret with a passphrase ([`decode_sealed`]),
    /// 1 and 2 the secret alone.
    pub(super) version: u32,
    pub(super) meta: KeyMeta,
    /// Associated data: every byte before the nonce.
    pub(super) aad: &'a [u8],
    pub(super) nonce: &'a [u8; NONCE_LEN],
    pub(super) ciphertext: &'a [u8],
    pub(super) tag: &'a [u8; TAG_LEN],
}

/// Decodes a key file's metadata and splits off nonce, ciphertext and tag. Nothing is
/// authenticated yet: the metadata is what the file claims until the AEAD has verified it.
pub(super) fn decode_key_file(bytes: &[u8]) -> Result<SealedKey<'_>, FormatError> {
    let mut r = Reader::new(bytes);
    let version = check_magic_and_version(&mut r, &KEY_MAGIC, "key file", KEY_VERSION)?;

    let name_len = usize::from(r.u8()?);
    let name =
        std::str::from_utf8(r.take(name_len)?).map_err(|_| corrupt("the key name is not UTF-8"))?;
    validate_key_name(name).map_err(|err| corrupt(format!("stored name: {err}")))?;

    let scheme_len = usize::from(r.u8()?);
    let scheme = std::str::from_utf8(r.take(scheme_len)?)
        .ok()
        .and_then(|s| s.parse::<Scheme>().ok())
        .ok_or_else(|| corrupt("unknown scheme"))?;

    let api_key = match r.u8()? {
        0 => None,
        1 => {
            let len = usize::from(u16::from_be_bytes(r.array()?));
            let text = std::str::from_utf8(r.take(len)?)
                .map_err(|_| corrupt("the API key id is not UTF-8"))?;
            Some(text.to_owned())
        }
        other => return Err(corrupt(format!("invalid API key id flag {other}"))),
    };
    let created_unix = u64::from_be_bytes(r.array()?);
    // Version 1 files predate payload formats: they have none.
    let format = if version >= 2 {
        match usize::from(r.u8()?) {
            0 => None,
            len => Some(
                std::str::from_utf8(r.take(len)?)
                    .ok()
                    .and_then(|name| name.parse::<PayloadFormat>().ok())
                    .ok_or_else(|| corrupt("unknown payload format"))?,
            ),
        }
    } else {
        None
    };

    let aad_len = r.pos;
    let nonce = r.array_ref::<NONCE_LEN>()?;
    let sealed = r.rest();
    if sealed.len() <= TAG_LEN {
        return Err(corrupt("truncated: no encrypted secret after the metadata"));
    }
    let (ciphertext, tag) = sealed.split_at(sealed.len() - TAG_LEN);
    let tag: &[u8; TAG_LEN] = tag
        .try_into()
        .map_err(|_| corrupt("truncated: no authentication tag"))?;
    Ok(SealedKey {
        version,
        meta: KeyMeta {
            name: name.to_owned(),
            scheme,
            api_key,
            created_unix,
            format,
        },
        aad: &bytes[..aad_len],
        nonce,
        ciphertext,
        tag,
    })
}

/// A cursor over a file's bytes; running past the end is a "truncated" error.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        let rest = self.rest();
        if rest.len() < n {
            return Err(corrupt(format!(
                "truncated at byte {} of {}",
                self.bytes.len(),
                self.pos + n
            )));
        }
        self.pos += n;
        Ok(&rest[..n])
    }

    fn array_ref<const N: usize>(&mut self) -> Result<&'a [u8; N], FormatError> {
        let bytes = self.take(N)?;
        bytes
            .try_into()
            .map_err(|_| corrupt("internal length mismatch"))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        self.array_ref::<N>().copied()
    }

    fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
}

/// Writes into a fixed-size buffer whose length the caller computed exactly.
struct Writer<'a> {
    out: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    fn new(out: &'a mut [u8]) -> Self {
        Writer { out, pos: 0 }
    }

    fn put(&mut self, bytes: &[u8]) {
        self.out[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            params: KdfParams {
                m_cost_kib: 1024,
                t_cost: 1,
                p_cost: 1,
            },
            salt: [1; SALT_LEN],
            nonce: [2; NONCE_LEN],
            wrapped_key: [3; KEY_LEN],
            tag: [4; TAG_LEN],
        }
    }

    #[test]
    fn header_round_trips_and_has_the_documented_bytes() {
        let bytes = header().encode();
        assert_eq!(bytes.len(), 112);
        assert_eq!(&bytes[..12], b"KWSTORE\0\0\0\0\x01");
        // m = 1024 KiB, t = 1, p = 1
        assert_eq!(&bytes[12..24], &[0, 0, 4, 0, 0, 0, 0, 1, 0, 0, 0, 1]);
        assert_eq!(&bytes[24..40], &[1; 16]);
        assert_eq!(&bytes[40..64], &[2; 24]);
        assert_eq!(Header::decode(&bytes), Ok(header()));
    }

    #[test]
    fn every_truncation_of_a_header_is_corrupt() {
        let bytes = header().encode();
        for len in 0..bytes.len() {
            assert!(
                matches!(Header::decode(&bytes[..len]), Err(FormatError::Corrupt(_))),
                "{len}"
            );
        }
        let mut long = bytes.to_vec();
        long.push(0);
        assert!(matches!(
            Header::decode(&long),
            Err(FormatError::Corrupt(_))
        ));
    }

    #[test]
    fn a_later_version_is_unsupported_not_corrupt() {
        let mut bytes = header().encode().to_vec();
        bytes[11] = 2;
        bytes.truncate(20); // a later format may have any length
        assert_eq!(
            Header::decode(&bytes),
            Err(FormatError::Unsupported { found: 2 })
        );
    }

    #[test]
    fn absurd_parameters_are_corrupt() {
        for (m, t, p) in [(0, 1, 1), (1024, 0, 1), (1024, 1, 0), (u32::MAX, 1, 1)] {
            let mut h = header();
            h.params = KdfParams {
                m_cost_kib: m,
                t_cost: t,
                p_cost: p,
            };
            assert!(matches!(
                Header::decode(&h.encode()),
                Err(FormatError::Corrupt(_))
            ));
        }
    }

    #[test]
    fn key_metadata_round_trips() {
        let cases = [
            (None, None),
            (Some(String::new()), Some(PayloadFormat::CoinbaseJwt)),
            (
                Some("vmPUZE6mv9SD5VNHk4HlWFsOr".into()),
                Some(PayloadFormat::Binance),
            ),
        ];
        for (api_key, format) in cases {
            let meta = KeyMeta {
                name: "binance-main".into(),
                scheme: Scheme::Ed25519,
                api_key,
                created_unix: 1_700_000_000,
                format,
            };
            let mut file = encode_key_meta(&meta, KEY_VERSION_PLAIN).unwrap();
            let aad_len = file.len();
            file.extend_from_slice(&[9; NONCE_LEN]);
            file.extend_from_slice(&[7; 5]);
            file.extend_from_slice(&[8; TAG_LEN]);
            let sealed = decode_key_file(&file).unwrap();
            assert_eq!(sealed.meta, meta);
            assert_eq!(sealed.aad.len(), aad_len);
            assert_eq!(sealed.nonce, &[9; NONCE_LEN]);
            assert_eq!(sealed.ciphertext, &[7; 5]);
            assert_eq!(sealed.tag, &[8; TAG_LEN]);
            // Any truncation is an error, never a panic.
            for len in 0..file.len() - TAG_LEN {
                assert!(decode_key_file(&file[..len]).is_err(), "{len}");
            }
        }
    }

    /// Version 2 appends the format after `created`: a length byte and the name, `00` for none.
    #[test]
    fn a_version_2_key_file_has_the_format_after_created() {
        let meta = KeyMeta {
            name: "k".into(),
            scheme: Scheme::HmacSha256,
            api_key: None,
            created_unix: 1,
            format: Some(PayloadFormat::Kucoin),
        };
        let bytes = encode_key_meta(&meta, KEY_VERSION_PLAIN).unwrap();
        assert_eq!(
            bytes,
            [
                &b"KWKEY\0\0\0"[..],
                &[0, 0, 0, 2],
                b"\x01k\x0bhmac-sha256\x00",
                &[0, 0, 0, 0, 0, 0, 0, 1],
                b"\x06kucoin",
            ]
            .concat()
        );
        let none = encode_key_meta(
            &KeyMeta {
                format: None,
                ..meta.clone()
            },
            KEY_VERSION_PLAIN,
        )
        .unwrap();
        assert_eq!(none.last(), Some(&0));
        // An unknown name is corrupt, as an unknown scheme is.
        let mut file = bytes[..bytes.len() - 7].to_vec();
        file.extend_from_slice(b"\x06kucoim");
        file.extend_from_slice(&[0; NONCE_LEN + 1 + TAG_LEN]);
        assert_eq!(
            decode_key_file(&file).unwrap_err(),
            FormatError::Corrupt("unknown payload format".into())
        );
    }

    /// Key files written before payload formats (version 1) still read, with no format.
    #[test]
    fn a_version_1_key_file_reads_with_no_format() {
        let mut file = [
            &b"KWKEY\0\0\0"[..],
            &[0, 0, 0, 1],
            b"\x01k\x07ed25519\x00",
            &[0, 0, 0, 0, 0, 0, 0, 1],
        ]
        .concat();
        let aad_len = file.len();
        file.extend_from_slice(&[9; NONCE_LEN + 3 + TAG_LEN]);
        let sealed = decode_key_file(&file).unwrap();
        assert_eq!(sealed.meta.format, None);
        assert_eq!(sealed.aad.len(), aad_len);
        assert_eq!(sealed.ciphertext, &[9; 3]);
        // Version 4 is not read.
        file[11] = 4;
        assert_eq!(
            decode_key_file(&file).unwrap_err(),
            FormatError::Unsupported { found: 4 }
        );
    }

    /// Version 3's sealed part: u32 secret length, secret, u16 passphrase length, passphrase.
    #[test]
    fn a_version_3_sealed_part_round_trips_strictly() {
        let mut plain = Vec::new();
        encode_sealed(&mut plain, b"secret", b"pass");
        assert_eq!(plain, b"\0\0\0\x06secret\0\x04pass");
        assert_eq!(plain.len(), sealed_len_v3(6, 4));
        assert_eq!(
            decode_sealed(&plain).unwrap(),
            (&b"secret"[..], Some(&b"pass"[..]))
        );
        let mut none = Vec::new();
        encode_sealed(&mut none, b"secret", b"");
        assert_eq!(decode_sealed(&none).unwrap(), (&b"secret"[..], None));
        for len in 0..plain.len() {
            assert!(decode_sealed(&plain[..len]).is_err(), "{len}");
        }
        plain.push(0);
        assert!(decode_sealed(&plain).is_err(), "trailing bytes");
        assert!(decode_sealed(b"\0\0\0\0\0\0").is_err(), "empty secret");
    }
}
