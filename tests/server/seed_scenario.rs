//! The server keeps answering after clients that ask for a large
//! or chunked response, read part of it and vanish (RST, or FIN with data left
//! unread), plus connect-and-close sockets. After every round the server must
//! answer `GET /` within 1 s, its fd count must come back to its starting
//! value, /stats must show no active connection and no socket of its port may
//! sit in CLOSE_WAIT. The server runs with SIGPIPE at SIG_DFL the whole time,
//! survives, and exits 0 on SIGINT at the end.

#[path = "../common/mod.rs"]
mod common;

use common::*;
use std::net::Shutdown;
use std::time::{Duration, Instant};

const ROUNDS: usize = 50;
const CLIENTS: usize = 64;
const CONNECT_AND_CLOSE: usize = 200;
/// Clients per round that send a request and close before any answer.
const EAGER_QUITTERS: usize = 16;
/// Bound for the reads of one round.
const ROUND_TIMEOUT: Duration = Duration::from_secs(10);

fn assert_sigpipe_default(pid: i32, context: &str) {
    let (blocked, ignored, caught) = signal_masks(pid);
    let bit = 1u64 << (libc::SIGPIPE - 1);
    assert_eq!(
        ignored & bit,
        0,
        "{context}: the server ignores SIGPIPE (SigIgn {ignored:#x}); it must run with SIGPIPE at SIG_DFL"
    );
    assert_eq!(
        caught & bit,
        0,
        "{context}: the server catches SIGPIPE (SigCgt {caught:#x}); it must run with SIGPIPE at SIG_DFL"
    );
    assert_eq!(
        blocked & bit,
        0,
        "{context}: the server blocks SIGPIPE (SigBlk {blocked:#x}); it must run with SIGPIPE at SIG_DFL"
    );
}

fn round(port: u16, round: usize, rng: &mut Rng) {
    let deadline = Instant::now() + ROUND_TIMEOUT;

    // 64 clients ask for a big streamed response.
    let mut clients = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let path = if (i + round) % 2 == 0 {
            "/chunked?size=1048576"
        } else {
            "/user/register"
        };
        // Half keep-alive (siege with keep-alive), half Connection: close.
        let connection = if i % 4 < 2 {
            ""
        } else {
            "Connection: close\r\n"
        };
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: seed\r\n{connection}\r\n"
        );
        let mut c = Conn::open(port);
        c.send(req.as_bytes())
            .unwrap_or_else(|e| panic!("round {round} client {i}: sending {path}: {e}"));
        clients.push((c, path));
    }

    // Each reads part of its response...
    for (i, (c, path)) in clients.iter_mut().enumerate() {
        let most = if path.starts_with("/chunked") {
            256 * 1024
        } else {
            48 * 1024
        };
        let want = rng.range(16, most);
        c.read_at_least(want, deadline).unwrap_or_else(|e| {
            panic!(
                "round {round} client {i} ({path}): reading the first {want} bytes failed after {} bytes: {e}",
                c.received
            )
        });
        let head = c.buffered();
        assert!(
            head.starts_with(b"HTTP/1.1 200"),
            "round {round} client {i} ({path}): response starts with {:?}",
            String::from_utf8_lossy(&head[..head.len().min(64)])
        );
    }

    // ...and vanishes: half reset (SO_LINGER 0), half send FIN with the rest
    // of the response left unread (and are closed for good at the end of the
    // round, which the kernel turns into a RST as data is still unread).
    let mut half_closed = Vec::with_capacity(CLIENTS / 2);
    for (i, (c, _)) in clients.into_iter().enumerate() {
        if i % 2 == 0 {
            rst_close(c.stream);
        } else {
            c.stream
                .shutdown(Shutdown::Write)
                .unwrap_or_else(|e| panic!("round {round} client {i}: shutdown(SHUT_WR): {e}"));
            half_closed.push(c);
        }
    }

    // Clients that send a request and close at once (a FIN, with nothing
    // unread): the server is in CLOSE_WAIT when it answers, the client's
    // kernel answers the first segment with an RST, and Linux then fails the
    // next send with EPIPE -- the exact failure of the original server, and
    // the one that raises SIGPIPE when a send lacks MSG_NOSIGNAL.
    for j in 0..EAGER_QUITTERS {
        let mut c = Conn::open(port);
        let req =
            format!("GET /chunked?size=1048576&q={j} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
        c.send(req.as_bytes())
            .unwrap_or_else(|e| panic!("round {round} quitter {j}: sending: {e}"));
        drop(c);
    }

    // Plus connect-and-close sockets (every fifth one reset).
    for j in 0..CONNECT_AND_CLOSE {
        let s = connect(port);
        if j % 5 == 0 {
            rst_close(s);
        } else {
            drop(s);
        }
    }
    drop(half_closed);
}

#[test]
fn seed_scenario_vanishing_clients_leave_no_trace() {
    let mut server = Server::start(&[]);
    let port = server.port;
    assert_sigpipe_default(server.pid, "after start");

    let mut rng = Rng::new(0x5eed_5eed);
    let started = Instant::now();
    let mut worst_probe = Duration::ZERO;
    for r in 0..ROUNDS {
        round(port, r, &mut rng);
        server.assert_alive(&format!("after round {r}"));
        // A fresh GET / is answered within 1 s (probe panics otherwise).
        worst_probe = worst_probe.max(probe(port));
        // fds back to the start, no CLOSE_WAIT on the port, 0 active connections.
        server.assert_settled(&format!("after round {r}"));
    }
    let st = server.stats();
    eprintln!(
        "{ROUNDS} rounds in {:?}; slowest probe {worst_probe:?}; stats {:?}",
        started.elapsed(),
        sorted(&st)
    );
    assert!(
        stat(&st, "accepted") >= (ROUNDS * (CLIENTS + CONNECT_AND_CLOSE)) as u64,
        "the server accepted fewer connections than were made: {:?}",
        sorted(&st)
    );

    // Test 4: still alive with SIGPIPE at SIG_DFL, and exits 0 on SIGINT.
    server.assert_alive("after all rounds");
    assert_sigpipe_default(server.pid, "after all rounds");
    server.stop_cleanly("server");
}
