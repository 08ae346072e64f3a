//! connection-core: an epoll HTTP/1.1 connection core with a C ABI.
//!
//! A C program links this in place of its own epoll loop. The library owns
//! the loop, every client's life cycle and every write, so the application
//! never sees EPIPE, ECONNRESET or SIGPIPE: it answers requests, and when a
//! client vanishes it is told once, through a cleanup callback.
//!
//! Map of the crate:
//! * `ffi/` — the C API, one module per C-visible type (`Connection`,
//!   `ConnectionConfig`, `Request`, `Response`, `ConnectionStats`);
//! * `core` — the reactor: accept, read, dispatch, write, close, timers;
//! * `conn` — one client's state; `slab` — generation-checked tokens;
//!   `timer` — deadline lists; `buffer_pool` — reused buffers;
//! * `http/` — request parsing and framing, response heads, Date;
//! * `sys` — the only module that makes system calls;
//! * `config`, `error` — settings and return codes.
#![deny(unsafe_op_in_unsafe_fn)]
#![allow(clippy::missing_safety_doc)] // the C contracts are in each doc comment

pub mod buffer_pool;
pub mod config;
pub mod conn;
pub mod core;
pub mod error;
pub mod ffi;
pub mod first_read;
pub mod harness;
pub mod http;
pub mod slab;
pub mod sys;
pub mod timer;
pub mod transport;

pub use crate::config::ConnectionConfig;
pub use crate::core::{ConnectionBodyHandler, ConnectionHandler};
pub use crate::error::*;
pub use crate::ffi::config::*;
pub use crate::ffi::connection::*;
pub use crate::ffi::logger::*;
pub use crate::ffi::request::*;
pub use crate::ffi::response::*;
pub use crate::ffi::stats::*;
