//! `Response_SendFile*`: answering with a file, sent with `sendfile(2)`.

use std::os::raw::{c_int, c_uint};

use super::error::*;
use super::request::Request;
use super::response::{with_reply, Response};
use crate::reactor::file_response::{CallerFile, Conditional};
use crate::reactor::respond;
use crate::reactor::RequestView;

/// Flag for `Response_SendFile*`: the library takes the descriptor and
/// closes it exactly once, whatever the call returns.
pub const CONNECTION_FILE_CLOSE: c_uint = 1;

/// `length` for `Response_SendFile`: from `offset` to the end of the file.
pub const CONNECTION_FILE_TO_END: u64 = u64::MAX;

const KNOWN_FLAGS: c_uint = CONNECTION_FILE_CLOSE;

/// Sends a complete response whose body is `length` bytes of the regular
/// file `fd` from `offset` (`CONNECTION_FILE_TO_END`: to the end of the
/// file), with a Content-Length. The range is checked against `fstat` now.
/// Bodies up to 8 KiB are read at once and sent with the head; larger
/// ones are sent after the head with `sendfile(2)` as the client takes
/// them, with the same backpressure and send timeout as any output. If the
/// file turns out shorter than announced while it is sent, the connection
/// is closed (the response cannot be completed) and a warning logged. For
/// HEAD requests, 204 and 304 no body is sent. Completes the response:
/// `resp` must not be used afterwards. The file's offset is never used or
/// moved (reads are positioned).
///
/// Ownership: with `CONNECTION_FILE_CLOSE` in `flags`, the descriptor
/// belongs to the library from the moment of the call, whatever the call
/// returns (errors included: NULL `resp`, wrong thread, a client gone):
/// it is closed exactly once, after the last byte was sent, when no body
/// is sent, when the client goes away or times out, at
/// `Connection_Destroy`, or before an error return. Without it, the
/// library never closes `fd` and does not keep it: a large body is sent
/// from a duplicate (`F_DUPFD_CLOEXEC`), so the caller may close `fd` as
/// soon as this returns.
///
/// SIGPIPE: `sendfile` cannot be told not to raise SIGPIPE. While the
/// library calls it (inside `Connection_Process`), SIGPIPE is blocked in
/// the loop thread's signal mask; the SIGPIPE the call raised for a client
/// that is gone is taken off with `sigtimedwait` (one that was already
/// pending before the call is left alone), then the thread's mask is put
/// back as it was. The disposition is never changed, and no SIGPIPE is
/// delivered or left pending because of a client.
///
/// Returns 0, `CONNECTION_ERR_NULL`, `CONNECTION_ERR_INVALID` (negative
/// `fd`, unknown flags), `CONNECTION_ERR_NOT_FILE` (not a regular file),
/// `CONNECTION_ERR_FILE_RANGE` (beyond the end of the file),
/// `CONNECTION_ERR_FILE_IO` (fstat, read or dup failed),
/// `CONNECTION_ERR_STATE` (already answered), `CONNECTION_ERR_CLOSED` or
/// `CONNECTION_ERR_WRONG_THREAD`. After an error, `resp` is unchanged and
/// may still be answered otherwise.
///
/// Thread: the loop thread, inside the request handler.
#[no_mangle]
pub unsafe extern "C" fn Response_SendFile(
    resp: *mut Response,
    fd: c_int,
    offset: u64,
    length: u64,
    flags: c_uint,
) -> c_int {
    let file = CallerFile::new(fd, flags & CONNECTION_FILE_CLOSE != 0);
    if fd < 0 || flags & !KNOWN_FLAGS != 0 {
        return CONNECTION_ERR_INVALID;
    }
    let length = (length != CONNECTION_FILE_TO_END).then_some(length);
    with_reply(resp, |r| {
        // SAFETY: `r` is a live handle (documented contract).
        unsafe { respond::respond_file(r, file, offset, length, None) }
    })
}

/// Sends the whole regular file `fd` as `Response_SendFile` does, and
/// answers the request's conditional and Range headers for it (RFC 9110
/// 13, 14), when the status is still 200:
///
/// - adds `Accept-Ranges: bytes`, a strong `ETag` (`"<mtime seconds
///   hex>.<mtime nanoseconds hex>-<size hex>"`) and `Last-Modified`, from
///   `fstat`;
/// - GET and HEAD only: `If-None-Match` (weak comparison, `*`) or, without
///   it, `If-Modified-Since` make it a 304 with no body;
/// - a single `bytes=` range (`first-last`, `first-`, `-suffix`) gets 206
///   with `Content-Range`; one that starts beyond the end (or `-0`, or any
///   range of an empty file) gets 416 with a `Content-Range` naming `*`
///   as the range and the file's size, and an empty body; several ranges, another unit or a malformed header
///   get the whole file (200); with `If-Range` (an entity tag compared
///   strongly, or an HTTP-date equal to Last-Modified) that does not
///   match, Range is ignored;
/// - HEAD gets the same head as GET, without the body.
///
/// `req` is the request `resp` answers. Ownership of `fd`, SIGPIPE and the
/// return codes are as for `Response_SendFile`.
///
/// Thread: the loop thread, inside the request handler.
#[no_mangle]
pub unsafe extern "C" fn Response_SendFileRanged(
    resp: *mut Response,
    req: *const Request,
    fd: c_int,
    flags: c_uint,
) -> c_int {
    let file = CallerFile::new(fd, flags & CONNECTION_FILE_CLOSE != 0);
    if req.is_null() {
        return CONNECTION_ERR_NULL;
    }
    if fd < 0 || flags & !KNOWN_FLAGS != 0 {
        return CONNECTION_ERR_INVALID;
    }
    let view = req as *const RequestView;
    // SAFETY: a non-NULL `req` is a live view (documented contract);
    // `thread_of` reads only a field never written after creation.
    if !unsafe { RequestView::thread_of(view) }.is_current() {
        return CONNECTION_ERR_WRONG_THREAD;
    }
    with_reply(resp, |r| {
        // SAFETY: the loop thread is the caller and the view is live for
        // the handler's duration; the loop does not write it during this
        // call (it borrows only the connection and shared state).
        let cond = Conditional::from_view(unsafe { &*view });
        // SAFETY: `r` is a live handle (documented contract).
        unsafe { respond::respond_file(r, file, 0, None, Some(&cond)) }
    })
}
