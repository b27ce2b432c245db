//! Who may do what: admin rights, per-key allow lists, payload rules and rate limits.
//!
//! A [`Policy`] is an immutable snapshot built from the config file; SIGHUP swaps in a new one
//! atomically. Every decision is a pure function of the snapshot, the peer and the payload,
//! except the rate limiter, whose buckets live in [`RateLimiter`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keyward_protocol::{ErrorCode, KeyInfo, KeyOrderRules};

use crate::failure::Failure;
use crate::keyring::Key;
use crate::payload::{self, Format, Rules};
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
    /// Checked first, on the raw bytes, before any parse.
    pub(crate) max_payload_bytes: Option<usize>,
    /// The section's `format`; see [`Policy::format_for`] for how it meets the key's own.
    pub(crate) format: Option<Format>,
    /// The payload rules, judged on a strict parse in the key's format (`payload::judge`).
    pub(crate) rules: Rules,
}

/// The whole policy.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Policy {
    /// Uids that may make admin requests, besides the daemon's own.
    pub(crate) admin_uids: BTreeSet<u32>,
    pub(crate) admin_gids: BTreeSet<u32>,
    /// Uids and gids with the read-only status right (Status and Stats; monitoring).
    pub(crate) status_uids: BTreeSet<u32>,
    pub(crate) status_gids: BTreeSet<u32>,
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
            status_uids: BTreeSet::new(),
            status_gids: BTreeSet::new(),
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

    /// May `peer` read the daemon's state and counters (Status, Stats)? Admins may; so may
    /// the `status_uids`/`status_gids`, which may do nothing else (monitoring).
    pub(crate) fn may_monitor(&self, peer: &Peer, daemon_uid: u32) -> bool {
        self.is_admin(peer, daemon_uid)
            || self.status_uids.contains(&peer.uid)
            || peer.groups.iter().any(|gid| self.status_gids.contains(gid))
    }

    /// May `peer` sign with (and see) the key `name`?
    pub(crate) fn may_use(&self, name: &str, peer: &Peer, daemon_uid: u32) -> bool {
        peer.uid == daemon_uid || self.for_key(name).allows(peer)
    }

    /// The format `name`'s payloads are parsed in when its rules judge them: the key's own
    /// config section's `format` if it sets one, else `stored` (the format given at import
    /// or generate), else `[defaults]`'s `format` for a key without a section of its own.
    /// The key's own section is the most specific statement, `[defaults]` the least.
    pub(crate) fn format_for(&self, name: &str, stored: Option<Format>) -> Option<Format> {
        match self.keys.get(name) {
            Some(section) => section.format.or(stored),
            None => stored.or(self.defaults.format),
        }
    }

    /// What a client is shown about `key`: its stored description with the format its
    /// payloads are judged in ([`Policy::format_for`]).
    pub(crate) fn describe(&self, key: &KeyInfo) -> KeyInfo {
        KeyInfo {
            format: self.format_for(&key.name, key.format),
            ..key.clone()
        }
    }

    /// The key's own config section sets a format that differs from the one stored with
    /// it: the config's wins, and this says so, for the log.
    pub(crate) fn format_disagreement(&self, key: &KeyInfo) -> Option<String> {
        let configured = self.keys.get(&key.name)?.format?;
        let stored = key.format?;
        (configured != stored).then(|| {
            format!(
                "key {:?} was given format {stored}, and keys.{}.format in the config says \
                 {configured}: payloads are judged as {configured}",
                key.name, key.name
            )
        })
    }

    /// One line per policy section that has order rules (`[defaults]`, then each
    /// `[keys."NAME"]`), for the daemon's log at start and SIGHUP.
    pub(crate) fn order_rules_report(&self) -> Vec<String> {
        std::iter::once(("[defaults]".to_owned(), &self.defaults))
            .chain(
                self.keys
                    .iter()
                    .map(|(name, section)| (format!("key {name:?}"), section)),
            )
            .filter(|(_, section)| !section.rules.orders.is_empty())
            .map(|(who, section)| format!("{who}: {}", section.rules.orders.describe()))
            .collect()
    }

    /// The order rules in force for each key of `names` (sorted by name), for an admin's
    /// `keyward status`.
    pub(crate) fn order_rules_of(
        &self,
        names: impl IntoIterator<Item = String>,
    ) -> Vec<KeyOrderRules> {
        let mut names: Vec<String> = names.into_iter().collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|key| {
                let rules = &self.for_key(&key).rules.orders;
                KeyOrderRules {
                    allow_symbols: rules.allow_symbols.clone(),
                    allow_sides: rules.allow_sides.clone(),
                    allow_order_types: rules.allow_order_types.clone(),
                    max_quantity: rules.max_quantity.as_ref().map(ToString::to_string),
                    max_notional: rules.max_notional.as_ref().map(ToString::to_string),
                    orders_per_minute: rules.orders_per_minute,
                    key,
                }
            })
            .collect()
    }

    /// May `peer` talk to the daemon at all? Peers with no right of any kind are answered
    /// `Denied` and closed before anything they send is read.
    pub(crate) fn may_connect(&self, peer: &Peer, daemon_uid: u32) -> bool {
        self.may_monitor(peer, daemon_uid)
            || self.defaults.allows(peer)
            || self.keys.values().any(|key| key.allows(peer))
    }
}

