//! `Response`: the handle a handler answers through.
//!
//! Lifetime: the library owns every `Response`. The pointer passed to the
//! handler stays valid until the response is complete: `Response_Send`
//! returned, `Response_End` returned, or `Response_Stream` accepted the
//! stream. After `Response_BeginChunked` it may be kept past the handler's
//! return (to write chunks later) and `Response_End` must then be called
//! exactly once, even if the client has gone: every call on a response
//! whose client is gone returns `CONNECTION_ERR_CLOSED`, never touches freed
//! memory, and `Response_End` releases it. Nothing here blocks: output is
//! queued and written by the event loop.

use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};

use super::guard_int;
use crate::core::Core;
use crate::error::*;
use crate::http::response::{valid_header_name, valid_header_value};
use crate::slab::Token;

/// Pull-stream producer: write up to `cap` bytes of body into `buf` and
/// return how many (> 0), 0 at the end of the body, or a negative value on
/// error (the connection is aborted and the cleanup gets
/// `CONNECTION_CLOSE_ERROR`). Called only when the client's socket can take
/// more; `buf` is valid only during the call.
pub type ConnectionProducer =
    Option<unsafe extern "C" fn(user: *mut c_void, buf: *mut u8, cap: usize) -> isize>;

/// Called exactly once per accepted `Response_Stream`, with why the stream
/// ended; the place to free `user`. It must not call `Connection_Process`,
/// `Connection_Run` or `Connection_Destroy`.
pub type ConnectionCleanup =
    Option<unsafe extern "C" fn(user: *mut c_void, reason: crate::error::ConnectionCloseReason)>;

/// Largest total size of the headers an application may add to one response.
const MAX_APP_HEADER_BYTES: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// No request is being answered through this handle.
    Done,
    /// The handler is running and has not answered yet.
    Handler,
    /// A chunked response is open; the application writes and ends it.
    Chunked,
    /// A pull stream owns the response.
    Streaming,
    /// The client went away while a chunked response was open; the handle
    /// waits for `Response_End` to be freed.
    Detached,
}

/// A response being built for one request. Opaque: use `Response_*`.
pub struct Response {
    pub(crate) core: *mut Core,
    pub(crate) token: Token,
    pub(crate) phase: Phase,
    pub(crate) status: u16,
    /// Application headers, already serialised as `Name: value\r\n` lines.
    pub(crate) headers: Vec<u8>,
    pub(crate) head_method: bool,
    pub(crate) keep_alive: bool,
    pub(crate) minor_version: u8,
    pub(crate) app_close: bool,
}

impl Response {
    pub(crate) fn new(core: *mut Core) -> Response {
        Response {
            core,
            token: Token(u64::MAX),
            phase: Phase::Done,
            status: 200,
            headers: Vec::new(),
            head_method: false,
            keep_alive: true,
            minor_version: 1,
            app_close: false,
        }
    }
}

/// Checks that `resp` may be used in `wanted` phase; returns the error code
/// otherwise.
///
/// # Safety
/// `resp` is NULL or a handle the library gave out and has not released.
unsafe fn check(resp: *mut Response, wanted: Phase) -> Result<(), c_int> {
    if resp.is_null() {
        return Err(CONNECTION_ERR_NULL);
    }
    // SAFETY: non-NULL handles are live (function contract).
    let phase = unsafe { (*resp).phase };
    if phase == wanted {
        Ok(())
    } else if phase == Phase::Detached {
        Err(CONNECTION_ERR_CLOSED)
    } else {
        Err(CONNECTION_ERR_STATE)
    }
}

/// # Safety
/// `resp` passed `check`, so it is live and its `core` pointer is valid.
unsafe fn core_of(resp: *mut Response) -> *mut Core {
    // SAFETY: see the function contract.
    unsafe { (*resp).core }
}

