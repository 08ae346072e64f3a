//! Starting and finishing a connection's completion record
//! (`completion.rs`): where the loop's request accounting meets a
//! connection. Each function is a no-op beyond one branch (and keeping the
//! received-bytes mark current) while no completion sink is set.

use super::completion::{line_from_head, line_from_raw};
use super::connection::{Conn, State};
use super::error::CloseReason;
use super::shared::Shared;
use crate::http::request::Head;

/// The raw input position where the current request ends, `unread_after`
/// bytes of input following it: the bytes it took since the last one ended.
fn take_bytes_in(c: &mut Conn, unread_after: usize) -> u64 {
    let end = c.bytes_received - unread_after as u64;
    let n = end.saturating_sub(c.rx_start);
    c.rx_start = end;
    n
}

/// A request was dispatched (its head, and `len` bytes of input from the
/// read position, are the request's): start its record. Always keeps the
/// byte count's start up to date; records only while recording.
/// Inlined (it runs once per request); the recording itself is not.
#[inline(always)]
pub fn begin_dispatched(c: &mut Conn, sh: &mut Shared, head: &Head, id: u64, len: usize) {
    let unread_after = c.input.len() - len;
    let bytes_in = take_bytes_in(c, unread_after);
    if sh.recording {
        record_dispatched(c, head, id, bytes_in);
    }
}

/// `begin_dispatched` while a completion sink is set.
#[inline(never)]
fn record_dispatched(c: &mut Conn, head: &Head, id: u64, bytes_in: u64) {
    // SAFETY: the caller made `c.reply` the connection's live handle, and
    // no application code runs during this call.
    let track = unsafe { &mut (*c.reply).track };
    // Output still queued (an interim 100 Continue) is not this response's.
    let out_base = c.bytes_sent + c.output.len() as u64;
    track.begin(id, 0, bytes_in, out_base);
    let start = c.input.read_pos();
    track.method_len = line_from_head(&c.input.storage()[start..], head, &mut track.line);
    track.version = 10 + head.minor_version;
    c.record_open = true;
}

/// A request is refused with `status` by the library (before `reject`
/// clears the input): start its record with what is known of it.
pub fn begin_refused(c: &mut Conn, sh: &mut Shared, status: u16) {
    let bytes_in = take_bytes_in(c, 0);
    if !sh.recording || c.record_open {
        return;
    }
    if c.reply.is_null() {
        c.reply = sh.replies.take();
    }
    let (id, out_base) = match &c.state {
        State::Uploading(up) => (up.id, c.bytes_sent + c.output.len() as u64),
        _ => (sh.take_request_id(), c.bytes_sent + c.output.len() as u64),
    };
    // SAFETY: `c.reply` is the connection's own handle; with no request
    // being answered, the application holds no pointer into it.
    let track = unsafe { &mut (*c.reply).track };
    track.begin(id, status, bytes_in, out_base);
    let start = c.input.read_pos();
    let buf = &c.input.storage()[start..];
    (track.method_len, track.version) = match &c.state {
        State::Uploading(up) => (
            line_from_head(buf, &up.head, &mut track.line),
            10 + up.head.minor_version,
        ),
        _ => line_from_raw(buf, &mut track.line),
    };
    c.record_open = true;
}

/// The connection's open record is over: the response left (`completed`)
/// or the connection ended with `close`. Queues it for the application.
pub fn finish(c: &mut Conn, sh: &mut Shared, close: Option<CloseReason>, completed: bool) {
    c.record_open = false;
    if c.reply.is_null() {
        return;
    }
    // SAFETY: `c.reply` is the connection's own handle; the loop is not
    // running application code during this call.
    let reply = unsafe { &*c.reply };
    reply.track.finish(
        &mut sh.finished,
        reply.status,
        c.bytes_sent,
        c.peer,
        close,
        completed,
    );
}
