//! Data-driven tests over daemon/testdata/payload/<format>/: every file is one payload, named
//! `accept-<what>` or `refuse-<tag>--<what>`, where the tag is the refusal expected (age's
//! habit: the outcome is in the file name). Plus the documented signatures that pin the
//! accepted examples as the exchanges' own signing strings, the issue's bypasses by name, and
//! property tests.
//!
//! Sources of the `accept-doc-*` files:
//! - binance: binance-spot-api-docs rest-api.md, "SIGNED Endpoint Examples for POST
//!   /api/v3/order" (ASCII and non-ASCII examples); example 3 (query + body) from the same
//!   file before commit f83a5bf (2025-12-17).
//! - bybit: bybit-exchange/docs docs/v5/guide.mdx, "Create A Request" (GET and POST);
//!   the place-order body from docs/v5/order/create-order.mdx's request example.
//! - okx: OKX API v5 docs, REST Authentication, Signature (timestamp 2020-12-08T09:08:57.715Z,
//!   `GET /api/v5/account/balance?ccy=BTC`, the set-leverage body); place-order body from
//!   "POST /api/v5/trade/order" request example.
//! - kucoin: KuCoin API docs, "Signing a Message" (STRING-TO-SIGN =
//!   `1547015186532POST/api/v1/deposit-addresses{"currency":"BTC"}`, and the GET note
//!   `/api/v1/deposit-addresses?currency=BTC`).
//! - bitget: Bitget API docs, Quick Start, Signature (`GET /api/mix/v2/market/depth?limit=20&
//!   symbol=BTCUSDT`, whose printed timestamp 16273667805456 has 14 digits: the verbatim
//!   string is refused and the 13-digit one accepted); spot Place Order request example.
//! - kraken: Kraken REST API, Authentication (API-Sign example, `/0/private/AddOrder`).
//! - coinbase-jwt: built per Coinbase's "API key authentication" (claims sub, iss "cdp",
//!   nbf, exp = nbf + 120, uri "GET api.coinbase.com/api/v3/brokerage/accounts") and the CDP
//!   SDK's `uris` form: Coinbase publishes no signing input verbatim.

use std::path::{Path, PathBuf};

use super::json::Value;
use super::rules::Refusal;
use super::rules::names_at_depth;
use super::{Context, Format, ParseErrorKind, Rules, judge};

const API_KEY: &str = "XXXXXXXXXX";

/// The clock each format's corpus is judged at: its documented example's own time.
fn now_ms(format: Format) -> u64 {
    match format {
        Format::Binance => 1_499_827_319_559,
        Format::Bybit => 1_658_384_314_791,
        Format::Okx => 1_607_418_537_715,
        Format::Kucoin => 1_547_015_186_532,
        Format::Bitget => 1_659_076_670_000,
        Format::CoinbaseJwt => 1_700_000_000_000,
        Format::Kraken | Format::Raw => 0,
    }
}

/// The rules a careful operator would set for each exchange (docs/POLICY.md).
fn rules(format: Format) -> Rules {
    let strings = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let mut rules = Rules {
        deny_params: strings(&["address"]),
        timestamp_window_ms: Some(5000),
        ..Rules::default()
    };
    match format {
        Format::Binance | Format::Bybit => rules.max_recv_window_ms = Some(10_000),
        Format::Okx => {
            rules.deny_paths = strings(&["/api/v5/asset/withdrawal", "/api/v5/asset/transfer"]);
        }
        Format::Kucoin => {
            rules.deny_paths = strings(&[
                "/api/v1/withdrawals",
                "/api/v3/withdrawals",
                "/api/v2/accounts/inner-transfer",
                "/api/v3/accounts/universal-transfer",
            ]);
        }
        Format::Bitget => {
            rules.deny_paths = strings(&[
                "/api/v2/spot/wallet/withdrawal",
                "/api/v2/spot/wallet/transfer",
                "/api/v2/spot/wallet/subaccount-transfer",
            ]);
        }
        Format::Kraken => {
            rules = Rules {
                deny_paths: strings(&["/0/private/Withdraw", "/0/private/WalletTransfer"]),
                ..Rules::default()
            };
        }
        Format::CoinbaseJwt => {
            rules = Rules {
                allow_paths: strings(&["/api/v3/brokerage/"]),
                deny_paths: strings(&["/api/v3/brokerage/portfolios/move_funds"]),
                timestamp_window_ms: Some(5000),
                max_token_lifetime_secs: Some(120),
                ..Rules::default()
            };
        }
        Format::Raw => {}
    }
    rules
}

