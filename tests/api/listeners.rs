//! One Connection serves several listeners (IPv4, IPv6 with IPV6_V6ONLY as
//! asked, a Unix socket with its mode, descriptors the caller holds, owned
//! or not), each request reports its listener, the Unix socket file rules
//! hold (stale replaced, live refused, other files kept, removed when ours),
//! bad arguments get their codes, and all listeners pause together at
//! `max_connections`.
#![allow(clippy::field_reassign_with_default)] // mirrors the C usage: Default, then set fields

use std::ffi::CString;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::os::raw::{c_char, c_int, c_void};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::ptr::null_mut;
use std::thread;
use std::time::{Duration, Instant};

use connection_core::*;

/// Answers "listener=N remote=ADDR".
unsafe extern "C" fn handler(req: *const Request, resp: *mut Response, _user: *mut c_void) {
    // SAFETY: the library passes live pointers for the duration of the call.
    unsafe {
        let mut addr = [0 as c_char; 64];
        let n = Request_RemoteAddr(req, addr.as_mut_ptr(), addr.len());
        assert!(n > 0, "Request_RemoteAddr: {n}");
        let remote = std::ffi::CStr::from_ptr(addr.as_ptr()).to_string_lossy();
        let body = format!("listener={} remote={remote}", Request_Listener(req));
        Response_Send(resp, body.as_ptr() as *const c_void, body.len());
    }
}

fn start(edit: impl FnOnce(&mut ConnectionConfig)) -> Connection {
    let mut conn = Connection {
        _private_core: null_mut(),
        _private_stop_fd: -1,
        _private_magic: 0,
    };
    let mut cfg = ConnectionConfig::default();
    cfg.host = c"127.0.0.1".as_ptr();
    cfg.port = 0;
    edit(&mut cfg);
    // SAFETY: valid pointers to live locals.
    unsafe {
        assert_eq!(Connection_InitWith(&mut conn, &cfg), CONNECTION_OK);
        Connection_SetHandler(&mut conn, Some(handler), null_mut());
    }
    conn
}

/// Runs the loop until `done` (bounded).
fn pump(conn: &mut Connection, mut done: impl FnMut(&Connection) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(conn) {
        assert!(Instant::now() < deadline, "timed out pumping the loop");
        // SAFETY: a live connection used from this thread only.
        let rc = unsafe { Connection_ProcessTimeout(conn, 10) };
        assert!(rc >= 0, "Process failed: {rc}");
    }
}

trait Stream: Read + Write + Send + 'static {}
impl Stream for TcpStream {}
impl Stream for UnixStream {}

/// One GET with `Connection: close` over `s`; the body of the reply.
fn get(conn: &mut Connection, mut s: impl Stream) -> String {
    let client = thread::spawn(move || {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    });
    pump(conn, |_| client.is_finished());
    let reply = client.join().unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 "), "reply: {reply:?}");
    reply.split("\r\n\r\n").nth(1).unwrap_or("").to_owned()
}