/// Judges one payload against a key's policy: the size limit on the raw bytes, then the
/// payload rules (order rules included) on a strict parse in `format`. `Ok` holds how many
/// orders the payload places (for `orders_per_minute`). The error is the reason, one line,
/// for the client and the audit log; it quotes at most a short excerpt of a name or value.
pub(crate) fn judge_payload(
    policy: &KeyPolicy,
    format: Option<Format>,
    payload: &[u8],
    ctx: payload::Context<'_>,
) -> Result<usize, String> {
    if let Some(max) = policy.max_payload_bytes
        && payload.len() > max
    {
        return Err(format!(
            "payload of {} bytes exceeds this key's limit of {max} bytes",
            payload.len()
        ));
    }
    payload::judge(format, payload, &policy.rules, ctx)
        .map(|parsed| parsed.map_or(0, |parsed| parsed.orders.len()))
        .map_err(|refusal| refusal.to_string())
}

/// Applies the key's payload rules, order rules and rate limits to the payloads about to be
/// signed. Every payload is judged before any token is taken, so a refused batch costs none.
pub(crate) fn enforce_key_policy(
    policy: &Policy,
    rates: &RateLimiter,
    entry: &Key,
    payloads: &[&[u8]],
) -> Result<(), Failure> {
    let key = entry.info.name.as_str();
    let rules = policy.for_key(key);
    let format = policy.format_for(key, entry.info.format);
    let ctx = payload::Context {
        now_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            }),
        api_key: entry.info.api_key.as_deref(),
    };
    let mut orders = 0usize;
    for payload in payloads {
        orders += judge_payload(rules, format, payload, ctx)
            .map_err(|why| Failure::new(ErrorCode::PolicyViolation, why))?;
    }
    let now = Instant::now();
    let order_limit = rules
        .rules
        .orders
        .orders_per_minute
        .filter(|_| orders > 0)
        .map(|per_minute| RateLimit {
            per_sec: f64::from(per_minute) / 60.0,
            burst: per_minute,
        });
    let orders = u32::try_from(orders).unwrap_or(u32::MAX);
    if let Some(limit) = order_limit {
        if orders > limit.burst {
            return Err(Failure::new(
                ErrorCode::PolicyViolation,
                format!(
                    "orders_per_minute: {orders} orders exceed key {key:?}'s limit of {} a minute",
                    limit.burst
                ),
            ));
        }
        // Checked (not taken) first: a signature refused by the order limit should not
        // also spend the signature rate limit, and the reverse.
        rates
            .check_orders(key, limit, orders, now)
            .map_err(|wait| orders_refusal(key, limit, wait))?;
    }
    if let Some(limit) = rules.rate {
        let n = u32::try_from(payloads.len()).unwrap_or(u32::MAX);
        if n > limit.burst {
            // Waiting cannot help: the bucket never holds more than `burst` tokens.
            return Err(Failure::new(
                ErrorCode::BatchExceedsBurst,
                format!(
                    "a batch of {n} exceeds key {key:?}'s burst of {}; split it",
                    limit.burst
                ),
            ));
        }
        rates
            .take(key, limit, n, now)
            .map_err(|wait| rate_refusal(key, limit, wait))?;
    }
    if let Some(limit) = order_limit {
        rates
            .take_orders(key, limit, orders, now)
            .map_err(|wait| orders_refusal(key, limit, wait))?;
    }
    Ok(())
}

