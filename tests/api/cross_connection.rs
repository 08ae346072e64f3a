//! A response kept by the application is written to from inside another
//! connection's callback (a request handler, a stream producer, a stream
//! cleanup) and the bytes reach its client at once: the publish/subscribe
//! pattern (chat, server-sent events, long polling).
#![allow(clippy::field_reassign_with_default)] // mirrors the C usage: Default, then set fields

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::raw::c_void;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use connection_core::*;

/// The subscriber's open chunked response (loop thread only).
static SUBSCRIBER: AtomicPtr<Response> = AtomicPtr::new(null_mut());

/// Publishes to the subscriber: one chunk, then the end.
unsafe fn publish() {
    let sub = SUBSCRIBER.swap(null_mut(), Ordering::SeqCst);
    assert!(!sub.is_null(), "no subscriber to publish to");
    // SAFETY: the subscriber's handle stays valid until Response_End.
    unsafe {
        assert_eq!(
            Response_WriteChunk(sub, b"news".as_ptr() as *const c_void, 4),
            CONNECTION_OK
        );
        assert_eq!(Response_End(sub), CONNECTION_OK);
    }
}

unsafe extern "C" fn produce_and_publish(user: *mut c_void, buf: *mut u8, cap: usize) -> isize {
    // SAFETY: `user` is the Box<bool> made by the handler; `buf` has `cap` bytes.
    unsafe {
        let done = &mut *(user as *mut bool);
        if *done || cap < 2 {
            return 0;
        }
        *done = true;
        publish();
        std::ptr::copy_nonoverlapping(b"ok".as_ptr(), buf, 2);
        2
    }
}

unsafe extern "C" fn produce_nothing(_user: *mut c_void, _buf: *mut u8, _cap: usize) -> isize {
    0
}

unsafe extern "C" fn free_flag(user: *mut c_void, _reason: ConnectionCloseReason) {
    // SAFETY: made by Box::into_raw in the handler; the cleanup runs once.
    drop(unsafe { Box::from_raw(user as *mut bool) });
}

unsafe extern "C" fn publish_in_cleanup(_user: *mut c_void, _reason: ConnectionCloseReason) {
    // SAFETY: called on the loop thread, like every callback.
    unsafe { publish() };
}

unsafe extern "C" fn handler(req: *const Request, resp: *mut Response, _user: *mut c_void) {
    // SAFETY: the library passes live pointers for the duration of the call.
    unsafe {
        let mut len = 0;
        let path = Request_Path(req, &mut len);
        let path = std::slice::from_raw_parts(path as *const u8, len);
        match path {
            b"/subscribe" => {
                assert_eq!(Response_BeginChunked(resp), CONNECTION_OK);
                SUBSCRIBER.store(resp, Ordering::SeqCst);
            }
            b"/publish" => {
                publish();
                Response_Send(resp, b"ok".as_ptr() as *const c_void, 2);
            }
            b"/publish-from-producer" => {
                let flag = Box::into_raw(Box::new(false)) as *mut c_void;
                Response_Stream(resp, Some(produce_and_publish), Some(free_flag), flag);
            }
            b"/publish-from-cleanup" => {
                Response_Stream(
                    resp,
                    Some(produce_nothing),
                    Some(publish_in_cleanup),
                    null_mut(),
                );
            }
            _ => {
                Response_SetStatus(resp, 404);
                Response_Send(resp, null_mut(), 0);
            }
        }
    }
}

/// Runs the loop on this thread until `done`, at most 10 s.
fn pump(conn: &mut Connection, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out running the loop");
        // SAFETY: a live connection, used from this thread only.
        let rc = unsafe { Connection_ProcessTimeout(conn, 5) };
        assert!(rc >= 0, "Process failed: {rc}");
    }
}

fn read_until(s: &mut TcpStream, marker: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(marker.len()).any(|w| w == marker) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read: {e} after {:?}", String::from_utf8_lossy(&got)),
        }
    }
    got
}

/// A subscriber opens a chunked response; a publisher's request makes
/// `publish()` run from the callback `publish_path` leads to. Returns how
/// long the subscriber waited for the chunk and the end after the
/// publisher's response arrived.
fn publish_through(publish_path: &'static str) -> Duration {
    // SAFETY: an all-zero Connection is an uninitialised one.
    let mut conn: Connection = unsafe { std::mem::zeroed() };
    let mut cfg = ConnectionConfig::default();
    cfg.host = c"127.0.0.1".as_ptr();
    cfg.port = 0;
    // SAFETY: valid pointers to live locals.
    unsafe {
        assert_eq!(Connection_InitWith(&mut conn, &cfg), CONNECTION_OK);
        Connection_SetHandler(&mut conn, Some(handler), null_mut());
    }
    // SAFETY: live connection.
    let port = unsafe { Connection_Port(&conn) } as u16;
    let request = format!("GET {publish_path} HTTP/1.1\r\nHost: a\r\n\r\n");
    let client = thread::spawn(move || {
        let mut sub = TcpStream::connect(("127.0.0.1", port)).unwrap();
        sub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sub.write_all(b"GET /subscribe HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        let head = read_until(&mut sub, b"\r\n\r\n");
        assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
        let mut publisher = TcpStream::connect(("127.0.0.1", port)).unwrap();
        publisher
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        publisher.write_all(request.as_bytes()).unwrap();
        // "ok" as a whole body, or the end of a chunked one.
        let end: &[u8] = if publish_path == "/publish" {
            b"ok"
        } else {
            b"0\r\n\r\n"
        };
        let answer = read_until(&mut publisher, end);
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
        let published = Instant::now();
        let body = read_until(&mut sub, b"0\r\n\r\n");
        let waited = published.elapsed();
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains("news\r\n0\r\n\r\n"),
            "the subscriber got {text:?}"
        );
        waited
    });
    pump(&mut conn, || client.is_finished());
    let waited = client.join().expect("client thread");
    // SAFETY: live connection; no callback is running.
    unsafe { Connection_Destroy(&mut conn) };
    waited
}

#[test]
fn writes_from_another_connections_callbacks_arrive_at_once() {
    for path in [
        "/publish",
        "/publish-from-producer",
        "/publish-from-cleanup",
    ] {
        let waited = publish_through(path);
        assert!(
            waited < Duration::from_millis(50),
            "{path}: the subscriber waited {waited:?} for what was published"
        );
    }
}
