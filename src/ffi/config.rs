//! `ConnectionConfig_Default`. (The struct itself lives in `config.rs`.)

use std::os::raw::c_int;

use super::guard_int;
use crate::config::ConnectionConfig;
use crate::error::*;

/// Fills `cfg` with the defaults (see `ConnectionConfig`'s field comments).
/// Returns 0 or `CONNECTION_ERR_NULL`.
#[no_mangle]
pub unsafe extern "C" fn ConnectionConfig_Default(cfg: *mut ConnectionConfig) -> c_int {
    guard_int(|| {
        if cfg.is_null() {
            return CONNECTION_ERR_NULL;
        }
        // SAFETY: non-NULL and, per the contract, points to writable
        // storage for a ConnectionConfig (possibly uninitialised: we write
        // without reading).
        unsafe { cfg.write(ConnectionConfig::default()) };
        CONNECTION_OK
    })
}
