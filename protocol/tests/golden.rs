//! Golden wire fixtures: the bytes of every message, pinned in `protocol/testdata/`.
//!
//! Each valid fixture is one whole frame. It is split with [`frame::split_frame`], decoded,
//! compared with the value built below, and re-encoded byte-identical to the file. Each
//! invalid fixture must fail with exactly the error listed next to it. The fixtures are the
//! contract a client in another language is checked against (docs/PROTOCOL.md), so a change
//! of encoding must fail here first.
//!
//! The files are written from the tables below, never by hand:
//!
//! ```text
//! KEYWARD_BLESS=1 cargo test -p keyward-protocol --test golden -- --ignored bless
//! ```
//!
//! Blessing is for adding a message, never for accepting a changed encoding of an old one:
//! a shipped fixture's bytes are part of protocol version 1.

// Helpers outside #[test] functions unwrap too: a panic anywhere here is a failed test,
// which is what we want (clippy.toml's allow-unwrap-in-tests covers only the test functions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use keyward_protocol::frame::{self, FrameError};
use keyward_protocol::{
    DEFAULT_MAX_FRAME, DecodeError, ErrorCode, KeyInfo, KeyKind, KeyOrderRules, KeystoreState,
    NamedCount, PROTOCOL_VERSION, PayloadFormat, Request, Response, Scheme, SecretBytes,
    SignatureCount, Stats, Status, StatusReport, UnreadableKey, Welcome, decode_request,
    decode_response, encode_request, encode_response,
};
use postcard::Error as Postcard;
use serde_bytes::ByteBuf;

// ---- field values: fixed, readable, and where possible real ----

/// Binance's published HMAC example (API docs, "SIGNED endpoint examples"): key, secret,
/// query string and its HMAC-SHA256 signature.
const BINANCE_API_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const BINANCE_SECRET: &[u8] = b"NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const BINANCE_QUERY: &[u8] = b"symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
const BINANCE_SIGNATURE: &str = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71";

const PASSPHRASE: &[u8] = b"correct horse battery staple";
const NEW_PASSPHRASE: &[u8] = b"Tr0ub4dor&3";

/// The RFC 8032 section 7.1 "TEST 1" Ed25519 key as PKCS#8 PEM.
const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g
-----END PRIVATE KEY-----
";
/// The same key as encrypted PKCS#8 (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC) under
/// [`PASSPHRASE`]; 302 bytes, so its length is a two-byte varint.
const ED25519_ENCRYPTED_PEM: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----
MIGjMF8GCSqGSIb3DQEFDTBSMDEGCSqGSIb3DQEFDDAkBBDZg2Y3KCRv9Kwku+qx
x2hLAgIIADAMBggqhkiG9w0CCQUAMB0GCWCGSAFlAwQBKgQQRf7426IL1xbCbaBZ
YWQKsQRAgLtbHgEpnnO3KhkvU30dXbBA7ql7P7JCkhgjp1cNDY1pxPHuUpeNZZj/
euqZkJ95Rr+Dk2mVkxAsuNOIsj7JxA==
-----END ENCRYPTED PRIVATE KEY-----
";
/// DER SubjectPublicKeyInfo of that key, and its fingerprint.
const ED25519_SPKI: &str =
    "302a300506032b6570032100d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const ED25519_FINGERPRINT: &str = "SHA256:BuP9j9opu2CrWVV95h7bCuzbIxE0vjDnW0Vfjht5L6k";

/// DER SubjectPublicKeyInfo of an RSA-2048 key made for this fixture (its private half was
/// thrown away), and its fingerprint; 294 bytes.
const RSA_SPKI: &str = "30820122300d06092a864886f70d01010105000382010f003082010a0282010100\
    9ee66e3fdcee0bdc6347f457fe7044f47978fbe47f80c7f2fcf7a6de2324e9183d5ee6b0872ccffb7f0a0fa6\
    6894f60f749ee6a2dcba3649faad23837427a3ad4587bec7b7359c4a3a5c64afa28e65b52ff1196d8d38cdc3\
    f1720335e92f26298f0325ed9560e102af82dc95adf45830711acddc8bebca3b39f16dd31b58841b53ed9f36\
    dc9ae72c54e249bfe03e9c95e4439ce142aee3a9b94c1230f78309b6affc40993d877afa1f3bf40cb0d7c2f6\
    70e9afbf22aafe5d0f665c3ac2be3494353c5fb9d52aa15580024b809df537fa4f12391512ae8184058c669b\
    320ab5b1c81b8d18552103304b7c1a64def467fab4bc9c47437161cbc18e7c217b16c99b0203010001";
const RSA_FINGERPRINT: &str = "SHA256:D5u7jWNlfyjeuTkgnAm1v4W7QToic1OPHAWRrB37U04";

/// HMAC-SHA512 of the three batch payloads (empty, `00 ff`, bytes 0 to 255) under the
/// example secret of Kraken's REST docs
/// (`kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==`).
const KRAKEN_SIGNATURES: [&str; 3] = [
    "5a5c657ea45c8e073ef88f409d949b60a39635f794b5da44c80970b608cc8743a1b1075fef724d284ca3a8f3361a911ded5bec9c5fc4c79f08d309c0050e228c",
    "935b8e34340bba832f15b70a3d5854d2decbee4e37118d067a88c476d3709e00e69a602745da8cf738ec30b53ecc82becb469a84293a82af86268da60ed057e7",
    "e875c853949a1279435e5fa34d38279b9e2c8ef6c3e785fd5ffe565fcc0135a14b5b86ce7fa975ff431c4148c25211d1cc58877f7e17689ef7d0f15c42017dab",
];

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

fn secret(bytes: &[u8]) -> SecretBytes {
    SecretBytes::new(bytes.to_vec())
}

/// The three payloads of the batch: empty, the bytes 0x00 and 0xff, and every byte value
/// (256 bytes, so its length is the two-byte varint `80 02`).
fn batch_payloads() -> Vec<Vec<u8>> {
    vec![Vec::new(), vec![0x00, 0xff], (0..=255).collect()]
}

