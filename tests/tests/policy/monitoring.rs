//! Monitoring and operations (issue 19): the read-only status right, `keyward stats` in JSON
//! and Prometheus text, `keyward reload`, and an admin's view of the order rules.

use std::collections::{BTreeMap, BTreeSet};

use keyward_tests::keystore::KeystoreDir;

use super::*;

const PASSPHRASE: &[u8] = b"monitoring keystore passphrase, long enough";
const ORDER: &[u8] =
    b"symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=10&timestamp=1700000000000";
const WITHDRAWAL: &[u8] = b"coin=BTC&address=1BoatSLRHtKNngkdXEeobR76b53LETtpyT&amount=1";

/// Parses Prometheus' text exposition format as strictly as node_exporter's textfile
/// collector needs: each family has one `# HELP` and one `# TYPE` (counter or gauge) before
/// its samples and appears once; names match `[a-zA-Z_:][a-zA-Z0-9_:]*` and start with
/// `keyward_`; counters end in `_total`; labels are `name="value"` with `\\`, `\"` and `\n`
/// escapes; values are numbers. Returns each sample, `name{labels}` → value.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let valid_name = |name: &str| {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut samples = BTreeMap::new();
    let mut helped = BTreeSet::new();
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    assert!(text.ends_with('\n'), "the text must end with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has a text");
            assert!(valid_name(name) && !help.is_empty(), "{line}");
            assert!(helped.insert(name.to_owned()), "second HELP for {name}");
            current = Some(name.to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a kind");
            assert_eq!(
                current.as_deref(),
                Some(name),
                "TYPE must follow its HELP: {line}"
            );
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            assert!(
                typed.insert(name.to_owned(), kind.to_owned()).is_none(),
                "second TYPE for {name}"
            );
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
        } else {
            assert!(
                !line.starts_with('#') && !line.is_empty(),
                "stray line {line:?}"
            );
            let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
            let name = series.split('{').next().unwrap();
            assert!(valid_name(name) && name.starts_with("keyward_"), "{line}");
            assert_eq!(
                current.as_deref(),
                Some(name),
                "a sample outside its family: {line}"
            );
            assert!(typed.contains_key(name), "a sample before its TYPE: {line}");
            if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
                let inner = labels
                    .strip_prefix('{')
                    .and_then(|l| l.strip_suffix('}'))
                    .unwrap_or_else(|| panic!("{line}"));
                let mut rest = inner;
                while !rest.is_empty() {
                    let (label, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
                    assert!(valid_name(label), "{line}");
                    let mut end = None;
                    let mut escaped = false;
                    for (i, c) in after.char_indices() {
                        match (escaped, c) {
                            (true, '\\' | '"' | 'n') => escaped = false,
                            (true, _) => panic!("bad escape in {line}"),
                            (false, '\\') => escaped = true,
                            (false, '"') => {
                                end = Some(i);
                                break;
                            }
                            (false, _) => {}
                        }
                    }
                    let end = end.unwrap_or_else(|| panic!("unterminated label in {line}"));
                    rest = after[end + 1..]
                        .strip_prefix(',')
                        .unwrap_or(&after[end + 1..]);
                }
            }
            assert!(
                samples.insert(series.to_owned(), value).is_none(),
                "a series twice: {line}"
            );
        }
    }
    assert_eq!(helped.len(), typed.len(), "a HELP without TYPE");
    samples
}

#[test]
fn the_prometheus_parser_refuses_what_the_collector_would() {
    let good = "# HELP keyward_x_total X.\n# TYPE keyward_x_total counter\nkeyward_x_total{a=\"q\\\"\"} 1\n";
    assert_eq!(parse_prometheus(good)["keyward_x_total{a=\"q\\\"\"}"], 1.0);
    for bad in [
        "keyward_x_total 1\n",                                          // no HELP/TYPE
        "# HELP keyward_x X.\n# TYPE keyward_x counter\nkeyward_x 1\n", // counter w/o _total
        "# HELP keyward_x X.\n# TYPE keyward_x gauge\nkeyward_x one\n", // not a number
        "# HELP keyward_x X.\n# TYPE keyward_x gauge\nkeyward_x{a=\"b} 1\n", // open label
        "# HELP keyward_x X.\n# TYPE keyward_x gauge\nkeyward_x 1\nkeyward_x 2\n", // twice
    ] {
        let outcome = std::panic::catch_unwind(|| parse_prometheus(bad));
        assert!(outcome.is_err(), "accepted {bad:?}");
    }
}

