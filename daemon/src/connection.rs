//! One client connection, served on its own thread with blocking I/O: framing, the Hello
//! handshake, one response per request. The request is handled, and signed, on this thread:
//! no other thread is woken between reading a request and writing its answer.
//!
//! `server.rs` has already read the peer's credentials and accepted it; the thread, the cap
//! on connections and shutdown are its business.

use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward_protocol::frame::{self, FrameError, HEADER_LEN};
use keyward_protocol::{
    DecodeError, ErrorCode, MAX_RESPONSE_FRAME, Request, Response, decode_request, encode_response,
};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, recv, send};
use tokio::io::AsyncWriteExt;
use zeroize::Zeroizing;

use crate::daemon::Daemon;
use crate::handler;
use crate::limits::{FrameBudget, Limits, OverBudget, RefusalLog, Reservation};
use crate::peer::Peer;
use crate::refusals;
use crate::throttle::{Throttle, suppressed_note};

/// Lines about misbehaving connections (bad frames, malformed requests, stalls), at most
/// this many a second: a client cannot flood the journal (throttle.rs).
static CONNECTION_LINES: Throttle = Throttle::new(20, Duration::from_secs(1));

/// How long the answer to a refused peer may take to write (the default `frame_timeout`).
pub(crate) const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// What every connection thread shares: the deadlines, the budget for frames being
/// received, and the rate-limited log of refused places.
#[derive(Debug)]
pub(crate) struct Shared {
    timeouts: Timeouts,
    budget: FrameBudget,
    pub(crate) refusals: RefusalLog,
}

impl Shared {
    pub(crate) fn new(limits: &Limits) -> Shared {
        Shared {
            timeouts: Timeouts {
                hello: limits.hello_timeout,
                frame: limits.frame_timeout,
                idle: limits.idle_timeout,
            },
            budget: FrameBudget::new(limits.frame_budget),
            refusals: RefusalLog::default(),
        }
    }
}

/// The deadlines of a connection (issue 16), each enforced with the socket's own timeouts
/// (SO_RCVTIMEO, SO_SNDTIMEO) on its blocking thread:
/// - `hello`: from accept to the first whole request, so a connection that never speaks
///   does not hold its place and thread;
/// - `frame`: from a frame's first byte to its last, so a client trickling bytes
///   (slowloris) cannot either; and for a response, from its first byte written to its
///   last taken by the client, so a client that does not read cannot;
/// - `idle`: between requests. Bots keep a connection open between orders; one that has
///   sent nothing for this long is answered `Unavailable` and closed, and connects again.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    hello: Duration,
    frame: Duration,
    idle: Duration,
}

/// Which wait ran out.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// The first request after accept.
    FirstRequest,
    /// Between requests.
    Idle,
    /// The rest of a frame that had begun.
    Frame,
}

#[derive(Debug)]
enum ReadError {
    Frame(FrameError),
    Io(std::io::Error),
    Timeout(Phase),
    OverBudget(OverBudget),
    NoMemory(usize),
}

/// Answers a peer with no right of any kind, without reading anything it sent, and closes.
/// Runs on the accept loop's runtime: a refused peer never gets a thread. The refusal is
/// counted and recorded per uid and interval (refusals.rs), not logged one by one.
pub(crate) async fn refuse(mut stream: tokio::net::UnixStream, daemon: Arc<Daemon>, peer: Peer) {
    crate::stats::global().record_connection_refused();
    // A refused connection is a decision too: it goes to the audit log. (A failed audit
    // write changes nothing here: nothing is released.)
    daemon.refusals.refused(&peer, &daemon.audit);
    let denied = Response::error(ErrorCode::Denied, refusals::reason(&peer));
    let write = async {
        stream.write_all(&encode(&denied)?).await?;
        stream.flush().await
    };
    let _ = tokio::time::timeout(FRAME_TIMEOUT, write).await;
}

