//! The keystore's header and key-file decoders: never panic; what decodes encodes back.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    keyward_fuzz::keystore_files(data);
});
