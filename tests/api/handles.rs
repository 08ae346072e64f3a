//! Every copy of a `Connection` sees its Destroy, and a call from a thread other than the loop thread is refused.
//!
//! * Destroy through one copy of a `Connection` is seen by every copy: each
//!   call through another copy returns CONNECTION_ERR_NOT_INITIALIZED, and
//!   a stale copy never reaches a loop initialised later in the same slot
//!   nor writes to a descriptor that reuses the old eventfd's number.
//! * The thread that initialises a Connection is its loop thread: a call on
//!   the loop, a request or a response from another thread returns
//!   CONNECTION_ERR_WRONG_THREAD (NULL or 0 for the getters) and harms
//!   nothing; Connection_Stop works from any thread.
//!
//! Every test holds `ONE_AT_A_TIME`: one of them counts this process's
//! descriptors, and another checks which table slot a new loop gets.
#![allow(clippy::field_reassign_with_default)] // mirrors the C usage: Default, then set fields

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::raw::{c_int, c_void};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use connection_core::*;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn start() -> Connection {
    let mut conn = Connection {
        _private_core: null_mut(),
        _private_stop_fd: -1,
        _private_magic: 0,
    };
    let mut cfg = ConnectionConfig::default();
    cfg.host = c"127.0.0.1".as_ptr();
    cfg.port = 0;
    // SAFETY: valid pointers to live locals.
    assert_eq!(
        unsafe { Connection_InitWith(&mut conn, &cfg) },
        CONNECTION_OK
    );
    conn
}

/// A byte copy of the handle, as `Connection copy = conn;` makes in C.
fn copy_of(conn: &Connection) -> Connection {
    // SAFETY: a plain read of an initialised struct; the API allows copies.
    unsafe { std::ptr::read(conn) }
}

/// A handle or a response pointer carried to another thread.
struct Carried<T>(T);
// SAFETY: the tests hand these to other threads precisely to check that
// the library refuses them there; nothing is dereferenced by the test.
unsafe impl<T> Send for Carried<T> {}

impl<T> Carried<T> {
    /// Takes the value out (a method, so a closure captures the whole
    /// `Carried`, not just its non-`Send` field).
    fn take(self) -> T {
        self.0
    }
}

/// Runs the loop until `done` (bounded).
fn pump(conn: &mut Connection, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out pumping the loop");
        // SAFETY: a live connection, on its loop thread.
        let rc = unsafe { Connection_ProcessTimeout(conn, 10) };
        assert!(rc >= 0, "Process failed: {rc}");
    }
}

unsafe extern "C" fn hello(_req: *const Request, resp: *mut Response, _user: *mut c_void) {
    // SAFETY: the live handle the library passed in.
    unsafe { Response_Send(resp, b"hello".as_ptr() as *const c_void, 5) };
}

/// One request to a live loop, answered (the loop runs on this thread).
fn serve_one(conn: &mut Connection) -> String {
    // SAFETY: live connection on its loop thread.
    let port = unsafe { Connection_Port(conn) };
    assert!(port > 0, "Connection_Port: {port}");
    let client = thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port as u16)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    });
    pump(conn, || client.is_finished());
    client.join().unwrap()
}

/// Every loop call through `conn` returns `expected` (Destroy is void and
/// must simply do nothing). The calls that could block come last, so a
/// handle that wrongly reaches a loop fails an assertion before it can
/// wait in that loop.
fn assert_every_call_returns(conn: &mut Connection, expected: c_int) {
    let mut stats = ConnectionStats::default();
    // SAFETY: `conn` points to a Connection; every call below accepts a
    // dead handle or one of another thread.
    unsafe {
        assert_eq!(
            Connection_ProcessTimeout(conn, 0),
            expected,
            "ProcessTimeout"
        );
        assert_eq!(Connection_Fd(conn), expected, "Fd");
        assert_eq!(Connection_Port(conn), expected, "Port");
        assert_eq!(Connection_GetStats(conn, &mut stats), expected, "GetStats");
        assert_eq!(
            Connection_SetHandler(conn, Some(hello), null_mut()),
            expected,
            "SetHandler"
        );
        assert_eq!(
            Connection_SetBodyHandler(conn, None, 0, null_mut()),
            expected,
            "SetBodyHandler"
        );
        assert_eq!(Connection_Process(conn), expected, "Process");
        assert_eq!(Connection_Run(conn), expected, "Run");
        Connection_Destroy(conn);
    }
}

