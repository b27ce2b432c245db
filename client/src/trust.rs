//! Whether the server on the other end of a socket may be trusted, decided before the
//! first byte is sent.
//!
//! A client sends passphrases, private keys and every payload it wants signed, and trusts
//! the signatures it gets back. Whoever can put a socket at the path the client connects to
//! gets all of that: without `XDG_RUNTIME_DIR` the default path is
//! `/tmp/keyward-$UID/keyward.sock`, and any local user can create that directory first.
//! So the client accepts a server only if one of these holds:
//!
//! 1. the server's uid (the kernel's word: `SO_PEERCRED` on the client's end) is the
//!    client's own effective uid, or root;
//! 2. the server's uid owns the socket's directory, that directory is a real directory (not
//!    a symlink) that group and others cannot write, and the directory's parent is writable
//!    by root only (owned by root, not writable by group or others). That is how a system
//!    daemon's `/run/keyward` looks; a directory that anyone could create in `/tmp` never
//!    qualifies, because `/tmp` is writable by everyone.
//!
//! The directory is judged by the path as given, with `lstat`: a symlink planted in a
//! shared directory that points at another user's protected directory is refused. The
//! directory's parent is judged after resolving symlinks, so `/var/run/keyward` (with
//! `/var/run` a root-owned link to `/run`) qualifies.

use std::fs::{self, Metadata};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

use crate::Error;

/// Checks that the server behind `stream`, connected at `path`, may be trusted (see the
/// module documentation); on refusal the error names the server's uid and what to do.
pub(crate) fn check_server(stream: &impl AsFd, path: &Path) -> Result<(), Error> {
    let server_uid = getsockopt(stream, PeerCredentials)
        .map_err(|errno| Error::Io(io::Error::from(errno)))?
        .uid();
    let client_uid = nix::unistd::geteuid().as_raw();
    if server_uid == client_uid || server_uid == 0 {
        return Ok(());
    }
    match protected_directory_of(path, server_uid) {
        Ok(()) => Ok(()),
        Err(reason) => Err(Error::UntrustedServer {
            path: path.to_path_buf(),
            server_uid,
            server_user: user_name(server_uid),
            client_uid,
            reason,
        }),
    }
}

/// Rule 2: `Ok` if the socket's directory is owned by `server_uid`, protected, and sits in a
/// directory only root can write; otherwise why not.
fn protected_directory_of(path: &Path, server_uid: u32) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir_meta = fs::symlink_metadata(dir)
        .map_err(|err| format!("its directory cannot be examined ({})", err.kind()))?;
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    let parent_meta = match parent {
        Some(parent) => fs::metadata(parent)
            .map_err(|err| format!("its directory's parent cannot be examined ({})", err.kind()))?,
        // A socket directly in `/`: the directory is root's own.
        None => {
            fs::metadata("/").map_err(|err| format!("/ cannot be examined ({})", err.kind()))?
        }
    };
    judge(server_uid, &Entry::of(&dir_meta), &Entry::of(&parent_meta))
}

/// What rule 2 looks at in a directory entry.
#[derive(Debug, Clone, Copy)]
struct Entry {
    is_dir: bool,
    uid: u32,
    mode: u32,
}

impl Entry {
    fn of(meta: &Metadata) -> Entry {
        Entry {
            is_dir: meta.file_type().is_dir(),
            uid: meta.uid(),
            mode: meta.mode(),
        }
    }

    fn writable_by_group_or_others(&self) -> bool {
        self.mode & 0o022 != 0
    }
}

/// The pure decision of rule 2, given the socket's directory (`lstat`) and its parent.
fn judge(server_uid: u32, dir: &Entry, parent: &Entry) -> Result<(), String> {
    if !dir.is_dir {
        return Err("its directory is a symlink or not a directory".into());
    }
    if dir.uid != server_uid {
        return Err(format!(
            "its directory is owned by uid {}, not by the server",
            dir.uid
        ));
    }
    if dir.writable_by_group_or_others() {
        return Err(format!(
            "its directory is writable by group or others (mode {:o})",
            dir.mode & 0o7777
        ));
    }
    if parent.uid != 0 || parent.writable_by_group_or_others() {
        return Err(
            "its directory sits in a directory that users other than root can write, so anyone could have made it"
                .into(),
        );
    }
    Ok(())
}

/// The user name of `uid`, when the password database has one.
fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|user| user.name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SERVER: u32 = 1001;

    fn dir(uid: u32, mode: u32) -> Entry {
        Entry {
            is_dir: true,
            uid,
            mode: 0o040000 | mode,
        }
    }

    #[test]
    fn a_system_daemons_run_directory_qualifies() {
        // /run/keyward: keyward:keyward 0750, in root's /run (0755).
        assert_eq!(judge(SERVER, &dir(SERVER, 0o750), &dir(0, 0o755)), Ok(()));
    }

    #[test]
    fn a_directory_squatted_in_tmp_never_qualifies() {
        // /tmp/keyward-1000 made by uid 1001 with mode 0700, in /tmp (1777).
        let refused = judge(SERVER, &dir(SERVER, 0o700), &dir(0, 0o1777)).unwrap_err();
        assert!(refused.contains("other than root"), "{refused}");
    }

    #[test]
    fn a_directory_in_the_servers_own_home_does_not_qualify() {
        // The parent is writable by the server itself, so it could swap the directory.
        assert!(judge(SERVER, &dir(SERVER, 0o700), &dir(SERVER, 0o755)).is_err());
    }

    #[test]
    fn a_directory_owned_by_someone_else_or_open_to_others_does_not_qualify() {
        assert!(
            judge(SERVER, &dir(1002, 0o700), &dir(0, 0o755))
                .unwrap_err()
                .contains("owned by uid 1002")
        );
        assert!(
            judge(SERVER, &dir(SERVER, 0o770), &dir(0, 0o755))
                .unwrap_err()
                .contains("writable by group or others")
        );
        assert!(judge(SERVER, &dir(SERVER, 0o702), &dir(0, 0o755)).is_err());
    }

    #[test]
    fn a_symlink_in_place_of_the_directory_does_not_qualify() {
        let link = Entry {
            is_dir: false,
            uid: SERVER,
            mode: 0o120777,
        };
        assert!(
            judge(SERVER, &link, &dir(0, 0o755))
                .unwrap_err()
                .contains("symlink")
        );
    }

    #[test]
    fn a_symlink_planted_in_tmp_is_judged_as_a_symlink_not_as_its_target() {
        // /tmp/.../keyward-x -> a directory the server legitimately owns under a root-only
        // parent: lstat sees the link, so it is refused.
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("target");
        fs::create_dir(&target).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let uid = nix::unistd::geteuid().as_raw();
        let refused = protected_directory_of(&link.join("keyward.sock"), uid).unwrap_err();
        assert!(refused.contains("symlink"), "{refused}");
    }
}
