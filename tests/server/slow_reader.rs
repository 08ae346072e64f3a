//! A client that never reads is given up on: it asks for a 16 MiB stream. With
//! `--send-timeout-ms 1000` the server must, within a few seconds, give up on
//! it (stats: cleanup_timeout >= 1, closed_timeout >= 1) and close the socket,
//! while every other client keeps being answered in under 100 ms. Runs the
//! test server (tests/fixtures/test_server.c) for its cleanup_* counters.

#[path = "../common/mod.rs"]
mod common;

use common::*;
use std::io;
use std::thread;
use std::time::{Duration, Instant};

const BODY: usize = 16 * 1024 * 1024;
const PROBE_LIMIT: Duration = Duration::from_millis(100);
const TIMEOUT_BOUND: Duration = Duration::from_secs(5);

#[test]
fn slow_reader_times_out_and_others_are_served() {
    let mut server = Server::start_fixture(&["--send-timeout-ms", "1000"]);
    let port = server.port;

    let mut slow = Conn::open(port);
    slow.send(
        format!("GET /chunked?size={BODY} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes(),
    )
    .expect("send request");
    let slow_port = slow.stream.local_addr().expect("local addr").port();
    let start = Instant::now();

    // Never read from `slow`; keep probing the server meanwhile.
    let mut probes = 0;
    let mut worst = Duration::ZERO;
    let mut last_stats;
    let timed_out = loop {
        let took = probe(port);
        probes += 1;
        worst = worst.max(took);
        assert!(
            took < PROBE_LIMIT,
            "probe {probes} ({:?} after the slow request) took {took:?} (limit {PROBE_LIMIT:?})",
            start.elapsed()
        );
        last_stats = server.stats();
        if stat(&last_stats, "cleanup_timeout") >= 1 && stat(&last_stats, "closed_timeout") >= 1 {
            break true;
        }
        if start.elapsed() >= TIMEOUT_BOUND {
            break false;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let elapsed = start.elapsed();
    assert!(
        timed_out,
        "no send timeout within {TIMEOUT_BOUND:?} for a client that never reads \
         (--send-timeout-ms 1000); stats {:?}; sockets {:?}",
        sorted(&last_stats),
        ss_lines(port)
    );
    eprintln!("slow reader timed out after {elapsed:?}; {probes} probes, slowest {worst:?}");

    // The slow socket was closed by the server: draining it ends in EOF or a
    // reset, well before the 16 MiB body is complete.
    let deadline = Instant::now() + Duration::from_secs(5);
    let how = loop {
        match slow.fill(deadline) {
            Ok(0) => break "FIN",
            Ok(_) => slow.clear(),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break "RST",
            Err(e) => panic!(
                "the slow client's connection (client port {slow_port}) was not closed by the server \
                 after {} bytes: {e}; sockets {:?}",
                slow.received,
                ss_lines(port)
            ),
        }
    };
    assert!(
        slow.received < BODY,
        "the slow client received {} bytes: the whole body was sent, nothing timed out",
        slow.received
    );
    eprintln!("slow client saw {how} after {} bytes", slow.received);
    drop(slow);

    probe(port);
    server.assert_settled("after the slow reader was timed out");
}
