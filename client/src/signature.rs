//! A signature from the daemon and its text encodings.

use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use keyward_protocol::Scheme;

/// Raw signature bytes from the daemon, with the scheme that made them.
///
/// The daemon sends bytes; the encoding an exchange wants is chosen here: [`to_hex`]
/// (Binance and Bybit HMAC), [`to_base64`] (Binance RSA and Ed25519, OKX, KuCoin, Kraken),
/// [`to_base64url`] (JWT, e.g. Coinbase CDP ES256).
///
/// [`to_hex`]: Signature::to_hex
/// [`to_base64`]: Signature::to_base64
/// [`to_base64url`]: Signature::to_base64url
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Signature {
    scheme: Scheme,
    bytes: Vec<u8>,
}

impl Signature {
    /// A signature made with `scheme`, from its raw bytes.
    pub fn new(scheme: Scheme, bytes: Vec<u8>) -> Self {
        Signature { scheme, bytes }
    }

    /// The scheme the signature was made with.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The raw signature bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The raw signature bytes, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Standard base64 with padding (RFC 4648 §4), e.g. `+/8=`.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.bytes)
    }

    /// URL-safe base64 without padding (RFC 4648 §5), as JWT signatures are written, e.g. `-_8`.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.bytes)
    }

    /// Lowercase hexadecimal, e.g. `fbff`.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.bytes)
    }
}

impl AsRef<[u8]> for Signature {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for Signature {
    // A signature is not secret; hex is easier to compare by eye than a list of numbers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signature")
            .field("scheme", &self.scheme)
            .field("hex", &self.to_hex())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_of_known_bytes() {
        // 0xfb 0xff uses both non-alphanumeric base64 characters and needs padding.
        let sig = Signature::new(Scheme::Ed25519, vec![0xfb, 0xff]);
        assert_eq!(sig.to_hex(), "fbff");
        assert_eq!(sig.to_base64(), "+/8=");
        assert_eq!(sig.to_base64url(), "-_8");

        // RFC 4648 §10 test vector "foobar".
        let sig = Signature::new(Scheme::HmacSha256, b"foobar".to_vec());
        assert_eq!(sig.to_hex(), "666f6f626172");
        assert_eq!(sig.to_base64(), "Zm9vYmFy");
        assert_eq!(sig.to_base64url(), "Zm9vYmFy");
        let sig = Signature::new(Scheme::HmacSha256, b"fo".to_vec());
        assert_eq!(sig.to_base64(), "Zm8=");
        assert_eq!(sig.to_base64url(), "Zm8");

        let sig = Signature::new(Scheme::HmacSha512, vec![0x00, 0x0a, 0xab, 0xff]);
        assert_eq!(sig.to_hex(), "000aabff");
        assert_eq!(sig.scheme(), Scheme::HmacSha512);
        assert_eq!(sig.as_bytes(), &[0x00, 0x0a, 0xab, 0xff]);
        assert_eq!(sig.clone().into_bytes(), vec![0x00, 0x0a, 0xab, 0xff]);
        assert_eq!(
            format!("{sig:?}"),
            "Signature { scheme: HmacSha512, hex: \"000aabff\" }"
        );
    }
}
