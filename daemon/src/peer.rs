//! Who is on the other end of a connection, by the kernel's word: uid, gid and pid from
//! `SO_PEERCRED`, supplementary groups from `SO_PEERGROUPS`, all recorded by the kernel at
//! connect() and unaffected by what the process does afterwards.
//!
//! `/proc/PID/status` is not trusted for groups: while a connection waits in the backlog its
//! pid can be reused by another user's process, which would then lend the connection its
//! groups. It is read only on kernels without `SO_PEERGROUPS` (before 4.13), and then its
//! groups count only if its Uid and Gid lines match `SO_PEERCRED` and the pidfd taken at
//! accept (`SO_PEERPIDFD`, Linux 6.5+) shows the connecting process still alive.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sys::socket::{getsockopt, sockopt};

use crate::os;

/// A connected process.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) pid: Option<i32>,
    /// Primary and supplementary groups.
    pub(crate) groups: Vec<u32>,
    /// The peer's executable, read at accept, for the audit record only: a process can
    /// exec between connect() and accept, so it is never used to decide anything. `None`
    /// when /proc does not let us read it, or when the connecting process is already gone.
    pub(crate) exe: Option<String>,
    /// What the audit record and the journal say about the peer beyond numbers (issue 19
    /// §3): read at accept, like `exe`, and never used to decide anything.
    pub(crate) about: About,
}

/// Who a peer is, in words an operator reads: what can be learnt without ptrace rights
/// (`exe` needs them for another user's process, so it is null for every bot).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct About {
    /// The uid's user name (the password database), if it has one.
    pub(crate) user: Option<String>,
    /// The process name, `/proc/PID/comm` (at most 15 bytes; the process may set it).
    pub(crate) comm: Option<String>,
    /// The systemd unit the process runs in, from `/proc/PID/cgroup` (`grid-bot.service`,
    /// `session-3.scope`).
    pub(crate) unit: Option<String>,
}

impl Peer {
    /// The peer of the accepted Unix stream `socket`.
    pub(crate) fn of(socket: &impl AsFd) -> std::io::Result<Peer> {
        let cred = getsockopt(socket, sockopt::PeerCredentials)?;
        let (uid, gid) = (cred.uid(), cred.gid());
        // A pid of 0 means the peer is in another pid namespace: there is no pid to use.
        let pid = Some(cred.pid()).filter(|&pid| pid > 0);
        // The pidfd pins the process that connected: while it reads as alive, its pid
        // cannot have been reused.
        let pidfd = getsockopt(socket, sockopt::PeerPidfd).ok();
        let alive = |pid: i32| pidfd.as_ref().is_some_and(|fd| pidfd_is(fd, pid));
        let supplementary = match os::peer_groups(socket) {
            Ok(groups) => groups,
            Err(err) => {
                tracing::debug!("SO_PEERGROUPS unavailable ({err}); falling back to /proc");
                pid.filter(|&pid| alive(pid))
                    .and_then(|pid| fs::read_to_string(format!("/proc/{pid}/status")).ok())
                    .map(|status| groups_from_status(&status, uid, gid))
                    .unwrap_or_default()
            }
        };
        let exe = pid
            .and_then(|pid| {
                fs::read_link(format!("/proc/{pid}/exe"))
                    .ok()
                    .map(|exe| (pid, exe))
            })
            .filter(|&(pid, _)| alive(pid))
            .map(|(_, exe)| exe.to_string_lossy().into_owned());
        // Read, then checked alive: a reused pid is caught as for `exe`.
        let read = |name: &str| {
            let pid = pid?;
            let text = fs::read_to_string(format!("/proc/{pid}/{name}")).ok()?;
            alive(pid).then_some(text)
        };
        let about = About {
            user: user_name(uid),
            comm: read("comm")
                .map(|comm| printable(comm.strip_suffix('\n').unwrap_or(&comm)))
                .filter(|comm| !comm.is_empty()),
            unit: read("cgroup")
                .and_then(|cgroup| unit_from_cgroup(&cgroup))
                .map(|unit| printable(&unit)),
        };
        let mut peer = Peer::new(uid, gid, pid, supplementary, exe);
        peer.about = about;
        Ok(peer)
    }

    /// A peer with `gid` and `supplementary` as its groups (sorted, deduplicated).
    pub(crate) fn new(
        uid: u32,
        gid: u32,
        pid: Option<i32>,
        supplementary: Vec<u32>,
        exe: Option<String>,
    ) -> Peer {
        let mut groups = supplementary;
        groups.push(gid);
        groups.sort_unstable();
        groups.dedup();
        Peer {
            uid,
            gid,
            pid,
            groups,
            exe,
            about: About::default(),
        }
    }
}

/// `text` with every control character replaced by `?`: a process names itself (comm), and
/// a newline there must not forge a log line of its own.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The user name of `uid`, from the password database (`None` for a uid without one).
fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|user| user.name)
}

