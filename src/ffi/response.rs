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
//!
//! Deferred responses: a handler that cannot answer before it returns calls
//! `Response_Defer`; the handle then belongs to the application until it
//! calls `Response_Release`, exactly once, whatever happened meanwhile. Until
//! that call every `Response_*` call on it is defined: it answers while the
//! request waits, returns `CONNECTION_ERR_STATE` once answered, and
//! `CONNECTION_ERR_CLOSED` once the client is gone or the library answered
//! 503 at `response_timeout_ms`. The pointer stops being valid when
//! `Response_Release` returns, or when `Connection_Destroy` returns
//! (Destroy frees the handles not released, after their cleanup).
//!
//! Threads: every `Response_*` call must be made on the loop thread (the
//! thread that initialised the Connection), also for a chunked response
//! continued after the handler returned. From another thread a call
//! returns `CONNECTION_ERR_WRONG_THREAD` and touches nothing: a worker
//! thread hands its data to the loop thread (e.g. through a pipe or
//! eventfd the loop thread watches) and the loop thread writes it.

use std::os::raw::{c_char, c_int, c_void};

use super::error::*;
use super::guard_int;
use crate::reactor::connection as driver_cleanup;
use crate::reactor::output::Borrowed;
use crate::reactor::respond;
use crate::reactor::{Error, Reply};

/// Pull-stream producer: write up to `cap` bytes of body into `buf` and
/// return how many (> 0), 0 at the end of the body, or a negative value on
/// error (the connection is aborted and the cleanup gets
/// `CONNECTION_CLOSE_ERROR`). Called only when the client's socket can take
/// more; `buf` is valid only during the call. Called on the loop thread.
pub type ConnectionProducer =
    Option<unsafe extern "C" fn(user: *mut c_void, buf: *mut u8, cap: usize) -> isize>;

/// Called exactly once per accepted `Response_Stream`, with why the stream
/// ended; the place to free `user`. It must not call `Connection_Process`,
/// `Connection_Run` or `Connection_Destroy`. Called on the loop thread.
pub type ConnectionCleanup =
    Option<unsafe extern "C" fn(user: *mut c_void, reason: ConnectionCloseReason)>;

/// Called exactly once when the library no longer needs a body lent with
/// `Response_SendBorrowed`; the place to free or reuse it. Called on the
/// loop thread, from inside `Connection_Process` (or `Connection_Destroy`);
/// it must not call `Connection_Process`, `Connection_Run` or
/// `Connection_Destroy`.
pub type ConnectionRelease = Option<unsafe extern "C" fn(user: *mut c_void)>;

/// A response being built for one request. Opaque: use `Response_*`.
// A `*mut Response` is the reactor's `*mut Reply`, cast at this boundary.
pub struct Response {
    _private: [u8; 0],
}

/// The reply behind a C handle, or `CONNECTION_ERR_NULL`, or
/// `CONNECTION_ERR_WRONG_THREAD` when the caller is not the reply's loop
/// thread (then nothing but the reply's immutable thread field was read).
pub(super) fn reply(resp: *mut Response) -> Result<*mut Reply, c_int> {
    if resp.is_null() {
        return Err(CONNECTION_ERR_NULL);
    }
    let r = resp as *mut Reply;
    // SAFETY: a non-NULL handle is a live reply (documented contract);
    // `thread_of` reads only a field never written after creation, without
    // a reference to the reply, so even the wrong thread races with nothing.
    if !unsafe { Reply::thread_of(r) }.is_current() {
        return Err(CONNECTION_ERR_WRONG_THREAD);
    }
    Ok(r)
}

/// Runs `f` on the reply behind `resp` inside the panic guard; the
/// reactor's result becomes a code.
pub(super) fn with_reply(
    resp: *mut Response,
    f: impl FnOnce(*mut Reply) -> Result<(), Error>,
) -> c_int {
    guard_int(|| match reply(resp) {
        Ok(r) => result_code(f(r)),
        Err(code) => code,
    })
}

