//! Limits on connections (issue 16): how many, per uid and overall, with places kept for
//! admins; how long each phase of a connection may take; how many bytes of partly received
//! frames may be held at once. The values come from the config's `[daemon]` section
//! ([`Limits`]); the accounting is here, so that `server.rs` (which admits connections) and
//! `connection.rs` (which reads frames) share it without importing each other.
//!
//! docs/SECURITY.md ("Limits") gives the reasoning behind each default.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The connection limits in force, fixed at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Connections served at once, all uids together (admins' reserved places aside).
    pub(crate) max_connections: usize,
    /// Connections one non-admin uid may hold at once.
    pub(crate) max_connections_per_uid: usize,
    /// Places only admins may take, when the shared ones are full.
    pub(crate) admin_connections: usize,
    /// From accept to the first whole request.
    pub(crate) hello_timeout: Duration,
    /// From a frame's first byte to its last; also the time a response may take to be taken.
    pub(crate) frame_timeout: Duration,
    /// Between requests.
    pub(crate) idle_timeout: Duration,
    /// Bytes of frames larger than [`FREE_FRAME`] held at once, across all connections.
    pub(crate) frame_budget: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 1024,
            max_connections_per_uid: 256,
            admin_connections: 16,
            hello_timeout: Duration::from_secs(10),
            frame_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(600),
            frame_budget: 16 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// Every connection thread that can exist at once.
    pub(crate) fn max_threads(&self) -> usize {
        self.max_connections + self.admin_connections
    }

    /// The most heap that frame bodies can take at once: every connection's free frame, plus
    /// the budget.
    pub(crate) fn max_frame_memory(&self) -> u64 {
        (self.max_threads() * FREE_FRAME) as u64 + self.frame_budget
    }
}

/// Frames up to this size are not charged to the budget: every signing request is far
/// smaller, and the connection caps already bound their total (1,040 × 4 KiB = 4 MiB by
/// default), so a flood of large half-sent frames can never refuse a bot's order.
pub(crate) const FREE_FRAME: usize = 4096;

/// Why a connection was refused a place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Every shared place is taken (and, for an admin, every reserved place it may take).
    Full { max: usize },
    /// This uid holds as many connections as one uid may.
    PerUid { uid: u32, max: usize },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Full { max } => write!(
                f,
                "keywardd is serving {max} connections, its limit (max_connections); retry later"
            ),
            Refusal::PerUid { uid, max } => write!(
                f,
                "uid {uid} already holds {max} connections, the most one uid may \
                 (max_connections_per_uid); close idle ones"
            ),
        }
    }
}

#[derive(Debug, Default)]
struct Held {
    shared: usize,
    reserved: usize,
}

#[derive(Debug, Default)]
struct Count {
    shared: usize,
    reserved: usize,
    per_uid: HashMap<u32, Held>,
}

/// The places connections hold, overall and per uid.
#[derive(Debug)]
pub(crate) struct Places {
    limits: Limits,
    count: Mutex<Count>,
}

/// One connection's place; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Place {
    places: Arc<Places>,
    uid: u32,
    reserved: bool,
}

impl Places {
    pub(crate) fn new(limits: Limits) -> Arc<Places> {
        Arc::new(Places {
            limits,
            count: Mutex::new(Count::default()),
        })
    }

