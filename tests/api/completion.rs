//! `Connection_SetCompletionHandler`: exactly one record per request, after
//! its response left or its connection ended, with the right status, byte
//! counts (computed from the bytes the client sent and received), close
//! reason and completed flag: kept-alive, pipelined, chunked, streamed,
//! aborted by a client reset, and refused by the parser (400, 413, 431).

#![allow(clippy::field_reassign_with_default)] // mirrors the C usage: Default, then set fields

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::raw::c_void;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use connection_core::*;

/// An owned copy of one `ConnectionCompletion`.
#[derive(Clone, Debug)]
struct Rec {
    id: u64,
    method: String,
    target: String,
    remote: String,
    status: i32,
    version: i32,
    head_bytes: u64,
    completed: bool,
    close: i32,
    bytes_in: u64,
    bytes_out: u64,
    start_us: u64,
    duration_us: u64,
}

type Records = Mutex<Vec<Rec>>;

/// Request ids the handler saw, to match records against.
static HANDLER_IDS: Mutex<Vec<u64>> = Mutex::new(Vec::new());

unsafe extern "C" fn on_complete(r: *const ConnectionCompletion, user: *mut c_void) {
    // SAFETY: the library passes a record valid for the call; `user` is the
    // server's `Records`, alive until the server thread has joined.
    let (r, records) = unsafe { (&*r, &*(user as *const Records)) };
    let text = |p: *const std::os::raw::c_char, len: usize| {
        // SAFETY: `len` bytes, then a NUL, as documented.
        let bytes = unsafe { std::slice::from_raw_parts(p as *const u8, len + 1) };
        assert_eq!(bytes[len], 0, "string not NUL-terminated");
        String::from_utf8(bytes[..len].to_vec()).unwrap()
    };
    // SAFETY: NUL-terminated for the call.
    let remote = unsafe { std::ffi::CStr::from_ptr(r.remote_addr) };
    records.lock().unwrap().push(Rec {
        id: r.request_id,
        method: text(r.method, r.method_len),
        target: text(r.target, r.target_len),
        remote: remote.to_str().unwrap().to_string(),
        status: r.status,
        version: r.http_version,
        head_bytes: r.head_bytes,
        completed: r.completed != 0,
        close: r.close_reason,
        bytes_in: r.bytes_in,
        bytes_out: r.bytes_out,
        start_us: r.start_us,
        duration_us: r.duration_us,
    });
}

const BIG: usize = 16 << 20;
static BIG_BODY: [u8; BIG] = [b'x'; BIG];
const STREAM_LEN: usize = 10_000;

unsafe extern "C" fn produce(user: *mut c_void, buf: *mut u8, cap: usize) -> isize {
    // SAFETY: `user` is the Box<usize> given to Response_Stream, alive until cleanup.
    let left = unsafe { &mut *(user as *mut usize) };
    let n = (*left).min(cap).min(3000);
    // SAFETY: `buf` has `cap >= n` writable bytes.
    unsafe { std::ptr::write_bytes(buf, b's', n) };
    *left -= n;
    n as isize
}

unsafe extern "C" fn stream_done(user: *mut c_void, _reason: ConnectionCloseReason) {
    // SAFETY: the Box leaked in the handler; the cleanup runs once.
    drop(unsafe { Box::from_raw(user as *mut usize) });
}

/// The upgraded socket is closed at once: the client reads the 101, then EOF.
unsafe extern "C" fn upgraded(
    _user: *mut c_void,
    fd: std::os::raw::c_int,
    _data: *const u8,
    _len: usize,
    _reason: ConnectionCloseReason,
) {
    if fd >= 0 {
        // SAFETY: the descriptor is ours since the hand-off.
        unsafe { libc::close(fd) };
    }
}

