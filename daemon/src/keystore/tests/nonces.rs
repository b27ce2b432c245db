//! Nonces are never reused under one key. XChaCha20-Poly1305 with a repeated nonce under one
//! key leaks the XOR of two plaintexts and lets anyone forge tags; every other test passes
//! with a fixed nonce (the files still decrypt), so this one reads the nonces off the disk.

use std::collections::BTreeSet;

use super::*;

fn key_file_nonce(dir: &Path, name: &str) -> [u8; NONCE_LEN] {
    let bytes = fs::read(dir.join(KEYS_DIR).join(key_file_name(name))).unwrap();
    *format::decode_key_file(&bytes).unwrap().nonce
}

fn header_of(dir: &Path) -> Header {
    Header::decode(&fs::read(dir.join(HEADER_FILE)).unwrap()).unwrap()
}

#[test]
fn every_seal_and_every_wrap_uses_a_fresh_nonce() {
    let tmp = tempfile::tempdir().unwrap();
    let records = sample_records();
    let (dir, mut store, key) = new_store(tmp.path(), &records);
    // One nonce per use of the data key, and the header's under the passphrase key.
    let mut data_key_nonces = BTreeSet::new();

    // Across key files.
    for record in &records {
        let nonce = key_file_nonce(&dir, &record.meta.name);
        assert!(
            data_key_nonces.insert(nonce),
            "{} reuses a nonce",
            record.meta.name
        );
    }
    // Across re-seals of the same name and the same secret: remove, store again, five times.
    let again = &records[1];
    for round in 0..5 {
        store.remove(&again.meta.name).unwrap();
        store.store(&key, again).unwrap();
        let nonce = key_file_nonce(&dir, &again.meta.name);
        assert!(
            data_key_nonces.insert(nonce),
            "re-seal {round} of {} reuses a nonce",
            again.meta.name
        );
    }
    assert!(!data_key_nonces.contains(&[0; NONCE_LEN]));

    // Across `passwd`: a new salt (so a new wrapping key) and a new nonce each time, even
    // back to an earlier passphrase.
    let mut header_nonces = BTreeSet::from([header_of(&dir).nonce]);
    let mut salts = BTreeSet::from([header_of(&dir).salt]);
    let passphrases: [&[u8]; 4] = [b"second", PASSPHRASE, b"second", PASSPHRASE];
    let mut old = PASSPHRASE;
    for (round, new) in passphrases.into_iter().enumerate() {
        store.change_passphrase(old, new, FAST).unwrap();
        let header = header_of(&dir);
        assert!(
            header_nonces.insert(header.nonce),
            "passwd {round} reuses the header nonce"
        );
        assert!(salts.insert(header.salt), "passwd {round} reuses the salt");
        assert!(
            !data_key_nonces.contains(&header.nonce),
            "passwd {round}: the header nonce is one a key file used"
        );
        old = new;
    }
    // The keys still open under the last passphrase, so the nonces read are the ones used.
    let key = Keystore::open(&dir).unwrap().unwrap().unlock(old).unwrap();
    assert_same(&store.load_all(&key).records, &records);
}
