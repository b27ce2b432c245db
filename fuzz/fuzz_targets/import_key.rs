//! PEM and secret import (the daemon's import.rs): never panics; what imports, stored, loads again.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    keyward_fuzz::import_key(data);
});
