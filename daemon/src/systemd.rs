//! systemd integration without libsystemd: socket activation (`LISTEN_FDS`, sd_listen_fds(3)),
//! readiness, status and watchdog messages (`NOTIFY_SOCKET`, sd_notify(3)).
//!
//! Socket activation is checked as the `listenfd` crate does: the variables must name this
//! process (`LISTEN_PID`), and fd 3 must be a listening `AF_UNIX` stream socket before the
//! daemon serves it. keywardd serves one socket, so more than one passed fd is an error (a
//! socket unit with two `ListenStream=` lines is a mistake worth stopping for).
//!
//! The variables are **not** removed from the environment. Removing them is what
//! `sd_listen_fds(unset_environment = 1)` offers so that children do not take the fds for
//! their own; but keywardd starts no children, the fd is marked close-on-exec here, and a
//! child would see a `LISTEN_PID` that is not its own and ignore the variables anyway — that
//! is what `LISTEN_PID` is for. What removal would protect inside this process (taking fd 3
//! twice) is enforced by [`LISTEN_FD_TAKEN`] instead. And `std::env::remove_var` is `unsafe`
//! in edition 2024 (another thread may be reading the environment), so removing them would
//! cost a second `unsafe` block whose soundness depends on the caller being single-threaded.
//!
//! Notification messages are sent as libsystemd sends them: one datagram per message, from a
//! fresh unbound socket. A failure to send is logged and never fatal: the service manager
//! may be gone (shutdown), and the daemon's job is signing, not reporting.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{FromRawFd as _, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram, UnixListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::socket::{
    AddressFamily, SockType, SockaddrLike as _, SockaddrStorage, getsockname, getsockopt, sockopt,
};

/// The first fd passed by the service manager (`SD_LISTEN_FDS_START` in sd-daemon.h).
const SD_LISTEN_FDS_START: RawFd = 3;

/// Set once fd 3 has been turned into an [`OwnedFd`], so that it is never owned twice.
static LISTEN_FD_TAKEN: AtomicBool = AtomicBool::new(false);

/// How long a notification may wait for room in the service manager's queue. The send runs
/// on whatever thread calls it (a tokio worker, for the watchdog), so it must not block for
/// long; a notification that cannot be sent in this time is logged and dropped.
const NOTIFY_SEND_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub(crate) enum SystemdError {
    /// A socket-activation variable is set but is not a number.
    #[error("{name}={value:?} from the service manager is not a valid number")]
    BadVariable { name: &'static str, value: String },
    /// More than one fd was passed; keywardd serves exactly one socket.
    #[error(
        "the service manager passed {0} sockets (LISTEN_FDS={0}); keywardd serves exactly one: \
         give the socket unit a single ListenStream="
    )]
    TooManySockets(u32),
    /// Fd 3 is closed, or not a socket.
    #[error("fd 3 from the service manager (LISTEN_FDS) is not an open socket: {0}")]
    NotASocket(nix::Error),
    /// Fd 3 is a socket, but not the kind keywardd serves.
    #[error(
        "fd 3 from the service manager (LISTEN_FDS) is {0}; keywardd needs a listening Unix \
         stream socket (ListenStream=/path/to/keyward.sock in the socket unit)"
    )]
    WrongSocket(String),
    /// A system call on the passed socket failed.
    #[error("fd 3 from the service manager (LISTEN_FDS): {what}: {source}")]
    Sys {
        what: &'static str,
        source: io::Error,
    },
    /// [`take_listener`] was called a second time after taking fd 3.
    #[error("the socket passed by the service manager was already taken")]
    AlreadyTaken,
}

