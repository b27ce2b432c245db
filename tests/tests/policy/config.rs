//! 6. Config validation at start.

use super::*;

/// Runs `keywardd --ephemeral --socket <tmp>/run/keyward.sock --config <tmp>/bad.toml` with
/// `text` in the config file; asserts it exits 1 within 10 s, logged exactly one error, and
/// created no socket (nor its directory). Returns that error line and the config path.
fn start_fails(text: Option<&str>) -> (String, String) {
    let dir = tempfile::Builder::new()
        .prefix("keyward-badconfig-")
        .tempdir()
        .unwrap();
    let config = dir.path().join("bad.toml");
    if let Some(text) = text {
        fs::write(&config, text).unwrap();
    }
    let socket = dir.path().join("run").join("keyward.sock");
    let mut child = Command::new(keywardd_bin())
        .arg("--ephemeral")
        .arg("--socket")
        .arg(&socket)
        .arg("--config")
        .arg(&config)
        .env("HOME", dir.path())
        .env("KEYWARD_LOG", "info")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "keywardd started with a bad config:\n{}",
                text.unwrap_or("(none)")
            );
        }
        sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "{text:?}: {status}; stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !socket.parent().unwrap().exists(),
        "a socket directory was created for a daemon that cannot start"
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "one error line, not:\n{stderr}");
    let last = stderr.lines().last().unwrap();
    assert_eq!(last, errors[0], "the error is the last line:\n{stderr}");
    (last.to_owned(), config.to_str().unwrap().to_owned())
}

/// What keywardd says about the config `text`, after "PATH: " (which must be there).
fn config_error(text: &str) -> String {
    let (line, path) = start_fails(Some(text));
    let (_, message) = line
        .split_once(&format!("{path}: "))
        .unwrap_or_else(|| panic!("the error does not name the file {path}: {line}"));
    message.to_owned()
}

#[test]
fn a_bad_config_stops_keywardd_at_start_with_one_line_naming_the_mistake() {
    let cases: &[(&str, &[&str])] = &[
        // Unknown keys (their line numbers: the next test).
        (
            "[daemon]\nsocket_group = 4242\nsocket_groupp = 4242\n",
            &["unknown field `socket_groupp`"],
        ),
        (
            "[defaults]\nallow_uids = []\n\n[keys.\"binance-main\"]\nallow_uids = [1001]\nallow_params = [\"symbol\"]\n",
            &["unknown field `allow_params`"],
        ),
        ("[policy]\nallow_uids = []\n", &["unknown field `policy`"]),
        // Bad values.
        (
            "[keys.k]\nrate_per_sec = -5\n",
            &["keys.k.rate_per_sec must be a positive number"],
        ),
        (
            "[keys.k]\nrate_per_sec = 5\nburst = 0\n",
            &["keys.k.burst must be at least 1"],
        ),
        (
            "[keys.k]\nburst = 3\n",
            &["keys.k.burst needs keys.k.rate_per_sec"],
        ),
        (
            "[keys.k]\ntimestamp_window_ms = \"5s\"\n",
            &["line 2", "invalid type: string \"5s\""],
        ),
        (
            "[keys.k]\nmax_payload_bytes = 0\n",
            &["keys.k.max_payload_bytes must be positive"],
        ),
        (
            "[keys.k]\ndeny_params = [\"address=x\"]\n",
            &["keys.k.deny_params", "is not a parameter name"],
        ),
        // Payload formats and rules (docs/POLICY.md): fail closed at load.
        (
            "[keys.k]\nformat = \"binanse\"\n",
            &[
                "keys.k.format: unknown payload format \"binanse\"; expected one of binance, bybit, okx, kucoin, bitget, kraken, coinbase-jwt, raw",
            ],
        ),
        (
            "[keys.k]\nformat = \"raw\"\ntimestamp_window_ms = 5000\n",
            &["keys.k.format: raw has no parse"],
        ),
        (
            "[keys.k]\nformat = \"kraken\"\ndeny_params = [\"address\"]\n",
            &["keys.k.deny_params: cannot be judged on kraken payloads"],
        ),
        (
            "[defaults]\nformat = \"bybit\"\nallow_paths = [\"/v5/order/\"]\n",
            &["defaults.allow_paths: cannot be judged on bybit payloads"],
        ),
        (
            "[keys.k]\nformat = \"kucoin\"\nmax_recv_window_ms = 5000\n",
            &["keys.k.max_recv_window_ms: cannot be judged on kucoin payloads"],
        ),
        (
            "[keys.k]\nformat = \"okx\"\nmax_token_lifetime_secs = 120\n",
            &["keys.k.max_token_lifetime_secs: cannot be judged on okx payloads"],
        ),
        (
            "[keys.k]\nformat = \"kraken\"\ndeny_paths = [\"0/private/Withdraw\"]\n",
            &["keys.k.deny_paths: \"0/private/Withdraw\" must start with '/'"],
        ),
        (
            "[keys.k]\ndeny_paths = [\"/x\"]\nmax_recv_window_ms = 5000\n",
            &["keys.k.format: no payload format can judge all of this section's rules"],
        ),
        ("[keys.\"../escape\"]\n", &["invalid key name"]),
        ("[daemon]\naudit_required = true\n", &["audit_log is not"]),
        ("[keys.k\nallow_uids = []\n", &["line 1"]),
        // Unknown user and group names.
        (
            "[keys.k]\nallow_uids = [\"no-such-user-kw\"]\n",
            &["keys.k.allow_uids: unknown user \"no-such-user-kw\""],
        ),
        (
            "[daemon]\nadmin_uids = [\"no-such-user-kw\"]\n",
            &["daemon.admin_uids: unknown user \"no-such-user-kw\""],
        ),
        (
            "[keys.k]\nallow_gids = [\"no-such-group-kw\"]\n",
            &["keys.k.allow_gids: unknown group \"no-such-group-kw\""],
        ),
        (
            "[daemon]\nsocket_group = \"no-such-group-kw\"\n",
            &["daemon.socket_group: unknown group \"no-such-group-kw\""],
        ),
    ];
    for (text, fragments) in cases {
        let message = config_error(text);
        for fragment in *fragments {
            assert!(
                message.contains(fragment),
                "{text:?}: expected {fragment:?} in: {message}"
            );
        }
    }
    // A config file named on the command line must exist.
    let (line, path) = start_fails(None);
    assert!(line.contains(&format!("cannot read {path}")), "{line}");
}

