//! The daemon's counters (issue 19, monitoring), answered to a `Stats` request.
//!
//! One process-wide [`Stats`] ([`global`]), so that every module can count without the
//! counters being threaded through it: the audit writer, the connection threads, the
//! handler. Every counter is an atomic; the signing path only ever does a `fetch_add` on a
//! counter it already holds (a key finds its own signature counter once, at its first
//! signature after being loaded, which is the only time it takes the registry's mutex).
//!
//! Counters only grow (Prometheus `counter`s), except `connections_open` (a gauge).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use keyward_protocol::{ErrorCode, NamedCount, Scheme, SignatureCount};

/// The counters of this process.
pub(crate) fn global() -> &'static Stats {
    static GLOBAL: LazyLock<Stats> = LazyLock::new(Stats::new);
    &GLOBAL
}

/// Why a request was refused by a decision, as counted in `denials`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denial {
    /// The peer may not make that request.
    Denied,
    /// The payload breaks the key's rules.
    PolicyViolation,
    /// A batch larger than the key's burst.
    BatchExceedsBurst,
}

impl Denial {
    const ALL: [Denial; 3] = [
        Denial::Denied,
        Denial::PolicyViolation,
        Denial::BatchExceedsBurst,
    ];

    /// The denial a refusal with `code` counts as, if it is one.
    pub(crate) fn of(code: ErrorCode) -> Option<Denial> {
        match code {
            ErrorCode::Denied => Some(Denial::Denied),
            ErrorCode::PolicyViolation => Some(Denial::PolicyViolation),
            ErrorCode::BatchExceedsBurst => Some(Denial::BatchExceedsBurst),
            _ => None,
        }
    }

    /// The reason's name: the error code's.
    fn name(self) -> &'static str {
        match self {
            Denial::Denied => ErrorCode::Denied.name(),
            Denial::PolicyViolation => ErrorCode::PolicyViolation.name(),
            Denial::BatchExceedsBurst => ErrorCode::BatchExceedsBurst.name(),
        }
    }
}

/// A signature counter for one key and scheme, shared between the registry and the key.
pub(crate) type SignatureCounter = Arc<AtomicU64>;

