//! The HTTP exchange on one connection (muduo's `http/HttpContext` and
//! `HttpResponse`): parse the next request out of the input buffer, point
//! the `RequestView` at it, stream a body to the body handler piece by
//! piece, and serialise response heads, bodies and the library's own error
//! responses into the output buffer. No system calls, no callbacks: each
//! function takes the connection and returns what happened.

use super::connection::{BodyWait, Conn, State, Upload};
use super::error::{CloseReason, Error};
use super::file_body::FileBody;
use super::output::Borrowed;
use super::records;
use super::reply::{Phase, Reply};
use super::request::RequestView;
use super::shared::Shared;
use super::upgrade::Upgrade;
use crate::http::chunked::{ChunkedDecoder, Progress};
use crate::http::request::{parse_head_into, Framing, Head, HeadStatus, HeaderSpan};
use crate::http::response::{
    copy_bytes, extend_short, push_content_length, push_decimal, push_status_line, reason_phrase,
    status_allows_body, write_content_length, CONTENT_LENGTH_LINE_MAX, LAST_CHUNK,
};

/// What parsing the next request gave.
pub enum Next {
    NeedMore,
    /// A complete request is in the view; `len` bytes of input (head and
    /// raw body) belong to it.
    Dispatch {
        len: usize,
    },
    /// A piece of a streamed body, `len` bytes, is in the view.
    BodyPiece {
        len: usize,
    },
    Error(u16),
}

/// How a response's body is sent.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Body {
    Full,
    Chunked,
    Stream,
}

/// Status line, Date and (if configured) Server: how every response head
/// starts, the library's own error responses included.
#[inline(always)]
fn start_head(out: &mut Vec<u8>, status: u16, sh: &Shared) {
    if status == 200 {
        // Most responses: the status and Date lines kept whole by the
        // cache, one fixed-size copy.
        out.extend_from_slice(sh.date.ok_head_start());
    } else {
        push_status_line(out, status);
        out.extend_from_slice(sh.date.line());
    }
    // Hot path: no copy call for the usual empty Server line.
    if !sh.limits.server_line.is_empty() {
        out.extend_from_slice(&sh.limits.server_line);
    }
}

/// NUL-terminates every field of a parsed head in place: the byte after
/// each one is a delimiter (space, '?', ':', CR or OWS) no longer needed.
#[inline(always)]
fn terminate_fields(buf: &mut [u8], head: &Head, headers: &[HeaderSpan]) {
    buf[head.method.end()] = 0;
    if let Some(mark) = head.query_mark {
        buf[mark as usize] = 0;
        buf[head.query.end()] = 0;
    } else {
        buf[head.path.end()] = 0;
    }
    for h in headers {
        buf[h.name.end()] = 0;
        buf[h.value.end()] = 0;
    }
}

/// Parses the next buffered request. `stream_above` is Some when a body
/// handler takes bodies above that size (and all chunked ones).
/// Inlined into its one caller (`step`): it runs once per request, and a
/// call's frame cost about 20 instructions there.
#[inline]
pub fn parse_next(
    c: &mut Conn,
    sh: &mut Shared,
    view: &mut RequestView,
    stream_above: Option<usize>,
) -> Next {
    if matches!(c.state, State::Uploading(_)) {
        return continue_upload(c, sh, view);
    }
    if c.input.is_empty() {
        return Next::NeedMore;
    }
    let start = c.input.read_pos();
    // The head and its header spans go straight into the view (no
    // application code holds it while the loop parses).
    match parse_head_into(
        &c.input.storage()[start..],
        &sh.parse_limits,
        &mut view.headers,
        &mut view.head,
    ) {
        HeadStatus::Complete => {}
        HeadStatus::Partial => return Next::NeedMore,
        HeadStatus::Error(status) => return Next::Error(status),
    }
    let head = &view.head;
    let streamed = stream_above.is_some_and(|above| match head.framing {
        Framing::None => false,
        Framing::Length(n) => n > above as u64,
        Framing::Chunked => true,
    });
    if streamed {
        // The body goes to the body handler piece by piece; the head stays
        // in the buffer (NUL-terminated once) until the request is done.
        terminate_fields(&mut c.input.storage_mut()[start..], head, &view.headers);
        c.state = State::Uploading(Box::new(Upload {
            head: *head,
            headers: view.headers.clone(),
            remaining: match head.framing {
                Framing::Length(n) => n,
                _ => 0,
            },
            decoder: ChunkedDecoder::default(),
            raw_done: None,
            delivered: 0,
            id: sh.take_request_id(),
            wait: BodyWait::default(),
        }));
        return continue_upload(c, sh, view);
    }
    let body_start = start + head.len;
    let (body_len, total) = match head.framing {
        Framing::None => (0, head.len),
        Framing::Length(n) => {
            let n = n as usize;
            if c.input.storage().len() - body_start < n {
                return await_body(c, sh, head.expect_continue);
            }
            (n, head.len + n)
        }
        Framing::Chunked => {
            let max_body = sh.limits.max_body_bytes;
            let max_trailer = sh.limits.max_header_bytes;
            let wait = match &mut c.state {
                State::Receiving(Some(wait)) => wait,
                state => state_receiving_body(state),
            };
            let decoder = wait.chunked.get_or_insert_with(ChunkedDecoder::default);
            let input = c.input.storage_mut();
            match decoder.decode(&mut input[body_start..], max_body, max_trailer) {
                Err(status) => return Next::Error(status),
                Ok(Progress::NeedMore) => {
                    // All raw input was decoded in place; drop it.
                    input.truncate(body_start + decoder.decoded());
                    return await_body(c, sh, head.expect_continue);
                }
                Ok(Progress::Done { decoded, consumed }) => (decoded, head.len + consumed),
            }
        }
    };
    terminate_fields(&mut c.input.storage_mut()[start..], head, &view.headers);
    let id = sh.take_request_id();
    view.fill(&c.input.storage()[start..], body_len, c.peer, id);
    begin_reply(c, sh, &view.head);
    records::begin_dispatched(c, sh, &view.head, id, total);
    Next::Dispatch { len: total }
}

