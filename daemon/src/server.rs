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
//! `mlockall`, its whole stack reservation against RLIMIT_MEMLOCK: [`MAX_CONNECTIONS`] ×
//! [`CONNECTION_STACK`] is in harden.rs's budget (see [`stack_reservation`]).
//!
//! Every connection holds a [`Slot`] while it lives: the cap's permit, the shutdown
//! registration and the drain tracker's token. Limits on connections (per uid, deadlines)
//! belong in [`admit`] and [`Slot`].

use std::collections::HashMap;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::UnixListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

use crate::connection;
use crate::daemon::Daemon;
use crate::peer::Peer;

/// Most connections served at once; further clients wait in the listen backlog. Refused
/// peers are answered and closed at once, so they cannot take these slots and starve bots.
pub(crate) const MAX_CONNECTIONS: usize = 1024;

/// The stack of a connection's thread. Serving a request (decoding, policy, audit, signing
/// any scheme, waiting on admin work) takes a small fraction of it even in a debug build,
/// where the test suite runs every request this way; only touched pages become resident.
pub(crate) const CONNECTION_STACK: usize = 128 * 1024;

/// How long shutdown waits for requests in flight before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The address space the connection threads' stacks may take at most (each also has a
/// guard page): what `mlockall(MCL_FUTURE)` counts against RLIMIT_MEMLOCK for them.
pub(crate) const fn stack_reservation() -> u64 {
    (MAX_CONNECTIONS * (CONNECTION_STACK + 4096)) as u64
}

/// Serves `listener` until `shutdown` is cancelled, then waits for requests in flight.
pub(crate) async fn run(listener: UnixListener, daemon: Arc<Daemon>, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let open = Arc::new(OpenConnections::default());
    let runtime = tokio::runtime::Handle::current();
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_closed) => break,
            },
        };
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
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
        let Some((stream, peer)) = admit(stream, &daemon, &tracker) else {
            continue;
        };
        let slot = Slot {
            _permit: permit,
            _token: tracker.token(),
            id: open.insert(&stream),
            open: Arc::clone(&open),
        };
        spawn(stream, peer, slot, Arc::clone(&daemon), runtime.clone());
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
/// right of any kind, and turns an admitted connection into a blocking stream for its thread.
fn admit(
    stream: tokio::net::UnixStream,
    daemon: &Arc<Daemon>,
    tracker: &TaskTracker,
) -> Option<(Arc<UnixStream>, Peer)> {
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
    Some((Arc::new(stream), peer))
}

/// Starts the connection's thread. Should the system refuse a thread (out of memory or of
/// memlock budget), that connection is closed and the daemon goes on.
fn spawn(
    stream: Arc<UnixStream>,
    peer: Peer,
    slot: Slot,
    daemon: Arc<Daemon>,
    runtime: tokio::runtime::Handle,
) {
    let spawned = std::thread::Builder::new()
        .name("keywardd-conn".into())
        .stack_size(CONNECTION_STACK)
        .spawn(move || {
            connection::serve(&stream, &daemon, &peer, &runtime);
            drop(slot);
        });
    if let Err(err) = spawned {
        tracing::warn!("cannot start a thread for a connection, closing it: {err}");
    }
}

/// What a connection holds while it lives; dropping it frees the place.
struct Slot {
    /// One of the [`MAX_CONNECTIONS`].
    _permit: OwnedSemaphorePermit,
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
