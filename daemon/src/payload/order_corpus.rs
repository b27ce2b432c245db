//! The order rules (issue 17) over each format's parse: each rule refuses its violation with
//! the rule, the field and the value; a batch with one bad element is refused whole; orders
//! are found in every batch element and order-list leg; units and market orders are judged
//! so that no reading of the request passes a limit that another reading would break.

use proptest::prelude::*;

use super::rules::Refusal;
use super::{Context, Decimal, Format, OrderRules, Rules, judge, validate};

const NOW: u64 = 1_700_000_000_000;
const API_KEY: &str = "bybit-key";

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn limits(symbols: &[&str], sides: &[&str], types: &[&str], qty: &str, notional: &str) -> Rules {
    Rules {
        orders: OrderRules {
            allow_symbols: strings(symbols),
            allow_sides: strings(sides),
            allow_order_types: strings(types),
            max_quantity: Some(Decimal::parse(qty).unwrap()),
            max_notional: Some(Decimal::parse(notional).unwrap()),
            orders_per_minute: None,
        },
        ..Rules::default()
    }
}

fn run(format: Format, rules: &Rules, payload: &str) -> Result<usize, String> {
    let ctx = Context {
        now_ms: NOW,
        api_key: Some(API_KEY),
    };
    judge(Some(format), payload.as_bytes(), rules, ctx)
        .map(|parsed| parsed.map_or(0, |parsed| parsed.orders.len()))
        .map_err(|refusal| {
            let text = refusal.to_string();
            assert!(!text.contains('\n'), "{text}");
            text
        })
}

fn refused(format: Format, rules: &Rules, payload: &str, expected: &str) {
    match run(format, rules, payload) {
        Ok(n) => panic!("{format}: {payload} passed ({n} orders); expected {expected:?}"),
        Err(why) => assert!(
            why.contains(expected),
            "{format}: {payload}\n  gave {why:?}\n  expected {expected:?}"
        ),
    }
}

/// Builds a payload in `format` around a JSON body or a Binance form.
fn payload(format: Format, body: &str) -> String {
    match format {
        Format::Binance => body.to_owned(),
        Format::Bybit => format!("{NOW}{API_KEY}5000{body}"),
        Format::Okx => format!("2023-11-14T22:13:20.000ZPOST/api/v5/trade/order{body}"),
        Format::Kucoin => format!("{NOW}POST/api/v1/orders{body}"),
        Format::Bitget => format!("{NOW}POST/api/v2/spot/trade/place-order{body}"),
        _ => unreachable!(),
    }
}

/// One limit order per format, as its docs spell it, at `qty` and `price`, with a symbol,
/// a side and a type the caller picks.
fn limit_order(
    format: Format,
    symbol: &str,
    side: &str,
    kind: &str,
    qty: &str,
    price: &str,
) -> String {
    let body = match format {
        Format::Binance => format!(
            "symbol={symbol}&side={side}&type={kind}&timeInForce=GTC&quantity={qty}&price={price}&timestamp={NOW}"
        ),
        Format::Bybit => format!(
            r#"{{"category":"spot","symbol":"{symbol}","side":"{side}","orderType":"{kind}","qty":"{qty}","price":"{price}"}}"#
        ),
        Format::Okx => format!(
            r#"{{"instId":"{symbol}","tdMode":"cash","side":"{side}","ordType":"{kind}","sz":"{qty}","px":"{price}"}}"#
        ),
        Format::Kucoin => format!(
            r#"{{"clientOid":"x1","symbol":"{symbol}","side":"{side}","type":"{kind}","size":"{qty}","price":"{price}"}}"#
        ),
        Format::Bitget => format!(
            r#"{{"symbol":"{symbol}","side":"{side}","orderType":"{kind}","force":"gtc","size":"{qty}","price":"{price}"}}"#
        ),
        _ => unreachable!(),
    };
    payload(format, &body)
}