/// Makes the state "head in, body arriving" and returns its wait record.
fn state_receiving_body(state: &mut State) -> &mut BodyWait {
    *state = State::Receiving(Some(Box::default()));
    match state {
        State::Receiving(Some(wait)) => wait,
        _ => unreachable!("just set"),
    }
}

/// Readies the connection's reply handle for a new request: the
/// application answers from now on. Inlined: it runs once per request.
#[inline(always)]
fn begin_reply(c: &mut Conn, sh: &mut Shared, head: &Head) {
    c.state = State::Answering;
    if c.reply.is_null() {
        c.reply = take_reply(sh);
    }
    // SAFETY: `c.reply` is owned by the connection and not borrowed
    // elsewhere (no application code runs during this step).
    let r = unsafe { &mut *c.reply };
    r.token = c.token;
    r.phase = Phase::Handler;
    r.status = 200;
    r.headers.clear();
    r.head_method = head.is_head_method;
    r.keep_alive = head.keep_alive && !sh.stopping;
    r.minor_version = head.minor_version;
    r.app_close = false;
    sh.stats.requests += 1;
}

/// A reply handle for a connection that has none (its first request, or
/// the one after a deferred response): kept out of the per-request path.
#[cold]
#[inline(never)]
fn take_reply(sh: &mut Shared) -> *mut Reply {
    sh.replies.take()
}

/// Next move of a request whose body is streamed to the body handler:
/// deliver what has arrived, or dispatch once the body is complete.
fn continue_upload(c: &mut Conn, sh: &mut Shared, view: &mut RequestView) -> Next {
    let max_trailer = sh.limits.max_header_bytes;
    let State::Uploading(up) = &mut c.state else {
        return Next::NeedMore;
    };
    let head = up.head;
    let body_start = c.input.read_pos() + head.len;
    let input = c.input.storage_mut();
    let piece = match head.framing {
        Framing::Length(_) => {
            let available = (input.len() - body_start) as u64;
            let n = available.min(up.remaining) as usize;
            if n == 0 && up.remaining > 0 {
                return await_body(c, sh, head.expect_continue);
            }
            n
        }
        _ if up.raw_done.is_some() => 0,
        _ => match up
            .decoder
            .decode(&mut input[body_start..], usize::MAX, max_trailer)
        {
            Err(status) => return Next::Error(status),
            Ok(Progress::NeedMore) => {
                let decoded = up.decoder.decoded();
                input.truncate(body_start + decoded);
                if decoded == 0 {
                    return await_body(c, sh, head.expect_continue);
                }
                decoded
            }
            Ok(Progress::Done { decoded, consumed }) => {
                // After the decoded piece is removed, the raw body ends
                // `consumed - decoded` bytes past the head.
                up.raw_done = Some(consumed - decoded);
                decoded
            }
        },
    };
    if up.delivered + piece as u64 > sh.limits.max_body_bytes as u64 {
        return Next::Error(413);
    }
    let start = c.input.read_pos();
    view.set_headers(&up.headers);
    view.head = head;
    view.fill(&c.input.storage()[start..], piece, c.peer, up.id);
    if piece > 0 {
        return Next::BodyPiece { len: piece };
    }
    // Body complete: the handler runs with an empty body.
    let len = head.len + up.raw_done.unwrap_or(0);
    let id = up.id;
    begin_reply(c, sh, &head);
    records::begin_dispatched(c, sh, &head, id, len);
    Next::Dispatch { len }
}

