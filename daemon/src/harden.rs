//! Process hardening at start: no core dumps, no ptrace by other processes of our uid,
//! (where the memlock limit allows) all memory locked so no secret can be written to swap,
//! and enough file descriptors to judge every connection the limits allow.
//!
//! Every call here goes through `nix`'s safe wrappers: this module has no `unsafe` (the
//! crate's two `unsafe` blocks are in `systemd.rs` and `os.rs`).

use nix::sys::mman::{MlockAllFlags, mlockall};
use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};

use crate::limits::Limits;

/// File descriptors the daemon uses besides its connections: the listener, the audit log,
/// keystore files, the runtime's own, /proc reads; and connections over a cap, each held for
/// the instant it takes to answer and close it.
const SPARE_FILES: u64 = 256;

/// Address space the daemon may still map after start, beyond the KDF's memory, the
/// connection threads' stacks (`server::stack_reservation`) and the frame bodies the limits
/// allow (`Limits::max_frame_memory`): the runtime's thread stacks
/// (2 MiB each for tokio's worker and admin thread) and glibc's per-thread malloc
/// arenas, which reserve 64 MiB of address space each. Under `MCL_FUTURE` every new mapping
/// counts against RLIMIT_MEMLOCK in full the moment it is made (the kernel refuses the mmap
/// otherwise, and a refused allocation aborts the process), so the check must cover the
/// reservations, not just the pages touched.
const GROWTH_HEADROOM: u64 = 320 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub(crate) enum HardenError {
    #[error("{what}")]
    Sys {
        what: &'static str,
        source: nix::Error,
    },
    #[error(
        "memory cannot be locked: RLIMIT_MEMLOCK is {limit} bytes and keywardd needs about {need}; raise it (systemd: LimitMEMLOCK=, shell: ulimit -l) or drop --require-mlock"
    )]
    LimitTooSmall { limit: u64, need: u64 },
}

fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> HardenError {
    move |source| HardenError::Sys { what, source }
}

/// Disables core dumps and ptrace attachment, raises the open-file limit, then locks memory
/// if the limit allows (a failure to lock is a warning in the log unless `require_mlock`).
/// `kdf_memory` is the Argon2 memory (bytes) that unlocking will allocate; `limits` bound the
/// connection threads and frame buffers.
pub(crate) fn harden(
    kdf_memory: u64,
    limits: &Limits,
    require_mlock: bool,
) -> Result<(), HardenError> {
    // A core file would hold every unlocked key.
    setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(sys("cannot disable core dumps"))?;
    // Non-dumpable: no core dump either way, and other processes of our uid cannot ptrace us
    // or read /proc/PID/mem (root still can).
    nix::sys::prctl::set_dumpable(false).map_err(sys("cannot mark the process non-dumpable"))?;
    raise_open_files(limits);

    let (soft, _hard) =
        getrlimit(Resource::RLIMIT_MEMLOCK).map_err(sys("cannot read RLIMIT_MEMLOCK"))?;
    let need = mapped_bytes()
        .saturating_add(kdf_memory)
        .saturating_add(crate::server::stack_reservation(limits))
        .saturating_add(limits.max_frame_memory())
        .saturating_add(GROWTH_HEADROOM);
    // Root has CAP_IPC_LOCK, which lifts the limit.
    let unlimited = soft == RLIM_INFINITY || nix::unistd::geteuid().is_root();
    if !unlimited && soft < need {
        if require_mlock {
            return Err(HardenError::LimitTooSmall { limit: soft, need });
        }
        tracing::warn!(
            "MEMORY IS NOT LOCKED: RLIMIT_MEMLOCK is {soft} bytes and keywardd needs about {need}; \
             unlocked keys could be written to swap. Raise the limit (systemd: LimitMEMLOCK=, \
             shell: ulimit -l) or pass --require-mlock to refuse to run like this."
        );
        return Ok(());
    }
    // MCL_ONFAULT: lock pages as they are first touched instead of populating every new
    // mapping up front. Locking is the same (no page of ours can be swapped out), but thread
    // stacks and arena reservations do not all become resident: measured RSS at start with
    // MCL_FUTURE alone is several times larger (see docs/SECURITY.md).
    let flags = MlockAllFlags::MCL_CURRENT
        | MlockAllFlags::MCL_FUTURE
        | MlockAllFlags::from_bits_retain(libc::MCL_ONFAULT);
    match mlockall(flags) {
        Ok(()) => Ok(()),
        Err(err) if !require_mlock => {
            tracing::warn!("MEMORY IS NOT LOCKED: mlockall failed: {err}");
            Ok(())
        }
        Err(err) => Err(sys("mlockall failed")(err)),
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (needs no privilege), so that every
/// connection the limits allow, and each one over them, can be accepted and judged: at the
/// common soft limit of 1024, accept() would fail with EMFILE below the default caps and
/// leave connections, an admin's among them, waiting in the backlog. A hard limit too low
/// for the caps is a warning (systemd's default hard limit, 524288, is ample).
fn raise_open_files(limits: &Limits) {
    let need = limits.max_threads() as u64 + SPARE_FILES;
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(err) => {
            tracing::warn!("cannot read RLIMIT_NOFILE: {err}");
            return;
        }
    };
    let raised = if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(err) => {
                tracing::warn!("cannot raise RLIMIT_NOFILE from {soft} to {hard}: {err}");
                soft
            }
        }
    } else {
        soft
    };
    if raised < need {
        tracing::warn!(
            "RLIMIT_NOFILE is {raised} and the connection limits need about {need} file \
             descriptors: connections beyond it wait in the backlog instead of being judged. \
             Raise it (systemd: LimitNOFILE=, shell: ulimit -n) or lower max_connections"
        );
    }
}

/// The process's mapped address space now (VmSize), or 0 if /proc cannot tell.
fn mapped_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmSize:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_open_file_limit_is_raised_to_the_hard_one() {
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        // Lower it as a desktop session or a container might (the other tests of this
        // binary need far fewer files than this).
        let low = hard.min(512);
        setrlimit(Resource::RLIMIT_NOFILE, low, hard).unwrap();
        raise_open_files(&Limits::default());
        let (raised, still_hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!((raised, still_hard), (hard, hard));
        setrlimit(Resource::RLIMIT_NOFILE, soft.max(raised), hard).unwrap();
    }
}
