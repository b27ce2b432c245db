//! What each request does: from a decoded [`Request`] and its peer to a [`Response`].

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use keyward_protocol::{
    ErrorCode, KeyInfo, MAX_BATCH, Request, Response, Scheme, validate_key_name,
};

use crate::audit::Decision;
use crate::daemon::Daemon;
use crate::failure::Failure;
use crate::import;
use crate::keyring::Key;
use crate::peer::Peer;
use crate::policy::{Policy, check_payload};
use crate::signer::{KeyError, Signer};
use zeroize::Zeroizing;

/// Answers one request (after the Hello handshake), and records the decision in the audit
/// log. With `audit_required`, a signature whose record cannot be written is not released.
pub(crate) async fn handle(daemon: &Arc<Daemon>, peer: &Peer, request: Request) -> Response {
    let started = Instant::now();
    let subject = daemon.audit.subject(&request);
    // One snapshot for the whole request: a SIGHUP mid-request cannot mix two policies.
    let policy = daemon.policy();
    let result = match authorize(daemon, &policy, peer, &request) {
        Ok(()) => dispatch(daemon, &policy, peer, request).await,
        Err(denied) => Err(denied),
    };
    let (response, decision, reason) = match result {
        Ok(response) => (response, Decision::Allow, String::new()),
        Err(mut failure) => {
            if failure.code == ErrorCode::Locked && !daemon.store.is_initialized() {
                failure = Failure::new(
                    ErrorCode::NotInitialized,
                    "the keystore is not initialized (locked, with no keys); run `keyward init`",
                );
            }
            let decision = match failure.code {
                ErrorCode::Denied | ErrorCode::PolicyViolation | ErrorCode::RateLimited => {
                    tracing::warn!(
                        request = subject.kind,
                        key = subject.key.as_deref().unwrap_or("-"),
                        uid = peer.uid,
                        pid = peer.pid,
                        "denied: {}",
                        failure.message
                    );
                    Decision::Deny
                }
                _ => {
                    tracing::info!(
                        request = subject.kind,
                        uid = peer.uid,
                        code = %failure.code,
                        "failed: {}",
                        failure.message
                    );
                    Decision::Error
                }
            };
            let reason = failure.message.clone();
            (failure.into_response(), decision, reason)
        }
    };
    let recorded = daemon
        .audit
        .record(peer, &subject, decision, &reason, started.elapsed());
    if recorded.is_err()
        && matches!(
            response,
            Response::Signature { .. } | Response::Signatures { .. }
        )
    {
        return Response::error(
            ErrorCode::Unavailable,
            "the audit log cannot be written; signing is refused until it can (audit_required)",
        );
    }
    response
}

/// The admin requests: they change or reveal the keystore as a whole.
fn is_admin_request(request: &Request) -> bool {
    matches!(
        request,
        Request::Import { .. }
            | Request::Generate { .. }
            | Request::Remove { .. }
            | Request::Init { .. }
            | Request::Unlock { .. }
            | Request::Lock
            | Request::ChangePassphrase { .. }
    )
}

/// Checks the peer's rights before anything else happens (so a refusal reveals nothing,
/// not even whether a key exists).
fn authorize(
    daemon: &Daemon,
    policy: &Policy,
    peer: &Peer,
    request: &Request,
) -> Result<(), Failure> {
    let denied = |what: String| Err(Failure::new(ErrorCode::Denied, what));
    if is_admin_request(request) && !policy.is_admin(peer, daemon.uid) {
        return denied(format!(
            "uid {} may not {}: admin requests need the daemon's uid or an admin uid/group",
            peer.uid,
            request.kind()
        ));
    }
    match request {
        Request::Sign { key, .. } | Request::SignBatch { key, .. }
            if !policy.may_use(key, peer, daemon.uid) =>
        {
            denied(format!("uid {} may not use key {key:?}", peer.uid))
        }
        // Public information: a key's users, and admins (who added it), may read it.
        Request::PublicKey { key }
            if !policy.may_use(key, peer, daemon.uid) && !policy.is_admin(peer, daemon.uid) =>
        {
            denied(format!("uid {} may not use key {key:?}", peer.uid))
        }
        _ => Ok(()),
    }
}

