//! `Connection`: the caller-allocated handle of one event loop.

use std::os::raw::{c_char, c_int, c_void};

use super::config::{limits_from_config, ConnectionConfig};
use super::error::*;
use super::registry::{self, Handle, Refused};
use super::request::Request;
use super::response::Response;
use super::stats::ConnectionStats;
use super::{guard, guard_int};
use crate::reactor::driver::{BodyFn, RequestFn};
use crate::reactor::{EventLoop, LoopPtr};

/// Request handler: answer through `resp` (see `Response_*`). `req` is
/// borrowed for the duration of the call. Called on the loop thread; `req`
/// and `resp` may be used only there.
pub type ConnectionHandler =
    Option<unsafe extern "C" fn(req: *const Request, resp: *mut Response, user: *mut c_void)>;

/// Streamed request body handler: called with each piece of a streamed
/// body (`len` > 0) as it arrives, in order, before the request handler
/// (which then sees an empty body). `req` and `data` are borrowed for the
/// call; `Request_Id(req)` tells requests apart. Return 0 to go on, or an
/// HTTP status 400..=599 to refuse the request (the library answers with
/// it and closes the connection; the request handler is not called).
/// Called on the loop thread.
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
/// are private. It may be copied by value; every copy refers to the same
/// core, and once `Connection_Destroy` ran through any copy, every copy
/// answers `CONNECTION_ERR_NOT_INITIALIZED` (whether the core is alive is
/// kept inside the library, not in these bytes).
#[repr(C)]
pub struct Connection {
    /// Private: which core, with `_private_stop_fd`: the generation of its
    /// slot in the library's table of live loops (a number, never
    /// dereferenced; NULL when none).
    pub _private_core: *mut c_void,
    /// Private: the core's slot in the library's table of live loops (the
    /// name is historical; -1 when none).
    pub _private_stop_fd: c_int,
    /// Private: tells a handle Init filled in from other bytes.
    pub _private_magic: u32,
}

/// The registry handle stored in `conn`, if Init filled it in.
///
/// # Safety
/// `conn` is non-NULL and points to a readable `Connection`.
unsafe fn handle_of(conn: *const Connection) -> Option<Handle> {
    // SAFETY: contract; plain reads of the caller's bytes (the fields are
    // read one by one: no reference to the whole struct is made).
    let (core, slot, magic) = unsafe {
        (
            (*conn)._private_core,
            (*conn)._private_stop_fd,
            (*conn)._private_magic,
        )
    };
    if magic != MAGIC_LIVE {
        return None;
    }
    Some(Handle {
        slot: usize::try_from(slot).ok()?,
        generation: core as usize,
    })
}

/// Writes `h` (or no core, for None) into the caller's bytes.
///
/// # Safety
/// `conn` is non-NULL and points to a writable `Connection`.
unsafe fn store_handle(conn: *mut Connection, h: Option<Handle>) {
    let value = match h {
        Some(h) => Connection {
            _private_core: h.generation as *mut c_void,
            _private_stop_fd: c_int::try_from(h.slot).expect("the table has fewer slots"),
            _private_magic: MAGIC_LIVE,
        },
        None => Connection {
            _private_core: std::ptr::null_mut(),
            _private_stop_fd: -1,
            _private_magic: MAGIC_DEAD,
        },
    };
    // SAFETY: contract: writable storage for a Connection.
    unsafe { conn.write(value) };
}

/// The reactor's view of a C request handler. A `Request*`/`Response*` is
/// the reactor's `RequestView*`/`Reply*` (opaque handles), so the two
/// function types differ only in pointee types: the same ABI.
pub(crate) fn request_fn(handler: ConnectionHandler) -> Option<RequestFn> {
    // SAFETY: same ABI, as said above.
    handler.map(|f| unsafe { std::mem::transmute::<_, RequestFn>(f) })
}

/// The reactor's view of a C body handler (same ABI, as for `request_fn`).
pub(crate) fn body_fn(handler: ConnectionBodyHandler) -> Option<BodyFn> {
    // SAFETY: same ABI: only the request pointer's pointee type differs.
    handler.map(|f| unsafe { std::mem::transmute::<_, BodyFn>(f) })
}

