//! One client connection (muduo's TcpConnection): its socket, buffers,
//! what the socket has told us, and an explicit `State` for where it is in
//! the request/response cycle. The event loop moves it along; nothing here
//! makes a system call.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::raw::c_void;

use super::buffer::Buffer;
use super::error::CloseReason;
use super::output::Output;
use super::reply::Reply;
use super::slab::Token;
use super::upgrade::Upgrade;
use crate::http::chunked::ChunkedDecoder;
use crate::http::request::{Head, HeaderSpan};
use crate::sys::PeerAddr;

/// Body producer of a pull stream (C calling convention: the application
/// supplies it). Returns bytes written into `buf` (<= `cap`), 0 at the end,
/// negative on error.
pub type ProducerFn = unsafe extern "C" fn(user: *mut c_void, buf: *mut u8, cap: usize) -> isize;
/// Called once when a stream ends, with `CloseReason::number()`.
pub type CleanupFn = unsafe extern "C" fn(user: *mut c_void, reason: i32);

/// A pull stream handed over by the application.
pub struct Stream {
    pub producer: ProducerFn,
    pub cleanup: Option<CleanupFn>,
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
    pub wait: BodyWait,
}

/// A request whose head is in and whose buffered body is still arriving.
#[derive(Default)]
pub struct BodyWait {
    /// Waiting for more of the body (the body timer runs).
    pub awaiting: bool,
    /// `100 Continue` already sent.
    pub sent_continue: bool,
    /// Decoder state of a chunked body.
    pub chunked: Option<ChunkedDecoder>,
}

/// Where a connection is in the request/response cycle.
pub enum State {
    /// Waiting for, or parsing, the next request; `Some` once its head is in
    /// and a buffered body is still arriving.
    Receiving(Option<Box<BodyWait>>),
    /// A request body is being streamed to the body handler.
    Uploading(Box<Upload>),
    /// The application answers: its handler is running, it deferred the
    /// response (`Response_Defer`) and answers later, or it holds an open
    /// chunked response. No new request starts meanwhile.
    Answering,
    /// A pull stream feeds the output.
    Streaming(Stream),
    /// The application accepted a protocol upgrade: the 101 head is being
    /// sent; once it is out the connection leaves the loop for the
    /// application. Nothing more is read meanwhile.
    Upgrading(Upgrade),
    /// Half-closed by us after the last response: discarding input until
    /// the client's FIN or the linger timer.
    Lingering {
        reason: CloseReason,
        discarded: usize,
    },
}

/// What the socket has reported (edge-triggered readiness is remembered
/// here until it is used up).
#[derive(Clone, Copy, Default)]
pub struct SocketFlags {
    /// Readiness not yet read to EAGAIN.
    pub readable: bool,
    /// The last send hit EAGAIN; wait for EPOLLOUT.
    pub write_blocked: bool,
    /// recv returned 0: the peer will send nothing more.
    pub peer_fin: bool,
    /// epoll reported EPOLLRDHUP: a FIN is queued behind any unread data.
    pub rdhup: bool,
    /// In the epoll set (a new client is first run without it).
    pub registered: bool,
    /// The next read is the one tried right after accept; its outcome is
    /// reported to `FirstRead`.
    pub first_read_pending: bool,
}

pub struct Conn {
    pub token: Token,
    pub fd: OwnedFd,
    pub peer: PeerAddr,
    pub input: Buffer,
    /// What is still to send: copied bytes, then perhaps a borrowed body.
    pub output: Output,
    pub socket: SocketFlags,
    /// send calls made so far (TCP_NODELAY is set before the second).
    pub sends: u32,
    pub state: State,
    /// Close (with this reason) once the current response is out; no new
    /// request starts.
    pub close_after: Option<CloseReason>,
    /// The handle the application answers through (allocated once per
    /// connection and reused); NULL until the first request.
    pub reply: *mut Reply,
    /// When the current request's first byte (or the connection) arrived.
    pub request_start_ms: u64,
    pub requests_served: u64,
    /// Something happened that restarts the current timer (bytes sent,
    /// a request completed).
    pub timer_dirty: bool,
    /// In `Shared::room_waiters`: waiting for the loop's queued output to
    /// fall below its bound before starting a request.
    pub waiting_room: bool,
    /// The handler returned after `Response_Defer` and the application has
    /// not begun its answer: the response timer runs, and the client is
    /// read up to `max_header_bytes` (then not at all) meanwhile.
    pub deferred_wait: bool,
    /// A completion record is open for the request being answered
    /// (`completion.rs`): no new request starts until it is finished.
    pub record_open: bool,
    /// Bytes received and sent over the connection's life, and where in
    /// the received bytes the current request starts: completion records.
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub rx_start: u64,
}

impl Conn {
    pub fn new(token: Token, fd: OwnedFd, peer: PeerAddr, now: u64) -> Conn {
        Conn {
            token,
            fd,
            peer,
            input: Buffer::default(),
            output: Output::default(),
            socket: SocketFlags {
                readable: true,
                ..SocketFlags::default()
            },
            sends: 0,
            state: State::Receiving(None),
            close_after: None,
            reply: std::ptr::null_mut(),
            request_start_ms: now,
            requests_served: 0,
            timer_dirty: true,
            waiting_room: false,
            deferred_wait: false,
            record_open: false,
            bytes_received: 0,
            bytes_sent: 0,
            rx_start: 0,
        }
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// A response is in progress (the handler's, an open chunked one, a
    /// stream, or a 101 before the hand-off): no new request starts meanwhile.
    pub fn responding(&self) -> bool {
        matches!(
            self.state,
            State::Answering | State::Streaming(_) | State::Upgrading(_)
        )
    }

    /// The head of a request is in and its buffered body is still arriving.
    pub fn awaiting_body(&self) -> bool {
        match &self.state {
            State::Receiving(Some(wait)) => wait.awaiting,
            State::Uploading(up) => up.wait.awaiting,
            _ => false,
        }
    }

    pub fn lingering(&self) -> Option<CloseReason> {
        match self.state {
            State::Lingering { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// Back to waiting for the next request.
    pub fn await_next_request(&mut self) {
        self.state = State::Receiving(None);
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
