//! `[name_len, name..., query]` into `http::query` (by name and by index).
//! See fuzz/src/helpers.rs for the invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    connection_core_fuzz::query_target(data);
});
