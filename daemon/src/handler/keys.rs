//! The keys: List and PublicKey (read), Import, Generate, Remove and SetPassphrase (admin).

use keyward_protocol::{KeyKind, PayloadFormat, Response, Scheme, SecretBytes, validate_key_name};
use zeroize::Zeroizing;

use crate::daemon::Daemon;
use crate::failure::Failure;
use crate::import;
use crate::peer::Peer;
use crate::policy::Policy;
use crate::signer::{KeyError, Signer};

pub(super) fn list(daemon: &Daemon, policy: &Policy, peer: &Peer) -> Result<Response, Failure> {
    // A peer sees only the keys it may use; admins see every key.
    let admin = policy.is_admin(peer, daemon.uid);
    let keys = daemon.keyring.list()?;
    Ok(Response::Keys {
        keys: keys
            .iter()
            .filter(|key| admin || policy.may_use(&key.name, peer, daemon.uid))
            .map(|key| policy.describe(key))
            .collect(),
    })
}

pub(super) fn public_key(daemon: &Daemon, policy: &Policy, key: &str) -> Result<Response, Failure> {
    Ok(Response::Key {
        key: policy.describe(&daemon.keyring.get(key)?.info),
    })
}

/// What an import or generate request says about the new key besides its material.
pub(super) struct NewKey {
    pub(super) api_key: Option<String>,
    /// Stored with the key; the key's config section may set another, which wins.
    pub(super) format: Option<PayloadFormat>,
}

pub(super) async fn import(
    daemon: &Daemon,
    policy: &Policy,
    name: String,
    scheme: Option<Scheme>,
    material: SecretBytes,
    pem_passphrase: Option<SecretBytes>,
    new: NewKey,
) -> Result<Response, Failure> {
    add_key(daemon, policy, name, new, move || {
        let password = pem_passphrase.as_ref().map(|p| p.expose());
        import::import(scheme, material.expose(), password)
            .map(|imported| (imported.signer, imported.secret))
    })
    .await
}

pub(super) async fn generate(
    daemon: &Daemon,
    policy: &Policy,
    name: String,
    kind: KeyKind,
    new: NewKey,
) -> Result<Response, Failure> {
    add_key(daemon, policy, name, new, move || Signer::generate(kind)).await
}

pub(super) async fn remove(
    daemon: &Daemon,
    peer: &Peer,
    name: String,
) -> Result<Response, Failure> {
    daemon.lifecycle.remove_key(&daemon.keyring, &name).await?;
    tracing::info!(key = %name, uid = peer.uid, "key removed");
    Ok(Response::Ok)
}

pub(super) async fn set_passphrase(
    daemon: &Daemon,
    peer: &Peer,
    name: String,
    passphrase: Option<SecretBytes>,
) -> Result<Response, Failure> {
    let set = passphrase.is_some();
    daemon
        .lifecycle
        .set_passphrase(&daemon.keyring, &name, passphrase)
        .await?;
    // Whether one is stored, never what it is.
    tracing::info!(key = %name, uid = peer.uid, stored = set, "key passphrase set");
    Ok(Response::Ok)
}

/// Checks the request's name and API key id, then has the lifecycle make, persist and
/// insert the key. The answer shows the format the key's payloads will be judged in, which
/// is the config's when the key's section sets one (a disagreement is logged).
async fn add_key(
    daemon: &Daemon,
    policy: &Policy,
    name: String,
    new: NewKey,
    make: impl FnOnce() -> Result<(Signer, Zeroizing<Vec<u8>>), KeyError> + Send + 'static,
) -> Result<Response, Failure> {
    check_name(&name)?;
    check_api_key(new.api_key.as_deref())?;
    let info = daemon
        .lifecycle
        .add_key(&daemon.keyring, name, new.api_key, new.format, make)
        .await?;
    tracing::info!(
        key = %info.name,
        scheme = %info.scheme,
        format = info.format.map_or("none", PayloadFormat::name),
        "key added"
    );
    if let Some(warning) = policy.format_disagreement(&info) {
        tracing::warn!("{warning}");
    }
    Ok(Response::Key {
        key: policy.describe(&info),
    })
}

fn check_name(name: &str) -> Result<(), Failure> {
    validate_key_name(name).map_err(|err| Failure::bad_request(err.to_string()))
}

fn check_api_key(api_key: Option<&str>) -> Result<(), Failure> {
    match api_key {
        Some(id) if id.len() > 256 || id.chars().any(char::is_control) => Err(
            Failure::bad_request("the API key id must be at most 256 printable characters"),
        ),
        _ => Ok(()),
    }
}
