//! The examples besides server.c, each run as a child on 127.0.0.1:
//! - embed: the core inside the program's own epoll loop (no tick; its
//!   timing is checked in embed_no_tick.rs); GET / reports the loop's
//!   wake-up count; SIGINT drains and exits 0, also with an idle
//!   keep-alive client connected.
//! - multiprocess: N workers on one port under a supervising parent;
//!   `GET /crash` kills one, the parent restarts it and service goes on;
//!   SIGINT exits 0 and leaves no worker behind.
//! - multicore: one Connection per thread; 200 requests over several
//!   keep-alive connections; SIGINT exits 0.
//! - server: every route answers as its header comment says (bodies byte
//!   for byte, HEAD, 404/405, 400 for a bad size, /stats JSON), the options
//!   reach the config, bad options exit 2, SIGTERM drains and exits 0.
//! - test_server (tests/fixtures/test_server.c, the example plus what tests
//!   inspect): `GET /stats?format=text` (nginx stub_status form) agrees with
//!   the connections held open and with the JSON form; HEAD is served
//!   wherever GET is, head only.

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::{children_of, example, process_exists, try_get, wait_until, Conn, Program};

fn keep_alive_get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes()
}

fn body_text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

/// "wakeups N\n" -> N
fn wakeups(body: &[u8]) -> u64 {
    body_text(body)
        .trim()
        .strip_prefix("wakeups ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a wake-up count: {:?}", body_text(body)))
}

#[test]
fn embed_answers_with_the_callers_wakeup_count() {
    let mut cmd = Command::new(example("embed"));
    cmd.args(["--port", "0", "--host", "127.0.0.1"]);
    let mut p = Program::start("embed", cmd);
    let port = p.port;

    // The count grows with traffic: each request wakes the caller's loop.
    let (status, _, body) = common::get(port, "/");
    assert_eq!(status, 200, "GET / -> {status} {:?}", body_text(&body));
    let first = wakeups(&body);
    let (_, _, body) = common::get(port, "/");
    let second = wakeups(&body);
    assert!(
        second > first,
        "wake-up count did not grow with a request: {first} then {second}"
    );

    // Keep-alive and pipelining work through the embedding.
    let mut c = Conn::open(port);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut wire = Vec::new();
    for _ in 0..20 {
        wire.extend_from_slice(&keep_alive_get("/"));
    }
    wire.extend_from_slice(&keep_alive_get("/nope"));
    c.send(&wire).unwrap();
    let mut last = 0;
    for i in 0..20 {
        let (status, _, body) = c.read_response(deadline).expect("pipelined response");
        assert_eq!(status, 200, "pipelined request {i}");
        let n = wakeups(&body);
        assert!(n >= last, "wake-up count went backwards: {last} then {n}");
        last = n;
    }
    let (status, _, _) = c.read_response(deadline).expect("404 response");
    assert_eq!(status, 404);

    // SIGINT with an idle keep-alive client still connected: the core closes
    // it at once and the program exits 0 well within the drain timeout.
    let started = Instant::now();
    let status = p.interrupt();
    let took = started.elapsed();
    assert_eq!(
        status.code(),
        Some(0),
        "embed exit: {}; stderr:\n{}",
        common::describe_status(status),
        p.stderr_text()
    );
    // (The drain timeout is 5 s: a stop that waited for the idle client
    // would take that long.)
    assert!(
        took < Duration::from_secs(2),
        "embed took {took:?} to stop with an idle client"
    );
    drop(c);
}

/// `GET /` on a fresh connection -> the worker pid in "worker PID".
fn worker_pid(port: u16) -> Result<i32, String> {
    let (status, _, body) =
        try_get(port, "/", Duration::from_secs(2)).map_err(|e| format!("GET /: {e}"))?;
    if status != 200 {
        return Err(format!("GET / -> {status} {:?}", body_text(&body)));
    }
    body_text(&body)
        .trim()
        .strip_prefix("worker ")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("GET / body {:?}", body_text(&body)))
}