fn tag(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::Unparsed { .. } => "unparsed",
        Refusal::DeniedParam { .. } => "param",
        Refusal::DeniedPath { .. } | Refusal::PathNotAllowed { .. } | Refusal::NoPath => "path",
        Refusal::NoTimestamp { .. } => "notimestamp",
        Refusal::Stale { .. } => "stale",
        Refusal::RecvWindow { .. } => "recv",
        Refusal::TokenLifetime { .. } => "lifetime",
        _ => "other",
    }
}

fn corpus_dir(format: Format) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/payload")
        .join(format.name())
}

#[test]
fn every_corpus_file_gets_the_outcome_its_name_says() {
    let mut counts = (0, 0);
    for format in Format::ALL {
        if format == Format::Raw {
            continue;
        }
        let rules = rules(format);
        super::validate(Some(format), &rules).unwrap();
        let ctx = Context {
            now_ms: now_ms(format),
            api_key: Some(API_KEY),
        };
        let mut entries: Vec<_> = std::fs::read_dir(corpus_dir(format))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        entries.sort();
        let mut accepted = 0;
        for path in entries {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let payload = std::fs::read(&path).unwrap();
            let verdict = judge(Some(format), &payload, &rules, ctx);
            if name.starts_with("accept-") {
                // Judged at the payload's own time: the examples span years.
                let parsed = super::parse(format, &payload, Some(API_KEY)).unwrap_or_else(|err| {
                    panic!("{format}/{name}: {err}");
                });
                let own = Context {
                    now_ms: parsed.and_then(|p| p.timestamp_ms).unwrap_or(ctx.now_ms),
                    ..ctx
                };
                let verdict = judge(Some(format), &payload, &rules, own);
                assert!(verdict.is_ok(), "{format}/{name}: {}", verdict.unwrap_err());
                accepted += 1;
                counts.0 += 1;
            } else {
                let (expected, _) = name
                    .strip_prefix("refuse-")
                    .and_then(|rest| rest.split_once("--"))
                    .unwrap_or_else(|| panic!("{format}/{name}: not accept- or refuse-TAG--"));
                let refusal = verdict.expect_err(&format!("{format}/{name} was accepted"));
                assert_eq!(tag(&refusal), expected, "{format}/{name}: {refusal}");
                let message = refusal.to_string();
                assert!(!message.contains('\n') && message.len() < 200, "{message}");
                counts.1 += 1;
            }
        }
        assert!(accepted >= 2, "{format}: fewer than two accepted examples");
    }
    assert!(counts.0 >= 15 && counts.1 >= 80, "{counts:?}");
}

fn hmac(algorithm: aws_lc_rs::hmac::Algorithm, key: &[u8], message: &[u8]) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(algorithm, key);
    aws_lc_rs::hmac::sign(&key, message).as_ref().to_vec()
}

fn corpus_file(format: Format, name: &str) -> Vec<u8> {
    std::fs::read(corpus_dir(format).join(name)).unwrap()
}

