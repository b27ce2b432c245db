//! Nothing a peer sends can panic the decoders: cut, mutated and random inputs only ever give
//! a value or an error. A property test without a property-testing crate: the inputs come
//! from the golden fixtures and from a fixed-seed xorshift generator, so a failure always
//! reproduces.

// Helpers outside #[test] functions unwrap too: a panic anywhere here is a failed test,
// which is what we want (clippy.toml's allow-unwrap-in-tests covers only the test functions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use keyward_protocol::frame;
use keyward_protocol::{
    DEFAULT_MAX_FRAME, DecodeError, Request, Response, decode_request, decode_response,
    encode_request, encode_response,
};

/// Largest response frame body a client accepts (16 MiB), as keyward-client and keywardd
/// use it.
const MAX_RESPONSE_FRAME: u32 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Direction {
    Request,
    Response,
}

/// Every valid fixture as (file name, direction, frame bytes), read from the directory so
/// that a newly blessed fixture is covered without being listed here.
fn valid_fixtures() -> Vec<(String, Direction, Vec<u8>)> {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let direction = if name.starts_with("request-") {
            Direction::Request
        } else if name.starts_with("response-") {
            Direction::Response
        } else {
            continue;
        };
        out.push((name, direction, fs::read(&path).unwrap()));
    }
    out.sort();
    assert!(out.len() >= 21, "the golden fixtures are missing");
    out
}

fn body(frame_bytes: &[u8]) -> &[u8] {
    let (body, rest) = frame::split_frame(frame_bytes, DEFAULT_MAX_FRAME)
        .unwrap()
        .unwrap();
    assert!(rest.is_empty());
    body
}

/// Decodes `bytes` in `direction`; when that succeeds, checks that the value survives an
/// encode/decode round trip unchanged (a decoder that accepted bytes it cannot reproduce
/// the meaning of would be worse than one that refused them).
fn decode_checked(direction: Direction, bytes: &[u8]) -> Result<(), DecodeError> {
    match direction {
        Direction::Request => {
            let request = decode_request(bytes)?;
            let again = encode_request(&request, u32::MAX).unwrap();
            assert_eq!(
                decode_request(&again[4..]).unwrap(),
                request,
                "{bytes:02x?}"
            );
        }
        Direction::Response => {
            let response = decode_response(bytes)?;
            let again = encode_response(&response, u32::MAX).unwrap();
            assert_eq!(
                decode_response(&again[4..]).unwrap(),
                response,
                "{bytes:02x?}"
            );
        }
    }
    Ok(())
}

/// Marsaglia's xorshift64: tiny, deterministic, good enough to pick bytes.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

#[test]
fn every_prefix_of_every_valid_body_is_an_error() {
    for (name, direction, frame_bytes) in valid_fixtures() {
        let body = body(&frame_bytes);
        for cut in 0..body.len() {
            assert!(
                decode_checked(direction, &body[..cut]).is_err(),
                "{name}: the first {cut} body bytes decoded"
            );
        }
        assert_eq!(decode_checked(direction, body), Ok(()), "{name}");
    }
}

#[test]
fn every_prefix_of_every_valid_frame_asks_for_more_bytes() {
    for (name, _, frame_bytes) in valid_fixtures() {
        for cut in 0..frame_bytes.len() {
            assert_eq!(
                frame::split_frame(&frame_bytes[..cut], DEFAULT_MAX_FRAME),
                Ok(None),
                "{name}: cut at {cut}"
            );
        }
    }
}

#[test]
fn every_valid_body_is_refused_in_the_other_direction_or_means_something_there() {
    // Requests and responses share a byte space (both start with a small variant index), so
    // a body sent the wrong way may decode; it must still never panic.
    for (_, direction, frame_bytes) in valid_fixtures() {
        let other = match direction {
            Direction::Request => Direction::Response,
            Direction::Response => Direction::Request,
        };
        let _ = decode_checked(other, body(&frame_bytes));
    }
}

#[test]
fn single_byte_mutations_of_valid_bodies_never_panic() {
    for (_, direction, frame_bytes) in valid_fixtures() {
        let mut body = body(&frame_bytes).to_vec();
        for at in 0..body.len() {
            let original = body[at];
            for value in [
                0x00,
                0x01,
                0x02,
                0x7f,
                0x80,
                0xff,
                original ^ 0x01,
                original ^ 0x80,
                original.wrapping_add(1),
            ] {
                body[at] = value;
                let _ = decode_checked(direction, &body);
            }
            body[at] = original;
        }
    }
}

#[test]
fn pseudo_random_bytes_never_panic_the_decoders() {
    let mut rng = XorShift(0x6b65_7977_6172_6421); // "keyward!"
    let mut decoded = 0;
    for round in 0..20_000 {
        let len = usize::try_from(rng.below(48)).unwrap();
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        // Most rounds start with a known variant index, so the decoders get past the first
        // byte and into the fields; the others keep the first byte fully random.
        if round % 4 != 0
            && let Some(first) = bytes.first_mut()
        {
            *first %= 14;
        }
        // Small values for the second byte make plausible lengths and tags.
        if round % 2 == 0
            && let Some(second) = bytes.get_mut(1)
        {
            *second %= 8;
        }
        for direction in [Direction::Request, Direction::Response] {
            if decode_checked(direction, &bytes).is_ok() {
                decoded += 1;
            }
        }
        // The same bytes as a stream: whatever the header says, split_frame never panics and
        // never hands out more than the limit.
        for max in [1, 16, DEFAULT_MAX_FRAME, MAX_RESPONSE_FRAME] {
            if let Ok(Some((body, rest))) = frame::split_frame(&bytes, max) {
                assert!(body.len() <= max as usize);
                assert_eq!(body.len() + rest.len() + frame::HEADER_LEN, bytes.len());
            }
        }
    }
    // Without this the test could pass by never reaching a successful decode at all.
    assert!(decoded > 100, "only {decoded} random inputs decoded");
}

#[test]
fn random_frames_of_random_messages_round_trip() {
    // Random field values through the encoder, then back: checks the decoder against the
    // encoder away from the fixtures' particular values (lengths either side of 127 and
    // 16383, every byte value in payloads).
    let mut rng = XorShift(0x0123_4567_89ab_cdef);
    for _ in 0..2_000 {
        let len = match rng.below(4) {
            0 => rng.below(4),
            1 => 120 + rng.below(16),
            2 => 16_380 + rng.below(8),
            _ => rng.below(600),
        };
        let payload: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        let key: String = (0..rng.below(70))
            .map(|_| char::from(b'a' + u8::try_from(rng.below(26)).unwrap()))
            .collect();
        let request = Request::Sign {
            key: key.clone(),
            payload: payload.clone(),
        };
        let frame_bytes = encode_request(&request, DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(decode_request(body(&frame_bytes)).unwrap(), request);

        let response = Response::Signature {
            scheme: keyward_protocol::Scheme::ALL[usize::try_from(rng.below(5)).unwrap()],
            signature: payload,
        };
        let frame_bytes = encode_response(&response, DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(decode_response(body(&frame_bytes)).unwrap(), response);
    }
}
