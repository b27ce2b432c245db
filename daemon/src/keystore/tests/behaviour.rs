//! What each keystore operation does, and what it refuses, on real files.

use super::*;

#[test]
fn keys_round_trip_across_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(Keystore::open(&tmp.path().join("ks")).unwrap().is_none());
    let records = sample_records();
    let (dir, store, key) = new_store(tmp.path(), &records);
    assert_same(&store.load_all(&key).records, &records);
    drop((store, key));

    let store = Keystore::open(&dir).unwrap().unwrap();
    assert_eq!(store.dir(), dir);
    assert_eq!(store.kdf_params(), FAST);
    let key = store.unlock(PASSPHRASE).unwrap();
    let loaded = store.load_all(&key);
    assert!(loaded.failures.is_empty(), "{:?}", loaded.failures);
    assert_eq!(
        record_names(&loaded),
        ["binance-ed", "binance-rsa", "kraken.hmac_1"]
    );
    assert_same(&loaded.records, &records);
}

#[test]
fn an_empty_directory_is_not_initialized_and_init_creates_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/keyward");
    assert!(Keystore::open(&dir).unwrap().is_none());
    assert!(!dir.exists(), "open creates nothing");
    Keystore::init(&dir, PASSPHRASE, FAST).unwrap();
    assert!(Keystore::open(&dir).unwrap().is_some());

    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    fs::set_permissions(&empty, fs::Permissions::from_mode(0o700)).unwrap();
    assert!(Keystore::open(&empty).unwrap().is_none());
}

#[test]
fn init_twice_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _store, _key) = new_store(tmp.path(), &sample_records());
    let before = snapshot(&dir);
    assert!(matches!(
        Keystore::init(&dir, b"another passphrase", FAST),
        Err(KeystoreError::AlreadyInitialized)
    ));
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn a_wrong_passphrase_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, store, _key) = new_store(tmp.path(), &sample_records());
    let before = snapshot(&dir);
    for wrong in [&b""[..], b"correct horse battery staple, twice ove", b"x"] {
        assert!(matches!(
            store.unlock(wrong),
            Err(KeystoreError::WrongPassphrase)
        ));
    }
    assert_eq!(snapshot(&dir), before);
    assert!(store.unlock(PASSPHRASE).is_ok());
}

#[test]
fn change_passphrase_rewraps_the_data_key_only() {
    let tmp = tempfile::tempdir().unwrap();
    let records = sample_records();
    let (dir, mut store, _key) = new_store(tmp.path(), &records);
    let before = snapshot(&dir);
    let new_params = KdfParams {
        m_cost_kib: 2048,
        t_cost: 2,
        p_cost: 2,
    };

    // A wrong old passphrase changes nothing.
    assert!(matches!(
        store.change_passphrase(b"nope", b"new passphrase", new_params),
        Err(KeystoreError::WrongPassphrase)
    ));
    assert_eq!(snapshot(&dir), before);

    store
        .change_passphrase(PASSPHRASE, b"a brand new passphrase", new_params)
        .unwrap();
    let after = snapshot(&dir);
    for (path, bytes) in &before {
        if path != Path::new(HEADER_FILE) {
            assert_eq!(after.get(path), Some(bytes), "{} changed", path.display());
        }
    }
    let (old_header, new_header) = (
        &before[Path::new(HEADER_FILE)],
        &after[Path::new(HEADER_FILE)],
    );
    assert_ne!(old_header[24..40], new_header[24..40], "a new salt");
    assert_eq!(after.len(), before.len(), "no temporary file left");

    for store in [store, Keystore::open(&dir).unwrap().unwrap()] {
        assert_eq!(store.kdf_params(), new_params);
        assert!(matches!(
            store.unlock(PASSPHRASE),
            Err(KeystoreError::WrongPassphrase)
        ));
        let key = store.unlock(b"a brand new passphrase").unwrap();
        let loaded = store.load_all(&key);
        assert!(loaded.failures.is_empty());
        assert_same(&loaded.records, &records);
    }
}

