//! A noise-free measure of the library's own work per request: 10,000
//! pipelined keep-alive requests (16 per read) through the real connection
//! state machine in memory (no sockets, no kernel time). Run under callgrind,
//! which counts instructions and so gives the same total on a busy machine:
//!
//!     cargo build --release --example instructions_per_request
//!     valgrind --tool=callgrind --callgrind-out-file=cg.out \
//!         target/release/examples/instructions_per_request
//!     callgrind_annotate cg.out | head -30
//!
//! Divide "Collected" by 10,000 for instructions per request.

use connection_core::config::Limits;
use connection_core::harness::run_exchange;

const REQUESTS: usize = 10_000;

fn main() {
    let one = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:18185\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n";
    let all: Vec<u8> = one
        .iter()
        .copied()
        .cycle()
        .take(one.len() * REQUESTS)
        .collect();
    let pieces: Vec<&[u8]> = all.chunks(16 * one.len()).collect();
    let out = run_exchange(Limits::default(), &pieces, false, 0);
    assert_eq!(out.stats.responses, REQUESTS as u64);
}