/// The policy of a `SignPassphrase`: the key's rate limit, one token, and no payload rules,
/// since the signed bytes are the passphrase an admin stored, not a payload from the peer.
pub(crate) fn enforce_passphrase_policy(
    policy: &Policy,
    rates: &RateLimiter,
    entry: &Key,
) -> Result<(), Failure> {
    let key = entry.info.name.as_str();
    if let Some(limit) = policy.for_key(key).rate {
        rates
            .take(key, limit, 1, Instant::now())
            .map_err(|wait| rate_refusal(key, limit, wait))?;
    }
    Ok(())
}

fn rate_refusal(key: &str, limit: RateLimit, wait: Duration) -> Failure {
    Failure::rate_limited(
        format!(
            "rate limit of key {key:?} reached ({}/s); retry in {} ms",
            limit.per_sec,
            wait.as_millis().max(1)
        ),
        wait,
    )
}

fn orders_refusal(key: &str, limit: RateLimit, wait: Duration) -> Failure {
    Failure::rate_limited(
        format!(
            "orders_per_minute: key {key:?} has placed its {} orders a minute; retry in {} ms",
            limit.burst,
            wait.as_millis().max(1)
        ),
        wait,
    )
}

/// Token buckets, one per key for signatures and one per key for orders
/// (`orders_per_minute`, separate from the signature rate).
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
    orders: Mutex<HashMap<String, Bucket>>,
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
        take_from(&self.buckets, key, limit, n, now, true)
    }

    /// Takes `n` orders from `key`'s order bucket, or says how long until they will be there.
    pub(crate) fn take_orders(
        &self,
        key: &str,
        limit: RateLimit,
        n: u32,
        now: Instant,
    ) -> Result<(), Duration> {
        take_from(&self.orders, key, limit, n, now, true)
    }

    /// Whether `n` orders could be taken now, taking none.
    pub(crate) fn check_orders(
        &self,
        key: &str,
        limit: RateLimit,
        n: u32,
        now: Instant,
    ) -> Result<(), Duration> {
        take_from(&self.orders, key, limit, n, now, false)
    }
}

