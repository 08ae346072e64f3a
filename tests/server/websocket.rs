//! The WebSocket example (c-examples/websocket.c, built on `Response_Upgrade`)
//! against a real client library (Python `websockets`, Debian
//! python3-websockets) through tests/server/websocket_check.py: text and
//! binary echo, fragmented messages, ping/pong, the close handshake,
//! oversized frames refused with 1009, protocol errors, clients vanishing
//! mid-frame; directly and through nginx with the usual Upgrade proxy
//! headers. The server's descriptors return to their baseline afterwards,
//! the upgraded ones are not counted as the library's connections, the
//! hand-off is clean under valgrind, and strace shows no library system
//! call on an upgraded descriptor after its 101 head was sent.
//!
//! Fails (never skips) without python3-websockets, nginx-light, valgrind or
//! strace.

#[path = "../common/mod.rs"]
mod common;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{
    example, fd_count, free_port, nginx_program, nginx_temp_paths, nginx_version, require_tool,
    run, run_ok, send_signal, wait_child, wait_stable_fd_count, wait_until, Program, TempDir,
};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/server/websocket_check.py"
);

/// A Python 3 with `websockets` 10 or later (the asyncio client API used by
/// the script). Debian's package lives in the system interpreter's
/// dist-packages, which a pyenv/venv `python3` first on PATH does not see:
/// the system one is tried first.
fn python_with_websockets() -> String {
    let candidates = ["/usr/bin/python3", "python3"];
    for py in candidates {
        let ok = Command::new(py)
            .args([
                "-c",
                "import sys, websockets; sys.exit(int(websockets.__version__.split('.')[0]) < 10)",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return py.to_string();
        }
    }
    panic!(
        "the WebSocket tests need the Python websockets package, version 10 or later \
         (tried {candidates:?}): apt-get install python3-websockets (.ci/run installs it)"
    );
}

/// Runs the check script against `port`; panics with its output on failure.
fn check(port: u16, extra: &[&str]) -> String {
    let py = python_with_websockets();
    let out = run(
        Command::new(&py)
            .arg(SCRIPT)
            .arg(port.to_string())
            .args(extra),
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("websocket_check.py: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "websocket_check.py failed:\n{text}");
    eprintln!("{text}");
    text
}

fn websocket_cmd() -> Command {
    let mut cmd = Command::new(example("websocket"));
    cmd.args(["--port", "0", "--host", "127.0.0.1"]);
    cmd
}

/// Waits (bounded) for the server's descriptors to come back to `baseline`.
fn assert_fds_back(p: &Program, baseline: usize, context: &str) {
    let back = wait_until(Duration::from_secs(10), || fd_count(p.pid) <= baseline);
    assert!(
        back,
        "{context}: {} descriptors open, {baseline} before",
        fd_count(p.pid)
    );
}

#[test]
fn echo_server_passes_the_client_library_checks() {
    let mut p = Program::start("websocket", websocket_cmd());
    let baseline = wait_stable_fd_count(p.pid, Duration::from_secs(2));
    let text = check(p.port, &["--stats"]);
    assert!(text.contains("ok clients vanishing mid-frame"), "{text}");
    assert!(text.contains("'active_connections': 1"), "{text}");
    assert_fds_back(&p, baseline, "after the checks");
    let status = p.interrupt();
    assert_eq!(status.code(), Some(0), "{}", p.stderr_text());
}

/// nginx in front, with `proxy_http_version 1.1` and the Upgrade and
/// Connection headers passed on. Drop: SIGQUIT, then SIGKILL to its group.
struct Nginx {
    child: Child,
    dir: TempDir,
}

impl Nginx {
    fn start(backend: u16) -> (Nginx, u16) {
        let bin = nginx_program();
        let version = nginx_version(&bin);
        let dir = TempDir::new("nginx-ws");
        let listen = free_port();
        let d = dir.path().display();
        // SAFETY: geteuid has no preconditions.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root;"
        } else {
            ""
        };
        let conf = format!(
            "daemon off;\nmaster_process on;\nworker_processes 1;\n{user}\n\
             pid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n    access_log {d}/access.log;\n{temp}\
                 server {{\n        listen 127.0.0.1:{listen};\n\
                     location / {{\n\
                         proxy_pass http://127.0.0.1:{backend};\n\
                         proxy_http_version 1.1;\n\
                         proxy_set_header Upgrade $http_upgrade;\n\
                         proxy_set_header Connection \"upgrade\";\n\
                         proxy_set_header Host $host;\n\
                         proxy_read_timeout 60s;\n\
                     }}\n    }}\n}}\n",
            temp = nginx_temp_paths(dir.path(), &version),
        );
        let path = dir.path().join("nginx.conf");
        fs::write(&path, conf).unwrap();
        let prefix = format!("{d}/");
        run_ok(
            Command::new(&bin)
                .args(["-t", "-p", &prefix, "-c"])
                .arg(&path),
            Duration::from_secs(30),
        );
        let child = Command::new(&bin)
            .args(["-p", &prefix, "-c"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn nginx");
        let nginx = Nginx { child, dir };
        let up = wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", listen)).is_ok()
        });
        assert!(up, "nginx did not listen: {}", nginx.error_log());
        (nginx, listen)
    }

    fn error_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- nginx error log ----\n{}", self.error_log());
        }
        send_signal(self.child.id() as i32, libc::SIGQUIT);
        let _ = wait_child(&mut self.child, Duration::from_secs(10));
        // SAFETY: kill(2) on the process group created for nginx.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = wait_child(&mut self.child, Duration::from_secs(5));
    }
}

