//! Clients that abort in the middle of a file sent with sendfile(2) never
//! make SIGPIPE reach the server: c-examples/static.c (SIGPIPE at SIG_DFL)
//! runs under `strace -f`, 100 clients read a little of a 16 MiB file and
//! go (RST, or FIN then RST so that sendfile meets EPIPE). Checks: the
//! server lives, strace shows sendfile failing with EPIPE but no `---
//! SIGPIPE` delivery; SIGPIPE is neither ignored nor caught, blocked or
//! pending (thread or process) afterwards; the descriptor count is back
//! to its baseline (no socket or file descriptor leaked).

#[path = "../common/mod.rs"]
mod common;

use std::fs;
use std::io::Read;
use std::net::Shutdown;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const FILE_LEN: usize = 16 << 20;
const CLIENTS: usize = 100;
const AT_ONCE: usize = 10;
const SIGPIPE_BIT: u64 = 1 << (libc::SIGPIPE - 1);

/// SigPnd, ShdPnd, SigBlk, SigIgn, SigCgt of a process's main thread.
fn signal_fields(pid: i32) -> [u64; 5] {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    ["SigPnd:", "ShdPnd:", "SigBlk:", "SigIgn:", "SigCgt:"].map(|name| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| u64::from_str_radix(v.trim(), 16).expect("hex mask"))
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    })
}

fn assert_sigpipe_untouched(pid: i32, when: &str) {
    let f = signal_fields(pid);
    for (name, mask) in [
        "pending (thread)",
        "pending (process)",
        "blocked",
        "ignored",
        "caught",
    ]
    .iter()
    .zip(f)
    {
        assert_eq!(
            mask & SIGPIPE_BIT,
            0,
            "{when}: SIGPIPE is {name} ({mask:#x})"
        );
    }
}

/// One client: asks for the file, reads a little of it, and goes.
fn abort_one(port: u16, i: usize) {
    let stream = connect_with_rcvbuf(port, 4096).expect("connect");
    let mut c = Conn::new(stream);
    c.send(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    let deadline = Instant::now() + Duration::from_secs(10);
    c.read_at_least(1000 + i * 37, deadline)
        .unwrap_or_else(|e| panic!("client {i}: {e}"));
    let stream = c.stream;
    if i % 2 == 0 {
        rst_close(stream);
    } else {
        // FIN first: the server's socket is in CLOSE_WAIT when the RST of
        // the close with unread data arrives, so its next send fails with
        // EPIPE, the error that raises SIGPIPE.
        stream.shutdown(Shutdown::Write).expect("shutdown");
        let mut s = &stream;
        let mut buf = [0u8; 100];
        let _ = s.read(&mut buf);
        thread::sleep(Duration::from_millis(5));
        drop(stream);
    }
}

#[test]
fn aborted_sendfile_clients_raise_no_sigpipe_and_leak_nothing() {
    require_tool("strace", "-V", "strace");
    let tmp = TempDir::new("sigpipe");
    let root = tmp.path().join("root");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("big.bin"), vec![b'x'; FILE_LEN]).unwrap();
    fs::write(root.join("small.txt"), b"small\n").unwrap();
    let log = tmp.path().join("strace.log");

    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-o"])
        .arg(&log)
        .args([
            "-e",
            "trace=sendfile,rt_sigprocmask,rt_sigtimedwait",
            "-e",
            "signal=SIGPIPE",
        ])
        .arg(example("static"))
        .arg("--root")
        .arg(&root)
        .args(["--port", "0", "--host", "127.0.0.1"]);
    let mut program = Program::start("strace static", cmd);
    let port = program.port;
    let mut pid = 0;
    assert!(
        wait_until(Duration::from_secs(5), || {
            pid = children_of(program.pid).first().copied().unwrap_or(0);
            pid != 0
        }),
        "static did not appear under strace"
    );
    assert_eq!(
        request(
            port,
            b"GET /small.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            PROBE_TIMEOUT
        )
        .expect("warm-up")
        .2,
        b"small\n"
    );
    let baseline = wait_stable_fd_count(pid, Duration::from_secs(2));
    assert_sigpipe_untouched(pid, "before the clients");

    for batch in 0..CLIENTS / AT_ONCE {
        let clients: Vec<_> = (0..AT_ONCE)
            .map(|k| thread::spawn(move || abort_one(port, batch * AT_ONCE + k)))
            .collect();
        for c in clients {
            c.join().expect("client thread");
        }
        program.assert_alive(&format!("after batch {batch}"));
    }

    let mut fds = 0;
    let settled = wait_until(SETTLE_TIMEOUT * 2, || {
        fds = fd_count(pid);
        fds <= baseline
    });
    assert!(
        settled,
        "fds {fds} > baseline {baseline}: {:?}",
        list_fds(pid)
    );
    program.assert_alive("after the clients");
    // The server still serves.
    assert_eq!(
        request(
            port,
            b"GET /small.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            PROBE_TIMEOUT
        )
        .expect("after the clients")
        .2,
        b"small\n"
    );
    assert_sigpipe_untouched(pid, "after the clients");

    send_signal(pid, libc::SIGINT);
    let status = program
        .wait_exit(Duration::from_secs(20))
        .expect("static under strace did not exit after SIGINT");
    let trace = fs::read_to_string(&log).expect("strace log");
    assert_eq!(status.code(), Some(0), "exit: {}", describe_status(status));
    let delivered: Vec<&str> = trace
        .lines()
        .filter(|l| l.contains("--- SIGPIPE"))
        .collect();
    assert!(delivered.is_empty(), "SIGPIPE delivered: {delivered:?}");
    let epipe = trace
        .lines()
        .filter(|l| l.contains("sendfile(") && l.contains("EPIPE"))
        .count();
    let taken = trace
        .lines()
        .filter(|l| {
            l.contains("rt_sigtimedwait(") && l.contains("SIGPIPE") && !l.contains("EAGAIN")
        })
        .count();
    let sendfiles = trace.lines().filter(|l| l.contains("sendfile(")).count();
    eprintln!("sendfile calls {sendfiles}, EPIPE {epipe}, SIGPIPE taken by sigtimedwait {taken}");
    assert!(
        epipe > 0,
        "no sendfile met EPIPE: the test did not exercise SIGPIPE"
    );
    // Every EPIPE raised a SIGPIPE that was taken off; a call that moved
    // bytes before the reset returns them as a success with its SIGPIPE
    // raised too, so there may be more takes than EPIPEs, never fewer.
    assert!(
        taken >= epipe,
        "{epipe} EPIPE but only {taken} SIGPIPE taken off"
    );
}
