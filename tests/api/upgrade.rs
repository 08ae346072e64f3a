//! `Response_Upgrade` hands the client's descriptor and the bytes read past
//! the upgrade request to the application exactly once, after the 101 head
//! is out, and never touches the descriptor again; a client gone before
//! the hand-off is reported once (fd -1) and its descriptor closed; requests
//! that do not ask for the upgrade are refused with their codes.
#![allow(clippy::field_reassign_with_default)] // mirrors the C usage: Default, then set fields

use std::ffi::CString;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::raw::{c_int, c_void};
use std::ptr::null_mut;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use connection_core::*;

/// What one `on_upgrade` call received.
#[derive(Debug, Clone, PartialEq)]
struct Call {
    fd: c_int,
    data: Vec<u8>,
    reason: ConnectionCloseReason,
}

static CALLS: Mutex<Vec<Call>> = Mutex::new(Vec::new());
/// The tests share `CALLS` and count the process's descriptors: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

unsafe extern "C" fn on_upgrade(
    _user: *mut c_void,
    fd: c_int,
    data: *const u8,
    len: usize,
    reason: ConnectionCloseReason,
) {
    let data = if len == 0 {
        Vec::new()
    } else {
        // SAFETY: the library passes `len` readable bytes, valid during the call.
        unsafe { std::slice::from_raw_parts(data, len) }.to_vec()
    };
    CALLS.lock().unwrap().push(Call { fd, data, reason });
}

fn header(req: *const Request, name: &str) -> Option<String> {
    let name = CString::new(name).unwrap();
    // SAFETY: a live request during the handler.
    let v = unsafe { Request_Header(req, name.as_ptr(), null_mut()) };
    // SAFETY: NULL or a NUL-terminated string valid during the handler.
    (!v.is_null()).then(|| {
        unsafe { std::ffi::CStr::from_ptr(v) }
            .to_string_lossy()
            .into()
    })
}

/// Upgrades to the protocol named by the request's `X-Proto` header
/// ("test" without one), adding `X-Extra: 1` first; when the upgrade is
/// refused, answers 400 with the code as the body. `/big` gets `BIG` bytes.
unsafe extern "C" fn handler(req: *const Request, resp: *mut Response, _user: *mut c_void) {
    let mut len = 0;
    // SAFETY: live pointers for the duration of the call.
    let path = unsafe { Request_Path(req, &mut len) };
    // SAFETY: `len` bytes at `path`.
    if unsafe { std::slice::from_raw_parts(path as *const u8, len) } == b"/big" {
        let body = vec![b'x'; BIG];
        // SAFETY: as above; the body is copied.
        let rc = unsafe { Response_Send(resp, body.as_ptr() as *const c_void, BIG) };
        assert_eq!(rc, CONNECTION_OK);
        return;
    }
    let proto = header(req, "X-Proto").unwrap_or_else(|| "test".into());
    let proto = CString::new(proto).unwrap();
    // SAFETY: live pointers for the duration of the call.
    unsafe {
        assert_eq!(Response_SetStatus(resp, 101), CONNECTION_ERR_INVALID);
        assert_eq!(
            Response_AddHeader(resp, c"X-Extra".as_ptr(), c"1".as_ptr()),
            CONNECTION_OK
        );
        // Only a handler may upgrade: a deferred response is refused.
        let deferred = header(req, "X-Deferred").is_some();
        if deferred {
            assert_eq!(Response_Defer(resp, None, null_mut()), CONNECTION_OK);
        }
        let callback = if header(req, "X-No-Callback").is_some() {
            None
        } else {
            Some(on_upgrade as _)
        };
        let rc = if header(req, "X-Other-Thread").is_some() {
            // The same call from a thread that is not the loop's.
            let (r, p) = (resp as usize, proto.as_ptr() as usize);
            std::thread::spawn(move || {
                Response_Upgrade(r as *mut Response, p as *const _, callback, null_mut())
            })
            .join()
            .unwrap()
        } else {
            Response_Upgrade(resp, proto.as_ptr(), callback, null_mut())
        };
        if rc != CONNECTION_OK {
            let body = rc.to_string();
            Response_SetStatus(resp, 400);
            assert_eq!(
                Response_Send(resp, body.as_ptr() as *const c_void, body.len()),
                CONNECTION_OK
            );
        } else {
            // The response is complete: every further call is refused.
            assert_eq!(Response_Send(resp, null_mut(), 0), CONNECTION_ERR_STATE);
        }
        if deferred {
            assert_eq!(Response_Release(resp), CONNECTION_OK);
        }
    }
}

