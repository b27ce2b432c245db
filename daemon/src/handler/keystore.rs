//! The keystore as a whole: Init, Unlock, Lock, ChangePassphrase and Status. The work and
//! its admin lock are in [`crate::lifecycle`].

use keyward_protocol::{Response, SecretBytes};

use crate::daemon::Daemon;
use crate::failure::Failure;

pub(super) fn status(daemon: &Daemon) -> Response {
    Response::Status(daemon.lifecycle.status(&daemon.keyring))
}

pub(super) async fn init(daemon: &Daemon, passphrase: SecretBytes) -> Result<Response, Failure> {
    daemon.lifecycle.init(&daemon.keyring, passphrase).await?;
    Ok(Response::Ok)
}

pub(super) async fn unlock(daemon: &Daemon, passphrase: SecretBytes) -> Result<Response, Failure> {
    daemon.lifecycle.unlock(&daemon.keyring, passphrase).await?;
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
