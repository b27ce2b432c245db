//! Who may do what: admin rights, per-key allow lists, payload rules and rate limits.
//!
//! A [`Policy`] is an immutable snapshot built from the config file; SIGHUP swaps in a new one
//! atomically. Every decision is a pure function of the snapshot, the peer and the payload,
//! except the rate limiter, whose buckets live in [`RateLimiter`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keyward_protocol::ErrorCode;

use crate::failure::Failure;
use crate::peer::Peer;

/// A token bucket's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RateLimit {
    pub(crate) per_sec: f64,
    pub(crate) burst: u32,
}

/// The rules for one key.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct KeyPolicy {
    /// Uids that may sign (the daemon's own uid always may).
    pub(crate) allow_uids: BTreeSet<u32>,
    /// Groups whose members (primary or supplementary) may sign.
    pub(crate) allow_gids: BTreeSet<u32>,
    pub(crate) rate: Option<RateLimit>,
    /// A `timestamp=` parameter must be within ± this many ms of now.
    pub(crate) timestamp_window_ms: Option<u64>,
    /// Parameter names refused in payloads, lowercase.
    pub(crate) deny_params: Vec<String>,
    pub(crate) max_payload_bytes: Option<usize>,
}

/// The whole policy.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Policy {
    /// Uids that may make admin requests, besides the daemon's own.
    pub(crate) admin_uids: BTreeSet<u32>,
    pub(crate) admin_gids: BTreeSet<u32>,
    /// For keys without a table of their own.
    pub(crate) defaults: KeyPolicy,
    pub(crate) keys: BTreeMap<String, KeyPolicy>,
}

impl Default for Policy {
    /// No config file: the daemon's uid and root administer; only the daemon's uid signs.
    fn default() -> Self {
        Policy {
            admin_uids: BTreeSet::from([0]),
            admin_gids: BTreeSet::new(),
            defaults: KeyPolicy::default(),
            keys: BTreeMap::new(),
        }
    }
}

impl KeyPolicy {
    fn allows(&self, peer: &Peer) -> bool {
        self.allow_uids.contains(&peer.uid)
            || peer.groups.iter().any(|gid| self.allow_gids.contains(gid))
    }
}

impl Policy {
    pub(crate) fn for_key(&self, name: &str) -> &KeyPolicy {
        self.keys.get(name).unwrap_or(&self.defaults)
    }

    /// May `peer` make admin requests (init, unlock, lock, import, generate, remove, passwd)?
    pub(crate) fn is_admin(&self, peer: &Peer, daemon_uid: u32) -> bool {
        peer.uid == daemon_uid
            || self.admin_uids.contains(&peer.uid)
            || peer.groups.iter().any(|gid| self.admin_gids.contains(gid))
    }

    /// May `peer` sign with (and see) the key `name`?
    pub(crate) fn may_use(&self, name: &str, peer: &Peer, daemon_uid: u32) -> bool {
        peer.uid == daemon_uid || self.for_key(name).allows(peer)
    }

    /// May `peer` talk to the daemon at all? Peers with no right of any kind are answered
    /// `Denied` and closed before anything they send is read.
    pub(crate) fn may_connect(&self, peer: &Peer, daemon_uid: u32) -> bool {
        self.is_admin(peer, daemon_uid)
            || self.defaults.allows(peer)
            || self.keys.values().any(|key| key.allows(peer))
    }
}

/// Checks a payload against a key's rules; the error is the reason, for the client and audit.
pub(crate) fn check_payload(policy: &KeyPolicy, payload: &[u8], now_ms: u64) -> Result<(), String> {
    if let Some(max) = policy.max_payload_bytes
        && payload.len() > max
    {
        return Err(format!(
            "payload of {} bytes exceeds this key's limit of {max} bytes",
            payload.len()
        ));
    }
    if policy.timestamp_window_ms.is_none() && policy.deny_params.is_empty() {
        return Ok(());
    }
    let params = parameters(payload)?;
    if let Some((name, _)) = params
        .iter()
        .find(|(name, _)| policy.deny_params.contains(&name.to_ascii_lowercase()))
    {
        return Err(format!("parameter {name:?} is not allowed for this key"));
    }
    if let Some(name) = denied_name_anywhere(&policy.deny_params, payload) {
        return Err(format!("parameter {name:?} is not allowed for this key"));
    }
    if let Some(window) = policy.timestamp_window_ms {
        let mut stamps = params.iter().filter(|(name, _)| name == "timestamp");
        let (Some((_, value)), None) = (stamps.next(), stamps.next()) else {
            return Err(format!(
                "this key requires exactly one timestamp parameter within ±{window} ms of now"
            ));
        };
        let stamp: u64 = value
            .parse()
            // The value is not quoted: without audit_payloads, payload text stays out of logs.
            .map_err(|_| "the timestamp parameter is not a number of milliseconds".to_owned())?;
        // Binance accepts milliseconds (13 digits) and microseconds (16 digits).
        let stamp_ms = if stamp >= 100_000_000_000_000 {
            stamp / 1000
        } else {
            stamp
        };
        let skew = now_ms.abs_diff(stamp_ms);
        if skew > window {
            return Err(format!(
                "timestamp is {skew} ms from the daemon's clock; this key allows ±{window} ms"
            ));
        }
    }
    Ok(())
}