/// The systemd unit in a `/proc/PID/cgroup` text: the innermost `.service` or `.scope` of
/// the unified hierarchy's path (`0::/system.slice/grid-bot.service`), else of the v1
/// `name=systemd` hierarchy's.
fn unit_from_cgroup(cgroup: &str) -> Option<String> {
    let path = |prefix: &str| {
        cgroup
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .filter(|path| *path != "/")
    };
    let path = path("0::").or_else(|| {
        cgroup
            .lines()
            .find_map(|line| line.split_once(":name=systemd:").map(|(_, path)| path))
    })?;
    path.split('/')
        .rev()
        .find(|part| {
            (part.ends_with(".service") || part.ends_with(".scope"))
                && !part.starts_with("user@")
                && part.len() < 256
        })
        .map(str::to_owned)
}

/// True if `pidfd` refers to the live process `pid` (its fdinfo says `Pid: -1` once the
/// process has exited).
fn pidfd_is(pidfd: &OwnedFd, pid: i32) -> bool {
    let info =
        fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).unwrap_or_default();
    info.lines()
        .find_map(|line| line.strip_prefix("Pid:"))
        .and_then(|value| value.trim().parse::<i32>().ok())
        == Some(pid)
}

/// The supplementary groups in a `/proc/PID/status` text, but only if its Uid and Gid
/// lines say the process is `uid`/`gid` (real, effective, saved and filesystem ids alike);
/// otherwise none: the record belongs to some other process.
fn groups_from_status(status: &str, uid: u32, gid: u32) -> Vec<u32> {
    let ids = |prefix: &str| -> Option<Vec<u32>> {
        let line = status.lines().find_map(|line| line.strip_prefix(prefix))?;
        line.split_whitespace().map(|id| id.parse().ok()).collect()
    };
    let all_are = |ids: Option<Vec<u32>>, want: u32| {
        ids.is_some_and(|ids| !ids.is_empty() && ids.iter().all(|&id| id == want))
    };
    if !all_are(ids("Uid:"), uid) || !all_are(ids("Gid:"), gid) {
        return Vec::new();
    }
    ids("Groups:").unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tbot\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nGroups:\t27 998 \n";

    #[test]
    fn a_status_record_of_the_same_uid_and_gid_lends_its_groups() {
        assert_eq!(groups_from_status(STATUS, 1000, 1000), vec![27, 998]);
    }

    #[test]
    fn a_status_record_of_another_uid_or_gid_lends_no_groups() {
        // The pid was reused by another user's process: its groups must not count.
        assert!(groups_from_status(STATUS, 1001, 1000).is_empty());
        assert!(groups_from_status(STATUS, 1000, 1001).is_empty());
        let setuid = STATUS.replace("Uid:\t1000\t1000", "Uid:\t1000\t0");
        assert!(groups_from_status(&setuid, 1000, 1000).is_empty());
        assert!(groups_from_status("Groups:\t27\n", 1000, 1000).is_empty());
    }

    #[test]
    fn control_characters_in_a_process_name_become_question_marks() {
        assert_eq!(printable("ev\n<3>FAKE\r\x1b[0m"), "ev?<3>FAKE??[0m");
        assert_eq!(printable("grid-bot"), "grid-bot");
    }

    #[test]
    fn the_unit_is_the_innermost_service_or_scope_of_the_cgroup_path() {
        let unit = |text: &str| unit_from_cgroup(text);
        assert_eq!(
            unit("0::/system.slice/grid-bot.service\n").as_deref(),
            Some("grid-bot.service")
        );
        assert_eq!(
            unit("0::/user.slice/user-1000.slice/user@1000.service/app.slice/bot.service\n")
                .as_deref(),
            Some("bot.service")
        );
        assert_eq!(
            unit("0::/user.slice/user-1000.slice/user@1000.service/init.scope\n").as_deref(),
            Some("init.scope")
        );
        assert_eq!(
            unit("0::/user.slice/user-1000.slice/session-3.scope\n").as_deref(),
            Some("session-3.scope")
        );
        // cgroup v1: the name=systemd hierarchy.
        assert_eq!(
            unit("4:memory:/x\n1:name=systemd:/system.slice/arb.service\n0::/\n").as_deref(),
            Some("arb.service")
        );
        // No unit: the root, a container's own paths, nothing at all.
        assert_eq!(unit("0::/\n"), None);
        assert_eq!(unit("0::/docker/abc123\n"), None);
        assert_eq!(unit(""), None);
    }

    #[test]
    fn the_kernel_reports_this_process_groups_for_a_socket_pair() {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let peer = Peer::of(&ours).unwrap();
        drop(theirs);
        assert_eq!(peer.uid, nix::unistd::geteuid().as_raw());
        assert_eq!(peer.pid, Some(std::process::id() as i32));
        let mut expected: Vec<u32> = nix::unistd::getgroups()
            .unwrap()
            .into_iter()
            .map(|gid| gid.as_raw())
            .collect();
        expected.push(nix::unistd::getegid().as_raw());
        expected.sort_unstable();
        expected.dedup();
        assert_eq!(peer.groups, expected);
        assert_eq!(
            peer.exe.as_deref(),
            std::env::current_exe().unwrap().to_str()
        );
        let comm = fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(peer.about.comm.as_deref(), Some(comm.trim_end()));
        assert_eq!(peer.about.user, user_name(peer.uid));
        assert!(
            peer.about.user.is_some(),
            "this test's uid has no user name"
        );
    }
}
