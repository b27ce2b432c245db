//! File-system primitives of the keystore: private directories, bounded reads, and writes
//! that a crash cannot leave half done.
//!
//! The crash-safety argument is in docs/KEYSTORE.md; in short, a file's final name only ever
//! points at bytes that were fsynced first, and the directory is fsynced after the name
//! changes, so a crash leaves either the old directory entry or the new one.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::OFlag;

use super::{KeystoreError, random};

/// Name prefix of temporary files. Names starting with a dot are never key names, so
/// [`super::Keystore::load_all`] skips these, and `open` deletes old leftovers.
pub(super) const TEMP_PREFIX: &str = ".kw-tmp-";

pub(super) fn io_error(path: &Path, source: io::Error) -> KeystoreError {
    KeystoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Checks that `path` is a directory owned by the effective uid that group and others can
/// neither write nor read (mode 0700: [`crate::private_dir::check_owner_only`]). Another user
/// able to write here could swap the header or key files; one able to read could copy them
/// for an offline passphrase search.
pub(super) fn check_private_dir(path: &Path) -> Result<(), KeystoreError> {
    let meta = fs::metadata(path).map_err(|err| io_error(path, err))?;
    crate::private_dir::check_owner_only(&meta).map_err(|reason| KeystoreError::UnsafePermissions {
        path: path.to_owned(),
        reason,
    })
}

/// Creates `path` with mode 0700 if it is missing (its parent must exist), making the new
/// entry durable; then checks it either way.
pub(super) fn ensure_private_dir(path: &Path) -> Result<(), KeystoreError> {
    match DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {
            // The umask may have removed bits; set exactly 0700.
            fs::set_permissions(path, Permissions::from_mode(0o700))
                .map_err(|err| io_error(path, err))?;
            if let Some(parent) = path.parent() {
                sync_dir(parent)?;
            }
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(io_error(path, err)),
    }
    check_private_dir(path)
}

/// Makes a directory's entries (creations, renames, unlinks) durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), KeystoreError> {
    // An empty path means the current directory (a relative keystore path's parent).
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|err| io_error(dir, err))
}

/// Why a bounded read failed.
#[derive(Debug)]
pub(super) enum ReadError {
    Io(io::Error),
    NotAFile,
    TooLarge(u64),
}

/// Reads a whole regular file of at most `cap` bytes. Does not follow a symlink at the last
/// component and does not block on a FIFO, so a planted special file cannot hang the daemon.
pub(super) fn read_bounded(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
        .open(path)
        .map_err(ReadError::Io)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile);
    }
    if meta.len() > cap {
        return Err(ReadError::TooLarge(meta.len()));
    }
    // `len` is at most `cap`, which is small.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // `take` guards against a file that grew after the metadata was read.
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::TooLarge(bytes.len() as u64));
    }
    Ok(bytes)
}

/// What to do when the final name already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Existing {
    /// Replace it atomically (rename).
    Replace,
    /// Leave it and report [`Written::Exists`] (hard link, which fails if the name exists).
    Keep,
}

/// Outcome of [`write_atomic`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Written {
    Done,
    /// The final name existed and [`Existing::Keep`] was asked; nothing changed.
    Exists,
}

/// Writes `bytes` to `dir/name` with mode 0600 so that a crash at any instant leaves either
/// the previous file (or none) or the complete new one: a new temporary file in the same
/// directory is written and fsynced, then given the final name, then the directory is
/// fsynced.
pub(super) fn write_atomic(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    existing: Existing,
) -> Result<Written, KeystoreError> {
    let target = dir.join(name);
    let temp = temp_path(dir)?;
    let result = write_temp(&temp, bytes).and_then(|()| publish(&temp, &target, existing));
    if !matches!(result, Ok(Written::Done)) || existing == Existing::Keep {
        // After a rename the temporary name is gone; after a link or a failure it is
        // removed here. A crash before this line leaves it for `open` to clean.
        let _ = fs::remove_file(&temp);
    }
    let written = result?;
    if written == Written::Done {
        sync_dir(dir)?;
    }
    Ok(written)
}

fn temp_path(dir: &Path) -> Result<PathBuf, KeystoreError> {
    let mut suffix = [0u8; 8];
    random(&mut suffix)?;
    let hex: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    Ok(dir.join(format!("{TEMP_PREFIX}{hex}")))
}

fn write_temp(temp: &Path, bytes: &[u8]) -> Result<(), KeystoreError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(OFlag::O_CLOEXEC.bits())
        .open(temp)
        .map_err(|err| io_error(temp, err))?;
    // The umask can only remove bits, but say exactly what is meant.
    file.set_permissions(Permissions::from_mode(0o600))
        .and_then(|()| file.write_all(bytes))
        .and_then(|()| file.sync_all())
        .map_err(|err| io_error(temp, err))
}

fn publish(temp: &Path, target: &Path, existing: Existing) -> Result<Written, KeystoreError> {
    match existing {
        Existing::Replace => fs::rename(temp, target)
            .map(|()| Written::Done)
            .map_err(|err| io_error(target, err)),
        // link(2) fails with EEXIST instead of replacing, atomically: two concurrent stores
        // of one name cannot both succeed, and an existing key is never overwritten.
        Existing::Keep => match fs::hard_link(temp, target) {
            Ok(()) => Ok(Written::Done),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(Written::Exists),
            Err(err) if links_unsupported(&err) => {
                // A file system without hard links (FAT, some FUSE): check, then rename.
                // Not atomic against a concurrent store of the same name, which the one
                // daemon that owns the keystore never makes.
                if fs::symlink_metadata(target).is_ok() {
                    Ok(Written::Exists)
                } else {
                    fs::rename(temp, target)
                        .map(|()| Written::Done)
                        .map_err(|err| io_error(target, err))
                }
            }
            Err(err) => Err(io_error(target, err)),
        },
    }
}

fn links_unsupported(err: &io::Error) -> bool {
    use nix::errno::Errno;
    [Errno::EPERM, Errno::EOPNOTSUPP, Errno::ENOSYS]
        .iter()
        .any(|errno| err.raw_os_error() == Some(*errno as i32))
}

/// Temporary files younger than this may belong to a write in progress and are left alone.
/// A write takes milliseconds; a minute is far beyond any working disk's fsync.
pub(super) const TEMP_MAX_AGE: Duration = Duration::from_secs(60);

/// Deletes temporary files in `dir` older than [`TEMP_MAX_AGE`]: what a crash left behind.
/// Best effort: they are ignored by readers anyway. Age, not presence, decides, so that a
/// second `open` cannot pull the temporary file from under a write in flight.
pub(super) fn remove_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let is_temp = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(TEMP_PREFIX));
        let is_old = || {
            entry
                .metadata()
                .and_then(|meta| meta.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|age| age > TEMP_MAX_AGE)
        };
        if is_temp && is_old() {
            let _ = fs::remove_file(entry.path());
        }
    }
}
