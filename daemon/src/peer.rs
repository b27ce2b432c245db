//! Who is on the other end of a connection: from `SO_PEERCRED` (the kernel's word, not the
//! client's), plus the peer's groups and executable from /proc for policy and audit.

/// A connected process.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) pid: Option<i32>,
    /// Primary and supplementary groups.
    pub(crate) groups: Vec<u32>,
}

impl Peer {
    /// Builds a peer from its credentials, reading its supplementary groups from
    /// `/proc/PID/status` right after accept. Linux's `SO_PEERGROUPS` would give the groups
    /// as of connect() without a pid to trust, but nix (our syscall wrapper) does not offer
    /// it; reading /proc leaves a small window in which the connecting process could exit
    /// and its pid be reused. The uid and primary gid come from `SO_PEERCRED` regardless.
    pub(crate) fn from_credentials(uid: u32, gid: u32, pid: Option<i32>) -> Peer {
        let mut groups = vec![gid];
        if let Some(pid) = pid {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            if let Some(line) = status.lines().find_map(|line| line.strip_prefix("Groups:")) {
                groups.extend(
                    line.split_whitespace()
                        .filter_map(|gid| gid.parse::<u32>().ok()),
                );
            }
        }
        groups.sort_unstable();
        groups.dedup();
        Peer {
            uid,
            gid,
            pid,
            groups,
        }
    }

    /// The peer's executable path, when /proc lets us read it (not for other users' processes
    /// unless the daemon runs as root).
    pub(crate) fn exe(&self) -> Option<String> {
        let pid = self.pid?;
        std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .map(|path| path.to_string_lossy().into_owned())
    }
}
