//! Moving one connection's bytes: read into its input, write its output,
//! discard input while lingering. Every errno is decided here and comes
//! back as an outcome; the loop closes the connection when told to.

use super::connection::{Conn, State};
use super::error::CloseReason;
use super::first_read::FirstRead;
use super::shared::{Shared, BUFFER_SIZE};
use crate::sys::socket;

/// Input discarded during a lingering close before giving up on the client.
const LINGER_DISCARD_MAX: usize = 1024 * 1024;

pub enum Read {
    /// This many bytes arrived.
    Data(usize),
    /// Nothing more now (EAGAIN), or the peer finished (FIN).
    Nothing,
    /// The buffer is full of a request that is within the limits only in
    /// pieces (e.g. chunk framing): refuse it with 413.
    Full,
    Failed(CloseReason),
}

/// One recv into the connection's input buffer. Inlined into its one
/// caller (the step loop): it runs on every keep-alive request.
#[inline(always)]
pub fn read_some(c: &mut Conn, sh: &mut Shared, first_read: &mut FirstRead) -> Read {
    let max_input = sh.limits.max_header_bytes + sh.limits.max_body_bytes + 2 * BUFFER_SIZE;
    let input = c.input.writer(&mut sh.pool);
    if input.len() == input.capacity() {
        if c.input.read_pos() > 0 {
            c.input.compact();
        } else if c.input.storage().len() < max_input {
            let input = c.input.storage_mut();
            let grow = input.len().min(max_input - input.len()).max(BUFFER_SIZE);
            input.reserve_exact(grow);
        } else {
            return Read::Full;
        }
    }
    if c.input.is_empty() {
        c.request_start_ms = sh.now;
    }
    let fd = c.raw_fd();
    let input = c.input.storage_mut();
    let room = max_input
        .saturating_sub(input.len())
        .max(1)
        .min(input.capacity() - input.len());
    let result = sh.io.recv(fd, input, room);
    if c.socket.first_read_pending {
        c.socket.first_read_pending = false;
        let would_block = matches!(&result, Err(e) if e.raw_os_error() == Some(libc::EAGAIN));
        first_read.record(!would_block);
    }
    match result {
        Ok(0) => {
            c.socket.peer_fin = true;
            c.socket.readable = false;
            Read::Nothing
        }
        Ok(n) => {
            c.bytes_received += n as u64;
            // A short read means the socket was drained: with edge
            // triggering, any later data raises a new event, so the extra
            // recv that would only return EAGAIN is skipped. Not after
            // EPOLLRDHUP: the FIN raised no event of its own, so we must
            // read on until recv returns 0.
            if n < room && !c.socket.rdhup {
                c.socket.readable = false;
            }
            Read::Data(n)
        }
        Err(e) => match e.raw_os_error().unwrap_or(0) {
            libc::EAGAIN => {
                c.socket.readable = false;
                Read::Nothing
            }
            libc::ECONNRESET | libc::EPIPE | libc::ETIMEDOUT => Read::Failed(CloseReason::Reset),
            _ => {
                log::warn!("recv on fd {fd}: {e}");
                Read::Failed(CloseReason::Error)
            }
        },
    }
}

pub enum Flush {
    /// Everything queued is with the kernel.
    Done,
    /// The socket is full; wait for EPOLLOUT.
    Blocked,
    Failed(CloseReason),
}

/// Sends queued output until it is all out, the socket is full, or the
/// connection failed. EPIPE/ECONNRESET mean the peer reset. Copied bytes and
/// a borrowed body go out together in one `sendmsg`; a borrowed body sent
/// to its last byte has its release queued. A file goes out with
/// `sendfile` once the copied bytes are out; one that ends early closes
/// the connection. Storage larger than
/// `output_high_water` is freed as soon as it is sent, and the loop's total
/// of output memory updated.
pub fn flush(c: &mut Conn, sh: &mut Shared) -> Flush {
    let result = if c.output.has_borrowed() {
        send_all(c, sh)
    } else {
        send_copied(c, sh)
    };
    let large = sh.limits.output_high_water.max(4 * BUFFER_SIZE);
    if c.output.copied() == 0 && c.output.capacity() > large {
        // A large body is out: free its storage now rather than when the
        // connection next goes idle. (A stream's refill buffer stays below
        // this and is kept.)
        c.output.release(&mut sh.pool, &mut sh.queued_output);
    }
    c.output.sync(&mut sh.queued_output);
    result
}

