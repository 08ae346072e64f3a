//! Deployed the way nginx and systemd deploy servers: the example server
//! on a Unix socket (curl --unix-socket, and nginx `proxy_pass
//! http://unix:`), under `systemd-socket-activate` (serves the socket it
//! was handed; refuses `LISTEN_PID` naming another process), and drained
//! with `Connection_Stop` (SIGTERM) while nginx proxies a keep-alive load
//! to two instances: no client request fails and the stopped one exits 0.
//!
//! Fails (never skips) without nginx (nginx-light), curl or
//! systemd-socket-activate (systemd); .ci/run installs them.

#[path = "../common/mod.rs"]
mod common;

use std::fs;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    describe_status, free_port, nginx_program, nginx_temp_paths, nginx_version, require_tool, run,
    server_binary, wait_child, wait_until, Conn, Program, Server, TempDir,
};

/// nginx in its own process group, stopped (group killed) on drop.
struct Nginx {
    child: Child,
    pid: i32,
    dir: PathBuf,
}

impl Nginx {
    /// Starts nginx on 127.0.0.1:`listen` with `upstream` (server lines)
    /// and waits until it answers GET /.
    fn start(dir: &Path, listen: u16, upstream: &str) -> Nginx {
        let bin = nginx_program();
        let version = nginx_version(&bin);
        let d = dir.display();
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
             upstream app {{\n{upstream}        keepalive 16;\n    }}\n\
             server {{\n        listen 127.0.0.1:{listen};\n\
                     location / {{\n            proxy_pass http://app;\n\
                     proxy_http_version 1.1;\n            proxy_set_header Connection \"\";\n\
                     proxy_next_upstream error timeout;\n            proxy_next_upstream_tries 2;\n\
                     proxy_connect_timeout 2s;\n            proxy_read_timeout 10s;\n        }}\n    }}\n}}\n",
            temp = nginx_temp_paths(dir, &version),
        );
        let path = dir.join("nginx.conf");
        fs::write(&path, conf).unwrap();
        let mut cmd = Command::new(&bin);
        cmd.arg("-p")
            .arg(format!("{d}/"))
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        common::reset_child_signals(&mut cmd, None);
        let child = cmd.spawn().expect("spawn nginx");
        let mut nginx = Nginx {
            pid: child.id() as i32,
            child,
            dir: dir.to_owned(),
        };
        let up = wait_until(Duration::from_secs(10), || {
            matches!(
                common::try_get(listen, "/", Duration::from_secs(1)),
                Ok((200, _, _))
            )
        });
        assert!(
            up,
            "nginx did not answer on 127.0.0.1:{listen} (status {:?}); error log:\n{}",
            nginx.child.try_wait().ok().flatten().map(describe_status),
            nginx.error_log()
        );
        nginx
    }

    fn error_log(&self) -> String {
        fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "---- nginx error log ----\n{}",
                common::tail(self.error_log().as_bytes(), 4000)
            );
        }
        common::send_signal(self.pid, libc::SIGQUIT);
        if wait_child(&mut self.child, Duration::from_secs(10)).is_none() {
            common::kill_group(self.pid);
            let _ = wait_child(&mut self.child, Duration::from_secs(5));
        }
    }
}

/// `curl --unix-socket PATH http://localhost/`: its stdout.
fn curl_unix(path: &Path) -> String {
    require_tool("curl", "--version", "curl");
    let out = run(
        Command::new("curl")
            .args(["-sS", "--max-time", "5", "--unix-socket"])
            .arg(path)
            .arg("http://localhost/"),
        Duration::from_secs(10),
    )
    .unwrap_or_else(|e| panic!("curl: {e}"));
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn unix_socket_served_to_curl_and_through_nginx() {
    let tmp = TempDir::new("unix");
    let sock = tmp.path().join("app.sock");
    // A stale socket file from a "dead" server is replaced.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let sock_arg = sock.to_str().unwrap();
    let server = Server::start(&["--unix", sock_arg]);
    let meta = fs::symlink_metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o660,
        "server.c asks for 0660"
    );
    assert_eq!(curl_unix(&sock), "Hello, World!");

    // A second server on the same path is refused with a clear error.
    let out = run(
        Command::new(server_binary()).args(["--port", "0", "--unix", sock_arg]),
        Duration::from_secs(10),
    )
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "second server: {err}");
    assert!(err.contains("already in use"), "{err}");
    assert_eq!(curl_unix(&sock), "Hello, World!", "the first still serves");

    let listen = free_port();
    let nginx = Nginx::start(
        tmp.path(),
        listen,
        &format!("        server unix:{sock_arg};\n"),
    );
    for _ in 0..20 {
        let (status, _, body) = common::get(listen, "/");
        assert_eq!((status, body.as_slice()), (200, common::HELLO));
    }
    let stats = server.stats();
    assert!(common::stat(&stats, "requests") >= 22, "{stats:?}");
    drop(nginx);
    drop(server);
    assert!(!sock.exists(), "the server removes its socket file on exit");
}

