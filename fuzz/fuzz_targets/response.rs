//! The response decoder: never panics; what decodes re-encodes to the same bytes and
//! decodes to the same message.
#![no_main]
use keyward_protocol::{decode_response, encode_response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(response) = decode_response(body) {
        let frame = encode_response(&response, u32::MAX).expect("a decoded response encodes");
        assert_eq!(&frame[4..], body, "not the one canonical encoding");
        assert_eq!(decode_response(&frame[4..]).as_ref(), Ok(&response));
    }
});
