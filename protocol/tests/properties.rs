//! The fuzz targets' properties (fuzz/fuzz_targets/{frame,request,response}.rs), as property
//! tests that run on stable in CI: the decoders never panic, a decoded message re-encodes to
//! the very bytes it came from (there is one canonical encoding) and decodes again to the
//! same value, and the frame splitter agrees with the header encoder. Inputs: arbitrary
//! bytes, and the golden fixtures with bytes flipped, inserted and removed (so that most
//! inputs get past the first byte).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;

use keyward_protocol::frame::{HEADER_LEN, body_len, header_for, split_frame};
use keyward_protocol::{decode_request, decode_response, encode_request, encode_response};
use proptest::prelude::*;

/// The bodies of the golden frames (protocol/testdata), valid and invalid.
fn fixture_bodies() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut bodies: Vec<Vec<u8>> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "bin"))
        .map(|path| fs::read(path).unwrap())
        .filter(|frame| frame.len() > HEADER_LEN)
        .map(|frame| frame[HEADER_LEN..].to_vec())
        .collect();
    bodies.sort();
    bodies
}

/// A fixture body with up to four edits: flip a byte, insert one, remove one.
fn mutated_fixture() -> impl Strategy<Value = Vec<u8>> {
    let bodies = fixture_bodies();
    let edits = prop::collection::vec((0u8..3, any::<prop::sample::Index>(), any::<u8>()), 0..4);
    (prop::sample::select(bodies), edits).prop_map(|(mut body, edits)| {
        for (kind, at, byte) in edits {
            let len = body.len();
            match kind {
                0 if len > 0 => body[at.index(len)] ^= byte | 1,
                1 => body.insert(at.index(len + 1), byte),
                _ if len > 1 => {
                    body.remove(at.index(len));
                }
                _ => {}
            }
        }
        body
    })
}

fn input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        mutated_fixture(),
        mutated_fixture(),
    ]
}

fn check_request(body: &[u8]) {
    if let Ok(request) = decode_request(body) {
        let frame = encode_request(&request, u32::MAX).unwrap();
        assert_eq!(&frame[HEADER_LEN..], body, "not the one canonical encoding");
        assert_eq!(decode_request(&frame[HEADER_LEN..]).unwrap(), request);
    }
}

fn check_response(body: &[u8]) {
    if let Ok(response) = decode_response(body) {
        let frame = encode_response(&response, u32::MAX).unwrap();
        assert_eq!(&frame[HEADER_LEN..], body, "not the one canonical encoding");
        assert_eq!(decode_response(&frame[HEADER_LEN..]).unwrap(), response);
    }
}

#[test]
fn every_valid_fixture_round_trips_byte_for_byte() {
    let mut decoded = 0;
    for body in fixture_bodies() {
        check_request(&body);
        check_response(&body);
        decoded += usize::from(decode_request(&body).is_ok() || decode_response(&body).is_ok());
    }
    assert!(
        decoded >= 30,
        "only {decoded} fixtures decode: the seeds are missing"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn requests_never_panic_and_round_trip(body in input()) {
        check_request(&body);
    }

    #[test]
    fn responses_never_panic_and_round_trip(body in input()) {
        check_response(&body);
    }

    #[test]
    fn the_frame_splitter_agrees_with_the_header_encoder(
        max in prop_oneof![Just(0u32), 1u32..64, Just(65_536), any::<u32>()],
        len in prop_oneof![0u32..80, any::<u32>()],
        tail in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        let mut stream = len.to_be_bytes().to_vec();
        stream.extend_from_slice(&tail);
        match split_frame(&stream, max) {
            Ok(Some((body, rest))) => {
                prop_assert!(!body.is_empty() && body.len() <= max as usize);
                prop_assert_eq!(body.len(), len as usize);
                prop_assert_eq!(HEADER_LEN + body.len() + rest.len(), stream.len());
                let header = header_for(body.len(), max).unwrap();
                prop_assert_eq!(&header[..], &stream[..HEADER_LEN]);
            }
            Ok(None) => {
                let want = body_len(len.to_be_bytes(), max).unwrap();
                prop_assert!(tail.len() < want);
            }
            Err(_) => {
                prop_assert!(len == 0 || len > max);
                prop_assert!(header_for(len as usize, max).is_err());
            }
        }
    }
}