#[test]
fn destroy_through_one_copy_is_seen_by_every_copy_and_by_no_later_loop() {
    let _one = one_at_a_time();
    let mut conn = start();
    let mut copy = copy_of(&conn);
    // SAFETY: both name the same live loop, on its loop thread.
    unsafe {
        assert_eq!(Connection_Port(&copy), Connection_Port(&conn));
        assert_eq!(
            Connection_SetHandler(&mut copy, Some(hello), null_mut()),
            CONNECTION_OK
        );
    }
    assert!(serve_one(&mut conn).ends_with("hello"));

    // SAFETY: live connection, on its loop thread.
    unsafe { Connection_Destroy(&mut conn) };
    // Every call through the other copy sees it; Destroy again is harmless.
    // SAFETY: a destroyed handle is documented to be refused.
    assert_eq!(
        unsafe { Connection_Stop(&mut copy) },
        CONNECTION_ERR_NOT_INITIALIZED
    );
    assert_every_call_returns(&mut copy, CONNECTION_ERR_NOT_INITIALIZED);
    assert_every_call_returns(&mut conn, CONNECTION_ERR_NOT_INITIALIZED);

    // A new loop gets the freed slot, under a new generation: the stale
    // copies name the slot but not the loop.
    let mut fresh = start();
    assert_eq!(
        fresh._private_stop_fd, copy._private_stop_fd,
        "the new loop reuses the destroyed loop's slot (else this test proves nothing)"
    );
    // SAFETY: stale handles are refused; `fresh` is live on this thread.
    unsafe {
        assert_eq!(Connection_Stop(&mut copy), CONNECTION_ERR_NOT_INITIALIZED);
        assert_every_call_returns(&mut copy, CONNECTION_ERR_NOT_INITIALIZED);
        assert_every_call_returns(&mut conn, CONNECTION_ERR_NOT_INITIALIZED);
        // The stale Stop did not reach the new loop (it would drain and
        // report CONNECTION_STOPPED), nor did the stale Destroy free it.
        assert_eq!(Connection_ProcessTimeout(&mut fresh, 0), CONNECTION_OK);
        assert_eq!(
            Connection_SetHandler(&mut fresh, Some(hello), null_mut()),
            CONNECTION_OK
        );
    }
    assert!(serve_one(&mut fresh).ends_with("hello"));
    // Init through a stale copy makes it a handle of a new loop of its own.
    // SAFETY: valid pointers; `copy` names no live loop.
    unsafe {
        let cfg = {
            let mut c = ConnectionConfig::default();
            c.host = c"127.0.0.1".as_ptr();
            c.port = 0;
            c
        };
        assert_eq!(Connection_InitWith(&mut copy, &cfg), CONNECTION_OK);
        assert_ne!(Connection_Port(&copy), Connection_Port(&fresh));
        Connection_Destroy(&mut copy);
        assert!(Connection_Port(&fresh) > 0);
        Connection_Destroy(&mut fresh);
    }
}

