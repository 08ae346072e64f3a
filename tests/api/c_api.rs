//! The C API's contracts: NULL and invalid arguments return
//! error codes, Destroy is idempotent, misuse from callbacks is refused, a
//! response whose client is gone answers CONNECTION_ERR_CLOSED.
#![allow(clippy::field_reassign_with_default)] // mirrors the C usage: Default, then set fields

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::raw::{c_char, c_int, c_void};
use std::ptr::{null, null_mut};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use connection_core::*;

fn blank() -> Connection {
    Connection {
        _private_core: null_mut(),
        _private_stop_fd: -1,
        _private_magic: 0,
    }
}

fn start(cfg_edit: impl FnOnce(&mut ConnectionConfig)) -> Connection {
    let mut conn = blank();
    let mut cfg = ConnectionConfig::default();
    cfg.host = c"127.0.0.1".as_ptr();
    cfg.port = 0;
    cfg_edit(&mut cfg);
    // SAFETY: valid pointers to live locals.
    assert_eq!(
        unsafe { Connection_InitWith(&mut conn, &cfg) },
        CONNECTION_OK
    );
    conn
}

/// Runs the loop until `done` says so (bounded).
fn pump(conn: &mut Connection, mut done: impl FnMut(&Connection) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(conn) {
        assert!(Instant::now() < deadline, "timed out pumping the loop");
        // SAFETY: a live connection used from this thread only.
        let rc = unsafe { Connection_ProcessTimeout(conn, 10) };
        assert!(rc >= 0, "Process failed: {rc}");
    }
}

/// Sends `raw` and collects the reply on a helper thread while the loop runs.
fn exchange(conn: &mut Connection, raw: &'static [u8]) -> String {
    // SAFETY: live connection.
    let port = unsafe { Connection_Port(conn) } as u16;
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(raw).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    });
    pump(conn, |_| client.is_finished());
    client.join().unwrap()
}

#[test]
fn null_arguments_return_error_codes() {
    // SAFETY: every call below is documented to accept NULL.
    unsafe {
        assert_eq!(ConnectionConfig_Default(null_mut()), CONNECTION_ERR_NULL);
        assert_eq!(Connection_Init(null_mut()), CONNECTION_ERR_NULL);
        assert_eq!(Connection_InitWith(null_mut(), null()), CONNECTION_ERR_NULL);
        let mut conn = blank();
        assert_eq!(Connection_InitWith(&mut conn, null()), CONNECTION_ERR_NULL);
        assert_eq!(
            Connection_SetHandler(null_mut(), None, null_mut()),
            CONNECTION_ERR_NULL
        );
        assert_eq!(Connection_Process(null_mut()), CONNECTION_ERR_NULL);
        assert_eq!(
            Connection_ProcessTimeout(null_mut(), 0),
            CONNECTION_ERR_NULL
        );
        assert_eq!(Connection_Run(null_mut()), CONNECTION_ERR_NULL);
        assert_eq!(Connection_Stop(null_mut()), CONNECTION_ERR_NULL);
        Connection_Destroy(null_mut());
        assert_eq!(Connection_Fd(null()), CONNECTION_ERR_NULL);
        assert_eq!(Connection_Port(null()), CONNECTION_ERR_NULL);
        assert_eq!(Connection_GetStats(null(), null_mut()), CONNECTION_ERR_NULL);
        let mut stats = ConnectionStats::default();
        assert_eq!(Connection_GetStats(null(), &mut stats), CONNECTION_ERR_NULL);

        assert!(Request_Method(null(), null_mut()).is_null());
        assert!(Request_Path(null(), null_mut()).is_null());
        assert!(Request_Query(null(), null_mut()).is_null());
        assert!(Request_Header(null(), c"Host".as_ptr(), null_mut()).is_null());
        assert_eq!(Request_HeaderCount(null()), 0);
        assert_eq!(
            Request_HeaderAt(null(), 0, null_mut(), null_mut(), null_mut(), null_mut()),
            CONNECTION_ERR_NULL
        );
        let mut len = 7usize;
        assert!(Request_Body(null(), &mut len).is_null());
        assert_eq!(len, 0);
        assert_eq!(
            Request_RemoteAddr(null(), null_mut(), 0),
            CONNECTION_ERR_NULL
        );
        assert_eq!(Request_Version(null()), CONNECTION_ERR_NULL);

        assert_eq!(Response_SetStatus(null_mut(), 200), CONNECTION_ERR_NULL);
        assert_eq!(
            Response_AddHeader(null_mut(), c"a".as_ptr(), c"b".as_ptr()),
            CONNECTION_ERR_NULL
        );
        assert_eq!(Response_Send(null_mut(), null(), 0), CONNECTION_ERR_NULL);
        assert_eq!(Response_BeginChunked(null_mut()), CONNECTION_ERR_NULL);
        assert_eq!(
            Response_WriteChunk(null_mut(), null(), 0),
            CONNECTION_ERR_NULL
        );
        assert_eq!(Response_End(null_mut()), CONNECTION_ERR_NULL);
        assert_eq!(
            Response_Stream(null_mut(), None, None, null_mut()),
            CONNECTION_ERR_NULL
        );

        // Every code has a message; unknown codes too.
        for code in -15..=1 {
            assert!(!Connection_StrError(code).is_null());
        }
        let unknown = std::ffi::CStr::from_ptr(Connection_StrError(-999));
        assert_eq!(unknown.to_str().unwrap(), "unknown error code");
        let name = std::ffi::CStr::from_ptr(Connection_CloseReasonName(3));
        assert_eq!(name.to_str().unwrap(), "timeout");
        let name = std::ffi::CStr::from_ptr(Connection_CloseReasonName(42));
        assert_eq!(name.to_str().unwrap(), "unknown");
    }
}

