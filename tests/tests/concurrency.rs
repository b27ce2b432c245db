//! Many bots signing at once: every one gets the right signature for its own payload.
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::thread;

use keyward_client::{KeyKind, Scheme, SecretBytes};
use keyward_tests::Daemon;
use keyward_tests::verify::{Check, assert_python_verifies};

const CLIENTS: usize = 64;
const SIGNATURES_PER_CLIENT: usize = 8;
const HMAC_SECRET: &[u8] = b"concurrency-test-hmac-secret-0123456789";
const KEYS: [&str; 3] = ["ed", "rsa", "hmac"];

#[test]
fn sixty_four_clients_signing_at_once_all_get_correct_signatures() {
    let daemon = Daemon::start(&[]);
    let mut admin = daemon.client();
    admin.generate("ed", KeyKind::Ed25519, None, None).unwrap();
    admin.generate("rsa", KeyKind::Rsa2048, None, None).unwrap();
    admin
        .import(
            "hmac",
            Some(Scheme::HmacSha256),
            SecretBytes::new(HMAC_SECRET.to_vec()),
            None,
            None,
            None,
        )
        .unwrap();

    // Every client connects first, then all start signing at the same instant. Each signs
    // payloads no other client signs, with keys of all three schemes in turn, so a response
    // delivered to the wrong connection or made with the wrong key cannot go unnoticed.
    let start = Arc::new(Barrier::new(CLIENTS));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|client_no| {
            let mut client = daemon.client();
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                (0..SIGNATURES_PER_CLIENT)
                    .map(|n| {
                        let key = KEYS[(client_no + n) % KEYS.len()];
                        let payload = format!(
                            "symbol=BTCUSDT&side=BUY&quantity={client_no}.{n}&timestamp=17000000{client_no:02}{n:03}"
                        )
                        .into_bytes();
                        let signature = client.sign(key, &payload).unwrap().into_bytes();
                        (key, payload, signature)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<(&str, Vec<u8>, Vec<u8>)> = threads
        .into_iter()
        .flat_map(|thread| thread.join().unwrap())
        .collect();
    assert_eq!(results.len(), CLIENTS * SIGNATURES_PER_CLIENT);

    // Ed25519, RSA PKCS#1 v1.5 and HMAC are deterministic: one sequential client must get
    // the very same bytes for each payload.
    let mut sequential = daemon.client();
    for (key, payload, signature) in &results {
        let expected = sequential.sign(key, payload).unwrap();
        assert_eq!(
            expected.as_bytes(),
            &signature[..],
            "{key} signature of {:?} differs when signed concurrently",
            String::from_utf8_lossy(payload)
        );
    }

    // And a sample of each scheme checks out under an independent implementation.
    let public_keys: HashMap<&str, _> = [("ed", "ed25519"), ("rsa", "rsa-pkcs1v15-sha256")]
        .into_iter()
        .map(|(key, scheme)| {
            let out = daemon.keyward(["pubkey", key]);
            out.success();
            (
                key,
                (scheme, daemon.write(&format!("{key}.pub.pem"), &out.stdout)),
            )
        })
        .collect();
    let secret = daemon.write("hmac.secret", HMAC_SECRET);
    for key in KEYS {
        let (_, payload, signature) = results.iter().find(|(k, _, _)| *k == key).unwrap();
        let (scheme, file) = match public_keys.get(key) {
            Some((scheme, file)) => (*scheme, file),
            None => ("hmac-sha256", &secret),
        };
        assert_python_verifies(&Check::new(scheme, file, payload, signature));
    }
}

#[test]
fn one_client_shared_by_threads_behind_a_mutex_gets_each_answer_to_its_own_request() {
    let daemon = Daemon::start(&[]);
    let mut admin = daemon.client();
    admin.generate("ed", KeyKind::Ed25519, None, None).unwrap();
    let shared = Arc::new(std::sync::Mutex::new(daemon.client()));
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                (0..16)
                    .map(|n| {
                        let payload = format!("thread={i}&n={n}").into_bytes();
                        let signature = shared.lock().unwrap().sign("ed", &payload).unwrap();
                        (payload, signature)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for thread in threads {
        for (payload, signature) in thread.join().unwrap() {
            assert_eq!(admin.sign("ed", &payload).unwrap(), signature);
        }
    }
}
