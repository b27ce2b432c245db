//! What a keystore on disk gives away: no 16-byte run of any private key (PKCS#8 DER, the
//! PEM text, RSA d/p/q/dp/dq/qinv, the Ed25519 seed, the ECDSA scalar), HMAC secret,
//! passphrase (old or new) or PEM password, in either byte order, in any file — while the same
//! scan does find each of them planted in a file. And the reader printed in docs/KEYSTORE.md,
//! an implementation that shares no code with keyward, opens a keystore keywardd wrote and
//! recovers exactly the imported secrets.
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use keyward_tests::keystore::{
    KeySecrets, KeystoreDir, TestKey, appendix_reader, key_secrets, keys_of_every_scheme, make_key,
    path_str, private_pem, random_bytes,
};
use keyward_tests::scan::{Needles, scan_files};
use keyward_tests::{Daemon, openssl, python, read, run};

/// A run of 16 bytes is 128 bits of a secret.
const RUN: usize = 16;
const OLD_PASSPHRASE: &[u8] = b"at-rest test: the first passphrase of this keystore";
const NEW_PASSPHRASE: &[u8] = b"at-rest test: the passphrase after keyward passwd";
const PEM_PASSWORD: &[u8] = b"at-rest test: the encrypted PEM's own password";

/// A keystore with a key of every scheme, an encrypted PKCS#8 import, generated keys, a
/// removed key and a changed passphrase; its daemon stopped.
struct Filled {
    store: KeystoreDir,
    /// Every imported key, with its secrets for asymmetric keys.
    keys: Vec<(TestKey, Option<KeySecrets>)>,
}

fn filled_keystore() -> Filled {
    let store = KeystoreDir::new();
    let dir = store.scratch();
    let mut keys: Vec<(TestKey, Option<KeySecrets>)> = keys_of_every_scheme(dir, "")
        .into_iter()
        .map(|key| {
            let secrets = (!key.is_hmac()).then(|| key_secrets(&key.file, None));
            (key, secrets)
        })
        .collect();
    // An encrypted PKCS#8 (its secrets are read through its password).
    let password = dir.join("pem-password");
    std::fs::write(&password, PEM_PASSWORD).unwrap();
    let plain = make_key(dir, "encrypted", "ed25519");
    let encrypted = dir.join("encrypted.pem");
    openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-in",
        path_str(&plain.file),
        "-passout",
        &format!("file:{}", path_str(&password)),
        "-out",
        path_str(&encrypted),
    ]);
    let secrets = key_secrets(&encrypted, Some(&password));
    keys.push((
        TestKey {
            file: encrypted,
            import_args: vec!["--pem-passphrase-file".into(), path_str(&password).into()],
            ..plain
        },
        Some(secrets),
    ));
    // A key that is imported and then removed: its secret must not linger either.
    let removed = make_key(dir, "removed", "rsa-2048");
    let removed_secrets = key_secrets(&removed.file, None);
    keys.push((removed.clone(), Some(removed_secrets)));

    let mut daemon = Daemon::start_with_keystore(store.path(), &[]);
    daemon
        .keyward_with_passphrases(&["init"], &[OLD_PASSPHRASE])
        .success();
    for (key, _) in &keys {
        daemon.import_key(key);
    }
    daemon.generate("generated-rsa", "rsa-2048");
    daemon.generate("generated-ed", "ed25519");
    daemon.keyward(["remove", &removed.name]).success();
    daemon
        .keyward_with_passphrases(&["passwd"], &[OLD_PASSPHRASE, NEW_PASSPHRASE])
        .success();
    daemon.stop();
    Filled { store, keys }
}

/// Every secret, in both byte orders, as runs of [`RUN`] bytes.
fn needles(keys: &[(TestKey, Option<KeySecrets>)]) -> Needles {
    let mut needles = Needles::new(RUN);
    for (key, secrets) in keys {
        match secrets {
            Some(secrets) => {
                // On disk, every run of the DER counts: no public key is stored in clear.
                needles.add_both_orders(&format!("{} PKCS#8 DER", key.name), &secrets.der);
                needles.add(format!("{} PEM text", key.name), &read(&key.file));
                for (part, bytes) in &secrets.parts {
                    needles.add_both_orders(&format!("{} {part}", key.name), bytes);
                }
            }
            None => needles.add_both_orders(&format!("{} secret", key.name), &key.material()),
        }
    }
    needles.add_both_orders("old passphrase", OLD_PASSPHRASE);
    needles.add_both_orders("new passphrase", NEW_PASSPHRASE);
    needles.add_both_orders("PEM password", PEM_PASSWORD);
    needles
}