#[test]
fn lifecycle_misuse_is_harmless() {
    let mut conn = start(|_| {});
    // SAFETY: a live connection, then a destroyed one: both documented.
    unsafe {
        assert!(Connection_Fd(&conn) >= 0);
        assert!(Connection_Port(&conn) > 0);
        // Init on a live handle is refused (it would leak the first core).
        let cfg = ConnectionConfig::default();
        assert_eq!(Connection_InitWith(&mut conn, &cfg), CONNECTION_ERR_STATE);
        Connection_Destroy(&mut conn);
        Connection_Destroy(&mut conn);
        assert_eq!(
            Connection_Process(&mut conn),
            CONNECTION_ERR_NOT_INITIALIZED
        );
        assert_eq!(Connection_Stop(&mut conn), CONNECTION_ERR_NOT_INITIALIZED);
        assert_eq!(Connection_Fd(&conn), CONNECTION_ERR_NOT_INITIALIZED);
        let mut stats = ConnectionStats::default();
        assert_eq!(
            Connection_GetStats(&conn, &mut stats),
            CONNECTION_ERR_NOT_INITIALIZED
        );
        // After Destroy the handle can be initialised again.
        let mut cfg = ConnectionConfig::default();
        cfg.host = c"127.0.0.1".as_ptr();
        cfg.port = 0;
        assert_eq!(Connection_InitWith(&mut conn, &cfg), CONNECTION_OK);
        Connection_Destroy(&mut conn);
    }
}

#[test]
fn bad_configs_are_refused_and_leave_nothing_behind() {
    let try_cfg = |edit: &dyn Fn(&mut ConnectionConfig)| -> c_int {
        let mut conn = blank();
        let mut cfg = ConnectionConfig::default();
        cfg.host = c"127.0.0.1".as_ptr();
        cfg.port = 0;
        edit(&mut cfg);
        // SAFETY: valid pointers to live locals.
        let rc = unsafe { Connection_InitWith(&mut conn, &cfg) };
        // SAFETY: Destroy after a failed Init is documented as harmless.
        unsafe { Connection_Destroy(&mut conn) };
        rc
    };
    assert_eq!(
        try_cfg(&|c| c.host = c"not-an-ip".as_ptr()),
        CONNECTION_ERR_ADDR
    );
    assert_eq!(
        try_cfg(&|c| c.host = c"192.0.2.1".as_ptr()),
        CONNECTION_ERR_ADDR
    );
    assert_eq!(try_cfg(&|c| c.max_connections = 0), CONNECTION_ERR_INVALID);
    assert_eq!(
        try_cfg(&|c| c.header_timeout_ms = 0),
        CONNECTION_ERR_INVALID
    );
    assert_eq!(try_cfg(&|c| c.max_headers = 1000), CONNECTION_ERR_INVALID);
    assert_eq!(try_cfg(&|c| c.backlog = 0), CONNECTION_ERR_INVALID);
    assert_eq!(
        try_cfg(&|c| c.max_header_bytes = 10),
        CONNECTION_ERR_INVALID
    );
    assert_eq!(
        try_cfg(&|c| c.server_header = c"x\r\ny".as_ptr()),
        CONNECTION_ERR_HEADER
    );

    // Address in use.
    let mut first = start(|_| {});
    // SAFETY: live connection.
    let port = unsafe { Connection_Port(&first) } as u16;
    assert_eq!(try_cfg(&|c| c.port = port), CONNECTION_ERR_ADDR_IN_USE);
    // SAFETY: live connection.
    unsafe { Connection_Destroy(&mut first) };
}