    fn count(&self) -> MutexGuard<'_, Count> {
        // Every change is a few counter updates made together: a poisoned lock holds a
        // consistent count.
        self.count
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Gives `uid` a place, or says why not. A non-admin gets a shared place while fewer
    /// than `max_connections` are taken and it holds fewer than `max_connections_per_uid`.
    /// An admin is held to no per-uid cap among the shared places (it could `lock` and stop
    /// every bot anyway, so capping it protects no one); when they are full it takes one of
    /// the `admin_connections` reserved places, each admin uid at most half of them (at least
    /// one), so that the daemon's uid and root always both get through.
    pub(crate) fn admit(self: &Arc<Places>, uid: u32, admin: bool) -> Result<Place, Refusal> {
        let limits = &self.limits;
        let mut count = self.count();
        let shared_free = count.shared < limits.max_connections;
        let held = count.per_uid.get(&uid);
        let own_shared = held.map_or(0, |held| held.shared);
        let own_reserved = held.map_or(0, |held| held.reserved);
        let reserved = if shared_free && (admin || own_shared < limits.max_connections_per_uid) {
            false
        } else if admin
            && count.reserved < limits.admin_connections
            && own_reserved < limits.admin_connections.div_ceil(2)
        {
            true
        } else if shared_free {
            return Err(Refusal::PerUid {
                uid,
                max: limits.max_connections_per_uid,
            });
        } else {
            return Err(Refusal::Full {
                max: limits.max_connections,
            });
        };
        let held = count.per_uid.entry(uid).or_default();
        if reserved {
            held.reserved += 1;
            count.reserved += 1;
        } else {
            held.shared += 1;
            count.shared += 1;
        }
        Ok(Place {
            places: Arc::clone(self),
            uid,
            reserved,
        })
    }

    /// Connections open now (shared, reserved).
    #[cfg(test)]
    fn open(&self) -> (usize, usize) {
        let count = self.count();
        (count.shared, count.reserved)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut count = self.places.count();
        if self.reserved {
            count.reserved -= 1;
        } else {
            count.shared -= 1;
        }
        if let Some(held) = count.per_uid.get_mut(&self.uid) {
            if self.reserved {
                held.reserved -= 1;
            } else {
                held.shared -= 1;
            }
            if held.shared == 0 && held.reserved == 0 {
                count.per_uid.remove(&self.uid);
            }
        }
    }
}

/// Bytes of frames being received, across all connections: a frame larger than
/// [`FREE_FRAME`] reserves its whole length when its header arrives, and gives it back when
/// its body is dropped.
#[derive(Debug)]
pub(crate) struct FrameBudget {
    limit: u64,
    used: AtomicU64,
}

/// Budget held by one frame.
#[derive(Debug)]
pub(crate) struct Reservation<'a> {
    budget: &'a FrameBudget,
    bytes: u64,
}

/// A frame the budget cannot hold now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverBudget {
    pub(crate) len: usize,
    pub(crate) limit: u64,
}

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a frame of {} bytes does not fit in what is left of the {}-byte budget for \
             frames being received (frame_budget_bytes); retry later",
            self.len, self.limit
        )
    }
}

impl FrameBudget {
    pub(crate) fn new(limit: u64) -> FrameBudget {
        FrameBudget {
            limit,
            used: AtomicU64::new(0),
        }
    }

    /// Reserves room for a frame body of `len` bytes (nothing for a small one).
    pub(crate) fn reserve(&self, len: usize) -> Result<Reservation<'_>, OverBudget> {
        let bytes = if len <= FREE_FRAME { 0 } else { len as u64 };
        if bytes > 0 {
            self.used
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                    used.checked_add(bytes).filter(|&after| after <= self.limit)
                })
                .map_err(|_| OverBudget {
                    len,
                    limit: self.limit,
                })?;
        }
        Ok(Reservation {
            budget: self,
            bytes,
        })
    }

    /// Bytes reserved now.
    #[cfg(test)]
    fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
        }
    }
}

/// How often refusals of places are reported, at most.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Rate-limited warnings for refused places: the first refusal is logged at once, the ones
/// that follow within [`REPORT_EVERY`] are counted and reported in the next line, so 2,000
/// refused connects cost a few log lines, not 2,000.
#[derive(Debug, Default)]
pub(crate) struct RefusalLog {
    state: Mutex<Option<(Instant, u64)>>,
}