#[test]
fn no_keystore_file_holds_a_16_byte_run_of_a_key_a_secret_or_a_passphrase() {
    let filled = filled_keystore();
    let needles = needles(&filled.keys);
    let files = keyward_tests::keystore::snapshot(filled.store.path());
    let names: Vec<String> = files
        .iter()
        .map(|(path, _)| {
            path.strip_prefix(filled.store.path())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    assert!(
        names.contains(&"header".to_owned()) && names.contains(&"keys/rsa.key".to_owned()),
        "{names:?}"
    );
    assert!(!names.contains(&"keys/removed.key".to_owned()), "{names:?}");

    let found = scan_files(&needles, filled.store.path());
    assert!(
        found.is_empty(),
        "the keystore holds secret material:\n{}",
        found
            .iter()
            .map(|(path, hit)| format!(
                "  {}: {} ({} bytes from offset {}) at byte {}",
                path.display(),
                hit.label,
                hit.len,
                hit.secret_offset,
                hit.at
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // The control: the same scan, over files that do hold 16 bytes of each secret (taken
    // from its middle, between random bytes, appended to a real key file), finds every one.
    let planted = tempfile::tempdir().unwrap();
    let key_file = read(&filled.store.path().join("keys/ed.key"));
    let labels: Vec<String> = needles.labels().iter().map(|l| (*l).to_owned()).collect();
    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    for (key, secrets_of_key) in &filled.keys {
        match secrets_of_key {
            Some(s) => {
                secrets.push((format!("{} PKCS#8 DER", key.name), s.der.clone()));
                for (part, bytes) in &s.parts {
                    secrets.push((format!("{} {part}", key.name), bytes.clone()));
                }
            }
            None => secrets.push((format!("{} secret", key.name), key.material())),
        }
    }
    secrets.push(("old passphrase".into(), OLD_PASSPHRASE.to_vec()));
    secrets.push(("new passphrase".into(), NEW_PASSPHRASE.to_vec()));
    secrets.push(("PEM password".into(), PEM_PASSWORD.to_vec()));
    for (i, (label, bytes)) in secrets.iter().enumerate() {
        assert!(labels.contains(label), "{label} is not searched for");
        let middle = bytes.len() / 2 - RUN / 2;
        let mut contents = key_file.clone();
        contents.extend_from_slice(&random_bytes(7 + i));
        contents.extend_from_slice(&bytes[middle..middle + RUN]);
        contents.extend_from_slice(&random_bytes(5));
        std::fs::write(planted.path().join(format!("{i}.key")), &contents).unwrap();
    }
    let found = scan_files(&needles, planted.path());
    let found_labels: BTreeSet<&str> = found.iter().map(|(_, hit)| hit.label.as_str()).collect();
    for (label, _) in &secrets {
        assert!(
            found_labels.contains(label.as_str()),
            "a planted run of {label} was not found: the scan is blind"
        );
    }
    // A run one byte short is not a run.
    let short = tempfile::tempdir().unwrap();
    std::fs::write(
        short.path().join("short"),
        &secrets[0].1[100..100 + RUN - 1],
    )
    .unwrap();
    assert!(scan_files(&needles, short.path()).is_empty());
}

#[test]
fn the_reader_in_docs_keystore_md_recovers_exactly_the_imported_secrets() {
    let filled = filled_keystore();
    let scratch = tempfile::tempdir().unwrap();
    let reader = appendix_reader(scratch.path());
    let out_dir = scratch.path().join("secrets");
    std::fs::create_dir(&out_dir).unwrap();
    let out = run(
        python().arg(&reader).arg(filled.store.path()).arg(&out_dir),
        Some(NEW_PASSPHRASE),
    );
    assert_eq!(out.code, Some(0), "the appendix reader failed: {out:#?}");
    let listing = out.stdout_text();
    assert!(!listing.contains("UNREADABLE"), "{listing}");
    let names: BTreeSet<&str> = listing
        .lines()
        .map(|line| line.split('\t').next().unwrap())
        .collect();
    let expected: BTreeSet<&str> = [
        "rsa",
        "ed",
        "ec",
        "hmac256",
        "hmac512",
        "encrypted",
        "generated-rsa",
        "generated-ed",
    ]
    .into();
    assert_eq!(names, expected, "{listing}");
    for (key, secrets) in &filled.keys {
        if key.name == "removed" {
            continue;
        }
        let line = listing
            .lines()
            .find(|line| line.starts_with(&format!("{}\t", key.name)))
            .unwrap();
        assert!(line.contains(&format!("\t{}\t", key.scheme)), "{line}");
        let recovered = read(&out_dir.join(format!("{}.secret", key.name)));
        match secrets {
            // keyward stores the HMAC secret as given.
            None => assert_eq!(recovered, key.material(), "{}", key.name),
            // keyward stores PKCS#8 re-encoded by AWS-LC: the same key, if not the same DER.
            Some(secrets) => {
                let pem = scratch.path().join(format!("{}.recovered.pem", key.name));
                std::fs::write(&pem, private_pem(&recovered)).unwrap();
                let again = key_secrets(&pem, None);
                assert_eq!(again.parts, secrets.parts, "{}", key.name);
            }
        }
    }
    // And the old passphrase no longer opens it.
    let out = run(
        python().arg(&reader).arg(filled.store.path()),
        Some(OLD_PASSPHRASE),
    );
    assert_ne!(
        out.code,
        Some(0),
        "the old passphrase still opens: {out:#?}"
    );
}
