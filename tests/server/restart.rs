//! Restarts that drop nothing: `c-examples/restart` is replaced twice
//! (SIGUSR2: fork + exec with the listening socket inherited, adopted
//! through LISTEN_FDS; SIGQUIT to the old one: drain and exit) while a
//! bounded client load opens a new connection per request. Checks: 0 failed
//! requests, 0 refused connections, each old process exits 0, each new one
//! served, and the last one holds exactly the descriptors the first did.

#[path = "../common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{example, wait_stable_fd_count, wait_until, Program};

const CLIENTS: usize = 4;
/// The most requests the load makes (it normally stops well before).
const MAX_REQUESTS: usize = 40_000;

#[derive(Default)]
struct Load {
    done: AtomicUsize,
    failures: Mutex<Vec<String>>,
    refused: AtomicUsize,
    /// Which pids answered, and how often.
    pids: Mutex<Vec<u32>>,
    stop: AtomicBool,
}

fn one_request(port: u16) -> Result<u32, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&out);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    match (text.starts_with("HTTP/1.1 200 "), body.strip_prefix("pid ")) {
        (true, Some(pid)) => pid.trim().parse().map_err(|_| format!("body {body:?}")),
        _ => Err(format!("reply {text:?}")),
    }
}

fn client(port: u16, load: Arc<Load>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !load.stop.load(Ordering::SeqCst)
        && Instant::now() < deadline
        && load.done.fetch_add(1, Ordering::SeqCst) < MAX_REQUESTS
    {
        match one_request(port) {
            Ok(pid) => load.pids.lock().unwrap().push(pid),
            Err(e) => {
                if e.contains("refused") {
                    load.refused.fetch_add(1, Ordering::SeqCst);
                }
                load.failures.lock().unwrap().push(e);
            }
        }
    }
}

fn served_by(load: &Load, pid: i32) -> usize {
    let pids = load.pids.lock().unwrap();
    pids.iter().filter(|&&p| p as i32 == pid).count()
}

/// Waits for a pid we are not the parent of (we are its subreaper) and
/// returns its exit code.
fn reap(pid: i32, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut status = 0;
        // SAFETY: waitpid on a process reparented to us; WNOHANG.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// SIGUSR2 to `old`; the new process's pid once it says it adopted the
/// sockets.
fn replace(program: &mut Program, old: i32, seen: &HashSet<i32>) -> i32 {
    common::send_signal(old, libc::SIGUSR2);
    let mut new = None;
    let found = wait_until(Duration::from_secs(10), || {
        let line = program.wait_stdout(Duration::from_millis(50), |l| {
            l.starts_with("restarted: pid ")
                && l.split(' ')
                    .nth(2)
                    .and_then(|p| p.parse::<i32>().ok())
                    .is_some_and(|p| !seen.contains(&p))
        });
        new = line.and_then(|l| l.split(' ').nth(2).and_then(|p| p.parse().ok()));
        new.is_some()
    });
    assert!(
        found,
        "no successor of {old} started; stdout {:?}",
        program.stdout_lines()
    );
    new.unwrap()
}

#[test]
fn replaced_twice_under_load_with_nothing_dropped() {
    // Orphaned old processes (the first one's successors) become our
    // children, so their exit status can be read.
    // SAFETY: prctl with integer arguments.
    assert_eq!(
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) },
        0
    );
    let bin = example("restart");
    let mut cmd = Command::new(&bin);
    cmd.args(["--port", "0"]);
    let mut program = Program::start("restart", cmd);
    let (port, first) = (program.port, program.pid);
    assert_eq!(one_request(port), Ok(first as u32));
    let first_fds = wait_stable_fd_count(first, Duration::from_secs(2));

    let load = Arc::new(Load::default());
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let load = Arc::clone(&load);
            thread::spawn(move || client(port, load))
        })
        .collect();
    let mut seen = HashSet::from([first]);
    let mut old = first;
    for round in 1..=2 {
        assert!(
            wait_until(Duration::from_secs(20), || served_by(&load, old) >= 200),
            "round {round}: {old} did not serve 200 requests"
        );
        let new = replace(&mut program, old, &seen);
        seen.insert(new);
        // Both serve from the one socket for a moment; then the old drains.
        thread::sleep(Duration::from_millis(100));
        common::send_signal(old, libc::SIGQUIT);
        let code = if old == first {
            wait_until(Duration::from_secs(10), || program.exit_status().is_some());
            program.exit_status().and_then(|s| s.code())
        } else {
            reap(old, Duration::from_secs(10))
        };
        assert_eq!(code, Some(0), "round {round}: old process {old} exit");
        eprintln!(
            "round {round}: {old} -> {new}, {} requests so far",
            load.done.load(Ordering::SeqCst)
        );
        old = new;
    }
    assert!(
        wait_until(Duration::from_secs(20), || served_by(&load, old) >= 200),
        "the last process {old} did not serve 200 requests"
    );
    load.stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let failures = load.failures.lock().unwrap().clone();
    let total = load.pids.lock().unwrap().len() + failures.len();
    let per_pid: Vec<(i32, usize)> = seen.iter().map(|&p| (p, served_by(&load, p))).collect();
    eprintln!(
        "{total} requests, {} failed, {} refused; served per pid: {per_pid:?}",
        failures.len(),
        load.refused.load(Ordering::SeqCst)
    );
    assert_eq!(
        load.refused.load(Ordering::SeqCst),
        0,
        "refused connections"
    );
    assert!(
        failures.is_empty(),
        "failed requests: {:?}",
        &failures[..failures.len().min(10)]
    );
    assert_eq!(seen.len(), 3);

    let last_fds = wait_stable_fd_count(old, Duration::from_secs(2));
    assert_eq!(
        last_fds,
        first_fds,
        "descriptors of the last process ({:?}) vs the first's count",
        common::list_fds(old)
    );
    common::send_signal(old, libc::SIGTERM);
    assert_eq!(
        reap(old, Duration::from_secs(10)),
        Some(0),
        "last process exit"
    );
}
