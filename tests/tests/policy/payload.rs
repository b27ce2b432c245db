//! 2. Payload policy.

use super::*;

#[test]
fn stale_missing_denied_and_oversize_payloads_are_each_refused_with_their_own_reason() {
    let config = ConfigFile::new(
        "[keys.guarded]\n\
         timestamp_window_ms = 5000\n\
         deny_params = [\"address\", \"Name\"]\n\
         max_payload_bytes = 256\n",
    );
    let daemon = start(&config);
    let guarded = daemon.generate("guarded", "ed25519");
    daemon.generate("open", "ed25519");

    // Refused by `guarded` with exit 4 and one line; the same payload signs with `open`, so
    // the refusal is the policy's and not some other problem with the payload.
    let refused = |payload: &str| -> String {
        let out = daemon.keyward(["sign", "guarded", payload]);
        let line = out.error_line(4).to_owned();
        assert!(out.stdout.is_empty(), "{payload:?} printed a signature");
        daemon.keyward(["sign", "open", payload]).success();
        line
    };
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
    // Seconds are not milliseconds: 1000× too small is stale, not accepted.
    let seconds = refused(&format!("symbol=BTCUSDT&timestamp={}", now / 1000));
    assert!(seconds.contains("this key allows ±5000 ms"), "{seconds}");
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
    let twice = refused(&format!("timestamp={now}&symbol=X&timestamp={now}"));
    assert!(twice.contains("exactly one timestamp"), "{twice}");
    let not_a_number = refused("symbol=BTCUSDT&timestamp=soon");
    assert!(not_a_number.contains("is not a number"), "{not_a_number}");

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

    // JSON bodies: the top-level fields are the parameters.
    let json = |fields: &str| format!("{{\"symbol\":\"BTCUSDT\",{fields}}}");
    for bad in [
        format!("\"address\":\"TXyz\",\"timestamp\":{}", now_ms()),
        // A JSON escape spells the same name.
        format!("\"addr\\u0065ss\":\"TXyz\",\"timestamp\":{}", now_ms()),
    ] {
        let line = refused(&json(&bad));
        assert!(
            line.contains("is not allowed for this key"),
            "{bad}: {line}"
        );
    }
    let line = refused(&json("\"side\":\"BUY\""));
    assert!(line.contains("exactly one timestamp"), "{line}");
    let line = refused(&json(&format!("\"timestamp\":{}", now_ms() - 60_000)));
    assert!(line.contains("this key allows ±5000 ms"), "{line}");
    let line = refused("{\"symbol\":\"BTCUSDT\",");
    assert!(line.contains("not a valid JSON object"), "{line}");

    // Fresh, clean payloads sign and verify: a query, microseconds, JSON (number and string
    // timestamps).
    let good = [
        fresh("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000"),
        format!("symbol=BTCUSDT&side=BUY&timestamp={}", now_ms() * 1000),
        json(&format!("\"side\":\"BUY\",\"timestamp\":{}", now_ms())),
        json(&format!("\"side\":\"BUY\",\"timestamp\":\"{}\"", now_ms())),
        at_limit.clone(),
    ];
    let mut signatures = Vec::new();
    for payload in &good {
        signatures.push(daemon.sign("guarded", payload.as_bytes(), &["--encoding", "raw"]));
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
        "[keys.guarded]\ntimestamp_window_ms = 5000\ndeny_params = [\"address\"]\n",
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