/// The signature counters by key name and scheme name (so they sort as the wire wants).
type SignatureCounters = BTreeMap<(String, &'static str), (Scheme, SignatureCounter)>;

/// The counters. See docs/PROTOCOL.md section 5.9 for what each one counts.
#[derive(Debug)]
pub(crate) struct Stats {
    started: Instant,
    /// Per key and scheme. Keys come and go (lock, remove); their counts stay, so that a
    /// counter never goes down while the daemon runs.
    signatures: Mutex<SignatureCounters>,
    denials: [AtomicU64; Denial::ALL.len()],
    rate_limited: AtomicU64,
    locked_refusals: AtomicU64,
    audit_failures: AtomicU64,
    audit_drops: AtomicU64,
    connections_open: AtomicU64,
    connections_accepted: AtomicU64,
    connections_refused: AtomicU64,
    unlocks: AtomicU64,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A connection being served: counted open while this lives.
#[derive(Debug)]
#[must_use = "the connection counts as open only while the guard lives"]
pub(crate) struct OpenConnection<'a>(&'a Stats);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Stats {
    pub(crate) fn new() -> Stats {
        Stats {
            started: Instant::now(),
            signatures: Mutex::new(BTreeMap::new()),
            denials: Default::default(),
            rate_limited: AtomicU64::new(0),
            locked_refusals: AtomicU64::new(0),
            audit_failures: AtomicU64::new(0),
            audit_drops: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
            connections_accepted: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            unlocks: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
        }
    }

    /// The signature counter of `key` with `scheme`, made on first use. Takes a mutex: call
    /// it once per loaded key, not per signature (`Key::count_signatures` caches it).
    pub(crate) fn signature_counter(&self, key: &str, scheme: Scheme) -> SignatureCounter {
        let mut map = self
            .signatures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (_, counter) = map
            .entry((key.to_owned(), scheme.name()))
            .or_insert_with(|| (scheme, Arc::default()));
        Arc::clone(counter)
    }

    /// A request refused by a decision (`Denied`, `PolicyViolation`, `BatchExceedsBurst`).
    pub(crate) fn record_denial(&self, denial: Denial) {
        let index = Denial::ALL
            .iter()
            .position(|d| *d == denial)
            .unwrap_or_default();
        if let Some(counter) = self.denials.get(index) {
            bump(counter);
        }
    }

    /// A sign request refused by a rate limit.
    pub(crate) fn record_rate_limited(&self) {
        bump(&self.rate_limited);
    }

    /// A sign request refused because the keystore was locked.
    pub(crate) fn record_locked_refusal(&self) {
        bump(&self.locked_refusals);
    }

    /// An audit record that could not be written.
    pub(crate) fn record_audit_failure(&self) {
        bump(&self.audit_failures);
    }

    /// An audit record dropped because the audit writer's queue was full.
    pub(crate) fn record_audit_drop(&self) {
        bump(&self.audit_drops);
    }

    /// A connection accepted for service: counted open until the guard drops.
    pub(crate) fn connection_opened(&self) -> OpenConnection<'_> {
        bump(&self.connections_accepted);
        bump(&self.connections_open);
        OpenConnection(self)
    }

    /// A connection refused at accept.
    pub(crate) fn record_connection_refused(&self) {
        bump(&self.connections_refused);
    }

    /// A successful unlock.
    pub(crate) fn record_unlock(&self) {
        bump(&self.unlocks);
    }

    /// A reload: `ok` when the new policy is in force.
    pub(crate) fn record_reload(&self, ok: bool) {
        bump(if ok {
            &self.reloads
        } else {
            &self.reload_failures
        });
    }

    /// A consistent-enough copy for the wire: each counter is read once, atomically.
    pub(crate) fn snapshot(&self) -> keyward_protocol::Stats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let signatures = self
            .signatures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|((key, _), (scheme, counter))| SignatureCount {
                key: key.clone(),
                scheme: *scheme,
                count: read(counter),
            })
            .collect();
        let mut denials: Vec<NamedCount> = Denial::ALL
            .iter()
            .zip(&self.denials)
            .filter(|(_, counter)| read(counter) > 0)
            .map(|(denial, counter)| NamedCount {
                name: denial.name().to_owned(),
                count: read(counter),
            })
            .collect();
        denials.sort_by(|a, b| a.name.cmp(&b.name));
        keyward_protocol::Stats {
            uptime_secs: self.started.elapsed().as_secs(),
            signatures,
            denials,
            rate_limited: read(&self.rate_limited),
            locked_refusals: read(&self.locked_refusals),
            audit_failures: read(&self.audit_failures),
            audit_drops: read(&self.audit_drops),
            connections_open: read(&self.connections_open),
            connections_accepted: read(&self.connections_accepted),
            connections_refused: read(&self.connections_refused),
            unlocks: read(&self.unlocks),
            reloads: read(&self.reloads),
            reload_failures: read(&self.reload_failures),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_count_and_the_snapshot_sorts() {
        let stats = Stats::new();
        let b = stats.signature_counter("b", Scheme::Ed25519);
        let a = stats.signature_counter("a", Scheme::HmacSha256);
        b.fetch_add(3, Ordering::Relaxed);
        a.fetch_add(1, Ordering::Relaxed);
        // The same key and scheme share one counter.
        stats
            .signature_counter("b", Scheme::Ed25519)
            .fetch_add(1, Ordering::Relaxed);
        stats.record_denial(Denial::PolicyViolation);
        stats.record_denial(Denial::Denied);
        stats.record_denial(Denial::Denied);
        stats.record_audit_failure();
        stats.record_audit_drop();
        stats.record_reload(true);
        stats.record_reload(false);
        let open = stats.connection_opened();
        let snap = stats.snapshot();
        assert_eq!(
            snap.signatures
                .iter()
                .map(|c| (c.key.as_str(), c.count))
                .collect::<Vec<_>>(),
            [("a", 1), ("b", 4)]
        );
        assert_eq!(
            snap.denials
                .iter()
                .map(|c| (c.name.as_str(), c.count))
                .collect::<Vec<_>>(),
            [("denied", 2), ("policy-violation", 1)]
        );
        assert_eq!((snap.audit_failures, snap.audit_drops), (1, 1));
        assert_eq!((snap.reloads, snap.reload_failures), (1, 1));
        assert_eq!((snap.connections_open, snap.connections_accepted), (1, 1));
        drop(open);
        assert_eq!(stats.snapshot().connections_open, 0);
    }
}