/// The accepted examples are the exchanges' own signing strings: each reproduces the
/// signature its documentation prints, under the documented example secret.
#[test]
fn documented_example_signatures_reproduce_over_the_corpus_files() {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    let binance = corpus_file(Format::Binance, "accept-doc-example-ascii");
    let secret = b"NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
    assert_eq!(
        hex::encode(hmac(aws_lc_rs::hmac::HMAC_SHA256, secret, &binance)),
        "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    );
    let binance = corpus_file(Format::Binance, "accept-doc-example-non-ascii");
    assert_eq!(
        hex::encode(hmac(aws_lc_rs::hmac::HMAC_SHA256, secret, &binance)),
        "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3"
    );
    let binance = corpus_file(Format::Binance, "accept-doc-example-3-query-plus-body");
    assert_eq!(
        hex::encode(hmac(aws_lc_rs::hmac::HMAC_SHA256, secret, &binance)),
        "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"
    );

    let kucoin = corpus_file(Format::Kucoin, "accept-doc-example-deposit-address");
    assert_eq!(
        STANDARD.encode(hmac(
            aws_lc_rs::hmac::HMAC_SHA256,
            b"f03a5284-5c39-4aaa-9b20-dea10bdcf8e3",
            &kucoin
        )),
        "7QP/oM0ykidMdrfNEUmng8eZjg/ZvPafjIqmxiVfYu4="
    );

    let kraken = corpus_file(Format::Kraken, "accept-doc-example-add-order");
    let secret = STANDARD
        .decode("kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==")
        .unwrap();
    assert_eq!(
        STANDARD.encode(hmac(aws_lc_rs::hmac::HMAC_SHA512, &secret, &kraken)),
        "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
    );
}

fn judged(format: Format, payload: &str) -> Result<Option<super::ParsedRequest>, Refusal> {
    judge(
        Some(format),
        payload.as_bytes(),
        &rules(format),
        Context {
            now_ms: now_ms(format),
            api_key: Some(API_KEY),
        },
    )
}

/// Issue 12's review, one bypass each, by the refusal each now gets.
#[test]
fn the_reviews_bypasses_are_refused_for_the_right_reason() {
    let address = Refusal::DeniedParam {
        name: "address".into(),
    };
    // "\u0061ddress" in KuCoin/OKX form.
    let kucoin = r#"1547015186532POST/api/v1/orders{"symbol":"BTC-USDT","\u0061ddress":"T"}"#;
    assert_eq!(judged(Format::Kucoin, kucoin).unwrap_err(), address);
    let okx = r#"2020-12-08T09:08:57.715ZPOST/api/v5/trade/order{"\u0061ddress":"T"}"#;
    assert_eq!(judged(Format::Okx, okx).unwrap_err(), address);
    // Unicode case: long s and the Kelvin sign fold as Java's equalsIgnoreCase folds them.
    for spelled in [r"addre\u017fs", r"ADDRE\u017fS", "addreſs"] {
        let payload = format!(r#"1547015186532POST/api/v1/orders{{"{spelled}":"T"}}"#);
        let refusal = judged(Format::Kucoin, &payload).unwrap_err();
        assert!(matches!(refusal, Refusal::DeniedParam { .. }), "{refusal}");
    }
    let kelvin = Rules {
        deny_params: vec!["kind".into()],
        ..Rules::default()
    };
    let payload = "1547015186532POST/api/v1/orders{\"\u{212a}ind\":1}";
    let ctx = Context {
        now_ms: 0,
        api_key: None,
    };
    let refusal = judge(Some(Format::Kucoin), payload.as_bytes(), &kelvin, ctx).unwrap_err();
    assert!(matches!(refusal, Refusal::DeniedParam { .. }), "{refusal}");
    // A nested JSON object.
    let nested = r#"1547015186532POST/api/v1/orders{"a":{"b":{"\u0061ddress":"T"}}}"#;
    assert_eq!(judged(Format::Kucoin, nested).unwrap_err(), address);
    // `&timestamp=NOW&` inside a JSON string value does not stand for the stale real one.
    let decoy = r#"1547015126532POST/api/v1/orders{"remark":"&timestamp=1547015186532&"}"#;
    assert_eq!(
        judged(Format::Kucoin, decoy).unwrap_err(),
        Refusal::Stale {
            skew_ms: 60_000,
            window_ms: 5000
        }
    );
    // Two timestamp keys: no parse, whichever the exchange would read.
    let twice = "timestamp=1499827319559&symbol=X&timestamp=1499827259559";
    match judged(Format::Binance, twice).unwrap_err() {
        Refusal::Unparsed { error, .. } => {
            assert_eq!(error.kind, ParseErrorKind::Duplicate("timestamp".into()));
            assert_eq!(error.at, 33);
        }
        other => panic!("{other}"),
    }
    let json_twice = r#"1658384314791XXXXXXXXXX5000{"timestamp":1,"timestamp":2}"#;
    assert!(matches!(
        judged(Format::Bybit, json_twice).unwrap_err(),
        Refusal::Unparsed { .. }
    ));
    // recvWindow=99999999.
    let recv = "symbol=X&recvWindow=99999999&timestamp=1499827319559";
    assert_eq!(
        judged(Format::Binance, recv).unwrap_err(),
        Refusal::RecvWindow {
            recv_window_ms: 99_999_999,
            max_ms: 10_000
        }
    );
}

/// Binance's seam: the split picks the longest known name, but a denied name ending the seam's
/// text is refused whatever the split, so the choice cannot hide one.
#[test]
fn a_denied_name_ending_binances_seam_is_refused_whatever_the_split() {
    let rules = Rules {
        deny_params: vec!["Price".into()],
        ..Rules::default()
    };
    let ctx = Context {
        now_ms: 0,
        api_key: None,
    };
    let seam = b"symbol=X&timeInForce=GTCstopPrice=1&timestamp=1499827319559";
    let parsed = super::parse(Format::Binance, seam, None).unwrap().unwrap();
    assert_eq!(parsed.top_level("stopPrice"), Some("1"));
    assert_eq!(
        judge(Some(Format::Binance), seam, &rules, ctx),
        Err(Refusal::DeniedParam {
            name: "Price".into()
        })
    );
    let apart = b"symbol=X&timeInForce=GTC&stopPrice=1&timestamp=1499827319559";
    assert!(judge(Some(Format::Binance), apart, &rules, ctx).is_ok());
}

#[test]
fn parsed_requests_expose_what_the_rules_and_later_limits_read() {
    let parsed = judged(
        Format::Okx,
        r#"2020-12-08T09:08:57.715ZPOST/api/v5/trade/order{"instId":"BTC-USDT","side":"buy","ordType":"limit","px":2.15,"sz":"2","attachAlgoOrds":[{"tpTriggerPx":"3"}]}"#,
    )
    .unwrap()
    .unwrap();
    assert_eq!(parsed.method, Some(super::Method::Post));
    assert_eq!(parsed.path.as_deref(), Some("/api/v5/trade/order"));
    assert_eq!(parsed.timestamp_ms, Some(1_607_418_537_715));
    let value = |field: &Option<super::Field>| field.as_ref().and_then(|f| f.value.clone());
    // The order, and the attached take-profit, which inherits the order's fields.
    assert_eq!(parsed.orders.len(), 1);
    assert_eq!(value(&parsed.orders[0].symbol).as_deref(), Some("BTC-USDT"));
    assert_eq!(value(&parsed.orders[0].price).as_deref(), Some("2.15"));
    assert_eq!(value(&parsed.orders[0].quantity).as_deref(), Some("2"));
    assert_eq!(names_at_depth(&parsed, 2), ["tpTriggerPx"]);

    let parsed = judged(
        Format::Binance,
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTCquantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559",
    )
    .unwrap()
    .unwrap();
    let names: Vec<_> = parsed.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "symbol",
            "side",
            "type",
            "timeInForce",
            "quantity",
            "price",
            "recvWindow",
            "timestamp"
        ]
    );
    assert_eq!(parsed.top_level("timeInForce"), Some("GTC"));
    assert_eq!(
        parsed.orders[0]
            .quantity
            .as_ref()
            .and_then(|f| f.value.as_deref()),
        Some("1")
    );
    assert_eq!(parsed.recv_window_ms, Some(5000));

    let parsed = judged(Format::Bybit, "1658384314791XXXXXXXXXX5000category=option")
        .unwrap()
        .unwrap();
    assert_eq!(parsed.recv_window_ms, Some(5000));
    assert_eq!(parsed.query.as_deref(), Some("category=option"));
}

