//! `Connection`: the caller-allocated handle of one event loop.

use std::os::raw::{c_char, c_int, c_void};

use super::config::{limits_from_config, ConnectionConfig};
use super::error::*;
use super::request::Request;
use super::response::Response;
use super::stats::ConnectionStats;
use super::{guard, guard_int};
use crate::reactor::driver::{BodyFn, RequestFn};
use crate::reactor::{EventLoop, LoopPtr};
use crate::sys::eventfd;

/// Request handler: answer through `resp` (see `Response_*`). `req` is
/// borrowed for the duration of the call.
pub type ConnectionHandler =
    Option<unsafe extern "C" fn(req: *const Request, resp: *mut Response, user: *mut c_void)>;

/// Streamed request body handler: called with each piece of a streamed
/// body (`len` > 0) as it arrives, in order, before the request handler
/// (which then sees an empty body). `req` and `data` are borrowed for the
/// call; `Request_Id(req)` tells requests apart. Return 0 to go on, or an
/// HTTP status 400..=599 to refuse the request (the library answers with
/// it and closes the connection; the request handler is not called).
pub type ConnectionBodyHandler = Option<
    unsafe extern "C" fn(
        req: *const Request,
        data: *const u8,
        len: usize,
        user: *mut c_void,
    ) -> c_int,
>;

const MAGIC_LIVE: u32 = 0x434f_4e4e; // "CONN"
const MAGIC_DEAD: u32 = 0xdead_c0de;

/// One listening socket and its event loop. The caller allocates it (on
/// the stack or statically) and passes it to `Connection_Init`; the fields
/// are private. It may be copied by value while no call on it is running;
/// every copy refers to the same core.
#[repr(C)]
pub struct Connection {
    /// Private: the core this handle refers to.
    pub _private_core: *mut c_void,
    /// Private: eventfd written by `Connection_Stop`.
    pub _private_stop_fd: c_int,
    /// Private: tells a live handle from a destroyed one.
    pub _private_magic: u32,
}

/// The live core of `conn`, or the error to return.
///
/// # Safety
/// `conn` is NULL or points to a `Connection` (initialised or not by us).
unsafe fn live(conn: *const Connection) -> Result<LoopPtr, c_int> {
    // SAFETY: contract: NULL or a readable Connection.
    let Some(c) = (unsafe { conn.as_ref() }) else {
        return Err(CONNECTION_ERR_NULL);
    };
    if c._private_magic != MAGIC_LIVE || c._private_core.is_null() {
        return Err(CONNECTION_ERR_NOT_INITIALIZED);
    }
    // SAFETY: a live handle's core is a live loop (Init set it, Destroy
    // clears it before freeing); callers hold no borrow of it.
    unsafe { LoopPtr::new(c._private_core as *mut EventLoop) }.ok_or(CONNECTION_ERR_NOT_INITIALIZED)
}

/// Runs `f` on the live core of `conn` inside the panic guard; NULL or a
/// dead handle returns its error code instead.
///
/// # Safety
/// As for `live`.
unsafe fn with_live(conn: *const Connection, f: impl FnOnce(LoopPtr) -> c_int) -> c_int {
    guard_int(|| {
        // SAFETY: forwarded contract.
        match unsafe { live(conn) } {
            Ok(core) => f(core),
            Err(code) => code,
        }
    })
}

/// Initialises `conn` with the defaults: listen on 0.0.0.0:8080, backlog
/// SOMAXCONN. Same as `Connection_InitWith` with `ConnectionConfig_Default`.
#[no_mangle]
pub unsafe extern "C" fn Connection_Init(conn: *mut Connection) -> c_int {
    // SAFETY: forwarded contract; the default config holds no pointers.
    unsafe { Connection_InitWith(conn, &ConnectionConfig::default()) }
}

