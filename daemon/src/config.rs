//! The configuration file (`keywardd --config PATH`, TOML), validated once at start and again
//! on every SIGHUP. An absent file means built-in defaults; every mistake is one clear error.
//!
//! ```toml
//! [daemon]                         # read at start only
//! socket = "/run/keyward/keyward.sock"
//! socket_group = "keyward"         # socket 0660 and its directory 0750, owned by this group
//! keystore = "/var/lib/keyward"
//! audit_log = "/var/log/keyward/audit.jsonl"
//! audit_payloads = false
//! audit_required = false
//! audit_timeout_ms = 1000
//! admin_uids = [0]                 # besides the daemon's own uid
//! admin_gids = []
//! idle_lock_secs = 0
//! max_unlock_secs = 0
//! max_connections = 1024           # limits on connections (docs/SECURITY.md, "Limits")
//! max_connections_per_uid = 256
//! admin_connections = 16
//! hello_timeout_secs = 10
//! frame_timeout_secs = 10
//! idle_timeout_secs = 600
//! frame_budget_bytes = 16777216
//!
//! [defaults]                       # reloaded on SIGHUP: policy for keys without a table
//! allow_uids = []                  # the daemon's own uid is always allowed
//! allow_gids = []
//!
//! [keys."binance-main"]            # reloaded on SIGHUP
//! allow_uids = [1001]              # user names are accepted too
//! allow_gids = ["bots"]
//! rate_per_sec = 20
//! burst = 40
//! max_payload_bytes = 16384
//! format = "binance"               # how payload rules parse this key's payloads
//! timestamp_window_ms = 5000       # payload rules: docs/POLICY.md says what each one sees
//! max_recv_window_ms = 10000
//! deny_params = ["address"]
//! allow_symbols = ["BTCUSDT"]     # order rules: docs/POLICY.md, "Order rules"
//! allow_sides = ["BUY", "SELL"]
//! allow_order_types = ["LIMIT", "LIMIT_MAKER"]
//! max_quantity = "0.5"             # decimal strings: exact, never a float
//! max_notional = "1000"
//! orders_per_minute = 30           # separate from rate_per_sec
//!
//! [keys."okx-main"]
//! format = "okx"
//! deny_paths = ["/api/v5/asset/"]  # prefix; allow_paths = [...] to list what may be signed
//! ```
//!
//! The format a key's payloads are judged in: `keys.NAME.format` if set, else the format
//! stored with the key (`keyward import/generate --format`), else `defaults.format`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::limits::Limits;
use crate::payload::{self, Decimal, Format, OrderRules, Rules};
use crate::policy::{KeyPolicy, Policy, RateLimit};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// A uid or gid, written as a number or a name.
#[derive(Debug, Clone)]
enum Principal {
    Id(u32),
    Name(String),
}

