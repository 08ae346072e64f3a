//! The server-wide bound on queued output (`output_high_water_total`):
//! 40 slow readers each pipeline four requests for a 1 MiB body that the
//! server copies (`/big?copy=1` on the test server) and stop reading. With
//! the bound at 4 MiB the server's RSS must stay within the bound plus one
//! response plus a little slack, however many clients ask; once the clients
//! read, every one of them is served completely (the waiting requests start
//! as room appears), and once they are gone RSS is back within 10% of its
//! start within 5 s (the freed copies are returned to the kernel).

#[path = "../common/mod.rs"]
mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::*;

const CLIENTS: usize = 40;
const PIPELINED: usize = 4;
const BODY: usize = 1 << 20;
const BOUND: u64 = 4 << 20;
/// Besides the bound: one response over it, the connections' pooled
/// buffers, the allocator's slack.
const SLACK: u64 = 4 << 20;
const HOLD: Duration = Duration::from_millis(1500);
const RETURN_WITHIN: Duration = Duration::from_secs(5);
/// Byte i of every generated body (tests/fixtures/test_server.c).
const PATTERN: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+\n";

#[test]
fn queued_output_stays_within_the_server_wide_bound() {
    let bound = BOUND.to_string();
    let mut server = Server::start_fixture(&[
        "--output-high-water-total",
        &bound,
        // Requests that wait for room are not timed out while the test
        // holds its clients still.
        "--header-timeout-ms",
        "30000",
    ]);
    let (port, pid) = (server.port, server.pid);
    let start = rss_kib(pid);
    let sampler = PeakRss::start(vec![pid]);
    let request = format!("GET /big?copy=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let (mut clients, answered) = slow_readers(
        port,
        CLIENTS,
        request.as_bytes(),
        PIPELINED,
        4096,
        4096,
        Duration::from_secs(1),
    );
    thread::sleep(HOLD);
    let peak = sampler.finish();
    let held_kib = peak.saturating_sub(start);
    eprintln!(
        "{CLIENTS} slow readers x {PIPELINED} copied 1 MiB bodies, bound {} KiB: RSS start {start} KiB, \
         peak {peak} KiB (+{held_kib} KiB); {answered} clients answered before anyone read",
        BOUND / 1024
    );
    assert!(
        held_kib * 1024 <= BOUND + SLACK,
        "the server held {held_kib} KiB more than at its start with {CLIENTS} slow readers: \
         over the bound of {} KiB plus {} KiB of slack",
        BOUND / 1024,
        SLACK / 1024
    );
    assert!(
        answered < CLIENTS,
        "every client was answered at once: the load did not reach the bound"
    );

    // Now everyone reads: every response arrives whole.
    let deadline = Instant::now() + Duration::from_secs(30);
    let started = Instant::now();
    for (i, c) in clients.iter_mut().enumerate() {
        for r in 0..PIPELINED {
            let (status, _, body) = c.read_response(deadline).unwrap_or_else(|e| {
                panic!(
                    "client {i} response {r}: {e}; stats {:?}",
                    sorted(&server.stats())
                )
            });
            assert_eq!(status, 200, "client {i} response {r}");
            assert_eq!(body.len(), BODY, "client {i} response {r}");
            for at in [0, BODY / 2 + 7, BODY - 1] {
                assert_eq!(
                    body[at],
                    PATTERN[at % PATTERN.len()],
                    "client {i} response {r} byte {at}"
                );
            }
        }
    }
    eprintln!(
        "all {} responses read in {:?}",
        CLIENTS * PIPELINED,
        started.elapsed()
    );
    drop(clients);

    let limit = start + start / 10;
    let mut after = 0;
    let back = wait_until(RETURN_WITHIN, || {
        after = rss_kib(pid);
        after <= limit
    });
    eprintln!("RSS {after} KiB after the clients left (start {start} KiB)");
    assert!(
        back,
        "RSS still {after} KiB {RETURN_WITHIN:?} after the clients left: not back within 10% \
         of its start ({start} KiB)"
    );
    server.assert_settled("after the clients left");
    server.stop_cleanly("test server");
}