/// The line number in a config error is the mistake's line, including the commonest case:
/// an unknown key at the start of its line.
#[test]
fn a_config_error_gives_the_line_of_the_mistake() {
    for (text, line) in [
        ("[daemon]\nsocket_group = 4242\nsocket_groupp = 4242\n", 3),
        (
            "[defaults]\nallow_uids = []\n\n[keys.\"binance-main\"]\nallow_uids = [1001]\nallow_params = [\"symbol\"]\n",
            6,
        ),
        ("[keys.k]\n  allow_uid = [1]\n", 2),
        ("[keys.k]\ntimestamp_window_ms = \"5s\"\n", 2),
        ("\n\n[keys.k]\nrate_per_sec = 5\n\n[keys.j]\nrate = 1\n", 7),
    ] {
        let message = config_error(text);
        assert!(
            message.starts_with(&format!("line {line}: ")),
            "{text:?}: expected line {line}: {message}"
        );
    }
}

/// A uid that is not a number or a name the config can use is named as such, with its line.
#[test]
fn a_negative_uid_in_the_config_is_named_clearly() {
    let message = config_error("[keys.k]\nallow_uids = [1001, -1]\n");
    assert!(
        message.starts_with("line 2: ") && message.contains("-1"),
        "{message}"
    );
}

#[test]
fn a_peer_refused_at_connect_leaves_one_deny_record_in_the_audit_log() {
    if !can_switch_uid("a_peer_refused_at_connect_leaves_one_deny_record_in_the_audit_log") {
        return;
    }
    let config = ConfigFile::new("");
    let audit_path = config.dir().join("audit.jsonl");
    // No key and no admin right for nobody: it is refused before anything it sends is read.
    config.set(&format!(
        "[daemon]\naudit_log = \"{}\"\n",
        audit_path.display()
    ));
    let daemon = start(&config);
    daemon.open_permissions_to_everyone();
    let keyward = keyward_for_everyone(&daemon);
    let out = keyward_as(NOBODY, &keyward, &daemon, &["list"], None);
    assert!(
        out.error_line(4)
            .contains("uid 65534 may not use this keywardd")
    );
    let text = audit_log(&audit_path, 1);
    let records: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "{text}");
    let record = &records[0];
    assert_eq!(record["request"], "connect");
    assert_eq!(record["decision"], "deny");
    assert_eq!(record["uid"], 65534);
    assert!(
        record["reason"]
            .as_str()
            .unwrap()
            .contains("may not use this keywardd")
    );
}

/// Order rules (issue 17) where the signed string hides the order stop the daemon, saying why.
#[test]
fn order_rules_on_kraken_or_coinbase_stop_the_daemon_with_the_reason() {
    assert_eq!(
        config_error("[keys.k]\nformat = \"kraken\"\nmax_notional = \"100\"\n"),
        "keys.k.max_notional: order rules cannot be judged on kraken payloads: the order's \
         fields are hashed, only the path is signed; see docs/POLICY.md"
    );
    assert_eq!(
        config_error("[keys.k]\nformat = \"coinbase-jwt\"\nallow_symbols = [\"BTC-USD\"]\n"),
        "keys.k.allow_symbols: order rules cannot be judged on coinbase-jwt payloads: the JWT \
         signs the path only, the order body is not signed; see docs/POLICY.md"
    );
    assert!(
        config_error("[keys.k]\nformat = \"binance\"\nmax_quantity = 0.5\n")
            .contains("expected a string"),
    );
}