#[test]
fn key_exists_and_unknown_key() {
    let tmp = tempfile::tempdir().unwrap();
    let records = sample_records();
    let (dir, store, key) = new_store(tmp.path(), &records);

    let before = snapshot(&dir);
    let clash = record("binance-ed", Scheme::HmacSha256, None, random_bytes(32));
    assert!(matches!(
        store.store(&key, &clash),
        Err(KeystoreError::KeyExists(name)) if name == "binance-ed"
    ));
    assert_eq!(snapshot(&dir), before);

    assert!(matches!(
        store.remove("nope"),
        Err(KeystoreError::UnknownKey(name)) if name == "nope"
    ));
    store.remove("binance-ed").unwrap();
    assert!(matches!(
        store.remove("binance-ed"),
        Err(KeystoreError::UnknownKey(_))
    ));
    let loaded = store.load_all(&key);
    assert_eq!(record_names(&loaded), ["binance-rsa", "kraken.hmac_1"]);

    // The name is free again.
    store.store(&key, &clash).unwrap();
    assert_eq!(store.load_all(&key).records.len(), 3);
}

#[test]
fn invalid_names_never_reach_the_file_system() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, store, key) = new_store(tmp.path(), &[]);
    let before = snapshot(&dir);
    for bad in ["", "../header", ".kw-tmp-x", "a/b", "-x", &"x".repeat(65)] {
        let bad_record = record(bad, Scheme::HmacSha256, None, random_bytes(32));
        assert!(
            matches!(
                store.store(&key, &bad_record),
                Err(KeystoreError::InvalidName(_))
            ),
            "{bad:?}"
        );
        assert!(
            matches!(store.remove(bad), Err(KeystoreError::InvalidName(_))),
            "{bad:?}"
        );
    }
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn records_that_cannot_be_stored_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (_dir, store, key) = new_store(tmp.path(), &[]);
    let cases = [
        record("empty", Scheme::HmacSha256, None, Vec::new()),
        record(
            "huge",
            Scheme::HmacSha256,
            None,
            vec![1; format::MAX_SECRET_LEN + 1],
        ),
        record(
            "long-id",
            Scheme::HmacSha256,
            Some(&"k".repeat(70_000)),
            vec![1; 32],
        ),
    ];
    for case in &cases {
        assert!(matches!(
            store.store(&key, case),
            Err(KeystoreError::InvalidRecord { .. })
        ));
    }
    // The largest secret does fit, and loads.
    store
        .store(
            &key,
            &record(
                "big",
                Scheme::HmacSha256,
                None,
                vec![2; format::MAX_SECRET_LEN],
            ),
        )
        .unwrap();
    assert_eq!(
        store.load_all(&key).records[0].secret.len(),
        format::MAX_SECRET_LEN
    );
}

#[test]
fn invalid_kdf_parameters_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for params in [
        KdfParams {
            m_cost_kib: 7,
            t_cost: 1,
            p_cost: 1,
        },
        KdfParams {
            m_cost_kib: 1024,
            t_cost: 0,
            p_cost: 1,
        },
        KdfParams {
            m_cost_kib: 1024,
            t_cost: 1,
            p_cost: 0,
        },
        KdfParams {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 16,
        },
        KdfParams {
            m_cost_kib: u32::MAX,
            t_cost: 1,
            p_cost: 1,
        },
    ] {
        assert!(matches!(
            Keystore::init(&tmp.path().join("ks"), PASSPHRASE, params),
            Err(KeystoreError::InvalidKdfParams { .. })
        ));
    }
    assert!(KdfParams::default().check().is_ok());
    assert!(!tmp.path().join("ks").exists());
}

#[test]
fn any_flipped_byte_in_a_key_file_fails_that_key_only() {
    let tmp = tempfile::tempdir().unwrap();
    let records = sample_records();
    let (dir, store, key) = new_store(tmp.path(), &records);
    let path = dir.join("keys/binance-ed.key");
    let original = fs::read(&path).unwrap();
    for i in 0..original.len() {
        let mut bytes = original.clone();
        bytes[i] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        let before = snapshot(&dir);
        let loaded = store.load_all(&key);
        assert_eq!(
            record_names(&loaded),
            ["binance-rsa", "kraken.hmac_1"],
            "byte {i}"
        );
        assert_eq!(failure_names(&loaded), ["binance-ed"], "byte {i}");
        let err = &loaded.failures[0].1;
        assert!(
            matches!(
                err,
                KeystoreError::CorruptKey { .. } | KeystoreError::UnsupportedVersion { .. }
            ),
            "byte {i}: {err}"
        );
        assert!(
            err.to_string().contains("binance-ed") || (8..12).contains(&i),
            "{err}"
        );
        assert_eq!(snapshot(&dir), before, "load_all modified a file");
    }
    // Truncations too.
    for len in [0, 5, 12, 40, original.len() - 1] {
        fs::write(&path, &original[..len]).unwrap();
        let loaded = store.load_all(&key);
        assert_eq!(failure_names(&loaded), ["binance-ed"], "length {len}");
        assert_eq!(loaded.records.len(), 2);
    }
    fs::write(&path, &original).unwrap();
    assert!(store.load_all(&key).failures.is_empty());
}