/// Per format: (symbol, other symbol, buy, sell, limit, market, quantity field, price field).
fn spelling(
    format: Format,
) -> (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
) {
    match format {
        Format::Binance => (
            "BTCUSDT", "DOGEUSDT", "BUY", "SELL", "LIMIT", "MARKET", "quantity", "price",
        ),
        Format::Bybit => (
            "BTCUSDT", "DOGEUSDT", "Buy", "Sell", "Limit", "Market", "qty", "price",
        ),
        Format::Okx => (
            "BTC-USDT",
            "DOGE-USDT",
            "buy",
            "sell",
            "limit",
            "market",
            "sz",
            "px",
        ),
        Format::Kucoin => (
            "BTC-USDT",
            "DOGE-USDT",
            "buy",
            "sell",
            "limit",
            "market",
            "size",
            "price",
        ),
        Format::Bitget => (
            "BTCUSDT", "DOGEUSDT", "buy", "sell", "limit", "market", "size", "price",
        ),
        _ => unreachable!(),
    }
}

const FORMATS: [Format; 5] = [
    Format::Binance,
    Format::Bybit,
    Format::Okx,
    Format::Kucoin,
    Format::Bitget,
];

#[test]
fn each_rule_refuses_its_violation_in_every_format() {
    for format in FORMATS {
        let (symbol, other, buy, sell, limit, market, qty, px) = spelling(format);
        let rules = limits(&[symbol], &[buy], &[limit], "0.5", "30000");
        let order = |symbol: &str, side: &str, kind: &str, q: &str, p: &str| {
            limit_order(format, symbol, side, kind, q, p)
        };
        // At the limits exactly: 0.5 × 60000 = 30000.
        assert_eq!(
            run(format, &rules, &order(symbol, buy, limit, "0.5", "60000")),
            Ok(1),
            "{format}"
        );
        assert_eq!(
            run(
                format,
                &rules,
                &order(symbol, buy, limit, "0.50000", "60000.000")
            ),
            Ok(1),
            "{format}"
        );
        refused(
            format,
            &rules,
            &order(other, buy, limit, "0.1", "1"),
            &format!(
                "allow_symbols: {}",
                if format == Format::Okx {
                    "instId"
                } else {
                    "symbol"
                }
            ),
        );
        refused(
            format,
            &rules,
            &order(other, buy, limit, "0.1", "1"),
            &format!("{other:?} is not allowed"),
        );
        refused(
            format,
            &rules,
            &order(symbol, sell, limit, "0.1", "1"),
            &format!("allow_sides: side {sell:?} is not allowed"),
        );
        refused(
            format,
            &rules,
            &order(symbol, buy, market, "0.1", "1"),
            "allow_order_types: ",
        );
        refused(
            format,
            &rules,
            &order(symbol, buy, market, "0.1", "1"),
            &format!("{market:?} is not allowed"),
        );
        // One step over: the smallest increment the text can show.
        refused(
            format,
            &rules,
            &order(symbol, buy, limit, "0.50000001", "1"),
            &format!("max_quantity: {qty} 0.50000001 exceeds this key's limit of 0.5"),
        );
        refused(
            format,
            &rules,
            &order(symbol, buy, limit, "0.5", "60000.00000002"),
            &format!(
                "max_notional: {px} 60000.00000002 × {qty} 0.5 = 30000.00000001 exceeds this key's limit of 30000"
            ),
        );
        // A market order, where the exchange ignores any price: its notional cannot be known.
        let rules_market = limits(&[symbol], &[buy, sell], &[limit, market], "0.5", "30000");
        refused(
            format,
            &rules_market,
            &order(symbol, sell, market, "0.1", "1"),
            "max_notional: an order without a limit price",
        );
        // Case matters: the lists are the exchange's own spelling.
        refused(
            format,
            &rules,
            &order(&symbol.to_lowercase(), buy, limit, "0.1", "1"),
            "allow_symbols",
        );
    }
}

