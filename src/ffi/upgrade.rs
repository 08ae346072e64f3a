//! `Response_Upgrade`: switching a connection to another protocol
//! (WebSocket, ...) and handing its descriptor to the application.

use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};

use super::error::*;
use super::guard_int;
use super::response::Response;
use crate::reactor::respond;
use crate::reactor::upgrade::{Upgrade, UpgradeFn};
use crate::reactor::Reply;

/// Called exactly once for every upgrade `Response_Upgrade` accepted, on the
/// loop thread, from inside `Connection_Process` (or `Connection_Destroy`).
///
/// On success `fd` is the client's socket and `reason` is
/// `CONNECTION_CLOSE_COMPLETED`: the `101 Switching Protocols` head has gone
/// to the kernel, the library has taken the socket out of its epoll set
/// (EPOLL_CTL_DEL), its timers and its connection count, and will never
/// touch it again. From then on `fd` is the application's, to read, write
/// and `close` itself; it is non-blocking and close-on-exec. `data` holds
/// the `len` bytes the library had already read past the upgrade request
/// (the first bytes of the new protocol, pipelined requests included); they
/// are valid only during the call (copy what is needed); `data` is NULL
/// when `len` is 0.
///
/// If the connection ended before the 101 head was out (client reset or
/// gone, send timeout, the drain deadline after `Connection_Stop`,
/// `Connection_Destroy`), `fd` is -1, `data` NULL, `len` 0, and `reason`
/// says why; the library closed the socket. The callback must not call
/// `Connection_Process`, `Connection_Run` or `Connection_Destroy`.
pub type ConnectionUpgradeHandler = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        fd: c_int,
        data: *const u8,
        len: usize,
        reason: ConnectionCloseReason,
    ),
>;

/// Accepts the protocol upgrade the request asks for (RFC 9110 7.8), from
/// inside the request handler. The request must be HTTP/1.1, carry an
/// `Upgrade` header listing `protocol` (compared without case) and a
/// `Connection` header holding `upgrade`, else `CONNECTION_ERR_NOT_UPGRADE`;
/// and it must have no body (`CONNECTION_ERR_UPGRADE_BODY`: the body would
/// have to be read before switching). On an error nothing is sent, no
/// callback will be called and the handler still has to answer (e.g. 400
/// or 426).
///
/// On success the library sends `101 Switching Protocols` with the headers
/// added by `Response_AddHeader` (e.g. `Sec-WebSocket-Accept`), then
/// `Connection: Upgrade` and `Upgrade: protocol`; `resp` must not be used
/// afterwards. No further request is read on this connection: whatever the
/// client sent after the upgrade request belongs to the new protocol. Once
/// the head is fully written (at once, or after the socket drains),
/// `on_upgrade(user, fd, data, len, CONNECTION_CLOSE_COMPLETED)` is called
/// exactly once and the descriptor is the application's; if the connection
/// ends first, `on_upgrade(user, -1, NULL, 0, reason)` is called instead
/// (see `ConnectionUpgradeHandler`). An upgrade accepted during a
/// `Connection_Stop` drain is still handed over if its head is out before
/// the drain deadline. `ConnectionStats.upgraded` counts the hand-offs.
///
/// `protocol` is `name` or `name/version`, both HTTP tokens
/// (`CONNECTION_ERR_INVALID` otherwise). Returns 0, `CONNECTION_ERR_NULL`,
/// `CONNECTION_ERR_INVALID`, `CONNECTION_ERR_NOT_UPGRADE`,
/// `CONNECTION_ERR_UPGRADE_BODY`, `CONNECTION_ERR_STATE` (already answered, or
/// deferred with `Response_Defer`: only a handler may upgrade),
/// `CONNECTION_ERR_CLOSED` or `CONNECTION_ERR_WRONG_THREAD`.
///
/// Thread: the loop thread, inside the request handler.
#[no_mangle]
pub unsafe extern "C" fn Response_Upgrade(
    resp: *mut Response,
    protocol: *const c_char,
    on_upgrade: ConnectionUpgradeHandler,
    user: *mut c_void,
) -> c_int {
    let Some(on_upgrade) = on_upgrade else {
        return CONNECTION_ERR_NULL;
    };
    if protocol.is_null() || resp.is_null() {
        return CONNECTION_ERR_NULL;
    }
    // SAFETY: a C function taking `ConnectionCloseReason` is called with
    // `CloseReason::number()`, the same value in an int-sized argument (a C
    // enum is passed as an int); the other arguments are the same types.
    let on_upgrade = unsafe {
        std::mem::transmute::<
            unsafe extern "C" fn(*mut c_void, c_int, *const u8, usize, ConnectionCloseReason),
            UpgradeFn,
        >(on_upgrade)
    };
    guard_int(|| {
        let r = resp as *mut Reply;
        // SAFETY: a non-NULL handle is a live reply (documented contract);
        // `thread_of` reads only a field never written after creation.
        if !unsafe { Reply::thread_of(r) }.is_current() {
            return CONNECTION_ERR_WRONG_THREAD;
        }
        // SAFETY: a NUL-terminated string (documented contract).
        let protocol = unsafe { CStr::from_ptr(protocol) }.to_bytes();
        let upgrade = Upgrade { on_upgrade, user };
        // SAFETY: `r` is a live handle on its loop thread (checked above).
        result_code(unsafe { respond::accept_upgrade(r, protocol, upgrade) })
    })
}