impl RefusalLog {
    pub(crate) fn refused(&self, uid: u32, pid: Option<i32>, refusal: &Refusal) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        match *state {
            Some((last, ref mut unreported)) if now.duration_since(last) < REPORT_EVERY => {
                *unreported += 1;
            }
            previous => {
                let unreported = previous.map_or(0, |(_, unreported)| unreported);
                *state = Some((now, 0));
                if unreported == 0 {
                    tracing::warn!(uid, pid, "refused a connection: {refusal}");
                } else {
                    tracing::warn!(
                        uid,
                        pid,
                        "refused a connection: {refusal} ({unreported} more refused since the \
                         last report)"
                    );
                }
            }
        }
    }
}

impl RefusalLog {
    /// Reports the refusals counted since the last line, if any and if that line is
    /// [`REPORT_EVERY`] old; called periodically, so a burst's count is never lost.
    pub(crate) fn flush(&self) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((last, unreported)) = *state
            && unreported > 0
            && last.elapsed() >= REPORT_EVERY
        {
            *state = Some((Instant::now(), 0));
            tracing::warn!(
                "refused {unreported} more connections over the limits since the last report"
            );
        }
    }
}

/// How often the accept loop looks for counted refusals to report.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(1);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn limits(max: usize, per_uid: usize, admin: usize) -> Limits {
        Limits {
            max_connections: max,
            max_connections_per_uid: per_uid,
            admin_connections: admin,
            ..Limits::default()
        }
    }

    #[test]
    fn one_uid_cannot_take_the_places_of_others() {
        let places = Places::new(limits(4, 2, 2));
        let bot: Vec<Place> = (0..2).map(|_| places.admit(1001, false).unwrap()).collect();
        assert_eq!(
            places.admit(1001, false).unwrap_err(),
            Refusal::PerUid { uid: 1001, max: 2 }
        );
        let other: Vec<Place> = (0..2).map(|_| places.admit(1002, false).unwrap()).collect();
        assert_eq!(
            places.admit(1003, false).unwrap_err(),
            Refusal::Full { max: 4 }
        );
        drop(bot);
        assert!(places.admit(1003, false).is_ok());
        drop(other);
        assert_eq!(places.open(), (0, 0));
    }

    #[test]
    fn admins_get_reserved_places_when_the_shared_ones_are_full_each_at_most_half() {
        let places = Places::new(limits(2, 2, 4));
        let _bots: Vec<Place> = (0..2).map(|_| places.admit(1001, false).unwrap()).collect();
        let daemon_uid: Vec<Place> = (0..2).map(|_| places.admit(999, true).unwrap()).collect();
        assert!(daemon_uid.iter().all(|place| place.reserved));
        assert_eq!(
            places.admit(999, true).unwrap_err(),
            Refusal::Full { max: 2 }
        );
        // Root still gets through, while the daemon's uid holds all it may.
        let _root: Vec<Place> = (0..2).map(|_| places.admit(0, true).unwrap()).collect();
        assert!(places.admit(0, true).is_err());
        assert_eq!(places.open(), (2, 4));
    }

    #[test]
    fn admins_are_not_held_to_the_per_uid_cap() {
        let places = Places::new(limits(8, 1, 2));
        let admin: Vec<Place> = (0..8).map(|_| places.admit(0, true).unwrap()).collect();
        assert!(admin.iter().all(|place| !place.reserved));
    }

    #[test]
    fn the_budget_holds_large_frames_only_and_is_returned() {
        let budget = FrameBudget::new(100_000);
        let small: Vec<_> = (0..1000)
            .map(|_| budget.reserve(FREE_FRAME).unwrap())
            .collect();
        assert_eq!(budget.used(), 0);
        let big = budget.reserve(60_000).unwrap();
        assert_eq!(
            budget.reserve(60_000).unwrap_err(),
            OverBudget {
                len: 60_000,
                limit: 100_000
            }
        );
        assert!(budget.reserve(40_000).is_ok());
        drop(big);
        assert_eq!(budget.used(), 0);
        assert!(budget.reserve(100_000).is_ok());
        drop(small);
    }
}
