//! Answers that arrive later, through the examples: c-examples/workers.c
//! (deferred responses computed by worker threads, posted back with
//! Connection_Post) answers 1,000 requests correctly, out of order across
//! connections and in order within one; a client that leaves is cleaned up
//! once and nothing leaks (valgrind); shutdown with jobs queued, computing
//! and posted ends each exactly once (valgrind); the pool is clean under
//! helgrind. And the example server's `/delay?ms=N` (an application timer)
//! answers after N ms, refuses a bad N, and frees a timer whose client left.
//!
//! Fails (never skips) without valgrind.

#[path = "../common/mod.rs"]
mod common;

use common::*;
use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The K-th Fibonacci number mod 2^64, as workers.c computes it.
fn fib(n: u64) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        let t = a.wrapping_add(b);
        a = b;
        b = t;
    }
    a
}

/// `c-examples/workers --port 0 --host 127.0.0.1 ARGS`, optionally under
/// `valgrind TOOL_ARGS --log-file=LOG`.
fn workers(args: &[&str], valgrind: Option<(&[&str], &Path)>) -> Program {
    let mut cmd = match valgrind {
        Some((tool_args, log)) => {
            require_tool("valgrind", "--version", "valgrind");
            let mut cmd = Command::new("valgrind");
            cmd.args(tool_args)
                .arg(format!("--log-file={}", log.display()))
                .arg(example("workers"));
            cmd
        }
        None => Command::new(example("workers")),
    };
    cmd.args(["--port", "0", "--host", "127.0.0.1"]).args(args);
    let name = if valgrind.is_some() {
        "workers under valgrind"
    } else {
        "workers"
    };
    Program::start(name, cmd)
}

/// workers.c's `/stats` ("dispatched 3, in flight 0, queued 0, ...").
fn pool_stats(port: u16) -> HashMap<String, u64> {
    let (status, _, body) = try_get(port, "/stats", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("GET /stats: {e}"));
    assert_eq!(status, 200);
    counts(&String::from_utf8_lossy(&body))
}

/// "name 12, other name 3" → {name: 12, other name: 3}.
fn counts(text: &str) -> HashMap<String, u64> {
    text.trim()
        .trim_start_matches("workers: ")
        .split(", ")
        .filter_map(|part| {
            let (name, n) = part.rsplit_once(' ')?;
            Some((name.to_owned(), n.parse().ok()?))
        })
        .collect()
}

/// The exit summary workers.c prints to stderr.
fn summary(p: &Program) -> HashMap<String, u64> {
    let text = p.stderr_text();
    let line = text
        .lines()
        .find(|l| l.starts_with("workers: "))
        .unwrap_or_else(|| panic!("no exit summary on stderr:\n{text}"));
    counts(line)
}

fn valgrind_clean(log: &Path) {
    let text = fs::read_to_string(log).unwrap_or_default();
    assert!(text.contains("ERROR SUMMARY: 0 errors"), "{text}");
    assert!(
        text.contains("definitely lost: 0 bytes") || text.contains("no leaks are possible"),
        "{text}"
    );
}

const MEMCHECK: &[&str] = &[
    "--error-exitcode=99",
    "--leak-check=full",
    "--errors-for-leak-kinds=definite",
];

fn request_line(n: u64, sleep_ms: u64) -> String {
    format!("GET /work?n={n}&sleep_ms={sleep_ms} HTTP/1.1\r\nHost: t\r\n\r\n")
}