#[test]
fn a_flipped_tag_byte_is_an_authentication_failure_named_by_key() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, store, key) = new_store(tmp.path(), &sample_records());
    let path = dir.join("keys/kraken.hmac_1.key");
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x80;
    fs::write(&path, &bytes).unwrap();
    let loaded = store.load_all(&key);
    let (name, err) = &loaded.failures[0];
    assert_eq!(name, "kraken.hmac_1");
    assert_eq!(
        err.to_string(),
        "key kraken.hmac_1 is unreadable: authentication failed: the file was altered, \
         or was sealed by another keystore"
    );
}

#[test]
fn a_renamed_or_swapped_key_file_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, store, key) = new_store(tmp.path(), &sample_records());
    let keys = dir.join("keys");
    fs::rename(keys.join("binance-ed.key"), keys.join("withdrawals.key")).unwrap();
    let loaded = store.load_all(&key);
    assert_eq!(record_names(&loaded), ["binance-rsa", "kraken.hmac_1"]);
    assert_eq!(failure_names(&loaded), ["withdrawals"]);
    assert!(
        matches!(&loaded.failures[0].1, KeystoreError::CorruptKey { reason, .. }
        if reason.contains("\"binance-ed\""))
    );

    // Swapping two files' names fails both.
    fs::rename(keys.join("withdrawals.key"), keys.join("binance-ed.key")).unwrap();
    fs::rename(keys.join("binance-rsa.key"), keys.join("tmp.key")).unwrap();
    fs::rename(keys.join("kraken.hmac_1.key"), keys.join("binance-rsa.key")).unwrap();
    fs::rename(keys.join("tmp.key"), keys.join("kraken.hmac_1.key")).unwrap();
    let loaded = store.load_all(&key);
    assert_eq!(record_names(&loaded), ["binance-ed"]);
    assert_eq!(failure_names(&loaded), ["binance-rsa", "kraken.hmac_1"]);
}

#[test]
fn a_truncated_header_is_corrupt_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _store, _key) = new_store(tmp.path(), &sample_records());
    let header_path = dir.join(HEADER_FILE);
    let original = fs::read(&header_path).unwrap();
    for len in [0, 1, 7, 8, 11, 12, 40, 64, original.len() - 1] {
        fs::write(&header_path, &original[..len]).unwrap();
        let before = snapshot(&dir);
        let err = Keystore::open(&dir).unwrap_err();
        assert!(
            matches!(err, KeystoreError::CorruptHeader { .. }),
            "{len}: {err}"
        );
        assert!(matches!(
            Keystore::init(&dir, PASSPHRASE, FAST),
            Err(KeystoreError::CorruptHeader { .. })
        ));
        assert_eq!(snapshot(&dir), before, "{len}");
    }
    let mut long = original.clone();
    long.push(0);
    fs::write(&header_path, &long).unwrap();
    assert!(matches!(
        Keystore::open(&dir),
        Err(KeystoreError::CorruptHeader { .. })
    ));
    fs::write(&header_path, &original).unwrap();
    assert!(Keystore::open(&dir).unwrap().is_some());
}

#[test]
fn a_tampered_header_parameter_is_a_wrong_passphrase() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _store, _key) = new_store(tmp.path(), &[]);
    let header_path = dir.join(HEADER_FILE);
    let original = fs::read(&header_path).unwrap();
    // t_cost 1 -> 2, a salt byte, a nonce byte, a wrapped-key byte, a tag byte.
    for i in [19, 30, 50, 70, 100] {
        let mut bytes = original.clone();
        bytes[i] ^= if i == 19 { 0x03 } else { 0x01 };
        fs::write(&header_path, &bytes).unwrap();
        let store = Keystore::open(&dir).unwrap().unwrap();
        assert!(
            matches!(
                store.unlock(PASSPHRASE),
                Err(KeystoreError::WrongPassphrase)
            ),
            "byte {i}"
        );
    }
}

