//! One client connection, served on its own thread with blocking I/O: framing, the Hello
//! handshake, one response per request. The request is handled, and signed, on this thread:
//! no other thread is woken between reading a request and writing its answer.
//!
//! `server.rs` has already read the peer's credentials and accepted it; the thread, the cap
//! on connections and shutdown are its business.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward_protocol::frame::{self, FrameError, HEADER_LEN};
use keyward_protocol::{
    DecodeError, ErrorCode, MAX_RESPONSE_FRAME, PROTOCOL_VERSION, Request, Response,
    decode_request, encode_response,
};
use tokio::io::AsyncWriteExt;
use zeroize::Zeroizing;

use crate::daemon::Daemon;
use crate::handler;
use crate::peer::Peer;
use crate::refusals;
use crate::throttle::{Throttle, suppressed_note};

/// Lines about misbehaving connections (bad frames, malformed requests, stalls), at most
/// this many a second: a client cannot flood the journal (throttle.rs).
static CONNECTION_LINES: Throttle = Throttle::new(20, Duration::from_secs(1));

/// Once a frame has begun, the rest of it must arrive within this time; a client that
/// stalls mid-frame would otherwise hold a connection (and its thread) forever. Between
/// frames a connection may idle as long as it likes (bots keep one open between orders).
/// A response that cannot be written for this long (a client that does not read) fails too.
pub(crate) const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
enum ReadError {
    Frame(FrameError),
    Io(std::io::Error),
    Timeout,
}

