//! The keystore as a whole: Init, Unlock, Lock, ChangePassphrase and Status; and the daemon
//! as a whole: Reload. The work and its admin lock are in [`crate::lifecycle`] and
//! [`crate::reload`].

use keyward_protocol::{ErrorCode, Response, SecretBytes, StatusReport};

use crate::daemon::Daemon;
use crate::failure::Failure;
use crate::peer::Peer;
use crate::policy::Policy;

/// The keystore's state. An admin or a monitor sees everything; any other peer sees only the
/// keys it may use, as `list` does: neither the total count nor the names of unreadable keys
/// of others. Only an admin sees the order rules (version 3).
pub(super) fn status(daemon: &Daemon, policy: &Policy, peer: &Peer, version: u32) -> Response {
    let mut status = daemon.lifecycle.status(&daemon.keyring);
    if !policy.may_monitor(peer, daemon.uid) {
        let may_use = |name: &str| policy.may_use(name, peer, daemon.uid);
        let usable = daemon.keyring.list().map_or(0, |keys| {
            keys.iter().filter(|key| may_use(&key.name)).count()
        });
        status.keys = u32::try_from(usable).unwrap_or(u32::MAX);
        status.unreadable.retain(|key| may_use(&key.name));
    }
    if version < 3 {
        return Response::Status(status);
    }
    let order_rules = policy.is_admin(peer, daemon.uid).then(|| {
        let names = match daemon.keyring.list() {
            Ok(keys) => keys.into_iter().map(|key| key.name).collect(),
            // Locked: the key files' names, if the keystore can tell.
            Err(_) => daemon.lifecycle.key_names().unwrap_or_default(),
        };
        policy.order_rules_of(names)
    });
    Response::StatusReport(StatusReport {
        status,
        order_rules,
    })
}

/// Reload over the socket: the same reload as SIGHUP's, with its outcome as the answer.
pub(super) fn reload(daemon: &Daemon) -> Result<Response, Failure> {
    match crate::reload::reload(daemon, "reload request") {
        // The policy is in force, but the audit log still goes to the file open before (a
        // rotation that half-worked): the reload did not do all it was asked, so it fails.
        Ok(crate::reload::Reloaded {
            audit_reopen_error: Some(audit),
            ..
        }) => Err(Failure::new(
            ErrorCode::Unavailable,
            format!("the new policy is in force, but {audit}"),
        )),
        Ok(reloaded) => Ok(Response::Reloaded {
            daemon_section_changed: reloaded.daemon_section_changed,
        }),
        Err(why) => Err(Failure::new(ErrorCode::InvalidConfig, why)),
    }
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
