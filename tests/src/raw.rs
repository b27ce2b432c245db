//! The wire protocol spoken byte by byte over a plain `UnixStream`, to send the daemon what
//! the real client never would: garbage, lies in the length header, unknown variants.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use keyward_protocol::frame::HEADER_LEN;
use keyward_protocol::{PROTOCOL_VERSION, Request, Response, decode_response, encode_request};

/// How long a read may wait for the daemon before the test fails: far beyond any honest
/// answer, far below the daemon's own 10 s mid-frame timeout, so "the daemon answered" and
/// "the daemon gave up on a stalled frame" cannot be confused.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest response body accepted here (as the real client: 16 MiB).
const MAX_RESPONSE: u32 = 16 * 1024 * 1024;

/// What came back after a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// A whole, valid response frame.
    Response(Response),
    /// The daemon closed the connection (EOF or reset) before a whole frame arrived.
    Closed,
}

/// A raw connection to a daemon.
#[derive(Debug)]
pub struct RawConn {
    stream: UnixStream,
}

impl RawConn {
    /// Connects, with no handshake.
    pub fn connect(socket: &Path) -> RawConn {
        let stream = UnixStream::connect(socket)
            .unwrap_or_else(|err| panic!("cannot connect to {}: {err}", socket.display()));
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("cannot set a read timeout");
        stream
            .set_write_timeout(Some(READ_TIMEOUT))
            .expect("cannot set a write timeout");
        RawConn { stream }
    }

    /// Connects and completes the Hello handshake; returns the daemon's `max_frame`.
    pub fn connect_and_hello(socket: &Path) -> (RawConn, u32) {
        let mut conn = RawConn::connect(socket);
        let max_frame = conn.hello();
        (conn, max_frame)
    }

    /// Sends a Hello with the current version and returns the announced `max_frame`.
    pub fn hello(&mut self) -> u32 {
        match self.request(&Request::Hello {
            version: PROTOCOL_VERSION,
        }) {
            Reply::Response(Response::Welcome(welcome)) => {
                assert_eq!(welcome.version, PROTOCOL_VERSION);
                welcome.max_frame
            }
            other => panic!("expected a Welcome answer, got {other:?}"),
        }
    }

    /// Writes `bytes` as they are. A write the daemon cut short (it closed first) is not an
    /// error here: what matters is what it answered.
    pub fn send(&mut self, bytes: &[u8]) {
        match self.stream.write_all(bytes) {
            Ok(()) => {}
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) => {}
            Err(err) => panic!("cannot write to the daemon: {err}"),
        }
    }

    /// Writes a frame: a 4-byte big-endian length of `body`, then `body`.
    pub fn send_frame(&mut self, body: &[u8]) {
        let len = u32::try_from(body.len()).expect("frame body fits in u32");
        let mut frame = len.to_be_bytes().to_vec();
        frame.extend_from_slice(body);
        self.send(&frame);
    }

    /// Encodes and sends `request` (with no size limit: the daemon is the one to judge).
    pub fn send_request(&mut self, request: &Request) {
        let frame = encode_request(request, u32::MAX).expect("the request encodes");
        self.send(&frame);
    }

    /// Sends `request` and reads the reply.
    pub fn request(&mut self, request: &Request) -> Reply {
        self.send_request(request);
        self.read_reply()
    }

    /// The socket itself, for reads the methods here do not offer (a slow reader).
    pub fn into_stream(self) -> UnixStream {
        self.stream
    }

    /// Closes the writing half, as a client does when it has nothing more to say.
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }

    /// Reads one response frame, or [`Reply::Closed`] if the connection ends first. Panics if
    /// the daemon neither answers nor closes within 5 s (a hang), or sends an invalid frame.
    pub fn read_reply(&mut self) -> Reply {
        let mut header = [0u8; HEADER_LEN];
        if let Some(closed) = self.read_exact_or_closed(&mut header) {
            return closed;
        }
        let len = u32::from_be_bytes(header);
        assert!(
            len > 0 && len <= MAX_RESPONSE,
            "the daemon announced a response of {len} bytes"
        );
        let mut body = vec![0u8; len as usize];
        if let Some(closed) = self.read_exact_or_closed(&mut body) {
            panic!("the daemon closed in the middle of a response frame ({closed:?})");
        }
        Reply::Response(decode_response(&body).expect("the daemon sent an invalid response"))
    }

    fn read_exact_or_closed(&mut self, buf: &mut [u8]) -> Option<Reply> {
        match self.stream.read_exact(buf) {
            Ok(()) => None,
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
                ) =>
            {
                Some(Reply::Closed)
            }
            Err(err) => panic!("no answer and no close from the daemon: {err}"),
        }
    }

    /// Asserts the daemon has closed this connection: a read sees EOF (or a reset).
    #[track_caller]
    pub fn assert_closed(&mut self) {
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => {}
            Err(err) if err.kind() == io::ErrorKind::ConnectionReset => {}
            Ok(_) => panic!("the daemon sent more bytes instead of closing"),
            Err(err) => panic!("the daemon did not close the connection: {err}"),
        }
    }
}

/// A payload such that the frame body of `Sign { key, payload }` is exactly `body_len` bytes.
pub fn payload_for_frame_body(key: &str, body_len: u32) -> Vec<u8> {
    let body = |n: usize| {
        let request = Request::Sign {
            key: key.to_owned(),
            payload: vec![0; n],
        };
        encode_request(&request, u32::MAX)
            .expect("the request encodes")
            .len()
            - HEADER_LEN
    };
    let target = body_len as usize;
    // The overhead (variant, key, two varint lengths) is a few bytes; search just below.
    let guess = target.saturating_sub(body(0));
    let n = (guess.saturating_sub(8)..=guess)
        .find(|&n| body(n) == target)
        .unwrap_or_else(|| panic!("no payload length gives a {target}-byte frame body"));
    crate::pattern(n)
}
