//! One client connection: framing, the Hello handshake, one response per request.

use std::sync::Arc;
use std::time::Duration;

use keyward_protocol::frame::{self, FrameError, HEADER_LEN};
use keyward_protocol::{
    DecodeError, ErrorCode, MAX_RESPONSE_FRAME, PROTOCOL_VERSION, Request, Response,
    decode_request, encode_response,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use crate::audit::{Decision, Subject};
use crate::daemon::Daemon;
use crate::handler;
use crate::peer::Peer;

/// Once a frame has begun, the rest of it must arrive within this time; a client that
/// stalls mid-frame would otherwise hold a connection slot forever. Between frames a
/// connection may idle as long as it likes (bots keep one open between orders).
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
enum ReadError {
    Frame(FrameError),
    Io(std::io::Error),
    Timeout,
}

/// Serves one connection until EOF, an unrecoverable framing error, or shutdown.
pub(crate) async fn serve(
    mut stream: UnixStream,
    daemon: Arc<Daemon>,
    shutdown: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let peer = match Peer::of(&stream) {
        Ok(peer) => peer,
        Err(err) => {
            tracing::warn!("cannot read peer credentials, closing: {err}");
            return;
        }
    };
    if !daemon.may_connect(&peer) {
        tracing::warn!(
            uid = peer.uid,
            pid = peer.pid,
            "refused a connection: no key or admin right is granted to this uid or its groups"
        );
        let reason = format!(
            "uid {} may not use this keywardd: no key or admin right is granted to it",
            peer.uid
        );
        // A refused connection is a decision too: it goes to the audit log. (A failed audit
        // write changes nothing here: nothing is released.)
        let _ = daemon.audit.record(
            &peer,
            &Subject::connection(),
            Decision::Deny,
            &reason,
            Duration::ZERO,
        );
        let denied = Response::error(ErrorCode::Denied, reason);
        // Answer without reading: a refused peer never gets to make the daemon parse anything.
        let _ = write_response(&mut stream, &denied).await;
        return;
    }
    tracing::debug!(uid = peer.uid, pid = peer.pid, "client connected");
    let mut greeted = false;
    loop {
        let frame = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            frame = read_frame(&mut stream, daemon.settings.max_frame) => frame,
        };
        let body = match frame {
            Ok(Some(body)) => body,
            Ok(None) => return,
            Err(ReadError::Frame(err)) => {
                // The body was never read, so the stream cannot be resynchronised: answer and close.
                tracing::info!(uid = peer.uid, pid = peer.pid, "closing connection: {err}");
                let code = match err {
                    FrameError::TooLarge { .. } => ErrorCode::TooLarge,
                    _ => ErrorCode::BadRequest,
                };
                let _ = write_response(&mut stream, &Response::error(code, err.to_string())).await;
                return;
            }
            Err(ReadError::Io(err)) => {
                tracing::debug!(uid = peer.uid, "connection ended: {err}");
                return;
            }
            Err(ReadError::Timeout) => {
                tracing::info!(
                    uid = peer.uid,
                    pid = peer.pid,
                    "closing connection: frame not completed in time"
                );
                return;
            }
        };
        let decoded = decode_request(&body);
        // The body may hold key material or a passphrase: zeroize it now, not at the end of
        // the loop iteration.
        drop(body);
        let response = match decoded {
            Err(err) => malformed(&peer, &err),
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
            Ok(request) => handler::handle(&daemon, &peer, request).await,
        };
        if let Err(err) = write_response(&mut stream, &response).await {
            tracing::debug!(uid = peer.uid, "cannot answer, closing: {err}");
            return;
        }
    }
}

fn malformed(peer: &Peer, err: &DecodeError) -> Response {
    // The framing is intact (the whole body was read), so the connection can go on.
    tracing::info!(uid = peer.uid, pid = peer.pid, "malformed request: {err}");
    Response::error(ErrorCode::BadRequest, format!("malformed request: {err}"))
}

/// Reads one frame body into a zeroizing buffer of exactly its size. `Ok(None)` is a clean
/// EOF between frames.
///
/// Reading straight into an exact-size `Zeroizing` buffer (rather than through a codec's
/// growing buffer) is what guarantees a frame that carried a key or passphrase leaves no
/// copy behind: there is no reallocation and no shared buffer that outlives the request.
async fn read_frame(
    stream: &mut UnixStream,
    max: u32,
) -> Result<Option<Zeroizing<Vec<u8>>>, ReadError> {
    let mut header = [0u8; HEADER_LEN];
    let first = stream.read(&mut header[..1]).await.map_err(ReadError::Io)?;
    if first == 0 {
        return Ok(None);
    }
    let rest = async {
        stream
            .read_exact(&mut header[1..])
            .await
            .map_err(ReadError::Io)?;
        let len = frame::body_len(header, max).map_err(ReadError::Frame)?;
        let mut body = Zeroizing::new(vec![0u8; len]);
        stream.read_exact(&mut body).await.map_err(ReadError::Io)?;
        Ok(Some(body))
    };
    tokio::time::timeout(FRAME_TIMEOUT, rest)
        .await
        .unwrap_or(Err(ReadError::Timeout))
}

async fn write_response(stream: &mut UnixStream, response: &Response) -> std::io::Result<()> {
    let frame = match encode_response(response, MAX_RESPONSE_FRAME) {
        Ok(frame) => frame,
        Err(err) => {
            tracing::error!("cannot encode a response: {err}");
            let fallback =
                Response::error(ErrorCode::Internal, "the response could not be encoded");
            encode_response(&fallback, MAX_RESPONSE_FRAME)
                .map_err(|err| std::io::Error::other(err.to_string()))?
        }
    };
    stream.write_all(&frame).await
}
