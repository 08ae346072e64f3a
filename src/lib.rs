//! connection-core: an epoll HTTP/1.1 connection core with a C ABI.
//!
//! A C program links this in place of its own epoll loop. The library owns
//! the loop, every client's life cycle and every write, so the application
//! never sees EPIPE, ECONNRESET or SIGPIPE: it answers requests, and when a
//! client vanishes it is told once, through a cleanup callback.
//!
//! Layers, each using only those below it (ARCHITECTURE.md has the map):
//! * `ffi/` — the C boundary: every exported function and C type;
//! * `reactor/` — the event loop, connections, the HTTP exchange, timers;
//! * `http/` — sans-IO HTTP/1.1: request heads, chunked bodies, responses;
//! * `sys/` — the only code that makes system calls.
//!
//! `testing/` (feature `testing`: tests, fuzzing, examples) drives the
//! reactor from memory; it is not part of what ships.
#![deny(unsafe_op_in_unsafe_fn)]
#![allow(clippy::missing_safety_doc)] // the C contracts are in each doc comment

pub mod ffi;
pub mod http;
pub mod reactor;
pub mod sys;
#[cfg(feature = "testing")]
pub mod testing;

pub use crate::ffi::client_addr::*;
pub use crate::ffi::completion::*;
pub use crate::ffi::config::*;
pub use crate::ffi::connection::*;
pub use crate::ffi::error::*;
pub use crate::ffi::file::*;
pub use crate::ffi::helpers::*;
pub use crate::ffi::listeners::*;
pub use crate::ffi::logger::*;
pub use crate::ffi::request::*;
pub use crate::ffi::response::*;
pub use crate::ffi::stats::*;
pub use crate::ffi::tasks::*;
pub use crate::ffi::upgrade::*;
/// The reactor's settings, under the name the tests and fuzz targets use.
pub use crate::reactor::config;
#[cfg(feature = "testing")]
pub use crate::testing::harness;
