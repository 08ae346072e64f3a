//! After warm-up, serving a keep-alive request allocates nothing
//! on the server thread, with and without a completion handler set (buffers
//! are pooled, headers parsed in place, the Date line cached), even with the
//! handler calling every request helper (path, query, form, cookie, Host,
//! client address behind a proxy). A counting global allocator counts only the allocations
//! made while the server thread has counting switched on.
#![allow(clippy::field_reassign_with_default)] // mirrors the C usage: Default, then set fields

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::raw::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use connection_core::*;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// This thread's count: each test's server runs on its own thread.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    if COUNTING.with(|c| c.get()) {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
    }
}

// SAFETY: forwards to the system allocator; the counter has no effect on
// the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Helper results that differed from what the request says (checked
/// after the run: a panic cannot leave the C handler).
static WRONG: AtomicU64 = AtomicU64::new(0);

/// Calls every request helper on the request below and counts wrong results.
unsafe fn use_helpers(req: *const Request) {
    let mut buf = [0u8; 128];
    let mut name = [0u8; 32];
    let (mut len, mut name_len) = (0usize, 0usize);
    let b = buf.as_mut_ptr() as *mut c_char;
    let expect = |rc: c_int, len: usize, buf: &[u8], want: &[u8]| {
        if rc != CONNECTION_OK || &buf[..len] != want {
            WRONG.fetch_add(1, Ordering::Relaxed);
        }
    };
    // SAFETY: `req` is live during the handler; buffers as passed.
    unsafe {
        let rc = Request_PathDecoded(req, b, 128, &mut len);
        expect(rc, len, &buf, b"/a/./b c/../d");
        let rc = Request_PathNormalized(req, b, 128, &mut len);
        expect(rc, len, &buf, b"/a/d");
        let rc = Request_QueryParam(req, c"y".as_ptr(), b, 128, &mut len);
        expect(rc, len, &buf, b"a b");
        let n = name.as_mut_ptr() as *mut c_char;
        let rc = Request_QueryParamAt(req, 1, n, 32, &mut name_len, b, 128, &mut len);
        expect(rc, name_len, &name, b"y");
        expect(rc, len, &buf, b"a b");
        let mut qlen = 0;
        let q = Request_Query(req, &mut qlen) as *const c_void;
        let rc = Connection_FormParam(q, qlen, c"x".as_ptr(), b, 128, &mut len);
        expect(rc, len, &buf, b"1");
        let rc = Connection_FormParamAt(q, qlen, 0, n, 32, &mut name_len, b, 128, &mut len);
        expect(rc, name_len, &name, b"x");
        let rc = Request_Cookie(req, c"t".as_ptr(), b, 128, &mut len);
        expect(rc, len, &buf, b"2");
        let mut host: *const c_char = std::ptr::null();
        let mut port: c_int = 0;
        let rc = Request_Host(req, &mut host, &mut len, &mut port);
        let host = std::slice::from_raw_parts(host as *const u8, len);
        expect(rc, len, host, b"x");
        if port != 8080 {
            WRONG.fetch_add(1, Ordering::Relaxed);
        }
        let rc = Request_ClientAddr(req, b, 128, &mut len);
        expect(rc, len, &buf, b"192.0.2.7");
    }
}

unsafe extern "C" fn hello(req: *const Request, resp: *mut Response, _user: *mut c_void) {
    // SAFETY: `req` and `resp` are the live handles the library passed in.
    unsafe {
        use_helpers(req);
        Response_AddHeader(resp, c"Content-Type".as_ptr(), c"text/plain".as_ptr());
        Response_Send(resp, b"Hello, World!".as_ptr() as *const c_void, 13);
    }
}

/// Counts records (the user pointer is an `AtomicU64`); allocates nothing.
unsafe extern "C" fn count_record(record: *const ConnectionCompletion, user: *mut c_void) {
    // SAFETY: the record is valid for the call; `user` is the test's counter.
    let (record, count) = unsafe { (&*record, &*(user as *const AtomicU64)) };
    assert_eq!(record.status, 200);
    assert_eq!(record.completed, 1);
    count.fetch_add(1, Ordering::Relaxed);
}

