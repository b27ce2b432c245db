//! A small tmpfs of its own for tests that need writes to fail for real: a full disk
//! (ENOSPC) or a read-only one (EROFS). Permission bits cannot do it, since CI runs as root
//! and root ignores them. Mounting needs CAP_SYS_ADMIN; where that is missing,
//! [`Tmpfs::mount`] returns `None` and the test says it skipped.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted on a directory, unmounted when dropped.
#[derive(Debug)]
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size_kib` KiB on `dir` (created if missing), or explains on
    /// stderr why it cannot, naming `test`, and returns `None`.
    pub fn mount(dir: &Path, size_kib: u64, test: &str) -> Option<Tmpfs> {
        fs::create_dir_all(dir).expect("cannot create a mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size_kib}k,mode=0700"))
            .arg("tmpfs")
            .arg(dir)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs {
                dir: dir.to_owned(),
            }),
            Ok(out) => {
                eprintln!(
                    "SKIPPED {test}: cannot mount a tmpfs (needs root with CAP_SYS_ADMIN): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(err) => {
                eprintln!("SKIPPED {test}: cannot run mount: {err}");
                None
            }
        }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn filler(&self) -> PathBuf {
        self.dir.join("filler")
    }

    /// Fills the file system: writes a filler file until the kernel says ENOSPC. Returns the
    /// bytes written.
    pub fn fill(&self) -> u64 {
        let mut file = File::create(self.filler()).expect("cannot create the filler file");
        let block = [0xa5u8; 4096];
        let mut written = 0u64;
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(err) if err.kind() == ErrorKind::StorageFull => break,
                Err(err) => panic!("filling the tmpfs: {err}"),
            }
        }
        // A last byte-sized write, so that not even a small file fits.
        while let Ok(1) = file.write(&[0]) {
            written += 1;
        }
        written
    }

    /// Frees what [`Tmpfs::fill`] took.
    pub fn free(&self) {
        fs::remove_file(self.filler()).expect("cannot remove the filler file");
    }

    /// Remounts read-only (`ro = true`) or read-write.
    pub fn set_read_only(&self, ro: bool) {
        let status = Command::new("mount")
            .args(["-o", if ro { "remount,ro" } else { "remount,rw" }])
            .arg(&self.dir)
            .status()
            .expect("cannot run mount");
        assert!(status.success(), "remount of {} failed", self.dir.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a daemon still holding a file open must not leave the mount behind.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}