fn take_from(
    buckets: &Mutex<HashMap<String, Bucket>>,
    key: &str,
    limit: RateLimit,
    n: u32,
    now: Instant,
    take: bool,
) -> Result<(), Duration> {
    let mut buckets = buckets
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
        if take {
            bucket.tokens -= wanted;
        }
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
            about: Default::default(),
        }
    }

    fn key_policy() -> KeyPolicy {
        KeyPolicy {
            max_payload_bytes: Some(100),
            rules: Rules {
                timestamp_window_ms: Some(5000),
                deny_params: vec!["address".into()],
                ..Rules::default()
            },
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
        let ctx = payload::Context {
            now_ms: now,
            api_key: None,
        };
        let rules = key_policy();
        let binance = |payload: &[u8]| judge_payload(&rules, Some(Format::Binance), payload, ctx);
        assert_eq!(binance(b"symbol=BTCUSDT&timestamp=1700000001000"), Ok(0));
        // Microseconds are understood too.
        assert_eq!(binance(b"timestamp=1700000001000000"), Ok(0));
        let stale = binance(b"symbol=X&timestamp=1699999990000").unwrap_err();
        assert!(stale.contains("10000 ms"), "{stale}");
        let missing = binance(b"symbol=X").unwrap_err();
        assert!(
            missing.contains("requires exactly one timestamp"),
            "{missing}"
        );
        let twice = binance(b"timestamp=1700000000000&timestamp=1").unwrap_err();
        assert!(twice.contains("\"timestamp\" appears twice"), "{twice}");
        let denied = binance(b"addr%65ss=x&timestamp=1700000000000").unwrap_err();
        assert!(denied.contains("\"address\" is not allowed"), "{denied}");
        // The size limit comes first, before any parse.
        let big = binance(&[b'a'; 101]).unwrap_err();
        assert!(big.contains("101 bytes"), "{big}");

        // JSON bodies are judged in a JSON format: keys at any depth, escapes decoded.
        let kucoin = |payload: &[u8]| judge_payload(&rules, Some(Format::Kucoin), payload, ctx);
        let json = br#"1700000000000POST/api/v1/orders{"symbol":"X","Address":"evil"}"#;
        assert!(kucoin(json).unwrap_err().contains("\"Address\""));
        let nested = br#"1700000000000POST/api/v1/orders{"a":{"b":[{"\u0061ddress":1}]}}"#;
        assert!(kucoin(nested).unwrap_err().contains("\"address\""));
        let json = br#"1700000000000POST/api/v1/orders{"symbol":"X"}"#;
        assert_eq!(kucoin(json), Ok(0));
        assert!(kucoin(b"1700000000000POST/api/v1/orders{not json").is_err());
        // Bytes of another format do not parse: refused, not guessed at.
        let other = kucoin(b"symbol=X&timestamp=1700000000000").unwrap_err();
        assert!(
            other.contains("not a valid kucoin signing string"),
            "{other}"
        );
        // Rules and no format: refused, whatever the bytes.
        let none = judge_payload(&rules, None, b"timestamp=1700000000000", ctx).unwrap_err();
        assert!(none.contains("no payload format"), "{none}");
        // No rules, no parsing: any bytes pass.
        assert_eq!(
            judge_payload(&KeyPolicy::default(), None, &[0xff, 0x00], ctx),
            Ok(0)
        );
    }

    #[test]
    fn the_key_section_format_beats_the_stored_one_which_beats_the_defaults() {
        let mut policy = Policy::default();
        policy.defaults.format = Some(Format::Binance);
        policy.keys.insert(
            "okx".into(),
            KeyPolicy {
                format: Some(Format::Okx),
                ..KeyPolicy::default()
            },
        );
        policy.keys.insert("plain".into(), KeyPolicy::default());
        let stored = Some(Format::Kucoin);
        assert_eq!(policy.format_for("okx", stored), Some(Format::Okx));
        assert_eq!(policy.format_for("okx", None), Some(Format::Okx));
        assert_eq!(policy.format_for("plain", stored), stored);
        // A key with a section of its own does not take [defaults]' format.
        assert_eq!(policy.format_for("plain", None), None);
        assert_eq!(policy.format_for("other", stored), stored);
        assert_eq!(policy.format_for("other", None), Some(Format::Binance));
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

    #[test]
    fn orders_have_a_bucket_of_their_own_and_checking_takes_nothing() {
        let limiter = RateLimiter::default();
        let per_minute = RateLimit {
            per_sec: 2.0 / 60.0,
            burst: 2,
        };
        let start = Instant::now();
        // The signature bucket of the same key is another bucket.
        assert_eq!(limiter.take("k", per_minute, 2, start), Ok(()));
        for _ in 0..3 {
            assert_eq!(limiter.check_orders("k", per_minute, 2, start), Ok(()));
        }
        assert_eq!(limiter.take_orders("k", per_minute, 2, start), Ok(()));
        let wait = limiter.check_orders("k", per_minute, 1, start).unwrap_err();
        assert!(
            wait > Duration::from_secs(29) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert_eq!(
            limiter.take_orders("k", per_minute, 1, start + Duration::from_secs(30)),
            Ok(())
        );
    }
}
