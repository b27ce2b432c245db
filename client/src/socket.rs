//! Where the daemon's socket is.

use std::env;
use std::ffi::OsString;
use std::path::PathBuf;

/// The environment variable that names the daemon's socket: `KEYWARD_SOCK`.
pub const SOCKET_ENV: &str = "KEYWARD_SOCK";

/// The socket path used when none is given.
///
/// The rule, which `keywardd` in user mode follows too:
///
/// 1. `$XDG_RUNTIME_DIR/keyward/keyward.sock` if `XDG_RUNTIME_DIR` is set and not empty
///    (systemd sets it to `/run/user/$UID`, a per-user tmpfs with mode 0700);
/// 2. otherwise `/tmp/keyward-$UID/keyward.sock`, `$UID` being the real user id of this
///    process.
///
/// The directory, not the socket, is what protects it: the daemon creates it with mode
/// 0700 and refuses one with unsafe ownership.
pub fn default_socket_path() -> PathBuf {
    default_from(
        env::var_os("XDG_RUNTIME_DIR"),
        nix::unistd::getuid().as_raw(),
    )
}

/// The socket path from the environment: `$KEYWARD_SOCK` if it is set and not empty, else
/// [`default_socket_path`]. This is the path [`Client::from_env`](crate::Client::from_env)
/// connects to.
pub fn socket_path_from_env() -> PathBuf {
    match non_empty(env::var_os(SOCKET_ENV)) {
        Some(path) => PathBuf::from(path),
        None => default_socket_path(),
    }
}

fn non_empty(value: Option<OsString>) -> Option<OsString> {
    value.filter(|value| !value.is_empty())
}

fn default_from(xdg_runtime_dir: Option<OsString>, uid: u32) -> PathBuf {
    match non_empty(xdg_runtime_dir) {
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
            default_from(Some("/run/user/1000".into()), 1000),
            PathBuf::from("/run/user/1000/keyward/keyward.sock")
        );
        assert_eq!(
            default_from(Some(OsString::new()), 1000),
            PathBuf::from("/tmp/keyward-1000/keyward.sock")
        );
        assert_eq!(
            default_from(None, 0),
            PathBuf::from("/tmp/keyward-0/keyward.sock")
        );
    }
}
