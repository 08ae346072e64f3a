//! A stale epoll event (for a connection already closed, its slot and fd
//! number already taken by a new client) never reaches the new client: in
//! the same `epoll_wait` batch, and after `fork` when a child still holds
//! the closed connection's socket.
//!
//! Both cases use real sockets and the library's real epoll set and event
//! dispatch. The first connection of a fresh loop has token 0 (slot 0,
//! generation 0): the test relies on that to forge nothing but a second
//! registration of the same socket under the same token, as a dup'ed
//! descriptor would have. Without the generation check in
//! `src/reactor/slab.rs` the stale EPOLLERR closes the new client.
//!
//! Everything runs on the test's thread (the loop is pumped between client
//! steps), so the order of events in a batch is set by the order of the
//! client steps: epoll's ready list is first come, first served.
#![allow(clippy::field_reassign_with_default)] // mirrors the C usage: Default, then set fields

use std::ffi::CStr;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::raw::{c_char, c_int, c_void};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use connection_core::*;

/// Both tests count descriptors and read the process-wide log: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());
static RECORDS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static LOGGER: Once = Once::new();

unsafe extern "C" fn on_log(_: *mut c_void, _: c_int, _: *const c_char, message: *const c_char) {
    // SAFETY: the library passes a NUL-terminated string valid for the call.
    let message = unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned();
    RECORDS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(message);
}

fn take_records() -> Vec<String> {
    std::mem::take(&mut *RECORDS.lock().unwrap_or_else(|p| p.into_inner()))
}

/// Answers every request with its path as the body.
unsafe extern "C" fn echo_path(req: *const Request, resp: *mut Response, _: *mut c_void) {
    // SAFETY: live pointers for the duration of the call.
    unsafe {
        let mut len = 0;
        let path = Request_Path(req, &mut len);
        Response_Send(resp, path as *const c_void, len);
    }
}

struct Loop {
    conn: Connection,
    port: u16,
}

impl Loop {
    fn new() -> Loop {
        LOGGER.call_once(|| {
            // SAFETY: a valid callback; no user pointer.
            let rc = unsafe {
                Connection_SetLogger(Some(on_log), std::ptr::null_mut(), CONNECTION_LOG_DEBUG)
            };
            assert_eq!(rc, CONNECTION_OK);
        });
        // SAFETY: an all-zero Connection is an uninitialised one.
        let mut conn: Connection = unsafe { std::mem::zeroed() };
        let mut cfg = ConnectionConfig::default();
        cfg.host = c"127.0.0.1".as_ptr();
        cfg.port = 0;
        // SAFETY: valid pointers to live locals.
        unsafe {
            assert_eq!(Connection_InitWith(&mut conn, &cfg), CONNECTION_OK);
            Connection_SetHandler(&mut conn, Some(echo_path), std::ptr::null_mut());
        }
        // SAFETY: live connection.
        let port = unsafe { Connection_Port(&conn) } as u16;
        Loop { conn, port }
    }

    /// One batch: a single epoll_wait and its events.
    fn turn(&mut self, timeout_ms: i32) {
        // SAFETY: a live connection used from this thread only.
        let rc = unsafe { Connection_ProcessTimeout(&mut self.conn, timeout_ms) };
        assert!(rc >= 0, "Connection_ProcessTimeout: {rc}");
    }

    fn epoll_fd(&self) -> c_int {
        // SAFETY: live connection.
        unsafe { Connection_Fd(&self.conn) }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_nonblocking(true).unwrap();
        s
    }

