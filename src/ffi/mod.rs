//! The C boundary, the top layer. One module per C-visible type (as in
//! hyper's ffi and rustls-ffi): every `#[no_mangle]` function and every
//! `repr(C)` type lives here, wrapping the reactor's own types (`Request`
//! over `RequestView`, `Response` over `Reply`), and `error.rs` maps the
//! reactor's errors to C codes in one place. Every exported function body
//! runs inside `guard`, so a panic becomes an error code (or NULL) instead
//! of unwinding into C. Nothing below this folder imports it.

use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

use error::CONNECTION_ERR_PANIC;

pub mod client_addr;
pub mod completion;
pub mod config;
pub mod connection;
pub mod error;
pub mod file;
pub mod helpers;
pub mod listeners;
pub mod logger;
pub(crate) mod registry;
pub mod request;
pub mod response;
pub mod stats;
pub mod tasks;
pub mod upgrade;

/// Runs `f`, turning a panic into `on_panic`.
pub(crate) fn guard<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => value,
        Err(_) => {
            log::error!("internal panic caught at the C boundary");
            on_panic
        }
    }
}

/// `guard` for functions returning a code.
pub(crate) fn guard_int(f: impl FnOnce() -> c_int) -> c_int {
    guard(CONNECTION_ERR_PANIC, f)
}

/// `guard` for functions returning a pointer (NULL on panic).
pub(crate) fn guard_ptr<T>(f: impl FnOnce() -> *const T) -> *const T {
    guard(std::ptr::null(), f)
}
