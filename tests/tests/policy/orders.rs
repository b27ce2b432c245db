//! 8. Order rules (issue 17).
//!
//! End to end: for each format an allowed order is signed by the real `keywardd` and the signature verified by Python's `cryptography`; each rule refuses
//! its violation with `PolicyViolation`, the rule, the field and the value, also in the audit
//! log; a batch with one bad order is refused whole; cancels pass; the rules are logged at
//! start and SIGHUP; `orders_per_minute` counts orders, apart from the signature rate.

use super::*;

const SECRET: &[u8] = b"orders-test-hmac-secret-0123456789";
const BYBIT_API_KEY: &str = "ORDERSKEY1";

/// Per format: the key, and its order rules in the exchange's own spelling. The limits are
/// the same everywhere: 0.5 of the base asset, 30000 of the quote currency.
const CONFIG: &str = r#"
[keys.binance]
format = "binance"
timestamp_window_ms = 5000
deny_params = ["address"]
allow_symbols = ["BTCUSDT"]
allow_sides = ["BUY"]
allow_order_types = ["LIMIT", "LIMIT_MAKER"]
max_quantity = "0.5"
max_notional = "30000"

[keys.bybit]
format = "bybit"
timestamp_window_ms = 5000
allow_symbols = ["BTCUSDT"]
allow_sides = ["Buy"]
allow_order_types = ["Limit"]
max_quantity = "0.5"
max_notional = "30000"

[keys.okx]
format = "okx"
timestamp_window_ms = 5000
allow_symbols = ["BTC-USDT"]
allow_sides = ["buy"]
allow_order_types = ["limit", "post_only"]
max_quantity = "0.5"
max_notional = "30000"

[keys.kucoin]
format = "kucoin"
timestamp_window_ms = 5000
allow_symbols = ["BTC-USDT"]
allow_sides = ["buy"]
allow_order_types = ["limit"]
max_quantity = "0.5"
max_notional = "30000"

[keys.bitget]
format = "bitget"
timestamp_window_ms = 5000
allow_symbols = ["BTCUSDT"]
allow_sides = ["buy"]
allow_order_types = ["limit"]
max_quantity = "0.5"
max_notional = "30000"

[keys.paced]
format = "binance"
orders_per_minute = 2
rate_per_sec = 100
"#;

struct Orders {
    daemon: Daemon,
    config: ConfigFile,
    secret: PathBuf,
}

fn orders_daemon() -> Orders {
    let config = ConfigFile::new("");
    let audit = config.dir().join("audit.jsonl");
    config.set(&format!(
        "[daemon]\naudit_log = \"{}\"\n{CONFIG}",
        audit.display()
    ));
    let daemon = Daemon::start_logging("info", &["--config", config.path()]);
    let secret = daemon.write("orders.secret", SECRET);
    for name in ["binance", "okx", "kucoin", "bitget", "paced"] {
        daemon.import(name, &secret, &["--scheme", "hmac-sha256"]);
    }
    daemon.import(
        "bybit",
        &secret,
        &["--scheme", "hmac-sha256", "--api-key", BYBIT_API_KEY],
    );
    Orders {
        daemon,
        config,
        secret,
    }
}

