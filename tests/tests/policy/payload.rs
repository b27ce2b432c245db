//! 2. Payload policy.

use super::*;

#[test]
fn stale_missing_denied_and_oversize_payloads_are_each_refused_with_their_own_reason() {
    // The same rules on a Binance key (form-encoded query strings) and a KuCoin key
    // (timestamp + method + path + JSON body): each judges a strict parse of its own format.
    let rules = "timestamp_window_ms = 5000\n\
                 deny_params = [\"address\", \"Name\"]\n\
                 max_payload_bytes = 256\n";
    let config = ConfigFile::new(&format!(
        "[keys.guarded]\nformat = \"binance\"\n{rules}\n\
         [keys.guarded-json]\nformat = \"kucoin\"\n{rules}"
    ));
    let daemon = start(&config);
    let guarded = daemon.generate("guarded", "ed25519");
    let guarded_json = daemon.generate("guarded-json", "ed25519");
    daemon.generate("open", "ed25519");

    // Refused by `guarded` with exit 4 and one line; the same payload signs with `open`, so
    // the refusal is the policy's and not some other problem with the payload.
    let refused_by = |key: &str, payload: &str| -> String {
        let out = daemon.keyward(["sign", key, payload]);
        let line = out.error_line(4).to_owned();
        assert!(out.stdout.is_empty(), "{payload:?} printed a signature");
        daemon.keyward(["sign", "open", payload]).success();
        line
    };
    let refused = |payload: &str| refused_by("guarded", payload);
    // "timestamp is N ms from the daemon's clock" → N.
    let skew = |line: &str| -> u64 {
        let rest = line
            .split("timestamp is ")
            .nth(1)
            .unwrap_or_else(|| panic!("{line}"));
        rest.split(' ').next().unwrap().parse().unwrap()
    };

    let now = now_ms();
    let stale = refused(&format!(
        "symbol=BTCUSDT&side=SELL&timestamp={}",
        now - 60_000
    ));
    assert!(
        stale.contains("ms from the daemon's clock; this key allows ±5000 ms"),
        "{stale}"
    );
    assert!((60_000..70_000).contains(&skew(&stale)), "{stale}");
    let future = refused(&format!("symbol=BTCUSDT&timestamp={}", now + 60_000));
    assert!((50_000..=60_000).contains(&skew(&future)), "{future}");
    // Seconds are not milliseconds: refused, not accepted.
    let seconds = refused(&format!("symbol=BTCUSDT&timestamp={}", now / 1000));
    assert!(
        seconds.contains("timestamp must be 13 digits of ms or 16 of microseconds"),
        "{seconds}"
    );
    let stale_us = refused(&format!(
        "symbol=BTCUSDT&timestamp={}",
        (now - 60_000) * 1000
    ));
    assert!((60_000..70_000).contains(&skew(&stale_us)), "{stale_us}");

    let missing = refused("symbol=BTCUSDT&side=BUY&quantity=1");
    assert!(
        missing.contains("this key requires exactly one timestamp parameter within ±5000 ms"),
        "{missing}"
    );
    // Two timestamps: an exchange may read either, so the payload does not parse.
    let twice = refused(&format!("timestamp={now}&symbol=X&timestamp={now}"));
    assert!(
        twice.contains("not a valid binance signing string: parameter \"timestamp\" appears twice"),
        "{twice}"
    );
    let not_a_number = refused("symbol=BTCUSDT&timestamp=soon");
    assert!(
        not_a_number.contains("timestamp must be 13 digits"),
        "{not_a_number}"
    );

    let denied = refused(&fresh("coin=USDT&network=TRX&address=TXyz&amount=100"));
    assert!(
        denied.contains("parameter \"address\" is not allowed for this key"),
        "{denied}"
    );
    // Names are compared decoded and case-insensitively, whatever the config's case.
    for sneaky in ["addr%65ss", "ADDRESS", "%61ddress", "Address"] {
        let line = refused(&fresh(&format!("coin=USDT&{sneaky}=TXyz&amount=100")));
        assert!(
            line.contains("is not allowed for this key"),
            "{sneaky}: {line}"
        );
    }
    let line = refused(&fresh("coin=USDT&name=x"));
    assert!(line.contains("\"name\" is not allowed"), "{line}");

    // Exactly at the limit signs; one byte over is refused.
    let at_limit = {
        let mut payload = format!("symbol=BTCUSDT&timestamp={}&pad=", now_ms());
        payload.push_str(&"p".repeat(256 - payload.len()));
        payload
    };
    assert_eq!(at_limit.len(), 256);
    daemon.sign("guarded", at_limit.as_bytes(), &[]);
    let over = format!("{at_limit}p");
    let oversize = refused(&over);
    assert!(
        oversize.contains("payload of 257 bytes exceeds this key's limit of 256 bytes"),
        "{oversize}"
    );

    // Four rules, four different reasons.
    let reasons = [&stale, &missing, &denied, &oversize];
    for (i, a) in reasons.iter().enumerate() {
        for b in &reasons[i + 1..] {
            assert_ne!(a, b);
        }
    }

    // JSON bodies (KuCoin: ms timestamp + METHOD + path + body): every key at any depth
    // is a parameter, escapes decoded; the timestamp is the prefix, and only there.
    let json = |at: u64, fields: &str| {
        format!("{at}POST/api/v1/orders{{\"symbol\":\"BTC-USDT\",{fields}}}")
    };
    let refused_json = |payload: &str| refused_by("guarded-json", payload);
    for bad in [
        "\"address\":\"TXyz\"",
        // A JSON escape spells the same name.
        "\"addr\\u0065ss\":\"TXyz\"",
        "\"\\u0061ddress\":\"TXyz\"",
        // Nested at any depth.
        "\"params\":{\"to\":[{\"Address\":\"TXyz\"}]}",
    ] {
        let line = refused_json(&json(now_ms(), bad));
        assert!(
            line.contains("is not allowed for this key"),
            "{bad}: {line}"
        );
    }
    let line = refused_json(&json(now_ms() - 60_000, "\"side\":\"buy\""));
    assert!(line.contains("this key allows ±5000 ms"), "{line}");
    // A fresh timestamp inside the body does not make a stale request fresh.
    let decoy = json(
        now_ms() - 60_000,
        &format!(
            "\"timestamp\":{},\"remark\":\"&timestamp={}&\"",
            now_ms(),
            now_ms()
        ),
    );
    let line = refused_json(&decoy);
    assert!(line.contains("this key allows ±5000 ms"), "{line}");
    let line = refused_json(&format!("{}POST/api/v1/orders{{\"symbol\":", now_ms()));
    assert!(line.contains("not a valid kucoin signing string"), "{line}");
    // A Binance query string is not a KuCoin payload.
    let line = refused_json(&fresh("symbol=BTCUSDT"));
    assert!(line.contains("not a valid kucoin signing string"), "{line}");

    // Fresh, clean payloads sign and verify: queries (ms and µs), KuCoin JSON bodies.
    let good = [
        fresh("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000"),
        format!("symbol=BTCUSDT&side=BUY&timestamp={}", now_ms() * 1000),
        at_limit.clone(),
    ];
    let good_json = [
        json(now_ms(), "\"side\":\"buy\",\"size\":\"0.01\""),
        format!("{}GET/api/v1/accounts?currency=BTC", now_ms()),
    ];
    let mut signatures = Vec::new();
    for payload in &good {
        signatures.push(daemon.sign("guarded", payload.as_bytes(), &["--encoding", "raw"]));
    }
    let mut json_signatures = Vec::new();
    for payload in &good_json {
        json_signatures.push(daemon.sign(
            "guarded-json",
            payload.as_bytes(),
            &["--encoding", "raw"],
        ));
    }

    // Through the Rust client: the code is PolicyViolation, and one bad payload refuses the
    // whole batch.
    let mut client = daemon.client();
    let stale_payload = format!("symbol=X&timestamp={}", now_ms() - 60_000);
    let message = refused_with(
        client.sign("guarded", stale_payload.as_bytes()),
        ErrorCode::PolicyViolation,
    );
    assert!(message.contains("this key allows ±5000 ms"), "{message}");
    let (one, two) = (fresh("symbol=A"), fresh("symbol=B"));
    let withdrawal = fresh("coin=USDT&address=TXyz");
    for batch in [
        vec![one.as_bytes(), withdrawal.as_bytes(), two.as_bytes()],
        vec![one.as_bytes(), two.as_bytes(), stale_payload.as_bytes()],
        vec![over.as_bytes(), one.as_bytes()],
    ] {
        refused_with(
            client.sign_batch("guarded", &batch),
            ErrorCode::PolicyViolation,
        );
    }
    let batch = client
        .sign_batch("guarded", &[one.as_bytes(), two.as_bytes()])
        .unwrap();
    let mut checks: Vec<Check<'_>> = good
        .iter()
        .zip(&signatures)
        .map(|(payload, signature)| Check::new("ed25519", &guarded, payload.as_bytes(), signature))
        .collect();
    checks.extend(
        good_json
            .iter()
            .zip(&json_signatures)
            .map(|(payload, signature)| {
                Check::new("ed25519", &guarded_json, payload.as_bytes(), signature)
            }),
    );
    checks.push(Check::new(
        "ed25519",
        &guarded,
        one.as_bytes(),
        batch[0].as_bytes(),
    ));
    checks.push(Check::new(
        "ed25519",
        &guarded,
        two.as_bytes(),
        batch[1].as_bytes(),
    ));
    assert_python_verifies_all(&checks);
}