/// This process's open descriptor numbers.
fn open_fds() -> BTreeSet<i32> {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

#[test]
fn stop_through_a_stale_copy_writes_nothing_to_a_reused_descriptor() {
    let _one = one_at_a_time();
    let before = open_fds();
    let mut conn = start();
    let loop_fds: BTreeSet<i32> = open_fds().difference(&before).copied().collect();
    assert!(
        loop_fds.len() >= 3,
        "a loop holds epoll, a listener and eventfds: {loop_fds:?}"
    );
    let highest = *loop_fds.iter().max().unwrap();
    let mut copy = copy_of(&conn);
    // SAFETY: live connection, on its loop thread.
    unsafe { Connection_Destroy(&mut conn) };

    // New eventfds take the lowest free numbers: keep making them until one
    // lands above the loop's, so every number the loop had (its stop
    // eventfd's among them) now belongs to one of ours.
    let mut ours = Vec::new();
    loop {
        // SAFETY: plain syscall with integer arguments.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        assert!(fd >= 0, "eventfd: {}", std::io::Error::last_os_error());
        ours.push(fd);
        if fd > highest {
            break;
        }
        assert!(ours.len() < 256, "descriptors are not being reused");
    }
    for fd in &loop_fds {
        assert!(ours.contains(fd), "fd {fd} was not reused: {ours:?}");
    }

    // SAFETY: destroyed handles; Stop must refuse them without writing.
    let stopped = unsafe { [Connection_Stop(&mut copy), Connection_Stop(&mut conn)] };
    for fd in ours {
        let mut value = 0u64;
        // SAFETY: reading 8 bytes into a live u64 from our own eventfd.
        let n = unsafe { libc::read(fd, &mut value as *mut u64 as *mut c_void, 8) };
        let err = std::io::Error::last_os_error();
        assert!(
            n < 0 && err.raw_os_error() == Some(libc::EAGAIN),
            "Stop through a stale copy wrote {value} into fd {fd}, which reuses a number of the destroyed loop"
        );
        // SAFETY: our descriptor, closed once.
        unsafe { libc::close(fd) };
    }
    assert_eq!(stopped, [CONNECTION_ERR_NOT_INITIALIZED; 2]);
}

/// What the wrong-thread probes inside the handler returned, in order.
static IN_HANDLER: Mutex<Vec<(&'static str, i64)>> = Mutex::new(Vec::new());
/// The chunked response `chunked_handler` keeps open past its return.
static KEPT: AtomicUsize = AtomicUsize::new(0);

/// Calls every Request_* and some Response_* from another thread while
/// the handler (the loop thread) waits for it: nothing races, so each
/// answer shows only whether the thread check refused the call.
fn probe_from_another_thread(req: *const Request, resp: *mut Response) -> Vec<(&'static str, i64)> {
    let (req, resp) = (Carried(req), Carried(resp));
    thread::spawn(move || {
        let (req, resp) = (req.take(), resp.take());
        let mut len = 7usize;
        let mut buf = [0 as std::os::raw::c_char; 64];
        // SAFETY: live handles (the handler is waiting for this thread); the
        // library is to refuse each call without reading them.
        unsafe {
            vec![
                ("Request_Method", Request_Method(req, &mut len) as i64),
                ("Request_Path", Request_Path(req, null_mut()) as i64),
                ("Request_Query", Request_Query(req, null_mut()) as i64),
                (
                    "Request_Header",
                    Request_Header(req, c"Host".as_ptr(), null_mut()) as i64,
                ),
                ("Request_HeaderCount", Request_HeaderCount(req) as i64),
                (
                    "Request_HeaderAt",
                    Request_HeaderAt(req, 0, null_mut(), null_mut(), null_mut(), null_mut()) as i64,
                ),
                ("Request_Body", Request_Body(req, &mut len) as i64),
                ("Request_Body len", len as i64),
                (
                    "Request_RemoteAddr",
                    Request_RemoteAddr(req, buf.as_mut_ptr(), buf.len()) as i64,
                ),
                ("Request_Version", Request_Version(req) as i64),
                ("Request_Id", Request_Id(req) as i64),
                ("Response_SetStatus", Response_SetStatus(resp, 201) as i64),
                (
                    "Response_AddHeader",
                    Response_AddHeader(resp, c"X-From".as_ptr(), c"worker".as_ptr()) as i64,
                ),
                (
                    "Response_Send",
                    Response_Send(resp, b"worker".as_ptr() as *const c_void, 6) as i64,
                ),
                ("Response_BeginChunked", Response_BeginChunked(resp) as i64),
            ]
        }
    })
    .join()
    .unwrap()
}

unsafe extern "C" fn chunked_handler(req: *const Request, resp: *mut Response, _user: *mut c_void) {
    let mut seen = probe_from_another_thread(req, resp);
    // SAFETY: the live handles passed by the library, on the loop thread.
    unsafe {
        seen.push((
            "loop: Request_Method is not NULL",
            !Request_Method(req, null_mut()).is_null() as i64,
        ));
        seen.push((
            "loop: Response_BeginChunked",
            Response_BeginChunked(resp) as i64,
        ));
        seen.push((
            "loop: Response_WriteChunk",
            Response_WriteChunk(resp, b"one,".as_ptr() as *const c_void, 4) as i64,
        ));
    }
    *IN_HANDLER.lock().unwrap() = seen;
    KEPT.store(resp as usize, Ordering::SeqCst);
}

#[test]
fn calls_from_another_thread_are_refused_and_the_loop_is_unharmed() {
    let _one = one_at_a_time();
    let mut conn = start();
    // SAFETY: live connection on its loop thread.
    unsafe { Connection_SetHandler(&mut conn, Some(chunked_handler), null_mut()) };
    // SAFETY: as above.
    let port = unsafe { Connection_Port(&conn) } as u16;
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client
        .write_all(b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    pump(&mut conn, || KEPT.load(Ordering::SeqCst) != 0);

    // Inside the handler, from another thread: every call refused.
    let wrong = CONNECTION_ERR_WRONG_THREAD as i64;
    let probes = IN_HANDLER.lock().unwrap().clone();
    assert_eq!(probes.len(), 18);
    for (name, got) in probes {
        let expected = match name {
            "Request_Method" | "Request_Path" | "Request_Query" | "Request_Header"
            | "Request_Body" => 0, // NULL
            "Request_HeaderCount" | "Request_Id" | "Request_Body len" => 0,
            "loop: Request_Method is not NULL" => 1,
            "loop: Response_BeginChunked" | "loop: Response_WriteChunk" => 0,
            _ => wrong,
        };
        assert_eq!(got, expected, "{name} from another thread");
    }

    // After the handler returned, with the response kept open: a worker's
    // calls on it and on the loop are refused, and its Destroy ignored.
    let resp = KEPT.load(Ordering::SeqCst) as *mut Response;
    let (carried_resp, carried_conn) = (Carried(resp), Carried(copy_of(&conn)));
    thread::spawn(move || {
        let resp = carried_resp.take();
        let mut conn = carried_conn.take();
        // SAFETY: a live response and a live handle of another thread: the
        // library must refuse them.
        unsafe {
            assert_eq!(
                Response_WriteChunk(resp, b"worker".as_ptr() as *const c_void, 6),
                CONNECTION_ERR_WRONG_THREAD
            );
            assert_eq!(Response_End(resp), CONNECTION_ERR_WRONG_THREAD);
            assert_eq!(
                Response_Stream(resp, Some(no_body), None, null_mut()),
                CONNECTION_ERR_WRONG_THREAD
            );
        }
        assert_every_call_returns(&mut conn, CONNECTION_ERR_WRONG_THREAD);
    })
    .join()
    .unwrap();

    // The same while the loop thread is inside Process: refused every
    // time, no race with the loop (ThreadSanitizer saw 67 before).
    let carried = (Carried(resp), Carried(copy_of(&conn)));
    let hammer = thread::spawn(move || {
        let (resp, conn) = (carried.0.take(), carried.1.take());
        let mut stats = ConnectionStats::default();
        for _ in 0..2000 {
            // SAFETY: as above.
            unsafe {
                assert_eq!(
                    Response_WriteChunk(resp, b"x".as_ptr() as *const c_void, 1),
                    CONNECTION_ERR_WRONG_THREAD
                );
                assert_eq!(
                    Connection_GetStats(&conn, &mut stats),
                    CONNECTION_ERR_WRONG_THREAD
                );
            }
        }
    });
    pump(&mut conn, || hammer.is_finished());
    hammer.join().unwrap();

    // The loop thread finishes the response; the client gets exactly it.
    // SAFETY: the kept response, on the loop thread.
    unsafe {
        assert_eq!(
            Response_WriteChunk(resp, b"two".as_ptr() as *const c_void, 3),
            CONNECTION_OK
        );
        assert_eq!(Response_End(resp), CONNECTION_OK);
    }
    let reader = thread::spawn(move || {
        let mut out = Vec::new();
        let _ = client.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    });
    pump(&mut conn, || reader.is_finished());
    let reply = reader.join().unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    assert!(
        !reply.contains("worker") && !reply.contains("X-From"),
        "{reply}"
    );
    // The chunks, in order, and the last chunk (size lines may be padded).
    let one = reply.find("\r\none,\r\n").expect("the loop's first chunk");
    let two = reply.find("\r\ntwo\r\n").expect("the loop's second chunk");
    assert!(one < two, "{reply}");
    assert!(reply.ends_with("\r\n0\r\n\r\n"), "{reply}");

    // Stop works from any thread; the loop thread then drains and returns.
    let carried = Carried(copy_of(&conn));
    let rc = thread::spawn(move || {
        let mut conn = carried.take();
        // SAFETY: Stop is documented for any thread.
        unsafe { Connection_Stop(&mut conn) }
    })
    .join()
    .unwrap();
    assert_eq!(rc, CONNECTION_OK);
    // SAFETY: live connection on its loop thread.
    unsafe {
        assert_eq!(Connection_Run(&mut conn), CONNECTION_OK);
        Connection_Destroy(&mut conn);
        assert_eq!(Connection_Port(&conn), CONNECTION_ERR_NOT_INITIALIZED);
        let message = std::ffi::CStr::from_ptr(Connection_StrError(CONNECTION_ERR_WRONG_THREAD));
        assert!(
            message.to_str().unwrap().contains("loop thread"),
            "{message:?}"
        );
    }
}

unsafe extern "C" fn no_body(_user: *mut c_void, _buf: *mut u8, _cap: usize) -> isize {
    0
}

#[test]
fn the_initialising_thread_is_the_loop_thread() {
    let _one = one_at_a_time();
    // Initialised on a worker: the worker is its loop thread, not this one.
    let (to_main, from_worker) = std::sync::mpsc::channel();
    let (to_worker, from_main) = std::sync::mpsc::channel::<()>();
    let worker = thread::spawn(move || {
        let mut conn = start();
        // SAFETY: live connection on its loop thread.
        unsafe { Connection_SetHandler(&mut conn, Some(hello), null_mut()) };
        to_main.send(Carried(copy_of(&conn))).unwrap();
        from_main.recv().unwrap();
        // Still live and this thread's: it serves, then is destroyed here.
        let reply = serve_one(&mut conn);
        // SAFETY: as above.
        unsafe { Connection_Destroy(&mut conn) };
        reply
    });
    let mut conn = from_worker.recv().unwrap().take();
    assert_every_call_returns(&mut conn, CONNECTION_ERR_WRONG_THREAD);
    // Init on a live handle is refused whatever the thread.
    let cfg = ConnectionConfig::default();
    // SAFETY: valid pointers.
    assert_eq!(
        unsafe { Connection_InitWith(&mut conn, &cfg) },
        CONNECTION_ERR_STATE
    );
    to_worker.send(()).unwrap();
    let reply = worker.join().unwrap();
    assert!(reply.ends_with("hello"), "{reply}");
    assert_every_call_returns(&mut conn, CONNECTION_ERR_NOT_INITIALIZED);
}
