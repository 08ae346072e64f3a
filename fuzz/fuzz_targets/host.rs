//! A Host value into `http::uri::host_parts`, and inside a request into `parse_head`.
//! See fuzz/src/helpers.rs for the invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    connection_core_fuzz::host_target(data);
});