/// Binance signs `totalParams`, "the query string concatenated with the request body" with
/// no separator between them (Binance API docs, SIGNED endpoint security). A withdrawal
/// sent as query `...&recvWindow=5000` plus body `address=...` is signed as one payload in
/// which `address` is glued to the previous value: the daemon must still see the denied
/// parameter, or `deny_params = ["address"]` stops no withdrawal a compromised bot sends.
#[test]
fn a_denied_parameter_cannot_hide_in_binance_query_plus_body_concatenation() {
    let config = ConfigFile::new(
        "[keys.guarded]\nformat = \"binance\"\ntimestamp_window_ms = 5000\ndeny_params = [\"address\"]\n",
    );
    let daemon = start(&config);
    daemon.generate("guarded", "ed25519");
    let mut client = daemon.client();
    for (query, body) in [
        // recvWindow's value swallows the body's first parameter name.
        (
            fresh("coin=USDT&network=TRX&amount=100") + "&recvWindow=5000",
            "address=TXevil",
        ),
        // An empty-valued parameter last in the query: "name=address=TXevil".
        (
            fresh("coin=USDT&network=TRX&amount=100") + "&name=",
            "address=TXevil",
        ),
    ] {
        let total = format!("{query}{body}");
        let message = refused_with(
            client.sign("guarded", total.as_bytes()),
            ErrorCode::PolicyViolation,
        );
        assert!(message.contains("address"), "{total}: {message}");
    }
}