/// Sets the status code (200 by default), 200..=599, before the response is
/// sent or begun. Returns 0, `CONNECTION_ERR_NULL`, `CONNECTION_ERR_INVALID`,
/// `CONNECTION_ERR_STATE` (already answered) or `CONNECTION_ERR_CLOSED`.
#[no_mangle]
pub unsafe extern "C" fn Response_SetStatus(resp: *mut Response, status: c_int) -> c_int {
    guard_int(|| {
        // SAFETY: `resp` is NULL or a live handle (documented contract).
        if let Err(code) = unsafe { check(resp, Phase::Handler) } {
            return code;
        }
        if !(200..=599).contains(&status) {
            return CONNECTION_ERR_INVALID;
        }
        // SAFETY: checked live above.
        unsafe { (*resp).status = status as u16 };
        CONNECTION_OK
    })
}

/// Adds a header line before the response is sent or begun. `name` must be
/// an HTTP token and `value` must not contain CR, LF or NUL
/// (`CONNECTION_ERR_HEADER`, nothing added). `Content-Length`,
/// `Transfer-Encoding` and `Date` are managed by the library
/// (`CONNECTION_ERR_INVALID`); `Connection: close` is honoured (the
/// connection closes after this response). Both strings are copied.
#[no_mangle]
pub unsafe extern "C" fn Response_AddHeader(
    resp: *mut Response,
    name: *const c_char,
    value: *const c_char,
) -> c_int {
    guard_int(|| {
        if name.is_null() || value.is_null() {
            return CONNECTION_ERR_NULL;
        }
        // SAFETY: `resp` is NULL or a live handle (documented contract).
        if let Err(code) = unsafe { check(resp, Phase::Handler) } {
            return code;
        }
        // SAFETY: both are NUL-terminated strings (documented contract).
        let (name, value) = unsafe {
            (
                CStr::from_ptr(name).to_bytes(),
                CStr::from_ptr(value).to_bytes(),
            )
        };
        if !valid_header_name(name) || !valid_header_value(value) {
            return CONNECTION_ERR_HEADER;
        }
        for managed in [&b"content-length"[..], b"transfer-encoding", b"date"] {
            if name.eq_ignore_ascii_case(managed) {
                return CONNECTION_ERR_INVALID;
            }
        }
        // SAFETY: checked live above; no other reference to it exists now.
        let r = unsafe { &mut *resp };
        if name.eq_ignore_ascii_case(b"connection") {
            if value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
            {
                r.app_close = true;
            }
            return CONNECTION_OK;
        }
        if r.headers.len() + name.len() + value.len() + 4 > MAX_APP_HEADER_BYTES {
            return CONNECTION_ERR_TOO_LARGE;
        }
        r.headers.extend_from_slice(name);
        r.headers.extend_from_slice(b": ");
        r.headers.extend_from_slice(value);
        r.headers.extend_from_slice(b"\r\n");
        CONNECTION_OK
    })
}

/// Sends a complete response with `len` bytes of `body` (copied; may be
/// NULL when `len` is 0) and a Content-Length. For HEAD requests, 204 and
/// 304 no body is sent. Completes the response: `resp` must not be used
/// afterwards. Returns 0, `CONNECTION_ERR_NULL`, `CONNECTION_ERR_STATE`
/// (already answered) or `CONNECTION_ERR_CLOSED`.
#[no_mangle]
pub unsafe extern "C" fn Response_Send(
    resp: *mut Response,
    body: *const c_void,
    len: usize,
) -> c_int {
    guard_int(|| {
        if body.is_null() && len > 0 {
            return CONNECTION_ERR_NULL;
        }
        // SAFETY: `resp` is NULL or a live handle (documented contract).
        if let Err(code) = unsafe { check(resp, Phase::Handler) } {
            return code;
        }
        let body: &[u8] = if len == 0 {
            &[]
        } else {
            // SAFETY: the caller passes `len` readable bytes at `body`.
            unsafe { std::slice::from_raw_parts(body as *const u8, len) }
        };
        // SAFETY: checked live; its core outlives every handle.
        unsafe { Core::respond_full(core_of(resp), resp, body) }
    })
}

