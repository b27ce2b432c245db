//! Tests with real files in a temporary directory, one file per kind: [`behaviour`] (what
//! each operation does and refuses), [`vectors`] (a keystore written by an independent
//! implementation), [`memory_scan`] (no secret left in memory after use) and [`crash_child`]
//! (a writer killed at any moment).

mod behaviour;
mod crash_child;
mod memory_scan;
mod nonces;
mod vectors;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroize;

use super::*;

/// Small parameters: the tests exercise the format, not Argon2's cost.
const FAST: KdfParams = KdfParams {
    m_cost_kib: 1024,
    t_cost: 1,
    p_cost: 1,
};

const PASSPHRASE: &[u8] = b"correct horse battery staple, twice over";

fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    bytes
}

fn record(name: &str, scheme: Scheme, api_key: Option<&str>, secret: Vec<u8>) -> KeyRecord {
    KeyRecord {
        meta: KeyMeta {
            name: name.to_owned(),
            scheme,
            api_key: api_key.map(str::to_owned),
            created_unix: 1_760_000_000,
            format: None,
        },
        secret: Zeroizing::new(secret),
        passphrase: None,
    }
}

/// Three keys of different shapes: an RSA-sized DER, an Ed25519-sized PKCS#8, an HMAC secret.
fn sample_records() -> Vec<KeyRecord> {
    vec![
        record(
            "binance-rsa",
            Scheme::RsaPkcs1v15Sha256,
            Some("vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"),
            random_bytes(1217),
        ),
        record("binance-ed", Scheme::Ed25519, Some(""), random_bytes(48)),
        record("kraken.hmac_1", Scheme::HmacSha512, None, random_bytes(64)),
    ]
}

/// A new keystore in `tmp/ks` holding `records`.
fn new_store(tmp: &Path, records: &[KeyRecord]) -> (PathBuf, Keystore, DataKey) {
    let dir = tmp.join("ks");
    let (store, key) = Keystore::init(&dir, PASSPHRASE, FAST).unwrap();
    for record in records {
        store.store(&key, record).unwrap();
    }
    (dir, store, key)
}

fn assert_same(loaded: &[KeyRecord], expected: &[KeyRecord]) {
    let mut expected: Vec<&KeyRecord> = expected.iter().collect();
    expected.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
    assert_eq!(loaded.len(), expected.len());
    for (got, want) in loaded.iter().zip(expected) {
        assert_eq!(got.meta, want.meta);
        assert_eq!(&got.secret[..], &want.secret[..], "{}", want.meta.name);
        assert_eq!(
            got.passphrase.as_deref(),
            want.passphrase.as_deref(),
            "{}",
            want.meta.name
        );
    }
}

/// Every file under `dir` (relative path → bytes), to prove an operation changed nothing.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(current) = stack.pop() {
        for entry in fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = fs::read(&path).unwrap();
                files.insert(path.strip_prefix(dir).unwrap().to_owned(), bytes);
            }
        }
    }
    files
}

fn failure_names(loaded: &LoadedKeys) -> Vec<&str> {
    loaded
        .failures
        .iter()
        .map(|(name, _)| name.as_str())
        .collect()
}

fn record_names(loaded: &LoadedKeys) -> Vec<&str> {
    loaded
        .records
        .iter()
        .map(|r| r.meta.name.as_str())
        .collect()
}