#[test]
fn rules_without_a_format_raw_with_rules_and_unjudgeable_rules_fail_closed() {
    let rules = rules(Format::Binance);
    let ctx = Context {
        now_ms: 0,
        api_key: None,
    };
    // A section without a format may hold rules (each key's stored format judges them), but
    // a key with no format at all refuses every payload.
    assert_eq!(judge(None, b"x", &rules, ctx), Err(Refusal::NoFormat));
    assert_eq!(super::validate(None, &rules), Ok(()));
    // Rules that no one format can judge together are a config error even without a format.
    let no_format_can = Rules {
        deny_paths: vec!["/api/v5/asset/withdrawal".into()],
        max_recv_window_ms: Some(5000),
        ..Rules::default()
    };
    assert_eq!(
        super::validate(None, &no_format_can).unwrap_err().field,
        "format"
    );
    assert_eq!(
        judge(Some(Format::Raw), b"x", &rules, ctx),
        Err(Refusal::RawWithRules)
    );
    let deny_only = Rules {
        deny_params: vec!["address".into()],
        ..Rules::default()
    };
    assert!(
        super::validate(Some(Format::Raw), &deny_only)
            .unwrap_err()
            .to_string()
            .starts_with("format: raw")
    );
    assert!(judge(Some(Format::Raw), b"x", &deny_only, ctx).is_err());
    for (format, rule) in [
        (Format::Kraken, "deny_params"),
        (Format::CoinbaseJwt, "deny_params"),
        (Format::Okx, "max_recv_window_ms"),
    ] {
        let err = super::validate(Some(format), &rules).unwrap_err();
        assert_eq!(err.field, rule, "{format}: {err}");
    }
    let path_rule = Rules {
        deny_paths: vec!["/sapi/v1/capital/withdraw/apply".into()],
        ..Rules::default()
    };
    assert!(
        super::validate(Some(Format::Binance), &path_rule)
            .unwrap_err()
            .field
            == "deny_paths"
    );
    assert!(
        super::validate(
            Some(Format::Kraken),
            &Rules {
                deny_paths: vec!["0/x".into()],
                ..Rules::default()
            }
        )
        .is_err()
    );
    // No rules: nothing is parsed, any bytes pass, whatever the format.
    for format in [None, Some(Format::Raw), Some(Format::Okx)] {
        assert_eq!(judge(format, &[0xff], &Rules::default(), ctx), Ok(None));
        assert_eq!(super::validate(format, &Rules::default()), Ok(()));
    }
    // Bybit signs the API key id: a key without one refuses every payload.
    let bybit = judge(
        Some(Format::Bybit),
        b"1658384314791XXXXXXXXXX5000category=spot",
        &Rules {
            timestamp_window_ms: Some(u64::MAX),
            ..Rules::default()
        },
        ctx,
    );
    assert!(matches!(
        bybit,
        Err(Refusal::Unparsed { error, .. }) if error.kind == ParseErrorKind::NoApiKey
    ));
}

