//! The fuzz targets' properties (fuzz/), as property tests that run on stable in CI, over
//! the daemon's decoders: each payload format's parser and the rules judging it, the
//! keystore's header and key-file decoders, the config parser and key import. None panics on
//! any input; whatever does not parse is refused by the rules; what the keystore decodes
//! encodes back. Inputs: arbitrary bytes, and the repository's fixtures with bytes flipped,
//! inserted and removed. (The decimal parser's properties are in payload/decimal.rs, the
//! protocol's in protocol/tests/properties.rs.)

use std::fs;
use std::path::{Path, PathBuf};

use keyward_protocol::Scheme;
use proptest::prelude::*;

use crate::payload::{self, Format};

fn testdata(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(path)
}

/// Every regular file under `dir`, recursively, except READMEs.
fn files_under(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(current) = stack.pop() {
        for entry in fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_none_or(|ext| ext != "md") {
                out.push(fs::read(&path).unwrap());
            }
        }
    }
    out.sort();
    out
}

/// One of `seeds` with up to four edits (flip, insert, remove a byte), or arbitrary bytes.
fn input(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    assert!(!seeds.is_empty());
    let edits = prop::collection::vec((0u8..3, any::<prop::sample::Index>(), any::<u8>()), 0..4);
    let mutated = (prop::sample::select(seeds), edits).prop_map(|(mut bytes, edits)| {
        for (kind, at, byte) in edits {
            let len = bytes.len();
            match kind {
                0 if len > 0 => bytes[at.index(len)] ^= byte | 1,
                1 => bytes.insert(at.index(len + 1), byte),
                _ if len > 1 => {
                    bytes.remove(at.index(len));
                }
                _ => {}
            }
        }
        bytes
    });
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..300),
        3 => mutated,
    ]
}

fn payload_seeds(format: Format) -> Vec<Vec<u8>> {
    files_under(&testdata("payload").join(format.name()))
}

macro_rules! payload_properties {
    ($($test:ident: $format:expr;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]
            $(
                #[test]
                fn $test(data in input(payload_seeds($format))) {
                    payload::check_parse_and_judge($format, &data);
                }
            )*
        }
    };
}

payload_properties! {
    binance_payloads_never_panic: Format::Binance;
    bybit_payloads_never_panic: Format::Bybit;
    okx_payloads_never_panic: Format::Okx;
    kucoin_payloads_never_panic: Format::Kucoin;
    bitget_payloads_never_panic: Format::Bitget;
    kraken_payloads_never_panic: Format::Kraken;
    coinbase_jwt_payloads_never_panic: Format::CoinbaseJwt;
}

fn config_seeds() -> Vec<Vec<u8>> {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/keywardd.toml");
    vec![
        fs::read(shipped).unwrap(),
        b"[daemon]\naudit_required = true\naudit_log = \"/tmp/a\"\n\n[keys.k]\nformat = \"binance\"\n\
          rate_per_sec = 5\nburst = 3\ntimestamp_window_ms = 5000\ndeny_params = [\"address\"]\n\
          allow_symbols = [\"BTCUSDT\"]\nmax_quantity = \"0.5\"\n"
            .to_vec(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn keystore_files_never_panic_and_round_trip(
        data in input(files_under(&testdata("keystore-v1")).into_iter()
            .chain(files_under(&testdata("keystore-v2"))).collect())
    ) {
        crate::keystore::check_file_decoders(&data);
    }

    #[test]
    fn the_config_parser_never_panics(data in input(config_seeds())) {
        if let Ok(text) = std::str::from_utf8(&data) {
            let _ = crate::config::parse(text);
        }
    }

    #[test]
    fn key_import_never_panics(
        scheme in prop::option::of(prop::sample::select(vec![
            Scheme::HmacSha256, Scheme::HmacSha512, Scheme::Ed25519,
            Scheme::RsaPkcs1v15Sha256, Scheme::EcdsaP256Sha256,
        ])),
        label in prop::sample::select(vec![
            "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY",
            "EC PARAMETERS", "PUBLIC KEY",
        ]),
        body in "[A-Za-z0-9+/=\n]{0,200}",
        raw in prop::collection::vec(any::<u8>(), 0..100),
    ) {
        let pem = format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n");
        let _ = crate::import::import(scheme, pem.as_bytes(), Some(b"pw"));
        let _ = crate::import::import(scheme, &raw, None);
    }
}
