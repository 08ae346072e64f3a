//! Answering with a file: what `fstat` says of it, which part to send
//! (a caller's offset and length, or the request's `Range` and
//! conditional headers), and whether it goes out read into the output
//! (small) or with `sendfile` (large).

use std::os::fd::RawFd;

use super::connection::Conn;
use super::error::Error;
use super::exchange;
use super::file_body::FileBody;
use super::request::RequestView;
use super::shared::Shared;
use crate::http::conditional::{self, Validators};
use crate::http::range::{self, RangeAnswer};
use crate::http::response::{push_decimal, status_allows_body};
use crate::sys::file::{self, FileMeta};

/// Bodies up to this size are read into the output and sent with the head
/// in one `send`; larger ones go out with `sendfile` after the head
/// (`bench/RESULTS.md`, "File responses").
pub const SMALL_FILE_MAX: usize = 8 * 1024;

/// The application's descriptor as it handed it over. If it gave it away
/// (`owned`), it is closed exactly once: by the `FileBody` it becomes, or
/// when this is dropped, whatever path the call took.
pub struct CallerFile {
    fd: RawFd,
    owned: bool,
}

impl CallerFile {
    pub fn new(fd: RawFd, owned: bool) -> CallerFile {
        CallerFile { fd, owned }
    }

    /// A body owning a descriptor: this one if it was given away, else a
    /// duplicate (the application's stays untouched and its own).
    fn into_body(mut self, offset: u64, len: u64) -> Result<FileBody, Error> {
        let fd = if self.owned {
            self.owned = false;
            self.fd
        } else {
            file::dup(self.fd).map_err(Error::FileIo)?
        };
        Ok(FileBody::new(fd, offset, len))
    }
}

impl Drop for CallerFile {
    fn drop(&mut self) {
        if self.owned && self.fd >= 0 {
            file::close(self.fd);
        }
    }
}

/// The request headers a ranged/conditional file response looks at.
#[derive(Default)]
pub struct Conditional<'a> {
    /// GET or HEAD: the only methods the conditions and ranges apply to.
    pub get_or_head: bool,
    pub range: Option<&'a [u8]>,
    pub if_range: Option<&'a [u8]>,
    pub if_none_match: Option<&'a [u8]>,
    pub if_modified_since: Option<&'a [u8]>,
}