#[test]
fn an_unknown_format_version_is_its_own_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, store, key) = new_store(tmp.path(), &sample_records());

    let key_path = dir.join("keys/binance-rsa.key");
    let mut bytes = fs::read(&key_path).unwrap();
    bytes[8..12].copy_from_slice(&4u32.to_be_bytes());
    fs::write(&key_path, &bytes).unwrap();
    let loaded = store.load_all(&key);
    assert_eq!(failure_names(&loaded), ["binance-rsa"]);
    assert!(matches!(
        loaded.failures[0].1,
        KeystoreError::UnsupportedVersion {
            found: 4,
            supported: 3
        }
    ));
    assert_eq!(loaded.records.len(), 2);

    let header_path = dir.join(HEADER_FILE);
    let mut bytes = fs::read(&header_path).unwrap();
    bytes[8..12].copy_from_slice(&7u32.to_be_bytes());
    bytes.extend_from_slice(b"a later format may be longer");
    fs::write(&header_path, &bytes).unwrap();
    let before = snapshot(&dir);
    let err = Keystore::open(&dir).unwrap_err();
    assert!(matches!(
        err,
        KeystoreError::UnsupportedVersion {
            found: 7,
            supported: 1
        }
    ));
    assert_eq!(
        err.to_string(),
        "unsupported keystore format version 7 (this keyward reads versions up to 1)"
    );
    assert!(matches!(
        Keystore::init(&dir, PASSPHRASE, FAST),
        Err(KeystoreError::UnsupportedVersion { .. })
    ));
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn a_missing_header_with_key_files_is_not_mistaken_for_a_new_keystore() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _store, _key) = new_store(tmp.path(), &sample_records());
    fs::remove_file(dir.join(HEADER_FILE)).unwrap();
    let before = snapshot(&dir);
    assert!(matches!(
        Keystore::open(&dir),
        Err(KeystoreError::CorruptHeader { .. })
    ));
    assert!(matches!(
        Keystore::init(&dir, PASSPHRASE, FAST),
        Err(KeystoreError::CorruptHeader { .. })
    ));
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn files_are_0600_and_directories_0700() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, mut store, _key) = new_store(tmp.path(), &sample_records());
    store.change_passphrase(PASSPHRASE, b"next", FAST).unwrap();
    let mode = |path: &Path| fs::metadata(path).unwrap().mode() & 0o7777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("keys")), 0o700);
    let files = snapshot(&dir);
    assert_eq!(files.len(), 4, "{:?}", files.keys());
    for path in files.keys() {
        assert_eq!(mode(&dir.join(path)), 0o600, "{}", path.display());
    }
}

#[test]
fn unsafe_directories_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _store, _key) = new_store(tmp.path(), &sample_records());
    let keys = dir.join("keys");
    let set = |path: &Path, mode: u32| {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    };

    for (path, mode) in [(&dir, 0o770), (&dir, 0o702), (&keys, 0o777)] {
        set(path, mode);
        let err = Keystore::open(&dir).unwrap_err();
        assert!(
            matches!(&err, KeystoreError::UnsafePermissions { path: p, .. } if p == path),
            "{err}"
        );
        assert!(
            err.to_string().contains("writable by group or others"),
            "{err}"
        );
        set(path, 0o700);
    }
    // Readable by group or others is refused too (SECURITY.md promises 0700): the encrypted
    // keys could be copied for an offline passphrase search.
    for (path, mode) in [(&dir, 0o755), (&dir, 0o750), (&keys, 0o705)] {
        set(path, mode);
        let err = Keystore::open(&dir).unwrap_err();
        assert!(
            matches!(&err, KeystoreError::UnsafePermissions { path: p, .. } if p == path),
            "{err}"
        );
        let shown = err.to_string();
        assert!(
            shown.contains("readable by group or others") && shown.contains("chmod 700"),
            "{shown}"
        );
        set(path, 0o700);
    }
    assert!(Keystore::open(&dir).unwrap().is_some());

    let fresh = tmp.path().join("fresh");
    fs::create_dir(&fresh).unwrap();
    set(&fresh, 0o777);
    assert!(matches!(
        Keystore::init(&fresh, PASSPHRASE, FAST),
        Err(KeystoreError::UnsafePermissions { .. })
    ));
    assert!(!fresh.join(HEADER_FILE).exists());

    // Another owner (only root can arrange that).
    if nix::unistd::geteuid().is_root() {
        let nobody = nix::unistd::Uid::from_raw(65534);
        nix::unistd::chown(&dir, Some(nobody), None).unwrap();
        let err = Keystore::open(&dir).unwrap_err();
        assert!(err.to_string().contains("owned by uid 65534"), "{err}");
        nix::unistd::chown(&dir, Some(nix::unistd::geteuid()), None).unwrap();
        assert!(Keystore::open(&dir).unwrap().is_some());
    }
}

