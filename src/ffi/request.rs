//! `Request`: the C view of a parsed request.
//!
//! Every string points into the connection's own input buffer, made
//! NUL-terminated in place (the delimiter after each field is overwritten),
//! so nothing is copied or allocated per request. All of it is borrowed: a
//! `Request*` and every pointer obtained from it are valid only until the
//! handler returns. Every `Request_*` function must be called on the loop
//! thread: from another thread the view is not read (a pointer result is
//! NULL, a count 0, a code `CONNECTION_ERR_WRONG_THREAD`).

use std::os::raw::{c_char, c_int};

use super::error::*;
use super::{guard, guard_int, guard_ptr};
use crate::http::request::Span;
use crate::reactor::RequestView;
use crate::sys::PeerAddr;

/// A parsed HTTP request, borrowed by the handler for the duration of the
/// call. Opaque: use the `Request_*` accessors.
// An opaque handle, as in rustls-ffi: a `*const Request` is the reactor's
// `*const RequestView`, cast at this boundary.
pub struct Request {
    _private: [u8; 0],
}

/// The view behind a handle, or `CONNECTION_ERR_NULL`, or
/// `CONNECTION_ERR_WRONG_THREAD` when the caller is not the loop thread
/// (then nothing but the view's immutable thread field was read).
///
/// # Safety
/// `req` is NULL or a handle the library passed to a callback that is
/// still running.
pub(super) unsafe fn view<'a>(req: *const Request) -> Result<View<'a>, c_int> {
    let v = req as *const RequestView;
    if v.is_null() {
        return Err(CONNECTION_ERR_NULL);
    }
    // SAFETY: contract: a live view; `thread_of` reads only a field never
    // written after creation, without a reference to the view.
    if !unsafe { RequestView::thread_of(v) }.is_current() {
        return Err(CONNECTION_ERR_WRONG_THREAD);
    }
    // SAFETY: contract: a live view, and the loop thread is the caller.
    Ok(View(unsafe { &*v }))
}

/// A request view with the accessors the C functions need.
pub(super) struct View<'a>(pub(super) &'a RequestView);

impl View<'_> {
    fn str_at(&self, span: Span) -> *const c_char {
        self.0.str_at(span) as *const c_char
    }

    pub(super) fn bytes(&self, span: Span) -> &[u8] {
        self.0.bytes(span)
    }
}

/// Stores `len` through an optional out-pointer.
pub(super) unsafe fn put_len(out: *mut usize, len: usize) {
    if !out.is_null() {
        // SAFETY: the caller passed a writable size_t or NULL (checked).
        unsafe { *out = len };
    }
}

unsafe fn field(req: *const Request, len: *mut usize, pick: fn(&View) -> Span) -> *const c_char {
    guard_ptr(|| {
        // SAFETY: a non-NULL `req` comes from the library and is valid
        // during the handler (the documented contract).
        let Ok(r) = (unsafe { view(req) }) else {
            return std::ptr::null();
        };
        let span = pick(&r);
        // SAFETY: `len` is NULL or writable (documented contract).
        unsafe { put_len(len, span.len as usize) };
        r.str_at(span)
    })
}

/// The request method ("GET", "POST", ...), NUL-terminated. `len` may be
/// NULL. Returns NULL only when `req` is NULL or on another thread.
/// Borrowed from `req`.
///
/// Thread: the loop thread (NULL from another thread).
#[no_mangle]
pub unsafe extern "C" fn Request_Method(req: *const Request, len: *mut usize) -> *const c_char {
    // SAFETY: forwarded contract of this function.
    unsafe { field(req, len, |r| r.0.method) }
}