#[test]
fn stats_count_each_outcome_and_reload_reports_an_invalid_config() {
    let store = KeystoreDir::new();
    let rules = "[keys.rl]\nrate_per_sec = 0.1\nburst = 1\n\n\
         [keys.pol]\nformat = \"binance\"\ndeny_params = [\"address\"]\n\n\
         [keys.ord]\nformat = \"binance\"\nallow_symbols = [\"BTCUSDT\"]\nallow_sides = [\"BUY\"]\n\
         max_notional = \"1000\"\norders_per_minute = 30\n";
    let config = ConfigFile::new(rules);
    let daemon = Daemon::start_with_keystore(store.path(), &["--config", config.path()]);
    daemon
        .keyward_with_passphrases(&["init"], &[PASSPHRASE])
        .success();
    for name in ["rl", "pol", "ord"] {
        daemon.generate(name, "ed25519");
    }

    daemon.sign("rl", ORDER, &[]);
    daemon.keyward_stdin(["sign", "rl"], ORDER).error_line(6);
    daemon
        .keyward_stdin(["sign", "pol"], WITHDRAWAL)
        .error_line(4);
    daemon.sign("pol", ORDER, &[]);
    let batch = daemon.client().sign_batch("pol", &[ORDER, ORDER, ORDER]);
    assert_eq!(batch.unwrap().len(), 3);
    let beyond = daemon
        .client()
        .sign_batch("rl", &[ORDER, ORDER])
        .unwrap_err();
    assert_eq!(beyond.code(), Some(ErrorCode::BatchExceedsBurst));
    assert_eq!(beyond.retry_after(), None, "waiting cannot help");
    daemon.keyward(["lock"]).success();
    daemon.keyward_stdin(["sign", "pol"], ORDER).error_line(5);
    daemon
        .keyward_with_passphrases(&["unlock"], &[PASSPHRASE])
        .success();

    // A good reload, then a broken file: exit 8 with the parser's line, old policy kept.
    let out = daemon.keyward(["reload"]);
    out.success();
    assert_eq!(out.stdout_text(), "reloaded: the new policy is in force\n");
    config.set(&format!("{rules}\n[keys.pol]\nburst = 3\n"));
    let out = daemon.keyward(["reload"]);
    let line = out.error_line(8);
    assert!(
        line.contains("keywardd.toml") && line.contains("duplicate"),
        "{line}"
    );
    daemon
        .keyward_stdin(["sign", "pol"], WITHDRAWAL)
        .error_line(4);
    config.set(rules);

    // The admin's status shows the order rules of the key that has them.
    let status = daemon.keyward(["status"]);
    status.success();
    let text = status.stdout_text();
    assert!(
        text.contains(
            "\norder rules of ord: allow_symbols=BTCUSDT allow_sides=BUY allow_order_types=any \
             max_quantity=none max_notional=1000 orders_per_minute=30\n"
        ),
        "{text}"
    );
    assert!(!text.contains("order rules of rl"), "{text}");
    keyward_tests::without_daemon_line(text);
    let json: Value = serde_json::from_slice(&daemon.keyward(["status", "--json"]).stdout).unwrap();
    let rules: Vec<&str> = json["order_rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["ord", "pol", "rl"], "every key, sorted: {json}");
    assert_eq!(json["order_rules"][0]["max_notional"], "1000");
    assert_eq!(json["daemon"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["daemon"]["protocol"], 3);

    let out = daemon.keyward(["stats"]);
    out.success();
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    let signed: Vec<(&str, &str, u64)> = stats["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap(),
                c["scheme"].as_str().unwrap(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        signed,
        [("pol", "ed25519", 4), ("rl", "ed25519", 1)],
        "{stats}"
    );
    assert_eq!(stats["denials"]["policy-violation"], 2, "{stats}");
    assert_eq!(stats["denials"]["batch-exceeds-burst"], 1, "{stats}");
    for (counter, value) in [
        ("rate_limited", 1),
        ("locked_refusals", 1),
        ("unlocks", 1),
        ("reloads", 1),
        ("reload_failures", 1),
        ("audit_failures", 0),
        ("audit_drops", 0),
        ("connections_refused", 0),
        ("connections_open", 1),
    ] {
        assert_eq!(stats[counter], value, "{counter}: {stats}");
    }
    assert!(
        stats["connections_accepted"].as_u64().unwrap() >= 15,
        "{stats}"
    );

    let out = daemon.keyward(["stats", "--prometheus"]);
    out.success();
    let metrics = parse_prometheus(out.stdout_text());
    for (series, value) in [
        (
            "keyward_signatures_total{key=\"pol\",scheme=\"ed25519\"}",
            4.0,
        ),
        ("keyward_denials_total{reason=\"policy-violation\"}", 2.0),
        ("keyward_rate_limited_total", 1.0),
        ("keyward_locked_refusals_total", 1.0),
        ("keyward_reload_failures_total", 1.0),
        ("keyward_keystore_state{state=\"unlocked\"}", 1.0),
        ("keyward_keystore_state{state=\"locked\"}", 0.0),
        ("keyward_keys", 3.0),
        ("keyward_connections_open", 1.0),
    ] {
        assert_eq!(metrics.get(series), Some(&value), "{series}: {metrics:?}");
    }
    let build = format!(
        "keyward_build_info{{version=\"{}\",commit=\"",
        env!("CARGO_PKG_VERSION")
    );
    assert!(
        metrics.keys().any(|series| series.starts_with(&build)),
        "{metrics:?}"
    );
}

#[test]
fn a_status_uid_may_read_status_and_stats_and_nothing_else() {
    if !can_switch_uid("a_status_uid_may_read_status_and_stats_and_nothing_else") {
        return;
    }
    let with_right = "[daemon]\nstatus_uids = [65534]\n\n[keys.k]\nallow_uids = [4242]\n";
    let config = ConfigFile::new(with_right);
    let daemon = start(&config);
    daemon.generate("k", "ed25519");
    daemon.generate("other", "ed25519");
    let keyward = keyward_for_everyone(&daemon);
    daemon.open_permissions_to_everyone();
    let monitor = |args: &[&str]| keyward_as(NOBODY, &keyward, &daemon, args, None);

    // Status: every key is counted (a monitor watches the whole daemon), no order rules.
    let status = monitor(&["status"]);
    status.success();
    assert!(
        status
            .stdout_text()
            .starts_with("state: ephemeral\nkeys: 2\n"),
        "{status:#?}"
    );
    let json: Value = serde_json::from_slice(&monitor(&["status", "--json"]).stdout).unwrap();
    assert_eq!(json["order_rules"], Value::Null, "{json}");
    let stats = monitor(&["stats"]);
    stats.success();
    serde_json::from_slice::<Value>(&stats.stdout).unwrap();
    parse_prometheus(monitor(&["stats", "--prometheus"]).success().stdout_text());

    // Nothing else: not a key, not an admin request.
    for args in [
        &["lock"][..],
        &["reload"],
        &["remove", "k"],
        &["pubkey", "k"],
    ] {
        let out = monitor(args);
        assert!(out.error_line(4).contains("may not"), "{args:?}: {out:#?}");
    }
    let out = keyward_as(NOBODY, &keyward, &daemon, &["sign", "k"], Some(ORDER));
    assert!(
        out.error_line(4).contains("may not use key \"k\""),
        "{out:#?}"
    );
    let mut held = connect_as(NOBODY, &daemon).unwrap();
    held.client.stats().unwrap();
    refused_with(held.client.reload(), ErrorCode::Denied);
    refused_with(held.client.lock(), ErrorCode::Denied);
    refused_with(held.client.sign("k", ORDER), ErrorCode::Denied);
    let list = monitor(&["list", "--json"]);
    assert!(
        listed_names(&list).is_empty(),
        "a monitor sees no key: {list:#?}"
    );

    // A bot that may use a key, without the status right, may not read the counters.
    let bot = User {
        uid: 4242,
        gid: 4242,
        groups: &[],
    };
    let out = keyward_as(bot, &keyward, &daemon, &["stats"], None);
    assert!(out.error_line(4).contains("status right"), "{out:#?}");

    // Take the right away: the monitor may no longer connect at all.
    config.set("[keys.k]\nallow_uids = [4242]\n");
    daemon.keyward(["reload"]).success();
    let out = monitor(&["status"]);
    assert!(
        out.error_line(4).contains("may not use this keywardd"),
        "{out:#?}"
    );
    let stats: Value = serde_json::from_slice(&daemon.keyward(["stats"]).stdout).unwrap();
    assert!(
        stats["connections_refused"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert!(stats["denials"]["denied"].as_u64().unwrap() >= 8, "{stats}");
    drop(held);
}
