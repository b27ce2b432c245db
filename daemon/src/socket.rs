//! Creating the listening socket safely: a private directory, a 0600 socket, no hijacking.

use std::fs::{self, DirBuilder, File, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

use crate::private_dir;

#[derive(Debug, thiserror::Error)]
pub(crate) enum SocketError {
    #[error(
        "socket path {0} must be inside a directory of its own (e.g. $XDG_RUNTIME_DIR/keyward/keyward.sock): keywardd sets that directory's permissions"
    )]
    NoParent(PathBuf),
    #[error("{path}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "refusing socket directory {path}: {reason} (another user may have made it to intercept keyward; use a directory of your own: set XDG_RUNTIME_DIR or pass --socket)"
    )]
    UnsafeDirectory { path: PathBuf, reason: String },
    #[error("another keywardd is already listening on {0}")]
    InUse(PathBuf),
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SocketError + '_ {
    move |source| SocketError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The default socket (the rule client and daemon share, in
/// [`keyward_protocol::default_socket_path`]).
pub(crate) fn default_socket_path() -> PathBuf {
    let uid = nix::unistd::getuid().as_raw();
    keyward_protocol::default_socket_path(
        std::env::var_os("XDG_RUNTIME_DIR").as_deref(),
        uid,
        keyward_protocol::run_user_dir(uid).is_dir(),
    )
}

/// Makes sure the socket's directory exists, is ours, and nobody else can write to it,
/// creating it when missing; then gives it exactly `mode` (0700, or 0750 with the socket
/// group). A directory someone else owns or can write could let them swap the socket for
/// their own and collect every payload a bot sends; so we refuse it.
///
/// Race-free against a directory or symlink planted at the path: only the last component is
/// created (mkdir fails if anything is there), then the directory is opened without
/// following a symlink and judged, chowned and chmodded through that descriptor, so what is
/// checked is what is changed.
fn prepare_directory(dir: &Path, group: Option<u32>) -> Result<(), SocketError> {
    let opened = open_private_directory(dir)?;
    let mode = if group.is_some() { 0o750 } else { 0o700 };
    if let Some(gid) = group {
        std::os::unix::fs::fchown(&opened, None, Some(gid)).map_err(io_err(dir))?;
    }
    // The mode passed to mkdir is filtered by the umask; set it exactly.
    opened
        .set_permissions(Permissions::from_mode(mode))
        .map_err(io_err(dir))
}

/// Creates `dir` with mode 0700 if nothing is there (its own mkdir is never recursive: a
/// directory or symlink planted there makes it fail, not succeed), then opens it with
/// `O_NOFOLLOW | O_DIRECTORY` and checks the rule on what was opened.
fn open_private_directory(dir: &Path) -> Result<File, SocketError> {
    let unsafe_dir = |reason: String| SocketError::UnsafeDirectory {
        path: dir.to_owned(),
        reason,
    };
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            // Missing ancestors are made as a convenience; they guard nothing (the socket's
            // own directory, created and judged below, does), so a race on them is harmless.
            let parent = dir
                .parent()
                .ok_or_else(|| SocketError::NoParent(dir.to_owned()))?;
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io_err(parent))?;
            match DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(io_err(dir)(err)),
            }
        }
        Err(err) => return Err(io_err(dir)(err)),
    }
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|err| match err.raw_os_error() {
            // O_NOFOLLOW with O_DIRECTORY reports a symlink as ENOTDIR (or ELOOP).
            Some(libc::ELOOP | libc::ENOTDIR) => {
                let is_link = fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink());
                unsafe_dir(if is_link {
                    "it is a symlink, not a directory".into()
                } else {
                    "it is not a directory".into()
                })
            }
            _ => io_err(dir)(err),
        })?;
    let meta = opened.metadata().map_err(io_err(dir))?;
    private_dir::check(&meta).map_err(unsafe_dir)?;
    Ok(opened)
}