/// A response larger than the kernel's socket buffers on both sides.
const BIG: usize = 12 << 20;

fn start(send_timeout_ms: u32) -> (Box<Connection>, u16) {
    // SAFETY: an all-zero Connection is an uninitialised one.
    let mut conn: Box<Connection> = Box::new(unsafe { std::mem::zeroed() });
    let mut cfg = ConnectionConfig::default();
    cfg.host = c"127.0.0.1".as_ptr();
    cfg.port = 0;
    cfg.send_timeout_ms = send_timeout_ms;
    // Room for the upgrade request to start behind a `BIG` response.
    cfg.output_high_water = 2 * BIG as u64;
    // SAFETY: valid pointers to live values.
    unsafe {
        assert_eq!(Connection_InitWith(&mut *conn, &cfg), CONNECTION_OK);
        Connection_SetHandler(&mut *conn, Some(handler), null_mut());
    }
    // SAFETY: live connection.
    let port = unsafe { Connection_Port(&*conn) } as u16;
    (conn, port)
}

/// Runs the loop on this thread until `done`, at most 10 s.
fn pump(conn: &mut Connection, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out running the loop");
        // SAFETY: a live connection, used from this thread only.
        let rc = unsafe { Connection_ProcessTimeout(conn, 5) };
        assert!(rc >= 0, "Process failed: {rc}");
    }
}

fn stats(conn: &Connection) -> ConnectionStats {
    let mut s = ConnectionStats::default();
    // SAFETY: live connection, valid out pointer.
    assert_eq!(unsafe { Connection_GetStats(conn, &mut s) }, CONNECTION_OK);
    s
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

const UPGRADE: &str =
    "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: foo, Test\r\nConnection: keep-alive, Upgrade\r\n";

#[test]
fn hand_off_delivers_the_descriptor_and_the_pipelined_bytes_once() {
    let _serial = serial();
    CALLS.lock().unwrap().clear();
    let (mut conn, port) = start(30_000);
    // Everything is in the socket before the loop first reads it: the
    // upgrade request, the new protocol's first bytes, a pipelined request.
    let after = b"\x81\x05hello GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut wire = format!("{UPGRADE}\r\n").into_bytes();
    wire.extend_from_slice(after);
    client.write_all(&wire).unwrap();
    pump(&mut conn, || !CALLS.lock().unwrap().is_empty());
    let calls = CALLS.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(
        call.reason,
        ConnectionCloseReason::CONNECTION_CLOSE_COMPLETED
    );
    assert!(call.fd >= 0);
    assert_eq!(call.data, after, "the bytes past the request, exactly");

    // The head, then nothing of the pipelined request's answer.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        client.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    for line in [
        "\r\nConnection: Upgrade\r\n",
        "\r\nUpgrade: test\r\n",
        "\r\nX-Extra: 1\r\n",
    ] {
        assert!(head.contains(line), "{line:?} missing from {head}");
    }
    assert!(!head.contains("Content-Length"), "{head}");

    // The descriptor is ours: non-blocking, close-on-exec, the socket.
    let fd = call.fd;
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        assert_ne!(libc::fcntl(fd, libc::F_GETFL) & libc::O_NONBLOCK, 0);
        assert_ne!(libc::fcntl(fd, libc::F_GETFD) & libc::FD_CLOEXEC, 0);
    }
    // The library keeps running and never reads, writes or closes it.
    client.write_all(b"from the client").unwrap();
    let until = Instant::now() + Duration::from_millis(200);
    pump(&mut conn, || Instant::now() >= until);
    let mut buf = [0u8; 64];
    // SAFETY: a descriptor we own, a buffer of 64 bytes.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr() as *mut c_void, 64, 0) };
    assert_eq!(&buf[..n.max(0) as usize], b"from the client");
    // SAFETY: as above.
    let sent = unsafe { libc::send(fd, b"to the client".as_ptr() as *const c_void, 13, 0) };
    assert_eq!(sent, 13);
    let mut got = [0u8; 13];
    client.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"to the client");

    let s = stats(&conn);
    assert_eq!((s.active_connections, s.upgraded, s.requests), (0, 1, 1));
    assert_eq!(
        s.closed_completed + s.closed_peer + s.closed_reset + s.closed_timeout + s.closed_error,
        0,
        "an upgraded connection is not a closed one"
    );
    // SAFETY: live connection; no callback is running.
    unsafe { Connection_Destroy(&mut *conn) };
    assert_eq!(
        CALLS.lock().unwrap().len(),
        1,
        "Destroy reports nothing more"
    );
    // Still open after Destroy: the library does not own it any more.
    // SAFETY: our descriptor.
    assert_eq!(
        unsafe { libc::fcntl(fd, libc::F_GETFD) } & libc::FD_CLOEXEC,
        1
    );
    // SAFETY: our descriptor, closed once.
    assert_eq!(unsafe { libc::close(fd) }, 0);
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "the library sent {rest:?} after the head");
}

