//! Request helpers: the path decoded and normalised, query and form
//! parameters, cookies and the Host's parts, so C code parses none of them
//! by hand. The rules live in `http::{path, query, cookie, uri}` (and the
//! README's "Request helpers"); this file only moves bytes across the C
//! boundary.
//!
//! Results are copied into the caller's buffer, NUL-terminated (decoding
//! never produces a NUL), or borrowed from the request (`Request_Host`):
//! nothing is allocated. On success `*len` is the string's length; on
//! `CONNECTION_ERR_TOO_LARGE` it is the length needed (the buffer must hold
//! `*len + 1` bytes); on other errors 0. `buf` may be NULL when `cap` is 0,
//! to ask for the length. On any error a non-empty `buf` holds "".

use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};

use super::error::*;
use super::guard_int;
use super::request::{put_len, view, Request, View};
use crate::http::request::HeaderSpan;
use crate::http::{cookie, path, query, uri, FieldError};

/// Runs `fill` on the caller's buffer (less a byte for the NUL), then
/// NUL-terminates and reports the length as the module says.
///
/// # Safety
/// `buf` is NULL or has `cap` writable bytes; `len` is NULL or writable.
pub(super) unsafe fn to_c_buf(
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
    fill: impl FnOnce(&mut [u8]) -> Result<usize, FieldError>,
) -> c_int {
    if buf.is_null() && cap > 0 {
        return CONNECTION_ERR_NULL;
    }
    let out: &mut [u8] = if buf.is_null() {
        &mut []
    } else {
        // SAFETY: contract: `cap` writable bytes at `buf`; `cap - 1` of
        // them are lent to `fill`, the last is kept for the NUL.
        unsafe { std::slice::from_raw_parts_mut(buf as *mut u8, cap - 1) }
    };
    let (code, n) = match fill(out) {
        Ok(n) if n < cap => {
            // SAFETY: `n < cap`: inside the caller's buffer.
            unsafe { *buf.add(n) = 0 };
            (CONNECTION_OK, n)
        }
        Ok(n) | Err(FieldError::TooLarge(n)) => (CONNECTION_ERR_TOO_LARGE, n),
        Err(e) => (field_code(e), 0),
    };
    if code != CONNECTION_OK && cap > 0 {
        // SAFETY: `cap > 0`, so `buf` (checked non-NULL) has a first byte.
        unsafe { *buf = 0 };
    }
    // SAFETY: contract: `len` is NULL or writable.
    unsafe { put_len(len, n) };
    code
}

/// Runs `f` on the request behind `req` inside the panic guard, or returns
/// the error code (NULL, wrong thread).
///
/// # Safety
/// `req` is NULL or a handle the library passed to a running callback.
unsafe fn with_view(req: *const Request, f: impl FnOnce(View) -> c_int) -> c_int {
    guard_int(|| {
        // SAFETY: contract: `req` is NULL or the live handle of a callback.
        match unsafe { view(req) } {
            Ok(r) => f(r),
            Err(code) => code,
        }
    })
}

/// The raw path as `Request_Path` gives it ("/" for an empty one).
fn raw_path<'a>(r: &'a View) -> &'a [u8] {
    match r.bytes(r.0.path) {
        [] => b"/",
        p => p,
    }
}

/// A C string argument's bytes, or None for NULL.
///
/// # Safety
/// `s` is NULL or NUL-terminated.
unsafe fn c_bytes<'a>(s: *const c_char) -> Option<&'a [u8]> {
    // SAFETY: contract.
    (!s.is_null()).then(|| unsafe { CStr::from_ptr(s) }.to_bytes())
}