/// Initialises `conn`: validates `cfg` (read only during the call), binds
/// and listens. Returns 0 or an error (`CONNECTION_ERR_NULL`,
/// `CONNECTION_ERR_INVALID`, `CONNECTION_ERR_ADDR`, `CONNECTION_ERR_ADDR_IN_USE`,
/// `CONNECTION_ERR_PERMISSION`, `CONNECTION_ERR_NO_MEMORY`,
/// `CONNECTION_ERR_SYSTEM`, or `CONNECTION_ERR_STATE` if `conn` is already
/// live). On error `conn` holds nothing and `Connection_Destroy` on it is
/// harmless. On success the caller must eventually call
/// `Connection_Destroy`.
#[no_mangle]
pub unsafe extern "C" fn Connection_InitWith(
    conn: *mut Connection,
    cfg: *const ConnectionConfig,
) -> c_int {
    guard_int(|| {
        if conn.is_null() || cfg.is_null() {
            return CONNECTION_ERR_NULL;
        }
        super::logger::apply_env();
        // SAFETY: non-NULL; the caller provides storage for a Connection.
        let handle = unsafe { &mut *conn };
        if handle._private_magic == MAGIC_LIVE && !handle._private_core.is_null() {
            return CONNECTION_ERR_STATE;
        }
        handle._private_core = std::ptr::null_mut();
        handle._private_stop_fd = -1;
        handle._private_magic = MAGIC_DEAD;
        // SAFETY: non-NULL config; its strings are NUL-terminated or NULL.
        let limits = match unsafe { limits_from_config(&*cfg) } {
            Ok(l) => l,
            Err(code) => return code,
        };
        match EventLoop::create(limits) {
            Ok(el) => {
                // SAFETY: just created, not shared yet.
                handle._private_stop_fd = unsafe { (*el).stop_fd() };
                handle._private_core = el as *mut c_void;
                handle._private_magic = MAGIC_LIVE;
                CONNECTION_OK
            }
            Err(e) => code(e),
        }
    })
}

/// Sets the request handler (NULL: every request gets 404) and the `user`
/// pointer passed to it. `user` is not owned by the library.
#[no_mangle]
pub unsafe extern "C" fn Connection_SetHandler(
    conn: *mut Connection,
    handler: ConnectionHandler,
    user: *mut c_void,
) -> c_int {
    // SAFETY: `conn` is NULL or a Connection (contract); `with_live` passes
    // a live core, borrowed only for the call; no callback runs.
    unsafe {
        with_live(conn, |lp| {
            // SAFETY: a `Request*`/`Response*` is the reactor's `RequestView*`/
            // `Reply*` (opaque handles), and the two function types differ
            // only in pointee types: the same ABI.
            let request = handler.map(|f| std::mem::transmute::<_, RequestFn>(f));
            lp.with(|el| {
                let mut h = el.handlers();
                h.request = request;
                h.request_user = user;
                el.set_handlers(h);
            });
            CONNECTION_OK
        })
    }
}

/// Streams large request bodies instead of buffering them: a body whose
/// Content-Length exceeds `stream_above` bytes, and every chunked body, is
/// passed to `handler(req, data, len, user)` piece by piece as it arrives;
/// the request handler then runs with an empty body. `max_body_bytes`
/// still caps the total (413), and `body_timeout_ms` the time. NULL
/// `handler` turns streaming off (bodies are buffered whole, up to
/// `max_body_bytes`). `user` is not owned by the library. Returns 0,
/// `CONNECTION_ERR_NULL` or `CONNECTION_ERR_NOT_INITIALIZED`.
#[no_mangle]
pub unsafe extern "C" fn Connection_SetBodyHandler(
    conn: *mut Connection,
    handler: ConnectionBodyHandler,
    stream_above: usize,
    user: *mut c_void,
) -> c_int {
    // SAFETY: `conn` is NULL or a Connection (contract); `with_live` passes
    // a live core, borrowed only for the call; no callback runs.
    unsafe {
        with_live(conn, |lp| {
            // SAFETY: as in `Connection_SetHandler`: same ABI.
            let body = handler.map(|f| std::mem::transmute::<_, BodyFn>(f));
            lp.with(|el| {
                let mut h = el.handlers();
                h.body = body;
                h.body_user = user;
                h.stream_above = stream_above;
                el.set_handlers(h);
            });
            CONNECTION_OK
        })
    }
}

