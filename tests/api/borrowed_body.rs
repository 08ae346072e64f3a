//! `Response_SendBorrowed`: a lent body goes out uncopied, in order, and its
//! release is called exactly once, whatever ends it: the last byte sent,
//! HEAD (no body), the client gone mid-body, a send timeout, or
//! `Connection_Destroy` with the body still queued. On an error the release
//! is never called. Driven from memory (`MemoryLoop`: partial writes,
//! EAGAIN, EPIPE on demand), plus one real socket for `Connection_Destroy`.

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::raw::c_void;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use connection_core::harness::MemoryLoop;
use connection_core::reactor::io::Memory;
use connection_core::reactor::slab::Token;
use connection_core::*;

const BODY_LEN: usize = 300_000;

thread_local! {
    /// Release calls seen on this test's thread (each test drives its own
    /// loop on its own thread).
    static RELEASES: Cell<usize> = const { Cell::new(0) };
    /// What the second Response_SendBorrowed of /twice returned.
    static SECOND: Cell<i32> = const { Cell::new(0) };
}

/// The lent body: byte i is `i % 251`, so order and completeness show.
fn body() -> &'static [u8] {
    thread_local! {
        static BODY: &'static [u8] =
            Box::leak((0..BODY_LEN).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into_boxed_slice());
    }
    BODY.with(|b| *b)
}

const TAG: usize = 0x5eed;

unsafe extern "C" fn count_release(user: *mut c_void) {
    assert_eq!(user as usize, TAG, "release got another user pointer");
    RELEASES.with(|r| r.set(r.get() + 1));
}

fn releases() -> usize {
    RELEASES.with(|r| r.get())
}

/// `/big` lends `body()`; `/twice` answers twice (the second must fail and
/// never be released); anything else is a copied "small".
unsafe extern "C" fn handler(req: *const Request, resp: *mut Response, _user: *mut c_void) {
    // SAFETY: the library passes live pointers for the duration of the call.
    unsafe {
        let mut len = 0usize;
        let path = Request_Path(req, &mut len);
        let path = std::slice::from_raw_parts(path as *const u8, len);
        let b = body();
        match path {
            b"/big" => {
                let rc = Response_SendBorrowed(
                    resp,
                    b.as_ptr() as *const c_void,
                    b.len(),
                    Some(count_release),
                    TAG as *mut c_void,
                );
                assert_eq!(rc, CONNECTION_OK);
            }
            b"/twice" => {
                let first = Response_Send(resp, b"one".as_ptr() as *const c_void, 3);
                assert_eq!(first, CONNECTION_OK);
                let second = Response_SendBorrowed(
                    resp,
                    b.as_ptr() as *const c_void,
                    b.len(),
                    Some(count_release),
                    TAG as *mut c_void,
                );
                SECOND.with(|s| s.set(second));
            }
            _ => {
                Response_Send(resp, b"small".as_ptr() as *const c_void, 5);
            }
        }
    }
}

struct Harness {
    ml: MemoryLoop,
    memory: Memory,
    token: Token,
    fd: i32,
}

impl Harness {
    fn new(send_cap: usize) -> Harness {
        RELEASES.with(|r| r.set(0));
        let memory = Memory::default();
        let limits = config::Limits {
            send_timeout_ms: 1000,
            ..config::Limits::default()
        };
        let ml = MemoryLoop::new(limits, memory.clone());
        ml.set_handlers(Some(handler), None);
        let (token, fd) = ml.attach();
        memory.sockets.borrow_mut().get_mut(&fd).unwrap().send_cap = send_cap;
        Harness {
            ml,
            memory,
            token,
            fd,
        }
    }

    fn send(&self, bytes: &[u8]) {
        self.socket(|s| s.pending.push_back(bytes.to_vec()));
        self.ml.pump(self.token);
    }

    fn socket<R>(&self, f: impl FnOnce(&mut connection_core::reactor::io::MemorySocket) -> R) -> R {
        f(self.memory.sockets.borrow_mut().get_mut(&self.fd).unwrap())
    }

