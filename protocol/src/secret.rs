//! Byte strings that carry secrets over the wire.

use core::fmt;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, Zeroizing};

/// Secret bytes in a message (key material, a passphrase): zeroized when dropped, and
/// never shown by `Debug`. On the wire they are an ordinary postcard byte string.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Wraps bytes that are secret. The vector is moved, not copied.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }

    /// The secret bytes. Callers must not copy them into a buffer that is not zeroized.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        SecretBytes::new(bytes)
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([REDACTED; {}])", self.0.len())
    }
}

impl Zeroize for SecretBytes {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

impl Serialize for SecretBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // serde_bytes copies straight from the frame into one exact-size allocation, so no
        // intermediate, unzeroized copy is made; the frame buffer itself is zeroized by the
        // reader that owns it.
        let bytes: Vec<u8> = serde_bytes::deserialize(deserializer)?;
        Ok(SecretBytes::new(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_bytes() {
        let secret = SecretBytes::new(b"hunter2".to_vec());
        let shown = format!("{secret:?}");
        assert!(!shown.contains("hunter2"));
        assert!(!shown.contains("104"), "no byte values either: {shown}");
        assert!(shown.contains("REDACTED"));
    }
}