/// Serves one accepted connection until EOF, an unrecoverable framing error, a deadline, or
/// shutdown (which shuts the socket down for reading: an idle connection then reads EOF,
/// and a request in flight is answered first). Blocks the calling thread throughout;
/// requests that wait on admin work (locks, the admin thread) are driven on it by `runtime`.
pub(crate) fn serve(
    stream: &UnixStream,
    daemon: &Arc<Daemon>,
    peer: &Peer,
    shared: &Shared,
    runtime: &tokio::runtime::Handle,
) {
    tracing::debug!(
        uid = peer.uid,
        user = peer.about.user.as_deref().unwrap_or("-"),
        pid = peer.pid,
        comm = peer.about.comm.as_deref().unwrap_or("-"),
        unit = peer.about.unit.as_deref().unwrap_or("-"),
        "client connected"
    );
    let timeouts = shared.timeouts;
    // The standing read timeout: `hello` until the first request, then `idle`. Set once here
    // and once after the first request; a frame that arrives whole costs no other timer call.
    if let Err(err) = stream.set_read_timeout(Some(timeouts.hello)) {
        tracing::warn!("cannot set the connection's timeouts, closing: {err}");
        return;
    }
    let first_by = Instant::now() + timeouts.hello;
    let mut first = true;
    let _open = crate::stats::global().connection_opened();
    let mut greeted = false;
    // The protocol version agreed by Hello.
    let mut version = 0;
    loop {
        let standing = if first { timeouts.hello } else { timeouts.idle };
        let read = read_frame(
            stream,
            daemon.settings.max_frame,
            &shared.budget,
            &Waits {
                standing,
                frame: timeouts.frame,
                first_by: first.then_some(first_by),
            },
        );
        let body = match read {
            Ok(Some(body)) => body,
            Ok(None) => return,
            Err(err) => {
                close_after(stream, peer, err, timeouts);
                return;
            }
        };
        if first {
            first = false;
            if let Err(err) = stream.set_read_timeout(Some(timeouts.idle)) {
                tracing::warn!(
                    uid = peer.uid,
                    "cannot set the idle timeout, closing: {err}"
                );
                return;
            }
        }
        let decoded = decode_request(&body.bytes);
        // The body may hold key material or a passphrase: zeroize it now (and give its
        // budget back), not at the end of the loop iteration.
        drop(body);
        let response = match decoded {
            Err(err) => malformed(peer, &err),
            Ok(Request::Hello { version: asked }) if !greeted => {
                let (response, spoken) = handler::hello(daemon, asked);
                if let Some(spoken) = spoken {
                    (greeted, version) = (true, spoken);
                }
                response
            }
            Ok(_) if !greeted => {
                Response::error(ErrorCode::BadRequest, "the first request must be Hello")
            }
            // A signature completes on the first poll, here on this thread; admin requests
            // park this thread while they wait for the admin lock or the admin thread.
            Ok(request) => runtime.block_on(handler::handle(daemon, peer, version, request)),
        };
        if let Err(err) = write_response(stream, &response, timeouts.frame) {
            if err.kind() == ErrorKind::TimedOut {
                tracing::info!(
                    uid = peer.uid,
                    pid = peer.pid,
                    "closing connection: the client did not take its response within {:?} \
                     (frame_timeout_secs)",
                    timeouts.frame
                );
            } else {
                tracing::debug!(uid = peer.uid, "cannot answer, closing: {err}");
            }
            return;
        }
    }
}

