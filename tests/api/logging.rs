//! Logging: `Connection_SetLogger` forwards the library's records to a C
//! callback (here a Rust `extern "C" fn` through the rlib), filtered by
//! level; `CONNECTION_LOG_OFF` silences it; an unknown level is refused.
//! Then the C example server as a child: `CONNECTION_LOG=debug` prints the
//! close records on stderr, and without the variable the library prints
//! nothing at all.
//!
//! The logger is process-wide, so every in-process check is in ONE test
//! function; the child-process checks do not touch this process's logger.

#[path = "../common/mod.rs"]
mod common;

use std::ffi::CStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::raw::{c_char, c_int, c_void};
use std::process::Command;
use std::ptr::null_mut;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use connection_core::*;

/// One record as the callback saw it.
#[derive(Clone, Debug)]
struct Record {
    level: c_int,
    target: String,
    message: String,
}

static RECORDS: Mutex<Vec<Record>> = Mutex::new(Vec::new());
/// The `user` pointer passed to Connection_SetLogger.
static USER_TAG: u8 = 0;
static WRONG_USER: Mutex<u32> = Mutex::new(0);

unsafe extern "C" fn on_log(
    user: *mut c_void,
    level: c_int,
    target: *const c_char,
    message: *const c_char,
) {
    if !std::ptr::eq(user as *const u8, &USER_TAG) {
        *WRONG_USER.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    }
    // SAFETY: the library passes NUL-terminated strings valid for the call.
    let (target, message) = unsafe {
        (
            CStr::from_ptr(target).to_string_lossy().into_owned(),
            CStr::from_ptr(message).to_string_lossy().into_owned(),
        )
    };
    RECORDS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Record {
            level,
            target,
            message,
        });
}

fn take_records() -> Vec<Record> {
    std::mem::take(&mut *RECORDS.lock().unwrap_or_else(|p| p.into_inner()))
}

/// The close record of the client whose local port is `local`.
fn close_record(records: &[Record], local: u16) -> &Record {
    let want = format!("closed 127.0.0.1:{local} (fd ");
    records
        .iter()
        .find(|r| r.message.starts_with(&want))
        .unwrap_or_else(|| panic!("no record starting {want:?}; got {records:#?}"))
}

fn set_logger(level: c_int) -> c_int {
    // SAFETY: a valid callback; the user pointer is only compared.
    unsafe { Connection_SetLogger(Some(on_log), &USER_TAG as *const u8 as *mut c_void, level) }
}

unsafe extern "C" fn hello(_req: *const Request, resp: *mut Response, _user: *mut c_void) {
    // SAFETY: `resp` is live for the handler call.
    unsafe { Response_Send(resp, b"ok".as_ptr().cast(), 2) };
}

fn stats(conn: &Connection) -> ConnectionStats {
    let mut s = ConnectionStats::default();
    // SAFETY: live connection, valid out-pointer.
    assert_eq!(unsafe { Connection_GetStats(conn, &mut s) }, CONNECTION_OK);
    s
}

/// Runs the loop (bounded) until `done`.
fn pump(conn: &mut Connection, what: &str, mut done: impl FnMut(&Connection) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(conn) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        // SAFETY: a live connection used from this thread only.
        let rc = unsafe { Connection_ProcessTimeout(conn, 10) };
        assert!(rc >= 0, "Connection_ProcessTimeout: {rc}");
    }
}

/// How a client leaves after its response.
#[derive(Clone, Copy, Debug)]
enum Leave {
    /// SO_LINGER {1, 0}: RST.
    Reset,
    /// Plain close: FIN.
    Fin,
}