const WARM_UP: usize = 2_000;
const MEASURED: usize = 10_000;
const CLIENTS: usize = 4;

#[test]
fn keep_alive_requests_allocate_nothing_after_warm_up() {
    run(false);
}

#[test]
fn keep_alive_requests_with_completion_records_allocate_nothing() {
    run(true);
}

fn run(with_records: bool) {
    let records = AtomicU64::new(0);
    let mut conn = Connection {
        _private_core: std::ptr::null_mut(),
        _private_stop_fd: -1,
        _private_magic: 0,
    };
    let mut cfg = ConnectionConfig::default();
    cfg.host = c"127.0.0.1".as_ptr();
    cfg.port = 0;
    // SAFETY: valid pointers to live locals.
    unsafe {
        assert_eq!(Connection_InitWith(&mut conn, &cfg), CONNECTION_OK);
        assert_eq!(
            Connection_SetHandler(&mut conn, Some(hello), std::ptr::null_mut()),
            0
        );
        if with_records {
            let user = &records as *const AtomicU64 as *mut c_void;
            assert_eq!(
                Connection_SetCompletionHandler(&mut conn, Some(count_record), user),
                0
            );
        }
        assert_eq!(
            Connection_SetTrustedProxies(&mut conn, c"127.0.0.1".as_ptr()),
            0
        );
    }
    // SAFETY: initialised above.
    let port = unsafe { Connection_Port(&conn) } as u16;

    let warm = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (warm, done, measuring) = (warm.clone(), done.clone(), measuring.clone());
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let req = b"GET /a/./b%20c/../d?x=1&y=a+b HTTP/1.1\r\nHost: x:8080\r\n\
                    Cookie: s=1; t=\"2\"\r\nX-Forwarded-For: 192.0.2.7, 127.0.0.1\r\n\r\n";
                let mut buf = [0u8; 4096];
                let mut one = |s: &mut TcpStream| {
                    s.write_all(req).unwrap();
                    let mut got = 0;
                    // Response ends with the 13-byte body.
                    while !buf[..got].ends_with(b"Hello, World!") {
                        let n = s.read(&mut buf[got..]).unwrap();
                        assert!(n > 0, "server closed");
                        got += n;
                    }
                };
                for _ in 0..WARM_UP / CLIENTS {
                    one(&mut s);
                }
                warm.fetch_add(1, Ordering::SeqCst);
                while !measuring.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                for _ in 0..MEASURED / CLIENTS {
                    one(&mut s);
                }
                done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stats = ConnectionStats::default();
    while warm.load(Ordering::SeqCst) < CLIENTS as u64 {
        assert!(Instant::now() < deadline, "warm-up did not finish");
        // SAFETY: initialised connection, called from this thread only.
        assert_eq!(unsafe { Connection_ProcessTimeout(&mut conn, 10) }, 0);
    }
    // SAFETY: as above.
    unsafe { Connection_GetStats(&conn, &mut stats) };
    let before = stats.responses;
    COUNTING.with(|c| c.set(true));
    measuring.store(true, Ordering::SeqCst);
    while done.load(Ordering::SeqCst) < CLIENTS as u64 {
        assert!(Instant::now() < deadline, "measured run did not finish");
        // SAFETY: as above.
        assert_eq!(unsafe { Connection_ProcessTimeout(&mut conn, 10) }, 0);
    }
    COUNTING.with(|c| c.set(false));
    let allocations = ALLOCATIONS.with(|a| a.get());
    // SAFETY: as above.
    unsafe { Connection_GetStats(&conn, &mut stats) };
    let served = stats.responses - before;
    for c in clients {
        c.join().unwrap();
    }
    // SAFETY: initialised, no callback running.
    unsafe { Connection_Destroy(&mut conn) };
    assert_eq!(served, MEASURED as u64);
    if with_records {
        // One record per response, the last ones included (Destroy's).
        assert_eq!(records.load(Ordering::SeqCst), (WARM_UP + MEASURED) as u64);
    }
    assert_eq!(
        WRONG.load(Ordering::SeqCst),
        0,
        "request helpers gave wrong results"
    );
    assert_eq!(
        allocations, 0,
        "{allocations} heap allocations while serving {served} keep-alive requests"
    );
}
