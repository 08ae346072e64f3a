//! Drives the real connection state machine from memory: scripted input
//! pieces in, response bytes out, no socket. Used by the split-anywhere
//! tests and the fuzz targets; not part of the C API.
#![doc(hidden)]

use std::os::raw::c_void;

use crate::ffi::connection::{body_fn, request_fn, ConnectionBodyHandler, ConnectionHandler};
use crate::ffi::error::ConnectionCloseReason;
use crate::ffi::request::*;
use crate::ffi::response::*;
use crate::ffi::stats::ConnectionStats;
use crate::reactor::acceptor::Acceptor;
use crate::reactor::event_loop::LISTENER;
use crate::reactor::io::{Io, Memory};
use crate::reactor::slab::Token;
use crate::reactor::{EventLoop, Limits, LoopPtr};
use crate::sys::{AsRawFd, EventFd, PeerAddr, Poller};

/// An event loop with no listener whose connections live in `memory`, and
/// whose clock moves only through `advance_clock`.
pub struct MemoryLoop {
    lp: LoopPtr,
    memory: Memory,
}

impl MemoryLoop {
    pub fn new(limits: Limits, memory: Memory) -> MemoryLoop {
        memory.clock_ms.set(1_000_000);
        let poller = Poller::new(16).expect("epoll");
        let wakers = (
            EventFd::new().expect("eventfd"),
            EventFd::new().expect("eventfd"),
        );
        let el = EventLoop::build(
            limits,
            poller,
            Acceptor::none(LISTENER.0),
            wakers,
            Io::Memory(memory.clone()),
        );
        // SAFETY: `build` returns its allocation's pointer; freed only in Drop.
        let lp = unsafe { LoopPtr::new(el) }.expect("non-null");
        MemoryLoop { lp, memory }
    }

    pub fn set_handlers(
        &self,
        handler: ConnectionHandler,
        body: Option<(ConnectionBodyHandler, usize)>,
    ) {
        self.lp.with(|el| {
            let mut h = el.handlers();
            h.request = request_fn(handler);
            if let Some((body, above)) = body {
                h.body = body_fn(body);
                h.stream_above = above;
            }
            el.set_handlers(h);
        });
    }

    /// Adds a connection; returns its token and the descriptor number under
    /// which its `MemorySocket` is to be found.
    pub fn attach(&self) -> (Token, i32) {
        let fd = EventFd::new().expect("eventfd").into_fd();
        let raw = fd.as_raw_fd();
        self.memory.sockets.borrow_mut().entry(raw).or_default();
        let token = self.lp.with(|el| {
            let token = el.register(fd, PeerAddr::unspecified());
            el.ready.clear();
            if let Some(c) = el.conns.get_mut(token) {
                c.socket.readable = true;
                c.socket.first_read_pending = false;
            }
            token
        });
        (token, raw)
    }

    /// Tells a connection it is readable and writable, and runs it.
    pub fn pump(&self, token: Token) {
        let open = self.lp.with(|el| match el.conns.get_mut(token) {
            Some(c) => {
                c.socket.readable = true;
                c.socket.write_blocked = false;
                true
            }
            None => false,
        });
        if open {
            self.lp.drive(token);
        }
    }

    /// Moves the clock on and expires timers.
    pub fn advance_clock(&self, ms: u64) {
        self.memory.clock_ms.set(self.memory.clock_ms.get() + ms);
        self.lp.with(|el| {
            el.sh.tick();
            el.expire_timers();
        });
        self.lp.run_cleanups();
    }

    pub fn is_open(&self, token: Token) -> bool {
        self.lp.with(|el| el.is_open(token))
    }

    pub fn stats(&self) -> ConnectionStats {
        self.lp.with(|el| el.stats()).into()
    }
}

impl Drop for MemoryLoop {
    fn drop(&mut self) {
        // SAFETY: made from Box::into_raw in `new`; not used afterwards.
        unsafe { self.lp.destroy() };
    }
}

/// What one scripted exchange produced.
#[derive(Debug, Default)]
pub struct Outcome {
    pub sent: Vec<u8>,
    /// The core closed the connection by itself (before teardown).
    pub closed: bool,
    pub shut_write: bool,
    pub stats: ConnectionStats,
}

