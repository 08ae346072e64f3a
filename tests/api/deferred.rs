//! Deferred responses (`Response_Defer` / `Response_Release`): answered
//! later on the loop thread with the right bytes, pipelined requests behind
//! one wait and are answered in order, the response timeout answers 503,
//! a client leaving first makes every call return CONNECTION_ERR_CLOSED and
//! runs the cleanup once, Destroy runs each pending cleanup once, an
//! unanswered handler without Defer still gets 500, and a client sending
//! behind a deferred request is not buffered without bound.
#![allow(clippy::field_reassign_with_default)] // mirrors the C usage: Default, then set fields

use std::cell::RefCell;
use std::ffi::CStr;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::raw::{c_char, c_int, c_void};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

use connection_core::*;

/// What one test's handler saw (loop thread only).
#[derive(Default)]
struct State {
    /// Paths the handler was called with, in order.
    calls: Vec<String>,
    /// Deferred handles, by the id in their path (`/defer/<id>`).
    held: Vec<(u32, *mut Response)>,
    /// Cleanup calls: (id, reason).
    closes: Vec<(u32, ConnectionCloseReason)>,
    /// Return codes of calls the handler made that the test checks.
    codes: Vec<c_int>,
    /// The cleanup releases the handle itself.
    release_in_cleanup: bool,
    /// Tags given as cleanup `user` (freed with the state).
    #[allow(clippy::vec_box)] // boxed: each Tag's address is handed out
    tags: Vec<Box<Tag>>,
}

/// A cleanup's `user`: which state, which deferred response.
struct Tag {
    state: *const RefCell<State>,
    id: u32,
    resp: *mut Response,
}

unsafe extern "C" fn on_close(user: *mut c_void, reason: ConnectionCloseReason) {
    // SAFETY: a Tag owned by the test's state, which outlives the loop.
    let tag = unsafe { &*(user as *const Tag) };
    // SAFETY: the state outlives the loop; loop thread only.
    let state = unsafe { &*tag.state };
    state.borrow_mut().closes.push((tag.id, reason));
    if state.borrow().release_in_cleanup {
        // SAFETY: the handle stays valid until released.
        let rc = unsafe { Response_Release(tag.resp) };
        state.borrow_mut().codes.push(rc);
    }
}

fn send(resp: *mut Response, body: &[u8]) -> c_int {
    // SAFETY: a live handle; `body` is readable for the call.
    unsafe { Response_Send(resp, body.as_ptr() as *const c_void, body.len()) }
}

unsafe extern "C" fn handler(req: *const Request, resp: *mut Response, user: *mut c_void) {
    // SAFETY: the test's state; the library's pointers are live for the call.
    let state = unsafe { &*(user as *const RefCell<State>) };
    let path = unsafe {
        let mut len = 0;
        let p = Request_Path(req, &mut len);
        String::from_utf8_lossy(std::slice::from_raw_parts(p as *const u8, len)).into_owned()
    };
    state.borrow_mut().calls.push(path.clone());
    if let Some(id) = path.strip_prefix("/defer/") {
        let id: u32 = id.parse().unwrap();
        let mut tag = Box::new(Tag { state, id, resp });
        let user = &mut *tag as *mut Tag as *mut c_void;
        // SAFETY: live handle; the tag lives as long as the state.
        let rc = unsafe { Response_Defer(resp, Some(on_close), user) };
        assert_eq!(rc, CONNECTION_OK);
        let mut s = state.borrow_mut();
        s.tags.push(tag);
        s.held.push((id, resp));
    } else if path == "/defer-twice" {
        // SAFETY: live handle.
        let codes = unsafe {
            [
                Response_Defer(resp, None, null_mut()),
                Response_Defer(resp, None, null_mut()),
            ]
        };
        state.borrow_mut().codes.extend(codes);
        assert_eq!(send(resp, b"now"), CONNECTION_OK);
        // SAFETY: deferred, so valid until released.
        let late = unsafe { [Response_SetStatus(resp, 201), Response_Release(resp)] };
        state.borrow_mut().codes.extend(late);
    } else if path == "/answer-held" {
        // Answers every held response from this (another connection's) handler.
        let held: Vec<_> = state.borrow_mut().held.drain(..).collect();
        for (id, r) in held {
            let sent = send(r, format!("late{id}").as_bytes());
            // SAFETY: deferred, so valid until released.
            let released = unsafe { Response_Release(r) };
            state.borrow_mut().codes.extend([sent, released]);
        }
        let sent = send(resp, b"answered");
        state.borrow_mut().codes.push(sent);
    } else if path == "/nothing" {
        // Returns without an answer and without Defer.
    } else if let Some(body) = path.strip_prefix("/now/") {
        assert_eq!(send(resp, body.as_bytes()), CONNECTION_OK);
    } else {
        panic!("unexpected path {path}");
    }
}

