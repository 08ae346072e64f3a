//! At `max_connections` the longest-idle keep-alive connection is closed
//! only to make room for a client that is really waiting, a busy
//! connection is never closed for it, and a waiting client is served as
//! soon as a connection becomes idle.
#![allow(clippy::field_reassign_with_default)] // mirrors the C usage: Default, then set fields

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::raw::c_void;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use connection_core::*;

/// `user` is the loop's `held` slot: the open chunked response of a /hold
/// request (loop thread only).
unsafe extern "C" fn handler(req: *const Request, resp: *mut Response, user: *mut c_void) {
    // SAFETY: the library passes live pointers for the duration of the call.
    unsafe {
        let mut len = 0;
        let path = Request_Path(req, &mut len);
        if std::slice::from_raw_parts(path as *const u8, len) == b"/hold" {
            assert_eq!(Response_BeginChunked(resp), CONNECTION_OK);
            (*(user as *const AtomicPtr<Response>)).store(resp, Ordering::SeqCst);
        } else {
            Response_Send(resp, b"hello".as_ptr() as *const c_void, 5);
        }
    }
}

struct Loop {
    conn: Connection,
    port: u16,
    held: Box<AtomicPtr<Response>>,
}

impl Loop {
    fn new(max_connections: u32) -> Loop {
        // SAFETY: an all-zero Connection is an uninitialised one.
        let mut conn: Connection = unsafe { std::mem::zeroed() };
        let mut cfg = ConnectionConfig::default();
        cfg.host = c"127.0.0.1".as_ptr();
        cfg.port = 0;
        cfg.max_connections = max_connections;
        let held = Box::new(AtomicPtr::new(null_mut()));
        // SAFETY: valid pointers to live locals; `held` outlives the loop.
        unsafe {
            assert_eq!(Connection_InitWith(&mut conn, &cfg), CONNECTION_OK);
            let user = &*held as *const AtomicPtr<Response> as *mut c_void;
            Connection_SetHandler(&mut conn, Some(handler), user);
        }
        // SAFETY: live connection.
        let port = unsafe { Connection_Port(&conn) } as u16;
        Loop { conn, port, held }
    }

    /// Runs the loop until `done` (at most 10 s).
    fn run_until(&mut self, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out running the loop");
            // SAFETY: a live connection, used from this thread only.
            let rc = unsafe { Connection_ProcessTimeout(&mut self.conn, 2) };
            assert!(rc >= 0, "Process failed: {rc}");
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        self.run_until(|| Instant::now() >= end);
    }

    fn stats(&self) -> ConnectionStats {
        let mut s = ConnectionStats::default();
        // SAFETY: live connection, valid out-pointer.
        assert_eq!(
            unsafe { Connection_GetStats(&self.conn, &mut s) },
            CONNECTION_OK
        );
        s
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        // SAFETY: live connection; no callback runs.
        unsafe { Connection_Destroy(&mut self.conn) };
    }
}

/// A client that connects, sends one keep-alive GET when told, and reports
/// when its whole response (ending in `end`) arrived.
fn client(
    port: u16,
    path: &'static str,
    end: &'static [u8],
) -> (mpsc::Sender<()>, mpsc::Receiver<(Instant, TcpStream)>) {
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        if go_rx.recv().is_err() {
            return;
        }
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.windows(end.len()).any(|w| w == end) {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let _ = done_tx.send((Instant::now(), s));
    });
    (go_tx, done_rx)
}

fn answered(lp: &mut Loop, rx: &mpsc::Receiver<(Instant, TcpStream)>) -> (Instant, TcpStream) {
    let mut got = None;
    lp.run_until(|| {
        got = rx.try_recv().ok();
        got.is_some()
    });
    got.expect("answered")
}

#[test]
fn no_eviction_when_nobody_waits() {
    let mut lp = Loop::new(2);
    for _ in 0..2 {
        let (go, rx) = client(lp.port, "/", b"hello");
        go.send(()).unwrap();
        let (_, stream) = answered(&mut lp, &rx);
        std::mem::forget(stream); // stays open and idle
    }
    lp.run_for(Duration::from_millis(300));
    let s = lp.stats();
    assert_eq!(
        s.closed_limit, 0,
        "an idle client was closed though nobody waited"
    );
    assert_eq!(s.active_connections, 2);
}

#[test]
fn an_idle_client_makes_room_for_a_waiting_one_at_once() {
    for max in [1u32, 2] {
        let mut lp = Loop::new(max);
        for _ in 0..max {
            let (go, rx) = client(lp.port, "/", b"hello");
            go.send(()).unwrap();
            let (_, stream) = answered(&mut lp, &rx);
            std::mem::forget(stream);
        }
        let (go, rx) = client(lp.port, "/", b"hello");
        let sent = Instant::now();
        go.send(()).unwrap();
        let (at, _) = answered(&mut lp, &rx);
        let waited = at - sent;
        assert!(
            waited < Duration::from_millis(100),
            "max_connections {max}: the waiting client was answered after {waited:?}"
        );
        assert_eq!(lp.stats().closed_limit, 1, "max_connections {max}");
    }
}

#[test]
fn a_busy_client_is_kept_and_the_waiting_one_served_once_it_is_idle() {
    for max in [1u32, 2] {
        let mut lp = Loop::new(max);
        // `max` busy clients, each with an open chunked response.
        let mut held = Vec::new();
        for _ in 0..max {
            let (go, rx) = client(lp.port, "/hold", b"0\r\n\r\n");
            go.send(()).unwrap();
            let slot: *const AtomicPtr<Response> = &*lp.held;
            // SAFETY: `slot` points into the loop's box, alive meanwhile.
            lp.run_until(|| !unsafe { &*slot }.load(Ordering::SeqCst).is_null());
            held.push((lp.held.swap(null_mut(), Ordering::SeqCst), rx));
        }
        let (go, waiting) = client(lp.port, "/", b"hello");
        go.send(()).unwrap();
        lp.run_for(Duration::from_millis(300));
        assert!(
            waiting.try_recv().is_err(),
            "max {max}: served while every connection was busy"
        );
        let s = lp.stats();
        assert_eq!(s.closed_limit, 0, "max {max}: a busy connection was closed");
        assert!(s.accept_paused >= 1, "max {max}: accepting did not pause");
        // One busy client finishes: it becomes idle, and the waiting client
        // takes its place.
        let (resp, rx) = held.remove(0);
        let ended = Instant::now();
        // SAFETY: the held response is open; this is the loop thread.
        assert_eq!(unsafe { Response_End(resp) }, CONNECTION_OK);
        // Its client keeps the connection open (idle, not closed).
        let (_, idle) = answered(&mut lp, &rx);
        let (at, _) = answered(&mut lp, &waiting);
        let waited = at - ended;
        assert!(
            waited < Duration::from_millis(100),
            "max {max}: the waiting client was answered {waited:?} after a connection became idle"
        );
        assert_eq!(
            lp.stats().closed_limit,
            1,
            "max {max}: the idle one made room"
        );
        for (resp, _) in held {
            // SAFETY: still open on the loop thread.
            unsafe { Response_End(resp) };
        }
        drop(idle);
    }
}
