//! The deprecated `keyward_client::binance` shim must keep signing as its replacement does
//! (cargo mutants found nothing checked it).
#![allow(deprecated)]

#[test]
fn the_deprecated_append_signature_is_its_replacement() {
    let signature = keyward_client::Signature::new(keyward_client::Scheme::Ed25519, vec![0xfb; 64]);
    let query = "symbol=BTCUSDT&timestamp=1";
    let appended = keyward_client::binance::append_signature(query, &signature);
    assert_eq!(
        appended,
        keyward_client::exchanges::binance::append_signature(query, &signature)
    );
    assert!(
        appended.starts_with("symbol=BTCUSDT&timestamp=1&signature="),
        "{appended}"
    );
}
