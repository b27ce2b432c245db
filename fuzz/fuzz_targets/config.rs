//! The config file parser (keywardd.toml): never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    keyward_fuzz::config(data);
});
