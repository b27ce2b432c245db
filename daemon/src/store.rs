//! Where keys persist: nowhere (ephemeral) or in an encrypted keystore directory.

use keyward_protocol::{ErrorCode, KeyInfo, SecretBytes};
use zeroize::Zeroizing;

use crate::daemon::Daemon;
use crate::failure::Failure;

#[derive(Debug)]
pub(crate) enum Store {
    /// Keys live in memory only and die with the daemon (`--ephemeral`, `keyward demo`).
    Ephemeral,
}

fn no_keystore(what: &str) -> Failure {
    Failure::new(
        ErrorCode::BadRequest,
        format!(
            "this daemon keeps keys in memory only (--ephemeral): there is no keystore to {what}"
        ),
    )
}

impl Store {
    pub(crate) fn is_ephemeral(&self) -> bool {
        matches!(self, Store::Ephemeral)
    }

    pub(crate) fn is_initialized(&self) -> bool {
        true
    }

    /// Seals a new key into the keystore before it becomes usable.
    pub(crate) async fn persist(
        &self,
        _info: &KeyInfo,
        _secret: Zeroizing<Vec<u8>>,
    ) -> Result<(), Failure> {
        Ok(())
    }

    /// Deletes a key's file before the key leaves memory.
    pub(crate) async fn forget(&self, _name: &str) -> Result<(), Failure> {
        Ok(())
    }

    pub(crate) async fn init(
        &self,
        _daemon: &Daemon,
        _passphrase: SecretBytes,
    ) -> Result<(), Failure> {
        Err(no_keystore("initialise"))
    }

    pub(crate) async fn unlock(
        &self,
        _daemon: &Daemon,
        _passphrase: SecretBytes,
    ) -> Result<(), Failure> {
        Err(no_keystore("unlock"))
    }

    pub(crate) async fn change_passphrase(
        &self,
        _daemon: &Daemon,
        _old: SecretBytes,
        _new: SecretBytes,
    ) -> Result<(), Failure> {
        Err(no_keystore("change the passphrase of"))
    }
}
