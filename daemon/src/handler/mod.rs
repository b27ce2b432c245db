//! What each request does: from a decoded [`Request`] and its peer to a [`Response`].
//!
//! This file checks the peer's rights ([`authorize`]), sends each request to its function
//! (one match arm each) and records the decision; the requests themselves live one family
//! per file: [`sign`] (Sign, SignBatch), [`keys`] (List, PublicKey, Import, Generate,
//! Remove) and [`keystore`] (Init, Unlock, Lock, ChangePassphrase, Status). Adding a request
//! means a function in the right file and an arm in [`dispatch`].

mod keys;
mod keystore;
mod sign;

use std::sync::Arc;
use std::time::Instant;

use keyward_protocol::{ErrorCode, Request, Response};

use crate::audit::{Decision, Wait};
use crate::daemon::Daemon;
use crate::failure::Failure;
use crate::peer::Peer;
use crate::policy::Policy;
use crate::throttle::{Throttle, suppressed_note};

/// Denial and failure lines, at most this many a second: a bot retrying a denied request in
/// a loop must not flood the journal; the audit log still records every one (throttle.rs).
static DECISION_LINES: Throttle = Throttle::new(20, std::time::Duration::from_secs(1));

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
        Err(failure) => {
            let decision = match failure.code {
                ErrorCode::Denied | ErrorCode::PolicyViolation | ErrorCode::RateLimited => {
                    if let Some(suppressed) = DECISION_LINES.admit() {
                        tracing::warn!(
                            request = subject.kind,
                            key = subject.key.as_deref().unwrap_or("-"),
                            uid = peer.uid,
                            user = peer.about.user.as_deref().unwrap_or("-"),
                            pid = peer.pid,
                            comm = peer.about.comm.as_deref().unwrap_or("-"),
                            unit = peer.about.unit.as_deref().unwrap_or("-"),
                            "denied: {}{}",
                            failure.message,
                            suppressed_note(suppressed)
                        );
                    }
                    Decision::Deny
                }
                _ => {
                    if let Some(suppressed) = DECISION_LINES.admit() {
                        tracing::info!(
                            request = subject.kind,
                            uid = peer.uid,
                            user = peer.about.user.as_deref().unwrap_or("-"),
                            comm = peer.about.comm.as_deref().unwrap_or("-"),
                            code = %failure.code,
                            "failed: {}{}",
                            failure.message,
                            suppressed_note(suppressed)
                        );
                    }
                    Decision::Error
                }
            };
            let reason = failure.message.clone();
            (failure.into_response(), decision, reason)
        }
    };
    let signature = matches!(
        response,
        Response::Signature { .. } | Response::Signatures { .. }
    );
    // With audit_required, a signature waits until its record is on disk (or known lost);
    // nothing else ever waits for the audit log (audit.rs).
    let wait = if signature { Wait::ForDisk } else { Wait::No };
    let recorded = daemon
        .audit
        .record(peer, &subject, decision, &reason, started.elapsed(), wait);
    if recorded.is_err() && signature {
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

async fn dispatch(
    daemon: &Arc<Daemon>,
    policy: &Policy,
    peer: &Peer,
    request: Request,
) -> Result<Response, Failure> {
    match request {
        Request::Hello { .. } => Err(Failure::bad_request("Hello was already exchanged")),
        Request::Sign { key, payload } => sign::sign(daemon, policy, key, payload).await,
        Request::SignBatch { key, payloads } => {
            sign::sign_batch(daemon, policy, key, payloads).await
        }
        Request::List => keys::list(daemon, policy, peer),
        Request::PublicKey { key } => keys::public_key(daemon, policy, &key),
        Request::Import {
            name,
            scheme,
            material,
            pem_passphrase,
            api_key,
            format,
        } => {
            let new = keys::NewKey { api_key, format };
            keys::import(daemon, policy, name, scheme, material, pem_passphrase, new).await
        }
        Request::Generate {
            name,
            kind,
            api_key,
            format,
        } => {
            let new = keys::NewKey { api_key, format };
            keys::generate(daemon, policy, name, kind, new).await
        }
        Request::Remove { name } => keys::remove(daemon, peer, name).await,
        Request::Status => Ok(keystore::status(daemon, policy, peer)),
        Request::Init { passphrase } => keystore::init(daemon, passphrase).await,
        Request::Unlock { passphrase } => keystore::unlock(daemon, passphrase).await,
        Request::Lock => keystore::lock(daemon).await,
        Request::ChangePassphrase { old, new } => {
            keystore::change_passphrase(daemon, old, new).await
        }
        _ => Err(Failure::bad_request(
            "this daemon does not know that request",
        )),
    }
}
