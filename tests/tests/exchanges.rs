//! keyward-client's exchange helpers against the real keywardd: each reproduces its
//! exchange's published worked example where there is one (Binance REST and WebSocket,
//! Kraken, KuCoin), and otherwise matches the documented recipe computed by the OpenSSL CLI
//! over the documented signing string (OKX, Bitget, Bybit); Coinbase JWTs are checked by
//! Python's `cryptography`. The CLI's `sign --format` prints the same.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keyward_client::exchanges::{
    HttpRequest, Method, Options, binance, bitget, bybit, coinbase, kraken, kucoin, okx,
};
use keyward_client::{Client, Scheme, SecretBytes, Signature};
use keyward_tests::Daemon;
use keyward_tests::verify::{Check, assert_python_verifies, openssl_hmac_hex};

/// binance-spot-api-docs rest-api.md, "SIGNED Endpoint Examples for POST /api/v3/order".
const BINANCE_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const BINANCE_QUERY: &str = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
const BINANCE_SIGNATURE: &str = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71";
/// Docs.kraken.com, Spot REST Authentication, "Examples": the secret decoded from its base64.
const KRAKEN_SECRET_BASE64: &str =
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";
const KRAKEN_POSTDATA: &str =
    "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25";
const KRAKEN_API_SIGN: &str =
    "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ==";
const API_KEY: &str = "XXXXXXXXXX";