/// The live core of `conn` and its registry handle, or the error to
/// return: `CONNECTION_ERR_NULL`, `CONNECTION_ERR_NOT_INITIALIZED` (never
/// initialised, or destroyed through any copy), `CONNECTION_ERR_WRONG_THREAD`
/// (not the loop thread; nothing of the loop was touched).
///
/// # Safety
/// `conn` is NULL or points to a `Connection` (initialised or not by us).
unsafe fn live(conn: *const Connection) -> Result<(LoopPtr, Handle), c_int> {
    if conn.is_null() {
        return Err(CONNECTION_ERR_NULL);
    }
    // SAFETY: contract: non-NULL, a readable Connection.
    let h = unsafe { handle_of(conn) }.ok_or(CONNECTION_ERR_NOT_INITIALIZED)?;
    let core = registry::resolve(h).map_err(|refused| match refused {
        Refused::Dead => CONNECTION_ERR_NOT_INITIALIZED,
        Refused::WrongThread => CONNECTION_ERR_WRONG_THREAD,
    })?;
    // SAFETY: the registry gives a live loop owned by the calling thread;
    // only this thread can destroy it (Connection_Destroy, refused from
    // inside callbacks), so it stays live while the caller uses it; callers
    // hold no borrow of it.
    let lp = unsafe { LoopPtr::new(core) }.ok_or(CONNECTION_ERR_NOT_INITIALIZED)?;
    Ok((lp, h))
}

/// Runs `f` on the live core of `conn` inside the panic guard; NULL, a
/// dead handle or the wrong thread returns its error code instead.
///
/// # Safety
/// As for `live`.
pub(super) unsafe fn with_live(conn: *const Connection, f: impl FnOnce(LoopPtr) -> c_int) -> c_int {
    guard_int(|| {
        // SAFETY: forwarded contract.
        match unsafe { live(conn) } {
            Ok((core, _)) => f(core),
            Err(code) => code,
        }
    })
}

/// Initialises `conn` with the defaults: listen on 0.0.0.0:8080, backlog
/// SOMAXCONN. Same as `Connection_InitWith` with `ConnectionConfig_Default`.
///
/// Thread: any thread, which becomes the Connection's loop thread.
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
///
/// Thread: any thread, which becomes the Connection's loop thread: every
/// other call on the Connection, its requests and its responses (except
/// `Connection_Stop`) must be made on it, and returns
/// `CONNECTION_ERR_WRONG_THREAD` from any other thread. Initialise a
/// Connection on the thread that will run it. `conn` must not be in use
/// (by `Connection_Stop` either) during the call.
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
        if unsafe { handle_of(conn) }.is_some_and(registry::is_live) {
            return CONNECTION_ERR_STATE;
        }
        // SAFETY: as above.
        unsafe { store_handle(conn, None) };
        // SAFETY: non-NULL config; its strings are NUL-terminated or NULL.
        let limits = match unsafe { limits_from_config(&*cfg) } {
            Ok(l) => l,
            Err(code) => return code,
        };
        let core = match EventLoop::create(limits) {
            Ok(el) => el,
            Err(e) => return code(e),
        };
        // SAFETY: just created and not shared yet.
        let stop_fd = unsafe { (*core).stop_fd() };
        let Some(h) = registry::insert(core, stop_fd) else {
            log::error!("too many live Connections");
            // SAFETY: `create` made it with Box::into_raw; nothing else
            // refers to it.
            drop(unsafe { Box::from_raw(core) });
            return CONNECTION_ERR_NO_MEMORY;
        };
        // SAFETY: as above.
        unsafe { store_handle(conn, Some(h)) };
        CONNECTION_OK
    })
}

/// Sets the request handler (NULL: every request gets 404) and the `user`
/// pointer passed to it. `user` is not owned by the library. Returns 0,
/// `CONNECTION_ERR_NULL`, `CONNECTION_ERR_NOT_INITIALIZED` or
/// `CONNECTION_ERR_WRONG_THREAD`.
///
/// Thread: the loop thread.
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
            let request = request_fn(handler);
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
/// `CONNECTION_ERR_NULL`, `CONNECTION_ERR_NOT_INITIALIZED` or
/// `CONNECTION_ERR_WRONG_THREAD`.
///
/// Thread: the loop thread.
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
            let body = body_fn(handler);
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
/// requests. Returns 0, `CONNECTION_ERR_NULL`,
/// `CONNECTION_ERR_NOT_INITIALIZED` or `CONNECTION_ERR_WRONG_THREAD`.
///
/// Thread: the loop thread.
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
/// `CONNECTION_ERR_WRONG_THREAD`, `CONNECTION_ERR_SYSTEM`). Handlers,
/// body handlers, producers and cleanups run inside this call.
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Connection_Process(conn: *mut Connection) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { Connection_ProcessTimeout(conn, -1) }
}

