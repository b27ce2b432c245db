//! Where the daemon's socket is when nobody says: the one rule client and daemon share.

use std::ffi::OsStr;
use std::path::PathBuf;

/// The per-user runtime directory systemd-logind makes for `uid` (mode 0700, owned by the
/// user, in root's `/run/user`): the safe fallback when `XDG_RUNTIME_DIR` is unset, as it is
/// under cron, `su` and many `sudo` setups. The caller checks that it exists.
pub fn run_user_dir(uid: u32) -> PathBuf {
    PathBuf::from(format!("/run/user/{uid}"))
}

/// The socket path used when none is given, from the value of `XDG_RUNTIME_DIR`, the user
/// id, and whether [`run_user_dir`] exists:
///
/// 1. `$XDG_RUNTIME_DIR/keyward/keyward.sock` if `XDG_RUNTIME_DIR` is set and not empty
///    (systemd sets it to `/run/user/$UID`, a per-user tmpfs with mode 0700);
/// 2. otherwise `/run/user/$UID/keyward/keyward.sock` if that directory exists;
/// 3. otherwise `/tmp/keyward-$UID/keyward.sock`. Any local user can create that directory
///    first; the daemon then refuses to start there, and clients refuse a server that is
///    not their own uid or root (see `keyward-client`), so a squatter gets nothing, but
///    the fallback is best avoided: set `XDG_RUNTIME_DIR` or name the socket.
///
/// The directory, not the socket, is what protects it: the daemon creates it with mode
/// 0700 and refuses one with unsafe ownership. This function only computes the path (the
/// crate does no I/O); the caller reads the environment, the uid and the file system.
pub fn default_socket_path(
    xdg_runtime_dir: Option<&OsStr>,
    uid: u32,
    run_user_dir_exists: bool,
) -> PathBuf {
    let runtime_dir = match xdg_runtime_dir.filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None if run_user_dir_exists => run_user_dir(uid),
        None => return PathBuf::from(format!("/tmp/keyward-{uid}")).join("keyward.sock"),
    };
    runtime_dir.join("keyward").join("keyward.sock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdg_runtime_dir_first_then_run_user_then_tmp() {
        assert_eq!(
            default_socket_path(Some(OsStr::new("/run/user/1000")), 1000, false),
            PathBuf::from("/run/user/1000/keyward/keyward.sock")
        );
        assert_eq!(
            default_socket_path(Some(OsStr::new("/xdg")), 1000, true),
            PathBuf::from("/xdg/keyward/keyward.sock")
        );
        assert_eq!(
            default_socket_path(Some(OsStr::new("")), 1000, true),
            PathBuf::from("/run/user/1000/keyward/keyward.sock")
        );
        assert_eq!(
            default_socket_path(None, 1000, true),
            PathBuf::from("/run/user/1000/keyward/keyward.sock")
        );
        assert_eq!(
            default_socket_path(Some(OsStr::new("")), 1000, false),
            PathBuf::from("/tmp/keyward-1000/keyward.sock")
        );
        assert_eq!(
            default_socket_path(None, 0, false),
            PathBuf::from("/tmp/keyward-0/keyward.sock")
        );
    }
}