    /// Reads one response (by Content-Length) while pumping the loop;
    /// `None` if the server closed the connection first.
    fn response(&mut self, client: &mut TcpStream) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        loop {
            assert!(Instant::now() < deadline, "no response within 10 s");
            if let Some(end) = find(&got, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                let len: usize = head
                    .split("\r\n")
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .expect("Content-Length");
                if got.len() >= end + 4 + len {
                    return Some(String::from_utf8_lossy(&got[end + 4..end + 4 + len]).into());
                }
            }
            let mut buf = [0u8; 4096];
            match client.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.turn(5),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    fn get(&mut self, client: &mut TcpStream, path: &str, close: bool) -> Option<String> {
        let extra = if close { "Connection: close\r\n" } else { "" };
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
        client.write_all(req.as_bytes()).unwrap();
        self.response(client)
    }

    /// Turns until the loop has nothing pending: the level-triggered
    /// listener, re-queued by epoll after each report, has left the ready
    /// list, so a new client is queued behind what happens next.
    fn settle(&mut self) {
        for _ in 0..3 {
            self.turn(0);
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        // SAFETY: live connection, destroyed once.
        unsafe { Connection_Destroy(&mut self.conn) };
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn sockaddr_in(fd: c_int, peer: bool) -> Option<std::net::SocketAddr> {
    // SAFETY: an all-zero sockaddr_in is valid; getsockname/getpeername
    // write at most `len` bytes into it.
    unsafe {
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let p = &mut sa as *mut libc::sockaddr_in as *mut libc::sockaddr;
        let rc = if peer {
            libc::getpeername(fd, p, &mut len)
        } else {
            libc::getsockname(fd, p, &mut len)
        };
        if rc != 0 || sa.sin_family != libc::AF_INET as libc::sa_family_t {
            return None;
        }
        let ip = std::net::Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr));
        Some((ip, u16::from_be(sa.sin_port)).into())
    }
}

/// The server's descriptor for `client` (this process's own fd table).
fn server_fd_of(client: &TcpStream) -> Option<c_int> {
    let local = client.local_addr().unwrap();
    let remote = client.peer_addr().unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<c_int>().ok())
        .find(|&fd| {
            fd != client.as_raw_fd()
                && sockaddr_in(fd, true) == Some(local)
                && sockaddr_in(fd, false) == Some(remote)
        })
}

/// Closes with RST (SO_LINGER {1, 0}): the server's socket reports
/// EPOLLERR | EPOLLHUP.
fn reset(client: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a live socket and a valid option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            client.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    drop(client);
}

/// A client socket made before it connects.
struct Socket(std::os::fd::OwnedFd);

impl Socket {
    fn new() -> Socket {
        use std::os::fd::FromRawFd;
        // SAFETY: plain syscall; the descriptor is owned from here on.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: a fresh descriptor nothing else owns.
        Socket(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
    }

    fn connect(self, port: u16) -> TcpStream {
        // SAFETY: an all-zero sockaddr_in is valid; then filled in.
        let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_port = port.to_be();
        sa.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        // SAFETY: a live socket and a valid address of the given size.
        let rc = unsafe {
            libc::connect(
                self.0.as_raw_fd(),
                &sa as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        let s = TcpStream::from(self.0);
        s.set_nonblocking(true).unwrap();
        s
    }
}

fn stale_records(records: &[String]) -> Vec<&String> {
    records
        .iter()
        .filter(|m| m.starts_with("stale event for token 0x0 ignored (slot reused)"))
        .collect()
}

/// In one epoll_wait batch: A's reset, the listener (B is accepted into
/// A's slot and fd number), then a second event with A's token.
#[test]
fn stale_event_later_in_the_same_batch_does_not_reach_the_new_client() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut l = Loop::new();
    let mut a = l.connect();
    assert_eq!(l.get(&mut a, "/a", false).as_deref(), Some("/a"));
    let a_fd = server_fd_of(&a).expect("A's server descriptor");
    // A second registration of A's socket under A's token (0: the first
    // connection of a fresh loop), through a dup as a shared descriptor
    // would have it. Added last, it is queued last in the ready list.
    // SAFETY: dup of a live descriptor this process owns.
    let dup = unsafe { libc::dup(a_fd) };
    assert!(dup >= 0);
    l.settle();
    take_records();

    // The batch, in ready-list order: A (EPOLLERR: it reset) ...
    reset(a);
    // ... the listener (B waits in the backlog, its request sent) ...
    let mut b = l.connect();
    b.write_all(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    // ... and A's token again (level-triggered, so reported though the
    // socket became ready before the registration).
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: 0,
    };
    // SAFETY: the loop's live epoll descriptor, a live fd, a valid event.
    let rc = unsafe { libc::epoll_ctl(l.epoll_fd(), libc::EPOLL_CTL_ADD, dup, &mut ev) };
    assert_eq!(rc, 0, "epoll_ctl ADD: {}", std::io::Error::last_os_error());
    l.turn(0);

    let records = take_records();
    assert_eq!(
        l.response(&mut b).as_deref(),
        Some("/b"),
        "the new client B was closed by A's stale event: {records:#?}"
    );
    assert_eq!(
        server_fd_of(&b),
        Some(a_fd),
        "B must have been accepted after A closed, into A's fd number (and slot)"
    );
    assert_eq!(
        stale_records(&records).len(),
        1,
        "the stale event for A must have arrived in that batch, after B took A's slot: {records:#?}"
    );
    assert_eq!(l.get(&mut b, "/b2", false).as_deref(), Some("/b2"));
    // SAFETY: our own dup; its epoll registration goes with the last
    // reference to the socket.
    unsafe { libc::close(dup) };
}

/// A forked child holds A's socket: closing it in the library leaves the
/// open file description (and its epoll registration) alive, so events
/// for A keep coming with A's token after B took A's slot and fd number.
#[test]
fn socket_shared_with_a_forked_child_sends_stale_events_that_are_ignored() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut l = Loop::new();
    let mut a = l.connect();
    assert_eq!(l.get(&mut a, "/a", false).as_deref(), Some("/a"));
    let a_fd = server_fd_of(&a).expect("A's server descriptor");

    let mut pipe = [0 as c_int; 2];
    // SAFETY: a valid array of two ints.
    assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
    // SAFETY: the child only calls async-signal-safe functions (read,
    // _exit) before it ends.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // The child: holds every descriptor (A's server socket among them)
        // until the parent closes its end of the pipe.
        let mut byte = 0u8;
        // SAFETY: async-signal-safe calls on our own descriptors.
        unsafe {
            libc::close(pipe[1]);
            // Not the client's end: the parent's reset of A must reach A.
            libc::close(a.as_raw_fd());
            libc::read(pipe[0], &mut byte as *mut u8 as *mut c_void, 1);
            libc::_exit(0);
        }
    }
    // SAFETY: the parent's copy of the read end, closed once.
    unsafe { libc::close(pipe[0]) };