#[test]
fn echo_server_passes_the_client_library_checks_through_nginx() {
    let mut p = Program::start("websocket", websocket_cmd());
    let baseline = wait_stable_fd_count(p.pid, Duration::from_secs(2));
    {
        let (nginx, port) = Nginx::start(p.port);
        let text = check(port, &[]);
        assert!(text.contains("ok close handshake"), "{text}");
        assert!(
            nginx.error_log().contains("nginx"),
            "nginx wrote no log: is it the one we started?"
        );
    }
    // nginx is gone, and every upstream connection with it.
    assert_fds_back(&p, baseline, "after nginx stopped");
    let status = p.interrupt();
    assert_eq!(status.code(), Some(0), "{}", p.stderr_text());
}

#[test]
fn hand_off_is_clean_under_valgrind() {
    require_tool("valgrind", "--version", "valgrind");
    let dir = TempDir::new("ws-valgrind");
    let log = dir.path().join("valgrind.log");
    let mut cmd = Command::new("valgrind");
    cmd.args([
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
    ])
    .arg(format!("--log-file={}", log.display()))
    .arg(example("websocket"))
    .args(["--port", "0", "--host", "127.0.0.1"]);
    let mut p = Program::start("websocket under valgrind", cmd);
    check(p.port, &["--stats"]);
    let status = p.interrupt();
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "exit status (99: errors)\n{text}");
    assert!(text.contains("ERROR SUMMARY: 0 errors"), "{text}");
    assert!(
        text.contains("definitely lost: 0 bytes") || text.contains("no leaks are possible"),
        "{text}"
    );
}

/// One strace -f line: thread id, call name, and its arguments' text (None
/// for a "<... resumed>" continuation).
fn parse_line(line: &str) -> Option<(i32, &str, &str)> {
    let (tid, rest) = line.split_once(' ')?;
    let tid = tid.parse().ok()?;
    let rest = rest.trim_start();
    let open = rest.find('(')?;
    let name = &rest[..open];
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    Some((tid, name, &rest[open + 1..]))
}

/// The descriptor a call works on: the first argument, or for epoll_ctl
/// the third.
fn fd_arg(name: &str, args: &str) -> Option<i32> {
    let mut parts = args.split([',', ')', ' ']).filter(|s| !s.is_empty());
    let fd = if name == "epoll_ctl" {
        parts.nth(2)
    } else {
        parts.next()
    };
    fd?.parse().ok()
}

fn strace_session(dir: &Path) -> (PathBuf, i32) {
    require_tool("strace", "-V", "strace");
    let log = dir.join("strace.log");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-s", "64", "-e", "trace=desc,network", "-o"])
        .arg(&log)
        .arg(example("websocket"))
        .args(["--port", "0", "--host", "127.0.0.1"]);
    let mut p = Program::start("websocket under strace", cmd);
    // strace's child is the server: SIGINT must reach it.
    let children = fs::read_to_string(format!("/proc/{0}/task/{0}/children", p.pid))
        .expect("strace's children");
    let server: i32 = children
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .expect("the server under strace");
    let py = python_with_websockets();
    let session = format!(
        "import asyncio, websockets\n\
         async def main():\n    \
             async with websockets.connect('ws://127.0.0.1:{}/', compression=None) as ws:\n        \
                 for m in ['one', 'two', b'three']:\n            \
                     await ws.send(m)\n            \
                     assert await ws.recv() == m\n\
         asyncio.run(main())\n",
        p.port
    );
    run_ok(
        Command::new(py).args(["-c", &session]),
        Duration::from_secs(60),
    );
    send_signal(server, libc::SIGINT);
    assert!(
        wait_until(Duration::from_secs(20), || p.exit_status().is_some()),
        "the server under strace did not stop"
    );
    assert_eq!(p.exit_status().and_then(|s| s.code()), Some(0));
    (log, server)
}

#[test]
fn strace_shows_no_library_call_on_the_upgraded_descriptor() {
    let dir = TempDir::new("ws-strace");
    let (log, main_tid) = strace_session(dir.path());
    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // The 101 head, sent by the library on the loop (main) thread.
    let (at, fd) = lines
        .iter()
        .enumerate()
        .find_map(|(i, l)| {
            let (tid, name, args) = parse_line(l)?;
            (tid == main_tid && name.starts_with("send") && args.contains("101 Switching"))
                .then(|| (i, fd_arg(name, args).expect("send's fd")))
        })
        .unwrap_or_else(|| panic!("no 101 head sent by thread {main_tid} in\n{text}"));
    let mut library_after = Vec::new();
    let mut app = Vec::new();
    for l in &lines[at + 1..] {
        let Some((tid, name, args)) = parse_line(l) else {
            continue;
        };
        if fd_arg(name, args) != Some(fd) {
            continue;
        }
        if tid == main_tid {
            // The hand-off itself may take it out of the library's epoll set.
            let handoff = name == "epoll_ctl" && args.contains("EPOLL_CTL_DEL") && app.is_empty();
            if !handoff {
                library_after.push(l.to_string());
            }
        } else {
            app.push(format!("{name}: {l}"));
        }
    }
    assert!(
        library_after.is_empty(),
        "the library touched fd {fd} after its 101 head:\n{}",
        library_after.join("\n")
    );
    let app = app.join("\n");
    for call in ["epoll_ctl:", "recvfrom:", "sendto:", "close:"] {
        assert!(
            app.contains(call),
            "the example's thread made no {call} on fd {fd}:\n{app}"
        );
    }
}