unsafe extern "C" fn handler(req: *const Request, resp: *mut Response, _user: *mut c_void) {
    // SAFETY: live pointers for the duration of the call.
    unsafe {
        HANDLER_IDS.lock().unwrap().push(Request_Id(req));
        let mut len = 0usize;
        let path = Request_Path(req, &mut len);
        let path = std::slice::from_raw_parts(path as *const u8, len);
        let rc = match path {
            b"/chunked" => {
                assert_eq!(Response_BeginChunked(resp), 0);
                assert_eq!(Response_WriteChunk(resp, b"abc".as_ptr() as _, 3), 0);
                assert_eq!(Response_WriteChunk(resp, b"defgh".as_ptr() as _, 5), 0);
                Response_End(resp)
            }
            b"/stream" => {
                let user = Box::into_raw(Box::new(STREAM_LEN)) as *mut c_void;
                Response_Stream(resp, Some(produce), Some(stream_done), user)
            }
            b"/upgrade" => Response_Upgrade(resp, c"test".as_ptr(), Some(upgraded), null_mut()),
            b"/big" => Response_SendBorrowed(resp, BIG_BODY.as_ptr() as _, BIG, None, null_mut()),
            b"/missing" => {
                Response_SetStatus(resp, 404);
                Response_Send(resp, b"no".as_ptr() as _, 2)
            }
            _ => Response_Send(resp, b"Hello, World!".as_ptr() as _, 13),
        };
        assert_eq!(rc, 0);
    }
}

struct Server {
    port: u16,
    records: Arc<Records>,
    stop: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

/// A loop on its own thread with the completion handler set; the config
/// is tightened for the refusal cases.
fn start() -> Server {
    let records: Arc<Records> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::channel();
    let (rec2, stop2) = (records.clone(), stop.clone());
    let thread = std::thread::spawn(move || {
        let mut conn = Connection {
            _private_core: null_mut(),
            _private_stop_fd: -1,
            _private_magic: 0,
        };
        // SAFETY: plain calls with live locals; `rec2` outlives the loop.
        unsafe {
            let mut cfg = ConnectionConfig::default();
            cfg.host = c"127.0.0.1".as_ptr();
            cfg.port = 0;
            cfg.max_body_bytes = 1000;
            cfg.max_request_line_bytes = 1024;
            cfg.max_header_bytes = 2048;
            assert_eq!(Connection_InitWith(&mut conn, &cfg), 0);
            assert_eq!(
                Connection_SetHandler(&mut conn, Some(handler), null_mut()),
                0
            );
            let user = Arc::as_ptr(&rec2) as *mut c_void;
            assert_eq!(
                Connection_SetCompletionHandler(&mut conn, Some(on_complete), user),
                0
            );
            tx.send(Connection_Port(&conn) as u16).unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            while stop2.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
                assert!(Connection_ProcessTimeout(&mut conn, 10) >= 0);
            }
            Connection_Destroy(&mut conn);
        }
    });
    let port = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    Server {
        port,
        records,
        stop,
        thread: Some(thread),
    }
}

impl Server {
    /// Waits (bounded) until `n` records arrived, then a little longer to
    /// catch any extra one; returns them.
    fn records(&self, n: usize) -> Vec<Rec> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.records.lock().unwrap().len() < n {
            assert!(
                Instant::now() < deadline,
                "expected {n} records, got {:?}",
                self.records.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(100));
        let got = self.records.lock().unwrap().clone();
        assert_eq!(got.len(), n, "records: {got:#?}");
        got
    }

