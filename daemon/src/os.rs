//! The one call into the OS that no safe wrapper offers: `getsockopt(SO_PEERGROUPS)`.
//!
//! `nix` (the project's syscall wrapper) wraps `SO_PEERCRED` and `SO_PEERPIDFD` but not
//! `SO_PEERGROUPS`, the kernel's record of the connecting process's supplementary groups as
//! of connect() (Linux 4.13+). The alternative, `/proc/PID/status`, is read later, and by
//! then the pid may belong to another process; so the groups that grant `allow_gids` and
//! `admin_gids` come from here.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// `SO_PEERGROUPS` from <asm-generic/socket.h>; the same value on every architecture
/// keywardd builds for (x86_64, aarch64), and not exported by the `libc` crate there.
const SO_PEERGROUPS: libc::c_int = 59;

/// The most groups a process can have (`NGROUPS_MAX` on Linux).
const NGROUPS_MAX: usize = 65536;

/// The supplementary groups the peer of the connected Unix socket `socket` had when it
/// called connect(), as the kernel recorded them. Fails with `ENOPROTOOPT` on kernels older
/// than 4.13.
pub(crate) fn peer_groups(socket: &impl AsFd) -> io::Result<Vec<u32>> {
    let fd = socket.as_fd().as_raw_fd();
    let mut groups: Vec<libc::gid_t> = vec![0; 32];
    loop {
        let capacity = groups.len() * size_of::<libc::gid_t>();
        let mut len = libc::socklen_t::try_from(capacity)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `getsockopt` writes at most `len` bytes to the pointer, and `len` is the
        // size in bytes of `groups`' initialised buffer, which lives across the call; `fd`
        // is borrowed from `socket`, so it stays open for the call. It writes back in `len`
        // how many bytes it stored (or, with ERANGE, how many it needs) and touches no other
        // memory.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let len = len as usize;
        if rc == 0 {
            groups.truncate(len.min(capacity) / size_of::<libc::gid_t>());
            return Ok(groups);
        }
        let err = io::Error::last_os_error();
        let needed = len / size_of::<libc::gid_t>();
        // ERANGE: the buffer was too small and `len` says how large it must be.
        if err.raw_os_error() == Some(libc::ERANGE)
            && needed > groups.len()
            && needed <= NGROUPS_MAX
        {
            groups.resize(needed, 0);
            continue;
        }
        return Err(err);
    }
}
