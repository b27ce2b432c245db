//! Where the daemon's socket is.

use std::env;
use std::ffi::OsString;
use std::path::PathBuf;

/// The environment variable that names the daemon's socket: `KEYWARD_SOCK`.
pub const SOCKET_ENV: &str = "KEYWARD_SOCK";

/// The socket path used when none is given: `$XDG_RUNTIME_DIR/keyward/keyward.sock` if
/// `XDG_RUNTIME_DIR` is set and not empty, else `/run/user/$UID/keyward/keyward.sock` if
/// `/run/user/$UID` exists, otherwise `/tmp/keyward-$UID/keyward.sock`, `$UID` being the real
/// user id of this process.
///
/// `keywardd` in user mode follows the same rule: both call
/// [`keyward_protocol::default_socket_path`], which documents it.
pub fn default_socket_path() -> PathBuf {
    let uid = nix::unistd::getuid().as_raw();
    keyward_protocol::default_socket_path(
        env::var_os("XDG_RUNTIME_DIR").as_deref(),
        uid,
        keyward_protocol::run_user_dir(uid).is_dir(),
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
