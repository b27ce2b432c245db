//! Sign and SignBatch: the hot path. The key is looked up, the key's policy applied, then
//! the payloads signed, every scheme on the connection's own thread (server.rs says why).
//! SignPassphrase too: the key signs the passphrase an admin stored with it.

use keyward_protocol::{ErrorCode, MAX_BATCH, Response, Scheme};
use serde_bytes::ByteBuf;

use crate::daemon::Daemon;
use crate::failure::Failure;
use crate::keyring::Key;
use crate::policy::{Policy, enforce_key_policy, enforce_passphrase_policy};

pub(super) async fn sign(
    daemon: &Daemon,
    policy: &Policy,
    key: String,
    payload: Vec<u8>,
) -> Result<Response, Failure> {
    // Looked up first, so rate-limit buckets exist only for real keys.
    let key_entry = daemon.keyring.get(&key)?;
    enforce_key_policy(policy, &daemon.rates, &key_entry, &[&payload])?;
    daemon.touch();
    let (scheme, mut signatures) = sign_all(&key_entry, vec![payload]).await?;
    key_entry.count_signatures(1);
    let signature = signatures
        .pop()
        .ok_or_else(|| Failure::internal("signing failed", &"no signature"))?;
    Ok(Response::Signature { scheme, signature })
}

pub(super) async fn sign_batch(
    daemon: &Daemon,
    policy: &Policy,
    key: String,
    payloads: Vec<ByteBuf>,
) -> Result<Response, Failure> {
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
    enforce_key_policy(policy, &daemon.rates, &key_entry, &views)?;
    daemon.touch();
    let payloads = payloads.into_iter().map(ByteBuf::into_vec).collect();
    let (scheme, signatures) = sign_all(&key_entry, payloads).await?;
    key_entry.count_signatures(signatures.len());
    let signatures = signatures.into_iter().map(ByteBuf::from).collect();
    Ok(Response::Signatures { scheme, signatures })
}

/// Signs the passphrase stored with `key` (KuCoin's `KC-API-PASSPHRASE` for keys of version
/// 2 and 3 is its base64 HMAC-SHA256 under the secret). Payload rules do not apply: the
/// bytes are the admin's. The rate limit does, and the signature is counted and audited as
/// any other. The passphrase itself never leaves, nor goes into an error or a log.
pub(super) async fn sign_passphrase(
    daemon: &Daemon,
    policy: &Policy,
    key: String,
) -> Result<Response, Failure> {
    let key_entry = daemon.keyring.get(&key)?;
    if !key_entry.has_passphrase() {
        return Err(no_passphrase(&key));
    }
    enforce_passphrase_policy(policy, &daemon.rates, &key_entry)?;
    daemon.touch();
    let scheme = key_entry.signer.scheme();
    let signature = key_entry
        .with_passphrase(|passphrase| passphrase.map(|p| key_entry.signer.sign_secret(p)))
        // Removed by an admin between the check and now.
        .ok_or_else(|| no_passphrase(&key))?
        .map_err(Failure::from)?;
    key_entry.count_signatures(1);
    Ok(Response::Signature { scheme, signature })
}

fn no_passphrase(key: &str) -> Failure {
    Failure::new(
        ErrorCode::NoPassphrase,
        format!(
            "key {key:?} has no stored passphrase; an admin sets one with `keyward passphrase`"
        ),
    )
}

/// Signs every payload with `key`, here: the caller is the connection's own thread, so an
/// RSA signature neither pays a hand-off to another thread nor holds up other connections.
async fn sign_all(key: &Key, payloads: Vec<Vec<u8>>) -> Result<(Scheme, Vec<Vec<u8>>), Failure> {
    let scheme = key.signer.scheme();
    let signatures = payloads
        .iter()
        .map(|payload| key.signer.sign(payload).map_err(Failure::from))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((scheme, signatures))
}
