//! Arbitrary bytes into the request-head fast path and the full parser,
//! under several limits: the fast path must answer only with what the full
//! parser gives. See fuzz/src/targets.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    connection_core_fuzz::fast_head_target(data);
});