/// Answers a peer with no right of any kind, without reading anything it sent, and closes.
/// Runs on the accept loop's runtime: a refused peer never gets a thread. The refusal is
/// counted and recorded per uid and interval (refusals.rs), not logged one by one.
pub(crate) async fn refuse(mut stream: tokio::net::UnixStream, daemon: Arc<Daemon>, peer: Peer) {
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

/// Serves one accepted connection until EOF, an unrecoverable framing error, or shutdown
/// (which shuts the socket down for reading: an idle connection then reads EOF, and a
/// request in flight is answered first). Blocks the calling thread throughout; requests
/// that wait on admin work (locks, the admin thread) are driven on it by `runtime`.
pub(crate) fn serve(
    stream: &UnixStream,
    daemon: &Arc<Daemon>,
    peer: &Peer,
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
    if let Err(err) = stream.set_write_timeout(Some(FRAME_TIMEOUT)) {
        tracing::warn!("cannot set a write timeout, closing: {err}");
        return;
    }
    let mut greeted = false;
    loop {
        let body = match read_frame(stream, daemon.settings.max_frame) {
            Ok(Some(body)) => body,
            Ok(None) => return,
            Err(ReadError::Frame(err)) => {
                // The body was never read, so the stream cannot be resynchronised: answer and close.
                if let Some(suppressed) = CONNECTION_LINES.admit() {
                    tracing::info!(
                        uid = peer.uid,
                        pid = peer.pid,
                        "closing connection: {err}{}",
                        suppressed_note(suppressed)
                    );
                }
                let code = match err {
                    FrameError::TooLarge { .. } => ErrorCode::TooLarge,
                    _ => ErrorCode::BadRequest,
                };
                let _ = write_response(stream, &Response::error(code, err.to_string()));
                return;
            }
            Err(ReadError::Io(err)) => {
                tracing::debug!(uid = peer.uid, "connection ended: {err}");
                return;
            }
            Err(ReadError::Timeout) => {
                if let Some(suppressed) = CONNECTION_LINES.admit() {
                    tracing::info!(
                        uid = peer.uid,
                        pid = peer.pid,
                        "closing connection: frame not completed in time{}",
                        suppressed_note(suppressed)
                    );
                }
                return;
            }
        };
        let decoded = decode_request(&body);
        // The body may hold key material or a passphrase: zeroize it now, not at the end of
        // the loop iteration.
        drop(body);
        let response = match decoded {
            Err(err) => malformed(peer, &err),
            Ok(Request::Hello { version }) if !greeted => {
                if version == PROTOCOL_VERSION {
                    greeted = true;
                    Response::Hello {
                        version: PROTOCOL_VERSION,
                        max_frame: daemon.settings.max_frame,
                    }
                } else {
                    Response::error(
                        ErrorCode::UnsupportedVersion,
                        format!(
                            "protocol version {version} is not supported; this daemon speaks version {PROTOCOL_VERSION}"
                        ),
                    )
                }
            }
            Ok(_) if !greeted => {
                Response::error(ErrorCode::BadRequest, "the first request must be Hello")
            }
            // A signature completes on the first poll, here on this thread; admin requests
            // park this thread while they wait for the admin lock or the admin thread.
            Ok(request) => runtime.block_on(handler::handle(daemon, peer, request)),
        };
        if let Err(err) = write_response(stream, &response) {
            tracing::debug!(uid = peer.uid, "cannot answer, closing: {err}");
            return;
        }
    }
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

/// Reads one frame body into a zeroizing buffer of exactly its size. `Ok(None)` is a clean
/// EOF between frames (or shutdown, which reads as one).
///
/// Reading straight into an exact-size `Zeroizing` buffer (rather than through a codec's
/// growing buffer) is what guarantees a frame that carried a key or passphrase leaves no
/// copy behind: there is no reallocation and no shared buffer that outlives the request.
///
/// Waiting for a frame to begin has no deadline. Once it has begun, every further read is
/// bounded by what is left of [`FRAME_TIMEOUT`]; a frame that arrives whole (the usual case)
/// costs two `read` calls and no timer at all.
fn read_frame(mut stream: &UnixStream, max: u32) -> Result<Option<Zeroizing<Vec<u8>>>, ReadError> {
    let mut header = [0u8; HEADER_LEN];
    let first = loop {
        match stream.read(&mut header) {
            Ok(n) => break n,
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => return Err(ReadError::Io(err)),
        }
    };
    if first == 0 {
        return Ok(None);
    }
    let mut rest = Deadline::new(stream);
    rest.read_exact(&mut header[first..])?;
    let len = frame::body_len(header, max).map_err(ReadError::Frame)?;
    let mut body = Zeroizing::new(vec![0u8; len]);
    rest.read_exact(&mut body)?;
    Ok(Some(body))
}

/// The rest of a frame that has begun: reads bounded by one deadline, [`FRAME_TIMEOUT`]
/// from the frame's first byte. The socket's read timeout is set only when a read would
/// otherwise wait, and cleared again when the frame is done.
struct Deadline<'a> {
    stream: &'a UnixStream,
    until: Instant,
    armed: bool,
}

impl<'a> Deadline<'a> {
    fn new(stream: &'a UnixStream) -> Deadline<'a> {
        Deadline {
            stream,
            until: Instant::now() + FRAME_TIMEOUT,
            armed: false,
        }
    }

    fn read_exact(&mut self, mut buf: &mut [u8]) -> Result<(), ReadError> {
        let mut stream = self.stream;
        while !buf.is_empty() {
            match stream.read(buf) {
                Ok(0) => return Err(ReadError::Io(ErrorKind::UnexpectedEof.into())),
                Ok(n) => buf = &mut buf[n..],
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                // The read timeout (set below) ran out; `arm` says whether time is left.
                Err(err)
                    if self.armed
                        && matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(err) => return Err(ReadError::Io(err)),
            }
            if !buf.is_empty() {
                // The frame is arriving in pieces: bound the wait for the next one.
                self.arm()?;
            }
        }
        Ok(())
    }

    fn arm(&mut self) -> Result<(), ReadError> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadError::Timeout);
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
            // Between frames the connection waits without a deadline again. Should this
            // fail, the next idle wait times out and the connection closes; nothing worse.
            let _ = self.stream.set_read_timeout(None);
        }
    }
}

fn encode(response: &Response) -> std::io::Result<Zeroizing<Vec<u8>>> {
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

fn write_response(mut stream: &UnixStream, response: &Response) -> std::io::Result<()> {
    stream.write_all(&encode(response)?)
}