/// What the misuse handler observed, per request path.
static OBSERVED: Mutex<Vec<(String, c_int)>> = Mutex::new(Vec::new());

fn note(what: &str, rc: c_int) {
    OBSERVED.lock().unwrap().push((what.to_string(), rc));
}

unsafe extern "C" fn misuse_handler(req: *const Request, resp: *mut Response, user: *mut c_void) {
    let conn = user as *mut Connection;
    // SAFETY: pointers passed by the library for this call.
    unsafe {
        let path = std::ffi::CStr::from_ptr(Request_Path(req, null_mut()))
            .to_str()
            .unwrap()
            .to_string();
        match path.as_str() {
            "/twice" => {
                note(
                    "first",
                    Response_Send(resp, b"one".as_ptr() as *const c_void, 3),
                );
                // The handle is complete now; a second answer is refused.
                note(
                    "second",
                    Response_Send(resp, b"two".as_ptr() as *const c_void, 3),
                );
            }
            "/split" => {
                note(
                    "crlf",
                    Response_AddHeader(resp, c"X-A".as_ptr(), c"a\r\nSet-Cookie: x".as_ptr()),
                );
                note(
                    "badname",
                    Response_AddHeader(resp, c"X A".as_ptr(), c"a".as_ptr()),
                );
                note(
                    "managed",
                    Response_AddHeader(resp, c"Content-Length".as_ptr(), c"5".as_ptr()),
                );
                note("nullname", Response_AddHeader(resp, null(), c"a".as_ptr()));
                note(
                    "emptyname",
                    Response_AddHeader(resp, c"".as_ptr(), c"a".as_ptr()),
                );
                note("nullbody", Response_Send(resp, null(), 5));
                note("status", Response_SetStatus(resp, 99));
                note("process", Connection_Process(conn));
                Connection_Destroy(conn); // ignored from a callback
                note(
                    "ok",
                    Response_Send(resp, b"fine".as_ptr() as *const c_void, 4),
                );
            }
            "/silent" => {}
            _ => {
                Response_Send(resp, null(), 0);
            }
        }
    }
}