/// Says why the connection closes, in the log and (when the stream is still in a state to
/// take it) to the client, as one error frame.
fn close_after(stream: &UnixStream, peer: &Peer, err: ReadError, timeouts: Timeouts) {
    let (code, message) = match err {
        // The body was never read, so the stream cannot be resynchronised: answer and close.
        ReadError::Frame(err) => {
            let code = match err {
                FrameError::TooLarge { .. } => ErrorCode::TooLarge,
                _ => ErrorCode::BadRequest,
            };
            (code, err.to_string())
        }
        ReadError::Io(err) => {
            tracing::debug!(uid = peer.uid, "connection ended: {err}");
            return;
        }
        ReadError::Timeout(Phase::Frame) => {
            if let Some(suppressed) = CONNECTION_LINES.admit() {
                tracing::info!(
                    uid = peer.uid,
                    pid = peer.pid,
                    "closing connection: frame not completed within {:?} of its first byte \
                     (frame_timeout_secs){}",
                    timeouts.frame,
                    suppressed_note(suppressed)
                );
            }
            // Part of a frame is on the socket: no answer could be told from it.
            return;
        }
        ReadError::Timeout(Phase::FirstRequest) => (
            ErrorCode::Unavailable,
            format!(
                "closed: no whole request within {:?} of connecting (hello_timeout_secs)",
                timeouts.hello
            ),
        ),
        ReadError::Timeout(Phase::Idle) => (
            ErrorCode::Unavailable,
            format!(
                "closed after {:?} without a request (idle_timeout_secs); connect again",
                timeouts.idle
            ),
        ),
        ReadError::OverBudget(over) => (ErrorCode::Unavailable, over.to_string()),
        ReadError::NoMemory(len) => (
            ErrorCode::Unavailable,
            format!("keywardd cannot allocate {len} bytes for this frame now; retry later"),
        ),
    };
    if let Some(suppressed) = CONNECTION_LINES.admit() {
        tracing::info!(
            uid = peer.uid,
            pid = peer.pid,
            "closing connection: {message}{}",
            suppressed_note(suppressed)
        );
    }
    let _ = write_error(stream, code, &message);
}

/// Writes one error frame (for a connection about to close).
pub(crate) fn write_error(
    stream: &UnixStream,
    code: ErrorCode,
    message: &str,
) -> std::io::Result<()> {
    write_response(stream, &Response::error(code, message), FRAME_TIMEOUT)
}

fn malformed(peer: &Peer, err: &DecodeError) -> Response {
    // The framing is intact (the whole body was read), so the connection can go on.
    if let Some(suppressed) = CONNECTION_LINES.admit() {
        tracing::info!(
            uid = peer.uid,
            pid = peer.pid,
            "malformed request: {err}{}",
            suppressed_note(suppressed)
        );
    }
    Response::error(ErrorCode::BadRequest, format!("malformed request: {err}"))
}

/// How long the reads of one frame may wait.
struct Waits {
    /// The socket's read timeout between frames (`hello` before the first, then `idle`):
    /// the wait for a frame's first byte, and what a frame's reads restore when done.
    standing: Duration,
    /// From a frame's first byte to its last.
    frame: Duration,
    /// For the first request: when it must be whole, whatever `frame` says.
    first_by: Option<Instant>,
}

/// A frame body in a zeroizing buffer of exactly its size, with its share of the budget.
struct Body<'a> {
    bytes: Zeroizing<Vec<u8>>,
    _reservation: Reservation<'a>,
}

/// Reads one frame body. `Ok(None)` is a clean EOF between frames (or shutdown, which reads
/// as one).
///
/// Reading straight into an exact-size `Zeroizing` buffer (rather than through a codec's
/// growing buffer) is what guarantees a frame that carried a key or passphrase leaves no
/// copy behind: there is no reallocation and no shared buffer that outlives the request.
/// The buffer is allocated fallibly, after the budget has room for it: under mlockall a
/// refused allocation would otherwise abort the daemon.
///
/// The wait for a frame's first byte is bounded by the standing read timeout; the rest of
/// the frame by [`Deadline`]. A frame that arrives whole (the usual case) costs one blocking
/// `read`, one non-blocking `recv` and no timer call.
fn read_frame<'a>(
    mut stream: &UnixStream,
    max: u32,
    budget: &'a FrameBudget,
    waits: &Waits,
) -> Result<Option<Body<'a>>, ReadError> {
    let mut header = [0u8; HEADER_LEN];
    let first = loop {
        match stream.read(&mut header) {
            Ok(n) => break n,
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                let phase = match waits.first_by {
                    Some(_) => Phase::FirstRequest,
                    None => Phase::Idle,
                };
                return Err(ReadError::Timeout(phase));
            }
            Err(err) => return Err(ReadError::Io(err)),
        }
    };
    if first == 0 {
        return Ok(None);
    }
    let mut until = Instant::now() + waits.frame;
    if let Some(first_by) = waits.first_by {
        until = until.min(first_by);
    }
    let mut rest = Deadline {
        stream,
        until,
        armed: false,
        standing: waits.standing,
    };
    rest.read_exact(&mut header[first..])?;
    let len = frame::body_len(header, max).map_err(ReadError::Frame)?;
    let reservation = budget.reserve(len).map_err(ReadError::OverBudget)?;
    let mut bytes = Zeroizing::new(Vec::new());
    bytes
        .try_reserve_exact(len)
        .map_err(|_| ReadError::NoMemory(len))?;
    bytes.resize(len, 0);
    rest.read_exact(&mut bytes)?;
    Ok(Some(Body {
        bytes,
        _reservation: reservation,
    }))
}

