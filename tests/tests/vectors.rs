//! Test vectors published by the exchanges themselves: keyward must reproduce them exactly.
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keyward_client::exchanges::binance;
use keyward_client::{ErrorCode, Scheme, SecretBytes};
use keyward_tests::Daemon;
use keyward_tests::verify::{Check, assert_python_verifies};

/// Binance's HMAC example (DEVELOPERS.md, "SIGNED endpoint examples for POST /api/v3/order").
const BINANCE_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const BINANCE_QUERY: &str = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
const BINANCE_SIGNATURE: &str = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71";

#[test]
fn binance_published_hmac_example_gives_its_exact_hex_through_the_cli() {
    let daemon = Daemon::start(&[]);
    // As a user would save it: the secret and a newline.
    let secret = daemon.write("binance.secret", format!("{BINANCE_SECRET}\n").as_bytes());
    daemon.import(
        "binance",
        &secret,
        &[
            "--scheme",
            "hmac-sha256",
            "--api-key",
            "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
        ],
    );
    let out = daemon.keyward(["sign", "binance", BINANCE_QUERY]);
    out.success();
    assert_eq!(out.stdout_text(), format!("{BINANCE_SIGNATURE}\n"));
    // The same bytes on stdin, with no trailing newline added or removed.
    assert_eq!(
        daemon.sign("binance", BINANCE_QUERY.as_bytes(), &[]),
        format!("{BINANCE_SIGNATURE}\n").into_bytes()
    );
}

#[test]
fn binance_published_hmac_example_gives_its_exact_signed_query_through_the_client() {
    let daemon = Daemon::start(&[]);
    let mut client = daemon.client();
    let info = client
        .import(
            "binance",
            Some(Scheme::HmacSha256),
            SecretBytes::new(BINANCE_SECRET.as_bytes().to_vec()),
            None,
            None,
            None,
        )
        .unwrap();
    assert_eq!(info.scheme, Scheme::HmacSha256);
    assert_eq!(info.public_key, None, "an HMAC key has no public half");
    let query = binance::signed_query(&mut client, "binance", BINANCE_QUERY, "").unwrap();
    assert_eq!(
        query,
        format!("{BINANCE_QUERY}&signature={BINANCE_SIGNATURE}")
    );
    let signature = client.sign("binance", BINANCE_QUERY.as_bytes()).unwrap();
    assert_eq!(signature.to_hex(), BINANCE_SIGNATURE);
    assert_eq!(signature.scheme(), Scheme::HmacSha256);

    // The one-character change an attacker would make is not covered by the signature.
    let other = client
        .sign("binance", BINANCE_QUERY.replace("BUY", "SELL").as_bytes())
        .unwrap();
    assert_ne!(other.to_hex(), BINANCE_SIGNATURE);
    // And a key that does not exist is a typed error, not a signature.
    let err = client.sign("binance-typo", b"x").unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownKey), "{err}");
}

/// Kraken's REST authentication example: API-Sign = base64(HMAC-SHA512(base64-decoded secret,
/// URI path + SHA-256(nonce + POST data))). The signed message is binary.
#[test]
fn kraken_published_example_gives_its_exact_api_sign_from_a_base64_secret() {
    const SECRET: &str =
        "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";
    const API_SIGN: &str =
        "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ==";
    // "/0/private/AddOrder" followed by SHA-256("1616492376594" + "nonce=1616492376594&
    // ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25").
    const MESSAGE_HEX: &str = "2f302f707269766174652f4164644f7264657223a1c1b34c6a11d641af0f24684896cb90f66fb991125c83dc357bdc3dc146f1";
    let message: Vec<u8> = (0..MESSAGE_HEX.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&MESSAGE_HEX[i..i + 2], 16).unwrap())
        .collect();

    let daemon = Daemon::start(&[]);
    let secret = daemon.write("kraken.secret", format!("{SECRET}\n").as_bytes());
    daemon.import(
        "kraken",
        &secret,
        &["--scheme", "hmac-sha512", "--secret-format", "base64"],
    );
    let signature = daemon.sign("kraken", &message, &["--encoding", "base64"]);
    assert_eq!(
        String::from_utf8(signature).unwrap(),
        format!("{API_SIGN}\n")
    );
}

#[test]
fn binance_signed_query_with_an_ed25519_key_carries_a_percent_encoded_base64_signature_that_verifies()
 {
    let daemon = Daemon::start(&[]);
    let public = daemon.generate("binance-ed", "ed25519");
    let mut client = daemon.client();
    let query = binance::signed_query(&mut client, "binance-ed", BINANCE_QUERY, "").unwrap();
    let signature = query
        .strip_prefix(&format!("{BINANCE_QUERY}&signature="))
        .unwrap_or_else(|| panic!("the query was changed or has no signature: {query}"));
    assert!(
        !signature.contains(['+', '/', '=']),
        "base64 must be percent-encoded in a query: {signature}"
    );
    let base64 = signature
        .replace("%2B", "+")
        .replace("%2F", "/")
        .replace("%3D", "=");
    assert_python_verifies(
        &Check::new(
            "ed25519",
            &public,
            BINANCE_QUERY.as_bytes(),
            base64.as_bytes(),
        )
        .encoding("base64"),
    );
}