#[test]
fn handler_misuse_gets_error_codes_and_nothing_is_sent_twice() {
    let mut conn = start(|_| {});
    let conn_ptr: *mut Connection = &mut conn;
    // SAFETY: live connection; user pointer is the connection itself.
    unsafe { Connection_SetHandler(conn_ptr, Some(misuse_handler), conn_ptr as *mut c_void) };

    let reply = exchange(
        &mut conn,
        b"GET /twice HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(reply.matches("HTTP/1.1").count(), 1, "{reply}");
    assert!(reply.ends_with("one"), "{reply}");

    let reply = exchange(
        &mut conn,
        b"GET /split HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(!reply.contains("Set-Cookie"), "{reply}");
    assert!(reply.ends_with("fine"), "{reply}");

    let reply = exchange(
        &mut conn,
        b"GET /silent HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 500 "), "{reply}");

    let seen = OBSERVED.lock().unwrap().clone();
    let get = |k: &str| seen.iter().find(|(n, _)| n == k).map(|(_, rc)| *rc);
    assert_eq!(get("first"), Some(CONNECTION_OK));
    assert_eq!(get("second"), Some(CONNECTION_ERR_STATE));
    assert_eq!(get("crlf"), Some(CONNECTION_ERR_HEADER));
    assert_eq!(get("badname"), Some(CONNECTION_ERR_HEADER));
    assert_eq!(get("managed"), Some(CONNECTION_ERR_INVALID));
    assert_eq!(get("nullname"), Some(CONNECTION_ERR_NULL));
    assert_eq!(get("emptyname"), Some(CONNECTION_ERR_HEADER));
    assert_eq!(get("nullbody"), Some(CONNECTION_ERR_NULL));
    assert_eq!(get("status"), Some(CONNECTION_ERR_INVALID));
    assert_eq!(get("process"), Some(CONNECTION_ERR_BUSY));
    assert_eq!(get("ok"), Some(CONNECTION_OK));
    // SAFETY: the Destroy inside the callback was ignored: still live.
    unsafe {
        assert!(Connection_Fd(&conn) >= 0);
        Connection_Destroy(&mut conn);
    }
}

/// The open chunked response kept by `keeper_handler` past its return.
static KEPT: Mutex<usize> = Mutex::new(0);

unsafe extern "C" fn keeper_handler(_req: *const Request, resp: *mut Response, _user: *mut c_void) {
    // SAFETY: the live handle passed by the library.
    unsafe {
        assert_eq!(Response_BeginChunked(resp), CONNECTION_OK);
        assert_eq!(
            Response_WriteChunk(resp, b"first".as_ptr() as *const c_void, 5),
            CONNECTION_OK
        );
    }
    *KEPT.lock().unwrap() = resp as usize;
}

#[test]
fn response_outliving_its_client_reports_closed_and_is_released() {
    let mut conn = start(|c| c.linger_timeout_ms = 100);
    // SAFETY: live connection.
    unsafe { Connection_SetHandler(&mut conn, Some(keeper_handler), null_mut()) };
    // SAFETY: live connection.
    let port = unsafe { Connection_Port(&conn) } as u16;
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    pump(&mut conn, |_| *KEPT.lock().unwrap() != 0);
    let resp = *KEPT.lock().unwrap() as *mut Response;
    // The client reads the head and first chunk, then resets.
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 512];
    let n = client.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("first"));
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid socket and option struct.
    unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&client),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const _ as *const c_void,
            std::mem::size_of::<libc::linger>() as u32,
        );
    }
    drop(client);
    let mut stats = ConnectionStats::default();
    pump(&mut conn, |conn| {
        // SAFETY: live connection.
        unsafe { Connection_GetStats(conn, &mut stats) };
        stats.active_connections == 0
    });
    assert_eq!(stats.closed_reset, 1);
    // SAFETY: the handle is detached but still valid until Response_End.
    unsafe {
        assert_eq!(
            Response_WriteChunk(resp, b"x".as_ptr() as *const c_void, 1),
            CONNECTION_ERR_CLOSED
        );
        assert_eq!(Response_SetStatus(resp, 200), CONNECTION_ERR_CLOSED);
        assert_eq!(Response_End(resp), CONNECTION_ERR_CLOSED);
        Connection_Destroy(&mut conn);
    }
}

#[test]
fn stop_returns_promptly_when_idle() {
    let mut conn = start(|_| {});
    // SAFETY: live connection.
    let port = unsafe { Connection_Port(&conn) } as u16;
    // An idle keep-alive client must not hold the stop up.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut stats = ConnectionStats::default();
    pump(&mut conn, |conn| {
        // SAFETY: live connection.
        unsafe { Connection_GetStats(conn, &mut stats) };
        stats.responses == 1
    });
    let started = Instant::now();
    // SAFETY: live connection; Stop is async-signal-safe and thread-safe.
    assert_eq!(unsafe { Connection_Stop(&mut conn) }, CONNECTION_OK);
    // SAFETY: live connection.
    assert_eq!(unsafe { Connection_Run(&mut conn) }, CONNECTION_OK);
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(50),
        "Run took {took:?} to return"
    );
    // SAFETY: live connection.
    unsafe {
        Connection_GetStats(&conn, &mut stats);
        assert_eq!(stats.closed_shutdown, 1);
        Connection_Destroy(&mut conn);
    }
    let _ = idle.read(&mut [0u8; 256]);
    let _: *const c_char = null();
}
