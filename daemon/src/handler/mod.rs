//! What each request does: from a decoded [`Request`] and its peer to a [`Response`].
//!
//! This file checks the peer's rights ([`authorize`]), sends each request to its function
//! (one match arm each) and records the decision; the requests themselves live one family
//! per file: [`sign`] (Sign, SignBatch, SignPassphrase), [`keys`] (List, PublicKey, Import,
//! Generate, Remove, SetPassphrase) and [`keystore`] (Init, Unlock, Lock, ChangePassphrase, Status, Stats, Reload).
//! Adding a request means a function in the right file and an arm in [`dispatch`].
//!
//! The Hello handshake is here too ([`hello`]): which protocol versions the daemon speaks,
//! and what a connection of each version may be sent.

mod keys;
mod keystore;
mod sign;

use std::sync::Arc;
use std::time::Instant;

use keyward_protocol::{
    ErrorCode, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, Request, Response, Welcome,
};

use crate::audit::{Decision, Wait};
use crate::daemon::Daemon;
use crate::failure::Failure;
use crate::peer::Peer;
use crate::policy::Policy;
use crate::stats::{self, Denial};
use crate::throttle::{Throttle, suppressed_note};

/// Denial and failure lines, at most this many a second: a bot retrying a denied request in
/// a loop must not flood the journal; the audit log still records every one (throttle.rs).
static DECISION_LINES: Throttle = Throttle::new(20, std::time::Duration::from_secs(1));

/// The git commit this daemon was built from, if the build knew it.
fn daemon_commit() -> Option<String> {
    let commit = env!("KEYWARD_GIT_COMMIT");
    (commit != "unknown" && !commit.is_empty()).then(|| commit.to_owned())
}

/// Answers a Hello: `Some(version)` is the protocol version the connection speaks from now
/// on. A version 3 daemon still speaks version 2 (its messages are a subset of version 3's),
/// answering it with version 2's `Hello`; docs/PROTOCOL.md section 3.
pub(crate) fn hello(daemon: &Daemon, version: u32) -> (Response, Option<u32>) {
    let max_frame = daemon.settings.max_frame;
    match version {
        PROTOCOL_VERSION => {
            let welcome = Welcome {
                version,
                max_frame,
                daemon_version: env!("CARGO_PKG_VERSION").to_owned(),
                daemon_commit: daemon_commit(),
            };
            (Response::Welcome(welcome), Some(version))
        }
        MIN_PROTOCOL_VERSION..PROTOCOL_VERSION => {
            (Response::Hello { version, max_frame }, Some(version))
        }
        _ => (
            Response::error(
                ErrorCode::UnsupportedVersion,
                format!(
                    "protocol version {version} is not supported; this daemon speaks versions \
                     {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}"
                ),
            ),
            None,
        ),
    }
}

/// Answers one request (after the Hello handshake, in the protocol `version` it agreed),
/// and records the decision in the audit log. With `audit_required`, a signature whose
/// record cannot be written is not released.
pub(crate) async fn handle(
    daemon: &Arc<Daemon>,
    peer: &Peer,
    version: u32,
    request: Request,
) -> Response {
    let started = Instant::now();
    let subject = daemon.audit.subject(&request);
    // One snapshot for the whole request: a SIGHUP mid-request cannot mix two policies.
    let policy = daemon.policy();
    let result = if request.since_version() > version {
        // Its answer would be a response this version cannot decode.
        Err(Failure::bad_request(format!(
            "{} needs protocol version {}; this connection speaks version {version}",
            request.kind(),
            request.since_version()
        )))
    } else {
        match authorize(daemon, &policy, peer, &request) {
            Ok(()) => dispatch(daemon, &policy, peer, version, request).await,
            Err(denied) => Err(denied),
        }
    };
    if let Err(failure) = &result {
        count_refusal(failure.code, subject.kind);
    }
    let (response, decision, reason) = match result {
        Ok(response) => (response, Decision::Allow, String::new()),
        Err(failure) => {
            let decision = match failure.code {
                ErrorCode::Denied
                | ErrorCode::PolicyViolation
                | ErrorCode::RateLimited
                | ErrorCode::BatchExceedsBurst => {
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
            (failure.into_response(version), decision, reason)
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

/// Counts a refused request in the daemon's stats.
fn count_refusal(code: ErrorCode, kind: &str) {
    let stats = stats::global();
    if let Some(denial) = Denial::of(code) {
        stats.record_denial(denial);
    }
    let signing = matches!(kind, "sign" | "sign-batch" | "sign-passphrase");
    match code {
        ErrorCode::RateLimited => stats.record_rate_limited(),
        ErrorCode::Locked if signing => stats.record_locked_refusal(),
        _ => {}
    }
}

/// The admin requests: they change or reveal the keystore as a whole, or the policy.
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
            | Request::Reload
            | Request::SetPassphrase { .. }
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
        Request::Sign { key, .. }
        | Request::SignBatch { key, .. }
        | Request::SignPassphrase { key }
            if !policy.may_use(key, peer, daemon.uid) =>
        {
            denied(format!("uid {} may not use key {key:?}", peer.uid))
        }
        Request::Stats if !policy.may_monitor(peer, daemon.uid) => denied(format!(
            "uid {} may not read the daemon's stats: that needs an admin or the status right \
             (status_uids/status_gids)",
            peer.uid
        )),
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
    version: u32,
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
        Request::SetPassphrase { key, passphrase } => {
            keys::set_passphrase(daemon, peer, key, passphrase).await
        }
        Request::SignPassphrase { key } => sign::sign_passphrase(daemon, policy, key).await,
        Request::Status => Ok(keystore::status(daemon, policy, peer, version)),
        Request::Stats => Ok(Response::Stats(stats::global().snapshot())),
        Request::Reload => keystore::reload(daemon),
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