#[test]
fn socket_activation_serves_the_handed_socket() {
    require_tool("systemd-socket-activate", "--version", "systemd");
    let port = free_port();
    let tmp = TempDir::new("activation");
    let sock = tmp.path().join("activated.sock");
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-l")
        .arg(&sock)
        .arg("--fdname=web:admin")
        .arg(server_binary())
        .arg("--systemd");
    // systemd-socket-activate execs the server on the first connection.
    let first = thread::spawn(move || {
        let mut reply = None;
        wait_until(Duration::from_secs(10), || {
            reply = common::try_get(port, "/", Duration::from_secs(5)).ok();
            reply.is_some()
        });
        reply
    });
    let program = Program::start("systemd-socket-activate server --systemd", cmd);
    assert_eq!(program.port, port, "listener 0 is the socket it was handed");
    let (status, _, body) = first.join().unwrap().expect("the first client was served");
    assert_eq!((status, body.as_slice()), (200, common::HELLO));
    for _ in 0..5 {
        let (status, _, body) = common::get(port, "/");
        assert_eq!((status, body.as_slice()), (200, common::HELLO));
    }
    // The second socket, a Unix one, and the names LISTEN_FDNAMES gave.
    assert_eq!(curl_unix(&sock), "Hello, World!");
    let lines = program.stdout_lines();
    assert!(lines.contains(&"socket 0: web".to_string()), "{lines:?}");
    assert!(lines.contains(&"socket 1: admin".to_string()), "{lines:?}");
    drop(program);
}

#[test]
fn socket_activation_for_another_process_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new(server_binary());
    cmd.arg("--systemd")
        // This test process, not the server.
        .env("LISTEN_PID", std::process::id().to_string())
        .env("LISTEN_FDS", "1");
    // SAFETY: between fork and exec only dup2 (async-signal-safe): the
    // listener becomes descriptor 3 of the child, without close-on-exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = run(&mut cmd, Duration::from_secs(10)).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(
        err.contains("no sockets were handed to this process"),
        "{err}"
    );
    // Nothing was served from it: a client still waits in its backlog.
    let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while listener.accept().is_err() {
        assert!(
            Instant::now() < deadline,
            "the client never reached our backlog"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

const CLIENTS: usize = 4;
const PER_CLIENT: usize = 150;
const STOP_AT: usize = CLIENTS * PER_CLIENT / 4;
/// /chunked bodies: long enough to be in flight when Stop comes.
const BIG: usize = 256 * 1024;

/// One keep-alive client through nginx, alternating GET / and a 256 KiB
/// streamed body; every failure is recorded.
fn client(port: u16, done: Arc<AtomicUsize>, failures: Arc<Mutex<Vec<String>>>, id: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut conn: Option<Conn> = None;
    for i in 0..PER_CLIENT {
        let c = conn.get_or_insert_with(|| Conn::open(port));
        let (path, want) = if i % 2 == 0 {
            ("/".to_string(), common::HELLO.len())
        } else {
            (format!("/chunked?size={BIG}"), BIG)
        };
        let raw = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        match c
            .send(raw.as_bytes())
            .and_then(|_| c.read_response(deadline))
        {
            Ok((200, _, body)) if body.len() == want => {}
            Ok((status, _, body)) => {
                failures.lock().unwrap().push(format!(
                    "client {id} #{i} {path}: {status}, {} bytes",
                    body.len()
                ));
                conn = None;
            }
            Err(e) => {
                failures
                    .lock()
                    .unwrap()
                    .push(format!("client {id} #{i} {path}: {e}"));
                conn = None;
            }
        }
        done.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn stop_under_nginx_drains_with_no_failed_request() {
    let tmp = TempDir::new("drain");
    let mut a = Server::start(&[]);
    let b = Server::start(&[]);
    let listen = free_port();
    let upstream = format!(
        "        server 127.0.0.1:{} max_fails=1 fail_timeout=10s;\n        server 127.0.0.1:{} max_fails=1 fail_timeout=10s;\n",
        a.port, b.port
    );
    let nginx = Nginx::start(tmp.path(), listen, &upstream);

    let done = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (done, failures) = (Arc::clone(&done), Arc::clone(&failures));
            thread::spawn(move || client(listen, done, failures, id))
        })
        .collect();
    assert!(
        wait_until(Duration::from_secs(30), || done.load(Ordering::SeqCst)
            >= STOP_AT),
        "the load did not reach {STOP_AT} requests"
    );
    let a_before = common::stat(&a.stats(), "requests");
    common::send_signal(a.pid, libc::SIGTERM); // server.c: Connection_Stop
    let stopped_at = done.load(Ordering::SeqCst);
    // Prompt: its responses carry Connection: close, so nginx lets go of
    // its connections at once (not after drain_timeout_ms, 5 s).
    let stop_time = Instant::now();
    let exited = wait_until(Duration::from_secs(10), || a.exit_status().is_some());
    let drain_time = stop_time.elapsed();
    for t in threads {
        t.join().expect("client thread");
    }
    let total = done.load(Ordering::SeqCst);
    let failures = failures.lock().unwrap().clone();
    eprintln!(
        "A stopped after {stopped_at} of {total} requests (A had served {a_before}); failures: {}",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {total} requests through nginx failed:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
    assert!(a_before > 2, "A got no proxied requests before Stop");
    assert!(exited, "A did not exit within 10 s of SIGTERM");
    eprintln!("A drained and exited {drain_time:?} after SIGTERM");
    assert!(
        drain_time < Duration::from_secs(3),
        "A took {drain_time:?} to drain (drain_timeout_ms is 5 s)"
    );
    let status = a.exit_status().unwrap();
    assert_eq!(status.code(), Some(0), "A: {}", describe_status(status));
    let access = fs::read_to_string(tmp.path().join("access.log")).unwrap_or_default();
    let not_200: Vec<&str> = access.lines().filter(|l| !l.contains("\" 200 ")).collect();
    assert!(
        not_200.is_empty(),
        "non-200 in nginx's access log: {not_200:?}"
    );
    drop(nginx);
    drop(b);
}
