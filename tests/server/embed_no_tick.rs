//! The embedding example (c-examples/embed, sleeping as long as Connection_NextTimeout says, no tick) fires a 200 ms header timeout within 20 ms of its value and sleeps while idle: no wake-up and no CPU over 2 s with an idle keep-alive client.
//!
//! * A client sends a partial request head and waits: the connection is
//!   closed 200..220 ms later (`--header-timeout-ms 200`; median of three
//!   tries, each also bounded below: never early). A loop that only woke
//!   on its descriptor would never close it; one with a 100 ms tick would
//!   be up to 100 ms late.
//! * With a keep-alive client connected and idle for 2 s, the process uses
//!   at most 2 clock ticks of CPU (utime + stime from /proc/PID/stat), and
//!   its loop wakes at most twice besides the requests (the wake-up count
//!   the example serves): it sleeps until the idle deadline, 60 s away.

#[path = "../common/mod.rs"]
mod common;

use std::io::Write;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::{cpu_ticks, example, Conn, Program};

const HEADER_TIMEOUT_MS: u64 = 200;

fn start_embed(extra: &[&str]) -> Program {
    let mut cmd = Command::new(example("embed"));
    cmd.args(["--port", "0", "--host", "127.0.0.1"]);
    cmd.args(extra);
    Program::start("embed", cmd)
}

/// Connects, sends half a request head at once and returns how long the
/// server took to close the connection (from the connect: the first
/// request's header timeout counts from the accept).
fn time_to_close(port: u16) -> Duration {
    let sent = Instant::now();
    let mut c = Conn::open(port);
    c.stream.set_nodelay(true).unwrap();
    c.stream
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    let deadline = sent + Duration::from_secs(5);
    loop {
        match c.fill(deadline) {
            Ok(0) => return sent.elapsed(),
            Ok(_) => c.clear(), // (no response is due; discard anything)
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                panic!("the header timeout never closed the connection (5 s)")
            }
            Err(_) => return sent.elapsed(), // a reset also ends it
        }
    }
}

#[test]
fn a_header_timeout_fires_within_20_ms_of_its_value() {
    let p = start_embed(&["--header-timeout-ms", &HEADER_TIMEOUT_MS.to_string()]);
    let mut took: Vec<Duration> = (0..3).map(|_| time_to_close(p.port)).collect();
    let configured = Duration::from_millis(HEADER_TIMEOUT_MS);
    for t in &took {
        // The timer starts when the server accepts, after the connect;
        // the clock counts whole milliseconds: at most 1 ms early.
        assert!(
            *t + Duration::from_millis(1) >= configured,
            "closed after {t:?}, before the {HEADER_TIMEOUT_MS} ms header timeout: {took:?}"
        );
    }
    took.sort();
    let median = took[1];
    eprintln!("header timeout {HEADER_TIMEOUT_MS} ms: closed after {took:?}");
    assert!(
        median <= configured + Duration::from_millis(20),
        "header timeout of {HEADER_TIMEOUT_MS} ms fired after {median:?} (median; all: {took:?})"
    );
}

/// GET / on a keep-alive connection -> the example's wake-up count.
fn wakeups(c: &mut Conn) -> u64 {
    c.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let (status, _, body) = c
        .read_response(Instant::now() + Duration::from_secs(5))
        .expect("GET / response");
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body).into_owned();
    text.trim()
        .strip_prefix("wakeups ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a wake-up count: {text:?}"))
}

#[test]
fn an_idle_embedded_loop_sleeps() {
    let p = start_embed(&[]);
    let mut c = Conn::open(p.port);
    let before = wakeups(&mut c);
    // Let the first exchange settle (ACKs, write-space events).
    thread::sleep(Duration::from_millis(200));
    let settled = wakeups(&mut c);
    let ticks_before = cpu_ticks(p.pid);
    thread::sleep(Duration::from_secs(2));
    let ticks_after = cpu_ticks(p.pid);
    let after = wakeups(&mut c);
    eprintln!(
        "idle 2 s: {} CPU ticks, {} wake-ups (counts {before}, {settled}, {after})",
        ticks_after - ticks_before,
        after - settled
    );
    assert!(
        ticks_after - ticks_before <= 2,
        "the idle embedded loop used {} clock ticks of CPU in 2 s",
        ticks_after - ticks_before
    );
    // The request itself wakes the loop once (and perhaps a write-space
    // event after the response); a 100 ms tick would add about 20.
    assert!(
        after - settled <= 3,
        "the loop woke {} times over 2 s idle (counts: {before}, {settled}, {after})",
        after - settled
    );
}