fn import_secret(client: &mut Client, name: &str, scheme: Scheme, secret: &[u8]) {
    client
        .import(
            name,
            Some(scheme),
            SecretBytes::new(secret.to_vec()),
            None,
            Some(API_KEY.into()),
            None,
        )
        .unwrap();
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// HMAC-SHA256 of `payload` by OpenSSL, base64 (through `Signature`'s encoder, whose RFC 4648
/// vectors are pinned in the client's unit tests).
fn openssl_hmac_base64(secret: &[u8], payload: &str) -> String {
    let hex = openssl_hmac_hex("sha256", secret, payload.as_bytes());
    Signature::new(Scheme::HmacSha256, unhex(&hex)).to_base64()
}

#[test]
fn binance_helpers_reproduce_binances_rest_and_websocket_examples() {
    let daemon = Daemon::start(&[]);
    let mut client = daemon.client();
    import_secret(
        &mut client,
        "binance",
        Scheme::HmacSha256,
        BINANCE_SECRET.as_bytes(),
    );
    assert_eq!(
        binance::signed_query(&mut client, "binance", BINANCE_QUERY, "").unwrap(),
        format!("{BINANCE_QUERY}&signature={BINANCE_SIGNATURE}")
    );
    // Example 3 (rest-api.md before f83a5bf): the same order, query and body.
    let query = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC";
    let body = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
    assert_eq!(
        binance::signed_query(&mut client, "binance", query, body).unwrap(),
        format!(
            "{query}&signature=0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"
        )
    );
    // websocket-api/request-security.md, "SIGNED request example (HMAC)".
    let params = [
        ("symbol", "BTCUSDT"),
        ("side", "SELL"),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("quantity", "0.01000000"),
        ("price", "52000.00"),
        ("newOrderRespType", "ACK"),
        ("recvWindow", "100"),
        ("timestamp", "1645423376532"),
        (
            "apiKey",
            "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
        ),
    ];
    let signed = binance::sign_params(&mut client, "binance", &params).unwrap();
    assert_eq!(
        signed.last().unwrap(),
        &(
            "signature".to_owned(),
            "cc15477742bd704c29492d96c7ead9414dfd8e0ec4a00f947bb5bb454ddbd08a".to_owned()
        )
    );
    assert_eq!(
        keyward_client::exchanges::api_key(&mut client, "binance").unwrap(),
        API_KEY
    );
}

#[test]
fn kraken_and_kucoin_helpers_reproduce_their_documented_signatures() {
    let daemon = Daemon::start(&[]);
    // Kraken's secret is given base64; keyward holds the decoded bytes.
    let secret = daemon.write("kraken.secret", KRAKEN_SECRET_BASE64.as_bytes());
    daemon.import(
        "kraken",
        &secret,
        &["--scheme", "hmac-sha512", "--secret-format", "base64"],
    );
    let mut client = daemon.client();
    let sign = kraken::api_sign(
        &mut client,
        "kraken",
        "/0/private/AddOrder",
        1_616_492_376_594,
        KRAKEN_POSTDATA,
    )
    .unwrap();
    assert_eq!(sign, KRAKEN_API_SIGN);

    // KuCoin API docs, "Signing a Message": secret, timestamp, string and signature.
    import_secret(
        &mut client,
        "kucoin",
        Scheme::HmacSha256,
        b"f03a5284-5c39-4aaa-9b20-dea10bdcf8e3",
    );
    let request = HttpRequest::post("/api/v1/deposit-addresses", r#"{"currency":"BTC"}"#);
    let headers = kucoin::headers(
        &mut client,
        "kucoin",
        &request,
        "signed-passphrase",
        2,
        &Options::default().at(1_547_015_186_532),
    )
    .unwrap();
    assert_eq!(
        headers,
        [
            ("KC-API-KEY", API_KEY.to_owned()),
            (
                "KC-API-SIGN",
                "7QP/oM0ykidMdrfNEUmng8eZjg/ZvPafjIqmxiVfYu4=".to_owned()
            ),
            ("KC-API-TIMESTAMP", "1547015186532".to_owned()),
            ("KC-API-PASSPHRASE", "signed-passphrase".to_owned()),
            ("KC-API-KEY-VERSION", "2".to_owned()),
        ]
    );
}

#[test]
fn okx_bitget_and_bybit_headers_match_the_documented_recipe_computed_by_openssl() {
    let daemon = Daemon::start(&[]);
    let mut client = daemon.client();
    let secret = b"an-exchange-secret-of-32-bytes!!";
    import_secret(&mut client, "k", Scheme::HmacSha256, secret);
    let request = HttpRequest::get("/api/v5/account/balance", "ccy=BTC");
    let at = Options::default().at(1_607_418_537_715);

    // OKX API v5, REST Authentication: its documented GET, ISO timestamp.
    let headers = okx::headers(&mut client, "k", &request, "pp", &at).unwrap();
    let signed = "2020-12-08T09:08:57.715ZGET/api/v5/account/balance?ccy=BTC";
    assert_eq!(
        headers,
        [
            ("OK-ACCESS-KEY", API_KEY.to_owned()),
            ("OK-ACCESS-SIGN", openssl_hmac_base64(secret, signed)),
            ("OK-ACCESS-TIMESTAMP", "2020-12-08T09:08:57.715Z".to_owned()),
            ("OK-ACCESS-PASSPHRASE", "pp".to_owned()),
        ]
    );

    // Bitget: milliseconds; the API key id given per call (a platform signing for a user).
    let per_call = at.with_api_key("user-42");
    let headers = bitget::headers(&mut client, "k", &request, "pp", &per_call).unwrap();
    let signed = "1607418537715GET/api/v5/account/balance?ccy=BTC";
    assert_eq!(headers[0], ("ACCESS-KEY", "user-42".to_owned()));
    assert_eq!(
        headers[1],
        ("ACCESS-SIGN", openssl_hmac_base64(secret, signed))
    );

    // Bybit v5 guide, "Create A Request": GET and POST strings, hex.
    let get = HttpRequest::get(
        "/v5/order/realtime",
        "category=option&symbol=BTC-29JUL22-25000-C",
    );
    let headers = bybit::headers(
        &mut client,
        "k",
        &get,
        5000,
        &Options::default().at(1_658_384_314_791),
    )
    .unwrap();
    let signed = "1658384314791XXXXXXXXXX5000category=option&symbol=BTC-29JUL22-25000-C";
    assert_eq!(
        headers,
        [
            ("X-BAPI-API-KEY", API_KEY.to_owned()),
            ("X-BAPI-TIMESTAMP", "1658384314791".to_owned()),
            ("X-BAPI-RECV-WINDOW", "5000".to_owned()),
            (
                "X-BAPI-SIGN",
                openssl_hmac_hex("sha256", secret, signed.as_bytes())
            ),
        ]
    );
    let post = HttpRequest::post("/v5/order/create", r#"{"category": "option"}"#);
    let headers = bybit::headers(
        &mut client,
        "k",
        &post,
        5000,
        &Options::default().at(1_658_385_579_423),
    )
    .unwrap();
    let signed = r#"1658385579423XXXXXXXXXX5000{"category": "option"}"#;
    assert_eq!(
        headers[3].1,
        openssl_hmac_hex("sha256", secret, signed.as_bytes())
    );
}

#[test]
fn coinbase_jwts_verify_with_pythons_cryptography() {
    let daemon = Daemon::start(&[]);
    let key_name = "organizations/11111111-2222-3333-4444-555555555555/apiKeys/66666666-7777-8888-9999-000000000000";
    for (kind, scheme) in [("ecdsa-p256", "ecdsa-p256-sha256"), ("ed25519", "ed25519")] {
        let name = format!("cb-{kind}");
        let out = daemon.keyward(["generate", &name, "--scheme", kind, "--api-key", key_name]);
        out.success();
        let public = daemon.write(&format!("{name}.pem"), out.stdout.as_slice());
        let mut client = daemon.client();
        let token = coinbase::jwt(
            &mut client,
            &name,
            Method::Post,
            "api.coinbase.com",
            "/api/v3/brokerage/orders",
            &Options::default(),
        )
        .unwrap();
        let (input, signature) = token.rsplit_once('.').unwrap();
        assert_python_verifies(
            &Check::new(scheme, &public, input.as_bytes(), signature.as_bytes())
                .encoding("base64url"),
        );
        let claims = input.split_once('.').unwrap().1;
        let claims: serde_json::Value = serde_json::from_slice(&b64url(claims)).unwrap();
        assert_eq!(claims["sub"], key_name);
        assert_eq!(claims["iss"], "cdp");
        assert_eq!(
            claims["uri"],
            "POST api.coinbase.com/api/v3/brokerage/orders"
        );
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["nbf"].as_u64().unwrap(),
            120
        );
    }
}

/// Unpadded base64url → bytes, by hand: this crate takes no codec dependency.
fn b64url(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'-' => 62,
            b'_' => 63,
            _ => panic!("not base64url: {c}"),
        }
    };
    let mut out = Vec::new();
    for chunk in text.as_bytes().chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &c)| acc | value(c) << (18 - 6 * i));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn sign_format_prints_what_the_helpers_build() {
    let daemon = Daemon::start(&[]);
    let secret = daemon.write("binance.secret", BINANCE_SECRET.as_bytes());
    daemon.import("binance", &secret, &["--scheme", "hmac-sha256"]);
    let out = daemon.keyward([
        "sign",
        "binance",
        BINANCE_QUERY,
        "--format",
        "binance-query",
    ]);
    out.success();
    assert_eq!(
        out.stdout_text(),
        format!("{BINANCE_QUERY}&signature={BINANCE_SIGNATURE}\n")
    );
    let params = r#"{"symbol":"BTCUSDT","side":"SELL","type":"LIMIT","timeInForce":"GTC","quantity":"0.01000000","price":"52000.00","newOrderRespType":"ACK","recvWindow":100,"timestamp":1645423376532,"apiKey":"vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"}"#;
    let printed = daemon.sign("binance", params.as_bytes(), &["--format", "binance-ws"]);
    let printed: serde_json::Value = serde_json::from_slice(&printed).unwrap();
    assert_eq!(
        printed["signature"],
        "cc15477742bd704c29492d96c7ead9414dfd8e0ec4a00f947bb5bb454ddbd08a"
    );
    assert_eq!(
        printed["recvWindow"], 100,
        "the params keep their JSON types"
    );

    let secret = daemon.write("kraken.secret", KRAKEN_SECRET_BASE64.as_bytes());
    daemon.import(
        "kraken",
        &secret,
        &["--scheme", "hmac-sha512", "--secret-format", "base64"],
    );
    let printed = daemon.sign(
        "kraken",
        format!("{KRAKEN_POSTDATA}\n").as_bytes(),
        &["--format", "kraken", "--path", "/0/private/AddOrder"],
    );
    assert_eq!(printed, format!("{KRAKEN_API_SIGN}\n").into_bytes());

    // Mistakes are usage errors, one line each, and nothing is signed.
    let out = daemon.keyward(["sign", "kraken", KRAKEN_POSTDATA, "--format", "kraken"]);
    assert!(out.error_line(2).contains("--path"), "{out:#?}");
    let out = daemon.keyward([
        "sign",
        "binance",
        "a=1",
        "--format",
        "binance-query",
        "--path",
        "/x",
    ]);
    assert!(out.error_line(2).contains("--path"), "{out:#?}");
    let out = daemon.keyward(["sign", "binance", "a=1&", "--format", "binance-query"]);
    assert!(out.error_line(2).contains("not name=value"), "{out:#?}");
    let out = daemon.keyward([
        "sign",
        "binance",
        "a=1",
        "--format",
        "binance-query",
        "--encoding",
        "hex",
    ]);
    out.error_line(2);
}