#[test]
fn a_batch_with_one_bad_element_is_refused_whole() {
    let rules =
        |symbol: &str, side: &str, kind: &str| limits(&[symbol], &[side], &[kind], "1", "100000");
    let cases: Vec<(Format, Rules, String)> = vec![
        (
            Format::Bybit,
            rules("BTCUSDT", "Buy", "Limit"),
            payload(
                Format::Bybit,
                r#"{"category":"spot","request":[{"symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.1","price":"50000"},{"symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"1.01","price":"50000"}]}"#,
            ),
        ),
        (
            Format::Okx,
            rules("BTC-USDT", "buy", "limit"),
            format!(
                "2023-11-14T22:13:20.000ZPOST/api/v5/trade/batch-orders{}",
                r#"[{"instId":"BTC-USDT","tdMode":"cash","side":"buy","ordType":"limit","sz":"0.1","px":"50000"},{"instId":"BTC-USDT","tdMode":"cash","side":"buy","ordType":"limit","sz":"1.01","px":"50000"}]"#
            ),
        ),
        (
            Format::Kucoin,
            rules("BTC-USDT", "buy", "limit"),
            format!(
                "{NOW}POST/api/v1/orders/multi{}",
                r#"{"symbol":"BTC-USDT","orderList":[{"clientOid":"a","side":"buy","type":"limit","price":"50000","size":"0.1"},{"clientOid":"b","side":"buy","type":"limit","price":"50000","size":"1.01"}]}"#
            ),
        ),
        (
            Format::Bitget,
            rules("BTCUSDT", "buy", "limit"),
            format!(
                "{NOW}POST/api/v2/spot/trade/batch-orders{}",
                r#"{"symbol":"BTCUSDT","orderList":[{"side":"buy","orderType":"limit","force":"gtc","price":"50000","size":"0.1"},{"side":"buy","orderType":"limit","force":"gtc","price":"50000","size":"1.01"}]}"#
            ),
        ),
        (
            Format::Binance,
            rules("BTCUSDT", "BUY", "LIMIT"),
            format!(
                "batchOrders={}&timestamp={NOW}",
                percent(
                    r#"[{"symbol":"BTCUSDT","side":"BUY","type":"LIMIT","quantity":"0.1","price":"50000","timeInForce":"GTC"},{"symbol":"BTCUSDT","side":"BUY","type":"LIMIT","quantity":"1.01","price":"50000","timeInForce":"GTC"}]"#
                )
            ),
        ),
    ];
    for (format, rules, bad) in cases {
        refused(format, &rules, &bad, "order 2 of 2: max_quantity: ");
        refused(format, &rules, &bad, " 1.01 exceeds this key's limit of 1");
        // The same batch with both elements good passes, and counts two orders.
        let good = bad.replace("1.01", "0.2").replace("1%2E01", "0%2E2");
        assert_eq!(run(format, &rules, &good), Ok(2), "{format}: {good}");
    }
}