impl<'a> Conditional<'a> {
    /// Reads them from the request (the first field of each name).
    pub fn from_view(view: &'a RequestView) -> Conditional<'a> {
        let method = view.bytes(view.method);
        let mut c = Conditional {
            get_or_head: method == b"GET" || method == b"HEAD",
            ..Default::default()
        };
        for h in &view.headers {
            let name = view.bytes(h.name);
            let slot = if name.eq_ignore_ascii_case(b"range") {
                &mut c.range
            } else if name.eq_ignore_ascii_case(b"if-range") {
                &mut c.if_range
            } else if name.eq_ignore_ascii_case(b"if-none-match") {
                &mut c.if_none_match
            } else if name.eq_ignore_ascii_case(b"if-modified-since") {
                &mut c.if_modified_since
            } else {
                continue;
            };
            slot.get_or_insert(view.bytes(h.value));
        }
        c
    }
}

/// The answer the conditions give, once validators are in the head.
enum Answer {
    NotModified,
    Whole,
    Part { first: u64, last: u64 },
    Unsatisfiable,
}

/// RFC 9110 13.2.2's order: If-None-Match (else If-Modified-Since) may
/// make it a 304; then If-Range decides whether Range is looked at.
fn evaluate(cond: &Conditional, v: &Validators) -> Answer {
    if !cond.get_or_head {
        return Answer::Whole;
    }
    let not_modified = match (cond.if_none_match, cond.if_modified_since) {
        (Some(inm), _) => conditional::none_match_fails(inm, v),
        (None, Some(ims)) => conditional::modified_since_fails(ims, v),
        (None, None) => false,
    };
    if not_modified {
        return Answer::NotModified;
    }
    let Some(range) = cond.range else {
        return Answer::Whole;
    };
    if cond
        .if_range
        .is_some_and(|ir| !conditional::if_range_holds(ir, v))
    {
        return Answer::Whole;
    }
    match range::answer(range, v.size) {
        RangeAnswer::Whole => Answer::Whole,
        RangeAnswer::Part { first, last } => Answer::Part { first, last },
        RangeAnswer::Unsatisfiable => Answer::Unsatisfiable,
    }
}

/// Adds the validators (and, for a part, Content-Range) to the head and
/// sets the status; returns the bytes to send: offset and length.
fn apply(
    headers: &mut Vec<u8>,
    status: &mut u16,
    meta: &FileMeta,
    cond: &Conditional,
) -> (u64, u64) {
    let v = Validators {
        size: meta.size,
        mtime_sec: meta.mtime_sec,
        mtime_nsec: meta.mtime_nsec,
    };
    headers.extend_from_slice(b"Accept-Ranges: bytes\r\nETag: ");
    v.etag(headers);
    headers.extend_from_slice(b"\r\nLast-Modified: ");
    headers.extend_from_slice(&v.last_modified());
    headers.extend_from_slice(b"\r\n");
    match evaluate(cond, &v) {
        Answer::Whole => (0, meta.size),
        Answer::NotModified => {
            *status = 304;
            (0, 0)
        }
        Answer::Unsatisfiable => {
            *status = 416;
            headers.extend_from_slice(b"Content-Range: bytes */");
            push_decimal(headers, meta.size);
            headers.extend_from_slice(b"\r\n");
            (0, 0)
        }
        Answer::Part { first, last } => {
            *status = 206;
            headers.extend_from_slice(b"Content-Range: bytes ");
            push_decimal(headers, first);
            headers.push(b'-');
            push_decimal(headers, last);
            headers.push(b'/');
            push_decimal(headers, meta.size);
            headers.extend_from_slice(b"\r\n");
            (first, last - first + 1)
        }
    }
}

/// Answers the connection's current request with `file`: `length` bytes
/// (None: to the end) from `offset`, or, with `cond`, the whole file as the
/// request's conditional and Range headers decide (when the application
/// left the status at 200). On an error nothing is queued and the reply is
/// as it was; `file` is closed if it was given away, in every case.
pub fn respond(
    c: &mut Conn,
    sh: &mut Shared,
    file: CallerFile,
    offset: u64,
    length: Option<u64>,
    cond: Option<&Conditional>,
) -> Result<(), Error> {
    let meta = file::meta(file.fd).map_err(Error::FileIo)?;
    if !meta.regular {
        return Err(Error::NotFile);
    }
    let end = match length {
        None => meta.size,
        Some(len) => offset.checked_add(len).ok_or(Error::FileRange)?,
    };
    if offset > meta.size || end > meta.size {
        return Err(Error::FileRange);
    }
    // SAFETY: `c.reply` is owned by the connection; the application, which
    // is the caller, does not touch it while this runs.
    let r = unsafe { &mut *c.reply };
    let (saved_status, saved_headers) = (r.status, r.headers.len());
    let (offset, len) = match cond {
        Some(cond) if r.status == 200 => apply(&mut r.headers, &mut r.status, &meta, cond),
        _ => (offset, end - offset),
    };
    let body_follows = len > 0 && !r.head_method && status_allows_body(r.status);
    let result = if !body_follows {
        exchange::compose_file(c, sh, len, None);
        Ok(())
    } else if len <= SMALL_FILE_MAX as u64 {
        send_small(c, sh, &file, offset, len as usize)
    } else {
        file.into_body(offset, len)
            .map(|body| exchange::compose_file(c, sh, len, Some(body)))
    };
    if result.is_err() {
        // SAFETY: as above; nothing else holds the reply.
        let r = unsafe { &mut *c.reply };
        r.status = saved_status;
        r.headers.truncate(saved_headers);
    }
    result
}

/// A small body: read now, sent with the head in one `send`.
fn send_small(
    c: &mut Conn,
    sh: &mut Shared,
    file: &CallerFile,
    offset: u64,
    len: usize,
) -> Result<(), Error> {
    let mut buf = [0u8; SMALL_FILE_MAX];
    let mut got = 0;
    while got < len {
        match file::pread(file.fd, &mut buf[got..len], offset + got as u64) {
            Ok(0) => return Err(Error::FileRange),
            Ok(n) => got += n,
            Err(e) => return Err(Error::FileIo(e)),
        }
    }
    exchange::compose(c, sh, &buf[..len], exchange::Body::Full)
}