fn rsa_key_info() -> KeyInfo {
    KeyInfo {
        name: "binance-rsa".into(),
        scheme: Scheme::RsaPkcs1v15Sha256,
        bits: 2048,
        public_key: Some(hex(RSA_SPKI)),
        fingerprint: Some(RSA_FINGERPRINT.into()),
        api_key: Some(BINANCE_API_KEY.into()),
        format: Some(PayloadFormat::Binance),
    }
}

fn hmac_key_info() -> KeyInfo {
    KeyInfo {
        name: "kraken".into(),
        scheme: Scheme::HmacSha512,
        bits: 512,
        public_key: None,
        fingerprint: None,
        api_key: Some("kraken-api-key-1".into()),
        format: Some(PayloadFormat::Kraken),
    }
}

fn ed25519_key_info() -> KeyInfo {
    KeyInfo {
        name: "binance-ed25519".into(),
        scheme: Scheme::Ed25519,
        bits: 256,
        public_key: Some(hex(ED25519_SPKI)),
        fingerprint: Some(ED25519_FINGERPRINT.into()),
        api_key: None,
        format: None,
    }
}

// ---- the valid fixtures ----

#[derive(Debug, Clone, PartialEq, Eq)]
enum Message {
    Request(Request),
    Response(Response),
}

struct Valid {
    file: &'static str,
    about: &'static str,
    message: Message,
}

fn request(file: &'static str, about: &'static str, request: Request) -> Valid {
    Valid {
        file,
        about,
        message: Message::Request(request),
    }
}

fn response(file: &'static str, about: &'static str, response: Response) -> Valid {
    Valid {
        file,
        about,
        message: Message::Response(response),
    }
}

fn error(code: ErrorCode, message: &str) -> Response {
    Response::error(code, message)
}