#[test]
fn format_names_round_trip_through_from_str_and_serde() {
    for format in Format::ALL {
        assert_eq!(format.name().parse::<Format>(), Ok(format));
        let quoted = serde_json::to_string(&format).unwrap();
        assert_eq!(quoted, format!("\"{}\"", format.name()));
        assert_eq!(serde_json::from_str::<Format>(&quoted).unwrap(), format);
    }
    let err = "Binance".parse::<Format>().unwrap_err().to_string();
    assert!(
        err.contains("coinbase-jwt") && err.contains("\"Binance\""),
        "{err}"
    );
}

#[test]
fn refusals_quote_no_more_than_a_short_excerpt() {
    let long_key = format!("{}address", "k".repeat(500));
    let payload = format!(r#"1547015186532POST/api/v1/orders{{"{long_key}":1,"{long_key}":2}}"#);
    let message = judged(Format::Kucoin, &payload).unwrap_err().to_string();
    assert!(message.len() < 160, "{message}");
    assert!(!message.contains(&long_key));
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

use proptest::prelude::*;

/// Object keys: short, from a small alphabet so that collisions (and their refusal) happen.
fn key() -> impl Strategy<Value = String> {
    "[a-zA-Z_é😀\"\\\\/]{1,6}"
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,8})?([eE][+-]?[0-9]{1,2})?".prop_map(Value::Number),
        "[ -~é😀\u{7f}\n\t]{0,12}".prop_map(Value::String),
    ]
}

