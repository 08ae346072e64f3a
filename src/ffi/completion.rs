//! `ConnectionCompletion`: the record of one finished request, and
//! `Connection_SetCompletionHandler`. The reactor keeps its own record
//! (`reactor::completion::Completion`); `emit` converts it for C.

use std::io::Write;
use std::net::IpAddr;
use std::os::raw::{c_char, c_int, c_void};

use super::connection::{with_live, Connection};
use super::error::CONNECTION_OK;
use crate::reactor::completion::{Completion, CompletionSink};

/// The value of `ConnectionCompletion::close_reason` when the connection
/// stays open after the request (kept alive).
pub const CONNECTION_COMPLETION_KEPT_ALIVE: c_int = -1;

/// The record of one request, passed to the completion handler once its
/// response has left (the kernel accepted the last byte) or its connection
/// ended first. Every pointer in it is valid only during the handler's call.
#[repr(C)]
pub struct ConnectionCompletion {
    /// `Request_Id` of the request (a refused request gets its own id too).
    pub request_id: u64,
    /// The method, NUL-terminated, `method_len` bytes. Empty ("") when the
    /// library refused a request whose method it could not read.
    pub method: *const c_char,
    pub method_len: usize,
    /// The request-target as sent (path, and '?' query if any),
    /// NUL-terminated, `target_len` bytes. Empty when the library refused a
    /// request before its request line was complete.
    pub target: *const c_char,
    pub target_len: usize,
    /// The client's IP address as text ("127.0.0.1", "::1"), NUL-terminated.
    pub remote_addr: *const c_char,
    /// The client's port (0 when the address family has none).
    pub remote_port: u16,
    /// The response status: the application's, the library's 500 when the
    /// handler did not answer, or the library's own 4xx/5xx when it refused
    /// the request (no handler was called then); 0 when the connection
    /// ended before any response was made (an answer the application had
    /// not given yet when its client left).
    pub status: c_int,
    /// The request's HTTP version: 10 (HTTP/1.0) or 11 (HTTP/1.1); 0 when
    /// the library refused a request whose version it could not read.
    pub http_version: c_int,
    /// 1 when the whole response left; 0 when the connection ended first
    /// (client reset, timeout, shutdown): `bytes_out` is what did leave.
    pub completed: c_int,
    /// A `ConnectionCloseReason` when the connection ended with this
    /// request, else `CONNECTION_COMPLETION_KEPT_ALIVE` (-1).
    pub close_reason: c_int,
    /// Request bytes received: head and body as they came on the wire
    /// (chunk framing included).
    pub bytes_in: u64,
    /// Response bytes the kernel accepted: head and body (an interim
    /// `100 Continue` excluded).
    pub bytes_out: u64,
    /// The length of the response head: the body's bytes that left are
    /// `bytes_out - head_bytes` (nginx's `$body_bytes_sent`) when
    /// `bytes_out >= head_bytes`, else 0.
    pub head_bytes: u64,
    /// Wall clock, microseconds since the Unix epoch, when the request was
    /// complete and dispatched to the handler (for a refused request: when
    /// it was refused). Not the first byte's arrival.
    pub start_us: u64,
    /// Microseconds from `start_us` until the record was made (response
    /// left, or connection ended), on the monotonic clock.
    pub duration_us: u64,
}

/// Completion handler: called on the loop thread exactly once per request
/// (see `ConnectionCompletion`). `record` and every pointer in it are
/// borrowed for the call. It may call `Connection_*` functions; it must not
/// call `Connection_Process`.
pub type ConnectionCompletionHandler =
    Option<unsafe extern "C" fn(record: *const ConnectionCompletion, user: *mut c_void)>;

type HandlerFn = unsafe extern "C" fn(record: *const ConnectionCompletion, user: *mut c_void);

/// The reactor's record to the C one, then the application's handler.
///
/// # Safety
/// `callback` is a `HandlerFn` (cast by `Connection_SetCompletionHandler`).
unsafe fn emit(record: &Completion<'_>, callback: *const (), user: *mut c_void) {
    // SAFETY: contract: `callback` came from a `HandlerFn` cast to an
    // untyped pointer; function pointers round-trip through `*const ()`.
    let f: HandlerFn = unsafe { std::mem::transmute::<*const (), HandlerFn>(callback) };
    let mut addr = [0u8; 48];
    let (ip, port) = match record.peer.to_socket_addr() {
        Some(a) => (a.ip(), a.port()),
        None => (IpAddr::from([0u8, 0, 0, 0]), 0),
    };
    let mut cursor = std::io::Cursor::new(&mut addr[..47]);
    let _ = write!(cursor, "{ip}");
    let c_record = ConnectionCompletion {
        request_id: record.id,
        // The reactor's method and target are each followed by a NUL.
        method: record.method.as_ptr() as *const c_char,
        method_len: record.method.len(),
        target: record.target.as_ptr() as *const c_char,
        target_len: record.target.len(),
        remote_addr: addr.as_ptr() as *const c_char,
        remote_port: port,
        status: record.status as c_int,
        http_version: record.version as c_int,
        completed: record.completed as c_int,
        close_reason: record
            .close
            .map_or(CONNECTION_COMPLETION_KEPT_ALIVE, |r| r.number()),
        bytes_in: record.bytes_in,
        bytes_out: record.bytes_out,
        head_bytes: record.head_bytes,
        start_us: record.start_us,
        duration_us: record.duration_us,
    };
    // SAFETY: the application's handler, with a record valid for the call.
    unsafe { f(&c_record, user) };
}

/// Sets (or, with NULL, removes) the completion handler: `handler(record,
/// user)` runs once for every request that starts after this call (a
/// request already being answered has no record), after its response has
/// left or its connection ended first, refused requests (400, 413, 431, ...
/// answered by the library itself) included. Records of requests whose
/// connection ends in `Connection_Destroy` come during that call, with
/// `CONNECTION_CLOSE_SHUTDOWN`. While a handler is set, a pipelined request
/// starts once the previous response has left (as nginx does); a
/// kept-alive request still allocates nothing. Unset, it costs one branch
/// per request. Returns 0, `CONNECTION_ERR_NULL`,
/// `CONNECTION_ERR_NOT_INITIALIZED` or `CONNECTION_ERR_WRONG_THREAD`.
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Connection_SetCompletionHandler(
    conn: *mut Connection,
    handler: ConnectionCompletionHandler,
    user: *mut c_void,
) -> c_int {
    // SAFETY: `conn` is NULL or a Connection (contract); `with_live` passes
    // a live core, borrowed only for the call; no callback runs.
    unsafe {
        with_live(conn, |lp| {
            let sink = handler.map(|f| CompletionSink {
                emit,
                callback: f as *const (),
                user,
            });
            lp.with(|el| {
                let mut h = el.handlers();
                h.completion = sink;
                el.set_handlers(h);
            });
            CONNECTION_OK
        })
    }
}