/// The socket passed by the service manager, if keywardd was socket-activated; `Ok(None)`
/// when it was not (no `LISTEN_PID`, or one naming another process, or `LISTEN_FDS=0`), in
/// which case the daemon binds its socket itself.
///
/// The listener comes back close-on-exec and **non-blocking**, ready for
/// `tokio::net::UnixListener::from_std`. Its path is `listener.local_addr()`; the file
/// belongs to the socket unit, so the daemon must neither create nor remove it.
///
/// Call it at the very start of `main`, before anything opens a file descriptor: the
/// ownership argument below relies on fd 3 being the one the service manager passed.
pub(crate) fn take_listener() -> Result<Option<UnixListener>, SystemdError> {
    let listen_pid = std::env::var_os("LISTEN_PID");
    let listen_fds = std::env::var_os("LISTEN_FDS");
    let count = passed_fds(
        listen_pid.as_deref(),
        listen_fds.as_deref(),
        std::process::id(),
    )?;
    if count == 0 {
        return Ok(None);
    }
    if count > 1 {
        return Err(SystemdError::TooManySockets(count));
    }
    if LISTEN_FD_TAKEN.swap(true, Ordering::SeqCst) {
        return Err(SystemdError::AlreadyTaken);
    }
    // Checked on the raw fd, before anything owns it: it is open (else EBADF), a socket
    // (else ENOTSOCK), and of family AF_UNIX. `getsockname` only reads.
    let address: SockaddrStorage =
        getsockname(SD_LISTEN_FDS_START).map_err(SystemdError::NotASocket)?;
    match address.family() {
        Some(AddressFamily::Unix) => {}
        Some(family) => {
            return Err(SystemdError::WrongSocket(format!(
                "a socket of family {family:?}"
            )));
        }
        None => {
            return Err(SystemdError::WrongSocket(
                "a socket of an unknown family".into(),
            ));
        }
    }

    // One of the crate's two `unsafe` blocks (the other is in os.rs).
    #[allow(unsafe_code)]
    // SAFETY: `OwnedFd::from_raw_fd` needs fd 3 to be open and owned by nobody else.
    // - Open: `getsockname` just succeeded on it, which it cannot on a closed fd.
    // - Ours to own: by the sd_listen_fds(3) protocol, LISTEN_PID equal to our pid (checked
    //   by `passed_fds`) with LISTEN_FDS >= 1 means the service manager handed fds 3.. to
    //   this process at exec, open. `main` calls this before keywardd opens any fd, so even
    //   if the variables lied, an open fd 3 can only be one inherited at exec, never one some
    //   other part of keywardd owns; and no code in keywardd closes or wraps fd 3 but this.
    // - Exactly once: `LISTEN_FD_TAKEN` was false and is now true, so no second call reaches
    //   this line and no second `OwnedFd` for fd 3 can exist.
    // - Nothing but close() is needed to release it: it is a plain socket.
    let fd = unsafe { OwnedFd::from_raw_fd(SD_LISTEN_FDS_START) };

    // Every further check runs on the owned fd; on an error it is closed, which is right:
    // it is ours and the daemon is about to exit.
    let kind = getsockopt(&fd, sockopt::SockType).map_err(sys("cannot read SO_TYPE"))?;
    if kind != SockType::Stream {
        let kind = format!("{kind:?}").to_lowercase();
        return Err(SystemdError::WrongSocket(format!("a Unix {kind} socket")));
    }
    let listening =
        getsockopt(&fd, sockopt::AcceptConn).map_err(sys("cannot read SO_ACCEPTCONN"))?;
    if !listening {
        return Err(SystemdError::WrongSocket(
            "a Unix stream socket that is not listening".into(),
        ));
    }
    fcntl(&fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(sys("cannot set FD_CLOEXEC"))?;
    let listener = UnixListener::from(fd);
    listener
        .set_nonblocking(true)
        .map_err(|source| SystemdError::Sys {
            what: "cannot make it non-blocking",
            source,
        })?;
    Ok(Some(listener))
}

fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> SystemdError {
    move |errno| SystemdError::Sys {
        what,
        source: errno.into(),
    }
}

/// How many fds the service manager passed to process `our_pid`, per sd_listen_fds(3): none
/// unless `LISTEN_PID` names this process.
fn passed_fds(
    listen_pid: Option<&OsStr>,
    listen_fds: Option<&OsStr>,
    our_pid: u32,
) -> Result<u32, SystemdError> {
    let Some(listen_pid) = listen_pid else {
        return Ok(0);
    };
    if parse_number::<u32>("LISTEN_PID", listen_pid)? != our_pid {
        // Meant for another process (our parent, typically): not for us.
        return Ok(0);
    }
    match listen_fds {
        None => Ok(0),
        Some(value) => parse_number("LISTEN_FDS", value),
    }
}

fn parse_number<T: std::str::FromStr>(
    name: &'static str,
    value: &OsStr,
) -> Result<T, SystemdError> {
    value
        .to_str()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| SystemdError::BadVariable {
            name,
            value: value.to_string_lossy().into_owned(),
        })
}

/// Sends sd_notify(3) messages to the service manager (`NOTIFY_SOCKET`).
#[derive(Debug, Clone)]
pub(crate) struct Notifier {
    address: SocketAddr,
}

impl Notifier {
    /// The notifier for `$NOTIFY_SOCKET`, or `None` when it is unset (not started by systemd
    /// with `Type=notify`) or names a socket this code cannot reach (logged).
    pub(crate) fn from_env() -> Option<Notifier> {
        let value = std::env::var_os("NOTIFY_SOCKET")?;
        match Notifier::parse(&value) {
            Ok(notifier) => Some(notifier),
            Err(reason) => {
                tracing::warn!(
                    "ignoring NOTIFY_SOCKET={}: {reason}",
                    value.to_string_lossy()
                );
                None
            }
        }
    }