#[test]
fn multiprocess_restarts_a_crashed_worker() {
    const WORKERS: usize = 3;
    let mut cmd = Command::new(example("multiprocess"));
    cmd.args([
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        "--workers",
        &WORKERS.to_string(),
    ]);
    // The crash is deliberate: no core file.
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::setrlimit(libc::RLIMIT_CORE, &none) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut p = Program::start("multiprocess", cmd);
    let port = p.port;
    let parent = p.pid;

    let before: BTreeSet<i32> = children_of(parent).into_iter().collect();
    assert_eq!(before.len(), WORKERS, "workers of pid {parent}: {before:?}");

    // Every answer comes from one of the workers.
    let mut answered = BTreeSet::new();
    for _ in 0..30 {
        let pid = worker_pid(port).unwrap_or_else(|e| panic!("before the crash: {e}"));
        assert!(
            before.contains(&pid),
            "answer from pid {pid}, not a worker {before:?}"
        );
        answered.insert(pid);
    }
    eprintln!("workers {before:?}; answered by {answered:?}");

    // Crash one worker: the client gets no answer.
    let crash = try_get(port, "/crash", Duration::from_secs(5));
    assert!(
        !matches!(crash, Ok((200, _, _))),
        "GET /crash answered 200: {crash:?}"
    );

    // The parent notices and restarts it: again WORKERS workers, one new.
    let mut after = BTreeSet::new();
    let restarted = wait_until(Duration::from_secs(10), || {
        after = children_of(parent).into_iter().collect();
        after.len() == WORKERS && before.difference(&after).count() == 1
    });
    assert!(
        restarted,
        "no restart within 10 s: workers before {before:?}, now {after:?}; stderr:\n{}",
        p.stderr_text()
    );
    let crashed: Vec<i32> = before.difference(&after).copied().collect();
    let fresh: Vec<i32> = after.difference(&before).copied().collect();
    assert!(
        p.wait_stderr(Duration::from_secs(2), |e| e.contains(&format!(
            "worker {} killed by signal {}",
            crashed[0],
            libc::SIGABRT
        ))),
        "the parent did not report worker {} killed by SIGABRT:\n{}",
        crashed[0],
        p.stderr_text()
    );
    eprintln!("worker {crashed:?} crashed, {fresh:?} took its place");
    p.assert_alive("after the crash");

    // Service continues: a few retries while the dead listener's queue
    // drains (bounded), then every request is answered by a live worker.
    let mut ok_in_a_row = 0;
    let mut failures = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ok_in_a_row < 40 {
        assert!(
            Instant::now() < deadline,
            "service did not recover within 10 s: {failures:?}"
        );
        match worker_pid(port) {
            Ok(pid) => {
                assert!(
                    after.contains(&pid),
                    "answer from pid {pid}, not a live worker {after:?}"
                );
                ok_in_a_row += 1;
            }
            Err(e) => {
                failures.push(e);
                ok_in_a_row = 0;
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
    assert!(
        failures.len() <= 5,
        "too many failed requests after the restart: {failures:?}"
    );

    // SIGINT to the parent: every worker stops, the parent exits 0.
    let status = p.interrupt();
    assert_eq!(
        status.code(),
        Some(0),
        "multiprocess exit: {}; stderr:\n{}",
        common::describe_status(status),
        p.stderr_text()
    );
    let left: Vec<i32> = after
        .iter()
        .copied()
        .filter(|&pid| process_exists(pid))
        .collect();
    assert!(
        left.is_empty(),
        "workers still running after the parent exited: {left:?}"
    );
    assert!(
        common::try_connect(port).is_err(),
        "something still listens on port {port}"
    );
}

#[test]
fn multicore_serves_several_connections_and_stops() {
    const THREADS: usize = 4;
    const CONNS: usize = 8;
    const PER_CONN: usize = 25;
    let mut cmd = Command::new(example("multicore"));
    cmd.args([
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        "--threads",
        &THREADS.to_string(),
    ]);
    let mut p = Program::start("multicore", cmd);
    let port = p.port;

    let tasks = fs::read_dir(format!("/proc/{}/task", p.pid))
        .unwrap()
        .count();
    assert_eq!(
        tasks,
        THREADS + 1,
        "threads of multicore (main + {THREADS})"
    );

    let clients: Vec<_> = (0..CONNS)
        .map(|i| {
            thread::spawn(move || {
                let mut c = Conn::open(port);
                let deadline = Instant::now() + Duration::from_secs(20);
                let mut served = 0;
                for j in 0..PER_CONN {
                    let path = if (i + j) % 10 == 0 { "/big" } else { "/" };
                    c.send(&keep_alive_get(path)).unwrap();
                    let (status, _, body) = c
                        .read_response(deadline)
                        .unwrap_or_else(|e| panic!("connection {i} request {j}: {e}"));
                    assert_eq!(status, 200, "connection {i} request {j} {path}");
                    if path == "/" {
                        assert_eq!(body, common::HELLO);
                    } else {
                        assert_eq!(body.len(), 1 << 20, "/big length");
                    }
                    served += 1;
                }
                served
            })
        })
        .collect();
    let served: usize = clients
        .into_iter()
        .map(|t| t.join().expect("client thread"))
        .sum();
    assert_eq!(served, CONNS * PER_CONN);

    let status = p.interrupt();
    assert_eq!(
        status.code(),
        Some(0),
        "multicore exit: {}; stderr:\n{}",
        common::describe_status(status),
        p.stderr_text()
    );
}

/// test_server.c: `GET /stats?format=text` in nginx stub_status form,
/// consistent with the JSON form and with the connections the test holds
/// open; HEAD wherever GET is allowed.
#[test]
fn server_stub_status_and_head() {
    let server = common::Server::start_fixture(&[]);
    let port = server.port;

    // Two idle keep-alive clients.
    let mut idle: Vec<Conn> = (0..2).map(|_| Conn::open(port)).collect();
    for c in &mut idle {
        c.send(&keep_alive_get("/")).unwrap();
        let (status, _, body) = c
            .read_response(Instant::now() + Duration::from_secs(2))
            .unwrap();
        assert_eq!((status, body.as_slice()), (200, common::HELLO));
    }

    let (status, headers, body) = common::get(port, "/stats?format=text");
    let text = body_text(&body);
    assert_eq!(status, 200, "{text}");
    assert_eq!(common::header(&headers, "content-type"), Some("text/plain"));
    let lines: Vec<&str> = text.split('\n').collect();
    let num = |s: &str| -> u64 {
        s.parse()
            .unwrap_or_else(|_| panic!("not a number {s:?} in {text:?}"))
    };
    assert_eq!(lines.len(), 5, "{text:?}");
    assert_eq!(lines[4], "", "a final newline: {text:?}");
    let active = num(lines[0]
        .strip_prefix("Active connections: ")
        .and_then(|r| r.strip_suffix(' '))
        .unwrap_or_else(|| panic!("line 1: {text:?}")));
    assert_eq!(lines[1], "server accepts handled requests");
    let counts: Vec<u64> = lines[2]
        .strip_prefix(' ')
        .and_then(|r| r.strip_suffix(' '))
        .unwrap_or_else(|| panic!("line 3: {text:?}"))
        .split(' ')
        .map(num)
        .collect();
    assert_eq!(counts.len(), 3, "{text:?}");
    let states: Vec<u64> = lines[3]
        .strip_suffix(' ')
        .unwrap_or_else(|| panic!("line 4: {text:?}"))
        .split(' ')
        .collect::<Vec<_>>()
        .chunks(2)
        .zip(["Reading:", "Writing:", "Waiting:"])
        .map(|(pair, name)| {
            assert_eq!(pair[0], name, "{text:?}");
            num(pair[1])
        })
        .collect();
    eprintln!("stub_status:\n{text}");
    // This request plus the two idle clients.
    assert_eq!(active, server.baseline_active + 2, "{text:?}");
    assert_eq!(
        states,
        [0, 1, active - 1],
        "Reading/Writing/Waiting: {text:?}"
    );
    assert_eq!(
        counts[0], counts[1],
        "accepts == handled without fd exhaustion"
    );
    assert!(counts[1] >= 3 && counts[2] >= counts[1], "{text:?}");
    // The JSON form, one request (and one connection) later, agrees.
    let json = server.stats();
    assert_eq!(common::stat(&json, "accepted"), counts[1] + 1);
    assert_eq!(common::stat(&json, "requests"), counts[2] + 1);
    let (status, _, _) = common::get(port, "/stats?format=xml");
    assert_eq!(status, 400, "unknown format");

    // HEAD: the GET head (Content-Length included), no body; the
    // connection goes on with the next pipelined request.
    let mut c = Conn::open(port);
    let deadline = Instant::now() + Duration::from_secs(5);
    c.send(b"HEAD /big HTTP/1.1\r\nHost: x\r\n\r\nHEAD /chunked?size=5000 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (status, headers) = c.read_head(deadline).unwrap();
    assert_eq!(status, 200);
    assert_eq!(common::header(&headers, "content-length"), Some("1048576"));
    let (status, _) = c.read_head(deadline).unwrap();
    assert_eq!(status, 200, "HEAD /chunked");
    let (status, _, body) = c.read_response(deadline).unwrap();
    assert_eq!(
        (status, body.as_slice()),
        (200, common::HELLO),
        "GET after HEADs"
    );
    c.expect_eof(deadline)
        .expect("no body bytes after the HEAD responses");
    let mut c = Conn::open(port);
    c.send(b"HEAD /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (status, headers) = c.read_head(deadline).unwrap();
    c.expect_eof(deadline).expect("no body after a HEAD 405");
    assert_eq!(status, 405);
    assert_eq!(common::header(&headers, "allow"), Some("POST"));
    drop(idle);
    server.stop_cleanly("server");
}

/// multiprocess: workers do not outlive a supervisor that is killed
/// outright (PR_SET_PDEATHSIG), so nothing keeps serving unsupervised.
#[test]
fn multiprocess_workers_stop_when_the_supervisor_dies() {
    let mut cmd = Command::new(example("multiprocess"));
    cmd.args(["--port", "0", "--host", "127.0.0.1", "--workers", "2"]);
    let mut p = Program::start("multiprocess", cmd);
    let workers = children_of(p.pid);
    assert_eq!(workers.len(), 2, "workers: {workers:?}");
    worker_pid(p.port).unwrap_or_else(|e| panic!("{e}"));
    p.signal(libc::SIGKILL);
    assert!(
        p.wait_exit(Duration::from_secs(5)).is_some(),
        "SIGKILL did not end the supervisor"
    );
    let mut left = workers.clone();
    let gone = wait_until(Duration::from_secs(10), || {
        left = workers
            .iter()
            .copied()
            .filter(|&w| process_exists(w))
            .collect();
        left.is_empty()
    });
    assert!(
        gone,
        "workers {left:?} still run 10 s after their supervisor was killed"
    );
    assert!(
        common::try_connect(p.port).is_err(),
        "something still listens on port {}",
        p.port
    );
}

/// The byte pattern of server.c's generated bodies: byte i is PATTERN[i % 64].
fn pattern(len: usize) -> Vec<u8> {
    const PATTERN: &[u8; 64] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+\n";
    (0..len).map(|i| PATTERN[i % 64]).collect()
}

/// `server ARGS...` to completion: (exit code, stdout, stderr).
fn server_run(args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(common::server_binary());
    cmd.args(args);
    let out = common::run(&mut cmd, Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// c-examples/server.c itself: the routes of its header comment, byte for
/// byte; its options (bad ones exit 2, good ones reach the config); SIGTERM
/// drains and exits 0 with nothing on stderr.
#[test]
fn server_example_routes_options_and_stop() {
    let (code, out, _) = server_run(&["--help"]);
    assert_eq!(code, Some(0), "--help: {out}");
    for opt in [
        "--host",
        "--port",
        "--max-connections",
        "--header-timeout-ms",
        "--idle-timeout-ms",
    ] {
        assert!(out.contains(opt), "--help does not mention {opt}:\n{out}");
    }
    for bad in [
        &["--port", "x"][..],
        &["--port", "65536"],
        &["--port=-1"],
        &["--max-connections", "1e3"],
        &["--idle-timeout-ms"],
        &["--no-such-option"],
        &["extra-argument"],
    ] {
        let (code, _, err) = server_run(bad);
        assert_eq!(
            code,
            Some(2),
            "server {bad:?} should exit 2; stderr {err:?}"
        );
    }
    let (code, _, err) = server_run(&["--host", "not-an-address", "--port", "0"]);
    assert_eq!(
        code,
        Some(1),
        "unusable --host should exit 1; stderr {err:?}"
    );

    let mut cmd = Command::new(common::server_binary());
    cmd.args([
        "--port=0",
        "--host",
        "127.0.0.1",
        "--max-connections",
        "64",
        "--header-timeout-ms",
        "300",
        "--idle-timeout-ms",
        "500",
    ])
    .env_remove("CONNECTION_LOG");
    let mut p = Program::start("server", cmd);
    let port = p.port;

    let (status, headers, body) = common::get(port, "/");
    assert_eq!((status, body.as_slice()), (200, common::HELLO));
    assert_eq!(common::header(&headers, "content-type"), Some("text/plain"));

    let chunked = |headers: &[(String, String)]| {
        common::header(headers, "transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    };
    for (path, len, is_chunked) in [
        ("/user/register", 16 * 4096, true),
        ("/chunked", 65536, true),
        ("/chunked?size=0", 0, true),
        ("/chunked?size=100001", 100_001, true),
        ("/chunked?x=1&size=77&y=2", 77, true),
        ("/big", 1 << 20, false),
    ] {
        let (status, headers, body) = common::get(port, path);
        assert_eq!(status, 200, "GET {path}");
        assert_eq!(chunked(&headers), is_chunked, "GET {path}: {headers:?}");
        assert!(
            body == pattern(len),
            "GET {path}: {} bytes, not the {len}-byte pattern",
            body.len()
        );
    }
    for path in [
        "/chunked?size=abc",
        "/chunked?size=",
        "/chunked?size=-1",
        "/chunked?size=12x",
    ] {
        assert_eq!(common::get(port, path).0, 400, "GET {path}");
    }
    assert_eq!(common::get(port, "/nope").0, 404);

    let echo: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut raw = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        echo.len()
    )
    .into_bytes();
    raw.extend_from_slice(&echo);
    let (status, _, body) = common::request(port, &raw, Duration::from_secs(2)).unwrap();
    assert_eq!(status, 200, "POST /echo");
    assert!(
        body == echo,
        "POST /echo returned {} bytes, not the body sent",
        body.len()
    );

    for (raw, allow) in [
        (
            &b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"[..],
            "GET, HEAD",
        ),
        (
            b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "POST",
        ),
    ] {
        let (status, headers, _) = common::request(port, raw, Duration::from_secs(2)).unwrap();
        assert_eq!(status, 405, "{}", String::from_utf8_lossy(raw));
        assert_eq!(common::header(&headers, "allow"), Some(allow));
    }

    // HEAD: the GET head without a body; the connection goes on.
    let mut c = Conn::open(port);
    let deadline = Instant::now() + Duration::from_secs(5);
    c.send(b"HEAD /big HTTP/1.1\r\nHost: x\r\n\r\nHEAD /user/register HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (status, headers) = c.read_head(deadline).unwrap();
    assert_eq!(status, 200, "HEAD /big");
    assert_eq!(common::header(&headers, "content-length"), Some("1048576"));
    assert_eq!(c.read_head(deadline).unwrap().0, 200, "HEAD /user/register");
    let (status, _, body) = c.read_response(deadline).unwrap();
    assert_eq!(
        (status, body.as_slice()),
        (200, common::HELLO),
        "GET after HEADs"
    );
    c.expect_eof(deadline)
        .expect("no body bytes after the HEAD responses");

    // /stats: every ConnectionStats field, as JSON numbers.
    let (status, headers, body) = common::get(port, "/stats");
    assert_eq!(status, 200);
    assert_eq!(
        common::header(&headers, "content-type"),
        Some("application/json")
    );
    let st = common::parse_flat_json_numbers(&body_text(&body));
    for field in [
        "active_connections",
        "accepted",
        "requests",
        "responses",
        "closed_completed",
        "closed_peer",
        "closed_reset",
        "closed_timeout",
        "closed_limit",
        "closed_protocol",
        "closed_shutdown",
        "closed_error",
        "accept_paused",
        "accept_fd_exhausted",
    ] {
        assert!(
            st.contains_key(field),
            "/stats lacks {field}: {}",
            body_text(&body)
        );
    }
    assert_eq!(st.len(), 14, "/stats: {}", body_text(&body));
    assert!(common::stat(&st, "requests") >= 15, "{st:?}");

    // --idle-timeout-ms 500: an idle keep-alive client is closed.
    let mut idle = Conn::open(port);
    idle.send(&keep_alive_get("/")).unwrap();
    let started = Instant::now();
    let (status, _, _) = idle
        .read_response(started + Duration::from_secs(2))
        .unwrap();
    assert_eq!(status, 200);
    idle.expect_eof(started + Duration::from_secs(3))
        .expect("an idle keep-alive connection closed after --idle-timeout-ms 500");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400),
        "idle connection closed after only {took:?}"
    );

    // --header-timeout-ms 300: a request head that never ends is given up.
    let mut slow = Conn::open(port);
    slow.send(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let ended = slow.read_to_eof(started + Duration::from_secs(3));
    let took = started.elapsed();
    assert!(
        !matches!(&ended, Err(e) if e.kind() == std::io::ErrorKind::TimedOut),
        "an unfinished request head was not given up within 3 s (--header-timeout-ms 300)"
    );
    assert!(
        took >= Duration::from_millis(200),
        "unfinished head dropped after only {took:?}"
    );
    let st = common::stats(port);
    assert!(common::stat(&st, "closed_timeout") >= 2, "{st:?}");

    // SIGTERM with a stream in flight: it completes, then exit 0.
    let mut c = Conn::open(port);
    c.send(b"GET /chunked?size=3000000 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    c.read_at_least(1, deadline).unwrap();
    p.signal(libc::SIGTERM);
    let (status, _, body) = c
        .read_response(deadline)
        .expect("the stream in flight completes");
    assert_eq!(status, 200);
    assert!(
        body == pattern(3_000_000),
        "in-flight stream: {} bytes",
        body.len()
    );
    let status = p
        .wait_exit(Duration::from_secs(10))
        .expect("server exits after SIGTERM");
    assert_eq!(
        status.code(),
        Some(0),
        "server exit after SIGTERM: {}",
        common::describe_status(status)
    );
    assert_eq!(p.stderr_text(), "", "the example prints nothing on stderr");
}