struct Server {
    conn: Connection,
    state: Box<RefCell<State>>,
    port: u16,
}

impl Server {
    fn start(edit: impl FnOnce(&mut ConnectionConfig)) -> Server {
        // SAFETY: an all-zero Connection is an uninitialised one.
        let mut conn: Connection = unsafe { std::mem::zeroed() };
        let mut cfg = ConnectionConfig::default();
        cfg.host = c"127.0.0.1".as_ptr();
        cfg.port = 0;
        edit(&mut cfg);
        let state = Box::new(RefCell::new(State::default()));
        // SAFETY: valid pointers; the state outlives the loop.
        unsafe {
            assert_eq!(Connection_InitWith(&mut conn, &cfg), CONNECTION_OK);
            let user = &*state as *const RefCell<State> as *mut c_void;
            Connection_SetHandler(&mut conn, Some(handler), user);
        }
        // SAFETY: live connection.
        let port = unsafe { Connection_Port(&conn) } as u16;
        Server { conn, state, port }
    }

    /// Runs the loop until `done`, at most 10 s.
    fn pump_until(&mut self, mut done: impl FnMut(&mut Server) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out running the loop");
            // SAFETY: a live connection, used from this thread only.
            let rc = unsafe { Connection_ProcessTimeout(&mut self.conn, 5) };
            assert!(rc >= 0, "Process failed: {rc}");
        }
    }

    /// Runs the loop for `d`.
    fn pump_for(&mut self, d: Duration) {
        let until = Instant::now() + d;
        self.pump_until(|_| Instant::now() >= until);
    }

    fn held(&self) -> Vec<(u32, *mut Response)> {
        self.state.borrow().held.clone()
    }

    fn stats(&self) -> ConnectionStats {
        let mut s = ConnectionStats::default();
        // SAFETY: live connection.
        unsafe { Connection_GetStats(&self.conn, &mut s) };
        s
    }

    fn destroy(&mut self) {
        // SAFETY: live connection, no callback running.
        unsafe { Connection_Destroy(&mut self.conn) };
    }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn read_all(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn reset(s: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and option struct.
    unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&s),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const _ as *const c_void,
            std::mem::size_of::<libc::linger>() as u32,
        );
    }
    drop(s);
}

/// The response heads and bodies in `text`, in order, as (status, body).
fn responses(text: &str) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(head_end) = rest.find("\r\n\r\n") {
        let head = &rest[..head_end];
        let status: u16 = head[9..12].parse().unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map(|v| v.parse().unwrap())
            .unwrap_or(0);
        let body_start = head_end + 4;
        out.push((status, rest[body_start..body_start + len].to_string()));
        rest = &rest[body_start + len..];
    }
    out
}

