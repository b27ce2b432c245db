//! Responses above 1 MiB reach the client whole: the response cap (`MAX_RESPONSE_FRAME`,
//! 16 MiB) is what the daemon and the client enforce, not something smaller. Shrinking it to
//! 1 MiB passed every other test, since no other test gets an answer that large.
//!
//! Which answer can be that large? Not a batch of signatures: `MAX_BATCH` (1024) RSA-4096
//! signatures are 1024 × (2 + 512) + 4 = 526,340 bytes of body, the largest `Signatures`
//! answer there is (the scheme's signature length is fixed whatever the payloads). Nor
//! anything else of fixed shape. Only `List` grows without bound, with the number of keys:
//! an RSA-4096 key with a 64-byte name and a 256-character API key id is 934 bytes of
//! `KeyInfo`, so 1,200 of them make a 1.1 MB answer.
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keyward_client::protocol::{MAX_BATCH, Response, encode_response};
use keyward_client::{KeyInfo, SecretBytes};
use keyward_tests::{Daemon, openssl, read};

const KEYS: usize = 1200;
const MIB: usize = 1024 * 1024;

#[test]
fn a_list_of_more_than_one_mib_reaches_the_client_whole() {
    let daemon = Daemon::start(&[]);
    let pem = daemon.dir().join("rsa-4096.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:4096",
        "-out",
        pem.to_str().unwrap(),
    ]);
    let material = read(&pem);
    let api_key = "k".repeat(256);
    let mut client = daemon.client();
    // Names of the longest length, so every key's entry is as large as it can be.
    let name = |i: usize| format!("{i:04}-{}", "n".repeat(59));
    let mut imported: Vec<KeyInfo> = (0..KEYS)
        .map(|i| {
            client
                .import(
                    &name(i),
                    None,
                    SecretBytes::new(material.clone()),
                    None,
                    Some(api_key.clone()),
                    None,
                )
                .unwrap()
        })
        .collect();
    imported.sort_by(|a, b| a.name.cmp(&b.name));

    let listed = client.list().unwrap();
    let body = encode_response(
        &Response::Keys {
            keys: listed.clone(),
        },
        u32::MAX,
    )
    .unwrap()
    .len()
        - 4;
    eprintln!("list of {KEYS} RSA-4096 keys: {body} bytes of response body");
    assert!(body > MIB + MIB / 20, "only {body} bytes: not above 1 MiB");
    assert_eq!(listed, imported, "the list arrived changed");
    // The connection is still in step after the large answer.
    assert_eq!(client.status().unwrap().keys as usize, KEYS);
}

/// The arithmetic in the module comment, checked: the largest batch answer is far below
/// 1 MiB, so a batch cannot be the test above.
#[test]
fn the_largest_batch_of_signatures_is_about_half_a_mib() {
    use keyward_client::protocol::Scheme;
    let largest = Response::Signatures {
        scheme: Scheme::RsaPkcs1v15Sha256,
        signatures: vec![vec![0u8; 512].into(); MAX_BATCH],
    };
    let body = encode_response(&largest, u32::MAX).unwrap().len() - 4;
    assert_eq!(body, 526_340);
    assert!(body < MIB / 2 + MIB / 40);
}