/// Random JSON without duplicate keys (ignoring ASCII case) and without `address`.
fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..5).prop_map(|members| {
                let mut unique: Vec<(String, Value)> = Vec::new();
                for (key, value) in members {
                    if !key.eq_ignore_ascii_case("address")
                        && !unique.iter().any(|(k, _)| k.eq_ignore_ascii_case(&key))
                    {
                        unique.push((key, value));
                    }
                }
                Value::Object(unique)
            }),
        ]
    })
}

fn object() -> impl Strategy<Value = Value> {
    value().prop_map(|value| match value {
        Value::Object(_) => value,
        other => Value::Object(vec![("v".into(), other)]),
    })
}

/// JSON text for `value`; `escape_all` writes every non-alphanumeric character (and with it
/// every key's letters when `escape_keys`) as `\u` escapes, surrogate pairs included.
fn to_text(value: &Value, escape_all: bool, escape_keys: bool, out: &mut String) {
    let string = |text: &str, escape: bool, out: &mut String| {
        out.push('"');
        for c in text.chars() {
            let mut units = [0u16; 2];
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if escape || (c as u32) < 0x20 => {
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    };
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(text) => out.push_str(text),
        Value::String(text) => string(text, escape_all, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                to_text(item, escape_all, escape_keys, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(key, escape_keys, out);
                out.push(':');
                to_text(item, escape_all, escape_keys, out);
            }
            out.push('}');
        }
    }
}

/// Puts `{"<spelling of address>": leaf}` at `depth` below the object's first member.
fn with_denied_key(mut value: Value, spelling: String, depth: usize, leaf: Value) -> Value {
    let mut inner = Value::Object(vec![(spelling, leaf)]);
    for level in 0..depth {
        inner = if level % 2 == 0 {
            Value::Array(vec![inner])
        } else {
            Value::Object(vec![("wrap".into(), inner)])
        };
    }
    if let Value::Object(members) = &mut value {
        members.retain(|(k, _)| !k.eq_ignore_ascii_case("hidden"));
        members.insert(0, ("hidden".into(), inner));
    }
    value
}

fn from_serde(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Number(n.to_string()),
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(items) => Value::Array(items.iter().map(from_serde).collect()),
        serde_json::Value::Object(map) => {
            let mut members: Vec<_> = map
                .iter()
                .map(|(k, v)| (k.clone(), from_serde(v)))
                .collect();
            members.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(members)
        }
    }
}

/// Sorts object members and turns numbers into serde_json's rendering, to compare with it.
fn normalised(value: &Value) -> Value {
    match value {
        Value::Number(text) => from_serde(&serde_json::from_str(text).unwrap_or_default()),
        Value::Array(items) => Value::Array(items.iter().map(normalised).collect()),
        Value::Object(members) => {
            let mut members: Vec<_> = members
                .iter()
                .map(|(k, v)| (k.clone(), normalised(v)))
                .collect();
            members.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(members)
        }
        other => other.clone(),
    }
}