/// Sets the status code (200 by default), 200..=599, before the response is
/// sent or begun. Returns 0, `CONNECTION_ERR_NULL`, `CONNECTION_ERR_INVALID`,
/// `CONNECTION_ERR_STATE` (already answered), `CONNECTION_ERR_CLOSED` or
/// `CONNECTION_ERR_WRONG_THREAD`.
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Response_SetStatus(resp: *mut Response, status: c_int) -> c_int {
    // SAFETY: `resp` is NULL or a live handle (documented contract), not
    // borrowed elsewhere during the call.
    with_reply(resp, |r| unsafe { (*r).set_status(status) })
}

/// Adds a header line before the response is sent or begun. `name` must be
/// an HTTP token and `value` must not contain CR, LF or NUL
/// (`CONNECTION_ERR_HEADER`, nothing added). `Content-Length`,
/// `Transfer-Encoding` and `Date` are managed by the library
/// (`CONNECTION_ERR_INVALID`); `Connection: close` is honoured (the
/// connection closes after this response). Both strings are copied.
/// From another thread: `CONNECTION_ERR_WRONG_THREAD`, nothing added.
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Response_AddHeader(
    resp: *mut Response,
    name: *const c_char,
    value: *const c_char,
) -> c_int {
    if name.is_null() || value.is_null() {
        return CONNECTION_ERR_NULL;
    }
    // SAFETY: `r` is a live handle (documented contract), not borrowed
    // elsewhere during the call; `name` and `value` are NUL-terminated
    // strings (documented contract), not written during the call.
    with_reply(resp, |r| unsafe {
        (*r).add_header(name.cast(), value.cast())
    })
}

/// Sends a complete response with `len` bytes of `body` (copied; may be
/// NULL when `len` is 0) and a Content-Length. For a large body that stays
/// in memory anyway, `Response_SendBorrowed` saves the copy. For HEAD
/// requests, 204 and 304 no body is sent. Completes the response: `resp`
/// must not be used afterwards. Returns 0, `CONNECTION_ERR_NULL`,
/// `CONNECTION_ERR_STATE` (already answered), `CONNECTION_ERR_CLOSED` or
/// `CONNECTION_ERR_WRONG_THREAD`.
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Response_Send(
    resp: *mut Response,
    body: *const c_void,
    len: usize,
) -> c_int {
    let body: &[u8] = if len == 0 {
        &[]
    } else if body.is_null() {
        return CONNECTION_ERR_NULL;
    } else {
        // SAFETY: the caller passes `len` readable bytes at `body`.
        unsafe { std::slice::from_raw_parts(body as *const u8, len) }
    };
    // SAFETY: `r` is a live handle (documented contract).
    with_reply(resp, |r| unsafe { respond::respond_full(r, body) })
}

/// Sends a complete response whose `len`-byte `body` is lent, not copied:
/// the library writes it to the client straight from `body`, so a large
/// body held by the application (a file in memory, a static buffer) costs
/// nothing per client. A Content-Length is set; for HEAD requests, 204 and
/// 304 no body is sent. Completes the response: `resp` must not be used
/// afterwards.
///
/// `body` must stay valid and unchanged until the library is done with it.
/// If this returns 0, `release(user)` is then called exactly once (on the
/// loop thread, from inside `Connection_Process` or `Connection_Destroy`):
/// after the last byte went to the kernel, when no body is to be sent
/// (HEAD, 204, 304, `len` 0; right after the handler returns), or when the
/// client goes away, times out or the connection is closed by
/// `Connection_Stop` or `Connection_Destroy` before all of it was sent.
/// `release` may be NULL for memory that outlives the `Connection` (a
/// static buffer). If this returns an error, `release` is never called and
/// the body stays the caller's.
///
/// While a lent body is being sent, the connection starts no further
/// request (a pipelined one waits), so bytes go out in order.
///
/// Returns 0, `CONNECTION_ERR_NULL` (`resp` NULL, or `body` NULL with a
/// non-zero `len`), `CONNECTION_ERR_STATE` (already answered),
/// `CONNECTION_ERR_CLOSED` or `CONNECTION_ERR_WRONG_THREAD`.
///
/// Thread: the loop thread, inside the request handler (or later, for a
/// response kept with `Response_Defer`).
#[no_mangle]
pub unsafe extern "C" fn Response_SendBorrowed(
    resp: *mut Response,
    body: *const c_void,
    len: usize,
    release: ConnectionRelease,
    user: *mut c_void,
) -> c_int {
    if body.is_null() && len > 0 {
        return CONNECTION_ERR_NULL;
    }
    with_reply(resp, |r| {
        // SAFETY: the caller lends `len` readable bytes at `body` until
        // `release(user)` is called (documented contract); with no release,
        // for as long as the connection exists.
        let body = unsafe { Borrowed::new(body as *const u8, len, release, user) };
        // SAFETY: `r` is a live handle (documented contract).
        unsafe { respond::respond_borrowed(r, body) }
    })
}