#[test]
fn no_file_holds_a_16_byte_run_of_a_secret_or_the_passphrase() {
    let tmp = tempfile::tempdir().unwrap();
    let records = sample_records();
    let (dir, mut store, key) = new_store(tmp.path(), &records);
    store
        .change_passphrase(PASSPHRASE, b"the second passphrase, also long", FAST)
        .unwrap();
    let mut needles: Vec<(String, Vec<u8>)> = records
        .iter()
        .map(|r| (r.meta.name.clone(), r.secret.to_vec()))
        .collect();
    needles.push(("first passphrase".into(), PASSPHRASE.to_vec()));
    needles.push((
        "second passphrase".into(),
        b"the second passphrase, also long".to_vec(),
    ));
    needles.push(("data key".into(), key.0.to_vec()));

    let files = snapshot(&dir);
    assert_eq!(files.len(), 4);
    for (path, bytes) in &files {
        for (what, needle) in &needles {
            assert_eq!(
                keyward_tests::scan::find_run(bytes, needle, 16),
                None,
                "{} holds a run of the {what}",
                path.display()
            );
        }
    }
    // The scan can see: the clear metadata is found.
    assert!(
        files
            .values()
            .any(|bytes| bytes.windows(11).any(|w| w == b"binance-rsa"))
    );
}

#[test]
fn leftover_temporary_files_are_ignored_then_cleaned() {
    let tmp = tempfile::tempdir().unwrap();
    let records = sample_records();
    let (dir, store, key) = new_store(tmp.path(), &records);
    let keys = dir.join("keys");
    // What a crash leaves: a partial file, a complete one that was never renamed, and a
    // header written by an interrupted passwd.
    fs::write(
        keys.join(".kw-tmp-0011223344556677"),
        b"KWKEY\0\0\0\0\0\0\x01\x05hal",
    )
    .unwrap();
    fs::copy(
        keys.join("binance-ed.key"),
        keys.join(".kw-tmp-8899aabbccddeeff"),
    )
    .unwrap();
    fs::copy(dir.join(HEADER_FILE), dir.join(".kw-tmp-0123456789abcdef")).unwrap();
    // Not ours at all: left alone and not reported.
    fs::write(keys.join("README"), b"hello").unwrap();

    let loaded = store.load_all(&key);
    assert!(loaded.failures.is_empty(), "{:?}", loaded.failures);
    assert_same(&loaded.records, &records);

    // A young temporary file may be a write in flight: open leaves it.
    Keystore::open(&dir).unwrap().unwrap();
    assert_eq!(snapshot(&dir).len(), 4 + 4);

    // Once old, it is a crash's leftover: open deletes it.
    let old = std::time::SystemTime::now() - fsio::TEMP_MAX_AGE * 2;
    for path in [
        keys.join(".kw-tmp-0011223344556677"),
        keys.join(".kw-tmp-8899aabbccddeeff"),
        dir.join(".kw-tmp-0123456789abcdef"),
    ] {
        fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let store = Keystore::open(&dir).unwrap().unwrap();
    let remaining = snapshot(&dir);
    assert!(
        remaining
            .keys()
            .all(|p| !p.to_string_lossy().contains(".kw-tmp-")),
        "{:?}",
        remaining.keys()
    );
    assert!(remaining.contains_key(Path::new("keys/README")));
    assert_same(&store.load_all(&key).records, &records);
}

#[test]
fn writes_leave_no_temporary_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, mut store, key) = new_store(tmp.path(), &sample_records());
    let clash = record("binance-ed", Scheme::HmacSha256, None, random_bytes(32));
    assert!(store.store(&key, &clash).is_err());
    store.remove("binance-rsa").unwrap();
    store.change_passphrase(PASSPHRASE, b"x", FAST).unwrap();
    let names: Vec<_> = snapshot(&dir).into_keys().collect();
    assert_eq!(
        names,
        [
            PathBuf::from("header"),
            PathBuf::from("keys/binance-ed.key"),
            PathBuf::from("keys/kraken.hmac_1.key"),
        ]
    );
}

