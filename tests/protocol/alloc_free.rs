//! After warm-up, serving a keep-alive request allocates nothing
//! on the server thread, with and without a completion handler set (buffers are pooled, headers parsed in place, the
//! Date line cached). A counting global allocator counts only the allocations
//! made while the server thread has counting switched on.
#![allow(clippy::field_reassign_with_default)] // mirrors the C usage: Default, then set fields

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::raw::c_void;
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

unsafe extern "C" fn hello(_req: *const Request, resp: *mut Response, _user: *mut c_void) {
    // SAFETY: `resp` is the live handle the library passed in.
    unsafe {
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
                let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
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
        allocations, 0,
        "{allocations} heap allocations while serving {served} keep-alive requests"
    );
}