/// ms since the epoch as OKX writes it (2020-12-08T09:08:57.715Z).
fn iso_ms(ms: u64) -> String {
    let (secs, millis) = (ms / 1000, ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
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

/// A limit order for `key` as its exchange's docs spell it, made now.
fn order(key: &str, symbol: &str, side: &str, kind: &str, qty: &str, price: &str) -> String {
    let now = now_ms();
    match key {
        "binance" => format!(
            "symbol={symbol}&side={side}&type={kind}&timeInForce=GTC&quantity={qty}&price={price}&timestamp={now}"
        ),
        "bybit" => format!(
            r#"{now}{BYBIT_API_KEY}5000{{"category":"spot","symbol":"{symbol}","side":"{side}","orderType":"{kind}","qty":"{qty}","price":"{price}","timeInForce":"GTC"}}"#
        ),
        "okx" => format!(
            r#"{}POST/api/v5/trade/order{{"instId":"{symbol}","tdMode":"cash","side":"{side}","ordType":"{kind}","sz":"{qty}","px":"{price}"}}"#,
            iso_ms(now)
        ),
        "kucoin" => format!(
            r#"{now}POST/api/v1/orders{{"clientOid":"5c52e11203aa677f33e493fb","side":"{side}","symbol":"{symbol}","type":"{kind}","price":"{price}","size":"{qty}"}}"#
        ),
        "bitget" => format!(
            r#"{now}POST/api/v2/spot/trade/place-order{{"symbol":"{symbol}","side":"{side}","orderType":"{kind}","force":"gtc","price":"{price}","size":"{qty}"}}"#
        ),
        other => panic!("no format for {other}"),
    }
}

/// Per key: (symbol, another symbol, allowed side, other side, limit type, market type,
/// quantity field, price field, symbol field).
type Spelling = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

fn spelling(key: &str) -> Spelling {
    match key {
        "binance" => (
            "BTCUSDT", "DOGEUSDT", "BUY", "SELL", "LIMIT", "MARKET", "quantity", "price", "symbol",
        ),
        "bybit" => (
            "BTCUSDT", "DOGEUSDT", "Buy", "Sell", "Limit", "Market", "qty", "price", "symbol",
        ),
        "okx" => (
            "BTC-USDT",
            "DOGE-USDT",
            "buy",
            "sell",
            "limit",
            "market",
            "sz",
            "px",
            "instId",
        ),
        "kucoin" => (
            "BTC-USDT",
            "DOGE-USDT",
            "buy",
            "sell",
            "limit",
            "market",
            "size",
            "price",
            "symbol",
        ),
        "bitget" => (
            "BTCUSDT", "DOGEUSDT", "buy", "sell", "limit", "market", "size", "price", "symbol",
        ),
        other => panic!("no spelling for {other}"),
    }
}

const KEYS: [&str; 5] = ["binance", "bybit", "okx", "kucoin", "bitget"];

#[test]
fn each_format_signs_an_allowed_order_and_refuses_each_violation_with_the_reason() {
    let orders = orders_daemon();
    let mut client = orders.daemon.client();

    // Allowed, at the limits exactly (0.5 × 60000 = 30000): signed, and the signature is
    // HMAC-SHA256 of the exact payload by an independent implementation.
    let allowed: Vec<(&str, String)> = KEYS
        .iter()
        .map(|&key| {
            let (symbol, _, buy, _, limit, _, _, _, _) = spelling(key);
            (key, order(key, symbol, buy, limit, "0.5", "60000"))
        })
        .collect();
    let signed: Vec<Vec<u8>> = allowed
        .iter()
        .map(|(key, payload)| {
            orders
                .daemon
                .sign(key, payload.as_bytes(), &["--encoding", "raw"])
        })
        .collect();
    let checks: Vec<Check<'_>> = allowed
        .iter()
        .zip(&signed)
        .map(|((_, payload), signature)| {
            Check::new("hmac-sha256", &orders.secret, payload.as_bytes(), signature)
        })
        .collect();
    assert_python_verifies_all(&checks);

    // Each rule refuses its violation: the rule, the field as sent, the value.
    let mut cases: Vec<(&str, String, String)> = Vec::new();
    for key in KEYS {
        let (symbol, other, buy, sell, limit, market, qty, px, symbol_field) = spelling(key);
        cases.extend([
            (
                key,
                order(key, other, buy, limit, "0.1", "1"),
                format!("allow_symbols: {symbol_field} {other:?} is not allowed for this key"),
            ),
            (
                key,
                order(key, symbol, sell, limit, "0.1", "1"),
                format!("allow_sides: side {sell:?} is not allowed for this key"),
            ),
            (
                key,
                order(key, symbol, buy, market, "0.1", "1"),
                format!("{market:?} is not allowed for this key"),
            ),
            // One step over the quantity, one step over the notional.
            (
                key,
                order(key, symbol, buy, limit, "0.50000001", "1"),
                format!("max_quantity: {qty} 0.50000001 exceeds this key's limit of 0.5"),
            ),
            (
                key,
                order(key, symbol, buy, limit, "0.5", "60000.00000002"),
                format!(
                    "max_notional: {px} 60000.00000002 × {qty} 0.5 = 30000.00000001 exceeds this key's limit of 30000"
                ),
            ),
        ]);
    }
    let mut reasons = Vec::new();
    for (key, payload, expected) in &cases {
        let message = refused_with(
            client.sign(key, payload.as_bytes()),
            ErrorCode::PolicyViolation,
        );
        assert!(
            message.contains(expected.as_str()),
            "{key}: {payload}\nexpected {expected:?} in: {message}"
        );
        assert!(!message.contains('\n'), "{message}");
        reasons.push(message);
    }

    // A market order with no price (its notional cannot be known), where the type is
    // allowed: on Binance, through a key whose type list has MARKET.
    orders.config.set(&format!(
        "[daemon]\naudit_log = \"{}\"\n{}",
        orders.config.dir().join("audit.jsonl").display(),
        CONFIG.replace(
            "allow_order_types = [\"LIMIT\", \"LIMIT_MAKER\"]",
            "allow_order_types = [\"LIMIT\", \"LIMIT_MAKER\", \"MARKET\"]"
        )
    ));
    orders.daemon.signal(Signal::SIGHUP);
    // The new rules are logged: the admin's view of them (Status has no field for them).
    wait_for_log(
        &orders.daemon,
        "SIGHUP: order rules: key \"binance\": allow_symbols=BTCUSDT allow_sides=BUY \
         allow_order_types=LIMIT,LIMIT_MAKER,MARKET max_quantity=0.5 max_notional=30000",
        1,
    );
    let market = (
        "binance",
        format!(
            "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.001&timestamp={}",
            now_ms()
        ),
        "max_notional: an order without a limit price (type \"MARKET\") has a notional that cannot be known".to_owned(),
    );
    let message = refused_with(
        client.sign(market.0, market.1.as_bytes()),
        ErrorCode::PolicyViolation,
    );
    assert!(message.contains(market.2.as_str()), "{message}");
    cases.push(market);
    reasons.push(message);

    // A cancel is not an order: it passes the order rules (and meets the others).
    let cancel = format!("symbol=DOGEUSDT&orderId=28&timestamp={}", now_ms());
    client.sign("binance", cancel.as_bytes()).unwrap();
    let withdraw = format!("coin=USDT&address=TXevil&amount=1&timestamp={}", now_ms());
    let message = refused_with(
        client.sign("binance", withdraw.as_bytes()),
        ErrorCode::PolicyViolation,
    );
    assert!(
        message.contains("parameter \"address\" is not allowed"),
        "{message}"
    );

    // The audit log holds each refusal with its reason.
    let audit = audit_log(&orders.config.dir().join("audit.jsonl"), 1);
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
}

#[test]
fn a_batch_with_one_bad_order_is_refused_whole() {
    let orders = orders_daemon();
    let mut client = orders.daemon.client();
    let now = now_ms();
    let element = |qty: &str| {
        format!(
            r#"{{"instId":"BTC-USDT","tdMode":"cash","side":"buy","ordType":"limit","sz":"{qty}","px":"50000"}}"#
        )
    };
    let batch = |second: &str| {
        format!(
            "{}POST/api/v5/trade/batch-orders[{},{}]",
            iso_ms(now),
            element("0.1"),
            element(second)
        )
    };
    let message = refused_with(
        client.sign("okx", batch("0.6").as_bytes()),
        ErrorCode::PolicyViolation,
    );
    assert!(
        message.contains("order 2 of 2: max_quantity: sz 0.6 exceeds this key's limit of 0.5"),
        "{message}"
    );
    let good = batch("0.2");
    let signature = client.sign("okx", good.as_bytes()).unwrap();
    assert_python_verifies_all(&[Check::new(
        "hmac-sha256",
        &orders.secret,
        good.as_bytes(),
        signature.as_bytes(),
    )]);

    // KuCoin's batch, whose elements take the symbol from around them.
    let kucoin = |side: &str| {
        format!(
            r#"{now}POST/api/v1/orders/multi{{"symbol":"BTC-USDT","orderList":[{{"clientOid":"a","side":"buy","type":"limit","price":"100","size":"0.1"}},{{"clientOid":"b","side":"{side}","type":"limit","price":"100","size":"0.1"}}]}}"#
        )
    };
    let message = refused_with(
        client.sign("kucoin", kucoin("sell").as_bytes()),
        ErrorCode::PolicyViolation,
    );
    assert!(
        message.contains("order 2 of 2: allow_sides: side \"sell\""),
        "{message}"
    );
    client.sign("kucoin", kucoin("buy").as_bytes()).unwrap();

    // A SignBatch with one bad payload among good ones is refused whole, too.
    let good = order("bybit", "BTCUSDT", "Buy", "Limit", "0.1", "100");
    let bad = order("bybit", "DOGEUSDT", "Buy", "Limit", "0.1", "100");
    refused_with(
        client.sign_batch("bybit", &[good.as_bytes(), bad.as_bytes()]),
        ErrorCode::PolicyViolation,
    );
}

#[test]
fn orders_per_minute_counts_orders_apart_from_the_signature_rate_and_the_log_shows_the_rules() {
    let orders = orders_daemon();
    let log = wait_for_log(&orders.daemon, "order rules: key \"paced\"", 1);
    assert!(
        log.contains(
            "start: order rules: key \"okx\": allow_symbols=BTC-USDT allow_sides=buy allow_order_types=limit,post_only max_quantity=0.5 max_notional=30000 orders_per_minute=none"
        ),
        "{log}"
    );
    let mut client = orders.daemon.client();
    let place = || {
        format!(
            "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=1&timestamp={}",
            now_ms()
        )
    };
    // Queries do not count: many signatures, no orders.
    for _ in 0..5 {
        client
            .sign("paced", fresh("symbol=BTCUSDT").as_bytes())
            .unwrap();
    }
    client.sign("paced", place().as_bytes()).unwrap();
    client.sign("paced", place().as_bytes()).unwrap();
    let message = refused_with(
        client.sign("paced", place().as_bytes()),
        ErrorCode::RateLimited,
    );
    assert!(
        message.contains("orders_per_minute: key \"paced\" has placed its 2 orders a minute"),
        "{message}"
    );
    // Non-orders still sign while orders wait.
    client
        .sign("paced", fresh("symbol=BTCUSDT").as_bytes())
        .unwrap();
    drop(orders.config);
}
