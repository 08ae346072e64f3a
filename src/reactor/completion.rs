//! Completion records: one per request, handed to the application once the
//! request's response has left (the kernel took its last byte) or its
//! connection ended first. While a request is answered its connection keeps
//! what the record needs (`Track`, in the reply handle, reused from request
//! to request); a finished record waits in `Finished` until no borrow of the
//! loop is alive (`LoopPtr::run_cleanups` hands it over). Both keep their
//! capacity, so a kept-alive request allocates nothing.
//!
//! Only while a completion sink is set (`Shared::recording`): unset, each
//! request costs one branch here.

use std::os::raw::c_void;

use super::error::CloseReason;
use crate::http::request::Head;
use crate::sys::time::{monotonic_us, unix_micros};
use crate::sys::PeerAddr;

/// One finished request, as the application sees it (borrowed for the call).
pub struct Completion<'a> {
    pub id: u64,
    /// The request method, and the request-target as sent (path and query);
    /// empty when a refused request's line was not readable.
    pub method: &'a [u8],
    pub target: &'a [u8],
    /// The response's status; 0 when the connection ended before a
    /// response was made.
    pub status: u16,
    /// 10 or 11 (HTTP/1.0, HTTP/1.1); 0 when a refused request's version
    /// was not read.
    pub version: u8,
    /// Request bytes received (head and body as they came on the wire).
    pub bytes_in: u64,
    /// Response bytes the kernel accepted (head and body).
    pub bytes_out: u64,
    /// The length of the response head (so the body's bytes are
    /// `bytes_out - head_bytes`, when at least the head left).
    pub head_bytes: u64,
    /// Wall clock, microseconds since the epoch, when the request was
    /// dispatched to the handler (or refused).
    pub start_us: u64,
    pub duration_us: u64,
    /// Set when the connection ended with this request.
    pub close: Option<CloseReason>,
    /// The response left in full (false: the connection ended first).
    pub completed: bool,
    pub peer: PeerAddr,
}

/// How records reach the application: `emit` (the C boundary's) converts
/// the record and calls `callback` with `user`. `callback` is the
/// application's function as an untyped pointer, typed back by `emit`.
pub type EmitFn = unsafe fn(record: &Completion<'_>, callback: *const (), user: *mut c_void);

#[derive(Clone, Copy)]
pub struct CompletionSink {
    pub emit: EmitFn,
    pub callback: *const (),
    pub user: *mut c_void,
}

/// What a connection remembers of the request it answers.
#[derive(Default)]
pub struct Track {
    pub id: u64,
    /// The library's own status for a refused request; 0: the reply's.
    pub status: u16,
    pub start_us: u64,
    pub start_mono_us: u64,
    pub bytes_in: u64,
    /// `Conn::bytes_sent` when the response started.
    pub out_base: u64,
    /// The response head's length, once composed.
    pub head_bytes: u64,
    pub version: u8,
    /// The method, a NUL, the target, a NUL.
    pub line: Vec<u8>,
    pub method_len: usize,
}

impl Track {
    /// Starts the record of a request: the clocks read now, no line yet.
    pub fn begin(&mut self, id: u64, status: u16, bytes_in: u64, out_base: u64) {
        self.id = id;
        self.status = status;
        self.bytes_in = bytes_in;
        self.out_base = out_base;
        self.start_us = unix_micros();
        self.start_mono_us = monotonic_us();
        self.line.clear();
        self.head_bytes = 0;
        self.version = 0;
    }

    /// The finished record, queued in `finished`: `reply_status` is what
    /// the application answered, `sent` the connection's `bytes_sent`.
    pub fn finish(
        &self,
        finished: &mut Finished,
        reply_status: u16,
        sent: u64,
        peer: PeerAddr,
        close: Option<CloseReason>,
        completed: bool,
    ) {
        let text = &mut finished.text;
        let base = text.len();
        text.extend_from_slice(&self.line);
        let method = (base, base + self.method_len);
        let target = (method.1 + 1, base + self.line.len() - 1);
        finished.records.push(Entry {
            id: self.id,
            status: match self.status {
                // The connection ended before any response head was made.
                _ if !completed && self.head_bytes == 0 => 0,
                0 => reply_status,
                refused => refused,
            },
            start_us: self.start_us,
            duration_us: monotonic_us().saturating_sub(self.start_mono_us),
            version: self.version,
            bytes_in: self.bytes_in,
            bytes_out: sent - self.out_base,
            head_bytes: self.head_bytes,
            close,
            completed,
            peer,
            method,
            target,
        });
    }
}

/// Finished records waiting for the application; `text` holds their
/// method and target bytes.
#[derive(Default)]
pub struct Finished {
    pub records: Vec<Entry>,
    pub text: Vec<u8>,
}

/// A finished record, its strings as ranges of `Finished::text`.
#[derive(Clone, Copy)]
pub struct Entry {
    id: u64,
    status: u16,
    start_us: u64,
    duration_us: u64,
    version: u8,
    bytes_in: u64,
    bytes_out: u64,
    head_bytes: u64,
    close: Option<CloseReason>,
    completed: bool,
    peer: PeerAddr,
    method: (usize, usize),
    target: (usize, usize),
}

impl Finished {
    pub fn clear(&mut self) {
        self.records.clear();
        self.text.clear();
    }

    /// The record `entry`, its strings in `self.text`.
    pub fn record(&self, entry: &Entry) -> Completion<'_> {
        Completion {
            id: entry.id,
            method: &self.text[entry.method.0..entry.method.1],
            target: &self.text[entry.target.0..entry.target.1],
            status: entry.status,
            version: entry.version,
            bytes_in: entry.bytes_in,
            bytes_out: entry.bytes_out,
            head_bytes: entry.head_bytes,
            start_us: entry.start_us,
            duration_us: entry.duration_us,
            close: entry.close,
            completed: entry.completed,
            peer: entry.peer,
        }
    }
}

/// The request line of a parsed head in `buf`: method and target (path,
/// '?', query), whether or not the fields were NUL-terminated in place.
pub fn line_from_head(buf: &[u8], head: &Head, out: &mut Vec<u8>) -> usize {
    out.extend_from_slice(head.method.slice(buf));
    let method_len = out.len();
    out.push(0);
    out.extend_from_slice(head.path.slice(buf));
    if head.query_mark.is_some() {
        out.push(b'?');
        out.extend_from_slice(head.query.slice(buf));
    }
    out.push(0);
    method_len
}

/// What can be read of a refused request's line: the method if a space
/// follows it, the target and version if the line is complete; empty (and
/// version 0) otherwise. Returns the method's length and the version.
pub fn line_from_raw(buf: &[u8], out: &mut Vec<u8>) -> (usize, u8) {
    let line_end = buf.iter().position(|&b| b == b'\n' || b == 0);
    let line = &buf[..line_end.unwrap_or(buf.len())];
    let mut parts = line.split(|&b| b == b' ');
    let method = match parts.next() {
        Some(m) if line.len() > m.len() && !m.is_empty() && m.iter().all(u8::is_ascii_graphic) => m,
        _ => &[],
    };
    let complete = line_end.is_some() && !method.is_empty();
    let target = match parts.next() {
        Some(t) if complete => t.trim_ascii_end(),
        _ => &[],
    };
    let version = match parts.next().map(<[u8]>::trim_ascii_end) {
        Some(b"HTTP/1.0") if complete => 10,
        Some(b"HTTP/1.1") if complete => 11,
        _ => 0,
    };
    out.extend_from_slice(method);
    out.push(0);
    out.extend_from_slice(target);
    out.push(0);
    (method.len(), version)
}