/// Tells the core whether every client connection comes from a trusted
/// gateway that secured the client's own connection (TLS terminated in
/// front of this server). Off by default: a request whose target URI is
/// `https` (an absolute-form `https://...` target) is then refused with
/// 421 Misdirected Request, as RFC 9110 7.4 requires of a server that did
/// not see the connection secured. Non-zero `trusted` accepts such
/// requests. Returns 0, `CONNECTION_ERR_NULL` or
/// `CONNECTION_ERR_NOT_INITIALIZED`.
#[no_mangle]
pub unsafe extern "C" fn Connection_SetTrustedGateway(
    conn: *mut Connection,
    trusted: c_int,
) -> c_int {
    // SAFETY: `conn` is NULL or a Connection (contract); `with_live` passes
    // a live core, borrowed only for the call; no callback runs.
    unsafe {
        with_live(conn, |lp| {
            lp.with(|el| el.set_trusted_gateway(trusted != 0));
            CONNECTION_OK
        })
    }
}

/// Waits for events until the next timer deadline, handles one batch, and
/// returns 0; `CONNECTION_STOPPED` once `Connection_Stop` was called and
/// every connection has drained; or an error (`CONNECTION_ERR_BUSY` from a
/// callback, `CONNECTION_ERR_NOT_INITIALIZED` after Destroy,
/// `CONNECTION_ERR_SYSTEM`).
#[no_mangle]
pub unsafe extern "C" fn Connection_Process(conn: *mut Connection) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { Connection_ProcessTimeout(conn, -1) }
}

/// Like `Connection_Process`, but waits at most `timeout_ms` (0: do not
/// wait, for embedding in another loop; -1: until the next timer).
#[no_mangle]
pub unsafe extern "C" fn Connection_ProcessTimeout(
    conn: *mut Connection,
    timeout_ms: i32,
) -> c_int {
    if timeout_ms < -1 {
        return CONNECTION_ERR_INVALID;
    }
    // SAFETY: `conn` is NULL or a Connection (contract); `with_live` passes
    // a live core that nothing here borrows, as `process` requires.
    unsafe {
        with_live(conn, |lp| match lp.process(timeout_ms) {
            Ok(false) => CONNECTION_OK,
            Ok(true) => CONNECTION_STOPPED,
            Err(e) => code(e),
        })
    }
}

/// Runs the loop until `Connection_Stop`, then lets in-flight responses
/// finish (up to `drain_timeout_ms`) and returns 0, or returns an error.
#[no_mangle]
pub unsafe extern "C" fn Connection_Run(conn: *mut Connection) -> c_int {
    loop {
        // SAFETY: forwarded contract.
        match unsafe { Connection_ProcessTimeout(conn, -1) } {
            CONNECTION_OK => continue,
            CONNECTION_STOPPED => return CONNECTION_OK,
            err => return err,
        }
    }
}

/// Asks the loop to stop: it stops accepting, closes idle connections at
/// once and lets in-flight responses finish. Async-signal-safe (one
/// `write(2)` to an eventfd; errno preserved) and callable from any
/// thread, so a SIGINT handler may call it. Returns 0,
/// `CONNECTION_ERR_NULL`, `CONNECTION_ERR_NOT_INITIALIZED` or
/// `CONNECTION_ERR_SYSTEM`.
#[no_mangle]
pub unsafe extern "C" fn Connection_Stop(conn: *mut Connection) -> c_int {
    // No guard here: nothing below can panic, and catch_unwind is not
    // promised to be async-signal-safe.
    if conn.is_null() {
        return CONNECTION_ERR_NULL;
    }
    // SAFETY: non-NULL; plain field reads.
    let (magic, fd) = unsafe { ((*conn)._private_magic, (*conn)._private_stop_fd) };
    if magic != MAGIC_LIVE || fd < 0 {
        return CONNECTION_ERR_NOT_INITIALIZED;
    }
    if eventfd::signal_raw(fd) {
        CONNECTION_OK
    } else {
        CONNECTION_ERR_SYSTEM
    }
}