/// A client that reads nothing asks for a `BIG` response, then for an
/// upgrade: the 101 head stays queued behind the body, and `finish` ends
/// the connection first.
/// `send_timeout_ms` is long where `finish` is not the timeout itself, so a
/// loaded machine cannot end the connection before `finish` runs.
fn head_stuck(
    send_timeout_ms: u32,
    finish: impl FnOnce(&mut Connection, TcpStream),
) -> (Call, ConnectionStats) {
    CALLS.lock().unwrap().clear();
    let (mut conn, port) = start(send_timeout_ms);
    let fds = open_fds();
    let sock = socket2_small_rcvbuf(port);
    let mut client = sock;
    let wire = format!("GET /big HTTP/1.1\r\nHost: a\r\n\r\n{UPGRADE}\r\n");
    client.write_all(wire.as_bytes()).unwrap();
    // SAFETY: a Connection may be copied by value (a bitwise copy).
    let copy: Connection = unsafe { std::ptr::read(&*conn) };
    pump(&mut conn, || stats(&copy).requests == 2);
    assert!(
        CALLS.lock().unwrap().is_empty(),
        "handed off with the head unsent: {:?}",
        CALLS.lock().unwrap()
    );
    assert_eq!(stats(&conn).active_connections, 1);
    finish(&mut conn, client);
    let calls = CALLS.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let s = stats(&conn);
    assert_eq!(s.upgraded, 0);
    assert_eq!(s.active_connections, 0);
    assert_eq!(open_fds(), fds, "the library closed the descriptor");
    // SAFETY: live connection; no callback is running.
    unsafe { Connection_Destroy(&mut *conn) };
    assert_eq!(CALLS.lock().unwrap().len(), 1, "told once");
    (calls[0].clone(), s)
}

/// A blocking client socket with a tiny receive buffer (set before
/// connecting, so the window stays small).
fn socket2_small_rcvbuf(port: u16) -> TcpStream {
    // SAFETY: plain socket calls on a descriptor we create and own; the
    // address struct is fully initialised.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let size: c_int = 2048;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const c_int as *const c_void,
            std::mem::size_of::<c_int>() as u32,
        );
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as u16;
        addr.sin_port = port.to_be();
        addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let rc = libc::connect(
            fd,
            &addr as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        assert_eq!(rc, 0);
        <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd)
    }
}

fn reset(client: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid option on our socket; closing with it sends an RST.
    unsafe {
        libc::setsockopt(
            client.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const c_void,
            std::mem::size_of::<libc::linger>() as u32,
        );
    }
    drop(client);
}