/// Starts a chunked response (`Transfer-Encoding: chunked`; for an HTTP/1.0
/// client the body is delimited by closing the connection instead). The
/// handle stays valid after the handler returns, until `Response_End`,
/// which must be called exactly once. Returns 0, `CONNECTION_ERR_NULL`,
/// `CONNECTION_ERR_INVALID` (status 204/304 cannot have a body),
/// `CONNECTION_ERR_STATE`, `CONNECTION_ERR_CLOSED` or
/// `CONNECTION_ERR_WRONG_THREAD`.
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Response_BeginChunked(resp: *mut Response) -> c_int {
    // SAFETY: `resp` is NULL or a live handle (documented contract).
    with_reply(resp, |r| unsafe { respond::begin_chunked(r) })
}

/// Queues one chunk (`len` bytes copied; 0 is a no-op) of an open chunked
/// response. Never blocks. Returns 0, `CONNECTION_ERR_WOULD_BLOCK` (more
/// than `output_high_water` is already queued for this client, or more
/// than `output_high_water_total` for all of them: nothing was queued, try
/// again later), `CONNECTION_ERR_CLOSED` (the client is gone; still call
/// `Response_End`), `CONNECTION_ERR_NULL`, `CONNECTION_ERR_STATE` or
/// `CONNECTION_ERR_WRONG_THREAD` (nothing queued).
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Response_WriteChunk(
    resp: *mut Response,
    data: *const c_void,
    len: usize,
) -> c_int {
    if data.is_null() && len > 0 {
        return CONNECTION_ERR_NULL;
    }
    with_reply(resp, |r| {
        let data: &[u8] = if len == 0 {
            &[]
        } else {
            // SAFETY: the caller passes `len` readable bytes at `data`.
            unsafe { std::slice::from_raw_parts(data as *const u8, len) }
        };
        // SAFETY: `r` is a live handle (documented contract).
        unsafe { respond::write_chunk(r, data) }
    })
}

/// Ends an open chunked response. Always releases the handle, unless the
/// response was deferred (`Response_Defer`: only `Response_Release` releases
/// it): after this call `resp` must not be used. Returns 0, or `CONNECTION_ERR_CLOSED` if
/// the client went away before the end (the handle is released all the
/// same), `CONNECTION_ERR_NULL`, `CONNECTION_ERR_STATE` (not an open
/// chunked response), or `CONNECTION_ERR_WRONG_THREAD` (nothing done, the
/// handle not released: end it on the loop thread).
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Response_End(resp: *mut Response) -> c_int {
    // SAFETY: `resp` is NULL or a live handle (documented contract).
    with_reply(resp, |r| unsafe { respond::end_chunked(r) })
}

/// Hands the body to a pull stream: the library calls `producer(user, buf,
/// cap)` whenever the client's socket can take more, frames the data as
/// chunks, and calls `cleanup(user, reason)` exactly once when the stream
/// ends (COMPLETED after the last byte went to the kernel; PEER_CLOSED,
/// RESET, TIMEOUT, SHUTDOWN or ERROR otherwise). `cleanup` may be NULL. If
/// this returns an error, neither callback is ever called and `user` stays
/// the caller's. Completes the handler's part: `resp` must not be used
/// afterwards. The producer and the cleanup are called on the loop thread.
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Response_Stream(
    resp: *mut Response,
    producer: ConnectionProducer,
    cleanup: ConnectionCleanup,
    user: *mut c_void,
) -> c_int {
    let Some(producer) = producer else {
        return CONNECTION_ERR_NULL;
    };
    // SAFETY: a C function taking `ConnectionCloseReason` is called with
    // `CloseReason::number()`, the same value in an int-sized argument: a C
    // enum is passed as an int.
    let cleanup = cleanup.map(|f| unsafe {
        std::mem::transmute::<
            unsafe extern "C" fn(*mut c_void, ConnectionCloseReason),
            driver_cleanup::CleanupFn,
        >(f)
    });
    // SAFETY: `resp` is NULL or a live handle (documented contract).
    with_reply(resp, |r| unsafe {
        respond::begin_stream(r, producer, cleanup, user)
    })
}

