//! Refused connections, aggregated (issue 16 §2): a peer with no right of any kind is
//! answered and closed at once (server.rs), and each refusal still counts, but the audit log
//! and the journal get one record per uid and [`INTERVAL`], with a count, not one per
//! connection. 5,000 refused connects in a second are two records and two warnings: one for
//! the first refusal (at once, so an operator sees it), one for the rest when the interval
//! ends.
//!
//! Memory is one entry per uid being refused; the uids are the kernel's (`SO_PEERCRED`), in
//! the daemon's user namespace, so their number is bounded by the host's users.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use crate::audit::{AuditLog, peer_fields};
use crate::peer::Peer;

/// How long refusals of one uid are counted before the count is recorded.
pub(crate) const INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub(crate) struct Refusals {
    by_uid: Mutex<HashMap<u32, Tally>>,
    /// Refused connections since start (for the stats).
    total: AtomicU64,
}

#[derive(Debug)]
struct Tally {
    /// When the current interval began.
    since: Instant,
    since_wall: SystemTime,
    /// Refusals in this interval not yet recorded.
    count: u64,
    /// The latest refused peer (its pid, process name and unit go in the record).
    last: Peer,
}

/// Why a peer is refused (the audit record's reason and the client's message).
pub(crate) fn reason(peer: &Peer) -> String {
    format!(
        "uid {} may not use this keywardd: no key or admin right is granted to it",
        peer.uid
    )
}

impl Refusals {
    /// Counts one refused connection; the first of a uid in an interval is recorded at once.
    pub(crate) fn refused(&self, peer: &Peer, audit: &AuditLog) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let first = {
            let mut by_uid = self
                .by_uid
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match by_uid.get_mut(&peer.uid) {
                Some(tally) => {
                    tally.count += 1;
                    tally.last = peer.clone();
                    false
                }
                None => {
                    by_uid.insert(
                        peer.uid,
                        Tally {
                            since: Instant::now(),
                            since_wall: SystemTime::now(),
                            count: 0,
                            last: peer.clone(),
                        },
                    );
                    true
                }
            }
        };
        if first {
            tracing::warn!(
                uid = peer.uid,
                user = peer.about.user.as_deref().unwrap_or("-"),
                pid = peer.pid,
                comm = peer.about.comm.as_deref().unwrap_or("-"),
                unit = peer.about.unit.as_deref().unwrap_or("-"),
                "refused a connection: no key or admin right is granted to this uid or its \
                 groups (further refusals of this uid are counted for {}s)",
                INTERVAL.as_secs()
            );
            record(audit, peer, 1, SystemTime::now());
        }
    }

    /// Connections refused since start.
    pub(crate) fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Records the counts of intervals that have ended (all of them when `all`, at
    /// shutdown). Called every second.
    pub(crate) fn flush(&self, audit: &AuditLog, all: bool) {
        let due: Vec<(u64, SystemTime, Peer)> = {
            let mut by_uid = self
                .by_uid
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            let mut due = Vec::new();
            by_uid.retain(|_, tally| {
                if !all && now.duration_since(tally.since) < INTERVAL {
                    return true;
                }
                if tally.count == 0 {
                    // A quiet interval ends the tally: the next refusal is recorded at once.
                    return false;
                }
                due.push((tally.count, tally.since_wall, tally.last.clone()));
                // Still being refused: a new interval starts, counted the same way.
                tally.count = 0;
                tally.since = now;
                tally.since_wall = SystemTime::now();
                !all
            });
            due
        };
        for (count, since, peer) in due {
            tracing::warn!(
                uid = peer.uid,
                user = peer.about.user.as_deref().unwrap_or("-"),
                count,
                "refused {count} more connections from uid {} in the last {}s",
                peer.uid,
                INTERVAL.as_secs()
            );
            record(audit, &peer, count, since);
        }
    }
}

/// One audit record for `count` refusals of `peer`'s uid since `since`.
fn record(audit: &AuditLog, peer: &Peer, count: u64, since: SystemTime) {
    let mut record = peer_fields(peer);
    if let Some(fields) = record.as_object_mut() {
        fields.insert("request".into(), json!("connect"));
        fields.insert("key".into(), json!(null));
        fields.insert("decision".into(), json!("deny"));
        fields.insert("reason".into(), json!(reason(peer)));
        fields.insert("count".into(), json!(count));
        fields.insert(
            "since".into(),
            json!(humantime::format_rfc3339_micros(since).to_string()),
        );
    }
    audit.note(record);
}
