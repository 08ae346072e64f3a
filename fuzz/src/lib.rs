//! The fuzz targets' bodies, shared with tests/protocol/fuzz_replay.rs (which
//! includes targets.rs by path), so `cargo test` replays the committed
//! seeds and regressions through exactly the code the fuzzers run.
mod helpers;
mod targets;
pub use helpers::*;
pub use targets::*;