fn check_fib(reply: &Reply, n: u64, what: &str) -> (u64, u64) {
    let (status, headers, body) = reply;
    let text = String::from_utf8_lossy(body);
    assert_eq!(*status, 200, "{what}: {text}");
    assert_eq!(text, format!("fib({n}) = {}\n", fib(n)), "{what}");
    let num = |name| -> u64 {
        header(headers, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{what}: no {name} header in {headers:?}"))
    };
    (num("X-Job"), num("X-Done"))
}

#[test]
fn thousand_deferred_requests_out_of_order_across_connections_in_order_within() {
    const CONNS: u64 = 20;
    const BATCHES: u64 = 5;
    const PER_BATCH: u64 = 10;
    let mut p = workers(&["--threads", "4"], None);
    let port = p.port;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CONNS)
        .map(|c| {
            let seen = Arc::clone(&seen);
            thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut conn = Conn::open(port);
                for batch in 0..BATCHES {
                    // n unique per request (7919 is prime to 200000), and
                    // uneven work: the workers finish out of order.
                    let jobs: Vec<(u64, u64)> = (0..PER_BATCH)
                        .map(|k| {
                            let i = (c * BATCHES + batch) * PER_BATCH + k;
                            (1000 + i * 7919 % 200_000, i % 4)
                        })
                        .collect();
                    let pipelined = c % 2 == 0;
                    if pipelined {
                        let wire: String = jobs.iter().map(|&(n, s)| request_line(n, s)).collect();
                        conn.send(wire.as_bytes())
                            .expect("send the pipelined batch");
                    }
                    for (k, &(n, s)) in jobs.iter().enumerate() {
                        if !pipelined {
                            conn.send(request_line(n, s).as_bytes())
                                .expect("send a request");
                        }
                        let what = format!("connection {c} batch {batch} request {k} (n={n})");
                        let reply = conn
                            .read_response(deadline)
                            .unwrap_or_else(|e| panic!("{what}: {e}"));
                        let order = check_fib(&reply, n, &what);
                        seen.lock().unwrap().push(order);
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("a client failed");
    }
    let mut seen = seen.lock().unwrap().clone();
    let total = (CONNS * BATCHES * PER_BATCH) as usize;
    assert_eq!(seen.len(), total);
    seen.sort();
    let jobs: Vec<u64> = seen.iter().map(|&(j, _)| j).collect();
    assert_eq!(jobs, (1..=total as u64).collect::<Vec<_>>(), "X-Job");
    let mut done: Vec<u64> = seen.iter().map(|&(_, d)| d).collect();
    // Finished in another order than dispatched: some later job done first.
    let inversions = done.windows(2).filter(|w| w[0] > w[1]).count();
    eprintln!("{inversions} adjacent dispatch/finish inversions in {total} jobs");
    assert!(inversions > 0, "every job finished in dispatch order");
    done.sort();
    assert_eq!(done, (1..=total as u64).collect::<Vec<_>>(), "X-Done");
    let s = pool_stats(port);
    assert_eq!(s["dispatched"], total as u64, "{s:?}");
    assert_eq!(s["answered"], total as u64, "{s:?}");
    assert_eq!(s["in flight"], 0, "{s:?}");
    let status = p.interrupt();
    assert_eq!(status.code(), Some(0), "{}", p.stderr_text());
}

#[test]
fn client_gone_before_the_answer_is_cleaned_up_once_without_leaks() {
    let dir = TempDir::new("workers-gone");
    let log = dir.path().join("valgrind.log");
    let mut p = workers(&["--threads", "8"], Some((MEMCHECK, &log)));
    let port = p.port;
    let slow: Vec<Conn> = (0..4)
        .map(|_| {
            let mut c = Conn::open(port);
            c.send(request_line(10, 1500).as_bytes()).expect("send");
            c
        })
        .collect();
    assert!(
        wait_until(Duration::from_secs(10), || pool_stats(port)["dispatched"]
            == 4),
        "the 4 slow jobs were not dispatched: {:?}",
        pool_stats(port)
    );
    for c in slow {
        rst_close(c.stream);
    }
    // Each response's on_close runs once, at once; each job is freed when
    // its worker is done with it.
    assert!(
        wait_until(Duration::from_secs(10), || pool_stats(port)["closed"] == 4),
        "on_close: {:?}",
        pool_stats(port)
    );
    assert!(
        wait_until(Duration::from_secs(10), || {
            let s = pool_stats(port);
            s["freed after close"] == 4 && s["in flight"] == 0
        }),
        "jobs of gone clients: {:?}",
        pool_stats(port)
    );
    // Service goes on.
    let reply = request(
        port,
        request_line(93, 0).as_bytes(),
        Duration::from_secs(10),
    )
    .expect("GET /work after the resets");
    check_fib(&reply, 93, "after the resets");
    let (status, _, body) = try_get(port, "/", Duration::from_secs(10)).expect("GET /");
    assert_eq!((status, body.as_slice()), (200, HELLO));
    let status = p.interrupt();
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "exit (99: valgrind errors)\n{text}");
    let s = summary(&p);
    assert_eq!(s["closed"], 4, "{s:?}");
    assert_eq!(s["freed after close"], 4, "{s:?}");
    assert_eq!(s["answered"], 2, "{s:?}");
    assert_eq!(s["in flight"], 0, "{s:?}");
    valgrind_clean(&log);
}

#[test]
fn destroy_with_jobs_queued_computing_and_posted_ends_each_once() {
    let dir = TempDir::new("workers-destroy");
    let log = dir.path().join("valgrind.log");
    let mut p = workers(
        &["--threads", "2", "--drain-timeout-ms", "200"],
        Some((MEMCHECK, &log)),
    );
    let port = p.port;
    let _clients: Vec<Conn> = (0..5)
        .map(|_| {
            let mut c = Conn::open(port);
            c.send(request_line(20, 3000).as_bytes()).expect("send");
            c
        })
        .collect();
    // Both workers hold a job (sleeping 3 s), three wait in the queue.
    assert!(
        wait_until(Duration::from_secs(10), || {
            let s = pool_stats(port);
            s["dispatched"] == 5 && s["queued"] == 3
        }),
        "{:?}",
        pool_stats(port)
    );
    // SIGINT: the drain deadline closes the 5 responses (on_close), the
    // workers post their 2 jobs and exit, the 3 queued jobs are ended by
    // main, the 2 posts by Connection_Destroy (cancelled = 1).
    let status = p.interrupt();
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "exit (99: valgrind errors)\n{text}");
    let s = summary(&p);
    assert_eq!(s["dispatched"], 5, "{s:?}");
    assert_eq!(s["answered"], 0, "{s:?}");
    assert_eq!(s["closed"], 5, "{s:?}");
    assert_eq!(s["cancelled in queue"], 3, "{s:?}");
    assert_eq!(s["cancelled posts"], 2, "{s:?}");
    assert_eq!(s["in flight"], 0, "{s:?}");
    valgrind_clean(&log);
}

#[test]
fn worker_pool_is_clean_under_helgrind() {
    let dir = TempDir::new("workers-helgrind");
    let log = dir.path().join("helgrind.log");
    let supp = repo_root().join("tests/fixtures/helgrind.supp");
    let supp_arg = format!("--suppressions={}", supp.display());
    let tool: &[&str] = &["--tool=helgrind", "--error-exitcode=99", &supp_arg];
    let mut p = workers(&["--threads", "4"], Some((tool, &log)));
    let port = p.port;
    let clients: Vec<_> = (0..4u64)
        .map(|c| {
            thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut conn = Conn::open(port);
                for batch in 0..5u64 {
                    let jobs: Vec<u64> = (0..5).map(|k| 100 + c * 1000 + batch * 10 + k).collect();
                    let wire: String = jobs.iter().map(|&n| request_line(n, n % 3)).collect();
                    conn.send(wire.as_bytes()).expect("send");
                    for &n in &jobs {
                        let reply = conn.read_response(deadline).expect("response");
                        check_fib(&reply, n, "under helgrind");
                    }
                }
            })
        })
        .collect();
    // And one client that leaves before its answer.
    let mut gone = Conn::open(port);
    gone.send(request_line(5, 300).as_bytes()).expect("send");
    for c in clients {
        c.join().expect("a client failed");
    }
    rst_close(gone.stream);
    assert!(
        wait_until(Duration::from_secs(20), || pool_stats(port)["in flight"]
            == 0),
        "{:?}",
        pool_stats(port)
    );
    let status = p.interrupt();
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "exit (99: helgrind errors)\n{text}");
    assert!(text.contains("ERROR SUMMARY: 0 errors"), "{text}");
    let s = summary(&p);
    assert_eq!(s["answered"] + s["freed after close"], 101, "{s:?}");
}