fn tcp(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn port_of(conn: &Connection, index: c_int) -> u16 {
    // SAFETY: a live connection.
    let p = unsafe { Connection_ListenerPort(conn, index) };
    assert!(p > 0, "listener {index} port: {p}");
    p as u16
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cc-listeners-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

fn int_opt(fd: RawFd, level: c_int, name: c_int) -> c_int {
    let mut v: c_int = -1;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: a live c_int and its size.
    let r = unsafe { libc::getsockopt(fd, level, name, &mut v as *mut c_int as *mut _, &mut len) };
    assert_eq!(r, 0, "getsockopt on fd {fd}");
    v
}

/// The descriptor of this process's IPv6 listening socket on `port`.
fn ipv6_listener_fd(port: u16) -> RawFd {
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<RawFd>() else {
            continue;
        };
        // SAFETY: sockaddr_in6 is plain old data.
        let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        // SAFETY: a writable sockaddr and its size; a non-socket fails.
        let r = unsafe { libc::getsockname(fd, &mut sa as *mut _ as *mut _, &mut len) };
        if r == 0 && sa.sin6_family as c_int == libc::AF_INET6 && u16::from_be(sa.sin6_port) == port
        {
            return fd;
        }
    }
    panic!("no IPv6 socket on port {port}");
}

#[test]
fn every_kind_of_listener_is_served_and_named_by_its_index() {
    let dir = temp_dir("kinds");
    let sock = dir.join("app.sock");
    let mut conn = start(|_| {});
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let held_port = held.local_addr().unwrap().port();
    let owned = TcpListener::bind("127.0.0.1:0").unwrap();
    let owned_port = owned.local_addr().unwrap().port();
    // SAFETY: a live connection and NUL-terminated strings.
    unsafe {
        assert_eq!(
            Connection_AddListenTcp(&mut conn, c"::1".as_ptr(), 0, CONNECTION_LISTEN_V6ONLY),
            1
        );
        // IPv4 through an IPv6 socket works only with IPV6_V6ONLY off.
        let mapped = c"::ffff:127.0.0.1".as_ptr();
        assert_eq!(
            Connection_AddListenTcp(&mut conn, mapped, 0, CONNECTION_LISTEN_V6ONLY),
            CONNECTION_ERR_ADDR
        );
        assert_eq!(
            Connection_AddListenTcp(&mut conn, mapped, 0, CONNECTION_LISTEN_DUALSTACK),
            2
        );
        assert_eq!(
            Connection_AddListenUnix(&mut conn, cpath(&sock).as_ptr(), 0o600),
            3
        );
        assert_eq!(Connection_AddListenFd(&mut conn, held.as_raw_fd(), 0), 4);
        assert_eq!(Connection_AddListenFd(&mut conn, owned.into_raw_fd(), 1), 5);
        assert_eq!(Connection_ListenerCount(&conn), 6);
        assert_eq!(
            Connection_ListenerPort(&conn, 3),
            0,
            "a Unix socket has no port"
        );
        assert_eq!(Connection_ListenerPort(&conn, 6), CONNECTION_ERR_INVALID);
        assert_eq!(Connection_Port(&conn) as u16, port_of(&conn, 0));
    }
    let meta = std::fs::symlink_metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(
        meta.permissions().mode() & 0o7777,
        0o600,
        "the mode asked for"
    );
    let (v4, v6, dual) = (port_of(&conn, 0), port_of(&conn, 1), port_of(&conn, 2));
    assert_eq!(
        int_opt(ipv6_listener_fd(v6), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
        1
    );
    assert_eq!(
        int_opt(
            ipv6_listener_fd(dual),
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY
        ),
        0
    );

    let body = get(&mut conn, tcp(&format!("127.0.0.1:{v4}")));
    assert!(body.starts_with("listener=0 remote=127.0.0.1:"), "{body}");
    let body = get(&mut conn, tcp(&format!("[::1]:{v6}")));
    assert!(body.starts_with("listener=1 remote=[::1]:"), "{body}");
    let body = get(&mut conn, tcp(&format!("127.0.0.1:{dual}")));
    assert!(
        body.starts_with("listener=2 remote=[::ffff:127.0.0.1]:"),
        "{body}"
    );
    let unix = UnixStream::connect(&sock).unwrap();
    unix.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(get(&mut conn, unix), "listener=3 remote=unix");
    let body = get(&mut conn, tcp(&format!("127.0.0.1:{held_port}")));
    assert!(body.starts_with("listener=4 "), "{body}");
    let body = get(&mut conn, tcp(&format!("127.0.0.1:{owned_port}")));
    assert!(body.starts_with("listener=5 "), "{body}");

    // SAFETY: a live connection, destroyed once.
    unsafe { Connection_Destroy(&mut conn) };
    assert!(!sock.exists(), "the socket file we made is removed");
    assert!(
        TcpStream::connect(("127.0.0.1", owned_port)).is_err(),
        "an owned descriptor closes with the Connection"
    );
    // The caller's descriptor stays open and listening.
    assert_eq!(
        int_opt(held.as_raw_fd(), libc::SOL_SOCKET, libc::SO_ACCEPTCONN),
        1
    );
    let flags = unsafe { libc::fcntl(held.as_raw_fd(), libc::F_GETFL) };
    assert_ne!(flags & libc::O_NONBLOCK, 0, "made non-blocking");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unix_socket_files_stale_replaced_live_refused_others_kept() {
    let dir = temp_dir("files");
    let mut conn = start(|c| c.no_default_listener = true);
    // SAFETY: a live connection.
    assert_eq!(unsafe { Connection_ListenerCount(&conn) }, 0);
    assert_eq!(unsafe { Connection_Port(&conn) }, 0);
    let add = |conn: &mut Connection, p: &Path, mode: u32| {
        // SAFETY: a live connection and a NUL-terminated path.
        unsafe { Connection_AddListenUnix(conn, cpath(p).as_ptr(), mode) }
    };

    // A stale file (its server is gone) is replaced.
    let stale = dir.join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    assert_eq!(add(&mut conn, &stale, 0), 0);
    let unix = UnixStream::connect(&stale).unwrap();
    unix.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(get(&mut conn, unix), "listener=0 remote=unix");

    // A live one is refused and left serving.
    let live = dir.join("live.sock");
    let other = UnixListener::bind(&live).unwrap();
    assert_eq!(add(&mut conn, &live, 0), CONNECTION_ERR_ADDR_IN_USE);
    assert!(
        UnixStream::connect(&live).is_ok(),
        "the live server still has its file"
    );
    drop(other);

    // Any other file is refused and never removed.
    let plain = dir.join("plain");
    std::fs::write(&plain, b"keep me").unwrap();
    assert_eq!(add(&mut conn, &plain, 0), CONNECTION_ERR_SOCKET_PATH);
    assert_eq!(std::fs::read(&plain).unwrap(), b"keep me");
    let sub = dir.join("subdir");
    std::fs::create_dir(&sub).unwrap();
    assert_eq!(add(&mut conn, &sub, 0), CONNECTION_ERR_SOCKET_PATH);
    assert!(sub.is_dir());

    // Paths that do not fit sun_path (107 bytes and its NUL), empty ones,
    // and modes beyond the permission bits.
    let long = dir.join("x".repeat(120));
    assert_eq!(add(&mut conn, &long, 0), CONNECTION_ERR_SOCKET_PATH);
    assert_eq!(add(&mut conn, Path::new(""), 0), CONNECTION_ERR_SOCKET_PATH);
    assert_eq!(
        add(&mut conn, &dir.join("m.sock"), 0o1777),
        CONNECTION_ERR_INVALID
    );
    assert_eq!(
        add(&mut conn, &dir.join("m.sock"), 0o10000),
        CONNECTION_ERR_INVALID
    );
    assert!(!dir.join("m.sock").exists());
    assert_eq!(
        add(&mut conn, &dir.join("nodir").join("a.sock"), 0),
        CONNECTION_ERR_SYSTEM
    );

    // A file that is no longer ours (replaced meanwhile) is not removed.
    let mine = dir.join("mine.sock");
    assert_eq!(add(&mut conn, &mine, 0o666), 1);
    assert_eq!(
        std::fs::metadata(&mine).unwrap().permissions().mode() & 0o777,
        0o666
    );
    std::fs::remove_file(&mine).unwrap();
    std::fs::write(&mine, b"someone else's").unwrap();
    // SAFETY: a live connection, destroyed once.
    unsafe { Connection_Destroy(&mut conn) };
    assert!(!stale.exists(), "ours is removed");
    assert!(mine.exists(), "someone else's file is left alone");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_descriptors_and_arguments_get_their_codes() {
    let dir = temp_dir("bad");
    let mut conn = start(|_| {});
    let file = std::fs::File::create(dir.join("f")).unwrap();
    let mut pipe = [0 as c_int; 2];
    // SAFETY: a writable array of two ints.
    assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    // SAFETY: plain syscall; an unbound, unlistening stream socket.
    let unlistened = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(unlistened >= 0);
    let dgram_unix = std::os::unix::net::UnixDatagram::unbound().unwrap();
    // SAFETY: a live connection; each descriptor is one of ours, not owned.
    unsafe {
        for (what, fd) in [
            ("-1", -1),
            ("a regular file", file.as_raw_fd()),
            ("a pipe", pipe[0]),
            ("a UDP socket", udp.as_raw_fd()),
            ("a TCP socket that does not listen", unlistened),
            ("a Unix datagram socket", dgram_unix.as_raw_fd()),
        ] {
            for owned in [0, 1] {
                assert_eq!(
                    Connection_AddListenFd(&mut conn, fd, owned),
                    CONNECTION_ERR_NOT_LISTENING,
                    "{what}"
                );
            }
        }
        // Refused descriptors stay open, even "owned" ones.
        assert_ne!(libc::fcntl(pipe[0], libc::F_GETFD), -1);
        assert_ne!(libc::fcntl(unlistened, libc::F_GETFD), -1);
        libc::close(pipe[0]);
        libc::close(pipe[1]);
        libc::close(unlistened);

        let nul: *mut Connection = null_mut();
        assert_eq!(
            Connection_AddListenTcp(nul, c"127.0.0.1".as_ptr(), 0, 0),
            CONNECTION_ERR_NULL
        );
        assert_eq!(
            Connection_AddListenUnix(nul, c"/tmp/x".as_ptr(), 0),
            CONNECTION_ERR_NULL
        );
        assert_eq!(Connection_AddListenFd(nul, 3, 0), CONNECTION_ERR_NULL);
        assert_eq!(Connection_AddSystemdListeners(nul, 0), CONNECTION_ERR_NULL);
        assert_eq!(Connection_ListenerCount(nul), CONNECTION_ERR_NULL);
        assert_eq!(Connection_ListenerPort(nul, 0), CONNECTION_ERR_NULL);
        assert!(Connection_ListenerName(nul, 0).is_null());
        assert_eq!(
            Connection_AddListenTcp(&mut conn, std::ptr::null(), 0, 0),
            CONNECTION_ERR_NULL
        );
        assert_eq!(
            Connection_AddListenUnix(&mut conn, std::ptr::null(), 0),
            CONNECTION_ERR_NULL
        );
        let lo = c"127.0.0.1".as_ptr();
        assert_eq!(
            Connection_AddListenTcp(&mut conn, lo, 0, 8),
            CONNECTION_ERR_INVALID
        );
        assert_eq!(
            Connection_AddListenTcp(
                &mut conn,
                lo,
                0,
                CONNECTION_LISTEN_V6ONLY | CONNECTION_LISTEN_DUALSTACK
            ),
            CONNECTION_ERR_INVALID
        );
        assert_eq!(
            Connection_AddListenTcp(&mut conn, c"not-an-ip".as_ptr(), 0, 0),
            CONNECTION_ERR_ADDR
        );
        let port = Connection_Port(&conn) as u16;
        assert_eq!(
            Connection_AddListenTcp(&mut conn, lo, port, 0),
            CONNECTION_ERR_ADDR_IN_USE
        );
        assert_eq!(Connection_ListenerPort(&conn, -1), CONNECTION_ERR_INVALID);
        assert!(Connection_ListenerName(&conn, 0).is_null());
        assert_eq!(Connection_ListenerCount(&conn), 1, "nothing was added");

        // The limit: CONNECTION_MAX_LISTENERS in all.
        for i in 1..CONNECTION_MAX_LISTENERS {
            assert_eq!(Connection_AddListenTcp(&mut conn, lo, 0, 0), i);
        }
        assert_eq!(
            Connection_AddListenTcp(&mut conn, lo, 0, 0),
            CONNECTION_ERR_TOO_MANY_LISTENERS
        );
        let sock = dir.join("over.sock");
        assert_eq!(
            Connection_AddListenUnix(&mut conn, cpath(&sock).as_ptr(), 0),
            CONNECTION_ERR_TOO_MANY_LISTENERS
        );
        assert!(!sock.exists());
        let extra = TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(
            Connection_AddListenFd(&mut conn, extra.as_raw_fd(), 0),
            CONNECTION_ERR_TOO_MANY_LISTENERS
        );
        // The last one is served like the first.
        let last = port_of(&conn, CONNECTION_MAX_LISTENERS - 1);
        let body = get(&mut conn, tcp(&format!("127.0.0.1:{last}")));
        assert!(body.starts_with(&format!("listener={} ", CONNECTION_MAX_LISTENERS - 1)));

        // After Stop, nothing more is added.
        assert_eq!(Connection_Stop(&mut conn), CONNECTION_OK);
        pump(&mut conn, |c| Connection_ListenerCount(c) == 0);
        assert_eq!(
            Connection_AddListenTcp(&mut conn, lo, 0, 0),
            CONNECTION_ERR_STATE
        );
        Connection_Destroy(&mut conn);
        assert_eq!(
            Connection_AddListenFd(&mut conn, extra.as_raw_fd(), 0),
            CONNECTION_ERR_NOT_INITIALIZED
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_listener_pauses_at_max_connections_and_resumes() {
    let dir = temp_dir("pause");
    let sock = dir.join("p.sock");
    let mut conn = start(|c| c.max_connections = 1);
    // SAFETY: a live connection and a NUL-terminated path.
    assert_eq!(
        unsafe { Connection_AddListenUnix(&mut conn, cpath(&sock).as_ptr(), 0) },
        1
    );
    let port = port_of(&conn, 0);
    // A busy connection (half a request head) takes the only place.
    let mut busy = tcp(&format!("127.0.0.1:{port}"));
    busy.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let mut stats = ConnectionStats::default();
    pump(&mut conn, |c| {
        // SAFETY: a live connection.
        unsafe { Connection_GetStats(c, &mut stats) };
        stats.accepted == 1
    });
    // A Unix client has to wait: accepting pauses on every listener.
    let mut waiting = UnixStream::connect(&sock).unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    waiting
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    // Paused means out of epoll: each 10 ms wait sleeps (a listener left
    // in the level-triggered set would wake every one at once).
    let until = Instant::now() + Duration::from_millis(300);
    let mut turns = 0;
    pump(&mut conn, |_| {
        turns += 1;
        Instant::now() >= until
    });
    assert!(
        turns < 100,
        "{turns} loop turns in 300 ms: a paused listener still wakes the loop"
    );
    // SAFETY: a live connection.
    unsafe { Connection_GetStats(&conn, &mut stats) };
    assert_eq!(stats.accepted, 1, "nobody accepted past the limit");
    assert!(stats.accept_paused >= 1, "accepting paused");
    // The busy one finishes; the waiting Unix client is served.
    busy.write_all(b"Host: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let client = thread::spawn(move || {
        let mut out = Vec::new();
        let _ = waiting.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    });
    pump(&mut conn, |_| client.is_finished());
    let reply = client.join().unwrap();
    assert!(reply.ends_with("listener=1 remote=unix"), "{reply:?}");
    // SAFETY: a live connection, destroyed once.
    unsafe { Connection_Destroy(&mut conn) };
    let _ = std::fs::remove_dir_all(&dir);
}