/// The request path without the query ("/user/register"), NUL-terminated,
/// not percent-decoded ("/" for an absolute-form target with no path).
/// `len` may be NULL. Borrowed from `req`.
///
/// Thread: the loop thread (NULL from another thread).
#[no_mangle]
pub unsafe extern "C" fn Request_Path(req: *const Request, len: *mut usize) -> *const c_char {
    static ROOT: [u8; 2] = *b"/\0";
    // One look at the handle (its thread checked once) for both cases.
    guard_ptr(|| {
        // SAFETY: a non-NULL `req` is valid during the handler (contract).
        let Ok(r) = (unsafe { view(req) }) else {
            return std::ptr::null();
        };
        if r.0.path.len == 0 {
            // SAFETY: `len` is NULL or writable (contract).
            unsafe { put_len(len, 1) };
            return ROOT.as_ptr() as *const c_char;
        }
        // SAFETY: `len` is NULL or writable (contract).
        unsafe { put_len(len, r.0.path.len as usize) };
        r.str_at(r.0.path)
    })
}

/// The query string without the '?' ("" when there is none),
/// NUL-terminated, not decoded. `len` may be NULL. Borrowed from `req`.
///
/// Thread: the loop thread (NULL from another thread).
#[no_mangle]
pub unsafe extern "C" fn Request_Query(req: *const Request, len: *mut usize) -> *const c_char {
    // SAFETY: forwarded contract of this function.
    unsafe { field(req, len, |r| r.0.query) }
}

/// The value of the first header named `name` (compared case-insensitively),
/// NUL-terminated, or NULL if absent (or if `req` or `name` is NULL).
/// `len` may be NULL. Borrowed from `req`.
///
/// Thread: the loop thread (NULL from another thread).
#[no_mangle]
pub unsafe extern "C" fn Request_Header(
    req: *const Request,
    name: *const c_char,
    len: *mut usize,
) -> *const c_char {
    guard_ptr(|| {
        // SAFETY: documented contract: `req` from the library, valid now.
        let Ok(r) = (unsafe { view(req) }) else {
            return std::ptr::null();
        };
        if name.is_null() {
            return std::ptr::null();
        }
        // SAFETY: `name` is a NUL-terminated string (documented contract).
        let wanted = unsafe { std::ffi::CStr::from_ptr(name) }.to_bytes();
        for h in &r.0.headers {
            if r.bytes(h.name).eq_ignore_ascii_case(wanted) {
                // SAFETY: `len` is NULL or writable.
                unsafe { put_len(len, h.value.len as usize) };
                return r.str_at(h.value);
            }
        }
        std::ptr::null()
    })
}

/// Number of header fields in the request (0 when `req` is NULL).
///
/// Thread: the loop thread (0 from another thread).
#[no_mangle]
pub unsafe extern "C" fn Request_HeaderCount(req: *const Request) -> usize {
    // SAFETY: documented contract: `req` from the library or NULL.
    guard(0, || unsafe { view(req) }.map_or(0, |r| r.0.headers.len()))
}

/// Header field `index` (0-based, in arrival order). Each out-pointer may be
/// NULL. Returns 0, `CONNECTION_ERR_NULL` if `req` is NULL, or
/// `CONNECTION_ERR_INVALID` if `index` is out of range, or
/// `CONNECTION_ERR_WRONG_THREAD`. Strings are NUL-terminated and borrowed
/// from `req`.
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Request_HeaderAt(
    req: *const Request,
    index: usize,
    name: *mut *const c_char,
    name_len: *mut usize,
    value: *mut *const c_char,
    value_len: *mut usize,
) -> c_int {
    guard_int(|| {
        // SAFETY: documented contract: `req` from the library or NULL.
        let r = match unsafe { view(req) } {
            Ok(r) => r,
            Err(code) => return code,
        };
        let Some(h) = r.0.headers.get(index) else {
            return CONNECTION_ERR_INVALID;
        };
        // SAFETY: each out-pointer is NULL or writable (documented contract).
        unsafe {
            if !name.is_null() {
                *name = r.str_at(h.name);
            }
            if !value.is_null() {
                *value = r.str_at(h.value);
            }
            put_len(name_len, h.name.len as usize);
            put_len(value_len, h.value.len as usize);
        }
        CONNECTION_OK
    })
}