/// Looks for a denied name written as `name=` or `"name"` anywhere in the payload (percent-
/// decoded, case-insensitive), not only as a parsed parameter. Binance signs the query string
/// and the body concatenated with no separator (`...&recvWindow=5000address=X` carries an
/// `address`), and OKX, KuCoin and Bitget sign `timestamp + method + path + body`; neither
/// parses as one form. The price is a rare false refusal (`toAddress=`), which is the safe
/// side for a rule whose point is to stop withdrawals.
fn denied_name_anywhere<'a>(deny_params: &'a [String], payload: &[u8]) -> Option<&'a str> {
    let decoded: Vec<u8> = percent_encoding::percent_decode(payload).collect();
    let text = String::from_utf8_lossy(&decoded).to_ascii_lowercase();
    deny_params
        .iter()
        .find(|name| text.contains(&format!("{name}=")) || text.contains(&format!("\"{name}\"")))
        .map(String::as_str)
}

/// The payload's parameters: the top-level fields of a JSON object, or the decoded pairs of
/// a query string / form body. Names are percent-decoded, so `addr%65ss` is `address`.
fn parameters(payload: &[u8]) -> Result<Vec<(String, String)>, String> {
    let trimmed = payload.trim_ascii_start();
    if trimmed.first() == Some(&b'{') {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(payload)
            .map_err(|_| "payload starts like JSON but is not a valid JSON object".to_owned())?;
        return Ok(object
            .into_iter()
            .map(|(name, value)| {
                let text = match value {
                    serde_json::Value::String(text) => text,
                    other => other.to_string(),
                };
                (name, text)
            })
            .collect());
    }
    Ok(form_urlencoded::parse(payload)
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect())
}

/// Applies the key's payload rules and rate limit to the payloads about to be signed.
pub(crate) fn enforce_key_policy(
    policy: &Policy,
    rates: &RateLimiter,
    key: &str,
    payloads: &[&[u8]],
) -> Result<(), Failure> {
    let rules = policy.for_key(key);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
    for payload in payloads {
        check_payload(rules, payload, now_ms)
            .map_err(|why| Failure::new(ErrorCode::PolicyViolation, why))?;
    }
    if let Some(limit) = rules.rate {
        let n = u32::try_from(payloads.len()).unwrap_or(u32::MAX);
        if n > limit.burst {
            return Err(Failure::new(
                ErrorCode::RateLimited,
                format!(
                    "a batch of {n} exceeds key {key:?}'s burst of {}; split it",
                    limit.burst
                ),
            ));
        }
        rates.take(key, limit, n, Instant::now()).map_err(|wait| {
            Failure::new(
                ErrorCode::RateLimited,
                format!(
                    "rate limit of key {key:?} reached ({}/s); retry in {} ms",
                    limit.per_sec,
                    wait.as_millis().max(1)
                ),
            )
        })?;
    }
    Ok(())
}

