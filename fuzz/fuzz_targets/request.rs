//! The request decoder: never panics; what decodes re-encodes to the same bytes and
//! decodes to the same message.
#![no_main]
use keyward_protocol::{decode_request, encode_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(request) = decode_request(body) {
        let frame = encode_request(&request, u32::MAX).expect("a decoded request encodes");
        assert_eq!(&frame[4..], body, "not the one canonical encoding");
        assert_eq!(decode_request(&frame[4..]).as_ref(), Ok(&request));
    }
});