/// The second, independent guard of the timestamp window (the first is the Binance test
/// above): on another format (KuCoin's `timestamp + method + path + body`), through `sign`
/// and `sign_batch`, and over time. A payload that signs now is refused once the window has
/// passed, so fresh signatures cannot be stockpiled for later replay.
#[test]
fn a_payload_fresh_now_is_refused_once_its_window_has_passed() {
    const WINDOW_MS: u64 = 1500;
    let config = ConfigFile::new(&format!(
        "[keys.windowed]\nformat = \"kucoin\"\ntimestamp_window_ms = {WINDOW_MS}\n\n\
         [keys.open]\nformat = \"kucoin\"\n"
    ));
    let daemon = start(&config);
    daemon.generate("windowed", "ed25519");
    daemon.generate("open", "ed25519");
    let mut client = daemon.client();
    let at = |ms: u64| format!("{ms}GET/api/v1/accounts");

    let now = now_ms();
    let stockpiled = at(now);
    client.sign("windowed", stockpiled.as_bytes()).unwrap();
    // Inside the window on both sides.
    client.sign("windowed", at(now - 1000).as_bytes()).unwrap();
    client.sign("windowed", at(now + 1000).as_bytes()).unwrap();
    client
        .sign_batch(
            "windowed",
            &[stockpiled.as_bytes(), at(now + 500).as_bytes()],
        )
        .unwrap();

    sleep(Duration::from_millis(WINDOW_MS + 300));
    let message = refused_with(
        client.sign("windowed", stockpiled.as_bytes()),
        ErrorCode::PolicyViolation,
    );
    assert!(
        message.contains("ms from the daemon's clock; this key allows ±1500 ms"),
        "{message}"
    );
    // One stale payload refuses the whole batch, wherever it is.
    let fresh_now = at(now_ms());
    for batch in [
        [stockpiled.as_bytes(), fresh_now.as_bytes()],
        [fresh_now.as_bytes(), stockpiled.as_bytes()],
    ] {
        refused_with(
            client.sign_batch("windowed", &batch),
            ErrorCode::PolicyViolation,
        );
    }
    // The refusal is the window's: the same payloads sign with a key without one, and a
    // fresh one still signs with the windowed key.
    client.sign("open", stockpiled.as_bytes()).unwrap();
    client.sign("windowed", fresh_now.as_bytes()).unwrap();
}