/// A client that sends one keep-alive request, reads the answer and
/// leaves; the loop runs meanwhile. Returns the client's local port.
fn client_round(conn: &mut Connection, leave: Leave) -> u16 {
    // SAFETY: live connection.
    let port = unsafe { Connection_Port(conn) } as u16;
    let before = stats(conn);
    let client = thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let local = s.local_addr().unwrap().port();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while !got.ends_with(b"ok") {
            let n = s.read(&mut buf).expect("read the response");
            assert!(n > 0, "server closed before answering");
            got.extend_from_slice(&buf[..n]);
        }
        if let Leave::Reset = leave {
            common::rst_close(s);
        }
        local
    });
    pump(conn, "the client", |_| client.is_finished());
    let local = client.join().expect("client thread");
    pump(conn, "the server to see the client leave", |c| {
        let s = stats(c);
        s.closed_reset + s.closed_peer > before.closed_reset + before.closed_peer
    });
    local
}

#[test]
fn logger_callback_levels_and_off() {
    // Unknown levels are refused and change nothing.
    for bad in [-1, 6, 100] {
        assert_eq!(set_logger(bad), CONNECTION_ERR_INVALID, "level {bad}");
    }

    assert_eq!(set_logger(CONNECTION_LOG_DEBUG), CONNECTION_OK);
    let mut conn = Connection {
        _private_core: null_mut(),
        _private_stop_fd: -1,
        _private_magic: 0,
    };
    let cfg = ConnectionConfig {
        host: c"127.0.0.1".as_ptr(),
        port: 0,
        ..Default::default()
    };
    // SAFETY: valid pointers to live locals.
    assert_eq!(
        unsafe { Connection_InitWith(&mut conn, &cfg) },
        CONNECTION_OK
    );
    // SAFETY: live connection.
    unsafe { Connection_SetHandler(&mut conn, Some(hello), null_mut()) };
    // SAFETY: live connection.
    let port = unsafe { Connection_Port(&conn) };

    // 1. DEBUG: the close of a client that resets, and of one that sends FIN.
    let local = client_round(&mut conn, Leave::Reset);
    let records = take_records();
    let close = close_record(&records, local);
    assert!(
        close.message.ends_with("): reset"),
        "the close of a client that reset: {close:?}"
    );
    assert_eq!(close.level, CONNECTION_LOG_DEBUG, "{close:?}");
    assert!(
        close.target.starts_with("connection_core"),
        "target {:?}",
        close.target
    );
    assert!(
        records
            .iter()
            .all(|r| r.level >= CONNECTION_LOG_ERROR && r.level <= CONNECTION_LOG_DEBUG),
        "a record above the DEBUG filter, or with a bad level: {records:#?}"
    );
    // Init's INFO record came through too, with its level and target.
    assert!(
        records.iter().any(|r| r.level == CONNECTION_LOG_INFO
            && r.target.starts_with("connection_core")
            && r.message
                .contains(&format!("listening on 127.0.0.1:{port}"))),
        "no INFO `listening on 127.0.0.1:{port}` record from Init: {records:#?}"
    );
    let local = client_round(&mut conn, Leave::Fin);
    let records = take_records();
    let close = close_record(&records, local);
    assert!(
        close.message.ends_with("): peer_closed"),
        "the close of a client that sent FIN: {close:?}"
    );

    // 2. ERROR: the debug close records are filtered out.
    assert_eq!(set_logger(CONNECTION_LOG_ERROR), CONNECTION_OK);
    take_records();
    client_round(&mut conn, Leave::Reset);
    let records = take_records();
    assert!(
        records.iter().all(|r| r.level == CONNECTION_LOG_ERROR),
        "with CONNECTION_LOG_ERROR only errors may arrive: {records:#?}"
    );
    assert!(
        !records.iter().any(|r| r.message.starts_with("closed ")),
        "a close record passed the ERROR filter: {records:#?}"
    );

    // 3. OFF (with a callback given): nothing at all arrives.
    assert_eq!(set_logger(CONNECTION_LOG_OFF), CONNECTION_OK);
    take_records();
    client_round(&mut conn, Leave::Reset);
    client_round(&mut conn, Leave::Fin);
    let records = take_records();
    assert!(
        records.is_empty(),
        "records with CONNECTION_LOG_OFF: {records:#?}"
    );

    // 4. NULL callback: off as well, whatever the level.
    // SAFETY: NULL callback is documented to turn logging off.
    assert_eq!(
        unsafe { Connection_SetLogger(None, null_mut(), CONNECTION_LOG_TRACE) },
        CONNECTION_OK
    );
    client_round(&mut conn, Leave::Reset);
    assert!(take_records().is_empty(), "records with a NULL callback");

    // 5. Back on: records flow again (the switch is not one-way).
    assert_eq!(set_logger(CONNECTION_LOG_TRACE), CONNECTION_OK);
    let local = client_round(&mut conn, Leave::Reset);
    let records = take_records();
    assert!(
        records
            .iter()
            .any(|r| r.message.starts_with(&format!("closed 127.0.0.1:{local} "))),
        "no close record after turning logging back on: {records:#?}"
    );
    assert_eq!(
        *WRONG_USER.lock().unwrap(),
        0,
        "the callback got a user pointer other than the one given"
    );

    assert_eq!(set_logger(CONNECTION_LOG_OFF), CONNECTION_OK);
    // SAFETY: live connection, destroyed once (and harmless twice).
    unsafe { Connection_Destroy(&mut conn) };
}

