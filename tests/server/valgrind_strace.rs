//! `make valgrind` and `make strace` as part of `cargo test`: the test
//! server (the example plus instrumentation) under valgrind with a load of
//! aborted clients must show 0 errors and 0 bytes definitely lost; under
//! strace the example server's every send must carry MSG_NOSIGNAL and
//! a client fd is closed without EPOLL_CTL_DEL (tests/api/stale_events.rs shows why that is safe).

#[path = "../common/mod.rs"]
mod common;

use common::*;
use std::sync::Mutex;
use std::time::Duration;

/// The two targets share c-examples/ output files' directory: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn make_target(target: &str, tool: &str) -> String {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Builds the examples and the test server (and serialises with other
    // test binaries).
    server_binary();
    require_tool(tool, "--version", tool);
    let out = run(&mut make_examples(&[target]), Duration::from_secs(600))
        .unwrap_or_else(|e| panic!("make {target}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "make {target} failed:\n{text}");
    text
}

#[test]
fn valgrind_reports_no_errors_and_no_definite_leaks() {
    let text = make_target("valgrind", "valgrind");
    eprintln!("{text}");
    assert!(text.contains("ERROR SUMMARY: 0 errors"), "{text}");
    assert!(
        text.contains("definitely lost: 0 bytes") || text.contains("no leaks are possible"),
        "{text}"
    );
}

#[test]
fn strace_shows_msg_nosignal_and_close_without_del() {
    let text = make_target("strace", "strace");
    eprintln!("{text}");
    assert!(text.contains("MSG_NOSIGNAL"), "{text}");
    assert!(
        text.contains("closed without EPOLL_CTL_DEL (one system call fewer"),
        "{text}"
    );
}
