//! Test support compiled only with the `testing` feature (the crate's own
//! tests, the fuzz targets and the instruction-count example turn it on):
//! a scripted HTTP application driven entirely from memory. Nothing here
//! ships in the release libraries (a test checks their symbols).

pub mod harness;