#[test]
fn special_files_in_keys_fail_without_hanging() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, store, key) = new_store(tmp.path(), &sample_records());
    let keys = dir.join("keys");
    nix::unistd::mkfifo(&keys.join("fifo.key"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    fs::create_dir(keys.join("dir.key")).unwrap();
    std::os::unix::fs::symlink(keys.join("binance-ed.key"), keys.join("link.key")).unwrap();
    fs::write(keys.join("Not A Name.key"), b"x").unwrap();
    let loaded = store.load_all(&key);
    assert_eq!(loaded.records.len(), 3);
    assert_eq!(
        failure_names(&loaded),
        ["Not A Name.key", "dir", "fifo", "link"]
    );
}

#[test]
fn debug_output_never_shows_secret_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let secret = b"0123456789abcdef-hmac-secret".to_vec();
    let rec = record("k", Scheme::HmacSha256, Some("api-id"), secret);
    let (_dir, store, key) = new_store(tmp.path(), std::slice::from_ref(&rec));
    let loaded = store.load_all(&key);
    let shown = format!("{rec:?} {loaded:?} {key:?} {store:?}");
    assert!(!shown.contains("hmac-secret"), "{shown}");
    assert!(!shown.contains("48, 49, 50"), "no byte lists: {shown}");
    assert!(shown.contains("REDACTED"));
    assert!(shown.contains("api-id"), "metadata is not secret: {shown}");
}

/// A KuCoin passphrase is sealed with the secret (key file version 3), survives a reopen,
/// can be replaced and removed in place, and never appears in clear in the file; a key
/// without one stays a version 2 file.
#[test]
fn a_passphrase_is_sealed_with_its_key_and_can_be_replaced() {
    const KUCOIN_PASSPHRASE: &[u8] = b"kucoin passphrase 7f3a9c";
    let tmp = tempfile::tempdir().unwrap();
    let mut with = record(
        "kucoin",
        Scheme::HmacSha256,
        Some("kc-id"),
        random_bytes(36),
    );
    with.passphrase = Some(Zeroizing::new(KUCOIN_PASSPHRASE.to_vec()));
    let without = record("okx", Scheme::HmacSha256, None, random_bytes(32));
    let (dir, store, key) = new_store(tmp.path(), &[]);
    store.store(&key, &with).unwrap();
    store.store(&key, &without).unwrap();
    let file = fs::read(dir.join("keys/kucoin.key")).unwrap();
    assert_eq!(&file[8..12], &[0, 0, 0, 3]);
    assert!(
        !file
            .windows(KUCOIN_PASSPHRASE.len())
            .any(|w| w == KUCOIN_PASSPHRASE),
        "the passphrase is in clear in the key file"
    );
    assert_eq!(
        &fs::read(dir.join("keys/okx.key")).unwrap()[8..12],
        &[0, 0, 0, 2]
    );
    drop((store, key));

    let store = Keystore::open(&dir).unwrap().unwrap();
    let key = store.unlock(PASSPHRASE).unwrap();
    let loaded = store.load_all(&key);
    assert!(loaded.failures.is_empty(), "{:?}", loaded.failures);
    assert_same(&loaded.records, &[with, without]);

    // Set on the key without one (it becomes version 3), removed from the other (version 2).
    let mut okx = store.load(&key, "okx").unwrap();
    okx.passphrase = Some(Zeroizing::new(b"other".to_vec()));
    store.replace(&key, &okx).unwrap();
    let mut kucoin = store.load(&key, "kucoin").unwrap();
    kucoin.passphrase = None;
    store.replace(&key, &kucoin).unwrap();
    assert_eq!(
        store
            .load(&key, "okx")
            .unwrap()
            .passphrase
            .as_deref()
            .map(Vec::as_slice),
        Some(&b"other"[..])
    );
    assert!(store.load(&key, "kucoin").unwrap().passphrase.is_none());
    assert_eq!(
        &fs::read(dir.join("keys/kucoin.key")).unwrap()[8..12],
        &[0, 0, 0, 2]
    );
    assert!(matches!(
        store.load(&key, "nope"),
        Err(KeystoreError::UnknownKey(_))
    ));
    let mut ghost = okx;
    ghost.meta.name = "ghost".into();
    assert!(matches!(
        store.replace(&key, &ghost),
        Err(KeystoreError::UnknownKey(_))
    ));
    assert!(!dir.join("keys/ghost.key").exists());
    for bad in [Vec::new(), vec![b'x'; MAX_PASSPHRASE_LEN + 1]] {
        ghost.meta.name = "kucoin".into();
        ghost.passphrase = Some(Zeroizing::new(bad));
        assert!(matches!(
            store.replace(&key, &ghost),
            Err(KeystoreError::InvalidRecord { .. })
        ));
    }
}
