//! Where the daemon's socket is when nobody says: the one rule client and daemon share.

use std::ffi::OsStr;
use std::path::PathBuf;

/// The socket path used when none is given, from the value of `XDG_RUNTIME_DIR` and the
/// user id:
///
/// 1. `$XDG_RUNTIME_DIR/keyward/keyward.sock` if `XDG_RUNTIME_DIR` is set and not empty
///    (systemd sets it to `/run/user/$UID`, a per-user tmpfs with mode 0700);
/// 2. otherwise `/tmp/keyward-$UID/keyward.sock`.
///
/// The directory, not the socket, is what protects it: the daemon creates it with mode
/// 0700 and refuses one with unsafe ownership. This function only computes the path (the
/// crate does no I/O); the caller reads the environment and the uid.
pub fn default_socket_path(xdg_runtime_dir: Option<&OsStr>, uid: u32) -> PathBuf {
    match xdg_runtime_dir.filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("keyward").join("keyward.sock"),
        None => PathBuf::from(format!("/tmp/keyward-{uid}")).join("keyward.sock"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdg_runtime_dir_is_used_when_set_and_not_empty() {
        assert_eq!(
            default_socket_path(Some(OsStr::new("/run/user/1000")), 1000),
            PathBuf::from("/run/user/1000/keyward/keyward.sock")
        );
        assert_eq!(
            default_socket_path(Some(OsStr::new("")), 1000),
            PathBuf::from("/tmp/keyward-1000/keyward.sock")
        );
        assert_eq!(
            default_socket_path(None, 0),
            PathBuf::from("/tmp/keyward-0/keyward.sock")
        );
    }
}
