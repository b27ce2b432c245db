//! Serving connections: the accept loop, one thread per connection, the cap on connections,
//! graceful shutdown.
//!
//! The accept loop runs on the tokio runtime, beside signals and timers. It reads each
//! peer's credentials at accept ([`Peer::of`]) and answers a peer with no right of any kind
//! at once, without reading anything (on the runtime: a refused peer never gets a thread).
//! Every other connection gets an OS thread of its own that reads its requests, signs them
//! and writes the answers with blocking I/O ([`connection::serve`]). Hence (issue 15):
//! - no request pays a thread hand-off: the thread the kernel wakes with the request signs
//!   it; a tokio reactor would wake a worker, and RSA on tokio's blocking pool cost two more
//!   hops (70–90 µs against 21 µs of budget);
//! - no request waits behind another key's RSA signature: each connection is scheduled by
//!   the kernel on its own, so a bot's Ed25519 order is not queued behind another bot's RSA;
//! - admin work (key generation and parsing, Argon2id) runs on tokio's blocking pool, which
//!   main.rs bounds to one thread, and never on a connection's thread.
//!
//! Idle, a connection costs its thread's touched stack pages (a few KiB) and, under
//! `mlockall`, its whole stack reservation against RLIMIT_MEMLOCK: every thread the limits
//! allow × [`CONNECTION_STACK`] is in harden.rs's budget (see [`stack_reservation`]).
//!
//! Limits (issue 16; limits.rs holds the accounting, docs/SECURITY.md the reasoning): the
//! loop accepts every connection at once, whatever is open, and judges it by its
//! credentials. One over a cap (overall, per uid) is answered `Unavailable` and closed on
//! the spot, never left in the backlog where it would hold up the connections behind it,
//! an admin's `lock` among them; admins have places of their own for when the others are
//! full. The deadlines are connection.rs's.
//!
//! Every connection holds a [`Slot`] while it lives: its place, the shutdown registration
//! and the drain tracker's token.

use std::collections::HashMap;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use keyward_protocol::{ErrorCode, Response};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

use crate::connection::{self, Shared};
use crate::daemon::Daemon;
use crate::limits::{FLUSH_EVERY, Limits, Place, Places};
use crate::peer::Peer;

/// The stack of a connection's thread. Serving a request (decoding, policy, audit, signing
/// any scheme, waiting on admin work) takes a small fraction of it even in a debug build,
/// where the test suite runs every request this way; only touched pages become resident.
pub(crate) const CONNECTION_STACK: usize = 128 * 1024;

/// How long shutdown waits for requests in flight before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The address space the connection threads' stacks may take at most (each also has a
/// guard page): what `mlockall(MCL_FUTURE)` counts against RLIMIT_MEMLOCK for them.
pub(crate) fn stack_reservation(limits: &Limits) -> u64 {
    (limits.max_threads() * (CONNECTION_STACK + 4096)) as u64
}

/// Serves `listener` until `shutdown` is cancelled, then waits for requests in flight.
pub(crate) async fn run(listener: UnixListener, daemon: Arc<Daemon>, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    let places = Places::new(daemon.settings.limits.clone());
    let shared = Arc::new(Shared::new(&daemon.settings.limits));
    let open = Arc::new(OpenConnections::default());
    let runtime = tokio::runtime::Handle::current();
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    loop {
        // No wait for a free place before accept(): a connection is judged as soon as it
        // arrives, so an admin is never queued behind connections that will be refused.
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            _ = flush.tick() => {
                shared.refusals.flush();
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _addr)) => stream,
                Err(err) => {
                    // EMFILE and friends: back off instead of spinning, keep serving.
                    tracing::warn!("accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some((stream, peer, place)) = admit(stream, &daemon, &places, &shared, &tracker) else {
            continue;
        };
        let slot = Slot {
            _place: place,
            _token: tracker.token(),
            id: open.insert(&stream),
            open: Arc::clone(&open),
        };
        spawn(
            stream,
            peer,
            slot,
            Arc::clone(&daemon),
            Arc::clone(&shared),
            runtime.clone(),
        );
    }
    tracker.close();
    // Idle connections wait in `read`: make it return end-of-file. A request in flight is
    // answered first, then its connection reads end-of-file too.
    open.shut_down_reading();
    if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after {DRAIN_TIMEOUT:?}; stopping anyway");
    }
}