/// Binds the listening socket at `path` with mode 0600 — or 0660 owned by `group`, whose
/// members may then connect — replacing a stale socket file left by a daemon that died, but
/// never a live one and never a file that is not a socket.
pub(crate) fn bind(path: &Path, group: Option<u32>) -> Result<UnixListener, SocketError> {
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .ok_or_else(|| SocketError::NoParent(path.to_owned()))?;
    prepare_directory(dir, group)?;
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if StdUnixStream::connect(path).is_ok() {
                return Err(SocketError::InUse(path.to_owned()));
            }
            fs::remove_file(path).map_err(io_err(path))?;
        }
        Ok(_) => return Err(SocketError::NotASocket(path.to_owned())),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(io_err(path)(err)),
    }
    let listener = UnixListener::bind(path).map_err(io_err(path))?;
    // The directory is 0700 or 0750 and the group may not write it, so nobody else could
    // reach the socket between bind and chmod.
    if let Some(gid) = group {
        nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)))
            .map_err(|err| io_err(path)(err.into()))?;
    }
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    fs::set_permissions(path, Permissions::from_mode(mode)).map_err(io_err(path))?;
    Ok(listener)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[tokio::test]
    async fn creates_a_private_directory_and_a_0600_socket() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("run").join("keyward.sock");
        let _listener = bind(&path, None).unwrap();
        let dir_mode = fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777;
        let sock_mode = fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!((dir_mode, sock_mode), (0o700, 0o600));
        // A second daemon on the same path is refused while the first listens.
        assert!(matches!(bind(&path, None), Err(SocketError::InUse(_))));
    }

    #[tokio::test]
    async fn a_socket_group_gets_a_0750_directory_and_a_0660_socket() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("run").join("keyward.sock");
        let gid = nix::unistd::getegid().as_raw();
        let _listener = bind(&path, Some(gid)).unwrap();
        let dir = fs::metadata(path.parent().unwrap()).unwrap();
        let sock = fs::metadata(&path).unwrap();
        assert_eq!((dir.mode() & 0o777, sock.mode() & 0o777), (0o750, 0o660));
        assert_eq!((dir.gid(), sock.gid()), (gid, gid));
    }

    #[tokio::test]
    async fn refuses_a_directory_others_can_write() {
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), Permissions::from_mode(0o777)).unwrap();
        let err = bind(&tmp.path().join("s.sock"), None).unwrap_err();
        assert!(
            err.to_string().contains("writable by group or others"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn refuses_a_symlink_to_a_private_directory_and_leaves_its_target_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("target");
        fs::create_dir(&target).unwrap();
        fs::set_permissions(&target, Permissions::from_mode(0o755)).unwrap();
        let link = tmp.path().join("run");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = bind(&link.join("keyward.sock"), None).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert_eq!(fs::metadata(&target).unwrap().mode() & 0o777, 0o755);
        assert!(!target.join("keyward.sock").exists());
    }

    /// The review's race: a symlink to a directory appears between the check and the
    /// create. The old check-then-create-recursively found it "created" and chmodded
    /// through it. Another thread plants and removes the symlink as fast as it can while the
    /// directory is prepared again and again; the target's mode must never change.
    #[test]
    fn a_symlink_planted_during_preparation_is_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("target");
        fs::create_dir(&target).unwrap();
        fs::set_permissions(&target, Permissions::from_mode(0o755)).unwrap();
        let dir = tmp.path().join("run");
        let stop = std::sync::atomic::AtomicBool::new(false);
        let followed = std::thread::scope(|scope| {
            scope.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = std::os::unix::fs::symlink(&target, &dir);
                    let _ = fs::remove_file(&dir);
                }
            });
            let mut followed = None;
            for round in 0..3000 {
                if prepare_directory(&dir, None).is_ok() {
                    let _ = fs::remove_dir(&dir);
                }
                if fs::metadata(&target).unwrap().mode() & 0o777 != 0o755 {
                    followed = Some(round);
                    break;
                }
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            followed
        });
        assert_eq!(
            followed, None,
            "the symlink's target was chmodded through the link"
        );
    }

    #[tokio::test]
    async fn replaces_a_stale_socket_but_not_a_regular_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(bind(&path, None).is_ok());
        let file = tmp.path().join("file");
        fs::write(&file, b"x").unwrap();
        assert!(matches!(bind(&file, None), Err(SocketError::NotASocket(_))));
    }
}
