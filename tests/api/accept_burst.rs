//! Taking one client per wake-up of the (level-triggered) listener loses
//! no wake-up and starves nobody: a burst of clients waiting in the
//! backlog is accepted and answered with no loop turn waiting on a timer,
//! and a keep-alive client that asks meanwhile is answered before the
//! burst has all been accepted.
#![allow(clippy::field_reassign_with_default)] // mirrors the C usage: Default, then set fields

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::raw::c_void;
use std::time::{Duration, Instant};

use connection_core::*;

/// Clients in the burst (well inside the default backlog, SOMAXCONN).
const BURST: usize = 200;

unsafe extern "C" fn hello(_: *const Request, resp: *mut Response, _: *mut c_void) {
    // SAFETY: `resp` is live for the handler call.
    unsafe { Response_Send(resp, b"hello".as_ptr().cast(), 5) };
}

struct Loop {
    conn: Connection,
    port: u16,
    /// The longest single turn, and how many turns.
    longest: Duration,
    turns: u32,
}

impl Loop {
    fn new() -> Loop {
        // SAFETY: an all-zero Connection is an uninitialised one.
        let mut conn: Connection = unsafe { std::mem::zeroed() };
        let mut cfg = ConnectionConfig::default();
        cfg.host = c"127.0.0.1".as_ptr();
        cfg.port = 0;
        // SAFETY: valid pointers to live locals.
        unsafe {
            assert_eq!(Connection_InitWith(&mut conn, &cfg), CONNECTION_OK);
            Connection_SetHandler(&mut conn, Some(hello), std::ptr::null_mut());
        }
        // SAFETY: live connection.
        let port = unsafe { Connection_Port(&conn) } as u16;
        Loop {
            conn,
            port,
            longest: Duration::ZERO,
            turns: 0,
        }
    }

    /// One turn that may wait up to 2 s: with work pending (a client in
    /// the backlog, a request unanswered) it must come back at once.
    fn turn(&mut self) {
        let start = Instant::now();
        // SAFETY: a live connection used from this thread only.
        let rc = unsafe { Connection_ProcessTimeout(&mut self.conn, 2000) };
        assert!(rc >= 0, "Connection_ProcessTimeout: {rc}");
        self.longest = self.longest.max(start.elapsed());
        self.turns += 1;
    }

    fn accepted(&self) -> u64 {
        let mut s = ConnectionStats::default();
        // SAFETY: live connection, valid out-pointer.
        assert_eq!(
            unsafe { Connection_GetStats(&self.conn, &mut s) },
            CONNECTION_OK
        );
        s.accepted
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        // SAFETY: live connection, destroyed once.
        unsafe { Connection_Destroy(&mut self.conn) };
    }
}

/// A client with its request sent and what it has read so far.
struct Client {
    stream: TcpStream,
    got: Vec<u8>,
}

impl Client {
    fn new(port: u16, request: &[u8]) -> Client {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.write_all(request).unwrap();
        stream.set_nonblocking(true).unwrap();
        Client {
            stream,
            got: Vec::new(),
        }
    }

    /// Reads what is there; whether a whole response has arrived.
    fn answered(&mut self) -> bool {
        let mut buf = [0u8; 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("read: {e}"),
            }
        }
        self.got.starts_with(b"HTTP/1.1 200") && self.got.ends_with(b"\r\n\r\nhello")
    }
}

#[test]
fn a_burst_in_the_backlog_is_accepted_without_waiting_and_without_starving_others() {
    let mut l = Loop::new();
    let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut keep = Client::new(l.port, get);
    while !keep.answered() {
        l.turn();
    }
    keep.got.clear();
    let before = l.accepted();

    // The burst waits in the backlog (connect() returns once the kernel has
    // queued it), each with its request sent; then the keep-alive client
    // asks again.
    let mut burst: Vec<Client> = (0..BURST).map(|_| Client::new(l.port, get)).collect();
    keep.stream.write_all(get).unwrap();
    l.longest = Duration::ZERO;
    l.turns = 0;

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut keep_answered_at = None;
    let mut left = BURST;
    while left > 0 {
        assert!(
            Instant::now() < deadline,
            "{left} of {BURST} clients unanswered after 20 s ({} accepted, {} turns)",
            l.accepted() - before,
            l.turns
        );
        l.turn();
        if keep_answered_at.is_none() && keep.answered() {
            keep_answered_at = Some(l.accepted() - before);
        }
        left = burst
            .iter_mut()
            .map(|c| !c.answered())
            .filter(|&open| open)
            .count();
    }
    assert_eq!(l.accepted() - before, BURST as u64);
    assert!(
        l.longest < Duration::from_millis(1000),
        "a turn waited {:?} with clients in the backlog: a wake-up was lost",
        l.longest
    );
    let at = keep_answered_at.expect("the keep-alive client was never answered");
    assert!(
        at < BURST as u64,
        "the keep-alive client was answered only after all {BURST} clients were accepted"
    );
    eprintln!(
        "{BURST} clients in {} turns (longest {:?}); the keep-alive client answered after {at} accepts",
        l.turns, l.longest
    );
}
