//! `[name_len, name..., Cookie value]` into `http::cookie::find`.
//! See fuzz/src/helpers.rs for the invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    connection_core_fuzz::cookie_target(data);
});
