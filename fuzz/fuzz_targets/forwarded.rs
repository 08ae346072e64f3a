//! `[selector, lines...]` into `http::forwarded::client_addr`.
//! See fuzz/src/helpers.rs for the invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    connection_core_fuzz::forwarded_target(data);
});