/// Keeps the response past the handler's return, to answer it later with
/// the usual calls (`Response_Send`, `Response_SendBorrowed`,
/// `Response_BeginChunked` ... `Response_End`, `Response_Stream`, after
/// `Response_SetStatus` / `Response_AddHeader`). Call it from the request
/// handler, before answering. The request itself is valid only during the
/// handler: copy what the answer needs.
///
/// While the response waits, no later request on the same connection is
/// handed to the handler (pipelined requests wait their turn and are
/// answered in order); the client is read on until `max_header_bytes` of
/// what it sends next is buffered, then not at all until the answer. If the
/// client half-closes (FIN), the answer is still sent. After
/// `response_timeout_ms` without an answer the library answers 503 and logs
/// a warning.
///
/// The handle stays valid memory until `Response_Release(resp)`, which must
/// be called exactly once, on the loop thread, when the application is done
/// with it: after answering, or after it learnt the client is gone (it may
/// be called inside `on_close`). Until then: calls on an answered response
/// return `CONNECTION_ERR_STATE`; once the connection ended (reset, FIN
/// before the request was complete, timeouts, `Connection_Stop`'s drain
/// deadline, `Connection_Destroy`) or the 503 was sent, every call returns
/// `CONNECTION_ERR_CLOSED`. `Connection_Destroy` frees handles not yet
/// released: the pointer is invalid once Destroy returns.
///
/// `on_close(user, reason)` (may be NULL) is called at most once, on the
/// loop thread, when the response can no longer be answered before the
/// application finished its answer and before it released the handle:
/// `CONNECTION_CLOSE_RESET`, `PEER_CLOSED`, `TIMEOUT` (a connection timeout
/// or the response timeout's 503), `SHUTDOWN` (`Connection_Stop`'s drain
/// deadline or `Connection_Destroy`), `ERROR`, ... It is not called when
/// the answer completed (a stream reports to its own cleanup) or after
/// `Response_Release`. Like every cleanup it must not call
/// `Connection_Process`, `Connection_Run` or `Connection_Destroy`.
///
/// Returns 0, `CONNECTION_ERR_NULL`, `CONNECTION_ERR_STATE` (not inside the
/// handler, already answered or already deferred), `CONNECTION_ERR_CLOSED`
/// or `CONNECTION_ERR_WRONG_THREAD`; on an error nothing changed and
/// `on_close` is never called.
///
/// Thread: the loop thread, inside the request handler.
#[no_mangle]
pub unsafe extern "C" fn Response_Defer(
    resp: *mut Response,
    on_close: ConnectionCleanup,
    user: *mut c_void,
) -> c_int {
    // SAFETY: as in `Response_Stream`: a C enum argument is passed as an int.
    let on_close = on_close.map(|f| unsafe {
        std::mem::transmute::<
            unsafe extern "C" fn(*mut c_void, ConnectionCloseReason),
            driver_cleanup::CleanupFn,
        >(f)
    });
    // SAFETY: `resp` is NULL or a live handle (documented contract).
    with_reply(resp, |r| unsafe { respond::defer(r, on_close, user) })
}

/// Gives a deferred response's handle back to the library; `resp` must not
/// be used afterwards. If it was not answered yet, the library answers 500
/// (and closes the connection after it); an open chunked response not yet
/// ended is cut off (the connection closes); a response handed to
/// `Response_Stream` goes on to its end. `on_close` is never called after
/// this. Returns 0, `CONNECTION_ERR_NULL`, `CONNECTION_ERR_STATE` (not a
/// deferred response) or `CONNECTION_ERR_WRONG_THREAD` (nothing done).
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Response_Release(resp: *mut Response) -> c_int {
    // SAFETY: `resp` is NULL or a live handle (documented contract).
    with_reply(resp, |r| unsafe { respond::release(r) })
}
