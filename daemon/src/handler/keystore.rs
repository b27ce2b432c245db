//! The keystore as a whole: Init, Unlock, Lock, ChangePassphrase and Status. The work and
//! its admin lock are in [`crate::lifecycle`].

use keyward_protocol::{Response, SecretBytes};

use crate::daemon::Daemon;
use crate::failure::Failure;
use crate::peer::Peer;
use crate::policy::Policy;

/// The keystore's state. An admin sees everything; any other peer sees only the keys it may
/// use, as `list` does: neither the total count nor the names of unreadable keys of others.
pub(super) fn status(daemon: &Daemon, policy: &Policy, peer: &Peer) -> Response {
    let mut status = daemon.lifecycle.status(&daemon.keyring);
    if !policy.is_admin(peer, daemon.uid) {
        let may_use = |name: &str| policy.may_use(name, peer, daemon.uid);
        let usable = daemon.keyring.list().map_or(0, |keys| {
            keys.iter().filter(|key| may_use(&key.name)).count()
        });
        status.keys = u32::try_from(usable).unwrap_or(u32::MAX);
        status.unreadable.retain(|key| may_use(&key.name));
    }
    Response::Status(status)
}

pub(super) async fn init(daemon: &Daemon, passphrase: SecretBytes) -> Result<Response, Failure> {
    daemon.lifecycle.init(&daemon.keyring, passphrase).await?;
    Ok(Response::Ok)
}

pub(super) async fn unlock(daemon: &Daemon, passphrase: SecretBytes) -> Result<Response, Failure> {
    daemon.unlock(passphrase).await?;
    Ok(Response::Ok)
}

pub(super) async fn lock(daemon: &Daemon) -> Result<Response, Failure> {
    if daemon.lifecycle.is_ephemeral() {
        return Err(Failure::bad_request(
            "this daemon keeps keys in memory only (--ephemeral): locking would destroy them",
        ));
    }
    daemon.lifecycle.lock(&daemon.keyring, "requested").await;
    Ok(Response::Ok)
}

pub(super) async fn change_passphrase(
    daemon: &Daemon,
    old: SecretBytes,
    new: SecretBytes,
) -> Result<Response, Failure> {
    daemon.lifecycle.change_passphrase(old, new).await?;
    Ok(Response::Ok)
}