/// Reads the peer's credentials (the kernel's record of connect()), refuses a peer with no
/// right of any kind, gives the others a place if the limits allow (else answers
/// `Unavailable` and closes), and turns an admitted connection into a blocking stream for
/// its thread.
fn admit(
    stream: tokio::net::UnixStream,
    daemon: &Arc<Daemon>,
    places: &Arc<Places>,
    shared: &Shared,
    tracker: &TaskTracker,
) -> Option<(Arc<UnixStream>, Peer, Place)> {
    let peer = match Peer::of(&stream) {
        Ok(peer) => peer,
        Err(err) => {
            tracing::warn!("cannot read peer credentials, closing: {err}");
            return None;
        }
    };
    if !daemon.may_connect(&peer) {
        tracker.spawn(connection::refuse(stream, Arc::clone(daemon), peer));
        return None;
    }
    let admin = daemon.policy().is_admin(&peer, daemon.uid);
    let place = match places.admit(peer.uid, admin) {
        Ok(place) => place,
        Err(refusal) => {
            shared.refusals.refused(peer.uid, peer.pid, &refusal);
            crate::stats::global().record_connection_refused();
            // A fresh connection's send buffer is empty: this small frame fits at once, so
            // one non-blocking write is all it costs, and no task or thread is spent on it.
            if let Ok(frame) = connection::encode(&Response::error(
                ErrorCode::Unavailable,
                refusal.to_string(),
            )) {
                let _ = stream.try_write(&frame);
            }
            return None;
        }
    };
    let stream = match stream
        .into_std()
        .and_then(|stream| stream.set_nonblocking(false).map(|()| stream))
    {
        Ok(stream) => stream,
        Err(err) => {
            tracing::warn!("cannot make the connection blocking, closing: {err}");
            return None;
        }
    };
    Some((Arc::new(stream), peer, place))
}

/// Starts the connection's thread. Should the system refuse a thread (out of memory or of
/// memlock budget), that connection is answered `Unavailable` and closed, and the daemon
/// goes on.
fn spawn(
    stream: Arc<UnixStream>,
    peer: Peer,
    slot: Slot,
    daemon: Arc<Daemon>,
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
) {
    let ours = Arc::clone(&stream);
    let spawned = std::thread::Builder::new()
        .name("keywardd-conn".into())
        .stack_size(CONNECTION_STACK)
        .spawn(move || {
            connection::serve(&stream, &daemon, &peer, &shared, &runtime);
            drop(slot);
        });
    if let Err(err) = spawned {
        tracing::warn!("cannot start a thread for a connection, closing it: {err}");
        // The send buffer of a new connection is empty: this write does not wait.
        let _ = connection::write_error(
            &ours,
            ErrorCode::Unavailable,
            "keywardd cannot start a thread for this connection now; retry later",
        );
    }
}

/// What a connection holds while it lives; dropping it frees the place.
struct Slot {
    /// Its place among the connections the limits allow.
    _place: Place,
    /// Shutdown waits for this (a thread is not a tokio task, so it carries a token).
    _token: TaskTrackerToken,
    id: u64,
    open: Arc<OpenConnections>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.remove(self.id);
    }
}

/// The connections being served, so that shutdown can wake the threads waiting in `read`.
#[derive(Debug, Default)]
struct OpenConnections {
    next: AtomicU64,
    streams: Mutex<HashMap<u64, Arc<UnixStream>>>,
}

impl OpenConnections {
    fn streams(&self) -> MutexGuard<'_, HashMap<u64, Arc<UnixStream>>> {
        // A poisoned map is still a consistent map (every change is one insert or remove).
        self.streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn insert(&self, stream: &Arc<UnixStream>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.streams().insert(id, Arc::clone(stream));
        id
    }

    fn remove(&self, id: u64) {
        self.streams().remove(&id);
    }

    /// Shuts every open connection down for reading. Connections are registered by the
    /// accept loop before their thread starts, and this runs after that loop has stopped,
    /// so none is missed.
    fn shut_down_reading(&self) {
        for stream in self.streams().values() {
            let _ = stream.shutdown(Shutdown::Read);
        }
    }
}