    // B's socket exists before A's server descriptor is freed, so that
    // number goes to the server's side of B.
    let b = Socket::new();
    // A asks to close; the library answers and closes its descriptor.
    assert_eq!(l.get(&mut a, "/a-last", true).as_deref(), Some("/a-last"));
    // B takes A's slot and fd number, and is registered in epoll beside
    // the registration A's socket left.
    let mut b = b.connect(l.port);
    assert_eq!(l.get(&mut b, "/b", false).as_deref(), Some("/b"));
    assert_eq!(server_fd_of(&b), Some(a_fd), "B must reuse A's fd number");
    l.settle();
    take_records();

    // A's socket, alive in the child, is reset: EPOLLERR with A's token.
    reset(a);
    let start = Instant::now();
    let mut turns = 0;
    while start.elapsed() < Duration::from_millis(300) {
        l.turn(50);
        turns += 1;
    }
    let records = take_records();
    assert_eq!(
        l.get(&mut b, "/b2", false).as_deref(),
        Some("/b2"),
        "B was closed by the stale event of A's socket: {records:#?}"
    );
    assert!(
        !stale_records(&records).is_empty(),
        "the library closes clients without EPOLL_CTL_DEL (event_loop.rs, close): the \
         reset of the socket the child holds must reach the loop as a stale event: {records:#?}"
    );
    assert!(
        turns <= 20,
        "{turns} loop turns in 300 ms with 50 ms waits: a stale registration keeps firing"
    );

    // SAFETY: our write end, closed once; then the child is reaped.
    unsafe {
        libc::close(pipe[1]);
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}
