//! A keystore written by an independent implementation must read: the format is pinned.

use super::*;

// A keystore written by an independent implementation of docs/KEYSTORE.md (Python, with
// `cryptography`'s Argon2id and ChaCha20-Poly1305 and a hand-written HChaCha20 checked
// against draft-irtf-cfrg-xchacha-03), from fixed salt, nonces and data key, in
// daemon/testdata/keystore-v1/ (its README says more). It pins the format: every later
// keyward must still read these bytes.
// Passphrase "golden fixture passphrase", m = 256 KiB, t = 2, p = 2.

/// The golden keystore's files, relative to daemon/testdata/keystore-v1/.
const GOLDEN_FILES: [&str; 3] = ["header", "keys/golden-ed.key", "keys/golden-hmac.key"];

fn golden(file: &str) -> Vec<u8> {
    golden_in("keystore-v1", file)
}

fn golden_in(fixture: &str, file: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(fixture)
        .join(file);
    fs::read(&path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

/// Key files of both versions in one keystore (daemon/testdata/keystore-v2/, written by an
/// independent implementation): the version 1 file has no payload format, the version 2 file
/// has `okx`. Pins the version 2 bytes and that version 1 files keep opening.
#[test]
fn a_keystore_with_version_1_and_version_2_key_files_reads() {
    let files = ["header", "keys/golden-ed.key", "keys/golden-okx.key"];
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("golden");
    fsio::ensure_private_dir(&dir).unwrap();
    fsio::ensure_private_dir(&dir.join("keys")).unwrap();
    for file in files {
        fs::write(dir.join(file), golden_in("keystore-v2", file)).unwrap();
    }
    assert_eq!(
        golden_in("keystore-v2", "keys/golden-ed.key"),
        golden("keys/golden-ed.key")
    );
    let store = Keystore::open(&dir).unwrap().unwrap();
    let key = store.unlock(b"golden fixture passphrase").unwrap();
    let loaded = store.load_all(&key);
    assert!(loaded.failures.is_empty(), "{:?}", loaded.failures);
    let expected = [
        KeyRecord {
            meta: KeyMeta {
                name: "golden-ed".into(),
                scheme: Scheme::Ed25519,
                api_key: Some("golden-api-key".into()),
                created_unix: 1_700_000_000,
                format: None,
            },
            secret: Zeroizing::new(b"golden ed25519 secret bytes 0123456789".to_vec()),
            passphrase: None,
        },
        KeyRecord {
            meta: KeyMeta {
                name: "golden-okx".into(),
                scheme: Scheme::HmacSha256,
                api_key: Some("golden-okx-api-key".into()),
                created_unix: 1_700_000_002,
                format: Some(PayloadFormat::Okx),
            },
            secret: Zeroizing::new(b"golden okx hmac secret 0123456789".to_vec()),
            passphrase: None,
        },
    ];
    assert_same(&loaded.records, &expected);
    // keyward writes the same metadata bytes as the independent writer.
    let okx = golden_in("keystore-v2", "keys/golden-okx.key");
    let meta_len = okx.len() - 24 - 33 - 16;
    assert_eq!(
        format::encode_key_meta(&expected[1].meta, format::KEY_VERSION_PLAIN).unwrap(),
        okx[..meta_len]
    );
}

#[test]
fn a_keystore_written_by_an_independent_implementation_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("golden");
    fsio::ensure_private_dir(&dir).unwrap();
    fsio::ensure_private_dir(&dir.join("keys")).unwrap();
    assert_eq!(GOLDEN_FILES[0], HEADER_FILE);
    for file in GOLDEN_FILES {
        fs::write(dir.join(file), golden(file)).unwrap();
    }

    let store = Keystore::open(&dir).unwrap().unwrap();
    assert_eq!(
        store.kdf_params(),
        KdfParams {
            m_cost_kib: 256,
            t_cost: 2,
            p_cost: 2
        }
    );
    let key = store.unlock(b"golden fixture passphrase").unwrap();
    assert_eq!(key.0[..], (200..232).collect::<Vec<u8>>()[..]);
    let loaded = store.load_all(&key);
    assert!(loaded.failures.is_empty(), "{:?}", loaded.failures);
    let expected = [
        KeyRecord {
            meta: KeyMeta {
                name: "golden-ed".into(),
                scheme: Scheme::Ed25519,
                api_key: Some("golden-api-key".into()),
                created_unix: 1_700_000_000,
                format: None,
            },
            secret: Zeroizing::new(b"golden ed25519 secret bytes 0123456789".to_vec()),
            passphrase: None,
        },
        KeyRecord {
            meta: KeyMeta {
                name: "golden-hmac".into(),
                scheme: Scheme::HmacSha256,
                api_key: None,
                created_unix: 1_700_000_001,
                format: None,
            },
            secret: Zeroizing::new((0..32).collect()),
            passphrase: None,
        },
    ];
    assert_same(&loaded.records, &expected);
    assert!(matches!(
        store.unlock(b"golden fixture passphrasf"),
        Err(KeystoreError::WrongPassphrase)
    ));
}
