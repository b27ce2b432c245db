//! The okx payload parser and the rules judging it: never panic; what does not parse is refused.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    keyward_fuzz::payload(keyward_fuzz::PayloadFormat::Okx, data);
});
