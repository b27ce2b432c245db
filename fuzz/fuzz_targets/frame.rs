//! The frame decoder: never panics, and agrees with the header encoder.
#![no_main]
use keyward_protocol::frame::{HEADER_LEN, body_len, header_for, split_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first 4 bytes choose the limit, the rest is the stream.
    let Some((max, stream)) = data.split_first_chunk::<4>() else {
        return;
    };
    let max = u32::from_be_bytes(*max) % (1 << 20);
    match split_frame(stream, max) {
        Ok(Some((body, rest))) => {
            assert!(!body.is_empty() && body.len() <= max as usize);
            assert_eq!(HEADER_LEN + body.len() + rest.len(), stream.len());
            // Round trip: the header for this body is the one that was read.
            let header = header_for(body.len(), max).expect("an accepted length encodes");
            assert_eq!(&header[..], &stream[..HEADER_LEN]);
            assert_eq!(body_len(header, max), Ok(body.len()));
        }
        Ok(None) => {
            // Incomplete: either no header yet, or a valid header and a short body.
            if let Some(header) = stream.first_chunk::<HEADER_LEN>() {
                let len = body_len(*header, max).expect("an incomplete frame has a valid header");
                assert!(stream.len() < HEADER_LEN + len);
            }
        }
        Err(_) => {
            let header = stream
                .first_chunk::<HEADER_LEN>()
                .expect("errors need a header");
            assert!(body_len(*header, max).is_err());
        }
    }
});