/// Every valid fixture, named `request-NN-KIND[-CASE].bin` or `response-NN-NAME[-CASE].bin`
/// where NN is the variant index.
fn valid() -> Vec<Valid> {
    vec![
        request(
            "request-00-hello.bin",
            "Hello { version: 3 }",
            Request::Hello {
                version: PROTOCOL_VERSION,
            },
        ),
        request(
            "request-00-hello-v2.bin",
            "Hello { version: 2 } (a version 2 client; a version 3 daemon still speaks version 2 to it)",
            Request::Hello { version: 2 },
        ),
        request(
            "request-01-sign.bin",
            "Sign { key: \"binance-hmac\", payload: Binance's example query string (110 bytes) }",
            Request::Sign {
                key: "binance-hmac".into(),
                payload: BINANCE_QUERY.to_vec(),
            },
        ),
        request(
            "request-02-sign-batch.bin",
            "SignBatch { key: \"kraken\", payloads: [empty, 00 ff, bytes 00..=ff (256 bytes, length varint 80 02)] }",
            Request::SignBatch {
                key: "kraken".into(),
                payloads: batch_payloads().into_iter().map(ByteBuf::from).collect(),
            },
        ),
        request("request-03-list.bin", "List", Request::List),
        request(
            "request-04-public-key.bin",
            "PublicKey { key: \"binance-ed25519\" }",
            Request::PublicKey {
                key: "binance-ed25519".into(),
            },
        ),
        request(
            "request-05-import-hmac.bin",
            "Import { name: \"binance-hmac\", scheme: Some(hmac-sha256), material: Binance's example secret, pem_passphrase: None, api_key: Some(Binance's example API key), format: Some(binance) }",
            Request::Import {
                name: "binance-hmac".into(),
                scheme: Some(Scheme::HmacSha256),
                material: secret(BINANCE_SECRET),
                pem_passphrase: None,
                api_key: Some(BINANCE_API_KEY.into()),
                format: Some(PayloadFormat::Binance),
            },
        ),
        request(
            "request-05-import-pem.bin",
            "Import { name: \"binance-ed25519\", scheme: None, material: RFC 8032 test 1 key as PKCS#8 PEM, pem_passphrase: None, api_key: None, format: None } (every optional field absent)",
            Request::Import {
                name: "binance-ed25519".into(),
                scheme: None,
                material: secret(ED25519_PEM.as_bytes()),
                pem_passphrase: None,
                api_key: None,
                format: None,
            },
        ),
        request(
            "request-05-import-encrypted-pem.bin",
            "Import { name: \"binance-ed25519\", scheme: Some(ed25519), material: the same key as encrypted PKCS#8 PEM (302 bytes), pem_passphrase: Some(\"correct horse battery staple\"), api_key: Some(Binance's example API key), format: Some(binance) } (every optional field present)",
            Request::Import {
                name: "binance-ed25519".into(),
                scheme: Some(Scheme::Ed25519),
                material: secret(ED25519_ENCRYPTED_PEM.as_bytes()),
                pem_passphrase: Some(secret(PASSPHRASE)),
                api_key: Some(BINANCE_API_KEY.into()),
                format: Some(PayloadFormat::Binance),
            },
        ),
        request(
            "request-06-generate.bin",
            "Generate { name: \"binance-rsa\", kind: rsa-2048, api_key: None, format: Some(binance) }",
            Request::Generate {
                name: "binance-rsa".into(),
                kind: KeyKind::Rsa2048,
                api_key: None,
                format: Some(PayloadFormat::Binance),
            },
        ),
        request(
            "request-07-remove.bin",
            "Remove { name: \"old-key\" }",
            Request::Remove {
                name: "old-key".into(),
            },
        ),
        request("request-08-status.bin", "Status", Request::Status),
        request(
            "request-09-init.bin",
            "Init { passphrase: \"correct horse battery staple\" }",
            Request::Init {
                passphrase: secret(PASSPHRASE),
            },
        ),
        request(
            "request-10-unlock.bin",
            "Unlock { passphrase: \"correct horse battery staple\" }",
            Request::Unlock {
                passphrase: secret(PASSPHRASE),
            },
        ),
        request("request-11-lock.bin", "Lock", Request::Lock),
        request(
            "request-12-change-passphrase.bin",
            "ChangePassphrase { old: \"correct horse battery staple\", new: \"Tr0ub4dor&3\" }",
            Request::ChangePassphrase {
                old: secret(PASSPHRASE),
                new: secret(NEW_PASSPHRASE),
            },
        ),
        request("request-13-stats.bin", "Stats", Request::Stats),
        request("request-14-reload.bin", "Reload", Request::Reload),
        request(
            "request-15-set-passphrase.bin",
            "SetPassphrase { key: \"kucoin\", passphrase: Some(\"correct horse battery staple\") }",
            Request::SetPassphrase {
                key: "kucoin".into(),
                passphrase: Some(secret(PASSPHRASE)),
            },
        ),
        request(
            "request-15-set-passphrase-none.bin",
            "SetPassphrase { key: \"kucoin\", passphrase: None } (removes the stored passphrase)",
            Request::SetPassphrase {
                key: "kucoin".into(),
                passphrase: None,
            },
        ),
        request(
            "request-16-sign-passphrase.bin",
            "SignPassphrase { key: \"kucoin\" } (answered by a Signature: HMAC-SHA256 of the stored passphrase)",
            Request::SignPassphrase {
                key: "kucoin".into(),
            },
        ),
        response(
            "response-00-hello.bin",
            "Hello { version: 2, max_frame: 65536 (varint 80 80 04) } (the answer to request-00-hello-v2.bin)",
            Response::Hello {
                version: 2,
                max_frame: DEFAULT_MAX_FRAME,
            },
        ),
        response(
            "response-01-signature.bin",
            "Signature { scheme: hmac-sha256, signature: Binance's example signature c8db5682...bd6b71 } (the answer to request-01-sign.bin)",
            Response::Signature {
                scheme: Scheme::HmacSha256,
                signature: hex(BINANCE_SIGNATURE),
            },
        ),
        response(
            "response-02-signatures.bin",
            "Signatures { scheme: hmac-sha512, signatures: three 64-byte HMAC-SHA512 values } (the answer to request-02-sign-batch.bin under Kraken's example secret)",
            Response::Signatures {
                scheme: Scheme::HmacSha512,
                signatures: KRAKEN_SIGNATURES
                    .iter()
                    .map(|sig| ByteBuf::from(hex(sig)))
                    .collect(),
            },
        ),
        response(
            "response-03-keys.bin",
            "Keys { keys: [binance-rsa (rsa-pkcs1v15-sha256, 2048 bits, 294-byte SPKI, fingerprint, API key), kraken (hmac-sha512, 512 bits, no public key, no fingerprint, API key)] }",
            Response::Keys {
                keys: vec![rsa_key_info(), hmac_key_info()],
            },
        ),
        response(
            "response-03-keys-empty.bin",
            "Keys { keys: [] }",
            Response::Keys { keys: Vec::new() },
        ),
        response(
            "response-04-key.bin",
            "Key { key: binance-ed25519 (ed25519, 256 bits, RFC 8032 test 1 public key as SPKI, fingerprint, api_key: None) } (the answer to request-04-public-key.bin)",
            Response::Key {
                key: ed25519_key_info(),
            },
        ),
        response("response-05-ok.bin", "Ok", Response::Ok),
        response(
            "response-06-error-unsupported-version.bin",
            "Error { code: UnsupportedVersion (1), message }",
            error(
                ErrorCode::UnsupportedVersion,
                "protocol version 1 is not supported; this daemon speaks version 2",
            ),
        ),
        response(
            "response-06-error-too-large.bin",
            "Error { code: TooLarge (3), message }",
            error(
                ErrorCode::TooLarge,
                "frame of 70000 bytes exceeds the limit of 65536 bytes",
            ),
        ),
        response(
            "response-06-error-unknown-key.bin",
            "Error { code: UnknownKey (4), message }",
            error(ErrorCode::UnknownKey, "no key named \"binance-main\""),
        ),
        response(
            "response-06-error-denied.bin",
            "Error { code: Denied (7), message }",
            error(
                ErrorCode::Denied,
                "uid 1001 may not use this keywardd (it serves uid 1000)",
            ),
        ),
        response(
            "response-06-error-locked.bin",
            "Error { code: Locked (8), message }",
            error(
                ErrorCode::Locked,
                "the keystore is locked; run `keyward unlock`",
            ),
        ),
        response(
            "response-06-error-other-300.bin",
            "Error { code: 300, a code this build does not know (varint ac 02), decoded as ErrorCode::Other(300), message }",
            error(ErrorCode::Other(300), "a code from a newer daemon"),
        ),
        response(
            "response-06-error-other-65535.bin",
            "Error { code: 65535, the largest u16 (varint ff ff 03), decoded as ErrorCode::Other(65535), message }",
            error(ErrorCode::Other(u16::MAX), "the largest code there can be"),
        ),
        response(
            "response-06-error-batch-exceeds-burst.bin",
            "Error { code: BatchExceedsBurst (16), message }",
            error(
                ErrorCode::BatchExceedsBurst,
                "a batch of 12 exceeds key \"binance-hmac\"'s burst of 10; split it",
            ),
        ),
        response(
            "response-06-error-invalid-config.bin",
            "Error { code: InvalidConfig (17), message }",
            error(
                ErrorCode::InvalidConfig,
                "/etc/keyward/keywardd.toml: keys.grid-bot.burst needs keys.grid-bot.rate_per_sec",
            ),
        ),
        response(
            "response-06-error-no-passphrase.bin",
            "Error { code: NoPassphrase (18), message }",
            error(
                ErrorCode::NoPassphrase,
                "key \"kucoin\" has no stored passphrase; an admin sets one with `keyward passphrase`",
            ),
        ),
        response(
            "response-07-status-unlocked.bin",
            "Status { state: Unlocked, keys: 3, idle_lock_in: Some(900), max_unlock_in: Some(28800), unreadable: [okx-old: \"cannot decrypt: the key file is corrupt\"] }",
            Response::Status(Status {
                state: KeystoreState::Unlocked,
                keys: 3,
                idle_lock_in: Some(900),
                max_unlock_in: Some(28_800),
                unreadable: vec![UnreadableKey {
                    name: "okx-old".into(),
                    reason: "cannot decrypt: the key file is corrupt".into(),
                }],
            }),
        ),
        response(
            "response-07-status-locked.bin",
            "Status { state: Locked, keys: 0, idle_lock_in: None, max_unlock_in: None, unreadable: [] }",
            Response::Status(locked_status()),
        ),
        response(
            "response-08-welcome.bin",
            "Welcome { version: 3, max_frame: 65536, daemon_version: \"0.1.0\", daemon_commit: Some(\"0123456789ab\") } (the answer to request-00-hello.bin)",
            Response::Welcome(Welcome {
                version: PROTOCOL_VERSION,
                max_frame: DEFAULT_MAX_FRAME,
                daemon_version: "0.1.0".into(),
                daemon_commit: Some("0123456789ab".into()),
            }),
        ),
        response(
            "response-08-welcome-no-commit.bin",
            "Welcome { version: 3, max_frame: 1024, daemon_version: \"0.1.0\", daemon_commit: None }",
            Response::Welcome(Welcome {
                version: PROTOCOL_VERSION,
                max_frame: 1024,
                daemon_version: "0.1.0".into(),
                daemon_commit: None,
            }),
        ),
        response(
            "response-09-rate-limited.bin",
            "RateLimited { retry_after_ms: 1500 (varint dc 0b), message }",
            Response::RateLimited {
                retry_after_ms: 1500,
                message: "rate limit of key \"binance-hmac\" reached (10/s); retry in 1500 ms"
                    .into(),
            },
        ),
        response(
            "response-10-status-report-admin.bin",
            "StatusReport { status: Status { state: Unlocked, keys: 2, idle_lock_in: Some(900), max_unlock_in: None, unreadable: [] }, order_rules: Some([binance-hmac (every rule set), kraken (no rule)]) }",
            Response::StatusReport(StatusReport {
                status: Status {
                    state: KeystoreState::Unlocked,
                    keys: 2,
                    idle_lock_in: Some(900),
                    max_unlock_in: None,
                    unreadable: Vec::new(),
                },
                order_rules: Some(vec![
                    KeyOrderRules {
                        key: "binance-hmac".into(),
                        allow_symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
                        allow_sides: vec!["BUY".into()],
                        allow_order_types: vec!["LIMIT".into(), "LIMIT_MAKER".into()],
                        max_quantity: Some("0.5".into()),
                        max_notional: Some("1000".into()),
                        orders_per_minute: Some(300),
                    },
                    KeyOrderRules {
                        key: "kraken".into(),
                        allow_symbols: Vec::new(),
                        allow_sides: Vec::new(),
                        allow_order_types: Vec::new(),
                        max_quantity: None,
                        max_notional: None,
                        orders_per_minute: None,
                    },
                ]),
            }),
        ),
        response(
            "response-10-status-report.bin",
            "StatusReport { status: Status { state: Locked, keys: 0, idle_lock_in: None, max_unlock_in: None, unreadable: [] }, order_rules: None } (what a peer that is not an admin gets)",
            Response::StatusReport(StatusReport {
                status: locked_status(),
                order_rules: None,
            }),
        ),
        response(
            "response-11-stats.bin",
            "Stats { uptime_secs: 86400, signatures: [binance-hmac hmac-sha256 1000000, kraken hmac-sha512 3], denials: [denied 2, policy-violation 7], rate_limited: 5, locked_refusals: 1, audit_failures: 0, audit_drops: 0, connections_open: 4, connections_accepted: 130, connections_refused: 2, unlocks: 1, reloads: 3, reload_failures: 1 }",
            Response::Stats(Stats {
                uptime_secs: 86_400,
                signatures: vec![
                    SignatureCount {
                        key: "binance-hmac".into(),
                        scheme: Scheme::HmacSha256,
                        count: 1_000_000,
                    },
                    SignatureCount {
                        key: "kraken".into(),
                        scheme: Scheme::HmacSha512,
                        count: 3,
                    },
                ],
                denials: vec![
                    NamedCount {
                        name: "denied".into(),
                        count: 2,
                    },
                    NamedCount {
                        name: "policy-violation".into(),
                        count: 7,
                    },
                ],
                rate_limited: 5,
                locked_refusals: 1,
                audit_failures: 0,
                audit_drops: 0,
                connections_open: 4,
                connections_accepted: 130,
                connections_refused: 2,
                unlocks: 1,
                reloads: 3,
                reload_failures: 1,
            }),
        ),
        response(
            "response-12-reloaded.bin",
            "Reloaded { daemon_section_changed: true }",
            Response::Reloaded {
                daemon_section_changed: true,
            },
        ),
    ]
}