/// The request body (Content-Length or de-chunked), never NULL for a valid
/// `req`; `*len` is 0 when there is no body. Binary: not NUL-terminated.
/// Borrowed from `req`.
///
/// Thread: the loop thread (NULL and `*len` 0 from another thread).
#[no_mangle]
pub unsafe extern "C" fn Request_Body(req: *const Request, len: *mut usize) -> *const u8 {
    guard_ptr(|| {
        // SAFETY: documented contract: `req` from the library or NULL.
        let Ok(r) = (unsafe { view(req) }) else {
            // SAFETY: `len` is NULL or writable.
            unsafe { put_len(len, 0) };
            return std::ptr::null();
        };
        // SAFETY: `len` is NULL or writable.
        unsafe { put_len(len, r.0.body_len) };
        r.0.body
    })
}

/// Writes the client's address as "ip:port" (`[v6]:port` for IPv6; "unix"
/// for a client of a Unix domain socket listener), NUL-terminated, into `buf` of `cap` bytes (64 is always enough).
/// Returns the string length, or `CONNECTION_ERR_NULL`,
/// `CONNECTION_ERR_TOO_LARGE` (buffer too small; nothing written),
/// `CONNECTION_ERR_WRONG_THREAD`.
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Request_RemoteAddr(
    req: *const Request,
    buf: *mut c_char,
    cap: usize,
) -> c_int {
    guard_int(|| {
        // SAFETY: documented contract: `req` from the library or NULL.
        let r = match unsafe { view(req) } {
            Ok(r) => r,
            Err(code) => return code,
        };
        if buf.is_null() {
            return CONNECTION_ERR_NULL;
        }
        let mut text = [0u8; 64];
        let n = format_addr(&r.0.peer, &mut text);
        if n + 1 > cap {
            return CONNECTION_ERR_TOO_LARGE;
        }
        // SAFETY: `buf` has `cap >= n + 1` writable bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf as *mut u8, n);
            *buf.add(n) = 0;
        }
        n as c_int
    })
}

fn format_addr(peer: &PeerAddr, out: &mut [u8; 64]) -> usize {
    use std::io::Write;
    let mut cursor = std::io::Cursor::new(&mut out[..]);
    let _ = match peer.to_socket_addr() {
        Some(addr) => write!(cursor, "{addr}"),
        None if peer.is_unix() => write!(cursor, "unix"),
        None => write!(cursor, "unknown"),
    };
    cursor.position() as usize
}

/// The index of the listener that accepted this request's connection (0
/// for the one `Connection_InitWith` binds; others as the
/// `Connection_AddListen*` calls returned), or `CONNECTION_ERR_NULL`,
/// `CONNECTION_ERR_WRONG_THREAD`.
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Request_Listener(req: *const Request) -> c_int {
    guard_int(|| {
        // SAFETY: documented contract: `req` from the library or NULL.
        match unsafe { view(req) } {
            Ok(r) => c_int::from(r.0.peer.listener),
            Err(code) => code,
        }
    })
}

/// The HTTP version: 10 for HTTP/1.0, 11 for HTTP/1.1, or
/// `CONNECTION_ERR_NULL`, `CONNECTION_ERR_WRONG_THREAD`.
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Request_Version(req: *const Request) -> c_int {
    guard_int(|| {
        // SAFETY: documented contract: `req` from the library or NULL.
        match unsafe { view(req) } {
            Ok(r) => 10 + r.0.minor_version as c_int,
            Err(code) => code,
        }
    })
}

/// A number identifying this request, unique within its Connection
/// (increasing from 1): the same in every body-handler call and in the
/// request-handler call of one request. 0 when `req` is NULL.
///
/// Thread: the loop thread (0 from another thread).
#[no_mangle]
pub unsafe extern "C" fn Request_Id(req: *const Request) -> u64 {
    // SAFETY: documented contract: `req` from the library or NULL.
    guard(0, || unsafe { view(req) }.map_or(0, |r| r.0.id))
}