#[test]
fn a_client_reset_before_the_hand_off_is_reported_once() {
    let _serial = serial();
    let (call, s) = head_stuck(30_000, |conn, client| {
        reset(client);
        pump(conn, || !CALLS.lock().unwrap().is_empty());
    });
    assert_eq!(
        call,
        Call {
            fd: -1,
            data: vec![],
            reason: ConnectionCloseReason::CONNECTION_CLOSE_RESET
        }
    );
    assert_eq!(s.closed_reset, 1);
}

#[test]
fn a_client_that_stops_reading_before_the_hand_off_times_out() {
    let _serial = serial();
    let (call, s) = head_stuck(1_000, |conn, client| {
        pump(conn, || !CALLS.lock().unwrap().is_empty());
        drop(client);
    });
    assert_eq!(
        (call.fd, call.reason),
        (-1, ConnectionCloseReason::CONNECTION_CLOSE_TIMEOUT)
    );
    assert_eq!(s.closed_timeout, 1);
}

#[test]
fn destroy_before_the_hand_off_reports_shutdown() {
    let _serial = serial();
    CALLS.lock().unwrap().clear();
    let (call, _) = head_stuck_destroyed();
    assert_eq!(
        (call.fd, call.reason),
        (-1, ConnectionCloseReason::CONNECTION_CLOSE_SHUTDOWN)
    );
}

/// As `head_stuck`, ended by `Connection_Destroy`.
fn head_stuck_destroyed() -> (Call, ()) {
    CALLS.lock().unwrap().clear();
    let (mut conn, port) = start(30_000);
    let fds = open_fds();
    let mut client = socket2_small_rcvbuf(port);
    client
        .write_all(format!("GET /big HTTP/1.1\r\nHost: a\r\n\r\n{UPGRADE}\r\n").as_bytes())
        .unwrap();
    // SAFETY: a Connection may be copied by value (a bitwise copy).
    let copy: Connection = unsafe { std::ptr::read(&*conn) };
    pump(&mut conn, || stats(&copy).requests == 2);
    assert!(CALLS.lock().unwrap().is_empty());
    // SAFETY: live connection; no callback is running.
    unsafe { Connection_Destroy(&mut *conn) };
    let calls = CALLS.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    drop(client);
    assert!(
        open_fds() < fds,
        "the client's descriptor and the loop's are closed"
    );
    (calls[0].clone(), ())
}

#[test]
fn requests_that_do_not_ask_for_the_upgrade_are_refused_with_a_code() {
    let _serial = serial();
    CALLS.lock().unwrap().clear();
    let (mut conn, port) = start(30_000);
    let cases: &[(&str, c_int)] = &[
        ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", CONNECTION_ERR_NOT_UPGRADE),
        ("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: test\r\n\r\n", CONNECTION_ERR_NOT_UPGRADE),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n",
            CONNECTION_ERR_NOT_UPGRADE,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: other\r\nConnection: upgrade\r\n\r\n",
            CONNECTION_ERR_NOT_UPGRADE,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: testing\r\nConnection: upgrades\r\n\r\n",
            CONNECTION_ERR_NOT_UPGRADE,
        ),
        (
            "GET / HTTP/1.0\r\nUpgrade: test\r\nConnection: upgrade\r\n\r\n",
            CONNECTION_ERR_NOT_UPGRADE,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nUpgrade: test\r\nConnection: upgrade\r\nContent-Length: 3\r\n\r\nabc",
            CONNECTION_ERR_UPGRADE_BODY,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nUpgrade: test\r\nConnection: upgrade\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            CONNECTION_ERR_UPGRADE_BODY,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: test\r\nConnection: upgrade\r\nX-Proto: a b\r\n\r\n",
            CONNECTION_ERR_INVALID,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: test\r\nConnection: upgrade\r\nX-No-Callback: 1\r\n\r\n",
            CONNECTION_ERR_NULL,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: test\r\nConnection: upgrade\r\nX-Other-Thread: 1\r\n\r\n",
            CONNECTION_ERR_WRONG_THREAD,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: test\r\nConnection: upgrade\r\nX-Deferred: 1\r\n\r\n",
            CONNECTION_ERR_STATE,
        ),
    ];
    for &(request, code) in cases {
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        let mut closed = false;
        pump(&mut conn, || {
            client.set_nonblocking(true).unwrap();
            match client.read(&mut buf) {
                Ok(0) => closed = true,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            closed || answer.ends_with(code.to_string().as_bytes())
        });
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 400 "), "{request:?}: {text}");
        assert!(
            text.ends_with(&format!("\r\n\r\n{code}")),
            "{request:?}: expected code {code}, got {text}"
        );
    }
    assert!(
        CALLS.lock().unwrap().is_empty(),
        "no refused upgrade is reported"
    );
    assert_eq!(stats(&conn).upgraded, 0);
    // SAFETY: live connection; no callback is running.
    unsafe { Connection_Destroy(&mut *conn) };
}

