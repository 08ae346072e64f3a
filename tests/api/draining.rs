//! Draining a load balancer can see: after `Connection_Stop` a response in
//! progress finishes and its connection closes without starting the request
//! pipelined behind it, a request that had begun to arrive, or a client
//! accepted but silent until then, is answered with `Connection: close`, an
//! idle keep-alive connection is closed, and
//! Process then reports CONNECTION_STOPPED.
#![allow(clippy::field_reassign_with_default)] // mirrors the C usage: Default, then set fields

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::raw::c_void;
use std::ptr::null_mut;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use connection_core::*;

thread_local! {
    /// The open chunked response of /hold (the loop runs on the test thread).
    static HELD: Cell<*mut Response> = const { Cell::new(null_mut()) };
}

unsafe extern "C" fn handler(req: *const Request, resp: *mut Response, _user: *mut c_void) {
    // SAFETY: the library passes live pointers for the duration of the call.
    unsafe {
        let mut len = 0;
        let path = Request_Path(req, &mut len);
        let path = std::slice::from_raw_parts(path as *const u8, len).to_vec();
        if path == b"/hold" {
            assert_eq!(Response_BeginChunked(resp), CONNECTION_OK);
            Response_WriteChunk(resp, b"first".as_ptr() as *const c_void, 5);
            HELD.with(|h| h.set(resp));
        } else {
            Response_Send(resp, path.as_ptr() as *const c_void, path.len());
        }
    }
}

fn pump_until(conn: &mut Connection, mut done: impl FnMut(&Connection) -> bool) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "timed out pumping the loop");
        // SAFETY: a live connection used from this thread only.
        let rc = unsafe { Connection_ProcessTimeout(conn, 10) };
        assert!(rc >= 0, "Process failed: {rc}");
        if done(conn) || rc == CONNECTION_STOPPED {
            return rc;
        }
    }
}

fn pump_for(conn: &mut Connection, ms: u64) {
    let until = Instant::now() + Duration::from_millis(ms);
    pump_until(conn, |_| Instant::now() >= until);
}

fn client(port: u16, first: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(first).unwrap();
    s
}

/// Reads to EOF on a thread (the loop keeps running meanwhile).
fn read_all(mut s: TcpStream) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut out = Vec::new();
        let r = s.read_to_end(&mut out);
        assert!(
            r.is_ok(),
            "read: {r:?} after {:?}",
            String::from_utf8_lossy(&out)
        );
        String::from_utf8_lossy(&out).into_owned()
    })
}

#[test]
fn stop_finishes_current_answers_started_with_close_and_starts_nothing_new() {
    let mut conn = Connection {
        _private_core: null_mut(),
        _private_stop_fd: -1,
        _private_magic: 0,
    };
    let mut cfg = ConnectionConfig::default();
    cfg.host = c"127.0.0.1".as_ptr();
    cfg.port = 0;
    // SAFETY: valid pointers to live locals.
    let port = unsafe {
        assert_eq!(Connection_InitWith(&mut conn, &cfg), CONNECTION_OK);
        Connection_SetHandler(&mut conn, Some(handler), null_mut());
        Connection_Port(&conn) as u16
    };
    // Busy: a chunked response open, another request pipelined behind it.
    let busy = client(
        port,
        b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    // Started: half a request head.
    let mut started = client(port, b"GET /started HTTP/1.1\r\nHost: x\r\n");
    // Idle: one exchange done, kept alive.
    let mut idle = client(port, b"GET /idle HTTP/1.1\r\nHost: x\r\n\r\n");
    // Fresh: accepted, nothing sent yet.
    let mut fresh = client(port, b"");
    let mut stats = ConnectionStats::default();
    pump_until(&mut conn, |c| {
        // SAFETY: a live connection.
        unsafe { Connection_GetStats(c, &mut stats) };
        stats.responses >= 1 && stats.accepted == 4 && !HELD.with(|h| h.get()).is_null()
    });
    pump_for(&mut conn, 100); // the started head is read
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).unwrap();
    let first = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        first.starts_with("HTTP/1.1 200 ") && first.ends_with("/idle"),
        "{first:?}"
    );
    assert!(
        !first.to_ascii_lowercase().contains("connection: close"),
        "{first:?}"
    );

    // SAFETY: a live connection.
    assert_eq!(unsafe { Connection_Stop(&mut conn) }, CONNECTION_OK);
    let idle = read_all(idle);
    pump_until(&mut conn, |_| idle.is_finished());
    assert_eq!(
        idle.join().unwrap(),
        "",
        "the idle connection is closed at once"
    );

    started.write_all(b"\r\n").unwrap();
    let started = read_all(started);
    pump_until(&mut conn, |_| started.is_finished());
    let reply = started.join().unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply:?}");
    assert!(reply.ends_with("/started"), "{reply:?}");
    assert!(
        reply
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "the request that had begun is answered with Connection: close: {reply:?}"
    );

    // A client accepted before Stop was about to send: it is answered.
    fresh
        .write_all(b"GET /fresh HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let fresh = read_all(fresh);
    pump_until(&mut conn, |_| fresh.is_finished());
    let reply = fresh.join().unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 200 ") && reply.ends_with("/fresh"),
        "{reply:?}"
    );
    assert!(
        reply
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{reply:?}"
    );

    let resp = HELD.with(|h| h.replace(null_mut()));
    // SAFETY: the open chunked response kept by the handler.
    unsafe {
        assert_eq!(
            Response_WriteChunk(resp, b"second".as_ptr() as *const c_void, 6),
            CONNECTION_OK
        );
        assert_eq!(Response_End(resp), CONNECTION_OK);
    }
    let busy = read_all(busy);
    let rc = pump_until(&mut conn, |_| false);
    assert_eq!(rc, CONNECTION_STOPPED);
    let reply = busy.join().unwrap();
    assert!(
        reply.contains("first") && reply.contains("second"),
        "{reply:?}"
    );
    assert!(
        reply.ends_with("0\r\n\r\n"),
        "the response in progress completes: {reply:?}"
    );
    assert_eq!(
        reply.matches("HTTP/1.1 ").count(),
        1,
        "the pipelined request is not started: {reply:?}"
    );
    // SAFETY: a live connection, destroyed once.
    unsafe { Connection_Destroy(&mut conn) };
}