    fn connect(&self) -> Client {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client { s, buf: Vec::new() }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(1, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Client {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 65536];
        let n = self.s.read(&mut chunk).unwrap();
        assert!(
            n > 0,
            "server closed early; have {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// The exact bytes of the next response (Content-Length or chunked).
    fn response(&mut self) -> Vec<u8> {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill();
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_ascii_lowercase();
        let total = if head.contains("transfer-encoding: chunked") {
            loop {
                if let Some(i) = self.buf[head_end..]
                    .windows(5)
                    .position(|w| w == b"0\r\n\r\n")
                {
                    break head_end + i + 5;
                }
                self.fill();
            }
        } else {
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            head_end + len
        };
        while self.buf.len() < total {
            self.fill();
        }
        self.buf.drain(..total).collect()
    }
}

/// The length of a response's head.
fn head_len(response: &[u8]) -> u64 {
    response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() as u64 + 4
}

fn status_of(response: &[u8]) -> i32 {
    std::str::from_utf8(&response[9..12])
        .unwrap()
        .parse()
        .unwrap()
}

const KEPT_ALIVE: i32 = CONNECTION_COMPLETION_KEPT_ALIVE;

#[test]
fn kept_alive_requests_one_record_each() {
    let server = start();
    let mut c = server.connect();
    let reqs: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /missing?a=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    ];
    let mut outs = Vec::new();
    for r in reqs {
        c.send(r);
        outs.push(c.response());
    }
    let before_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let recs = server.records(3);
    let expected = [
        ("GET", "/", 200),
        ("GET", "/missing?a=1", 404),
        ("POST", "/echo", 200),
    ];
    for (i, rec) in recs.iter().enumerate() {
        assert_eq!(
            (rec.method.as_str(), rec.target.as_str(), rec.status),
            expected[i]
        );
        assert_eq!(rec.status, status_of(&outs[i]));
        assert_eq!(rec.bytes_in, reqs[i].len() as u64, "{rec:?}");
        assert_eq!(rec.bytes_out, outs[i].len() as u64, "{rec:?}");
        assert_eq!(rec.head_bytes, head_len(&outs[i]), "{rec:?}");
        assert_eq!(rec.version, 11);
        assert!(rec.completed);
        assert_eq!(rec.close, KEPT_ALIVE);
        assert_eq!(rec.remote, "127.0.0.1");
        assert!(rec.start_us <= before_us && rec.start_us > before_us - 30_000_000);
        assert!(rec.duration_us < 10_000_000);
    }
    let ids: Vec<u64> = recs.iter().map(|r| r.id).collect();
    let seen = HANDLER_IDS.lock().unwrap().clone();
    assert!(
        ids.iter().all(|id| seen.contains(id)),
        "{ids:?} vs {seen:?}"
    );
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    // HTTP/1.0 without keep-alive: the record carries the close reason.
    let req = b"GET / HTTP/1.0\r\n\r\n";
    c.send(req);
    let out = c.response();
    let recs = server.records(4);
    assert_eq!(recs[3].bytes_in, req.len() as u64);
    assert_eq!(recs[3].bytes_out, out.len() as u64);
    assert_eq!(
        recs[3].close,
        ConnectionCloseReason::CONNECTION_CLOSE_COMPLETED as i32
    );
    assert!(recs[3].completed);
}

#[test]
fn pipelined_chunked_and_streamed() {
    let server = start();
    let mut c = server.connect();
    let reqs: [&[u8]; 4] = [
        b"GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
        b"HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n",
    ];
    c.send(&reqs.concat());
    let mut outs = Vec::new();
    for _ in 0..3 {
        outs.push(c.response());
    }
    // HEAD: a head only (its Content-Length describes a body not sent).
    let head_end = loop {
        if let Some(i) = c.buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        c.fill();
    };
    outs.push(c.buf.drain(..head_end).collect());
    assert!(outs[1].len() > STREAM_LEN);
    let recs = server.records(4);
    let targets = ["/chunked", "/stream", "/a", "/b"];
    for (i, rec) in recs.iter().enumerate() {
        assert_eq!(rec.target, targets[i]);
        assert_eq!(rec.status, 200);
        assert_eq!(rec.bytes_in, reqs[i].len() as u64, "{rec:?}");
        assert_eq!(rec.bytes_out, outs[i].len() as u64, "{rec:?}");
        assert!(rec.completed);
        assert_eq!(rec.close, KEPT_ALIVE);
    }
    assert_eq!(recs[3].method, "HEAD");
}

#[test]
fn aborted_mid_response_is_recorded_once() {
    let server = start();
    let mut c = server.connect();
    let req = b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n";
    c.send(req);
    let mut got = 0usize;
    while got < 100_000 {
        c.fill();
        got = c.buf.len();
    }
    // Reset: SO_LINGER {on, 0} then close.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized option value.
    let rc = unsafe {
        libc::setsockopt(
            c.s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const _ as *const c_void,
            std::mem::size_of::<libc::linger>() as u32,
        )
    };
    assert_eq!(rc, 0);
    drop(c);
    let recs = server.records(1);
    let rec = &recs[0];
    assert!(!rec.completed, "{rec:?}");
    assert_eq!(
        rec.close,
        ConnectionCloseReason::CONNECTION_CLOSE_RESET as i32
    );
    assert_eq!(rec.status, 200);
    assert_eq!(rec.bytes_in, req.len() as u64);
    assert!(
        rec.bytes_out >= got as u64 && rec.bytes_out < BIG as u64,
        "{rec:?}, client read {got}"
    );
}

#[test]
fn refused_requests_get_records() {
    let server = start();
    let protocol = ConnectionCloseReason::CONNECTION_CLOSE_PROTOCOL as i32;
    // 400: no Host in HTTP/1.1.
    let mut c = server.connect();
    let req = b"GET /nohost HTTP/1.1\r\n\r\n";
    c.send(req);
    let out400 = c.response();
    assert_eq!(status_of(&out400), 400);
    let recs = server.records(1);
    assert_eq!(
        (
            recs[0].method.as_str(),
            recs[0].target.as_str(),
            recs[0].status
        ),
        ("GET", "/nohost", 400)
    );
    assert_eq!(recs[0].bytes_in, req.len() as u64);
    assert_eq!(recs[0].bytes_out, out400.len() as u64);
    assert_eq!(recs[0].head_bytes, head_len(&out400));
    assert_eq!(recs[0].version, 11);
    assert_eq!(recs[0].close, protocol);
    assert!(recs[0].completed);

    // 413: a declared body over max_body_bytes (1000).
    let mut c = server.connect();
    let req = b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n";
    c.send(req);
    let out413 = c.response();
    assert_eq!(status_of(&out413), 413);
    let recs = server.records(2);
    assert_eq!(
        (
            recs[1].method.as_str(),
            recs[1].target.as_str(),
            recs[1].status
        ),
        ("POST", "/up", 413)
    );
    assert_eq!(recs[1].bytes_in, req.len() as u64);
    assert_eq!(recs[1].bytes_out, out413.len() as u64);
    assert_eq!(recs[1].close, protocol);

    // 431: a header section over max_header_bytes (2048), in one write.
    let mut c = server.connect();
    let req = format!(
        "GET /h HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(3000)
    );
    c.send(req.as_bytes());
    let out431 = c.response();
    assert_eq!(status_of(&out431), 431);
    let recs = server.records(3);
    assert_eq!(recs[2].status, 431);
    assert_eq!(recs[2].method, "GET");
    assert_eq!(recs[2].target, "/h");
    assert!(recs[2].bytes_in > 2048 && recs[2].bytes_in <= req.len() as u64);
    assert_eq!(recs[2].bytes_out, out431.len() as u64);
    let ids: Vec<u64> = recs.iter().map(|r| r.id).collect();
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
}

/// A NULL Connection is refused.
#[test]
fn null_connection_is_refused() {
    static CODE: AtomicI32 = AtomicI32::new(0);
    // SAFETY: NULL is a documented argument.
    CODE.store(
        unsafe { Connection_SetCompletionHandler(null_mut(), Some(on_complete), null_mut()) },
        Ordering::SeqCst,
    );
    assert_eq!(CODE.load(Ordering::SeqCst), CONNECTION_ERR_NULL);
}

/// `Expect: 100-continue`: the interim response is not the response's
/// bytes; the body sent after it is the request's.
#[test]
fn interim_continue_is_not_counted() {
    let server = start();
    let mut c = server.connect();
    let head = b"POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
    c.send(head);
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
    while c.buf.len() < interim.len() {
        c.fill();
    }
    assert_eq!(&c.buf[..interim.len()], interim);
    c.buf.drain(..interim.len());
    c.send(b"body");
    let out = c.response();
    let recs = server.records(1);
    assert_eq!(recs[0].bytes_in, head.len() as u64 + 4);
    assert_eq!(recs[0].bytes_out, out.len() as u64, "{:?}", recs[0]);
    assert!(recs[0].completed);
}

#[test]
fn an_upgraded_request_gets_its_record_at_the_hand_off() {
    use std::io::{Read, Write};
    let server = start();
    let mut client = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let req = b"GET /upgrade HTTP/1.1\r\nHost: x\r\nUpgrade: test\r\nConnection: upgrade\r\n\r\n";
    client.write_all(req).unwrap();
    let mut out = Vec::new();
    client.read_to_end(&mut out).unwrap();
    assert!(out.starts_with(b"HTTP/1.1 101 "), "{out:?}");
    let recs = server.records(1);
    let rec = &recs[0];
    assert_eq!((rec.target.as_str(), rec.status), ("/upgrade", 101));
    assert!(rec.completed);
    assert_eq!(rec.close, KEPT_ALIVE, "handed over, not closed");
    assert_eq!(rec.bytes_in, req.len() as u64);
    assert_eq!(rec.bytes_out, out.len() as u64);
    assert_eq!(rec.head_bytes, out.len() as u64);
}