/// A small application with the example server's routes:
/// `/` hello, `/echo` the body back, `/chunked` three chunks,
/// `/stream?size=N` a pull stream of N bytes, `/head` headers echoed,
/// anything else 404.
pub unsafe extern "C" fn reference_handler(
    req: *const Request,
    resp: *mut Response,
    _user: *mut c_void,
) {
    // SAFETY: the library passes live pointers for the duration of the call.
    unsafe {
        let mut len = 0usize;
        let path = Request_Path(req, &mut len);
        let path = std::slice::from_raw_parts(path as *const u8, len);
        Response_AddHeader(resp, c"Content-Type".as_ptr(), c"text/plain".as_ptr());
        match path {
            b"/" => {
                Response_Send(resp, b"Hello, World!".as_ptr() as *const c_void, 13);
            }
            b"/echo" => {
                let mut n = 0usize;
                let body = Request_Body(req, &mut n);
                Response_Send(resp, body as *const c_void, n);
            }
            b"/chunked" => {
                Response_BeginChunked(resp);
                for piece in [&b"one "[..], b"two ", b"three"] {
                    Response_WriteChunk(resp, piece.as_ptr() as *const c_void, piece.len());
                }
                Response_End(resp);
            }
            b"/stream" => {
                let mut qlen = 0usize;
                let q = Request_Query(req, &mut qlen);
                let q = std::slice::from_raw_parts(q as *const u8, qlen);
                let size = q
                    .strip_prefix(b"size=")
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(1000)
                    .min(1 << 20);
                let state = Box::into_raw(Box::new(size));
                if Response_Stream(resp, Some(produce), Some(release), state as *mut c_void) != 0 {
                    drop(Box::from_raw(state));
                }
            }
            b"/upload" => {
                // Streamed bodies were collected by `collect_body`.
                let id = Request_Id(req);
                let got = UPLOADS
                    .with(|u| u.borrow_mut().remove(&id))
                    .unwrap_or_default();
                let mut n = 0usize;
                Request_Body(req, &mut n);
                // The header count: a streamed request keeps its headers.
                let text = format!(
                    "streamed {} buffered {n} sum {} headers {}",
                    got.len(),
                    checksum(&got),
                    Request_HeaderCount(req)
                );
                Response_Send(resp, text.as_ptr() as *const c_void, text.len());
            }
            b"/head" => {
                let mut out = Vec::new();
                for i in 0..Request_HeaderCount(req) {
                    let (mut name, mut value) = (std::ptr::null(), std::ptr::null());
                    let (mut nl, mut vl) = (0usize, 0usize);
                    Request_HeaderAt(req, i, &mut name, &mut nl, &mut value, &mut vl);
                    out.extend_from_slice(std::slice::from_raw_parts(name as *const u8, nl));
                    out.extend_from_slice(b"=");
                    out.extend_from_slice(std::slice::from_raw_parts(value as *const u8, vl));
                    out.extend_from_slice(b"\n");
                }
                Response_Send(resp, out.as_ptr() as *const c_void, out.len());
            }
            b"/read-after-send" => {
                // The request stays readable for the whole handler call,
                // also after the response is sent (the loop was borrowed
                // meanwhile: under Miri this checks the view survives it).
                Response_Send(resp, b"sent".as_ptr() as *const c_void, 4);
                let mut n = 0usize;
                let host = Request_Header(req, c"Host".as_ptr(), &mut n);
                let host = std::slice::from_raw_parts(host as *const u8, n);
                let method = Request_Method(req, &mut n);
                let method = std::slice::from_raw_parts(method as *const u8, n);
                if host != b"a" || method != b"GET" {
                    std::process::abort();
                }
            }
            _ => {
                Response_SetStatus(resp, 404);
                Response_Send(resp, b"Not Found".as_ptr() as *const c_void, 9);
            }
        }
    }
}

