//! The daemon's parsers, reachable from the fuzz targets.
//!
//! keywardd is a binary crate, so its modules cannot be imported. Rather than turn the daemon
//! into a library for the fuzzer's sake (a public API nobody else should use, and a dead-code
//! lint that no longer sees what the binary leaves unused), this crate compiles the daemon's
//! own source files with `#[path]`: the module closure of the parsers (payload, keystore,
//! import, config and what they use), under the same names, so their `crate::` paths resolve
//! here as they do in the daemon. Nothing is copied; the fuzzer tests the code that ships.
//! The network-facing modules (server, connection, audit, handler) are not included.
//!
//! Entry points are the daemon's `pub(crate)` functions, wrapped below; the keystore's file
//! decoders have one of their own, `keystore::check_file_decoders`, compiled in tests and
//! under `--cfg fuzzing` only.
#![allow(dead_code, unreachable_pub, unused_imports, unused_qualifications)]

// An inline module whose directory is the daemon's src/: each file below is found, and finds
// its own submodules (keystore/format.rs, payload/json.rs, ...), exactly as in the daemon.
#[path = "../../daemon/src"]
mod daemon {
    pub(crate) mod config;
    pub(crate) mod config_doc;
    pub(crate) mod failure;
    pub(crate) mod import;
    pub(crate) mod keyring;
    pub(crate) mod keystore;
    pub(crate) mod limits;
    pub(crate) mod os;
    pub(crate) mod payload;
    pub(crate) mod peer;
    pub(crate) mod policy;
    pub(crate) mod private_dir;
    pub(crate) mod signer;
    pub(crate) mod stats;
}
// The daemon's modules say `crate::payload`, `crate::signer`, ...: the same paths here.
use daemon::{
    config, config_doc, failure, import, keyring, keystore, limits, os, payload, peer, policy,
    private_dir, signer, stats,
};

pub use keyward_protocol::PayloadFormat;

/// The config file parser (TOML, then validation), as `keywardd` runs it at start and on
/// SIGHUP.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = config::parse(text);
    }
}

/// Key import: the first byte picks the scheme the client names (none, or one of the HMAC
/// and asymmetric schemes); the rest is the material, PEM or an HMAC secret. A second PEM
/// password is tried on encrypted PEM: `"fuzz"`.
pub fn import_key(data: &[u8]) {
    use keyward_protocol::Scheme;
    let Some((&selector, material)) = data.split_first() else {
        return;
    };
    let scheme = match selector % 8 {
        0 => None,
        1 => Some(Scheme::HmacSha256),
        2 => Some(Scheme::HmacSha512),
        3 => Some(Scheme::RsaPkcs1v15Sha256),
        4 => Some(Scheme::Ed25519),
        5 => Some(Scheme::EcdsaP256Sha256),
        6 => None,
        _ => Some(Scheme::Ed25519),
    };
    let password = (selector % 8 == 6).then_some(&b"fuzz"[..]);
    if let Ok(imported) = import::import(scheme, material, password) {
        // What is stored must load again: PKCS#8 of the same key, or the same HMAC secret.
        let scheme = imported.signer.scheme();
        let stored = if scheme.is_hmac() {
            import::import(Some(scheme), &imported.secret, None)
        } else {
            let pem = pem_rfc7468::encode_string(
                "PRIVATE KEY",
                pem_rfc7468::LineEnding::LF,
                &imported.secret,
            )
            .expect("PKCS#8 DER encodes as PEM");
            import::import(None, pem.as_bytes(), None)
        };
        let stored = stored.expect("a stored key loads again");
        assert_eq!(stored.signer.scheme(), scheme);
        assert_eq!(&stored.secret[..], &imported.secret[..]);
    }
}

/// The keystore's header and key-file decoders, with their round trips.
pub fn keystore_files(data: &[u8]) {
    keystore::check_file_decoders(data);
}

/// The strict decimal parser of the order rules: what parses prints back to a text that
/// parses to the same value, and multiplying and comparing never panic.
pub fn decimal(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (left, right) = text.split_once('*').unwrap_or((text, "1"));
    let Ok(a) = payload::Decimal::parse(left) else {
        return;
    };
    let printed = a.to_string();
    assert_eq!(
        payload::Decimal::parse(&printed).as_ref(),
        Ok(&a),
        "{left:?}"
    );
    if let Ok(b) = payload::Decimal::parse(right) {
        let product = a.mul(&b);
        assert_eq!(product, b.mul(&a));
        let _ = a.cmp(&b);
        let _ = product.to_string();
    }
}

/// One payload format's parser, then the rules judging it: strict parse, deny_params at any
/// depth, a timestamp window, the order rules where the format has orders.
pub fn payload(format: PayloadFormat, data: &[u8]) {
    payload::check_parse_and_judge(format, data);
}