    /// Parses a `NOTIFY_SOCKET` value: an absolute path, or `@name` for an abstract socket.
    fn parse(value: &OsStr) -> Result<Notifier, String> {
        let bytes = value.as_bytes();
        let address = match bytes.first() {
            Some(b'/') => SocketAddr::from_pathname(value),
            Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
            Some(_) => return Err("neither an absolute path nor an @abstract name".into()),
            None => return Err("it is empty".into()),
        }
        .map_err(|err| err.to_string())?;
        Ok(Notifier { address })
    }

    /// `READY=1`: the daemon serves its socket (and, when a passphrase was provided, is
    /// unlocked). With `Type=notify`, systemd holds back units ordered after keywardd until
    /// this arrives.
    pub(crate) fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// `STATUS=...`: one line shown by `systemctl status`.
    pub(crate) fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    /// `STOPPING=1`: the daemon is shutting down (finishing requests in flight).
    pub(crate) fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping: finishing requests in flight");
    }

    /// `WATCHDOG=1`: the daemon is alive; send it every [`watchdog_interval`].
    pub(crate) fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    fn send(&self, message: &str) {
        if let Err(err) = self.try_send(message.as_bytes()) {
            let first = message.lines().next().unwrap_or_default();
            tracing::warn!("cannot notify the service manager ({first}): {err}");
        }
    }

    fn try_send(&self, message: &[u8]) -> io::Result<()> {
        let socket = UnixDatagram::unbound()?;
        socket.set_write_timeout(Some(NOTIFY_SEND_TIMEOUT))?;
        let sent = socket.send_to_addr(message, &self.address)?;
        if sent != message.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {sent} of {} bytes", message.len()),
            ));
        }
        Ok(())
    }
}

/// The `STATUS=` line for the keystore's state, e.g. `unlocked, 3 keys`.
pub(crate) fn status_line(status: &keyward_protocol::Status) -> String {
    use keyward_protocol::KeystoreState;
    let keys = match status.keys {
        1 => "1 key".to_owned(),
        n => format!("{n} keys"),
    };
    match status.state {
        KeystoreState::Uninitialized => "no keystore yet: run `keyward init`".to_owned(),
        KeystoreState::Locked => "locked: run `keyward unlock`".to_owned(),
        KeystoreState::Unlocked => format!("unlocked, {keys}"),
        KeystoreState::Ephemeral => format!("ephemeral (nothing on disk), {keys}"),
        _ => keys,
    }
}

/// A message field must not span lines: a newline would start another assignment.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC` (as sd_watchdog_enabled(3)
/// advises), when it is set and `$WATCHDOG_PID` is unset or this process.
pub(crate) fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var_os("WATCHDOG_USEC");
    let pid = std::env::var_os("WATCHDOG_PID");
    match watchdog_interval_from(usec.as_deref(), pid.as_deref(), std::process::id()) {
        Ok(interval) => interval,
        Err(err) => {
            tracing::warn!("watchdog disabled: {err}");
            None
        }
    }
}