/// Like `Connection_Process`, but waits at most `timeout_ms` (0: do not
/// wait, for embedding in another loop; -1: until the next timer).
///
/// Thread: the loop thread.
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
///
/// Thread: the loop thread.
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
/// `write(2)` to an eventfd; no lock, no allocation; errno preserved) and
/// callable from any thread, so a SIGINT handler may call it. Once the
/// Connection is destroyed (through any copy) it returns
/// `CONNECTION_ERR_NOT_INITIALIZED` and writes nothing. Returns 0,
/// `CONNECTION_ERR_NULL`, `CONNECTION_ERR_NOT_INITIALIZED` or
/// `CONNECTION_ERR_SYSTEM`.
///
/// Thread: any thread; async-signal-safe.
#[no_mangle]
pub unsafe extern "C" fn Connection_Stop(conn: *mut Connection) -> c_int {
    // No guard here: nothing below can panic, and catch_unwind is not
    // promised to be async-signal-safe.
    if conn.is_null() {
        return CONNECTION_ERR_NULL;
    }
    // SAFETY: non-NULL; plain field reads.
    let Some(h) = (unsafe { handle_of(conn) }) else {
        return CONNECTION_ERR_NOT_INITIALIZED;
    };
    // Lock-free; writes only while the loop (and its eventfd) is alive.
    match registry::stop(h) {
        Some(true) => CONNECTION_OK,
        Some(false) => CONNECTION_ERR_SYSTEM,
        None => CONNECTION_ERR_NOT_INITIALIZED,
    }
}

/// Closes every descriptor, calls pending stream cleanups with
/// `CONNECTION_CLOSE_SHUTDOWN`, frees everything (including detached
/// responses: every `Response*` becomes invalid). Every copy of `conn`
/// sees it: afterwards each call through any copy returns
/// `CONNECTION_ERR_NOT_INITIALIZED`. Harmless on NULL, twice (through any
/// copy), or after a failed Init. Ignored (logged) when called from inside
/// a callback or from another thread.
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Connection_Destroy(conn: *mut Connection) {
    guard((), || {
        // SAFETY: contract: NULL or a Connection.
        let (lp, h) = match unsafe { live(conn) } {
            Ok(live) => live,
            Err(CONNECTION_ERR_WRONG_THREAD) => {
                log::error!(
                    "Connection_Destroy called from a thread other than the loop's; ignored"
                );
                return;
            }
            Err(_) => return,
        };
        if lp.with(|el| el.in_callback()) {
            log::error!("Connection_Destroy called from inside a callback; ignored");
            return;
        }
        // Every copy of the handle is dead from here on, and no Stop is
        // writing to the loop's eventfd any more. The caller's bytes are
        // left as they are: a signal handler may be reading them for Stop.
        registry::remove(h);
        // SAFETY: the loop came from Box::into_raw in Init; no handle
        // resolves to it any more; no callback is running.
        unsafe { lp.destroy() };
    })
}

/// The epoll descriptor, for embedding in another loop: when it is
/// readable, call `Connection_ProcessTimeout(conn, 0)`. Owned by the
/// library: do not close it. Returns the fd or a negative error.
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Connection_Fd(conn: *const Connection) -> c_int {
    // SAFETY: `conn` is NULL or a Connection (contract); `with_live` passes
    // a live core, read only for the call.
    unsafe { with_live(conn, |lp| lp.with(|el| el.epoll_fd())) }
}

/// The bound TCP port (useful with port 0), or a negative error.
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Connection_Port(conn: *const Connection) -> c_int {
    // SAFETY: `conn` is NULL or a Connection (contract); `with_live` passes
    // a live core, read only for the call.
    unsafe { with_live(conn, |lp| lp.with(|el| el.port() as c_int)) }
}

/// Copies the counters into `*out`. Returns 0, `CONNECTION_ERR_NULL`,
/// `CONNECTION_ERR_NOT_INITIALIZED` or `CONNECTION_ERR_WRONG_THREAD`.
/// Callable from the handler.
///
/// Thread: the loop thread.
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
///
/// Thread: any thread.
#[no_mangle]
pub extern "C" fn Connection_StrError(code: c_int) -> *const c_char {
    message(code).as_ptr()
}

/// A static lower-case name for a `ConnectionCloseReason` value
/// ("completed", "peer_closed", "reset", "timeout", "shutdown", "error",
/// "limit", "protocol"), or "unknown". Never NULL.
///
/// Thread: any thread.
#[no_mangle]
pub extern "C" fn Connection_CloseReasonName(reason: c_int) -> *const c_char {
    ConnectionCloseReason::from_c(reason)
        .map_or(c"unknown", |r| r.name_c())
        .as_ptr()
}