fn locked_status() -> Status {
    Status {
        state: KeystoreState::Locked,
        keys: 0,
        idle_lock_in: None,
        max_unlock_in: None,
        unreadable: Vec::new(),
    }
}

// ---- the invalid fixtures ----

/// Which decoder an invalid fixture is fed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The header alone is refused; no decoder is reached.
    Frame,
    Request,
    Response,
}

/// What reading an invalid fixture must give.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// `split_frame` wants more bytes: the header promises a body the file does not hold.
    Incomplete,
    /// A frame, trailing-bytes or other error of the codec itself.
    Error(DecodeError),
    /// [`DecodeError::Invalid`] carrying this postcard error's message.
    Postcard(Postcard),
}

impl Outcome {
    /// Postcard errors compare by the message `DecodeError::Invalid` carries.
    fn normalise(self) -> Outcome {
        match self {
            Outcome::Postcard(err) => Outcome::Error(DecodeError::Invalid(err.to_string())),
            other => other,
        }
    }
}

struct Invalid {
    file: &'static str,
    about: &'static str,
    target: Target,
    bytes: Vec<u8>,
    expect: Outcome,
}

/// A frame around `body` (hex), with a correct header.
fn framed(body: &str) -> Vec<u8> {
    let body = hex(body);
    let mut out = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

fn postcard(err: Postcard) -> Outcome {
    Outcome::Postcard(err)
}

fn too_large(len: u64) -> Outcome {
    Outcome::Error(DecodeError::Frame(FrameError::TooLarge {
        len,
        max: DEFAULT_MAX_FRAME,
    }))
}

fn invalid() -> Vec<Invalid> {
    let sign = encode_request(
        &Request::Sign {
            key: "binance-hmac".into(),
            payload: BINANCE_QUERY.to_vec(),
        },
        DEFAULT_MAX_FRAME,
    )
    .unwrap();
    // The Sign frame with its body cut to 30 bytes, header left promising all of it.
    let truncated_frame = sign[..4 + 30].to_vec();
    // The same 30 bytes with a header that matches them: a whole frame, half a message.
    let mut truncated_body = 30u32.to_be_bytes().to_vec();
    truncated_body.extend_from_slice(&sign[4..4 + 30]);

    vec![
        Invalid {
            file: "invalid-empty-frame.bin",
            about: "header announces a body of 0 bytes",
            target: Target::Frame,
            bytes: hex("00 00 00 00"),
            expect: Outcome::Error(DecodeError::Frame(FrameError::Empty)),
        },
        Invalid {
            file: "invalid-too-large-header.bin",
            about: "header announces 65537 bytes, one over the default limit; no body follows, none is read",
            target: Target::Frame,
            bytes: hex("00 01 00 01"),
            expect: too_large(65_537),
        },
        Invalid {
            file: "invalid-too-large-header-u32-max.bin",
            about: "header announces 4294967295 bytes",
            target: Target::Frame,
            bytes: hex("ff ff ff ff"),
            expect: too_large(u64::from(u32::MAX)),
        },
        Invalid {
            file: "invalid-truncated-frame.bin",
            about: "the Sign frame of request-01-sign.bin cut after 30 body bytes: the header promises 125",
            target: Target::Request,
            bytes: truncated_frame,
            expect: Outcome::Incomplete,
        },
        Invalid {
            file: "invalid-truncated-body.bin",
            about: "a whole 30-byte frame holding the first 30 bytes of a Sign message: the payload's length says 110",
            target: Target::Request,
            bytes: truncated_body,
            expect: postcard(Postcard::DeserializeUnexpectedEnd),
        },
        Invalid {
            file: "invalid-trailing-bytes.bin",
            about: "List followed by one byte 00 in the same frame",
            target: Target::Request,
            bytes: framed("03 00"),
            expect: Outcome::Error(DecodeError::TrailingBytes(1)),
        },
        Invalid {
            file: "invalid-response-trailing-bytes.bin",
            about: "Ok followed by a second Ok in the same frame",
            target: Target::Response,
            bytes: framed("05 05"),
            expect: Outcome::Error(DecodeError::TrailingBytes(1)),
        },
        Invalid {
            file: "invalid-unknown-request-variant.bin",
            about: "request variant 17, one past SignPassphrase",
            target: Target::Request,
            bytes: framed("11"),
            expect: postcard(Postcard::SerdeDeCustom),
        },
        Invalid {
            file: "invalid-response-unknown-variant.bin",
            about: "response variant 13, one past Reloaded",
            target: Target::Response,
            bytes: framed("0d"),
            expect: postcard(Postcard::SerdeDeCustom),
        },
        Invalid {
            file: "invalid-variant-index-overflow.bin",
            about: "a variant index of 2^32 (varint 80 80 80 80 10), more than a u32",
            target: Target::Request,
            bytes: framed("80 80 80 80 10"),
            expect: postcard(Postcard::DeserializeBadVarint),
        },
        Invalid {
            file: "invalid-bad-utf8-key-name.bin",
            about: "Sign whose key name \"binance-\" ff \"main\" is not UTF-8",
            target: Target::Request,
            bytes: framed("01 0d 62696e616e63652d ff 6d61696e 01 00"),
            expect: postcard(Postcard::DeserializeBadUtf8),
        },
        Invalid {
            file: "invalid-varint-overflow.bin",
            about: "Hello whose u32 version is ff ff ff ff 1f: the fifth byte carries more than 4 bits",
            target: Target::Request,
            bytes: framed("00 ff ff ff ff 1f"),
            expect: postcard(Postcard::DeserializeBadVarint),
        },
        Invalid {
            file: "invalid-varint-unterminated.bin",
            about: "Hello whose u32 version has five bytes with the continuation bit set",
            target: Target::Request,
            bytes: framed("00 80 80 80 80 80 01"),
            expect: postcard(Postcard::DeserializeBadVarint),
        },
        Invalid {
            file: "invalid-bad-option-tag.bin",
            about: "Generate whose api_key Option tag is 02",
            target: Target::Request,
            bytes: framed("06 0b 62696e616e63652d727361 01 02"),
            expect: postcard(Postcard::DeserializeBadOption),
        },
        Invalid {
            file: "invalid-unknown-scheme.bin",
            about: "Import with scheme Some(5), one past ecdsa-p256-sha256",
            target: Target::Request,
            bytes: framed("05 01 6b 01 05 01 00 00 00"),
            expect: postcard(Postcard::SerdeDeCustom),
        },
        Invalid {
            file: "invalid-unknown-payload-format.bin",
            about: "Generate with format Some(8), one past raw",
            target: Target::Request,
            bytes: framed("06 01 6b 00 00 01 08"),
            expect: postcard(Postcard::SerdeDeCustom),
        },
        Invalid {
            file: "invalid-protocol-1-generate.bin",
            about: "a protocol version 1 Generate (no format field): version 2 reads past its end",
            target: Target::Request,
            bytes: framed("06 01 6b 00 00"),
            expect: postcard(Postcard::DeserializeUnexpectedEnd),
        },
        Invalid {
            file: "invalid-unknown-key-kind.bin",
            about: "Generate with key kind 5, one past ecdsa-p256",
            target: Target::Request,
            bytes: framed("06 01 6b 05 00"),
            expect: postcard(Postcard::SerdeDeCustom),
        },
        Invalid {
            file: "invalid-huge-sequence-count.bin",
            about: "SignBatch claiming 4294967295 payloads in a 14-byte body",
            target: Target::Request,
            bytes: framed("02 06 6b72616b656e ff ff ff ff 0f 00"),
            expect: postcard(Postcard::DeserializeUnexpectedEnd),
        },
        Invalid {
            file: "invalid-huge-string-length.bin",
            about: "Sign whose key name claims 4294967295 bytes",
            target: Target::Request,
            bytes: framed("01 ff ff ff ff 0f 62696e616e6365"),
            expect: postcard(Postcard::DeserializeUnexpectedEnd),
        },
        Invalid {
            file: "invalid-response-error-code-overflow.bin",
            about: "Error whose u16 code is 65536 (varint 80 80 04)",
            target: Target::Response,
            bytes: framed("06 80 80 04 00"),
            expect: postcard(Postcard::DeserializeBadVarint),
        },
        Invalid {
            file: "invalid-response-unknown-scheme.bin",
            about: "Signature with scheme 5, one past ecdsa-p256-sha256",
            target: Target::Response,
            bytes: framed("01 05 01 00"),
            expect: postcard(Postcard::SerdeDeCustom),
        },
        Invalid {
            file: "invalid-response-bad-bool.bin",
            about: "Reloaded whose bool is 02 (only 00 and 01 are booleans)",
            target: Target::Response,
            bytes: framed("0c 02"),
            expect: postcard(Postcard::DeserializeBadBool),
        },
        Invalid {
            file: "invalid-response-welcome-without-commit-field.bin",
            about: "a Welcome cut after daemon_version: the daemon_commit option is missing",
            target: Target::Response,
            bytes: framed("08 03 80 80 04 05 302e312e30"),
            expect: postcard(Postcard::DeserializeUnexpectedEnd),
        },
        Invalid {
            file: "invalid-response-unknown-keystore-state.bin",
            about: "Status with keystore state 4, one past Ephemeral",
            target: Target::Response,
            bytes: framed("07 04 00 00 00 00"),
            expect: postcard(Postcard::SerdeDeCustom),
        },
    ]
}

// ---- helpers ----

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn read(file: &str) -> Vec<u8> {
    let path = fixture_dir().join(file);
    fs::read(&path).unwrap_or_else(|err| {
        panic!(
            "{}: {err}; write it with KEYWARD_BLESS=1 cargo test -p keyward-protocol --test golden -- --ignored bless",
            path.display()
        )
    })
}

fn encode(message: &Message) -> Vec<u8> {
    match message {
        Message::Request(request) => encode_request(request, DEFAULT_MAX_FRAME).unwrap().to_vec(),
        Message::Response(response) => encode_response(response, DEFAULT_MAX_FRAME)
            .unwrap()
            .to_vec(),
    }
}

/// The first byte of a body: the variant index (every index here is below 128).
fn variant_index(frame_bytes: &[u8]) -> u8 {
    let (body, _) = frame::split_frame(frame_bytes, DEFAULT_MAX_FRAME)
        .unwrap()
        .unwrap();
    assert!(body[0] < 0x80, "variant index is a one-byte varint");
    body[0]
}

/// How many variants a decoder knows, found from the bytes alone: a one-byte body holding
/// index `i` either decodes (a unit variant), runs out of bytes (a variant with fields), or
/// is refused as an unknown variant. A new variant therefore shows up here without anyone
/// having to list it, and `every_variant_has_a_fixture` fails until it has a fixture.
fn variant_count(decode: impl Fn(&[u8]) -> Result<(), DecodeError>) -> u8 {
    let unknown = DecodeError::Invalid(Postcard::SerdeDeCustom.to_string());
    let count = (0..0x80u8)
        .find(|&i| decode(&[i]) == Err(unknown.clone()))
        .expect("some variant index below 128 is unknown");
    for i in count..0x80 {
        assert_eq!(decode(&[i]), Err(unknown.clone()), "indices are dense");
    }
    count
}

// ---- the tests ----

#[test]
fn every_valid_fixture_decodes_to_its_message_and_re_encodes_byte_identical() {
    for fixture in valid() {
        let bytes = read(fixture.file);
        let (body, rest) = frame::split_frame(&bytes, DEFAULT_MAX_FRAME)
            .unwrap_or_else(|err| panic!("{}: {err}", fixture.file))
            .unwrap_or_else(|| panic!("{}: not a whole frame", fixture.file));
        assert!(rest.is_empty(), "{}: bytes after the frame", fixture.file);
        let decoded = match &fixture.message {
            Message::Request(_) => decode_request(body).map(Message::Request),
            Message::Response(_) => decode_response(body).map(Message::Response),
        }
        .unwrap_or_else(|err| panic!("{}: {err}", fixture.file));
        assert_eq!(decoded, fixture.message, "{}", fixture.file);
        assert_eq!(
            encode(&decoded),
            bytes,
            "{}: re-encoding is not byte-identical",
            fixture.file
        );
    }
}

#[test]
fn every_invalid_fixture_fails_with_its_exact_error() {
    for fixture in invalid() {
        let bytes = read(fixture.file);
        assert_eq!(
            bytes, fixture.bytes,
            "{}: differs from its table entry",
            fixture.file
        );
        let outcome = match frame::split_frame(&bytes, DEFAULT_MAX_FRAME) {
            Err(err) => {
                assert_eq!(fixture.target, Target::Frame, "{}", fixture.file);
                Outcome::Error(DecodeError::Frame(err))
            }
            Ok(None) => Outcome::Incomplete,
            Ok(Some((body, rest))) => {
                assert!(rest.is_empty(), "{}: bytes after the frame", fixture.file);
                let decoded = match fixture.target {
                    Target::Request => decode_request(body).map(drop),
                    Target::Response => decode_response(body).map(drop),
                    Target::Frame => panic!("{}: the header was accepted", fixture.file),
                };
                match decoded {
                    Ok(()) => panic!("{}: decoded without error", fixture.file),
                    Err(err) => Outcome::Error(err),
                }
            }
        };
        assert_eq!(outcome, fixture.expect.normalise(), "{}", fixture.file);
    }
}

#[test]
fn every_fixture_file_is_checked_and_every_checked_file_exists() {
    let mut listed = BTreeSet::new();
    for name in valid()
        .iter()
        .map(|f| f.file)
        .chain(invalid().iter().map(|f| f.file))
    {
        assert!(listed.insert(name), "{name} is listed twice");
    }
    let mut on_disk = BTreeSet::new();
    for entry in fs::read_dir(fixture_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name != "README.md" {
            on_disk.insert(name);
        }
    }
    let listed: BTreeSet<String> = listed.into_iter().map(String::from).collect();
    let stray: Vec<_> = on_disk.difference(&listed).collect();
    let missing: Vec<_> = listed.difference(&on_disk).collect();
    assert!(stray.is_empty(), "fixtures no test checks: {stray:?}");
    assert!(missing.is_empty(), "fixtures not written: {missing:?}");
}

#[test]
fn fixture_names_carry_their_variant_index_and_kind() {
    for fixture in valid() {
        let bytes = read(fixture.file);
        let index = variant_index(&bytes);
        let (prefix, kind) = match &fixture.message {
            Message::Request(request) => ("request", Some(request.kind())),
            Message::Response(_) => ("response", None),
        };
        let stem = fixture.file.strip_suffix(".bin").unwrap();
        let rest = stem
            .strip_prefix(&format!("{prefix}-{index:02}-"))
            .unwrap_or_else(|| panic!("{}: should start {prefix}-{index:02}-", fixture.file));
        if let Some(kind) = kind {
            assert!(
                rest == kind || rest.starts_with(&format!("{kind}-")),
                "{}: should name the request kind {kind:?}",
                fixture.file
            );
        }
    }
    for fixture in invalid() {
        assert!(fixture.file.starts_with("invalid-"), "{}", fixture.file);
        // Another implementation picks the decoder from the name alone.
        assert_eq!(
            fixture.file.starts_with("invalid-response-"),
            fixture.target == Target::Response,
            "{}: response fixtures, and only they, are named invalid-response-*",
            fixture.file
        );
        assert!(fixture.file.ends_with(".bin"), "{}", fixture.file);
    }
}

#[test]
fn every_variant_has_a_fixture() {
    let requests = variant_count(|body| decode_request(body).map(drop));
    let responses = variant_count(|body| decode_response(body).map(drop));
    assert_eq!((requests, responses), (17, 13), "update docs/PROTOCOL.md");

    let mut request_kinds = BTreeMap::new();
    let mut response_indices = BTreeSet::new();
    for fixture in valid() {
        let index = variant_index(&read(fixture.file));
        match &fixture.message {
            Message::Request(request) => {
                request_kinds.insert(index, request.kind());
            }
            Message::Response(_) => {
                response_indices.insert(index);
            }
        }
    }
    assert_eq!(
        request_kinds.keys().copied().collect::<Vec<_>>(),
        (0..requests).collect::<Vec<_>>(),
        "a request variant has no fixture"
    );
    assert_eq!(
        response_indices.into_iter().collect::<Vec<_>>(),
        (0..responses).collect::<Vec<_>>(),
        "a response variant has no fixture"
    );
    // The kinds in wire order, as docs/PROTOCOL.md lists them.
    assert_eq!(
        request_kinds.into_values().collect::<Vec<_>>(),
        [
            "hello",
            "sign",
            "sign-batch",
            "list",
            "public-key",
            "import",
            "generate",
            "remove",
            "status",
            "init",
            "unlock",
            "lock",
            "change-passphrase",
            "stats",
            "reload",
            "set-passphrase",
            "sign-passphrase",
        ]
    );
}

#[test]
fn every_error_code_scheme_and_key_kind_keeps_its_number() {
    // Wire numbers are part of the protocol; docs/PROTOCOL.md has the same tables.
    let codes = [
        (ErrorCode::UnsupportedVersion, 1),
        (ErrorCode::BadRequest, 2),
        (ErrorCode::TooLarge, 3),
        (ErrorCode::UnknownKey, 4),
        (ErrorCode::KeyExists, 5),
        (ErrorCode::InvalidKey, 6),
        (ErrorCode::Denied, 7),
        (ErrorCode::Locked, 8),
        (ErrorCode::PolicyViolation, 9),
        (ErrorCode::RateLimited, 10),
        (ErrorCode::Internal, 11),
        (ErrorCode::NotInitialized, 12),
        (ErrorCode::AlreadyInitialized, 13),
        (ErrorCode::WrongPassphrase, 14),
        (ErrorCode::Unavailable, 15),
        (ErrorCode::BatchExceedsBurst, 16),
        (ErrorCode::InvalidConfig, 17),
        (ErrorCode::NoPassphrase, 18),
    ];
    for (code, number) in codes {
        let frame = encode_response(&error(code, ""), DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(&frame[4..], &[6, number, 0], "{code:?}");
    }
    assert_eq!(ErrorCode::from(0), ErrorCode::Other(0), "0 is not a code");
    assert_eq!(
        ErrorCode::from(19),
        ErrorCode::Other(19),
        "19 is unassigned"
    );

    for (index, scheme) in Scheme::ALL.into_iter().enumerate() {
        let response = Response::Signature {
            scheme,
            signature: Vec::new(),
        };
        let frame = encode_response(&response, DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(&frame[4..], &[1, u8::try_from(index).unwrap(), 0]);
    }
    let names: Vec<_> = Scheme::ALL.into_iter().map(Scheme::name).collect();
    assert_eq!(
        names,
        [
            "rsa-pkcs1v15-sha256",
            "ed25519",
            "hmac-sha256",
            "hmac-sha512",
            "ecdsa-p256-sha256"
        ]
    );

    for (index, kind) in KeyKind::ALL.into_iter().enumerate() {
        let request = Request::Generate {
            name: String::new(),
            kind,
            api_key: None,
            format: None,
        };
        let frame = encode_request(&request, DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(&frame[4..], &[6, 0, u8::try_from(index).unwrap(), 0, 0]);
    }

    for (index, format) in PayloadFormat::ALL.into_iter().enumerate() {
        let request = Request::Generate {
            name: String::new(),
            kind: KeyKind::Ed25519,
            api_key: None,
            format: Some(format),
        };
        let frame = encode_request(&request, DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(&frame[4..], &[6, 0, 0, 0, 1, u8::try_from(index).unwrap()]);
    }
    let names: Vec<_> = PayloadFormat::ALL
        .into_iter()
        .map(PayloadFormat::name)
        .collect();
    assert_eq!(
        names,
        [
            "binance",
            "bybit",
            "okx",
            "kucoin",
            "bitget",
            "kraken",
            "coinbase-jwt",
            "raw"
        ]
    );
    let names: Vec<_> = KeyKind::ALL.into_iter().map(KeyKind::name).collect();
    assert_eq!(
        names,
        ["ed25519", "rsa-2048", "rsa-3072", "rsa-4096", "ecdsa-p256"]
    );

    let states = [
        KeystoreState::Uninitialized,
        KeystoreState::Locked,
        KeystoreState::Unlocked,
        KeystoreState::Ephemeral,
    ];
    for (index, state) in states.into_iter().enumerate() {
        let response = Response::Status(Status {
            state,
            keys: 0,
            idle_lock_in: None,
            max_unlock_in: None,
            unreadable: Vec::new(),
        });
        let frame = encode_response(&response, DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(&frame[4..], &[7, u8::try_from(index).unwrap(), 0, 0, 0, 0]);
    }
}

/// The worked examples in docs/PROTOCOL.md are the bytes of fixture files: each is a line
/// `File: \`protocol/testdata/NAME\`` followed by a fenced block whose lines are hex
/// bytes, then optionally `#` and a comment.
#[test]
fn the_worked_examples_in_protocol_md_are_the_fixture_bytes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/PROTOCOL.md");
    let doc = fs::read_to_string(&path).unwrap();
    let marker = "File: `protocol/testdata/";
    let mut lines = doc.lines();
    let mut checked = Vec::new();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim().strip_prefix(marker) else {
            continue;
        };
        let file = rest.split('`').next().unwrap();
        let fence = lines.find(|l| !l.trim().is_empty()).unwrap();
        assert!(fence.starts_with("```"), "{file}: a code block must follow");
        let mut bytes = Vec::new();
        for line in lines.by_ref().take_while(|l| !l.starts_with("```")) {
            let data = line.split('#').next().unwrap();
            for token in data.split_whitespace() {
                assert_eq!(token.len(), 2, "{file}: {token:?} in {line:?}");
                bytes.push(u8::from_str_radix(token, 16).unwrap());
            }
        }
        assert_eq!(
            bytes,
            read(file),
            "{file}: the example in docs/PROTOCOL.md differs"
        );
        checked.push(file.to_owned());
    }
    assert!(
        checked.len() >= 3,
        "docs/PROTOCOL.md should show at least three fixtures: {checked:?}"
    );
}

#[test]
fn readme_describes_every_fixture() {
    let path = fixture_dir().join("README.md");
    let readme = fs::read_to_string(&path).unwrap();
    assert_eq!(
        readme,
        render_readme(),
        "{} is out of date; bless to rewrite it",
        path.display()
    );
}

fn render_readme() -> String {
    let mut out = String::from(
        "# Golden wire fixtures of the keyward protocol

Each `.bin` file is one whole frame as it travels on the socket: a 4-byte big-endian body
length, then the postcard-encoded body. docs/PROTOCOL.md specifies the format;
protocol/tests/golden.rs checks every file here, and a client in another language should be
checked against them too: decode each valid frame, compare, re-encode byte-identical, and
refuse each invalid one.

The files are generated from the values in protocol/tests/golden.rs (never edit them by hand):

    KEYWARD_BLESS=1 cargo test -p keyward-protocol --test golden -- --ignored bless

Blessing is for adding fixtures. Once released, a fixture's bytes are fixed for their
protocol version. These are protocol version 3. Version 2 appended `format` to Import,
Generate and KeyInfo, so blessing rewrote the fixtures of those messages and of Hello.
Version 3 only appended variants and error codes: every version 2 fixture kept its bytes
except `request-00-hello.bin` (now version 3; `request-00-hello-v2.bin` is version 2's) and
the two `invalid-*-unknown-variant` files, whose index had become a real variant.

## Valid messages

`request-NN-KIND[-CASE].bin` is a client-to-daemon `Request`, `response-NN-NAME[-CASE].bin` a
daemon-to-client `Response`; NN is the variant index (the body's first byte).

| File | Bytes | Message |
|------|------:|---------|
",
    );
    for fixture in valid() {
        let len = encode(&fixture.message).len();
        writeln!(out, "| `{}` | {len} | {} |", fixture.file, fixture.about).unwrap();
    }
    out.push_str(
        "
## Invalid frames

Every `invalid-*` file must be refused. \"Decoded as\" says which decoder gets the body: the
response decoder for `invalid-response-*`, the request decoder for the others; \"frame\" means
the 4-byte header alone is refused, before any body byte is read.
\"Incomplete\" means the header is acceptable but the file ends before the body does: a
reader waits for more bytes (the daemon closes the connection after 10 seconds).

| File | Decoded as | Must fail with | What is wrong |
|------|------------|----------------|---------------|
",
    );
    for fixture in invalid() {
        let target = match fixture.target {
            Target::Frame => "frame",
            Target::Request => "request",
            Target::Response => "response",
        };
        let expect = match &fixture.expect {
            Outcome::Incomplete => "incomplete (`split_frame` → `Ok(None)`)".to_owned(),
            Outcome::Error(DecodeError::Frame(err)) => format!("`Frame({err:?})`"),
            Outcome::Postcard(err) => format!("`Invalid` (postcard `{err:?}`)"),
            Outcome::Error(other) => format!("`{other:?}`"),
        };
        writeln!(
            out,
            "| `{}` | {target} | {expect} | {} |",
            fixture.file, fixture.about
        )
        .unwrap();
    }
    out
}

/// Rewrites every fixture and the README from the tables above.
#[test]
#[ignore = "rewrites protocol/testdata; run with KEYWARD_BLESS=1"]
fn bless() {
    assert_eq!(
        std::env::var("KEYWARD_BLESS").as_deref(),
        Ok("1"),
        "set KEYWARD_BLESS=1 to rewrite the fixtures"
    );
    let dir = fixture_dir();
    fs::create_dir_all(&dir).unwrap();
    // Remove the old files first, so that a renamed fixture leaves no stray copy behind.
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "bin") {
            fs::remove_file(path).unwrap();
        }
    }
    for fixture in valid() {
        fs::write(dir.join(fixture.file), encode(&fixture.message)).unwrap();
    }
    for fixture in invalid() {
        fs::write(dir.join(fixture.file), &fixture.bytes).unwrap();
    }
    fs::write(dir.join("README.md"), render_readme()).unwrap();
}