// ----- the example server's /delay?ms=N ------------------------------------

fn delay_body(reply: &Reply) -> String {
    assert_eq!(reply.0, 200, "{:?}", String::from_utf8_lossy(&reply.2));
    String::from_utf8_lossy(&reply.2).into_owned()
}

#[test]
fn delay_answers_after_n_ms_and_not_much_later_under_load() {
    let server = Server::start(&[]);
    let port = server.port;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Background load: keep-alive GET / on 4 connections.
    let load: Vec<_> = (0..4)
        .map(|_| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut conn = Conn::open(port);
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                        .expect("send");
                    let r = conn
                        .read_response(Instant::now() + Duration::from_secs(5))
                        .expect("GET / under load");
                    assert_eq!(r.0, 200);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let delays: Vec<_> = [0u64, 20, 50, 100, 150, 200, 300, 400, 500, 700]
        .into_iter()
        .map(|ms| {
            thread::spawn(move || {
                let raw = format!("GET /delay?ms={ms} HTTP/1.1\r\nHost: t\r\n\r\n");
                let start = Instant::now();
                let reply =
                    request(port, raw.as_bytes(), Duration::from_secs(5)).expect("GET /delay");
                let took = start.elapsed();
                let body = delay_body(&reply);
                assert!(body.starts_with(&format!("waited {ms} ms;")), "{body}");
                (ms, took)
            })
        })
        .collect();
    let mut late = Vec::new();
    for d in delays {
        let (ms, took) = d.join().expect("a /delay client failed");
        eprintln!("/delay?ms={ms}: answered after {took:?}");
        assert!(
            took >= Duration::from_millis(ms),
            "/delay?ms={ms} answered early: {took:?}"
        );
        if took > Duration::from_millis(ms + 200) {
            late.push((ms, took));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let served: u64 = load.into_iter().map(|l| l.join().expect("load")).sum();
    eprintln!("{served} GET / served meanwhile");
    assert!(late.is_empty(), "answered more than 200 ms late: {late:?}");
    assert!(served > 0);
    server.stop_cleanly("server");
}

#[test]
fn delay_refuses_a_bad_n() {
    let server = Server::start(&[]);
    for q in [
        "ms=60001",
        "ms=abc",
        "ms=-1",
        "ms=",
        "",
        "ms=5&x=1",
        "ms=99999999999999999999",
    ] {
        let (status, _, body) = get(server.port, &format!("/delay?{q}"));
        assert_eq!(
            status,
            400,
            "/delay?{q}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    server.stop_cleanly("server");
}

/// Opens `count` connections each waiting on `/delay?ms=ms`, and returns
/// them once the server has read every request (its `requests` counter).
fn waiting_delays(port: u16, count: usize, ms: u64) -> Vec<Conn> {
    let before = stat(&stats(port), "requests");
    let conns: Vec<Conn> = (0..count)
        .map(|_| {
            let mut c = Conn::open(port);
            c.send(format!("GET /delay?ms={ms} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
                .expect("send");
            c
        })
        .collect();
    // +1 per /stats poll itself.
    let mut polls = 0;
    assert!(
        wait_until(Duration::from_secs(10), || {
            polls += 1;
            stat(&stats(port), "requests") >= before + count as u64 + polls
        }),
        "the server did not read the {count} /delay requests"
    );
    conns
}

#[test]
fn delay_whose_client_left_is_cancelled_at_once() {
    let server = Server::start(&[]);
    let port = server.port;
    for c in waiting_delays(port, 5, 60_000) {
        rst_close(c.stream);
    }
    // The five timers are cancelled (on_close) as the resets arrive, not
    // in 60 s: a short delay then finds no other delay pending.
    let mut last = String::new();
    assert!(
        wait_until(Duration::from_secs(5), || {
            last = delay_body(&get(port, "/delay?ms=1"));
            last == "waited 1 ms; 0 other delays pending\n"
        }),
        "timers of gone clients still pending: {last:?}"
    );
    server.stop_cleanly("server");
}

#[test]
fn delay_is_clean_under_valgrind_with_timers_pending_at_shutdown() {
    require_tool("valgrind", "--version", "valgrind");
    let dir = TempDir::new("delay-valgrind");
    let log = dir.path().join("valgrind.log");
    let mut cmd = Command::new("valgrind");
    cmd.args(MEMCHECK)
        .arg(format!("--log-file={}", log.display()))
        .arg(server_binary())
        .args(["--port", "0", "--host", "127.0.0.1"]);
    let mut p = Program::start("server under valgrind", cmd);
    let port = p.port;
    // Three clients leave (their timers are cancelled from on_close), one
    // is answered, two still wait at SIGINT (the drain deadline closes
    // them: on_close cancels their timers).
    for c in waiting_delays(port, 3, 60_000) {
        rst_close(c.stream);
    }
    let body = delay_body(
        &try_get(port, "/delay?ms=10", Duration::from_secs(10)).expect("GET /delay?ms=10"),
    );
    assert!(body.starts_with("waited 10 ms;"), "{body}");
    let _waiting = waiting_delays(port, 2, 60_000);
    let status = p.interrupt();
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "exit (99: valgrind errors)\n{text}");
    valgrind_clean(&log);
}