/// Closes every descriptor, calls pending stream cleanups with
/// `CONNECTION_CLOSE_SHUTDOWN`, frees everything (including detached
/// responses: every `Response*` becomes invalid). Harmless on NULL, twice,
/// or after a failed Init. Ignored (logged) when called from inside a
/// callback.
#[no_mangle]
pub unsafe extern "C" fn Connection_Destroy(conn: *mut Connection) {
    guard((), || {
        // SAFETY: contract: NULL or a Connection.
        let lp = match unsafe { live(conn) } {
            Ok(lp) => lp,
            Err(_) => return,
        };
        if lp.with(|el| el.in_callback()) {
            log::error!("Connection_Destroy called from inside a callback; ignored");
            return;
        }
        // SAFETY: live, non-NULL handle (checked by `live`).
        let handle = unsafe { &mut *conn };
        handle._private_core = std::ptr::null_mut();
        handle._private_magic = MAGIC_DEAD;
        handle._private_stop_fd = -1;
        // SAFETY: the loop came from Box::into_raw in Init; the handle no
        // longer refers to it; no callback is running.
        unsafe { lp.destroy() };
    })
}

/// The epoll descriptor, for embedding in another loop: when it is
/// readable, call `Connection_ProcessTimeout(conn, 0)`. Owned by the
/// library: do not close it. Returns the fd or a negative error.
#[no_mangle]
pub unsafe extern "C" fn Connection_Fd(conn: *const Connection) -> c_int {
    // SAFETY: `conn` is NULL or a Connection (contract); `with_live` passes
    // a live core, read only for the call.
    unsafe { with_live(conn, |lp| lp.with(|el| el.epoll_fd())) }
}

/// The bound TCP port (useful with port 0), or a negative error.
#[no_mangle]
pub unsafe extern "C" fn Connection_Port(conn: *const Connection) -> c_int {
    // SAFETY: `conn` is NULL or a Connection (contract); `with_live` passes
    // a live core, read only for the call.
    unsafe { with_live(conn, |lp| lp.with(|el| el.port() as c_int)) }
}

/// Copies the counters into `*out`. Returns 0, `CONNECTION_ERR_NULL` or
/// `CONNECTION_ERR_NOT_INITIALIZED`. Callable from the handler.
#[no_mangle]
pub unsafe extern "C" fn Connection_GetStats(
    conn: *const Connection,
    out: *mut ConnectionStats,
) -> c_int {
    if out.is_null() {
        return CONNECTION_ERR_NULL;
    }
    // SAFETY: `conn` is NULL or a Connection and `out` is writable
    // (contract); `with_live` passes a live core, read only for the call.
    unsafe {
        with_live(conn, |lp| {
            out.write(lp.with(|el| el.stats()).into());
            CONNECTION_OK
        })
    }
}

/// A static, NUL-terminated description of a return code; never NULL,
/// never to be freed.
#[no_mangle]
pub extern "C" fn Connection_StrError(code: c_int) -> *const c_char {
    message(code).as_ptr()
}

/// A static lower-case name for a `ConnectionCloseReason` value
/// ("completed", "peer_closed", "reset", "timeout", "shutdown", "error",
/// "limit", "protocol"), or "unknown". Never NULL.
#[no_mangle]
pub extern "C" fn Connection_CloseReasonName(reason: c_int) -> *const c_char {
    ConnectionCloseReason::from_c(reason)
        .map_or(c"unknown", |r| r.name_c())
        .as_ptr()
}
