//! What each request does: from a decoded [`Request`] and its peer to a [`Response`].

use std::sync::Arc;

use keyward_protocol::{
    ErrorCode, KeyInfo, MAX_BATCH, Request, Response, Scheme, validate_key_name,
};

use crate::daemon::{Daemon, Peer};
use crate::failure::Failure;
use crate::import;
use crate::keyring::Key;
use crate::signer::Signer;

/// Answers one request (after the Hello handshake).
pub(crate) async fn handle(daemon: &Arc<Daemon>, peer: &Peer, request: Request) -> Response {
    let kind = request.kind();
    match dispatch(daemon, peer, request).await {
        Ok(response) => response,
        Err(mut failure) => {
            if failure.code == ErrorCode::Locked && !daemon.store.is_initialized() {
                failure = Failure::new(
                    ErrorCode::NotInitialized,
                    "the keystore is not initialized (locked, with no keys); run `keyward init`",
                );
            }
            tracing::info!(
                request = kind,
                uid = peer.uid,
                gid = peer.gid,
                pid = peer.pid,
                code = %failure.code,
                "refused: {}",
                failure.message
            );
            failure.into_response()
        }
    }
}

async fn dispatch(
    daemon: &Arc<Daemon>,
    peer: &Peer,
    request: Request,
) -> Result<Response, Failure> {
    match request {
        Request::Hello { .. } => Err(Failure::bad_request("Hello was already exchanged")),
        Request::Sign { key, payload } => {
            let key = daemon.keyring.get(&key)?;
            daemon.touch();
            let (scheme, mut signatures) = sign_all(key, vec![payload]).await?;
            let signature = signatures
                .pop()
                .ok_or_else(|| Failure::internal("signing failed", &"no signature"))?;
            Ok(Response::Signature { scheme, signature })
        }
        Request::SignBatch { key, payloads } => {
            if payloads.len() > MAX_BATCH {
                return Err(Failure::new(
                    ErrorCode::TooLarge,
                    format!(
                        "a batch holds at most {MAX_BATCH} payloads, not {}",
                        payloads.len()
                    ),
                ));
            }
            let key = daemon.keyring.get(&key)?;
            daemon.touch();
            let payloads = payloads
                .into_iter()
                .map(serde_bytes::ByteBuf::into_vec)
                .collect();
            let (scheme, signatures) = sign_all(key, payloads).await?;
            let signatures = signatures
                .into_iter()
                .map(serde_bytes::ByteBuf::from)
                .collect();
            Ok(Response::Signatures { scheme, signatures })
        }
        Request::List => Ok(Response::Keys {
            keys: daemon.keyring.list()?,
        }),
        Request::PublicKey { key } => Ok(Response::Key {
            key: daemon.keyring.get(&key)?.info.clone(),
        }),
        Request::Import {
            name,
            scheme,
            material,
            pem_passphrase,
            api_key,
        } => {
            check_name(&name)?;
            check_api_key(api_key.as_deref())?;
            let _admin = daemon.admin().await;
            ensure_absent(daemon, &name)?;
            let imported = tokio::task::spawn_blocking(move || {
                import::import(
                    scheme,
                    material.expose(),
                    pem_passphrase.as_ref().map(|p| p.expose()),
                )
            })
            .await
            .map_err(|err| Failure::internal("import failed", &err))??;
            add_key(daemon, name, imported.signer, imported.secret, api_key).await
        }
        Request::Generate {
            name,
            kind,
            api_key,
        } => {
            check_name(&name)?;
            check_api_key(api_key.as_deref())?;
            let _admin = daemon.admin().await;
            ensure_absent(daemon, &name)?;
            // RSA-4096 generation can take seconds: keep it off the reactor.
            let (signer, secret) = tokio::task::spawn_blocking(move || Signer::generate(kind))
                .await
                .map_err(|err| Failure::internal("key generation failed", &err))??;
            add_key(daemon, name, signer, secret, api_key).await
        }
        Request::Remove { name } => {
            let _admin = daemon.admin().await;
            if !daemon.keyring.contains(&name)? {
                return Err(Failure::new(
                    ErrorCode::UnknownKey,
                    format!("no key named {name:?}"),
                ));
            }
            daemon.store.forget(&name).await?;
            daemon.keyring.remove(&name)?;
            tracing::info!(key = %name, uid = peer.uid, "key removed");
            Ok(Response::Ok)
        }
        Request::Status => Ok(Response::Status(daemon.status())),
        Request::Init { passphrase } => daemon
            .store
            .init(daemon, passphrase)
            .await
            .map(|()| Response::Ok),
        Request::Unlock { passphrase } => daemon
            .store
            .unlock(daemon, passphrase)
            .await
            .map(|()| Response::Ok),
        Request::Lock => {
            if daemon.store.is_ephemeral() {
                return Err(Failure::bad_request(
                    "this daemon keeps keys in memory only (--ephemeral): locking would destroy them",
                ));
            }
            daemon.lock("requested");
            Ok(Response::Ok)
        }
        Request::ChangePassphrase { old, new } => daemon
            .store
            .change_passphrase(daemon, old, new)
            .await
            .map(|()| Response::Ok),
        _ => Err(Failure::bad_request(
            "this daemon does not know that request",
        )),
    }
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

fn ensure_absent(daemon: &Daemon, name: &str) -> Result<(), Failure> {
    if daemon.keyring.contains(name)? {
        return Err(Failure::new(
            ErrorCode::KeyExists,
            format!("a key named {name:?} exists already"),
        ));
    }
    Ok(())
}

/// Persists a new key (when there is a keystore) and then makes it usable.
async fn add_key(
    daemon: &Arc<Daemon>,
    name: String,
    signer: Signer,
    secret: zeroize::Zeroizing<Vec<u8>>,
    api_key: Option<String>,
) -> Result<Response, Failure> {
    let key = Key::new(name, signer, api_key);
    daemon.store.persist(&key.info, secret).await?;
    let info: KeyInfo = daemon.keyring.insert(key)?;
    tracing::info!(key = %info.name, scheme = %info.scheme, "key added");
    Ok(Response::Key { key: info })
}

/// Signs every payload with `key`, on the blocking pool when the scheme is slow (RSA).
async fn sign_all(
    key: Arc<Key>,
    payloads: Vec<Vec<u8>>,
) -> Result<(Scheme, Vec<Vec<u8>>), Failure> {
    let scheme = key.signer.scheme();
    let slow = key.signer.is_slow();
    let run = move || -> Result<Vec<Vec<u8>>, Failure> {
        payloads
            .iter()
            .map(|payload| key.signer.sign(payload).map_err(Failure::from))
            .collect()
    };
    let signatures = if slow {
        tokio::task::spawn_blocking(run)
            .await
            .map_err(|err| Failure::internal("signing failed", &err))??
    } else {
        run()?
    };
    Ok((scheme, signatures))
}