fn watchdog_interval_from(
    usec: Option<&OsStr>,
    pid: Option<&OsStr>,
    our_pid: u32,
) -> Result<Option<Duration>, SystemdError> {
    let Some(usec) = usec else {
        return Ok(None);
    };
    if let Some(pid) = pid
        && parse_number::<u32>("WATCHDOG_PID", pid)? != our_pid
    {
        return Ok(None);
    }
    let usec: u64 = parse_number("WATCHDOG_USEC", usec)?;
    Ok((usec > 0).then(|| Duration::from_micros(usec / 2)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn os(text: &str) -> Option<&OsStr> {
        Some(OsStr::new(text))
    }

    #[test]
    fn listen_fds_count_only_when_listen_pid_is_ours() {
        assert_eq!(passed_fds(None, None, 42).unwrap(), 0);
        assert_eq!(passed_fds(None, os("1"), 42).unwrap(), 0);
        assert_eq!(passed_fds(os("41"), os("1"), 42).unwrap(), 0);
        assert_eq!(passed_fds(os("42"), None, 42).unwrap(), 0);
        assert_eq!(passed_fds(os("42"), os("0"), 42).unwrap(), 0);
        assert_eq!(passed_fds(os("42"), os("1"), 42).unwrap(), 1);
        assert_eq!(passed_fds(os("42"), os("2"), 42).unwrap(), 2);
    }

    #[test]
    fn malformed_listen_variables_are_errors_not_ignored() {
        let err = passed_fds(os("x42"), os("1"), 42).unwrap_err();
        assert!(err.to_string().contains("LISTEN_PID=\"x42\""), "{err}");
        let err = passed_fds(os("42"), os("-1"), 42).unwrap_err();
        assert!(err.to_string().contains("LISTEN_FDS=\"-1\""), "{err}");
        // A malformed LISTEN_FDS for another process is not our business.
        assert_eq!(passed_fds(os("41"), os("junk"), 42).unwrap(), 0);
    }

    #[test]
    fn take_listener_does_nothing_without_listen_pid() {
        // The test runner is not socket-activated; if it ever were, LISTEN_PID would name
        // cargo, not this process.
        if std::env::var_os("LISTEN_PID").is_none() {
            assert!(take_listener().unwrap().is_none());
        }
    }

    #[test]
    fn watchdog_interval_is_half_of_watchdog_usec_for_us_only() {
        let half = Some(Duration::from_secs(15));
        assert_eq!(watchdog_interval_from(None, None, 7).unwrap(), None);
        assert_eq!(
            watchdog_interval_from(os("30000000"), None, 7).unwrap(),
            half
        );
        assert_eq!(
            watchdog_interval_from(os("30000000"), os("7"), 7).unwrap(),
            half
        );
        assert_eq!(
            watchdog_interval_from(os("30000000"), os("8"), 7).unwrap(),
            None
        );
        assert_eq!(watchdog_interval_from(os("0"), None, 7).unwrap(), None);
        assert!(watchdog_interval_from(os("30s"), None, 7).is_err());
        assert!(watchdog_interval_from(os("1"), os("me"), 7).is_err());
    }

    fn receiver() -> (tempfile::TempDir, UnixDatagram, Notifier) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let notifier = Notifier::parse(path.as_os_str()).unwrap();
        (dir, socket, notifier)
    }

    fn receive(socket: &UnixDatagram) -> String {
        let mut buf = [0; 4096];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn sends_each_message_as_one_datagram_to_a_path() {
        let (_dir, socket, notifier) = receiver();
        notifier.ready("unlocked, 3 keys");
        assert_eq!(receive(&socket), "READY=1\nSTATUS=unlocked, 3 keys");
        notifier.status("locked");
        assert_eq!(receive(&socket), "STATUS=locked");
        notifier.watchdog();
        assert_eq!(receive(&socket), "WATCHDOG=1");
        notifier.stopping();
        assert!(receive(&socket).starts_with("STOPPING=1\n"));
    }

    #[test]
    fn a_status_cannot_inject_another_assignment() {
        let (_dir, socket, notifier) = receiver();
        notifier.status("locked\nREADY=1\r\nX");
        assert_eq!(receive(&socket), "STATUS=locked READY=1  X");
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        let name = format!("keyward-notify-test-{}", std::process::id());
        let bound = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&bound).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let notifier = Notifier::parse(OsStr::new(&format!("@{name}"))).unwrap();
        notifier.ready("ok");
        assert_eq!(receive(&socket), "READY=1\nSTATUS=ok");
    }

    #[test]
    fn status_lines_name_the_state_and_the_key_count() {
        use keyward_protocol::{KeystoreState, Status};
        let line = |state, keys| {
            status_line(&Status {
                state,
                keys,
                idle_lock_in: None,
                max_unlock_in: None,
                unreadable: Vec::new(),
            })
        };
        assert_eq!(line(KeystoreState::Unlocked, 3), "unlocked, 3 keys");
        assert_eq!(line(KeystoreState::Unlocked, 1), "unlocked, 1 key");
        assert_eq!(
            line(KeystoreState::Locked, 0),
            "locked: run `keyward unlock`"
        );
        assert!(line(KeystoreState::Ephemeral, 0).ends_with(", 0 keys"));
        assert!(line(KeystoreState::Uninitialized, 0).contains("keyward init"));
    }

    #[test]
    fn unusable_notify_socket_values_are_refused() {
        assert!(Notifier::parse(OsStr::new("")).is_err());
        assert!(Notifier::parse(OsStr::new("relative/path")).is_err());
        assert!(Notifier::parse(OsStr::new("vsock:2:1234")).is_err());
        let long = format!("/{}", "x".repeat(200));
        assert!(Notifier::parse(OsStr::new(&long)).is_err());
    }

    #[test]
    fn a_missing_receiver_is_logged_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let notifier = Notifier::parse(dir.path().join("gone.sock").as_os_str()).unwrap();
        notifier.ready("ok");
        notifier.watchdog();
        assert!(notifier.try_send(b"WATCHDOG=1").is_err());
    }
}