/// The rest of a frame that has begun: reads bounded by one deadline. Each read first takes
/// what is already there without waiting; only when it would wait is the socket's read
/// timeout set to what is left, and it is restored to the standing one when the frame is
/// done.
struct Deadline<'a> {
    stream: &'a UnixStream,
    until: Instant,
    armed: bool,
    standing: Duration,
}

impl Deadline<'_> {
    fn read_exact(&mut self, mut buf: &mut [u8]) -> Result<(), ReadError> {
        let mut stream = self.stream;
        while !buf.is_empty() {
            let read = if self.armed {
                stream.read(buf)
            } else {
                recv(stream.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT).map_err(std::io::Error::from)
            };
            match read {
                Ok(0) => return Err(ReadError::Io(ErrorKind::UnexpectedEof.into())),
                Ok(n) => {
                    buf = &mut buf[n..];
                    // Trickling in: each wait gets only what is left of the deadline, so
                    // bytes that keep coming cannot stretch it.
                    if self.armed && !buf.is_empty() {
                        self.arm()?;
                    }
                }
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                // Nothing there yet, or the armed timeout ran out: wait for what is left.
                Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    self.arm()?;
                }
                Err(err) => return Err(ReadError::Io(err)),
            }
        }
        Ok(())
    }

    fn arm(&mut self) -> Result<(), ReadError> {
        let left = self.until.saturating_duration_since(Instant::now());
        // A zero timeout means "wait forever" to the socket; under a millisecond is over.
        if left < Duration::from_millis(1) {
            return Err(ReadError::Timeout(Phase::Frame));
        }
        self.stream
            .set_read_timeout(Some(left))
            .map_err(ReadError::Io)?;
        self.armed = true;
        Ok(())
    }
}

impl Drop for Deadline<'_> {
    fn drop(&mut self) {
        if self.armed {
            // Between frames the standing timeout applies again. Should this fail, the next
            // wait times out early and the connection closes; nothing worse.
            let _ = self.stream.set_read_timeout(Some(self.standing));
        }
    }
}

/// Encodes a response; one that cannot be encoded becomes an `Internal` error.
pub(crate) fn encode(response: &Response) -> std::io::Result<Zeroizing<Vec<u8>>> {
    match encode_response(response, MAX_RESPONSE_FRAME) {
        Ok(frame) => Ok(frame),
        Err(err) => {
            tracing::error!("cannot encode a response: {err}");
            let fallback =
                Response::error(ErrorCode::Internal, "the response could not be encoded");
            encode_response(&fallback, MAX_RESPONSE_FRAME)
                .map_err(|err| std::io::Error::other(err.to_string()))
        }
    }
}

/// Writes a whole response within `timeout` of its first byte (`TimedOut` otherwise).
///
/// Non-blocking sends and `poll` for the rest, not a blocking `write` under SO_SNDTIMEO:
/// the kernel restarts that timeout for every chunk it manages to queue, so a client that
/// takes a large response a few KiB at a time would hold the thread for as long as it
/// likes. A response that fits in the socket buffer (the usual case) costs one `send`.
fn write_response(
    stream: &UnixStream,
    response: &Response,
    timeout: Duration,
) -> std::io::Result<()> {
    let frame = encode(response)?;
    let until = Instant::now() + timeout;
    let mut rest = &frame[..];
    while !rest.is_empty() {
        match send(
            stream.as_raw_fd(),
            rest,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        ) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => rest = &rest[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let left = until.saturating_duration_since(Instant::now());
                if left < Duration::from_millis(1) {
                    return Err(ErrorKind::TimedOut.into());
                }
                let wait = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
                let mut fds = [PollFd::new(stream.as_fd(), PollFlags::POLLOUT)];
                match poll(&mut fds, wait) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(err) => return Err(err.into()),
                }
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}