/// `flush` when only copied bytes are queued (every keep-alive response
/// answered with `Response_Send`): one `send` per try, with none of the
/// borrowed-body and file cases to look at on the way.
fn send_copied(c: &mut Conn, sh: &mut Shared) -> Flush {
    let fd = c.raw_fd();
    loop {
        if c.output.copied() == 0 {
            return Flush::Done;
        }
        nodelay_before_second_send(c, fd);
        match sh.io.send(fd, c.output.slices().0) {
            Ok(n) => {
                c.bytes_sent += n as u64;
                c.output.consume(n);
                c.timer_dirty = true;
            }
            Err(e) => return send_failed(c, fd, &e, false),
        }
    }
}

/// Counts a send on the connection; before its second one, turns on
/// `TCP_NODELAY`. A second write may meet an unacknowledged first one:
/// without TCP_NODELAY, Nagle would hold it back for a delayed ACK. The
/// first write never waits, so a one-response connection saves the
/// setsockopt.
fn nodelay_before_second_send(c: &mut Conn, fd: std::os::fd::RawFd) {
    if c.sends == 1 {
        socket::set_nodelay(fd);
    }
    c.sends += 1;
}

/// What a failed `send` or `sendfile` (`file`) means for the connection.
#[cold]
fn send_failed(c: &mut Conn, fd: std::os::fd::RawFd, e: &std::io::Error, file: bool) -> Flush {
    match e.raw_os_error().unwrap_or(0) {
        libc::EAGAIN => {
            c.socket.write_blocked = true;
            Flush::Blocked
        }
        libc::EPIPE | libc::ECONNRESET | libc::ETIMEDOUT => Flush::Failed(CloseReason::Reset),
        _ if file => {
            // EIO, EINVAL, ...: the file failed, not the client.
            log::warn!("sendfile to fd {fd}: {e}");
            Flush::Failed(CloseReason::Error)
        }
        _ => {
            log::warn!("send on fd {fd}: {e}");
            Flush::Failed(CloseReason::Error)
        }
    }
}

/// `flush` with a borrowed body or a file queued after the copied bytes.
/// Kept out of line: the keep-alive path (`send_copied`) then runs in a
/// smaller frame.
#[inline(never)]
fn send_all(c: &mut Conn, sh: &mut Shared) -> Flush {
    let fd = c.raw_fd();
    loop {
        if c.output.is_empty() {
            return Flush::Done;
        }
        nodelay_before_second_send(c, fd);
        let file = c.output.file_next();
        let sent = match (file, c.output.slices()) {
            (Some((file, offset, count)), _) => sh.io.send_file(fd, file, offset, count),
            (None, (copied, [])) => sh.io.send(fd, copied),
            (None, ([], lent)) => sh.io.send(fd, lent),
            (None, (copied, lent)) => sh.io.send_two(fd, copied, lent),
        };
        match sent {
            Ok(0) if file.is_some() => {
                // The file ends before the length the head announced (it
                // was truncated while being sent): the response cannot be
                // completed, so the client must see the connection close.
                log::warn!("fd {fd}: file shorter than its Content-Length; closing");
                return Flush::Failed(CloseReason::Error);
            }
            // Every byte sent on this connection, copied, lent or from a
            // file, is counted here.
            Ok(n) => {
                c.bytes_sent += n as u64;
                if let Some(body) = c.output.consume(n) {
                    sh.release_later(body);
                }
                c.timer_dirty = true;
            }
            Err(e) => return send_failed(c, fd, &e, file.is_some()),
        }
    }
}

/// Reads and discards until EAGAIN (None: keep lingering) or until the
/// connection should close (FIN, an error, or the discard limit).
pub fn linger_read(c: &mut Conn, sh: &mut Shared, scratch: &mut Vec<u8>) -> Option<CloseReason> {
    let fd = c.raw_fd();
    let State::Lingering { reason, discarded } = &mut c.state else {
        return None;
    };
    loop {
        scratch.clear();
        match sh.io.recv(fd, scratch, 4096) {
            Ok(0) => return Some(*reason),
            Ok(n) => {
                *discarded += n;
                if *discarded > LINGER_DISCARD_MAX {
                    return Some(*reason);
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                c.socket.readable = false;
                return None;
            }
            Err(_) => return Some(*reason),
        }
    }
}