/// Token buckets, one per key.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    limit: RateLimit,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// Takes `n` tokens from `key`'s bucket, or says how long until they will be there.
    pub(crate) fn take(
        &self,
        key: &str,
        limit: RateLimit,
        n: u32,
        now: Instant,
    ) -> Result<(), Duration> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            limit,
            tokens: f64::from(limit.burst),
            last: now,
        });
        if bucket.limit != limit {
            // The policy changed (SIGHUP): start the new limit with a full bucket.
            *bucket = Bucket {
                limit,
                tokens: f64::from(limit.burst),
                last: now,
            };
        }
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * limit.per_sec).min(f64::from(limit.burst));
        bucket.last = now;
        let wanted = f64::from(n);
        if bucket.tokens >= wanted {
            bucket.tokens -= wanted;
            Ok(())
        } else {
            // The config bounds the rate, so this cannot overflow; if it ever did, "wait
            // forever" is the safe answer, never a panic.
            Err(
                Duration::try_from_secs_f64((wanted - bucket.tokens) / limit.per_sec)
                    .unwrap_or(Duration::MAX),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, groups: &[u32]) -> Peer {
        Peer {
            uid,
            gid: groups.first().copied().unwrap_or(uid),
            pid: None,
            groups: groups.to_vec(),
            exe: None,
        }
    }

    fn key_policy() -> KeyPolicy {
        KeyPolicy {
            timestamp_window_ms: Some(5000),
            deny_params: vec!["address".into()],
            max_payload_bytes: Some(100),
            ..KeyPolicy::default()
        }
    }

    #[test]
    fn allow_lists_count_uids_and_supplementary_groups() {
        let mut policy = Policy::default();
        policy.keys.insert(
            "k".into(),
            KeyPolicy {
                allow_uids: BTreeSet::from([1001]),
                allow_gids: BTreeSet::from([500]),
                ..KeyPolicy::default()
            },
        );
        let daemon = 999;
        assert!(policy.may_use("k", &peer(1001, &[1001]), daemon));
        assert!(policy.may_use("k", &peer(1002, &[1002, 500]), daemon));
        assert!(!policy.may_use("k", &peer(1003, &[1003]), daemon));
        assert!(!policy.may_use("other", &peer(1001, &[1001]), daemon));
        assert!(policy.may_use("other", &peer(daemon, &[]), daemon));
        assert!(policy.may_connect(&peer(1002, &[1002, 500]), daemon));
        assert!(!policy.may_connect(&peer(1003, &[1003]), daemon));
        assert!(!policy.is_admin(&peer(1001, &[1001]), daemon));
        assert!(policy.is_admin(&peer(0, &[0]), daemon));
    }

    #[test]
    fn payload_rules_each_give_their_own_reason() {
        let now = 1_700_000_000_000;
        let rules = key_policy();
        assert_eq!(
            check_payload(&rules, b"symbol=BTCUSDT&timestamp=1700000001000", now),
            Ok(())
        );
        // Microseconds are understood too.
        assert_eq!(
            check_payload(&rules, b"timestamp=1700000001000000", now),
            Ok(())
        );
        let stale = check_payload(&rules, b"symbol=X&timestamp=1699999990000", now).unwrap_err();
        assert!(stale.contains("10000 ms"), "{stale}");
        let missing = check_payload(&rules, b"symbol=X", now).unwrap_err();
        assert!(
            missing.contains("requires exactly one timestamp"),
            "{missing}"
        );
        let twice = check_payload(&rules, b"timestamp=1700000000000&timestamp=1", now).unwrap_err();
        assert!(twice.contains("exactly one"), "{twice}");
        let denied =
            check_payload(&rules, b"addr%65ss=x&timestamp=1700000000000", now).unwrap_err();
        assert!(denied.contains("\"address\" is not allowed"), "{denied}");
        let big = check_payload(&rules, &[b'a'; 101], now).unwrap_err();
        assert!(big.contains("101 bytes"), "{big}");
        let json = br#"{"symbol":"X","timestamp":1700000000000,"Address":"evil"}"#;
        assert!(
            check_payload(&rules, json, now)
                .unwrap_err()
                .contains("\"Address\"")
        );
        let json = br#"{"symbol":"X","timestamp":1700000000000}"#;
        assert_eq!(check_payload(&rules, json, now), Ok(()));
        assert!(check_payload(&rules, b"{not json", now).is_err());
        // No rules, no parsing: any bytes pass.
        assert_eq!(
            check_payload(&KeyPolicy::default(), &[0xff, 0x00], now),
            Ok(())
        );
    }

    #[test]
    fn the_bucket_refuses_a_burst_and_refills() {
        let limiter = RateLimiter::default();
        let limit = RateLimit {
            per_sec: 10.0,
            burst: 3,
        };
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.take("k", limit, 1, start), Ok(()));
        }
        let wait = limiter.take("k", limit, 1, start).unwrap_err();
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        assert_eq!(
            limiter.take("k", limit, 1, start + Duration::from_millis(100)),
            Ok(())
        );
        // Other keys have their own bucket.
        assert_eq!(limiter.take("other", limit, 3, start), Ok(()));
    }
}