    fn sent(&self) -> Vec<u8> {
        self.socket(|s| s.sent.clone())
    }

    /// Pumps until nothing more is sent (bounded).
    fn pump_out(&self) {
        for _ in 0..100_000 {
            let before = self.sent().len();
            self.ml.pump(self.token);
            if self.sent().len() == before {
                return;
            }
        }
        panic!("output never stopped");
    }
}

fn head_end(bytes: &[u8]) -> usize {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4
}

#[test]
fn completed_body_is_sent_whole_in_order_and_released_once() {
    // Small sends: the head and the start of the body share sendmsg calls,
    // and the body ends in the middle of one.
    let h = Harness::new(7_777);
    h.socket(|s| s.window = Some(BODY_LEN / 2));
    h.send(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\nGET /small HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(h.sent().len(), BODY_LEN / 2);
    assert_eq!(releases(), 0, "released before the body was sent");
    h.socket(|s| s.window = None);
    h.pump_out();
    let sent = h.sent();
    let text = String::from_utf8_lossy(&sent[..head_end(&sent)]).into_owned();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.contains(&format!("Content-Length: {BODY_LEN}\r\n")),
        "{text}"
    );
    let start = head_end(&sent);
    assert_eq!(
        &sent[start..start + BODY_LEN],
        body(),
        "the lent body, byte for byte"
    );
    // The pipelined request's response comes only after the whole body.
    let rest = &sent[start + BODY_LEN..];
    assert!(
        rest.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{:?}",
        String::from_utf8_lossy(rest)
    );
    assert!(
        rest.ends_with(b"\r\n\r\nsmall"),
        "{:?}",
        String::from_utf8_lossy(rest)
    );
    assert_eq!(releases(), 1);
    assert!(h.ml.is_open(h.token), "keep-alive");
    drop(h);
    assert_eq!(releases(), 1, "released again at Destroy");
}

