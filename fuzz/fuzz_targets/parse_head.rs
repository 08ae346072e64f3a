//! Arbitrary bytes into the request-head parser, and what follows the head
//! into the chunked decoder. See fuzz/src/targets.rs for the invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    connection_core_fuzz::parse_head_target(data);
});