/// Applies the key's payload rules and rate limit to the payloads about to be signed.
fn enforce_key_policy(
    daemon: &Daemon,
    policy: &Policy,
    key: &str,
    payloads: &[&[u8]],
) -> Result<(), Failure> {
    let rules = policy.for_key(key);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
    for payload in payloads {
        check_payload(rules, payload, now_ms)
            .map_err(|why| Failure::new(ErrorCode::PolicyViolation, why))?;
    }
    if let Some(limit) = rules.rate {
        let n = u32::try_from(payloads.len()).unwrap_or(u32::MAX);
        if n > limit.burst {
            return Err(Failure::new(
                ErrorCode::RateLimited,
                format!(
                    "a batch of {n} exceeds key {key:?}'s burst of {}; split it",
                    limit.burst
                ),
            ));
        }
        daemon
            .rates
            .take(key, limit, n, Instant::now())
            .map_err(|wait| {
                Failure::new(
                    ErrorCode::RateLimited,
                    format!(
                        "rate limit of key {key:?} reached ({}/s); retry in {} ms",
                        limit.per_sec,
                        wait.as_millis().max(1)
                    ),
                )
            })?;
    }
    Ok(())
}

async fn dispatch(
    daemon: &Arc<Daemon>,
    policy: &Policy,
    peer: &Peer,
    request: Request,
) -> Result<Response, Failure> {
    match request {
        Request::Hello { .. } => Err(Failure::bad_request("Hello was already exchanged")),
        Request::Sign { key, payload } => {
            // Looked up first, so rate-limit buckets exist only for real keys.
            let key_entry = daemon.keyring.get(&key)?;
            enforce_key_policy(daemon, policy, &key, &[&payload])?;
            let key = key_entry;
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
            let key_entry = daemon.keyring.get(&key)?;
            let views: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
            enforce_key_policy(daemon, policy, &key, &views)?;
            let key = key_entry;
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
        Request::List => {
            // A peer sees only the keys it may use; admins see every key.
            let admin = policy.is_admin(peer, daemon.uid);
            let keys = daemon.keyring.list()?;
            Ok(Response::Keys {
                keys: keys
                    .into_iter()
                    .filter(|key| admin || policy.may_use(&key.name, peer, daemon.uid))
                    .collect(),
            })
        }
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
            add_key(daemon, name, api_key, move || {
                let password = pem_passphrase.as_ref().map(|p| p.expose());
                import::import(scheme, material.expose(), password)
                    .map(|imported| (imported.signer, imported.secret))
            })
            .await
        }
        Request::Generate {
            name,
            kind,
            api_key,
        } => add_key(daemon, name, api_key, move || Signer::generate(kind)).await,
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

/// Adds a key made by `make` (which parses or generates it): checks the name, persists the
/// key (when there is a keystore) and only then makes it usable, so a key acknowledged to
/// the client is never lost.
async fn add_key(
    daemon: &Arc<Daemon>,
    name: String,
    api_key: Option<String>,
    make: impl FnOnce() -> Result<(Signer, Zeroizing<Vec<u8>>), KeyError> + Send + 'static,
) -> Result<Response, Failure> {
    check_name(&name)?;
    check_api_key(api_key.as_deref())?;
    let _admin = daemon.admin().await;
    ensure_absent(daemon, &name)?;
    // Parsing an RSA key costs milliseconds and generating an RSA-4096 key seconds: keep
    // both off the reactor.
    let (signer, secret) = tokio::task::spawn_blocking(make)
        .await
        .map_err(|err| Failure::internal("adding the key failed", &err))??;
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
