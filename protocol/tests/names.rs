//! The names and texts the protocol's types show people, config files and other languages:
//! error code names (the CLI's JSON and exit lines), scheme, key-kind and payload-format
//! names (the config file, `--scheme`, `--format`), and the errors for unknown ones. Mutation
//! testing found that nothing in this crate pinned them; they are part of the interface.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keyward_protocol::{
    ErrorCode, InvalidKeyName, KeyInfo, KeyKind, MAX_RESPONSE_FRAME, PayloadFormat, Response,
    Scheme, SecretBytes, encode_response, frame, validate_key_name,
};
use zeroize::Zeroize as _;

#[test]
fn error_codes_have_stable_names_and_show_them() {
    let names = [
        (ErrorCode::UnsupportedVersion, "unsupported-version"),
        (ErrorCode::BadRequest, "bad-request"),
        (ErrorCode::TooLarge, "too-large"),
        (ErrorCode::UnknownKey, "unknown-key"),
        (ErrorCode::KeyExists, "key-exists"),
        (ErrorCode::InvalidKey, "invalid-key"),
        (ErrorCode::Denied, "denied"),
        (ErrorCode::Locked, "locked"),
        (ErrorCode::PolicyViolation, "policy-violation"),
        (ErrorCode::RateLimited, "rate-limited"),
        (ErrorCode::Internal, "internal"),
        (ErrorCode::NotInitialized, "not-initialized"),
        (ErrorCode::AlreadyInitialized, "already-initialized"),
        (ErrorCode::WrongPassphrase, "wrong-passphrase"),
        (ErrorCode::Unavailable, "unavailable"),
    ];
    for (code, name) in names {
        assert_eq!(code.name(), name);
        assert_eq!(code.to_string(), name);
    }
    assert_eq!(ErrorCode::Other(300).name(), "other");
    assert_eq!(ErrorCode::Other(300).to_string(), "error code 300");
}

#[test]
fn scheme_kind_and_format_names_show_and_parse_back() {
    for scheme in [
        Scheme::RsaPkcs1v15Sha256,
        Scheme::Ed25519,
        Scheme::HmacSha256,
        Scheme::HmacSha512,
        Scheme::EcdsaP256Sha256,
    ] {
        assert_eq!(scheme.to_string(), scheme.name());
        assert_eq!(scheme.name().parse::<Scheme>().unwrap(), scheme);
        assert_eq!(scheme.is_hmac(), scheme.name().starts_with("hmac-"));
    }
    assert_eq!(Scheme::Ed25519.to_string(), "ed25519");
    assert_eq!(Scheme::HmacSha512.to_string(), "hmac-sha512");
    let unknown = "rsa".parse::<Scheme>().unwrap_err();
    assert_eq!(unknown.to_string(), "unknown scheme \"rsa\"");

    for kind in KeyKind::ALL {
        assert_eq!(kind.to_string(), kind.name());
        assert_eq!(kind.name().parse::<KeyKind>().unwrap(), kind);
    }
    assert_eq!(KeyKind::Rsa4096.to_string(), "rsa-4096");

    for format in PayloadFormat::ALL {
        assert_eq!(format.to_string(), format.name());
        assert_eq!(format.name().parse::<PayloadFormat>().unwrap(), format);
    }
    assert_eq!(PayloadFormat::CoinbaseJwt.to_string(), "coinbase-jwt");
    let expected = "expected one of binance, bybit, okx, kucoin, bitget, kraken, coinbase-jwt, raw";
    assert_eq!(
        "Binance".parse::<PayloadFormat>().unwrap_err().to_string(),
        format!("unknown payload format \"Binance\"; {expected}")
    );
    // What came from a file is quoted short: 32 characters, then "...".
    let long = "x".repeat(40);
    assert_eq!(
        long.parse::<PayloadFormat>().unwrap_err().to_string(),
        format!(
            "unknown payload format \"{}...\"; {expected}",
            "x".repeat(32)
        )
    );
    let exact = "y".repeat(32);
    assert_eq!(
        exact.parse::<PayloadFormat>().unwrap_err().to_string(),
        format!("unknown payload format \"{exact}\"; {expected}")
    );
}

#[test]
fn an_invalid_key_name_says_why() {
    let err: InvalidKeyName = validate_key_name("").unwrap_err();
    assert_eq!(err.to_string(), format!("invalid key name: {}", err.reason));
    assert!(!err.reason.is_empty());
}

#[test]
fn secret_bytes_expose_what_they_hold_and_zeroize() {
    let mut secret = SecretBytes::from(b"hunter2".to_vec());
    assert_eq!(secret.expose(), b"hunter2");
    assert_eq!(SecretBytes::new(vec![1, 2]).expose(), &[1, 2]);
    secret.zeroize();
    assert!(secret.expose().iter().all(|&b| b == 0) || secret.expose().is_empty());
    assert_ne!(secret.expose(), b"hunter2");
}

/// The response cap admits the largest answer the end-to-end test gets
/// (tests/tests/large_responses.rs: `List` of 1,200 RSA-4096 keys, 1.1 MB), and the client's
/// header check agrees with the daemon's encoder.
#[test]
fn the_response_cap_admits_a_list_above_one_mib() {
    let key = |i: usize| KeyInfo {
        name: format!("{i:04}-{}", "n".repeat(59)),
        scheme: Scheme::RsaPkcs1v15Sha256,
        bits: 4096,
        public_key: Some(vec![0x30; 550]),
        fingerprint: Some(format!("SHA256:{}", "A".repeat(43))),
        api_key: Some("k".repeat(256)),
        format: None,
    };
    let list = Response::Keys {
        keys: (0..1200).map(key).collect(),
    };
    let frame_bytes = encode_response(&list, MAX_RESPONSE_FRAME).unwrap();
    let body = frame_bytes.len() - frame::HEADER_LEN;
    assert!(body > 1024 * 1024 + 50_000, "{body}");
    let header = frame_bytes.first_chunk::<4>().unwrap();
    assert_eq!(frame::body_len(*header, MAX_RESPONSE_FRAME), Ok(body));
    assert_eq!(MAX_RESPONSE_FRAME, 16 * 1024 * 1024);
}