fn percent(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[test]
fn binance_order_lists_are_judged_leg_by_leg() {
    let rules = limits(
        &["BTCUSDT"],
        &["BUY", "SELL"],
        &["LIMIT_MAKER", "STOP_LOSS_LIMIT", "LIMIT"],
        "1",
        "100000",
    );
    // OCO (POST /api/v3/orderList/oco): the legs share side and quantity.
    let oco = |above: &str| {
        format!(
            "symbol=BTCUSDT&side=SELL&quantity=1&aboveType={above}&abovePrice=70000&belowType=STOP_LOSS_LIMIT&belowPrice=50000&belowStopPrice=50100&belowTimeInForce=GTC&timestamp={NOW}"
        )
    };
    assert_eq!(run(Format::Binance, &rules, &oco("LIMIT_MAKER")), Ok(2));
    refused(
        Format::Binance,
        &rules,
        &oco("TAKE_PROFIT"),
        "order 1 of 2: allow_order_types: aboveType \"TAKE_PROFIT\"",
    );
    refused(
        Format::Binance,
        &rules,
        &oco("LIMIT_MAKER").replace("abovePrice=70000", "abovePrice=100001"),
        "max_notional: abovePrice 100001 × quantity 1",
    );
    // OTO (POST /api/v3/orderList/oto): working and pending legs, no plain fields at all.
    let oto = format!(
        "symbol=BTCUSDT&workingType=LIMIT&workingSide=BUY&workingPrice=50000&workingQuantity=2&pendingType=LIMIT_MAKER&pendingSide=SELL&pendingQuantity=1&pendingPrice=60000&timestamp={NOW}"
    );
    refused(
        Format::Binance,
        &rules,
        &oto,
        "order 1 of 2: max_quantity: workingQuantity 2 exceeds",
    );
    let otoco = format!(
        "symbol=BTCUSDT&workingType=LIMIT&workingSide=BUY&workingPrice=50000&workingQuantity=1&pendingSide=SELL&pendingQuantity=1&pendingAboveType=LIMIT_MAKER&pendingAbovePrice=90000&pendingBelowType=STOP_LOSS_LIMIT&pendingBelowPrice=40000&pendingBelowStopPrice=40100&timestamp={NOW}"
    );
    assert_eq!(run(Format::Binance, &rules, &otoco), Ok(3));
    refused(
        Format::Binance,
        &rules,
        &otoco.replace("pendingQuantity=1", "pendingQuantity=3"),
        "max_quantity: pendingQuantity 3",
    );
    // Any order field makes a request an order, whatever the endpoint: a bare price.
    refused(
        Format::Binance,
        &rules,
        &format!("symbol=BTCUSDT&price=1&timestamp={NOW}"),
        "allow_sides: the order names no side",
    );
}

#[test]
fn requests_that_are_not_orders_pass_the_order_rules_and_meet_the_others() {
    let mut rules = limits(&["BTCUSDT"], &["BUY"], &["LIMIT"], "1", "1000");
    rules.deny_params = strings(&["address"]);
    rules.timestamp_window_ms = Some(5000);
    for (format, cancel) in [
        (Format::Binance, format!("symbol=DOGEUSDT&orderId=12&timestamp={NOW}")),
        (Format::Bybit, payload(Format::Bybit, r#"{"category":"spot","symbol":"DOGEUSDT","orderId":"1"}"#)),
        (Format::Okx, "2023-11-14T22:13:20.000ZPOST/api/v5/trade/cancel-order{\"instId\":\"DOGE-USDT\",\"ordId\":\"1\"}".to_owned()),
        (Format::Kucoin, format!("{NOW}DELETE/api/v1/orders/5bd6e9286d99522a52e458de")),
        (Format::Bitget, format!("{NOW}GET/api/v2/spot/trade/unfilled-orders?symbol=DOGEUSDT&orderType=market")),
    ] {
        assert_eq!(run(format, &rules, &cancel), Ok(0), "{format}: {cancel}");
    }
    // The other rules still apply to them.
    refused(
        Format::Binance,
        &rules,
        &format!("symbol=X&orderId=1&timestamp={}", NOW - 60_000),
        "ms from the daemon's clock",
    );
    refused(
        Format::Binance,
        &rules,
        &format!("coin=USDT&address=T&timestamp={NOW}"),
        "parameter \"address\" is not allowed",
    );
}

#[test]
fn sizes_in_the_quote_currency_are_checked_directly_against_max_notional() {
    let rules = limits(
        &["BTCUSDT", "BTC-USDT"],
        &["BUY", "Buy", "buy", "sell", "Sell"],
        &["MARKET", "Market", "market"],
        "1",
        "1000",
    );
    let notional = Rules {
        orders: OrderRules {
            max_notional: Some(Decimal::parse("1000").unwrap()),
            ..OrderRules::default()
        },
        ..Rules::default()
    };
    // Binance quoteOrderQty, KuCoin funds: quote quantities.
    let binance =
        |q: &str| format!("symbol=BTCUSDT&side=BUY&type=MARKET&quoteOrderQty={q}&timestamp={NOW}");
    assert_eq!(run(Format::Binance, &notional, &binance("1000")), Ok(1));
    refused(
        Format::Binance,
        &notional,
        &binance("1000.01"),
        "max_notional: quoteOrderQty 1000.01 exceeds this key's limit of 1000",
    );
    // With max_quantity set, a quote-sized order has no base quantity to check: refused.
    refused(
        Format::Binance,
        &rules,
        &binance("10"),
        "max_quantity: the order is sized in the quote currency (quoteOrderQty \"10\")",
    );
    let kucoin = |f: &str| {
        payload(
            Format::Kucoin,
            &format!(r#"{{"symbol":"BTC-USDT","side":"buy","type":"market","funds":"{f}"}}"#),
        )
    };
    assert_eq!(run(Format::Kucoin, &notional, &kucoin("999.99")), Ok(1));
    refused(
        Format::Kucoin,
        &notional,
        &kucoin("1000.00000001"),
        "max_notional: funds 1000.00000001",
    );
    // Bybit's spot market buy: qty is in the quote coin unless marketUnit says baseCoin.
    let bybit = |extra: &str, side: &str| {
        payload(
            Format::Bybit,
            &format!(
                r#"{{"category":"spot","symbol":"BTCUSDT","side":"{side}","orderType":"Market","qty":"1001"{extra}}}"#
            ),
        )
    };
    refused(
        Format::Bybit,
        &notional,
        &bybit("", "Buy"),
        "max_notional: qty 1001 exceeds",
    );
    refused(
        Format::Bybit,
        &notional,
        &bybit(r#","marketUnit":"baseCoin""#, "Buy"),
        "without a limit price",
    );
    refused(
        Format::Bybit,
        &notional,
        &bybit("", "Sell"),
        "without a limit price",
    );
    // OKX's spot market buy: sz in the quote currency unless tgtCcy is base_ccy.
    let okx = |extra: &str| {
        payload(
            Format::Okx,
            &format!(
                r#"{{"instId":"BTC-USDT","tdMode":"cash","side":"buy","ordType":"market","sz":"1001"{extra}}}"#
            ),
        )
    };
    refused(
        Format::Okx,
        &notional,
        &okx(""),
        "max_notional: sz 1001 exceeds",
    );
    refused(
        Format::Okx,
        &notional,
        &okx(r#","tgtCcy":"base_ccy""#),
        "without a limit price",
    );
    // Bitget's market buy: size in the quote coin.
    let bitget = |size: &str| {
        payload(
            Format::Bitget,
            &format!(
                r#"{{"symbol":"BTCUSDT","side":"buy","orderType":"market","force":"gtc","size":"{size}"}}"#
            ),
        )
    };
    assert_eq!(run(Format::Bitget, &notional, &bitget("1000")), Ok(1));
    refused(
        Format::Bitget,
        &notional,
        &bitget("1000.1"),
        "max_notional: size 1000.1 exceeds",
    );
    // A market order's price is ignored by the exchange, so it does not bound the notional.
    let market_with_price = payload(
        Format::Bybit,
        r#"{"category":"linear","symbol":"BTCUSDT","side":"Buy","orderType":"Market","qty":"100","price":"0.01"}"#,
    );
    refused(
        Format::Bybit,
        &notional,
        &market_with_price,
        "without a limit price",
    );
    // No price and no quote quantity: refused when max_notional is set.
    refused(
        Format::Binance,
        &notional,
        &format!("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.001&timestamp={NOW}"),
        "max_notional: an order without a limit price (type \"MARKET\")",
    );
}

#[test]
fn numbers_are_exact_whether_strings_or_json_numbers_and_odd_spellings_are_refused() {
    let rules = limits(&["BTC-USDT"], &["buy"], &["limit"], "0.3", "100000");
    let order = |qty: &str| {
        payload(
            Format::Kucoin,
            &format!(
                r#"{{"symbol":"BTC-USDT","side":"buy","type":"limit","price":"1","size":{qty}}}"#
            ),
        )
    };
    // 0.1 + 0.2 in a float is 0.30000000000000004; as decimals 0.3 passes and the next
    // representable step does not.
    assert_eq!(run(Format::Kucoin, &rules, &order("0.3")), Ok(1));
    assert_eq!(run(Format::Kucoin, &rules, &order("\"0.3\"")), Ok(1));
    assert_eq!(
        run(Format::Kucoin, &rules, &order("\"0.29999999999999999999\"")),
        Ok(1)
    );
    refused(
        Format::Kucoin,
        &rules,
        &order("0.30000000000000004"),
        "max_quantity: size 0.30000000000000004 exceeds",
    );
    refused(
        Format::Kucoin,
        &rules,
        &order("\"0.30000000000000000001\""),
        "exceeds this key's limit of 0.3",
    );
    for (text, why) in [
        ("3e-1", "an exponent is not allowed"),
        ("\"3E-1\"", "an exponent is not allowed"),
        ("\"-1\"", "a sign is not allowed"),
        ("-0.1", "a sign is not allowed"),
        ("\"+0.1\"", "a sign is not allowed"),
        ("\"00.1\"", "a leading zero is not allowed"),
        ("\".1\"", "a point needs digits on both sides"),
        ("\"0.1 \"", "only digits"),
        ("\"0x1\"", "only digits"),
        ("true", "only digits"),
        ("null", "only digits"),
        ("[\"0.1\"]", "is not a decimal"),
    ] {
        refused(Format::Kucoin, &rules, &order(text), why);
    }
    // The strict JSON parser already refuses leading zeros in numbers.
    refused(
        Format::Kucoin,
        &rules,
        &order("00.1"),
        "not a valid kucoin signing string",
    );
    // Field names are matched ignoring case, as duplicates are.
    refused(
        Format::Kucoin,
        &rules,
        &payload(
            Format::Kucoin,
            r#"{"symbol":"BTC-USDT","SIDE":"buy","Type":"limit","price":"1","SIZE":"5"}"#,
        ),
        "max_quantity: SIZE 5",
    );
}

#[test]
fn order_rules_on_formats_that_hide_the_order_are_config_errors() {
    let rules = Rules {
        orders: OrderRules {
            max_notional: Some(Decimal::parse("10").unwrap()),
            ..OrderRules::default()
        },
        ..Rules::default()
    };
    let kraken = validate(Some(Format::Kraken), &rules)
        .unwrap_err()
        .to_string();
    assert_eq!(
        kraken,
        "max_notional: order rules cannot be judged on kraken payloads: the order's fields are hashed, only the path is signed; see docs/POLICY.md"
    );
    let coinbase = validate(Some(Format::CoinbaseJwt), &rules)
        .unwrap_err()
        .to_string();
    assert!(
        coinbase.contains("the JWT signs the path only"),
        "{coinbase}"
    );
    assert!(validate(Some(Format::Raw), &rules).is_err());
    for format in FORMATS {
        assert_eq!(validate(Some(format), &rules), Ok(()));
    }
    // Should the format come from the key instead: refused at signing, whatever the bytes.
    let ctx = Context {
        now_ms: NOW,
        api_key: None,
    };
    let refusal = judge(Some(Format::Kraken), &[b'/'; 40], &rules, ctx).unwrap_err();
    assert!(
        matches!(
            refusal,
            Refusal::NotJudgeable {
                rule: "max_notional",
                ..
            }
        ),
        "{refusal:?}"
    );
}

#[test]
fn orders_per_minute_refuses_a_request_with_more_orders_than_the_limit() {
    let rules = Rules {
        orders: OrderRules {
            orders_per_minute: Some(1),
            ..OrderRules::default()
        },
        ..Rules::default()
    };
    let two = "2023-11-14T22:13:20.000ZPOST/api/v5/trade/batch-orders[{\"instId\":\"A\",\"side\":\"buy\",\"ordType\":\"limit\",\"sz\":\"1\",\"px\":\"1\"},{\"instId\":\"A\",\"side\":\"buy\",\"ordType\":\"limit\",\"sz\":\"1\",\"px\":\"1\"}]";
    refused(
        Format::Okx,
        &rules,
        two,
        "orders_per_minute: a request of 2 orders exceeds this key's limit of 1 a minute",
    );
}

/// A decimal text in the grammar.
fn decimal_text() -> impl Strategy<Value = String> {
    ("(0|[1-9][0-9]{0,6})", proptest::option::of("[0-9]{1,9}")).prop_map(|(whole, fraction)| {
        match fraction {
            Some(fraction) => format!("{whole}.{fraction}"),
            None => whole,
        }
    })
}

/// Parts per 10^9, exactly, for texts of at most 7 + 9 digits.
fn nanos(text: &str) -> u128 {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let fraction = format!("{fraction:0<9}");
    whole.parse::<u128>().unwrap() * 1_000_000_000 + fraction.parse::<u128>().unwrap()
}

proptest! {
    /// No quantity or price accepted by the rules is beyond the limit: checked against an
    /// independent integer computation in parts per 10^9 (a notional in parts per 10^18).
    #[test]
    fn no_accepted_order_is_beyond_a_limit(
        max_qty in decimal_text(),
        max_notional in decimal_text(),
        qty in decimal_text(),
        price in decimal_text(),
        as_number in any::<bool>(),
    ) {
        let rules = limits(&["BTC-USDT"], &["buy"], &["limit"], &max_qty, &max_notional);
        let quote = |text: &str| if as_number { text.to_owned() } else { format!("\"{text}\"") };
        let body = format!(
            r#"{{"instId":"BTC-USDT","tdMode":"cash","side":"buy","ordType":"limit","sz":{},"px":{}}}"#,
            quote(&qty),
            quote(&price)
        );
        let accepted = run(Format::Okx, &rules, &payload(Format::Okx, &body)).is_ok();
        let within = nanos(&qty) <= nanos(&max_qty)
            && nanos(&qty) * nanos(&price) <= nanos(&max_notional) * 1_000_000_000;
        prop_assert_eq!(accepted, within, "sz {} px {} limits {} {}", qty, price, max_qty, max_notional);
    }

    /// Sums that a float gets wrong: a + b against a limit of exactly a + b (and one step
    /// more), in Binance's quoteOrderQty, the limit and the value both written exactly.
    #[test]
    fn float_sums_do_not_slip_past_a_limit(a in 1u64..1000, b in 1u64..1000, scale in 1usize..6) {
        let text = |n: u64| {
            let digits = format!("{n:0>width$}", width = scale + 1);
            let (whole, fraction) = digits.split_at(digits.len() - scale);
            format!("{whole}.{fraction}")
        };
        let limit = text(a + b);
        let rules = Rules {
            orders: OrderRules { max_notional: Some(Decimal::parse(&limit).unwrap()), ..OrderRules::default() },
            ..Rules::default()
        };
        let order = |q: &str| format!("symbol=X&side=BUY&type=MARKET&quoteOrderQty={q}&timestamp={NOW}");
        prop_assert!(run(Format::Binance, &rules, &order(&limit)).is_ok());
        let over = format!("{limit}1");
        prop_assert!(run(Format::Binance, &rules, &order(&over)).is_err());
    }
}

/// Bybit signs no method, so a form after recv_window could be a POST body: judged too.
#[test]
fn a_bybit_form_is_judged_like_a_body() {
    let rules = limits(&["BTCUSDT"], &["Buy"], &["Limit"], "1", "1000");
    let form = format!(
        "{NOW}{API_KEY}5000category=spot&symbol=DOGEUSDT&side=Buy&orderType=Limit&qty=1&price=1"
    );
    refused(
        Format::Bybit,
        &rules,
        &form,
        "allow_symbols: symbol \"DOGEUSDT\"",
    );
    let query = format!("{NOW}{API_KEY}5000category=spot&symbol=DOGEUSDT&orderId=1");
    assert_eq!(run(Format::Bybit, &rules, &query), Ok(0));
}