/// The request path percent-decoded into `buf` (`cap` bytes),
/// NUL-terminated; `len` gets its length (or the length needed). '+' stays
/// '+'; `.`, `..` and repeated '/' are kept (see `Request_PathNormalized`).
/// Returns 0, `CONNECTION_ERR_BAD_ESCAPE` (a '%' without two hex digits
/// after it, `%00`, or `%2F`: decoding never makes a NUL or a new '/'),
/// `CONNECTION_ERR_TOO_LARGE`, `CONNECTION_ERR_NULL`,
/// `CONNECTION_ERR_WRONG_THREAD`.
///
/// Thread: the loop thread, during the handler.
#[no_mangle]
pub unsafe extern "C" fn Request_PathDecoded(
    req: *const Request,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> c_int {
    let f = |r: View| {
        // SAFETY: contract: `buf` has `cap` bytes, `len` NULL or writable.
        unsafe { to_c_buf(buf, cap, len, |out| path::decode(raw_path(&r), out)) }
    };
    // SAFETY: contract: `req` NULL or the live handle of a callback.
    unsafe { with_view(req, f) }
}

/// The request path decoded (as `Request_PathDecoded`), then normalised
/// into `buf`: `.` segments removed, each `..` removing the segment before
/// it, runs of '/' collapsed; a final '/' kept (and added after a final `.`
/// or `..`). Escaped dots count as dots (`%2e%2e` is `..`). The result
/// starts with '/'. Returns 0, `CONNECTION_ERR_ABOVE_ROOT` (a `..` with
/// nothing left to remove: refused, never clamped),
/// `CONNECTION_ERR_BAD_ESCAPE`, `CONNECTION_ERR_MALFORMED` (the target is
/// "*"), `CONNECTION_ERR_TOO_LARGE`, `CONNECTION_ERR_NULL`,
/// `CONNECTION_ERR_WRONG_THREAD`.
///
/// Thread: the loop thread, during the handler.
#[no_mangle]
pub unsafe extern "C" fn Request_PathNormalized(
    req: *const Request,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> c_int {
    let f = |r: View| {
        // SAFETY: contract: `buf` has `cap` bytes, `len` NULL or writable.
        unsafe { to_c_buf(buf, cap, len, |out| path::normalize(raw_path(&r), out)) }
    };
    // SAFETY: contract: `req` NULL or the live handle of a callback.
    unsafe { with_view(req, f) }
}

/// The value of the first pair named `name` in `data` (form rules: pairs
/// split at '&', empty pieces skipped, name and value split at the first
/// '=', a pair without '=' has an empty value, '+' is a space, `%XX` a
/// byte; names compared exactly after decoding), decoded into `buf`.
///
/// # Safety
/// As for `to_c_buf`.
unsafe fn form_find(
    data: &[u8],
    name: Option<&[u8]>,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> c_int {
    let Some(name) = name else {
        return CONNECTION_ERR_NULL;
    };
    // SAFETY: forwarded contract.
    unsafe { to_c_buf(buf, cap, len, |out| query::find(data, name, out)) }
}

/// Pair `index` of `data`, name and value each decoded into its buffer.
///
/// # Safety
/// Each buffer and length as for `to_c_buf`.
#[allow(clippy::too_many_arguments)]
unsafe fn form_at(
    data: &[u8],
    index: usize,
    name: *mut c_char,
    name_cap: usize,
    name_len: *mut usize,
    value: *mut c_char,
    value_cap: usize,
    value_len: *mut usize,
) -> c_int {
    let Some((n, v)) = query::at(data, index) else {
        let none = |_: &mut [u8]| Err(FieldError::NotFound);
        // SAFETY: contract: each buffer and length as documented.
        unsafe {
            to_c_buf(name, name_cap, name_len, none);
            return to_c_buf(value, value_cap, value_len, none);
        }
    };
    // SAFETY: contract: each buffer as documented.
    let a = unsafe { to_c_buf(name, name_cap, name_len, |out| query::decode(n, out)) };
    // SAFETY: as above.
    let b = unsafe { to_c_buf(value, value_cap, value_len, |out| query::decode(v, out)) };
    // A bad escape or a NUL wins over a small buffer (a bigger one would
    // not help), and then neither part is given.
    let refused = [a, b]
        .into_iter()
        .find(|&c| c != CONNECTION_OK && c != CONNECTION_ERR_TOO_LARGE);
    if let Some(code) = refused {
        let none = |_: &mut [u8]| Err(FieldError::BadEscape);
        // SAFETY: contract: each buffer and length as documented.
        unsafe {
            to_c_buf(name, name_cap, name_len, none);
            to_c_buf(value, value_cap, value_len, none);
        }
        return code;
    }
    if a != CONNECTION_OK {
        a
    } else {
        b
    }
}

/// Query parameter `name` (NUL-terminated, compared exactly after
/// decoding) of the request, its value decoded into `buf` (`+` is a space,
/// `%XX` a byte). Duplicates: the first wins (`Request_QueryParamAt` sees
/// them all). A parameter without '=' ("?flag") has the value "". Returns
/// 0, `CONNECTION_ERR_NOT_FOUND`, `CONNECTION_ERR_BAD_ESCAPE` (in the
/// value: a bad escape or `%00`), `CONNECTION_ERR_TOO_LARGE`,
/// `CONNECTION_ERR_NULL`, `CONNECTION_ERR_WRONG_THREAD`.
///
/// Thread: the loop thread, during the handler.
#[no_mangle]
pub unsafe extern "C" fn Request_QueryParam(
    req: *const Request,
    name: *const c_char,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> c_int {
    let f = |r: View| {
        // SAFETY: contract: `name` NULL or NUL-terminated; `buf` has `cap`
        // bytes; `len` NULL or writable.
        unsafe { form_find(r.bytes(r.0.query), c_bytes(name), buf, cap, len) }
    };
    // SAFETY: contract: `req` NULL or the live handle of a callback.
    unsafe { with_view(req, f) }
}

/// Query parameter `index` (0-based, in order, duplicates included, empty
/// pieces between '&'s not counted): its name and value decoded into their
/// buffers, each as in `Request_QueryParam` (either buffer may be NULL with
/// a cap of 0 to skip it; its length is still reported). Returns 0,
/// `CONNECTION_ERR_NOT_FOUND` past the last one, `CONNECTION_ERR_BAD_ESCAPE`
/// (in the name or the value: neither is given; later indexes may still be
/// read),
/// `CONNECTION_ERR_TOO_LARGE` (either buffer; both lengths reported),
/// `CONNECTION_ERR_NULL`, `CONNECTION_ERR_WRONG_THREAD`.
///
/// Thread: the loop thread, during the handler.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn Request_QueryParamAt(
    req: *const Request,
    index: usize,
    name: *mut c_char,
    name_cap: usize,
    name_len: *mut usize,
    value: *mut c_char,
    value_cap: usize,
    value_len: *mut usize,
) -> c_int {
    let f = |r: View| {
        let q = r.bytes(r.0.query);
        // SAFETY: contract: each buffer and length as documented.
        unsafe {
            form_at(
                q, index, name, name_cap, name_len, value, value_cap, value_len,
            )
        }
    };
    // SAFETY: contract: `req` NULL or the live handle of a callback.
    unsafe { with_view(req, f) }
}

/// The bytes of a caller's `data`/`len` pair.
///
/// # Safety
/// `data` is NULL or has `len` readable bytes.
unsafe fn data_bytes<'a>(data: *const c_void, len: usize) -> Option<&'a [u8]> {
    match (data.is_null(), len) {
        (_, 0) => Some(&[]),
        (true, _) => None,
        // SAFETY: contract: `len` readable bytes.
        (false, _) => Some(unsafe { std::slice::from_raw_parts(data as *const u8, len) }),
    }
}

/// `Request_QueryParam` over any `application/x-www-form-urlencoded` text:
/// `data_len` bytes at `data` (a buffered body from `Request_Body`, or
/// pieces the application gathered from a streamed body; `data` may be
/// NULL when `data_len` is 0). Same rules and codes, without
/// `CONNECTION_ERR_WRONG_THREAD`, plus `CONNECTION_ERR_MALFORMED` for a NUL
/// byte in the name or value looked at (a request's path and query never
/// hold one; a body may).
///
/// Thread: any thread (reads only the caller's memory).
#[no_mangle]
pub unsafe extern "C" fn Connection_FormParam(
    data: *const c_void,
    data_len: usize,
    name: *const c_char,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> c_int {
    guard_int(|| {
        // SAFETY: contract: `data_len` readable bytes; `name` a C string.
        let Some(d) = (unsafe { data_bytes(data, data_len) }) else {
            return CONNECTION_ERR_NULL;
        };
        // SAFETY: contract: `name` NULL or a C string; `buf` has `cap`
        // bytes; `len` NULL or writable.
        unsafe { form_find(d, c_bytes(name), buf, cap, len) }
    })
}

/// `Request_QueryParamAt` over any `application/x-www-form-urlencoded`
/// text (as `Connection_FormParam`). Same rules and codes, without
/// `CONNECTION_ERR_WRONG_THREAD`, plus `CONNECTION_ERR_MALFORMED` (a NUL
/// byte in this pair: neither part is given).
///
/// Thread: any thread (reads only the caller's memory).
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn Connection_FormParamAt(
    data: *const c_void,
    data_len: usize,
    index: usize,
    name: *mut c_char,
    name_cap: usize,
    name_len: *mut usize,
    value: *mut c_char,
    value_cap: usize,
    value_len: *mut usize,
) -> c_int {
    guard_int(|| {
        // SAFETY: contract: `data_len` readable bytes.
        let Some(d) = (unsafe { data_bytes(data, data_len) }) else {
            return CONNECTION_ERR_NULL;
        };
        // SAFETY: contract: buffers as documented.
        unsafe {
            form_at(
                d, index, name, name_cap, name_len, value, value_cap, value_len,
            )
        }
    })
}

/// The value of cookie `name` (compared exactly) from the request's Cookie
/// header(s), copied into `buf`. RFC 6265 cookie-string, read leniently:
/// pairs split at ';', spaces and tabs around names and values ignored,
/// pieces without '=' or with an empty name skipped, the value is all after
/// the first '=' ('=' included), surrounding double quotes removed, not
/// decoded; the first match wins, each Cookie header searched in turn.
/// Returns 0, `CONNECTION_ERR_NOT_FOUND`, `CONNECTION_ERR_MALFORMED` (the
/// value holds a control byte or a stray double quote),
/// `CONNECTION_ERR_TOO_LARGE`, `CONNECTION_ERR_NULL`,
/// `CONNECTION_ERR_WRONG_THREAD`.
///
/// Thread: the loop thread, during the handler.
#[no_mangle]
pub unsafe extern "C" fn Request_Cookie(
    req: *const Request,
    name: *const c_char,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> c_int {
    let f = |r: View| {
        // SAFETY: contract: `name` NULL or a C string.
        let Some(name) = (unsafe { c_bytes(name) }) else {
            return CONNECTION_ERR_NULL;
        };
        let found =
            r.0.headers
                .iter()
                .filter(|h| r.bytes(h.name).eq_ignore_ascii_case(b"cookie"))
                .map(|h| cookie::find(r.bytes(h.value), name))
                .find(|res| *res != Err(FieldError::NotFound))
                .unwrap_or(Err(FieldError::NotFound));
        let copy = |out: &mut [u8]| {
            let v = found?;
            if let Some(dst) = out.get_mut(..v.len()) {
                dst.copy_from_slice(v);
            }
            Ok(v.len())
        };
        // SAFETY: contract: `buf` has `cap` bytes; `len` NULL or writable.
        unsafe { to_c_buf(buf, cap, len, copy) }
    };
    // SAFETY: contract: `req` NULL or the live handle of a callback.
    unsafe { with_view(req, f) }
}

/// The Host header split into name and port, borrowed from the request
/// (valid during the handler): `*name` points at the name, `*name_len`
/// bytes, NOT NUL-terminated; an IPv6 literal comes without its brackets
/// (`[::1]:8080` gives "::1" and 8080; a registered name never holds ':').
/// The name is as sent (not lower-cased, not decoded). `*port` is -1 when
/// the Host has no port (or an empty one, "a:"). The syntax was checked
/// when the request was parsed. Each out-pointer may be NULL. Returns 0,
/// `CONNECTION_ERR_NOT_FOUND` (no Host: HTTP/1.0), `CONNECTION_ERR_MALFORMED`
/// (port over 65535), `CONNECTION_ERR_NULL`, `CONNECTION_ERR_WRONG_THREAD`.
///
/// Thread: the loop thread, during the handler.
#[no_mangle]
pub unsafe extern "C" fn Request_Host(
    req: *const Request,
    name: *mut *const c_char,
    name_len: *mut usize,
    port: *mut c_int,
) -> c_int {
    static EMPTY: [u8; 1] = [0];
    let f = |r: View| {
        let is_host = |h: &&HeaderSpan| r.bytes(h.name).eq_ignore_ascii_case(b"host");
        let Some(h) = r.0.headers.iter().find(is_host) else {
            return CONNECTION_ERR_NOT_FOUND;
        };
        let (host, p) = match uri::host_parts(r.bytes(h.value)) {
            Ok(parts) => parts,
            Err(e) => return field_code(e),
        };
        // The name lies in the request's buffer, which outlives the handler.
        let start = if host.is_empty() {
            EMPTY.as_ptr()
        } else {
            host.as_ptr()
        };
        // SAFETY: contract: each out-pointer NULL (checked) or writable.
        unsafe {
            if !name.is_null() {
                *name = start as *const c_char;
            }
            put_len(name_len, host.len());
            if !port.is_null() {
                *port = p.map_or(-1, c_int::from);
            }
        }
        CONNECTION_OK
    };
    // SAFETY: contract: `req` NULL or the live handle of a callback.
    unsafe { with_view(req, f) }
}