#[test]
fn head_sends_no_body_and_still_releases_once() {
    let h = Harness::new(0);
    h.send(b"HEAD /big HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(releases(), 1, "HEAD: released when the handler returned");
    h.pump_out();
    let sent = h.sent();
    assert_eq!(head_end(&sent), sent.len(), "no body after a HEAD response");
    assert!(String::from_utf8_lossy(&sent).contains(&format!("Content-Length: {BODY_LEN}\r\n")));
    drop(h);
    assert_eq!(releases(), 1);
}

#[test]
fn client_gone_mid_body_releases_once() {
    let h = Harness::new(10_000);
    h.socket(|s| s.window = Some(100_000));
    h.send(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n");
    h.ml.pump(h.token);
    assert_eq!(h.sent().len(), 100_000, "part of the body went out");
    assert_eq!(releases(), 0);
    // The peer resets: the next send fails with EPIPE.
    h.socket(|s| {
        s.window = None;
        s.closed = true;
    });
    h.ml.pump(h.token);
    assert!(!h.ml.is_open(h.token), "closed after EPIPE");
    assert_eq!(releases(), 1);
    assert_eq!(h.ml.stats().closed_reset, 1);
    drop(h);
    assert_eq!(releases(), 1, "released again at Destroy");
}

#[test]
fn send_timeout_releases_once() {
    let h = Harness::new(10_000);
    h.socket(|s| s.window = Some(50_000));
    h.send(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n");
    h.ml.pump(h.token);
    assert_eq!(h.sent().len(), 50_000);
    h.ml.advance_clock(999);
    assert!(h.ml.is_open(h.token));
    assert_eq!(releases(), 0);
    h.ml.advance_clock(2);
    assert!(!h.ml.is_open(h.token), "send timeout");
    assert_eq!(releases(), 1);
    drop(h);
    assert_eq!(releases(), 1);
}

#[test]
fn destroy_with_the_body_queued_releases_once() {
    let h = Harness::new(10_000);
    h.socket(|s| s.blocked_sends = usize::MAX);
    h.send(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(h.sent().len(), 0);
    assert_eq!(releases(), 0);
    drop(h);
    assert_eq!(releases(), 1, "Destroy released the queued body");
}

#[test]
fn a_failed_call_never_releases() {
    let h = Harness::new(0);
    h.send(b"GET /twice HTTP/1.1\r\nHost: a\r\n\r\n");
    h.pump_out();
    assert_eq!(SECOND.with(|s| s.get()), CONNECTION_ERR_STATE);
    assert!(h.sent().ends_with(b"\r\n\r\none"));
    drop(h);
    assert_eq!(releases(), 0, "a body whose call failed is never released");
    // SAFETY: NULL response and NULL body are documented to be refused.
    unsafe {
        assert_eq!(
            Response_SendBorrowed(null_mut(), null_mut(), 0, Some(count_release), null_mut()),
            CONNECTION_ERR_NULL
        );
        assert_eq!(
            Response_SendBorrowed(null_mut(), std::ptr::null(), 5, None, null_mut()),
            CONNECTION_ERR_NULL
        );
    }
    assert_eq!(releases(), 0);
}

// ---- a real socket: Connection_Destroy with a lent body still queued ----

/// 16 MiB: more than loopback's send buffer takes, so most stays queued.
const REAL_LEN: usize = 16 << 20;
static REAL_RELEASES: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn free_release(user: *mut c_void) {
    // SAFETY: `user` is the Box<Vec<u8>> leaked by `real_handler`.
    drop(unsafe { Box::from_raw(user as *mut Vec<u8>) });
    REAL_RELEASES.fetch_add(1, Ordering::SeqCst);
}

unsafe extern "C" fn real_handler(_req: *const Request, resp: *mut Response, _user: *mut c_void) {
    let body = Box::new(vec![b'x'; REAL_LEN]);
    let (ptr, len) = (body.as_ptr(), body.len());
    let user = Box::into_raw(body) as *mut c_void;
    // SAFETY: live handle; the Vec lives until free_release.
    let rc =
        unsafe { Response_SendBorrowed(resp, ptr as *const c_void, len, Some(free_release), user) };
    assert_eq!(rc, CONNECTION_OK);
}

#[test]
fn connection_destroy_releases_a_queued_body_once() {
    let mut conn = Connection {
        _private_core: null_mut(),
        _private_stop_fd: -1,
        _private_magic: 0,
    };
    let cfg = ConnectionConfig {
        host: c"127.0.0.1".as_ptr(),
        port: 0,
        ..ConnectionConfig::default()
    };
    // SAFETY: valid pointers to live locals; used from this thread only.
    unsafe {
        assert_eq!(Connection_InitWith(&mut conn, &cfg), CONNECTION_OK);
        assert_eq!(
            Connection_SetHandler(&mut conn, Some(real_handler), null_mut()),
            0
        );
    }
    // SAFETY: live connection.
    let port = unsafe { Connection_Port(&conn) } as u16;
    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect("send request");
    client.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    // Read the first bytes, then stop reading: the rest stays queued.
    while got < 64 * 1024 {
        assert!(Instant::now() < deadline, "no response within 10 s");
        // SAFETY: live connection, this thread only.
        assert!(unsafe { Connection_ProcessTimeout(&mut conn, 10) } >= 0);
        match client.read(&mut buf) {
            Ok(0) => panic!("server closed"),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    for _ in 0..20 {
        // SAFETY: as above.
        unsafe { Connection_ProcessTimeout(&mut conn, 5) };
    }
    assert_eq!(
        REAL_RELEASES.load(Ordering::SeqCst),
        0,
        "released while queued"
    );
    // SAFETY: initialised, no callback running.
    unsafe { Connection_Destroy(&mut conn) };
    assert_eq!(
        REAL_RELEASES.load(Ordering::SeqCst),
        1,
        "Destroy released it once"
    );
    // SAFETY: Destroy is idempotent.
    unsafe { Connection_Destroy(&mut conn) };
    assert_eq!(REAL_RELEASES.load(Ordering::SeqCst), 1);
    drop(client);
}