/// Runs the example server as a child with `CONNECTION_LOG` set to `env`
/// (None: removed), makes one client reset after its response, stops the
/// server with SIGINT and returns its stderr and the client's local port.
fn server_stderr(env: Option<&str>) -> (String, u16) {
    let bin = common::server_binary();
    let mut cmd = Command::new(bin);
    cmd.args(["--port", "0", "--host", "127.0.0.1"]);
    match env {
        Some(v) => cmd.env("CONNECTION_LOG", v),
        None => cmd.env_remove("CONNECTION_LOG"),
    };
    let mut p = common::Program::start("server", cmd);
    let mut c = common::Conn::open(p.port);
    let local = c.stream.local_addr().unwrap().port();
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (status, _, body) = c
        .read_response(Instant::now() + Duration::from_secs(5))
        .expect("response");
    assert_eq!((status, body.as_slice()), (200, common::HELLO));
    common::rst_close(c.stream);
    // The server has seen the reset once it answers the next client (one
    // loop, events in order) -- or, with logging on, once the line is out.
    if env == Some("debug") {
        let want = format!("closed 127.0.0.1:{local} ");
        assert!(
            p.wait_stderr(Duration::from_secs(5), |e| e.contains(&want)),
            "no `{want}` line on stderr within 5 s:\n{}",
            p.stderr_text()
        );
    } else {
        thread::sleep(Duration::from_millis(100));
        common::probe(p.port);
    }
    let status = p.interrupt();
    assert_eq!(
        status.code(),
        Some(0),
        "server exit: {}",
        common::describe_status(status)
    );
    (p.stderr_text(), local)
}

#[test]
fn connection_log_env_prints_to_stderr() {
    let (err, local) = server_stderr(Some("debug"));
    let line = err
        .lines()
        .find(|l| l.contains(&format!("closed 127.0.0.1:{local} ")))
        .unwrap_or_else(|| panic!("no close line for port {local}:\n{err}"));
    assert!(
        line.starts_with("[connection-core DEBUG ") && line.ends_with("): reset"),
        "close line {line:?}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("[connection-core INFO ") && l.contains("listening on")),
        "debug includes info: no `listening on` record:\n{err}"
    );
}

#[test]
fn connection_log_env_level_filters() {
    let (err, _) = server_stderr(Some("error"));
    assert!(
        !err.lines()
            .any(|l| l.starts_with("[connection-core DEBUG ")
                || l.starts_with("[connection-core INFO ")),
        "CONNECTION_LOG=error printed debug/info records:\n{err}"
    );
}

#[test]
fn no_logging_without_the_env_var() {
    let (err, _) = server_stderr(None);
    // The example itself prints one line when it stops; the library nothing.
    let foreign: Vec<&str> = err
        .lines()
        .filter(|l| *l != "stopping: draining in-flight responses")
        .collect();
    assert!(
        foreign.is_empty(),
        "stderr without CONNECTION_LOG should hold nothing from the library, got:\n{err}"
    );
}
