//! Arbitrary bytes, arbitrarily split into recv pieces, through the real
//! connection state machine in memory. See fuzz/src/targets.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    connection_core_fuzz::state_machine_target(data);
});