/// `address` in random case.
fn address_spelling() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<bool>(), 7).prop_map(|upper| {
        "address"
            .chars()
            .zip(upper)
            .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Valid JSON round-trips: the parse is the value that was written, however escaped,
    /// and serde_json reads the same text the same way.
    #[test]
    fn random_json_round_trips_and_agrees_with_serde_json(
        value in object(), escape_all: bool, escape_keys: bool,
    ) {
        let mut text = String::new();
        to_text(&value, escape_all, escape_keys, &mut text);
        let parsed = super::json::parse_body(text.as_bytes(), 0).unwrap();
        prop_assert_eq!(&parsed, &value);
        let theirs: serde_json::Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(normalised(&parsed), from_serde(&theirs));
    }

    /// A denied key at any depth, in any case, escaped or not, is always refused: in a
    /// KuCoin body, an OKX body and a Bybit body.
    #[test]
    fn a_denied_json_key_at_any_depth_is_always_refused(
        value in object(), spelling in address_spelling(), depth in 0usize..8,
        leaf in scalar(), escape_keys: bool,
    ) {
        let value = with_denied_key(value, spelling, depth, leaf);
        let mut body = String::new();
        to_text(&value, false, escape_keys, &mut body);
        for (format, prefix) in [
            (Format::Kucoin, "1547015186532POST/api/v1/orders"),
            (Format::Okx, "2020-12-08T09:08:57.715ZPOST/api/v5/trade/order"),
            (Format::Bybit, "1658384314791XXXXXXXXXX5000"),
        ] {
            let refusal = judged(format, &format!("{prefix}{body}")).unwrap_err();
            prop_assert!(matches!(refusal, Refusal::DeniedParam { .. }), "{}", refusal);
        }
    }

    /// Random forms round-trip through Binance's parser, and a denied name anywhere in one
    /// (any case, any letters percent-encoded) is always refused.
    #[test]
    fn random_forms_round_trip_and_a_denied_name_is_always_refused(
        pairs in prop::collection::vec(("[a-z][a-zA-Z]{0,7}", "[ -~é]{0,8}"), 0..8),
        spelling in address_spelling(), encode in prop::collection::vec(any::<bool>(), 7),
        position in 0usize..9,
    ) {
        let mut unique: Vec<(String, String)> = Vec::new();
        for (name, value) in pairs {
            if !name.eq_ignore_ascii_case("address")
                && !name.eq_ignore_ascii_case("timestamp")
                && !name.eq_ignore_ascii_case("recvWindow")
                && !unique.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name))
            {
                unique.push((name, value));
            }
        }
        let encode_value = |value: &str| -> String {
            form_urlencoded::byte_serialize(value.as_bytes()).collect()
        };
        let mut text: Vec<String> = unique
            .iter()
            .map(|(name, value)| format!("{name}={}", encode_value(value)))
            .collect();
        text.push("timestamp=1499827319559".into());
        let clean = text.join("&");
        let parsed = super::binance::parse(clean.as_bytes()).unwrap();
        let got: Vec<(String, String)> = parsed
            .params
            .iter()
            .map(|p| (p.name.clone(), p.value.clone().unwrap_or_default()))
            .collect();
        let mut want = unique.clone();
        want.push(("timestamp".into(), "1499827319559".into()));
        prop_assert_eq!(got, want);

        let name: String = spelling
            .chars()
            .zip(encode)
            .map(|(c, enc)| if enc { format!("%{:02X}", c as u32) } else { c.to_string() })
            .collect();
        text.insert(position.min(text.len()), format!("{name}=TXevil"));
        let refusal = judged(Format::Binance, &text.join("&")).unwrap_err();
        prop_assert!(matches!(refusal, Refusal::DeniedParam { .. }), "{}", refusal);
    }

    /// No input panics any parser, and whatever JSON the strict parser accepts serde_json
    /// accepts too.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        for format in Format::ALL {
            let _ = super::parse(format, &bytes, Some(API_KEY));
        }
        if super::json::parse_body(&bytes, 0).is_ok() {
            prop_assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_ok());
        }
    }
}
