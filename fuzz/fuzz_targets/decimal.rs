//! The order rules' strict decimal parser: never panics; parse, print, parse is the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    keyward_fuzz::decimal(data);
});