thread_local! {
    /// Streamed body pieces per request id (harness only).
    static UPLOADS: std::cell::RefCell<std::collections::HashMap<u64, Vec<u8>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

pub fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Body handler collecting streamed pieces; a piece containing "REFUSE"
/// is refused with 415.
pub unsafe extern "C" fn collect_body(
    req: *const Request,
    data: *const u8,
    len: usize,
    _user: *mut c_void,
) -> std::os::raw::c_int {
    // SAFETY: the library passes a live request and `len` readable bytes.
    let (id, piece) = unsafe { (Request_Id(req), std::slice::from_raw_parts(data, len)) };
    if piece.windows(6).any(|w| w == b"REFUSE") {
        return 415;
    }
    UPLOADS.with(|u| {
        u.borrow_mut()
            .entry(id)
            .or_default()
            .extend_from_slice(piece)
    });
    0
}

unsafe extern "C" fn produce(user: *mut c_void, buf: *mut u8, cap: usize) -> isize {
    // SAFETY: `user` is the Box<usize> made by the handler; `buf` has `cap` bytes.
    unsafe {
        let left = &mut *(user as *mut usize);
        let n = (*left).min(cap).min(777);
        for i in 0..n {
            *buf.add(i) = b'a' + (i % 26) as u8;
        }
        *left -= n;
        n as isize
    }
}

unsafe extern "C" fn release(user: *mut c_void, _reason: ConnectionCloseReason) {
    // SAFETY: made by Box::into_raw in the handler; cleanup runs once.
    drop(unsafe { Box::from_raw(user as *mut usize) });
}

/// Feeds `pieces` one recv at a time (pumping after each), then FIN if
/// `fin`, lets timers run out, and returns what the client saw. `send_cap`
/// limits how much one send accepts (0 = unlimited), to exercise partial
/// writes and EAGAIN.
pub fn run_exchange(limits: Limits, pieces: &[&[u8]], fin: bool, send_cap: usize) -> Outcome {
    run_exchange_with(limits, pieces, fin, send_cap, None)
}

/// `run_exchange`, with request bodies over `stream_above` bytes (and all
/// chunked ones) streamed to `collect_body` when `stream_above` is Some.
pub fn run_exchange_with(
    limits: Limits,
    pieces: &[&[u8]],
    fin: bool,
    send_cap: usize,
    stream_above: Option<usize>,
) -> Outcome {
    let body = stream_above.map(|above| {
        (
            Some(collect_body as unsafe extern "C" fn(_, _, _, _) -> _),
            above,
        )
    });
    exchange(limits, Some(reference_handler), body, pieces, fin, send_cap)
}

/// `run_exchange` with the application's own request handler instead of
/// `reference_handler`.
pub fn run_exchange_handled(
    limits: Limits,
    handler: ConnectionHandler,
    pieces: &[&[u8]],
    fin: bool,
    send_cap: usize,
) -> Outcome {
    exchange(limits, handler, None, pieces, fin, send_cap)
}

fn exchange(
    limits: Limits,
    handler: ConnectionHandler,
    body: Option<(ConnectionBodyHandler, usize)>,
    pieces: &[&[u8]],
    fin: bool,
    send_cap: usize,
) -> Outcome {
    let memory = Memory::default();
    let ml = MemoryLoop::new(limits, memory.clone());
    ml.set_handlers(handler, body);
    let (token, fd) = ml.attach();
    memory.sockets.borrow_mut().get_mut(&fd).unwrap().send_cap = send_cap;
    for piece in pieces {
        memory
            .sockets
            .borrow_mut()
            .get_mut(&fd)
            .unwrap()
            .pending
            .push_back(piece.to_vec());
        ml.pump(token);
        // A capped sender needs several writable turns to drain: pump
        // while output keeps moving.
        for _ in 0..4096 {
            let before = memory.sockets.borrow()[&fd].sent.len();
            if !ml.is_open(token) || before == 0 && send_cap == 0 {
                break;
            }
            ml.pump(token);
            if memory.sockets.borrow()[&fd].sent.len() == before {
                break;
            }
        }
    }
    if fin {
        memory.sockets.borrow_mut().get_mut(&fd).unwrap().fin = true;
    }
    for _ in 0..64 {
        if !ml.is_open(token) {
            break;
        }
        ml.pump(token);
    }
    let closed = !ml.is_open(token);
    let stats = ml.stats();
    drop(ml);
    let sockets = memory.sockets.borrow();
    let s = &sockets[&fd];
    Outcome {
        sent: s.sent.clone(),
        closed,
        shut_write: s.shut_write,
        stats,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(
        miri,
        ignore = "minutes under Miri; the other exchanges cover the same paths"
    )]
    fn streamed_bodies_arrive_whole_in_order() {
        let body: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        let mut chunked =
            b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for part in body.chunks(777) {
            chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
            chunked.extend_from_slice(part);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let mut length = format!(
            "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        length.extend_from_slice(&body);
        let small = b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
        let mut stream = chunked.clone();
        stream.extend_from_slice(&length);
        stream.extend_from_slice(small);
        stream.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let want_big = format!(
            "streamed {} buffered 0 sum {} headers 2",
            body.len(),
            checksum(&body)
        );
        for split in [1usize, 7, 100, 4096, stream.len()] {
            let pieces: Vec<&[u8]> = stream.chunks(split).collect();
            let out = run_exchange_with(Limits::default(), &pieces, false, 0, Some(10));
            let text = String::from_utf8_lossy(&out.sent);
            assert_eq!(text.matches(&want_big).count(), 2, "split {split}: {text}");
            assert!(
                text.contains("streamed 0 buffered 5"),
                "split {split}: {text}"
            );
            assert!(text.ends_with("Hello, World!"), "split {split}: {text}");
        }
        let refused =
            b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\n0123REFUSE0123456789";
        let out = run_exchange_with(Limits::default(), &[refused], false, 0, Some(10));
        assert!(String::from_utf8_lossy(&out.sent).starts_with("HTTP/1.1 415 "));
        let limits = Limits {
            max_body_bytes: 1000,
            ..Limits::default()
        };
        let pieces: Vec<&[u8]> = chunked.chunks(100).collect();
        let out = run_exchange_with(limits, &pieces, false, 0, Some(10));
        assert!(String::from_utf8_lossy(&out.sent).starts_with("HTTP/1.1 413 "));
    }

    /// The loop's one request view is shared by its connections: a
    /// streamed upload whose body arrives after another connection's
    /// request was parsed is still dispatched with its own head.
    #[test]
    fn streamed_upload_keeps_its_head_across_connections() {
        let memory = Memory::default();
        let ml = MemoryLoop::new(Limits::default(), memory.clone());
        let body = Some((
            Some(collect_body as unsafe extern "C" fn(_, _, _, _) -> _),
            10,
        ));
        ml.set_handlers(Some(reference_handler), body);
        let (a, fa) = ml.attach();
        let (b, fb) = ml.attach();
        let feed = |token: Token, fd: i32, bytes: &[u8]| {
            let mut sockets = memory.sockets.borrow_mut();
            sockets
                .get_mut(&fd)
                .unwrap()
                .pending
                .push_back(bytes.to_vec());
            drop(sockets);
            ml.pump(token);
        };
        feed(
            a,
            fa,
            b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\n0123456789",
        );
        feed(
            b,
            fb,
            b"GET /head?x=1 HTTP/1.1\r\nHost: b\r\nX-Other: y\r\n\r\n",
        );
        feed(a, fa, b"abcdefghij");
        let sockets = memory.sockets.borrow();
        let got_b = String::from_utf8_lossy(&sockets[&fb].sent);
        assert!(got_b.ends_with("Host=b\nX-Other=y\n"), "{got_b}");
        let got_a = String::from_utf8_lossy(&sockets[&fa].sent);
        let want = format!(
            "streamed 20 buffered 0 sum {} headers 2",
            checksum(b"0123456789abcdefghij")
        );
        assert!(got_a.ends_with(&want), "{got_a}");
    }

    #[test]
    fn request_is_readable_after_responding() {
        let out = run_exchange(
            Limits::default(),
            &[b"GET /read-after-send HTTP/1.1\r\nHost: a\r\n\r\n"],
            false,
            0,
        );
        assert!(
            out.sent.ends_with(b"\r\n\r\nsent"),
            "{:?}",
            String::from_utf8_lossy(&out.sent)
        );
    }

    #[test]
    fn pipelined_requests_in_memory() {
        let out = run_exchange(
            Limits::default(),
            &[b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /chunked HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"],
            false,
            7,
        );
        let text = String::from_utf8_lossy(&out.sent);
        assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 3, "{text}");
        assert!(text.contains("Hello, World!"));
        assert!(text.contains("\r\n\r\nabc"));
        assert!(
            text.ends_with(
                "00000004\r\none \r\n00000004\r\ntwo \r\n00000005\r\nthree\r\n0\r\n\r\n"
            ),
            "{text}"
        );
        // Nothing unread: closed at once, without a lingering half-close.
        assert!(out.closed && !out.shut_write);
    }
}