#[test]
fn deferred_answer_sent_later_from_the_loop_thread() {
    let mut srv = Server::start(|_| {});
    let port = srv.port;
    let client = thread::spawn(move || {
        let mut s = connect(port);
        s.write_all(b"GET /defer/1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .unwrap();
        read_all(&mut s)
    });
    srv.pump_until(|s| s.held().len() == 1);
    // Nothing is sent while the application has not answered.
    srv.pump_for(Duration::from_millis(100));
    assert!(!client.is_finished(), "the client got an answer too early");
    let (_, resp) = srv.held()[0];
    // SAFETY: a deferred handle, valid until released; loop thread, outside
    // any callback.
    unsafe {
        assert_eq!(Response_SetStatus(resp, 202), CONNECTION_OK);
        assert_eq!(
            Response_AddHeader(resp, c"X-Late".as_ptr(), c"yes".as_ptr()),
            CONNECTION_OK
        );
        assert_eq!(send(resp, b"later"), CONNECTION_OK);
        // Answered: still valid memory, refused as a second answer.
        assert_eq!(send(resp, b"again"), CONNECTION_ERR_STATE);
        assert_eq!(Response_SetStatus(resp, 200), CONNECTION_ERR_STATE);
        assert_eq!(Response_Release(resp), CONNECTION_OK);
    }
    srv.state.borrow_mut().held.clear();
    srv.pump_until(|_| client.is_finished());
    let text = client.join().unwrap();
    assert!(text.starts_with("HTTP/1.1 202 Accepted\r\n"), "{text:?}");
    assert!(text.contains("\r\nX-Late: yes\r\n"), "{text:?}");
    assert!(text.contains("\r\nContent-Length: 5\r\n"), "{text:?}");
    assert!(text.ends_with("\r\n\r\nlater"), "{text:?}");

    // Answered from another connection's handler.
    let client = thread::spawn(move || {
        let mut s = connect(port);
        s.write_all(b"GET /defer/2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .unwrap();
        read_all(&mut s)
    });
    srv.pump_until(|s| s.held().len() == 1);
    let mut other = connect(port);
    other
        .write_all(b"GET /answer-held HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    srv.pump_until(|_| client.is_finished());
    let text = client.join().unwrap();
    assert_eq!(
        responses(&text),
        vec![(200, "late2".to_string())],
        "{text:?}"
    );
    srv.pump_for(Duration::from_millis(20));
    assert!(read_all(&mut other).ends_with("answered"));
    assert_eq!(srv.state.borrow().codes, vec![CONNECTION_OK; 3]);
    let stats = srv.stats();
    assert_eq!(stats.deferred, 2);
    assert_eq!(stats.response_timeouts, 0);
    assert!(
        srv.state.borrow().closes.is_empty(),
        "no cleanup for answered responses"
    );
    srv.destroy();
}

#[test]
fn pipelined_requests_wait_behind_a_deferred_one() {
    let mut srv = Server::start(|_| {});
    let port = srv.port;
    let client = thread::spawn(move || {
        let mut s = connect(port);
        s.write_all(
            b"GET /defer/1 HTTP/1.1\r\nHost: a\r\n\r\n\
              GET /now/second HTTP/1.1\r\nHost: a\r\n\r\n\
              GET /now/third HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        read_all(&mut s)
    });
    srv.pump_until(|s| s.held().len() == 1);
    srv.pump_for(Duration::from_millis(100));
    assert_eq!(
        srv.state.borrow().calls,
        vec!["/defer/1"],
        "a pipelined request was handed to the handler before the deferred one was answered"
    );
    let (_, resp) = srv.held()[0];
    // SAFETY: deferred handle, loop thread.
    unsafe {
        assert_eq!(Response_BeginChunked(resp), CONNECTION_OK);
        assert_eq!(
            Response_WriteChunk(resp, b"first".as_ptr() as *const c_void, 5),
            CONNECTION_OK
        );
        assert_eq!(Response_End(resp), CONNECTION_OK);
        assert_eq!(Response_Release(resp), CONNECTION_OK);
    }
    srv.pump_until(|_| client.is_finished());
    let text = client.join().unwrap();
    let first = text.find("5\r\nfirst\r\n0\r\n\r\n").expect(&text);
    let second = text.find("second").expect(&text);
    let third = text.find("third").expect(&text);
    assert!(first < second && second < third, "out of order: {text:?}");
    assert_eq!(
        srv.state.borrow().calls,
        vec!["/defer/1", "/now/second", "/now/third"]
    );
    srv.destroy();
}

static LOGGER: Once = Once::new();
static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

unsafe extern "C" fn on_log(
    _user: *mut c_void,
    level: c_int,
    _target: *const c_char,
    message: *const c_char,
) {
    if level == CONNECTION_LOG_WARN {
        // SAFETY: a NUL-terminated string valid for the call.
        let m = unsafe { CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned();
        WARNINGS.lock().unwrap_or_else(|p| p.into_inner()).push(m);
    }
}

#[test]
fn never_answered_gets_503_after_the_response_timeout() {
    LOGGER.call_once(|| {
        // SAFETY: a valid callback; process-wide, set once.
        let rc = unsafe { Connection_SetLogger(Some(on_log), null_mut(), CONNECTION_LOG_WARN) };
        assert_eq!(rc, CONNECTION_OK);
    });
    let mut srv = Server::start(|c| c.response_timeout_ms = 200);
    let port = srv.port;
    let got = Arc::new(Mutex::new(None));
    let got2 = got.clone();
    let client = thread::spawn(move || {
        let mut s = connect(port);
        s.write_all(b"GET /defer/7 HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        let sent = Instant::now();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).unwrap();
        *got2.lock().unwrap() = Some(sent.elapsed());
        let first = String::from_utf8_lossy(&buf[..n]).into_owned();
        // The connection goes on after the 503.
        s.write_all(b"GET /now/after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .unwrap();
        (first, read_all(&mut s))
    });
    srv.pump_until(|_| client.is_finished());
    let (first, rest) = client.join().unwrap();
    let waited = got.lock().unwrap().unwrap();
    assert_eq!(responses(&first).len(), 1, "{first:?}");
    assert_eq!(responses(&first)[0].0, 503, "{first:?}");
    assert!(
        waited >= Duration::from_millis(190) && waited < Duration::from_secs(3),
        "503 after {waited:?}"
    );
    assert_eq!(responses(&rest), vec![(200, "after".to_string())]);
    let (_, resp) = srv.held()[0];
    // SAFETY: deferred handle, valid until released.
    unsafe {
        assert_eq!(send(resp, b"too late"), CONNECTION_ERR_CLOSED);
        assert_eq!(Response_SetStatus(resp, 200), CONNECTION_ERR_CLOSED);
        assert_eq!(Response_BeginChunked(resp), CONNECTION_ERR_CLOSED);
    }
    assert_eq!(
        srv.state.borrow().closes,
        vec![(7, ConnectionCloseReason::CONNECTION_CLOSE_TIMEOUT)]
    );
    // SAFETY: as above.
    assert_eq!(unsafe { Response_Release(resp) }, CONNECTION_OK);
    let stats = srv.stats();
    assert_eq!(stats.response_timeouts, 1);
    assert!(
        WARNINGS
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.contains("deferred") && m.contains("503")),
        "no warning logged for the 503"
    );
    srv.destroy();
    assert_eq!(srv.state.borrow().closes.len(), 1, "cleanup called again");
}

#[test]
fn client_gone_first_closes_the_handle_and_service_goes_on() {
    let mut srv = Server::start(|_| {});
    let port = srv.port;
    let mut s = connect(port);
    s.write_all(b"GET /defer/3 HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    srv.pump_until(|s| s.held().len() == 1);
    reset(s);
    srv.pump_until(|s| s.stats().active_connections == 0);
    assert_eq!(
        srv.state.borrow().closes,
        vec![(3, ConnectionCloseReason::CONNECTION_CLOSE_RESET)]
    );
    let (_, resp) = srv.held()[0];
    // A new client takes the freed connection slot; the stale handle still
    // refers to the gone one.
    let port2 = port;
    let client = thread::spawn(move || {
        let mut s = connect(port2);
        s.write_all(b"GET /now/fine HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .unwrap();
        read_all(&mut s)
    });
    srv.pump_until(|s| s.state.borrow().calls.len() == 2);
    // SAFETY: deferred handle, valid until released.
    unsafe {
        assert_eq!(send(resp, b"x"), CONNECTION_ERR_CLOSED);
        assert_eq!(
            Response_AddHeader(resp, c"A".as_ptr(), c"b".as_ptr()),
            CONNECTION_ERR_CLOSED
        );
        assert_eq!(Response_BeginChunked(resp), CONNECTION_ERR_CLOSED);
        assert_eq!(Response_End(resp), CONNECTION_ERR_CLOSED);
    }
    srv.pump_until(|_| client.is_finished());
    assert!(client.join().unwrap().ends_with("\r\n\r\nfine"));
    // SAFETY: as above.
    unsafe {
        assert_eq!(send(resp, b"x"), CONNECTION_ERR_CLOSED);
        assert_eq!(Response_Release(resp), CONNECTION_OK);
    }
    srv.destroy();
    assert_eq!(srv.state.borrow().closes.len(), 1, "cleanup called again");
}

#[test]
fn half_closed_client_still_gets_the_deferred_answer() {
    let mut srv = Server::start(|_| {});
    let port = srv.port;
    let client = thread::spawn(move || {
        let mut s = connect(port);
        s.write_all(b"GET /defer/4 HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        read_all(&mut s)
    });
    srv.pump_until(|s| s.held().len() == 1);
    srv.pump_for(Duration::from_millis(50));
    let (_, resp) = srv.held()[0];
    assert_eq!(send(resp, b"still"), CONNECTION_OK);
    // SAFETY: deferred handle.
    assert_eq!(unsafe { Response_Release(resp) }, CONNECTION_OK);
    srv.pump_until(|_| client.is_finished());
    assert_eq!(
        responses(&client.join().unwrap()),
        vec![(200, "still".to_string())]
    );
    assert!(srv.state.borrow().closes.is_empty());
    srv.destroy();
}

#[test]
fn destroy_runs_each_pending_cleanup_once() {
    for release_in_cleanup in [false, true] {
        let mut srv = Server::start(|_| {});
        srv.state.borrow_mut().release_in_cleanup = release_in_cleanup;
        let mut clients = Vec::new();
        for id in 0..3 {
            let mut s = connect(srv.port);
            write!(s, "GET /defer/{id} HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
            clients.push(s);
        }
        srv.pump_until(|s| s.held().len() == 3);
        // One answered and released, one answered and not released: no
        // cleanup for either.
        let held = srv.held();
        let mut s = connect(srv.port);
        s.write_all(b"GET /defer/9 HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        srv.pump_until(|s| s.held().len() == 4);
        let (_, answered) = srv.held()[3];
        assert_eq!(send(answered, b"done"), CONNECTION_OK);
        srv.destroy();
        let mut closes = srv.state.borrow().closes.clone();
        closes.sort_by_key(|c| c.0);
        let want: Vec<_> = held
            .iter()
            .map(|&(id, _)| (id, ConnectionCloseReason::CONNECTION_CLOSE_SHUTDOWN))
            .collect();
        assert_eq!(closes, want, "release_in_cleanup={release_in_cleanup}");
        if release_in_cleanup {
            assert_eq!(srv.state.borrow().codes, vec![CONNECTION_OK; 3]);
        }
        for mut c in clients {
            let _ = c.read(&mut [0u8; 64]);
        }
    }
}

#[test]
fn returning_without_an_answer_or_defer_is_still_500() {
    let mut srv = Server::start(|_| {});
    let port = srv.port;
    let client = thread::spawn(move || {
        let mut s = connect(port);
        s.write_all(b"GET /nothing HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        read_all(&mut s)
    });
    srv.pump_until(|_| client.is_finished());
    let text = client.join().unwrap();
    assert!(text.starts_with("HTTP/1.1 500 "), "{text:?}");
    // Defer twice, answer at once, then calls on the answered handle.
    let client = thread::spawn(move || {
        let mut s = connect(port);
        s.write_all(b"GET /defer-twice HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .unwrap();
        read_all(&mut s)
    });
    srv.pump_until(|_| client.is_finished());
    assert!(client.join().unwrap().ends_with("\r\n\r\nnow"));
    assert_eq!(
        srv.state.borrow().codes,
        vec![
            CONNECTION_OK,
            CONNECTION_ERR_STATE,
            CONNECTION_ERR_STATE,
            CONNECTION_OK
        ]
    );
    // SAFETY: NULL is refused.
    unsafe {
        assert_eq!(
            Response_Defer(null_mut(), None, null_mut()),
            CONNECTION_ERR_NULL
        );
        assert_eq!(Response_Release(null_mut()), CONNECTION_ERR_NULL);
    }
    srv.destroy();
}

#[test]
fn input_behind_a_deferred_request_is_bounded() {
    let mut srv = Server::start(|_| {});
    let port = srv.port;
    let blocked = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let (b2, w2) = (blocked.clone(), written.clone());
    let client = thread::spawn(move || {
        let mut s = connect(port);
        s.write_all(b"GET /defer/5 HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        s.set_write_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let junk = [b'x'; 64 * 1024];
        // Far more than any socket buffer: if the server read it all, this
        // would never block.
        while w2.load(Ordering::SeqCst) < 256 * 1024 * 1024 {
            match s.write(&junk) {
                Ok(n) => {
                    w2.fetch_add(n, Ordering::SeqCst);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break;
                }
                Err(e) => panic!("write: {e}"),
            }
        }
        b2.store(true, Ordering::SeqCst);
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    srv.pump_until(|_| blocked.load(Ordering::SeqCst) || client.is_finished());
    let total = written.load(Ordering::SeqCst);
    eprintln!("the client wrote {total} bytes before its writes blocked");
    assert!(
        total < 64 * 1024 * 1024,
        "the client wrote {total} bytes without blocking"
    );
    // Still open, still waiting: backpressure, not an error.
    assert_eq!(srv.stats().active_connections, 1);
    let (_, resp) = srv.held()[0];
    assert_eq!(send(resp, b"ok"), CONNECTION_OK);
    // SAFETY: deferred handle.
    assert_eq!(unsafe { Response_Release(resp) }, CONNECTION_OK);
    srv.pump_until(|_| client.is_finished());
    let first = client.join().unwrap();
    assert!(first.starts_with("HTTP/1.1 200 "), "{first:?}");
    assert!(srv.state.borrow().closes.is_empty());
    srv.destroy();
}
