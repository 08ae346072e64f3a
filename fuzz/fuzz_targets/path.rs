//! The request path into `http::path::decode` and `http::path::normalize`.
//! See fuzz/src/helpers.rs for the invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    connection_core_fuzz::path_target(data);
});