/// The body handler took `n` bytes (or refused them with `verdict`, an
/// HTTP status): drop them from the buffer.
pub fn end_body_piece(c: &mut Conn, sh: &mut Shared, n: usize, verdict: i32) {
    if verdict != 0 {
        let status = if (400..=599).contains(&verdict) {
            verdict as u16
        } else {
            500
        };
        reject(c, sh, status);
        return;
    }
    let body_start = c.input.read_pos();
    let State::Uploading(up) = &mut c.state else {
        return;
    };
    let body_start = body_start + up.head.len;
    let input = c.input.storage_mut();
    input.copy_within(body_start + n.., body_start);
    input.truncate(input.len() - n);
    up.delivered += n as u64;
    match up.head.framing {
        Framing::Length(_) => up.remaining -= n as u64,
        _ => up.decoder.forget_decoded(),
    }
}

/// A complete head whose body is still arriving: maybe send 100 Continue.
fn await_body(c: &mut Conn, sh: &mut Shared, expect_continue: bool) -> Next {
    let wait = match &mut c.state {
        State::Uploading(up) => &mut up.wait,
        State::Receiving(Some(wait)) => wait,
        state => state_receiving_body(state),
    };
    if !wait.awaiting {
        wait.awaiting = true;
        c.timer_dirty = true;
    }
    if expect_continue && !wait.sent_continue {
        wait.sent_continue = true;
        c.output
            .append(&mut sh.pool, b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    Next::NeedMore
}

/// Queues a canned error response and closes after it.
pub fn reject(c: &mut Conn, sh: &mut Shared, status: u16) {
    log::debug!("fd {}: rejecting request with {status}", c.raw_fd());
    records::begin_refused(c, sh, status);
    let out = c.output.writer(&mut sh.pool);
    let head_start = out.len();
    start_head(out, status, sh);
    let body = reason_phrase(status).as_bytes();
    out.extend_from_slice(b"Content-Type: text/plain\r\nConnection: close\r\nContent-Length: ");
    push_decimal(out, body.len() as u64 + 1);
    out.extend_from_slice(b"\r\n\r\n");
    if c.record_open {
        // SAFETY: `begin_refused` gave the connection its reply handle; the
        // application holds no pointer into it.
        unsafe { (*c.reply).track.head_bytes = (out.len() - head_start) as u64 };
    }
    out.extend_from_slice(body);
    out.push(b'\n');
    c.close_after = Some(CloseReason::Protocol);
    c.await_next_request();
    c.input.clear();
    sh.stats.responses += 1;
}

/// Serialises the head (and a full body, copied) of the connection's
/// current response into its output.
pub fn compose(c: &mut Conn, sh: &mut Shared, body: &[u8], kind: Body) -> Result<(), Error> {
    compose_head(c, sh, body.len(), kind, body)?;
    c.output.sync(&mut sh.queued_output);
    Ok(())
}

/// `compose` of a complete response with its body copied (the
/// application's `Response_Send`, once per request): the head is composed
/// inline here, the framing choices for chunked and streamed bodies left
/// out, and no call is made.
#[inline(always)]
pub fn compose_full(c: &mut Conn, sh: &mut Shared, body: &[u8]) {
    compose_head_inline(c, sh, body.len(), Body::Full, body)
        .expect("a full body is always allowed");
    c.output.sync(&mut sh.queued_output);
}

/// Serialises the head of a complete response whose body the application
/// lent: the body follows the head without being copied. When no body is
/// sent (HEAD, 204, 304, empty) its release is owed at once.
pub fn compose_borrowed(c: &mut Conn, sh: &mut Shared, body: Borrowed) {
    let sent =
        compose_head(c, sh, body.len(), Body::Full, &[]).expect("a full body is always allowed");
    if sent && !body.is_empty() {
        c.output.attach(body);
    } else {
        sh.release_later(body);
    }
    c.output.sync(&mut sh.queued_output);
}

/// Serialises the head of a complete response whose `len`-byte body is
/// `file`, sent after the head with `sendfile`. With no body to send (HEAD,
/// 204, 304) or no `file` (the caller decided no body goes out), only the
/// head goes out and `file`, if any, is dropped (closed) here.
pub fn compose_file(c: &mut Conn, sh: &mut Shared, len: u64, file: Option<FileBody>) {
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    let sent = compose_head(c, sh, len, Body::Full, &[]).expect("a full body is always allowed");
    if let (true, Some(file)) = (sent && len > 0, file) {
        c.output.attach_file(file);
    }
    c.output.sync(&mut sh.queued_output);
}

/// Most bytes a head takes besides the Server line and the application's
/// headers: the longest status line (46), Date (37), a Content-Length line
/// (38) or Transfer-Encoding (28), and `Connection: keep-alive` with the
/// blank line (26). Only sizes one reservation; every append still checks.
const HEAD_FIXED_MAX: usize = 160;

/// The head of the current response, then `copied` (a full body the
/// caller has in memory, empty otherwise) if a body is to be sent, and the
/// reply's and connection's state after it. Returns whether a full body of
/// `body_len` bytes is to follow the head.
fn compose_head(
    c: &mut Conn,
    sh: &mut Shared,
    body_len: usize,
    kind: Body,
    copied: &[u8],
) -> Result<bool, Error> {
    compose_head_inline(c, sh, body_len, kind, copied)
}

/// `compose_head`'s body: inlined into it and into `compose_full`.
#[inline(always)]
fn compose_head_inline(
    c: &mut Conn,
    sh: &mut Shared,
    body_len: usize,
    kind: Body,
    copied: &[u8],
) -> Result<bool, Error> {
    // SAFETY: `c.reply` is owned by the connection; the application does
    // not touch it while this runs (it is the caller, or not running).
    let r: &mut Reply = unsafe { &mut *c.reply };
    let allows_body = status_allows_body(r.status);
    if kind != Body::Full && !allows_body {
        return Err(Error::Invalid);
    }
    let raw_stream = kind != Body::Full && r.minor_version == 0;
    let closing = !r.keep_alive || r.app_close || sh.stopping || raw_stream;
    let body_follows = kind == Body::Full && allows_body && !r.head_method;
    let out = c.output.writer(&mut sh.pool);
    // The copied body, if it is sent (not for HEAD, 204, 304).
    let copied = if body_follows { copied } else { &[] };
    let head_len = if kind == Body::Full && r.status == 200 && !closing && r.minor_version != 0 {
        write_ok_response(out, sh, &r.headers, body_len as u64, copied)
    } else {
        let head_start = out.len();
        // One reservation for the head and the copied body: the appends
        // below then never grow the buffer (each is a capacity compare
        // and a copy).
        out.reserve(HEAD_FIXED_MAX + sh.limits.server_line.len() + r.headers.len() + copied.len());
        start_head(out, r.status, sh);
        extend_short(out, &r.headers);
        match kind {
            Body::Full if r.status == 204 || r.status == 304 => {}
            Body::Full => push_content_length(out, body_len as u64),
            _ if raw_stream => {}
            _ => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        }
        if closing {
            out.extend_from_slice(b"Connection: close\r\n\r\n");
        } else if r.minor_version == 0 {
            out.extend_from_slice(b"Connection: keep-alive\r\n\r\n");
        } else {
            out.extend_from_slice(b"\r\n");
        }
        let head_len = out.len() - head_start;
        extend_short(out, copied);
        head_len
    };
    if c.record_open {
        r.track.head_bytes = head_len as u64;
    }
    c.deferred_wait = false;
    if closing {
        c.close_after = Some(if sh.stopping {
            CloseReason::Shutdown
        } else {
            CloseReason::Completed
        });
    }
    r.phase = match kind {
        Body::Full => Phase::Done,
        Body::Chunked => Phase::Chunked,
        Body::Stream => Phase::Streaming,
    };
    if kind == Body::Full {
        sh.stats.responses += 1;
        c.await_next_request();
        answered(c, sh);
    }
    Ok(body_follows)
}

/// A complete 200 response on a connection kept alive with HTTP/1.1
/// (most responses): the cached status and Date lines, the Server line,
/// the application's `headers`, `Content-Length: body_len`, the blank line
/// and `body` (the copied body, empty when none is sent or it is not
/// copied), written into room reserved once, with one length update.
/// Returns the head's length.
#[inline(always)]
fn write_ok_response(
    out: &mut Vec<u8>,
    sh: &Shared,
    headers: &[u8],
    body_len: u64,
    body: &[u8],
) -> usize {
    let start = sh.date.ok_head_start();
    let server = &sh.limits.server_line[..];
    let room =
        start.len() + server.len() + headers.len() + CONTENT_LENGTH_LINE_MAX + 2 + body.len();
    out.reserve(room);
    let len = out.len();
    // SAFETY: `reserve` made room for `room` bytes after `len`; the writes
    // below stay inside them (their offsets add up to at most `room`), from
    // slices that cannot overlap the vector's spare room, and every byte
    // up to the response's end is written before `set_len`.
    unsafe {
        let d = out.as_mut_ptr().add(len);
        std::ptr::copy_nonoverlapping(start.as_ptr(), d, start.len());
        let mut at = start.len();
        if !server.is_empty() {
            std::ptr::copy_nonoverlapping(server.as_ptr(), d.add(at), server.len());
            at += server.len();
        }
        copy_bytes(headers, d.add(at));
        at += headers.len();
        at += write_content_length(d.add(at), body_len);
        std::ptr::copy_nonoverlapping(b"\r\n\r\n".as_ptr(), d.add(at), 4);
        at += 4;
        copy_bytes(body, d.add(at));
        out.set_len(len + at + body.len());
        at
    }
}

/// The current response is complete. A deferred handle leaves the
/// connection (the next request gets another): the application holds it
/// until its release, or it is freed now if already released.
fn answered(c: &mut Conn, sh: &mut Shared) {
    c.deferred_wait = false;
    let reply = c.reply;
    if reply.is_null() {
        return;
    }
    // SAFETY: `c.reply` is owned by the connection; no reference to it is
    // alive here.
    let Some(d) = (unsafe { (*reply).deferred }) else {
        return;
    };
    c.reply = std::ptr::null_mut();
    if d.released {
        // SAFETY: a deferred handle in the pool's list; the connection no
        // longer refers to it and the application released it.
        unsafe { sh.replies.free_deferred(reply) };
    }
}

/// The library answers in the application's place (a deferred response
/// released unanswered, or its response timeout): `status` with `body`,
/// the application's headers dropped; `close` adds `Connection: close`.
pub fn answer_instead(c: &mut Conn, sh: &mut Shared, status: u16, body: &[u8], close: bool) {
    // SAFETY: `c.reply` is owned by the connection (the caller checked it
    // is set); no reference to it is alive here.
    let r = unsafe { &mut *c.reply };
    r.status = status;
    r.headers.clear();
    r.app_close |= close;
    let _ = compose(c, sh, body, Body::Full);
}

/// Serialises the `101 Switching Protocols` head of an accepted upgrade
/// (the application's headers, then `Connection: Upgrade` and `Upgrade:
/// protocol`); the connection waits for it to be out, then is handed off.
pub fn compose_upgrade(c: &mut Conn, sh: &mut Shared, protocol: &[u8], upgrade: Upgrade) {
    // SAFETY: as in `compose_head`: the connection's own reply, not
    // borrowed elsewhere while this runs.
    let r: &mut Reply = unsafe { &mut *c.reply };
    r.status = 101;
    let out = c.output.writer(&mut sh.pool);
    let head_start = out.len();
    start_head(out, 101, sh);
    out.extend_from_slice(&r.headers);
    out.extend_from_slice(b"Connection: Upgrade\r\nUpgrade: ");
    out.extend_from_slice(protocol);
    out.extend_from_slice(b"\r\n\r\n");
    r.track.head_bytes = (out.len() - head_start) as u64;
    c.output.sync(&mut sh.queued_output);
    r.phase = Phase::Done;
    c.state = State::Upgrading(upgrade);
    sh.stats.responses += 1;
}

/// Ends the current chunked or streamed response: the last chunk (unless
/// HEAD or HTTP/1.0), the handle done, the connection free for the next
/// request.
pub fn finish_response(c: &mut Conn, sh: &mut Shared, last_chunk: bool) {
    if last_chunk {
        c.output.append(&mut sh.pool, LAST_CHUNK);
    }
    if !c.reply.is_null() {
        // SAFETY: `c.reply` is owned by the connection.
        unsafe { (*c.reply).phase = Phase::Done };
    }
    c.await_next_request();
    c.timer_dirty = true;
    sh.stats.responses += 1;
    answered(c, sh);
}
