//! One client connection's state (muduo's TcpConnection): its buffers,
//! readiness it has been told about, and where it is in the request /
//! response cycle. The event loop in `core.rs` moves it along; nothing here
//! makes a system call.

use std::os::raw::c_void;

use crate::error::ConnectionCloseReason;
use crate::ffi::response::{ConnectionCleanup, ConnectionProducer, Phase, Response};
use crate::http::chunked::ChunkedDecoder;
use crate::http::request::{Head, HeaderSpan};
use crate::slab::Token;
use crate::sys::{Fd, PeerAddr};

/// A pull stream handed over by `Response_Stream`.
pub struct Stream {
    pub producer: ConnectionProducer,
    pub cleanup: ConnectionCleanup,
    pub user: *mut c_void,
    /// The producer returned 0 (or the request was HEAD): no more data.
    pub eof: bool,
    /// Send data without chunk framing (HTTP/1.0: delimited by close).
    pub raw: bool,
}

/// A request whose body is being streamed to the body handler.
pub struct Upload {
    pub head: Head,
    pub headers: Vec<HeaderSpan>,
    /// Content-Length bytes not yet delivered.
    pub remaining: u64,
    pub decoder: ChunkedDecoder,
    /// Chunked body finished: raw bytes left between the head and the next
    /// request once the last decoded piece is removed.
    pub raw_done: Option<usize>,
    /// Body bytes delivered so far (capped by max_body_bytes).
    pub delivered: u64,
    pub id: u64,
}

pub struct Conn {
    pub token: Token,
    pub fd: Fd,
    pub peer: PeerAddr,
    /// Received bytes; `input[consumed..]` is not yet processed.
    pub input: Vec<u8>,
    pub consumed: usize,
    /// Queued output; `output[sent..]` is not yet accepted by the kernel.
    pub output: Vec<u8>,
    pub sent: usize,
    /// Edge-triggered readiness we have not yet read to EAGAIN.
    pub readable: bool,
    /// The next read is the one tried right after accept; its outcome is
    /// reported to `FirstRead`.
    pub first_read_pending: bool,
    /// The last send hit EAGAIN; wait for EPOLLOUT.
    pub write_blocked: bool,
    /// recv returned 0: the peer will send nothing more.
    pub peer_fin: bool,
    /// In the epoll set (a new client is first run without it).
    pub registered: bool,
    /// epoll reported EPOLLRDHUP: a FIN is queued behind any unread data.
    pub rdhup: bool,
    /// send calls made so far (TCP_NODELAY is set before the second).
    pub sends: u32,
    /// Close (with this reason) once the current response is flushed.
    pub close_after: Option<ConnectionCloseReason>,
    /// Half-closed by us; discarding input until FIN or the linger timer.
    pub lingering: Option<ConnectionCloseReason>,
    pub linger_discarded: usize,
    /// The response handle for this connection's current request (allocated
    /// once per connection slot and reused).
    pub resp: *mut Response,
    pub stream: Option<Stream>,
    /// Decoder state of a chunked body being received.
    pub chunked: Option<ChunkedDecoder>,
    /// A streamed body in progress (boxed: rare, and an idle connection
    /// should stay small).
    pub upload: Option<Box<Upload>>,
    /// `100 Continue` already sent for the request being received.
    pub sent_continue: bool,
    /// When the current request's first byte (or the connection) arrived.
    pub request_start_ms: u64,
    /// The head of the request being received is complete (body pending).
    pub awaiting_body: bool,
    pub requests_served: u64,
    /// Something happened that restarts the current timer (bytes sent,
    /// a request completed).
    pub timer_dirty: bool,
}

impl Conn {
    pub fn new(token: Token, fd: Fd, peer: PeerAddr, now: u64) -> Conn {
        Conn {
            token,
            fd,
            peer,
            input: Vec::new(),
            consumed: 0,
            output: Vec::new(),
            sent: 0,
            readable: true,
            first_read_pending: false,
            write_blocked: false,
            peer_fin: false,
            registered: false,
            rdhup: false,
            sends: 0,
            close_after: None,
            lingering: None,
            linger_discarded: 0,
            resp: std::ptr::null_mut(),
            stream: None,
            chunked: None,
            upload: None,
            sent_continue: false,
            request_start_ms: now,
            awaiting_body: false,
            requests_served: 0,
            timer_dirty: true,
        }
    }

    pub fn pending_output(&self) -> usize {
        self.output.len() - self.sent
    }

    pub fn unprocessed_input(&self) -> usize {
        self.input.len() - self.consumed
    }

    /// Where the connection's response handle is (`Done` when it has none).
    pub(crate) fn response_phase(&self) -> Phase {
        if self.resp.is_null() {
            Phase::Done
        } else {
            // SAFETY: a non-NULL `resp` came from Box::into_raw and is owned
            // by this connection until it closes.
            unsafe { (*self.resp).phase }
        }
    }

    /// A response is in progress: the handler's, an open chunked one, or a
    /// stream. No new request starts meanwhile.
    pub fn responding(&self) -> bool {
        self.stream.is_some() || self.response_phase() != Phase::Done
    }
}

#[cfg(test)]
mod tests {
    /// An idle connection costs its `Conn` (plus the kernel's socket): keep
    /// it well under the 1 KiB per idle connection budget, slab slack included.
    #[test]
    fn conn_stays_small() {
        let size = std::mem::size_of::<super::Conn>();
        assert!(size <= 320, "Conn grew to {size} bytes");
    }
}