#[test]
fn hand_off_waits_for_the_head_to_drain_then_happens_once() {
    let _serial = serial();
    CALLS.lock().unwrap().clear();
    let (mut conn, port) = start(30_000);
    let mut client = socket2_small_rcvbuf(port);
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let after = b"new protocol bytes";
    let mut wire = format!("GET /big HTTP/1.1\r\nHost: a\r\n\r\n{UPGRADE}\r\n").into_bytes();
    wire.extend_from_slice(after);
    client.write_all(&wire).unwrap();
    // SAFETY: a Connection may be copied by value (a bitwise copy).
    let copy: Connection = unsafe { std::ptr::read(&*conn) };
    pump(&mut conn, || stats(&copy).requests == 2);
    assert!(
        CALLS.lock().unwrap().is_empty(),
        "handed off with the head unsent: {:?}",
        CALLS.lock().unwrap()
    );
    // The client reads the big body and the 101 head: the socket drains
    // (EPOLLOUT), the head goes out, the connection is handed off.
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        while !got.ends_with(b"\r\n\r\n") || got.len() < BIG {
            let n = client.read(&mut buf).expect("read");
            assert!(n > 0, "EOF after {} bytes", got.len());
            got.extend_from_slice(&buf[..n]);
        }
        (client, got)
    });
    pump(&mut conn, || !CALLS.lock().unwrap().is_empty());
    let (mut client, got) = reader.join().unwrap();
    let head = String::from_utf8_lossy(&got[got.len() - 300.min(got.len())..]).into_owned();
    assert!(
        head.contains("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    let call = CALLS.lock().unwrap()[0].clone();
    assert_eq!(
        call.reason,
        ConnectionCloseReason::CONNECTION_CLOSE_COMPLETED
    );
    // What followed the request: handed over, or still in the kernel for us.
    let mut rest = call.data.clone();
    let deadline = Instant::now() + Duration::from_secs(5);
    while rest.len() < after.len() && Instant::now() < deadline {
        let mut buf = [0u8; 64];
        // SAFETY: our descriptor, a 64-byte buffer.
        let n = unsafe { libc::recv(call.fd, buf.as_mut_ptr() as *mut c_void, 64, 0) };
        if n > 0 {
            rest.extend_from_slice(&buf[..n as usize]);
        }
    }
    assert_eq!(rest, after);
    // SAFETY: our descriptor.
    assert_eq!(
        unsafe { libc::send(call.fd, b"ok".as_ptr() as *const c_void, 2, 0) },
        2
    );
    let mut two = [0u8; 2];
    client.read_exact(&mut two).unwrap();
    assert_eq!(&two, b"ok");
    let until = Instant::now() + Duration::from_millis(100);
    pump(&mut conn, || Instant::now() >= until);
    assert_eq!(CALLS.lock().unwrap().len(), 1, "once");
    let s = stats(&conn);
    assert_eq!((s.active_connections, s.upgraded), (0, 1));
    // SAFETY: live connection; no callback is running.
    unsafe { Connection_Destroy(&mut *conn) };
    assert_eq!(
        CALLS.lock().unwrap().len(),
        1,
        "Destroy reports nothing more"
    );
    // SAFETY: our descriptor, closed once.
    assert_eq!(unsafe { libc::close(call.fd) }, 0);
}
