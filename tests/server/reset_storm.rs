//! A reset storm is survived: 200 clients each request a 1 MiB chunked stream
//! and, once it is flowing, all reset (SO_LINGER 0) at nearly the same
//! instant; ten times. The server stays up, answers GET /, and is back to its
//! idle fd count with no active connection after every storm. Runs the test
//! server (tests/fixtures/test_server.c) for its cleanup_* counters.

#[path = "../common/mod.rs"]
mod common;

use common::*;
use std::time::{Duration, Instant};

const ROUNDS: usize = 10;
const CLIENTS: usize = 200;
/// Small receive buffers keep 200 non-reading clients from pinning hundreds
/// of megabytes of kernel memory.
const RCVBUF: i32 = 16 * 1024;

#[test]
fn reset_storm() {
    let mut server = Server::start_fixture(&[]);
    let port = server.port;
    let started = Instant::now();

    for round in 0..ROUNDS {
        let mut clients = Vec::with_capacity(CLIENTS);
        for i in 0..CLIENTS {
            let stream = connect_with_rcvbuf(port, RCVBUF)
                .unwrap_or_else(|e| panic!("round {round} client {i}: connect: {e}"));
            let mut c = Conn::new(stream);
            c.send(
                format!("GET /chunked?size=1048576 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap_or_else(|e| panic!("round {round} client {i}: send: {e}"));
            clients.push(c);
        }

        // Readiness: every stream is flowing.
        let deadline = Instant::now() + Duration::from_secs(10);
        for (i, c) in clients.iter_mut().enumerate() {
            c.read_at_least(16, deadline)
                .unwrap_or_else(|e| panic!("round {round} client {i}: no response: {e}"));
            assert!(
                c.buffered().starts_with(b"HTTP/1.1 200"),
                "round {round} client {i}: response starts with {:?}",
                String::from_utf8_lossy(&c.buffered()[..c.buffered().len().min(64)])
            );
        }

        // The storm.
        for c in clients {
            rst_close(c.stream);
        }

        server.assert_alive(&format!("after reset storm {round}"));
        let took = probe(port);
        server.assert_settled(&format!("after reset storm {round}"));
        eprintln!("storm {round}: probe answered in {took:?}");
    }

    let st = server.stats();
    eprintln!(
        "{ROUNDS} storms in {:?}; stats {:?}",
        started.elapsed(),
        sorted(&st)
    );
    // Every stream's cleanup ran exactly once.
    let cleanups: u64 = [
        "cleanup_completed",
        "cleanup_peer_closed",
        "cleanup_reset",
        "cleanup_timeout",
        "cleanup_shutdown",
        "cleanup_error",
    ]
    .iter()
    .map(|k| stat(&st, k))
    .sum();
    assert_eq!(
        cleanups,
        (ROUNDS * CLIENTS) as u64,
        "stream cleanups reported for {} streams: {:?}",
        ROUNDS * CLIENTS,
        sorted(&st)
    );
    server.stop_cleanly("server");
}