/// Starts a chunked response (`Transfer-Encoding: chunked`; for an HTTP/1.0
/// client the body is delimited by closing the connection instead). The
/// handle stays valid after the handler returns, until `Response_End`,
/// which must be called exactly once. Returns 0, `CONNECTION_ERR_NULL`,
/// `CONNECTION_ERR_INVALID` (status 204/304 cannot have a body),
/// `CONNECTION_ERR_STATE` or `CONNECTION_ERR_CLOSED`.
#[no_mangle]
pub unsafe extern "C" fn Response_BeginChunked(resp: *mut Response) -> c_int {
    guard_int(|| {
        // SAFETY: `resp` is NULL or a live handle (documented contract).
        if let Err(code) = unsafe { check(resp, Phase::Handler) } {
            return code;
        }
        // SAFETY: checked live; its core outlives every handle.
        unsafe { Core::begin_chunked(core_of(resp), resp) }
    })
}

/// Queues one chunk (`len` bytes copied; 0 is a no-op) of an open chunked
/// response. Never blocks. Returns 0, `CONNECTION_ERR_WOULD_BLOCK` (more
/// than `output_high_water` is already queued: nothing was queued, try
/// again later), `CONNECTION_ERR_CLOSED` (the client is gone; still call
/// `Response_End`), `CONNECTION_ERR_NULL` or `CONNECTION_ERR_STATE`.
#[no_mangle]
pub unsafe extern "C" fn Response_WriteChunk(
    resp: *mut Response,
    data: *const c_void,
    len: usize,
) -> c_int {
    guard_int(|| {
        if data.is_null() && len > 0 {
            return CONNECTION_ERR_NULL;
        }
        // SAFETY: `resp` is NULL or a live handle (documented contract).
        if let Err(code) = unsafe { check(resp, Phase::Chunked) } {
            return code;
        }
        if len == 0 {
            return CONNECTION_OK;
        }
        // SAFETY: the caller passes `len` readable bytes at `data`.
        let data = unsafe { std::slice::from_raw_parts(data as *const u8, len) };
        // SAFETY: checked live; its core outlives every handle.
        unsafe { Core::write_chunk(core_of(resp), resp, data) }
    })
}

/// Ends an open chunked response. Always releases the handle: after this
/// call `resp` must not be used. Returns 0, or `CONNECTION_ERR_CLOSED` if
/// the client went away before the end (the handle is released all the
/// same), `CONNECTION_ERR_NULL`, `CONNECTION_ERR_STATE` (not an open
/// chunked response).
#[no_mangle]
pub unsafe extern "C" fn Response_End(resp: *mut Response) -> c_int {
    guard_int(|| {
        // SAFETY: `resp` is NULL or a live handle (documented contract).
        match unsafe { check(resp, Phase::Chunked) } {
            // SAFETY: detached handles are live until released here.
            Err(CONNECTION_ERR_CLOSED) => unsafe { Core::release_detached(core_of(resp), resp) },
            Err(code) => code,
            // SAFETY: checked live; its core outlives every handle.
            Ok(()) => unsafe { Core::end_chunked(core_of(resp), resp) },
        }
    })
}

/// Hands the body to a pull stream: the library calls `producer(user, buf,
/// cap)` whenever the client's socket can take more, frames the data as
/// chunks, and calls `cleanup(user, reason)` exactly once when the stream
/// ends (COMPLETED after the last byte went to the kernel; PEER_CLOSED,
/// RESET, TIMEOUT, SHUTDOWN or ERROR otherwise). `cleanup` may be NULL. If
/// this returns an error, neither callback is ever called and `user` stays
/// the caller's. Completes the handler's part: `resp` must not be used
/// afterwards.
#[no_mangle]
pub unsafe extern "C" fn Response_Stream(
    resp: *mut Response,
    producer: ConnectionProducer,
    cleanup: ConnectionCleanup,
    user: *mut c_void,
) -> c_int {
    guard_int(|| {
        if producer.is_none() {
            return CONNECTION_ERR_NULL;
        }
        // SAFETY: `resp` is NULL or a live handle (documented contract).
        if let Err(code) = unsafe { check(resp, Phase::Handler) } {
            return code;
        }
        // SAFETY: checked live; its core outlives every handle.
        unsafe { Core::begin_stream(core_of(resp), resp, producer, cleanup, user) }
    })
}