/// One key per payload format, each with the rules a careful operator sets (docs/POLICY.md).
/// `bitget` has no format in its section: the one given at import applies.
const FORMATS_CONFIG: &str = r#"
[keys.binance]
format = "binance"
timestamp_window_ms = 5000
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

[keys.bitget]
timestamp_window_ms = 5000
deny_params = ["address"]
deny_paths = ["/api/v2/spot/wallet/withdrawal", "/api/v2/spot/wallet/transfer"]

[keys.kraken]
format = "kraken"
allow_paths = ["/0/private/AddOrder", "/0/private/Balance"]

[keys.coinbase]
format = "coinbase-jwt"
allow_paths = ["/api/v3/brokerage/"]
deny_paths = ["/api/v3/brokerage/portfolios/move_funds"]
timestamp_window_ms = 5000
max_token_lifetime_secs = 120
"#;

fn assert_policy_violation<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, keyward_client::Error>,
) {
    match result {
        Err(err) => assert_eq!(
            err.code(),
            Some(keyward_client::ErrorCode::PolicyViolation),
            "{what}: {err}"
        ),
        Ok(signed) => panic!("{what}: signed {signed:?}"),
    }
}

/// Issue 13's promise: for a key with that payload format and rules, each helper's output
/// passes the daemon's strict parse and rules, the same helper aimed at a denied endpoint or
/// parameter is refused, and a hand-made payload in another exchange's shape is refused.
#[test]
fn each_helpers_output_passes_its_formats_rules_and_other_shapes_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keywardd.toml");
    std::fs::write(&config, FORMATS_CONFIG).unwrap();
    let daemon = Daemon::start(&["--config", config.to_str().unwrap()]);
    let secret = daemon.write("secret", b"formats-test-hmac-secret-0123456789");
    for (name, format) in [
        ("binance", "binance"),
        ("bybit", "bybit"),
        ("okx", "okx"),
        ("kucoin", "kucoin"),
        ("bitget", "bitget"),
    ] {
        daemon.import(
            name,
            &secret,
            &[
                "--scheme",
                "hmac-sha256",
                "--api-key",
                API_KEY,
                "--format",
                format,
            ],
        );
    }
    let kraken = daemon.write("kraken.secret", KRAKEN_SECRET_BASE64.as_bytes());
    daemon.import(
        "kraken",
        &kraken,
        &[
            "--scheme",
            "hmac-sha512",
            "--secret-format",
            "base64",
            "--format",
            "kraken",
        ],
    );
    let key_name = "organizations/org/apiKeys/id";
    daemon
        .keyward([
            "generate",
            "coinbase",
            "--scheme",
            "ecdsa-p256",
            "--api-key",
            key_name,
            "--format",
            "coinbase-jwt",
        ])
        .success();
    let mut client = daemon.client();
    let now = Options::default();
    let ms = keyward_client::exchanges::now_ms();

    // Binance: REST query, query + body, WebSocket params.
    let query = format!("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1&timestamp={ms}");
    binance::signed_query(&mut client, "binance", &query, "").unwrap();
    binance::signed_query(
        &mut client,
        "binance",
        "symbol=BTCUSDT&side=BUY&type=MARKET",
        &format!("quantity=1&timestamp={ms}"),
    )
    .unwrap();
    let stamp = ms.to_string();
    binance::sign_params(
        &mut client,
        "binance",
        &[
            ("symbol", "BTCUSDT"),
            ("apiKey", API_KEY),
            ("timestamp", &stamp),
        ],
    )
    .unwrap();
    assert_policy_violation(
        "binance withdrawal",
        binance::signed_query(
            &mut client,
            "binance",
            &format!("coin=BTC&address=x&amount=1&timestamp={ms}"),
            "",
        ),
    );
    assert_policy_violation(
        "binance key, a JSON payload",
        client.sign(
            "binance",
            format!(r#"{{"symbol":"BTCUSDT","timestamp":{ms}}}"#).as_bytes(),
        ),
    );

    // Bybit: GET query and POST body.
    let get = HttpRequest::get("/v5/account/wallet-balance", "accountType=UNIFIED");
    bybit::headers(&mut client, "bybit", &get, 5000, &now).unwrap();
    let order =
        r#"{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Market","qty":"0.1"}"#;
    let post = HttpRequest::post("/v5/order/create", order);
    bybit::headers(&mut client, "bybit", &post, 5000, &now).unwrap();
    assert_policy_violation(
        "bybit, another API key id",
        bybit::headers(
            &mut client,
            "bybit",
            &get,
            5000,
            &now.with_api_key("someone-else"),
        ),
    );
    assert_policy_violation(
        "bybit key, a Binance query",
        client.sign("bybit", query.as_bytes()),
    );

    // OKX, KuCoin, Bitget: GET with a query, POST with a body; a withdrawal path refused.
    let get = HttpRequest::get("/api/v5/account/balance", "ccy=BTC");
    let post = HttpRequest::post("/api/v5/trade/order", r#"{"instId":"BTC-USDT","sz":"1"}"#);
    let withdraw = HttpRequest::post("/api/v5/asset/withdrawal", r#"{"ccy":"BTC"}"#);
    okx::headers(&mut client, "okx", &get, "pp", &now).unwrap();
    okx::headers(&mut client, "okx", &post, "pp", &now).unwrap();
    assert_policy_violation(
        "okx withdrawal",
        okx::headers(&mut client, "okx", &withdraw, "pp", &now),
    );
    assert_policy_violation(
        "okx key, a millisecond (KuCoin) timestamp",
        client.sign("okx", format!("{ms}GET/api/v5/account/balance").as_bytes()),
    );
    let get = HttpRequest::get("/api/v1/accounts", "currency=BTC");
    let post = HttpRequest::post("/api/v1/orders", r#"{"symbol":"BTC-USDT","size":"1"}"#);
    let withdraw = HttpRequest::post("/api/v3/withdrawals", r#"{"currency":"BTC"}"#);
    kucoin::headers(&mut client, "kucoin", &get, "pp", 2, &now).unwrap();
    kucoin::headers(&mut client, "kucoin", &post, "pp", 2, &now).unwrap();
    assert_policy_violation(
        "kucoin withdrawal",
        kucoin::headers(&mut client, "kucoin", &withdraw, "pp", 2, &now),
    );
    assert_policy_violation(
        "kucoin key, a body after a space",
        client.sign(
            "kucoin",
            format!(r#"{ms} POST/api/v1/orders{{"a":1}}"#).as_bytes(),
        ),
    );
    let get = HttpRequest::get("/api/v2/spot/account/assets", "coin=USDT");
    let post = HttpRequest::post("/api/v2/spot/trade/place-order", r#"{"symbol":"BTCUSDT"}"#);
    let transfer = HttpRequest::post("/api/v2/spot/wallet/transfer", r#"{"coin":"USDT"}"#);
    bitget::headers(&mut client, "bitget", &get, "pp", &now).unwrap();
    bitget::headers(&mut client, "bitget", &post, "pp", &now).unwrap();
    assert_policy_violation(
        "bitget transfer",
        bitget::headers(&mut client, "bitget", &transfer, "pp", &now),
    );
    assert_policy_violation(
        "bitget key, a Binance query",
        client.sign("bitget", query.as_bytes()),
    );

    // Kraken: the allowed calls sign, a withdrawal and the raw POST data do not.
    let postdata = format!("nonce={ms}&pair=XBTUSD&type=buy&ordertype=market&volume=1");
    kraken::api_sign(&mut client, "kraken", "/0/private/AddOrder", ms, &postdata).unwrap();
    kraken::api_sign(
        &mut client,
        "kraken",
        "/0/private/Balance",
        ms,
        &format!("nonce={ms}"),
    )
    .unwrap();
    assert_policy_violation(
        "kraken withdrawal",
        kraken::api_sign(&mut client, "kraken", "/0/private/Withdraw", ms, &postdata),
    );
    assert_policy_violation(
        "kraken key, the POST data itself",
        client.sign("kraken", postdata.as_bytes()),
    );

    // Coinbase: a brokerage call signs, move_funds and a bare JSON claims object do not.
    coinbase::jwt(
        &mut client,
        "coinbase",
        Method::Get,
        "api.coinbase.com",
        "/api/v3/brokerage/accounts",
        &now,
    )
    .unwrap();
    assert_policy_violation(
        "coinbase move_funds",
        coinbase::jwt(
            &mut client,
            "coinbase",
            Method::Post,
            "api.coinbase.com",
            "/api/v3/brokerage/portfolios/move_funds",
            &now,
        ),
    );
    assert_policy_violation(
        "coinbase key, claims without a JWS header",
        client.sign(
            "coinbase",
            format!(
                r#"{{"sub":"{key_name}","iss":"cdp","nbf":{},"exp":{},"uri":"GET api.coinbase.com/api/v3/brokerage/accounts"}}"#,
                ms / 1000,
                ms / 1000 + 120
            )
            .as_bytes(),
        ),
    );
}
