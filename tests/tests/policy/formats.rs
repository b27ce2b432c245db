//! 7. Payload formats (issue 12).
//!
//! Each key's payloads are judged on a strict parse in its exchange's format. Each exchange's
//! documented example signs (and verifies, by the exchange's published signature where there
//! is one, and by Python's `cryptography`), and the review's bypasses are refused with
//! `PolicyViolation` and the reason, also in the audit log.

use super::*;

/// The secrets the exchanges' documentation signs its examples with.
const BINANCE_SECRET: &[u8] = b"NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const KUCOIN_SECRET: &[u8] = b"f03a5284-5c39-4aaa-9b20-dea10bdcf8e3";
const KRAKEN_SECRET_BASE64: &[u8] =
    b"kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";
/// Bybit's documented API key id, which Bybit payloads sign and the daemon checks.
const BYBIT_API_KEY: &str = "XXXXXXXXXX";
const OTHER_SECRET: &[u8] = b"formats-test-hmac-secret-0123456789";

/// The rules a careful operator sets per exchange (docs/POLICY.md). `-doc` keys have no
/// timestamp rule, so the documentation's old examples sign verbatim. `bitget` has no format
/// in its section: the one given at import (`--format bitget`) applies.
const CONFIG: &str = r#"
[keys.binance]
format = "binance"
timestamp_window_ms = 5000
max_recv_window_ms = 10000
deny_params = ["address"]

[keys.binance-doc]
format = "binance"
max_recv_window_ms = 10000
deny_params = ["address"]

[keys.bybit]
format = "bybit"
timestamp_window_ms = 5000
max_recv_window_ms = 10000
deny_params = ["address"]

[keys.okx]
format = "okx"
timestamp_window_ms = 5000
deny_params = ["address"]
deny_paths = ["/api/v5/asset/withdrawal", "/api/v5/asset/transfer"]

[keys.kucoin]
format = "kucoin"
timestamp_window_ms = 5000
deny_params = ["address"]
deny_paths = ["/api/v1/withdrawals", "/api/v3/withdrawals", "/api/v2/accounts/inner-transfer"]

[keys.kucoin-doc]
format = "kucoin"
deny_params = ["address"]
deny_paths = ["/api/v1/withdrawals", "/api/v3/withdrawals", "/api/v2/accounts/inner-transfer"]

[keys.bitget]
timestamp_window_ms = 5000
deny_params = ["address"]
deny_paths = ["/api/v2/spot/wallet/withdrawal", "/api/v2/spot/wallet/transfer"]

[keys.kraken]
format = "kraken"
deny_paths = ["/0/private/Withdraw", "/0/private/WalletTransfer"]

[keys.coinbase]
format = "coinbase-jwt"
allow_paths = ["/api/v3/brokerage/"]
deny_paths = ["/api/v3/brokerage/portfolios/move_funds"]
timestamp_window_ms = 5000
max_token_lifetime_secs = 120
"#;

/// A daemon with the keys of [`CONFIG`] and an audit log; returns it with the key files for
/// verify.py: (the secret file of the HMAC keys, the Kraken secret, the Coinbase public key).
struct Formats {
    daemon: Daemon,
    config: ConfigFile,
    hmac: HashMap<&'static str, PathBuf>,
    coinbase_public: PathBuf,
}

fn formats_daemon() -> Formats {
    let config = ConfigFile::new("");
    let audit = config.dir().join("audit.jsonl");
    config.set(&format!(
        "[daemon]\naudit_log = \"{}\"\n{CONFIG}",
        audit.display()
    ));
    let daemon = start(&config);
    let mut hmac = HashMap::new();
    let binance = daemon.write("binance.secret", BINANCE_SECRET);
    let kucoin = daemon.write("kucoin.secret", KUCOIN_SECRET);
    let other = daemon.write("other.secret", OTHER_SECRET);
    let kraken_b64 = daemon.write("kraken.secret.b64", KRAKEN_SECRET_BASE64);
    let kraken_raw = openssl(&["base64", "-d", "-A", "-in", kraken_b64.to_str().unwrap()]);
    let kraken = daemon.write("kraken.secret", &kraken_raw);
    let sha256 = ["--scheme", "hmac-sha256"];
    for (name, secret, extra) in [
        ("binance", &binance, &[][..]),
        ("binance-doc", &binance, &[]),
        ("bybit", &other, &["--api-key", BYBIT_API_KEY][..]),
        ("okx", &other, &[]),
        ("kucoin", &kucoin, &[]),
        ("kucoin-doc", &kucoin, &[]),
        ("bitget", &other, &["--format", "bitget"]),
    ] {
        daemon.import(name, secret, &[&sha256[..], extra].concat());
        hmac.insert(name, secret.clone());
    }
    daemon.import(
        "kraken",
        &kraken_b64,
        &["--scheme", "hmac-sha512", "--secret-format", "base64"],
    );
    hmac.insert("kraken", kraken);
    let coinbase_public = daemon.generate("coinbase", "ecdsa-p256");
    Formats {
        daemon,
        config,
        hmac,
        coinbase_public,
    }
}