// Hand-written rather than `#[serde(untagged)]`, whose error ("data did not match any
// variant") names neither the bad value nor what was expected.
impl<'de> Deserialize<'de> for Principal {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Principal;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a uid/gid from 0 to 4294967295 or a user/group name")
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Principal, E> {
                u32::try_from(n)
                    .map(Principal::Id)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(n), &self))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Principal, E> {
                u32::try_from(n)
                    .map(Principal::Id)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(n), &self))
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Principal, E> {
                Ok(Principal::Name(name.to_owned()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    #[serde(default)]
    daemon: DaemonSection,
    #[serde(default)]
    defaults: PolicySection,
    #[serde(default)]
    keys: BTreeMap<String, PolicySection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DaemonSection {
    socket: Option<PathBuf>,
    socket_group: Option<Principal>,
    keystore: Option<PathBuf>,
    audit_log: Option<PathBuf>,
    #[serde(default)]
    audit_payloads: bool,
    #[serde(default)]
    audit_required: bool,
    audit_timeout_ms: Option<u64>,
    admin_uids: Option<Vec<Principal>>,
    #[serde(default)]
    admin_gids: Vec<Principal>,
    #[serde(default)]
    status_uids: Vec<Principal>,
    #[serde(default)]
    status_gids: Vec<Principal>,
    idle_lock_secs: Option<u64>,
    max_unlock_secs: Option<u64>,
    max_connections: Option<u64>,
    max_connections_per_uid: Option<u64>,
    admin_connections: Option<u64>,
    hello_timeout_secs: Option<u64>,
    frame_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    frame_budget_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicySection {
    #[serde(default)]
    allow_uids: Vec<Principal>,
    #[serde(default)]
    allow_gids: Vec<Principal>,
    rate_per_sec: Option<f64>,
    burst: Option<u32>,
    max_payload_bytes: Option<usize>,
    /// A payload format name (`payload::Format`), parsed by hand for a clear error.
    format: Option<String>,
    timestamp_window_ms: Option<u64>,
    max_recv_window_ms: Option<u64>,
    max_token_lifetime_secs: Option<u64>,
    #[serde(default)]
    deny_params: Vec<String>,
    #[serde(default)]
    allow_paths: Vec<String>,
    #[serde(default)]
    deny_paths: Vec<String>,
    // Order rules (issue 17); limits are decimal strings, so the config is as exact as the
    // comparison (a TOML float would already be rounded).
    #[serde(default)]
    allow_symbols: Vec<String>,
    #[serde(default)]
    allow_sides: Vec<String>,
    #[serde(default)]
    allow_order_types: Vec<String>,
    max_quantity: Option<String>,
    max_notional: Option<String>,
    orders_per_minute: Option<u32>,
}

/// The `[daemon]` section, resolved. Read at start only; flags override it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DaemonConfig {
    pub(crate) socket: Option<PathBuf>,
    pub(crate) socket_gid: Option<u32>,
    pub(crate) keystore: Option<PathBuf>,
    pub(crate) audit_log: Option<PathBuf>,
    pub(crate) audit_payloads: bool,
    pub(crate) audit_required: bool,
    /// The longest a signature waits for its audit record (with audit_required).
    pub(crate) audit_timeout_ms: Option<u64>,
    pub(crate) idle_lock_secs: Option<u64>,
    pub(crate) max_unlock_secs: Option<u64>,
    /// Limits on connections.
    pub(crate) limits: Limits,
}

/// A whole configuration: the start-time part and the reloadable policy.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) daemon: DaemonConfig,
    pub(crate) policy: Policy,
}

/// `$XDG_CONFIG_HOME/keyward/keywardd.toml`, else `~/.config/keyward/keywardd.toml`.
/// (The system service passes `--config /etc/keyward/keywardd.toml`.)
pub(crate) fn default_path() -> Option<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    non_empty("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| non_empty("HOME").map(|home| PathBuf::from(home).join(".config")))
        .map(|dir| dir.join("keyward").join("keywardd.toml"))
}

/// Loads and validates the file at `path`. A missing file is the built-in defaults only when
/// `must_exist` is false (the default path); a path given on the command line must exist.
pub(crate) fn load(path: &Path, must_exist: bool) -> Result<Config, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && !must_exist => String::new(),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    parse(&text).map_err(|message| ConfigError::Invalid {
        path: path.to_owned(),
        message,
    })
}

/// Parses and resolves a configuration; the error is one line.
pub(crate) fn parse(text: &str) -> Result<Config, String> {
    let file: FileFormat = toml::from_str(text).map_err(|err| {
        // toml's message spans several lines (with a caret diagram); keep the first line
        // and the position.
        let first = err
            .message()
            .lines()
            .next()
            .unwrap_or("invalid TOML")
            .to_owned();
        match err.span() {
            Some(span) => {
                let line = text
                    .get(..span.start)
                    .map_or(1, |before| before.matches('\n').count() + 1);
                format!("line {line}: {first}")
            }
            None => first,
        }
    })?;
    let limits = resolve_limits(&file.daemon)?;
    let daemon = DaemonConfig {
        socket: file.daemon.socket,
        socket_gid: file
            .daemon
            .socket_group
            .as_ref()
            .map(|g| resolve_gid(g, "daemon.socket_group"))
            .transpose()?,
        keystore: file.daemon.keystore,
        audit_log: file.daemon.audit_log,
        audit_payloads: file.daemon.audit_payloads,
        audit_required: file.daemon.audit_required,
        audit_timeout_ms: file.daemon.audit_timeout_ms,
        idle_lock_secs: file.daemon.idle_lock_secs,
        max_unlock_secs: file.daemon.max_unlock_secs,
        limits,
    };
    if let Some(ms) = daemon.audit_timeout_ms
        && !(1..=60_000).contains(&ms)
    {
        return Err(format!(
            "daemon.audit_timeout_ms must be between 1 and 60000 (ms), not {ms}"
        ));
    }
    if daemon.audit_required && daemon.audit_log.is_none() {
        return Err("daemon.audit_required is set but daemon.audit_log is not".into());
    }
    // Root administers by default, as it could anyway; `admin_uids = []` turns that off.
    let admin_uids = match &file.daemon.admin_uids {
        Some(list) => resolve_uids(list, "daemon.admin_uids")?,
        None => BTreeSet::from([0]),
    };
    let admin_gids = resolve_gids(&file.daemon.admin_gids, "daemon.admin_gids")?;
    let status_uids = resolve_uids(&file.daemon.status_uids, "daemon.status_uids")?;
    let status_gids = resolve_gids(&file.daemon.status_gids, "daemon.status_gids")?;
    let defaults = resolve_policy(&file.defaults, "defaults")?;
    let mut keys = BTreeMap::new();
    for (name, section) in &file.keys {
        keyward_protocol::validate_key_name(name)
            .map_err(|err| format!("[keys.{name:?}]: {err}"))?;
        keys.insert(
            name.clone(),
            resolve_policy(section, &format!("keys.{name}"))?,
        );
    }
    Ok(Config {
        daemon,
        policy: Policy {
            admin_uids,
            admin_gids,
            status_uids,
            status_gids,
            defaults,
            keys,
        },
    })
}

/// The `[daemon]` limits on connections, each within bounds that keep the daemon safe: at
/// least one of everything, a thread count the memlock budget can plan for, deadlines from
/// a second to a day (a week for the idle timeout).
fn resolve_limits(section: &DaemonSection) -> Result<Limits, String> {
    let defaults = Limits::default();
    let within =
        |field: &str, value: Option<u64>, default: u64, range: std::ops::RangeInclusive<u64>| {
            match value {
                None => Ok(default),
                Some(value) if range.contains(&value) => Ok(value),
                Some(value) => Err(format!(
                    "daemon.{field} must be from {} to {}, not {value}",
                    range.start(),
                    range.end()
                )),
            }
        };
    let max_connections = within(
        "max_connections",
        section.max_connections,
        defaults.max_connections as u64,
        1..=MAX_THREADS,
    )?;
    let max_connections_per_uid = within(
        "max_connections_per_uid",
        section.max_connections_per_uid,
        (defaults.max_connections_per_uid as u64).min(max_connections),
        1..=max_connections,
    )?;
    let admin_connections = within(
        "admin_connections",
        section.admin_connections,
        defaults.admin_connections as u64,
        1..=256,
    )?;
    let secs = |field: &str, value: Option<u64>, default: Duration, max: u64| {
        within(field, value, default.as_secs(), 1..=max).map(Duration::from_secs)
    };
    Ok(Limits {
        max_connections: max_connections as usize,
        max_connections_per_uid: max_connections_per_uid as usize,
        admin_connections: admin_connections as usize,
        hello_timeout: secs(
            "hello_timeout_secs",
            section.hello_timeout_secs,
            defaults.hello_timeout,
            3600,
        )?,
        frame_timeout: secs(
            "frame_timeout_secs",
            section.frame_timeout_secs,
            defaults.frame_timeout,
            3600,
        )?,
        idle_timeout: secs(
            "idle_timeout_secs",
            section.idle_timeout_secs,
            defaults.idle_timeout,
            7 * 86_400,
        )?,
        frame_budget: within(
            "frame_budget_bytes",
            section.frame_budget_bytes,
            defaults.frame_budget,
            MIN_FRAME_BUDGET..=MAX_FRAME_BUDGET,
        )?,
    })
}

/// Most connection threads the config may ask for: each reserves its stack against the
/// memlock limit.
const MAX_THREADS: u64 = 16_384;
/// The frame budget must hold at least one frame of the largest default size.
pub(crate) const MIN_FRAME_BUDGET: u64 = keyward_protocol::DEFAULT_MAX_FRAME as u64;
/// And at most 1 GiB: it is memory the daemon may lock.
const MAX_FRAME_BUDGET: u64 = 1 << 30;

/// The slowest rate limit: one request a day.
const MIN_RATE_PER_SEC: f64 = 1.0 / 86_400.0;
/// The fastest: far beyond what any key can sign, so effectively "no limit but a burst".
const MAX_RATE_PER_SEC: f64 = 1_000_000.0;

fn resolve_policy(section: &PolicySection, at: &str) -> Result<KeyPolicy, String> {
    let rate = match (section.rate_per_sec, section.burst) {
        (None, None) => None,
        (None, Some(_)) => return Err(format!("{at}.burst needs {at}.rate_per_sec")),
        (Some(rate), burst) => {
            // Bounded on both sides: a rate so small that the wait for the next token
            // overflows a Duration would panic the request's task.
            if !(MIN_RATE_PER_SEC..=MAX_RATE_PER_SEC).contains(&rate) {
                return Err(format!(
                    "{at}.rate_per_sec must be a positive number from 1/86400 (one a day) to 1000000, not {rate:e}"
                ));
            }
            // Default burst: one second's worth (at least one request).
            let burst = burst.unwrap_or_else(|| rate.ceil().max(1.0) as u32);
            if burst == 0 {
                return Err(format!("{at}.burst must be at least 1"));
            }
            Some(RateLimit {
                per_sec: rate,
                burst,
            })
        }
    };
    for (field, value) in [
        ("timestamp_window_ms", section.timestamp_window_ms),
        ("max_recv_window_ms", section.max_recv_window_ms),
        ("max_token_lifetime_secs", section.max_token_lifetime_secs),
    ] {
        if value == Some(0) {
            return Err(format!(
                "{at}.{field} must be positive (omit it to not check this)"
            ));
        }
    }
    if section.max_payload_bytes == Some(0) {
        return Err(format!("{at}.max_payload_bytes must be positive"));
    }
    for param in &section.deny_params {
        if param.is_empty() || param.contains(['&', '=']) {
            return Err(format!(
                "{at}.deny_params: {param:?} is not a parameter name"
            ));
        }
    }
    let format = section
        .format
        .as_deref()
        .map(str::parse::<Format>)
        .transpose()
        .map_err(|err| format!("{at}.format: {err}"))?;
    let orders = resolve_order_rules(section, at)?;
    let rules = Rules {
        orders,
        deny_params: section.deny_params.clone(),
        allow_paths: section.allow_paths.clone(),
        deny_paths: section.deny_paths.clone(),
        timestamp_window_ms: section.timestamp_window_ms,
        max_recv_window_ms: section.max_recv_window_ms,
        max_token_lifetime_secs: section.max_token_lifetime_secs,
    };
    payload::validate(format, &rules).map_err(|err| format!("{at}.{err}"))?;
    Ok(KeyPolicy {
        allow_uids: resolve_uids(&section.allow_uids, &format!("{at}.allow_uids"))?,
        allow_gids: resolve_gids(&section.allow_gids, &format!("{at}.allow_gids"))?,
        rate,
        max_payload_bytes: section.max_payload_bytes,
        format,
        rules,
    })
}

fn resolve_order_rules(section: &PolicySection, at: &str) -> Result<OrderRules, String> {
    for (field, list) in [
        ("allow_symbols", &section.allow_symbols),
        ("allow_sides", &section.allow_sides),
        ("allow_order_types", &section.allow_order_types),
    ] {
        if let Some(entry) = list
            .iter()
            .find(|entry| entry.trim().is_empty() || entry.trim() != *entry)
        {
            return Err(format!(
                "{at}.{field}: {entry:?} is not a value an exchange sends (empty or spaced)"
            ));
        }
    }
    let limit = |field: &str, text: &Option<String>| {
        text.as_deref()
            .map(|text| {
                Decimal::parse(text).map_err(|err| {
                    format!(
                        "{at}.{field}: {text:?} is not an exact decimal ({err}); write digits with at most one '.', e.g. \"1000\" or \"0.5\""
                    )
                })
            })
            .transpose()
    };
    if section.orders_per_minute == Some(0) {
        return Err(format!(
            "{at}.orders_per_minute must be positive (omit it to not limit orders)"
        ));
    }
    Ok(OrderRules {
        allow_symbols: section.allow_symbols.clone(),
        allow_sides: section.allow_sides.clone(),
        allow_order_types: section.allow_order_types.clone(),
        max_quantity: limit("max_quantity", &section.max_quantity)?,
        max_notional: limit("max_notional", &section.max_notional)?,
        orders_per_minute: section.orders_per_minute,
    })
}

fn resolve_uids(list: &[Principal], at: &str) -> Result<BTreeSet<u32>, String> {
    list.iter()
        .map(|principal| match principal {
            Principal::Id(uid) => Ok(*uid),
            Principal::Name(name) => match nix::unistd::User::from_name(name) {
                Ok(Some(user)) => Ok(user.uid.as_raw()),
                Ok(None) => Err(format!("{at}: unknown user {name:?}")),
                Err(err) => Err(format!("{at}: cannot look up user {name:?}: {err}")),
            },
        })
        .collect()
}

fn resolve_gid(principal: &Principal, at: &str) -> Result<u32, String> {
    match principal {
        Principal::Id(gid) => Ok(*gid),
        Principal::Name(name) => match nix::unistd::Group::from_name(name) {
            Ok(Some(group)) => Ok(group.gid.as_raw()),
            Ok(None) => Err(format!("{at}: unknown group {name:?}")),
            Err(err) => Err(format!("{at}: cannot look up group {name:?}: {err}")),
        },
    }
}

fn resolve_gids(list: &[Principal], at: &str) -> Result<BTreeSet<u32>, String> {
    list.iter()
        .map(|principal| resolve_gid(principal, at))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config.policy.admin_uids, BTreeSet::from([0]));
        assert!(config.policy.keys.is_empty());
        assert!(config.daemon.socket.is_none());
    }

    #[test]
    fn the_issue_example_parses_with_names_resolved() {
        let config = parse(
            r#"
            [daemon]
            socket = "/run/keyward/keyward.sock"
            socket_group = "root"
            admin_uids = [0]
            [defaults]
            allow_uids = []
            [keys."binance-main"]
            allow_uids = [1001, "root"]
            allow_gids = ["root"]
            rate_per_sec = 20
            burst = 40
            timestamp_window_ms = 5000
            deny_params = ["Address"]
            max_payload_bytes = 16384
            format = "binance"
            max_recv_window_ms = 10000
            [keys.okx]
            format = "okx"
            deny_paths = ["/api/v5/asset/"]
            allow_paths = ["/api/v5/trade/order"]
            [keys.cb]
            format = "coinbase-jwt"
            max_token_lifetime_secs = 120
            "#,
        )
        .unwrap();
        let key = &config.policy.keys["binance-main"];
        assert_eq!(key.allow_uids, BTreeSet::from([0, 1001]));
        assert_eq!(key.allow_gids, BTreeSet::from([0]));
        assert_eq!(
            key.rate,
            Some(RateLimit {
                per_sec: 20.0,
                burst: 40
            })
        );
        // Kept as written: the rules fold case themselves, beyond ASCII.
        assert_eq!(key.rules.deny_params, vec!["Address".to_owned()]);
        assert_eq!(key.format, Some(Format::Binance));
        assert_eq!(key.rules.max_recv_window_ms, Some(10000));
        let okx = &config.policy.keys["okx"];
        assert_eq!(okx.format, Some(Format::Okx));
        assert_eq!(okx.rules.deny_paths, vec!["/api/v5/asset/".to_owned()]);
        assert_eq!(
            okx.rules.allow_paths,
            vec!["/api/v5/trade/order".to_owned()]
        );
        let cb = &config.policy.keys["cb"];
        assert!(cb.rules.orders.is_empty());
        assert_eq!(cb.rules.max_token_lifetime_secs, Some(120));
        assert_eq!(config.daemon.socket_gid, Some(0));
    }

    /// The names keywardd accepts in `[table]`, from the parser's own "unknown field" error.
    fn accepted_settings(table: &str) -> BTreeSet<String> {
        let err = parse(&format!("[{table}]\nno_such_setting = 1")).unwrap_err();
        let list = err
            .split("expected one of ")
            .nth(1)
            .unwrap_or_else(|| panic!("no list of fields in {err:?}"));
        list.split(", ")
            .map(|field| field.trim().trim_matches('`').to_owned())
            .collect()
    }

    /// keywardd.toml(5) is rendered from `config_doc::SETTINGS`: it documents exactly what
    /// this parser accepts, and its examples are valid.
    #[test]
    fn the_man_page_documents_every_setting_and_its_examples_parse() {
        use crate::config_doc::{SETTINGS, Table};
        let documented = |table: Table| -> BTreeSet<String> {
            SETTINGS
                .iter()
                .filter(|setting| setting.table == table)
                .map(|setting| setting.name.to_owned())
                .collect()
        };
        assert_eq!(documented(Table::Daemon), accepted_settings("daemon"));
        assert_eq!(documented(Table::Policy), accepted_settings("defaults"));
        assert_eq!(documented(Table::Policy), accepted_settings("keys.k"));

        // Names that exist on every host stand in for the example's users and groups.
        let example = crate::config_doc::example()
            .replace("\"bot-binance\"", "\"root\"")
            .replace("\"bots\"", "\"root\"")
            .replace("\"prometheus\"", "\"root\"")
            .replace("\"keyward\"", "\"root\"");
        let config = parse(&example).unwrap_or_else(|err| panic!("{err}\n{example}"));
        let key = &config.policy.keys["binance-main"];
        assert_eq!(key.allow_uids, BTreeSet::from([0, 1001]));
        assert_eq!(key.rules.timestamp_window_ms, Some(5000));
        assert_eq!(config.daemon.socket_gid, Some(0));

        // The shipped example file mentions every setting too.
        let shipped = include_str!("../../systemd/keywardd.toml");
        for setting in SETTINGS {
            assert!(
                shipped.contains(&format!("\n{} = ", setting.name))
                    || shipped.contains(&format!("\n# {} = ", setting.name)),
                "systemd/keywardd.toml does not mention {}",
                setting.name
            );
        }
        let page = crate::config_doc::man_page("0.0.0");
        for setting in SETTINGS {
            assert!(
                page.contains(&setting.name.replace('_', "\\_")) || page.contains(setting.name)
            );
        }
    }

    #[test]
    fn limits_default_to_the_documented_values_and_parse() {
        assert_eq!(parse("").unwrap().daemon.limits, Limits::default());
        let limits = parse(
            "[daemon]\nmax_connections = 8\nmax_connections_per_uid = 2\nadmin_connections = 2\n\
             hello_timeout_secs = 1\nframe_timeout_secs = 2\nidle_timeout_secs = 3\n\
             frame_budget_bytes = 100000",
        )
        .unwrap()
        .daemon
        .limits;
        assert_eq!(
            limits,
            Limits {
                max_connections: 8,
                max_connections_per_uid: 2,
                admin_connections: 2,
                hello_timeout: Duration::from_secs(1),
                frame_timeout: Duration::from_secs(2),
                idle_timeout: Duration::from_secs(3),
                frame_budget: 100_000,
            }
        );
        // A small overall cap lowers the default per-uid cap with it.
        let small = parse("[daemon]\nmax_connections = 8")
            .unwrap()
            .daemon
            .limits;
        assert_eq!(small.max_connections_per_uid, 8);
    }

    #[test]
    fn order_rules_parse_as_exact_decimals() {
        let config = parse(
            r#"
            [keys.bot]
            format = "binance"
            allow_symbols = ["BTCUSDT", "ETHUSDT"]
            allow_sides = ["BUY"]
            allow_order_types = ["LIMIT", "LIMIT_MAKER"]
            max_quantity = "0.50"
            max_notional = "1000"
            orders_per_minute = 30
            "#,
        )
        .unwrap();
        let orders = &config.policy.keys["bot"].rules.orders;
        assert_eq!(orders.allow_symbols, ["BTCUSDT", "ETHUSDT"]);
        assert_eq!(orders.max_quantity, Some(Decimal::parse("0.5").unwrap()));
        assert_eq!(orders.orders_per_minute, Some(30));
        assert_eq!(
            config.policy.order_rules_report(),
            [
                "key \"bot\": allow_symbols=BTCUSDT,ETHUSDT allow_sides=BUY allow_order_types=LIMIT,LIMIT_MAKER max_quantity=0.5 max_notional=1000 orders_per_minute=30"
            ]
        );
    }

    #[test]
    fn each_mistake_is_one_clear_line() {
        let cases = [
            ("[daemon]\nsocket_path = 1", "unknown field `socket_path`"),
            (
                "[keys.k]\nrate_per_sec = -1",
                "keys.k.rate_per_sec must be a positive number from",
            ),
            // These once passed the check and panicked at the second signature.
            (
                "[keys.k]\nrate_per_sec = 1e-300",
                "keys.k.rate_per_sec must be a positive number from",
            ),
            (
                "[keys.k]\nrate_per_sec = 5e-324",
                "keys.k.rate_per_sec must be a positive number from",
            ),
            ("[keys.k]\nrate_per_sec = 1e300", "not 1e300"),
            ("[keys.k]\nrate_per_sec = 0", "not 0e0"),
            ("[keys.k]\nrate_per_sec = nan", "not NaN"),
            (
                "[keys.k]\nallow_uids = [\"no-such-user-here\"]",
                "unknown user \"no-such-user-here\"",
            ),
            (
                "[keys.k]\nallow_gids = [\"no-such-group-here\"]",
                "unknown group \"no-such-group-here\"",
            ),
            (
                "[keys.k]\nburst = 3",
                "keys.k.burst needs keys.k.rate_per_sec",
            ),
            ("[keys.\"../x\"]\n", "invalid key name"),
            ("[daemon]\naudit_required = true", "audit_log is not"),
            ("[daemon]\naudit_timeout_ms = 0", "between 1 and 60000"),
            ("[daemon]\naudit_timeout_ms = 60001", "between 1 and 60000"),
            (
                "[daemon]\nmax_connections = 0",
                "daemon.max_connections must be from 1 to 16384, not 0",
            ),
            (
                "[daemon]\nmax_connections = 8\nmax_connections_per_uid = 9",
                "daemon.max_connections_per_uid must be from 1 to 8, not 9",
            ),
            (
                "[daemon]\nidle_timeout_secs = 0",
                "daemon.idle_timeout_secs must be from 1",
            ),
            (
                "[daemon]\nframe_budget_bytes = 1000",
                "daemon.frame_budget_bytes must be from 65536",
            ),
            ("[daemon\n", "line 1"),
            ("[daemon]\nsocket = \"/x\"\nsocket_groupp = 1", "line 3"),
            (
                "[keys.k]\nallow_uids = [1001, -1]",
                "integer `-1`, expected a uid/gid",
            ),
            (
                "[keys.k]\nformat = \"binanse\"",
                "keys.k.format: unknown payload format \"binanse\"; expected one of binance,",
            ),
            (
                "[keys.k]\nformat = \"raw\"\ndeny_params = [\"address\"]",
                "keys.k.format: raw has no parse",
            ),
            (
                "[keys.k]\nformat = \"kraken\"\ndeny_params = [\"address\"]",
                "keys.k.deny_params: cannot be judged on kraken payloads",
            ),
            (
                "[defaults]\nformat = \"binance\"\ndeny_paths = [\"/sapi/\"]",
                "defaults.deny_paths: cannot be judged on binance payloads",
            ),
            (
                "[keys.k]\nformat = \"okx\"\nmax_recv_window_ms = 5000",
                "keys.k.max_recv_window_ms: cannot be judged on okx payloads",
            ),
            (
                "[keys.k]\nformat = \"okx\"\ndeny_paths = [\"api/v5/asset\"]",
                "keys.k.deny_paths: \"api/v5/asset\" must start with '/'",
            ),
            (
                "[keys.k]\ndeny_paths = [\"/x\"]\nmax_recv_window_ms = 5000",
                "keys.k.format: no payload format can judge all of this section's rules",
            ),
            (
                "[keys.k]\nformat = \"bybit\"\nmax_recv_window_ms = 0",
                "keys.k.max_recv_window_ms must be positive",
            ),
            // Order rules (issue 17): exact decimal strings, and only where the order shows.
            (
                "[keys.k]\nformat = \"binance\"\nmax_notional = 1000.5",
                "invalid type: floating point `1000.5`, expected a string",
            ),
            (
                "[keys.k]\nformat = \"binance\"\nmax_notional = \"1e3\"",
                "keys.k.max_notional: \"1e3\" is not an exact decimal (an exponent is not allowed)",
            ),
            (
                "[keys.k]\nformat = \"okx\"\nmax_quantity = \"-1\"",
                "keys.k.max_quantity: \"-1\" is not an exact decimal (a sign is not allowed)",
            ),
            (
                "[keys.k]\nformat = \"okx\"\nmax_quantity = \"01\"",
                "a leading zero is not allowed",
            ),
            (
                "[keys.k]\nformat = \"okx\"\norders_per_minute = 0",
                "keys.k.orders_per_minute must be positive",
            ),
            (
                "[keys.k]\nformat = \"okx\"\nallow_symbols = [\" BTC-USDT\"]",
                "keys.k.allow_symbols: \" BTC-USDT\" is not a value an exchange sends",
            ),
            (
                "[keys.k]\nformat = \"kraken\"\nallow_symbols = [\"XBTUSD\"]",
                "keys.k.allow_symbols: order rules cannot be judged on kraken payloads: the order's fields are hashed",
            ),
            (
                "[keys.k]\nformat = \"coinbase-jwt\"\nmax_notional = \"100\"",
                "keys.k.max_notional: order rules cannot be judged on coinbase-jwt payloads: the JWT signs the path only",
            ),
            (
                "[keys.k]\nallow_paths = [\"/x\"]\nmax_recv_window_ms = 1\nmax_notional = \"1\"",
                "keys.k.format: no payload format can judge",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{text:?} gave {err:?}");
            assert!(!err.contains('\n'), "{err:?} spans lines");
        }
    }
}
