//! Whether a connection that sat idle between requests is still open.
//!
//! The daemon closes a connection that goes `idle_timeout_secs` without a request, after
//! one `Unavailable` error frame saying so, and a restarting daemon closes every idle one.
//! It never sends anything unasked otherwise. So a connection on which we have nothing in
//! flight and which is readable has been closed (or is being closed) by the daemon: the
//! next request would be lost on it, and since nothing of that request was sent yet, it can
//! go on a fresh connection instead.

use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, recv};

/// True when the daemon has closed the connection or sent something unasked: a zero-wait
/// peek finds the end of the stream, bytes, or an error. Takes nothing off the socket.
/// Only meaningful between requests, when no answer is due.
pub(crate) fn closed_by_daemon(stream: &impl AsRawFd) -> bool {
    let mut byte = [0u8; 1];
    match recv(
        stream.as_raw_fd(),
        &mut byte,
        MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
    ) {
        // Nothing to read: the connection is open and quiet, as it should be.
        Err(Errno::EAGAIN | Errno::EINTR) => false,
        // 0: end of stream; more: an unsolicited frame (the daemon's reason for closing).
        Ok(_) => true,
        // ECONNRESET and the like: gone too.
        Err(_) => true,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn a_quiet_open_connection_is_open_and_bytes_or_the_end_of_stream_are_not() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        assert!(!closed_by_daemon(&ours));
        theirs.write_all(b"x").unwrap();
        assert!(closed_by_daemon(&ours));
        // The peek took nothing.
        assert!(closed_by_daemon(&ours));

        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(theirs);
        assert!(closed_by_daemon(&ours));
    }
}