/// A payload from the exchange's documentation, as the corpus in daemon/testdata holds it.
fn doc_bytes(format: &str, file: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../daemon/testdata/payload")
        .join(format)
        .join(file);
    fs::read(&path).unwrap()
}

fn doc_example(format: &str, file: &str) -> String {
    String::from_utf8(doc_bytes(format, file)).unwrap()
}

/// `text` with its leading `old` timestamp replaced by `new`.
fn restamped(text: &str, old: &str, new: &str) -> String {
    let rest = text
        .strip_prefix(old)
        .unwrap_or_else(|| panic!("{text:?} does not start with {old:?}"));
    format!("{new}{rest}")
}

/// ms since the epoch as OKX writes it: `2020-12-08T09:08:57.715Z`.
fn iso_ms(ms: u64) -> String {
    let (secs, millis) = (ms / 1000, ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (all positive here).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Unpadded base64url (RFC 4648 section 5), as a JWT spells its parts.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// A Coinbase CDP JWT signing input as Coinbase's "API key authentication" builds it.
fn coinbase_jwt(uri: &str, nbf: u64, exp: u64) -> String {
    let key = "organizations/11111111-2222-3333-4444-555555555555/apiKeys/66666666-7777-8888-9999-000000000000";
    let header =
        format!(r#"{{"alg":"ES256","kid":"{key}","nonce":"3d8a9c1f0b5e4a7d","typ":"JWT"}}"#);
    let claims = format!(r#"{{"sub":"{key}","iss":"cdp","nbf":{nbf},"exp":{exp},"uri":"{uri}"}}"#);
    format!(
        "{}.{}",
        base64url(header.as_bytes()),
        base64url(claims.as_bytes())
    )
}

#[test]
fn each_format_signs_its_exchanges_documented_example_and_the_signature_verifies() {
    let formats = formats_daemon();
    let daemon = &formats.daemon;
    let printed = |key: &str, payload: &[u8], encoding: &str| -> String {
        let out = daemon.sign(key, payload, &["--encoding", encoding]);
        String::from_utf8(out).unwrap().trim_end().to_owned()
    };

    // The documentation's own strings, verbatim, give the documentation's own signatures.
    for (file, signature) in [
        (
            "accept-doc-example-ascii",
            "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71",
        ),
        (
            "accept-doc-example-non-ascii",
            "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3",
        ),
        (
            "accept-doc-example-3-query-plus-body",
            "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77",
        ),
    ] {
        let example = doc_example("binance", file);
        assert_eq!(
            printed("binance-doc", example.as_bytes(), "hex"),
            signature,
            "{file}"
        );
    }
    let example = doc_example("kucoin", "accept-doc-example-deposit-address");
    assert_eq!(
        printed("kucoin-doc", example.as_bytes(), "base64"),
        "7QP/oM0ykidMdrfNEUmng8eZjg/ZvPafjIqmxiVfYu4="
    );
    let example = doc_bytes("kraken", "accept-doc-example-add-order");
    assert_eq!(
        printed("kraken", &example, "base64"),
        "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
    );

    // The keys with a timestamp rule: the documented requests, made now.
    let now = now_ms();
    let fresh_examples: Vec<(&str, String)> = vec![
        (
            "binance",
            doc_example("binance", "accept-doc-example-ascii")
                .replace("timestamp=1499827319559", &format!("timestamp={now}")),
        ),
        (
            "bybit",
            restamped(
                &doc_example("bybit", "accept-doc-place-order"),
                "1658384314791",
                &now.to_string(),
            ),
        ),
        (
            "okx",
            restamped(
                &doc_example("okx", "accept-doc-place-order"),
                "2020-12-08T09:08:57.715Z",
                &iso_ms(now),
            ),
        ),
        (
            "kucoin",
            restamped(
                &doc_example("kucoin", "accept-place-order"),
                "1547015186532",
                &now.to_string(),
            ),
        ),
        (
            "bitget",
            restamped(
                &doc_example("bitget", "accept-doc-spot-place-order"),
                "1659076670000",
                &now.to_string(),
            ),
        ),
        (
            "coinbase",
            coinbase_jwt(
                "GET api.coinbase.com/api/v3/brokerage/accounts",
                now / 1000,
                now / 1000 + 120,
            ),
        ),
    ];
    let signed: Vec<(&str, &String, Vec<u8>)> = fresh_examples
        .iter()
        .map(|(key, payload)| {
            let signature = daemon.sign(key, payload.as_bytes(), &["--encoding", "raw"]);
            (*key, payload, signature)
        })
        .collect();
    let checks: Vec<Check<'_>> = signed
        .iter()
        .map(|(key, payload, signature)| {
            let (scheme, file) = match *key {
                "coinbase" => ("ecdsa-p256-sha256", &formats.coinbase_public),
                key => ("hmac-sha256", &formats.hmac[key]),
            };
            Check::new(scheme, file, payload.as_bytes(), signature)
        })
        .collect();
    assert_python_verifies_all(&checks);
    // And the Kraken signature by Python too, over the verbatim example.
    let kraken = doc_bytes("kraken", "accept-doc-example-add-order");
    let signature = daemon.sign("kraken", &kraken, &["--encoding", "raw"]);
    assert_python_verifies_all(&[Check::new(
        "hmac-sha512",
        &formats.hmac["kraken"],
        &kraken,
        &signature,
    )]);

    // `list` shows each key's format; bitget's comes from its import.
    let keys: Value =
        serde_json::from_str(daemon.keyward(["list", "--json"]).stdout_text()).unwrap();
    let listed: Vec<(String, Value)> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|key| {
            (
                key["name"].as_str().unwrap().to_owned(),
                key["format"].clone(),
            )
        })
        .collect();
    for (name, format) in [
        ("binance", "binance"),
        ("bitget", "bitget"),
        ("bybit", "bybit"),
        ("coinbase", "coinbase-jwt"),
        ("kraken", "kraken"),
        ("kucoin", "kucoin"),
        ("okx", "okx"),
    ] {
        assert!(
            listed.contains(&(name.to_owned(), Value::from(format))),
            "{name}: {listed:?}"
        );
    }
    drop(formats.config);
}

#[test]
fn the_reviews_bypasses_are_refused_with_policy_violation_and_the_reason() {
    let formats = formats_daemon();
    let mut client = formats.daemon.client();
    let now = now_ms();
    let old = now - 60_000;
    let stale = "ms from the daemon's clock; this key allows ±5000 ms";
    let address = "parameter \"address\" is not allowed for this key";
    let digest = "\u{1}".repeat(32);
    let cases: Vec<(&str, String, &str)> = vec![
        // deny_params: "\u0061ddress" in KuCoin and OKX form (timestamp + method + path +
        // JSON body), and nested JSON.
        (
            "kucoin",
            format!(r#"{now}POST/api/v1/orders{{"symbol":"BTC-USDT","\u0061ddress":"TXevil"}}"#),
            address,
        ),
        (
            "okx",
            format!(
                r#"{}POST/api/v5/trade/order{{"instId":"BTC-USDT","\u0061ddress":"TXevil"}}"#,
                iso_ms(now)
            ),
            address,
        ),
        (
            "kucoin",
            format!(
                r#"{now}POST/api/v1/orders{{"symbol":"BTC-USDT","params":{{"legs":[{{"addr\u0065ss":"TXevil"}}]}}}}"#
            ),
            address,
        ),
        (
            "bybit",
            format!(
                r#"{now}{BYBIT_API_KEY}5000{{"category":"spot","x":{{"y":{{"\u0041DDRESS":"TXevil"}}}}}}"#
            ),
            "parameter \"ADDRESS\" is not allowed for this key",
        ),
        (
            "binance",
            format!("coin=USDT&%61ddress=TXevil&timestamp={now}"),
            address,
        ),
        // timestamp_window_ms: a fresh "&timestamp=NOW&" inside a JSON string value does not
        // make a stale request fresh; the timestamp is read where the exchange reads it.
        (
            "kucoin",
            format!(
                r#"{old}POST/api/v1/orders{{"symbol":"BTC-USDT","remark":"&timestamp={now}&"}}"#
            ),
            stale,
        ),
        (
            "bybit",
            format!(
                r#"{old}{BYBIT_API_KEY}5000{{"category":"spot","orderLinkId":"&timestamp={now}&"}}"#
            ),
            stale,
        ),
        (
            "okx",
            format!(
                "{}GET/api/v5/account/balance?ccy=BTC&timestamp={now}",
                iso_ms(old)
            ),
            stale,
        ),
        (
            "binance",
            format!("symbol=BTCUSDT&newClientOrderId=%26timestamp%3D{now}%26&timestamp={old}"),
            stale,
        ),
        // Two timestamps: an exchange may read either one, so neither is believed.
        (
            "binance",
            format!("symbol=BTCUSDT&timestamp={old}&timestamp={now}"),
            "parameter \"timestamp\" appears twice",
        ),
        (
            "kucoin",
            format!(r#"{now}POST/api/v1/orders{{"timestamp":{old},"timestamp":{now}}}"#),
            "parameter \"timestamp\" appears twice",
        ),
        // max_recv_window_ms bounds Binance's recvWindow and Bybit's recv_window.
        (
            "binance",
            format!("symbol=BTCUSDT&recvWindow=99999999&timestamp={now}"),
            "receive window of 99999999 ms exceeds this key's limit of 10000 ms",
        ),
        (
            "bybit",
            format!("{now}{BYBIT_API_KEY}99999999category=spot"),
            "receive window of 99999999 ms exceeds this key's limit of 10000 ms",
        ),
        // Paths: withdrawals and transfers, in any case.
        (
            "okx",
            format!(
                r#"{}POST/api/v5/asset/withdrawal{{"ccy":"USDT","amt":"1","dest":"4","toAddr":"TXevil"}}"#,
                iso_ms(now)
            ),
            "path \"/api/v5/asset/withdrawal\" is denied for this key",
        ),
        (
            "kucoin",
            format!(r#"{now}POST/api/v3/withdrawals{{"currency":"USDT","toAddress":"TXevil"}}"#),
            "path \"/api/v3/withdrawals\" is denied for this key",
        ),
        (
            "bitget",
            format!(r#"{now}POST/api/v2/spot/wallet/withdrawal{{"coin":"USDT"}}"#),
            "path \"/api/v2/spot/wallet/withdrawal\" is denied",
        ),
        (
            "kraken",
            format!("/0/private/Withdraw{digest}"),
            "path \"/0/private/Withdraw\" is denied for this key",
        ),
        (
            "kraken",
            format!("/0/private/withdraw{digest}"),
            "path \"/0/private/withdraw\" is denied for this key",
        ),
        (
            "coinbase",
            coinbase_jwt(
                "POST api.coinbase.com/v2/accounts/x/transactions",
                now / 1000,
                now / 1000 + 120,
            ),
            "is not in this key's allow_paths",
        ),
        (
            "coinbase",
            coinbase_jwt(
                "POST api.coinbase.com/api/v3/brokerage/portfolios/move_funds",
                now / 1000,
                now / 1000 + 120,
            ),
            "is denied for this key",
        ),
        // Coinbase: a day-long token, and an old one.
        (
            "coinbase",
            coinbase_jwt(
                "GET api.coinbase.com/api/v3/brokerage/accounts",
                now / 1000,
                now / 1000 + 86_400,
            ),
            "JWT lives 86400 s (exp - nbf); this key allows 120 s",
        ),
        (
            "coinbase",
            coinbase_jwt(
                "GET api.coinbase.com/api/v3/brokerage/accounts",
                old / 1000,
                old / 1000 + 120,
            ),
            stale,
        ),
        // Whatever does not parse in the key's format is refused, not guessed at.
        (
            "binance",
            format!(r#"{now}POST/api/v1/orders{{"symbol":"BTC-USDT"}}"#),
            "payload is not a valid binance signing string",
        ),
        (
            "kucoin",
            format!("symbol=BTCUSDT&timestamp={now}"),
            "payload is not a valid kucoin signing string",
        ),
        (
            "bybit",
            format!("{now}YYYYYYYYYY5000category=spot"),
            "the API key in the payload is not this key's API key id",
        ),
        (
            "okx",
            format!(r#"{now}POST/api/v5/trade/order{{"instId":"BTC-USDT"}}"#),
            "payload is not a valid okx signing string",
        ),
        (
            "kucoin",
            format!(r#"{now}POST/api/v1/orders{{"symbol":"BTC-USDT"}} trailing"#),
            "payload is not a valid kucoin signing string",
        ),
    ];
    let mut reasons = Vec::new();
    for (key, payload, expected) in &cases {
        let message = refused_with(
            client.sign(key, payload.as_bytes()),
            ErrorCode::PolicyViolation,
        );
        assert!(
            message.contains(expected),
            "{key}: {payload:?}\nexpected {expected:?} in: {message}"
        );
        assert!(!message.contains('\n'), "{message}");
        // Never a value from the payload: "TXevil" is a withdrawal address.
        assert!(!message.contains("TXevil"), "{message}");
        reasons.push(message);
    }
    // A batch with one bypass in it is refused whole.
    let good = format!(r#"{now}POST/api/v1/orders{{"symbol":"BTC-USDT"}}"#);
    refused_with(
        client.sign_batch("kucoin", &[good.as_bytes(), cases[0].1.as_bytes()]),
        ErrorCode::PolicyViolation,
    );
    client.sign("kucoin", good.as_bytes()).unwrap();

    // The audit log has each refusal with its reason (and the allowed signature).
    let audit = audit_log(&formats.config.dir().join("audit.jsonl"), 1);
    let denied: Vec<(String, String)> = audit
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|record| record["decision"] == "deny")
        .map(|record| {
            (
                record["key"].as_str().unwrap().to_owned(),
                record["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for ((key, _, _), reason) in cases.iter().zip(&reasons) {
        assert!(
            denied.contains(&((*key).to_owned(), reason.clone())),
            "{key}: no audit record with {reason:?}"
        );
    }
    assert!(
        !audit.contains("TXevil"),
        "a payload value reached the audit log"
    );
}

/// The config's format for a key beats the one given at generate; the disagreement is
/// reported (CLI and daemon log), and a SIGHUP that drops the config's format puts the
/// stored one in force.
#[test]
fn a_format_in_the_config_wins_over_the_stored_one_and_a_disagreement_is_reported() {
    let config = ConfigFile::new("[keys.k]\nformat = \"kucoin\"\ndeny_params = [\"address\"]\n");
    let daemon = start(&config);
    let out = daemon.keyward([
        "generate", "k", "--scheme", "ed25519", "--format", "binance",
    ]);
    out.success();
    assert!(
        out.stderr.contains(
            "warning: the daemon's config sets format kucoin for key k; its payloads are judged as kucoin"
        ),
        "{out:#?}"
    );
    wait_for_log(
        &daemon,
        "key \"k\" was given format binance, and keys.k.format in the config says kucoin",
        1,
    );
    let listed = |daemon: &Daemon| -> Value {
        let keys: Value =
            serde_json::from_str(daemon.keyward(["list", "--json"]).stdout_text()).unwrap();
        keys[0]["format"].clone()
    };
    assert_eq!(listed(&daemon), "kucoin");
    let mut client = daemon.client();
    let binance = format!("symbol=BTCUSDT&timestamp={}", now_ms());
    let kucoin = format!(r#"{}POST/api/v1/orders{{"symbol":"BTC-USDT"}}"#, now_ms());
    let message = refused_with(
        client.sign("k", binance.as_bytes()),
        ErrorCode::PolicyViolation,
    );
    assert!(
        message.contains("not a valid kucoin signing string"),
        "{message}"
    );
    client.sign("k", kucoin.as_bytes()).unwrap();

    // Without a format in the config, the one stored at generate applies.
    config.set("[keys.k]\ndeny_params = [\"address\"]\n");
    daemon.signal(Signal::SIGHUP);
    wait_for_log(&daemon, "SIGHUP: policy reloaded", 1);
    assert_eq!(listed(&daemon), "binance");
    let mut client = daemon.client();
    client.sign("k", binance.as_bytes()).unwrap();
    let message = refused_with(
        client.sign("k", kucoin.as_bytes()),
        ErrorCode::PolicyViolation,
    );
    assert!(
        message.contains("not a valid binance signing string"),
        "{message}"
    );

    // Rules and no format anywhere: every payload is refused, with a reason that says how
    // to fix it.
    daemon
        .keyward(["generate", "plain", "--scheme", "ed25519"])
        .success();
    config.set("[defaults]\ndeny_params = [\"address\"]\n");
    daemon.signal(Signal::SIGHUP);
    wait_for_log(&daemon, "SIGHUP: policy reloaded", 2);
    let mut client = daemon.client();
    let message = refused_with(
        client.sign("plain", binance.as_bytes()),
        ErrorCode::PolicyViolation,
    );
    assert!(
        message.contains(
            "no payload format; set format in its config section or give the key one with --format"
        ),
        "{message}"
    );
    // ... while `k` still has its stored format, which [defaults] does not override.
    client.sign("k", binance.as_bytes()).unwrap();
}
