//! Behind a real load balancer: nginx (Debian nginx-light) on 127.0.0.1,
//! configured from c-examples/nginx-upstream.conf, proxies with keep-alive
//! upstream connections to two example servers. In the middle of a bounded
//! load (4 keep-alive clients x 300 `GET /` through nginx) one backend is
//! killed with SIGKILL. Checks: every request still gets 200 (nginx retries
//! on the survivor), the survivor reused its upstream connections, its fd
//! count is back to baseline + nginx's idle keep-alive connections (at most
//! 32) after the load and exactly to baseline once nginx is gone, and nginx
//! exits 0 on SIGQUIT (graceful shutdown).
//!
//! Fails (never skips) without nginx: install nginx-light (.ci/run does).

#[path = "../common/mod.rs"]
mod common;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    close_wait_count, describe_status, fd_count, free_port, nginx_program, nginx_temp_paths,
    nginx_version, nginx_version_at_least, run_ok, wait_child, wait_until, Conn, Server, TempDir,
};

const CLIENTS: usize = 4;
const PER_CLIENT: usize = 300;
/// Requests done (of CLIENTS * PER_CLIENT) when the backend is killed.
const KILL_AT: usize = CLIENTS * PER_CLIENT / 4;
/// `keepalive 32` in the example config: idle upstream connections per worker.
const NGINX_KEEPALIVE: usize = 32;

/// nginx as a child in its own process group; Drop stops it (SIGQUIT, then
/// SIGKILL to the group).
struct Nginx {
    child: Child,
    pid: i32,
    status: Option<ExitStatus>,
    error_log: std::path::PathBuf,
}

impl Nginx {
    fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("waitpid nginx");
        }
        self.status
    }

    fn error_log(&self) -> String {
        fs::read_to_string(&self.error_log).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "---- nginx error log ----\n{}\n----",
                common::tail(self.error_log().as_bytes(), 6000)
            );
        }
        if self.exit_status().is_none() {
            common::send_signal(self.pid, libc::SIGQUIT);
            self.status = wait_child(&mut self.child, Duration::from_secs(10));
        }
        // Workers included, whatever happened to the master.
        // SAFETY: kill(2) on the process group created for nginx.
        unsafe { libc::kill(-self.pid, libc::SIGKILL) };
        if self.status.is_none() {
            self.status = wait_child(&mut self.child, Duration::from_secs(5));
        }
    }
}

/// Replaces `from` (which must occur exactly once) by `to`.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    let n = text.matches(from).count();
    assert_eq!(
        n, 1,
        "c-examples/nginx-upstream.conf should contain {from:?} exactly once (found {n})"
    );
    text.replacen(from, to, 1)
}

/// The example config with real ports, and everything nginx writes kept in `dir`.
fn write_config(dir: &Path, nginx_v: &str, backends: [u16; 2], listen: u16) -> std::path::PathBuf {
    let example = common::repo_root().join("c-examples/nginx-upstream.conf");
    let text =
        fs::read_to_string(&example).unwrap_or_else(|e| panic!("read {}: {e}", example.display()));
    let mut conf = text.clone();
    conf = replace_once(
        &conf,
        "server 127.0.0.1:8081 ",
        &format!("server 127.0.0.1:{} ", backends[0]),
    );
    conf = replace_once(
        &conf,
        "server 127.0.0.1:8082 ",
        &format!("server 127.0.0.1:{} ", backends[1]),
    );
    conf = replace_once(
        &conf,
        "listen 127.0.0.1:8080;",
        &format!("listen 127.0.0.1:{listen};"),
    );
    conf = replace_once(&conf, "worker_processes auto;", "worker_processes 1;");
    let d = dir.display();
    let http_extra = format!(
        "http {{\n    access_log {d}/access.log;\n{}",
        nginx_temp_paths(dir, nginx_v)
    );
    conf = replace_once(&conf, "http {\n", &http_extra);
    if !nginx_v.contains("http_stub_status_module") {
        // Not built in: drop the status location (not what this test is about).
        let start = conf
            .find("        location = /nginx_status {")
            .expect("status location");
        let end = start + conf[start..].find("        }\n").unwrap() + "        }\n".len();
        conf.replace_range(start..end, "");
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let head = format!(
        "# Written by tests/server/behind_nginx.rs from c-examples/nginx-upstream.conf\n\
         daemon off;\nmaster_process on;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n{}\n",
        // As root nginx would switch its workers to `nobody`, who cannot
        // write here; as anyone else `user` is ignored with a warning.
        if root { "user root;" } else { "" }
    );
    let path = dir.join("nginx.conf");
    fs::write(&path, format!("{head}{conf}")).unwrap();
    path
}

/// One keep-alive client through nginx; returns the failures it saw.
fn client(port: u16, done: Arc<AtomicUsize>, failures: Arc<Mutex<Vec<String>>>, id: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut conn: Option<Conn> = None;
    for i in 0..PER_CLIENT {
        let c = conn.get_or_insert_with(|| Conn::open(port));
        let result = c
            .send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .and_then(|_| c.read_response(deadline));
        match result {
            Ok((200, _, body)) if body == common::HELLO => {}
            Ok((status, _, body)) => {
                failures.lock().unwrap().push(format!(
                    "client {id} request {i}: {status} {:?}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ));
            }
            Err(e) => {
                failures
                    .lock()
                    .unwrap()
                    .push(format!("client {id} request {i}: {e}"));
                conn = None; // a new connection for the next request
            }
        }
        done.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn nginx_fails_over_with_no_failed_request() {
    let nginx_bin = nginx_program();
    let nginx_v = nginx_version(&nginx_bin);

    let mut a = Server::start(&[]);
    let mut b = Server::start(&[]);
    let tmp = TempDir::new("nginx");
    let listen = free_port();
    let conf = write_config(tmp.path(), &nginx_v, [a.port, b.port], listen);
    let error_log = tmp.path().join("error.log");

    // ---- start nginx ------------------------------------------------------
    let mut cmd = Command::new(&nginx_bin);
    cmd.arg("-p")
        .arg(format!("{}/", tmp.path().display()))
        .arg("-c")
        .arg(&conf);
    if nginx_version_at_least(&nginx_v, (1, 19, 5)) {
        cmd.arg("-e").arg(&error_log);
    }
    run_ok(
        Command::new(&nginx_bin)
            .arg("-t")
            .arg("-p")
            .arg(format!("{}/", tmp.path().display()))
            .arg("-c")
            .arg(&conf),
        Duration::from_secs(30),
    );
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    common::reset_child_signals(&mut cmd, None);
    let child = cmd.spawn().expect("spawn nginx");
    let mut nginx = Nginx {
        pid: child.id() as i32,
        child,
        status: None,
        error_log: error_log.clone(),
    };
    let up = wait_until(Duration::from_secs(10), || {
        matches!(
            common::try_get(listen, "/", Duration::from_secs(1)),
            Ok((200, _, _))
        )
    });
    if !up {
        let status = nginx.exit_status();
        panic!(
            "nginx did not answer on 127.0.0.1:{listen} within 10 s (status {:?}); error log:\n{}",
            status.map(describe_status),
            nginx.error_log()
        );
    }
    eprintln!(
        "nginx pid {} on 127.0.0.1:{listen} -> backends {} (pid {}) and {} (pid {})",
        nginx.pid, a.port, a.pid, b.port, b.pid
    );

    // ---- load, and kill backend A in the middle of it ----------------------
    let done = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let done = Arc::clone(&done);
            let failures = Arc::clone(&failures);
            thread::spawn(move || client(listen, done, failures, id))
        })
        .collect();
    let reached = wait_until(Duration::from_secs(30), || {
        done.load(Ordering::SeqCst) >= KILL_AT
    });
    assert!(
        reached,
        "the load did not reach {KILL_AT} requests within 30 s"
    );
    let a_stats = a.stats();
    common::send_signal(a.pid, libc::SIGKILL);
    let killed_at = done.load(Ordering::SeqCst);
    for t in threads {
        t.join().expect("client thread");
    }
    let total = done.load(Ordering::SeqCst);
    let failures = failures.lock().unwrap().clone();
    eprintln!(
        "backend A killed after {killed_at} of {total} requests; A had served {} requests on {} connections",
        common::stat(&a_stats, "requests"),
        common::stat(&a_stats, "accepted")
    );
    assert!(
        failures.is_empty(),
        "{} of {total} requests through nginx failed (nginx should retry on the survivor):\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(total, CLIENTS * PER_CLIENT);
    assert!(
        killed_at < total,
        "the kill came after the load had finished"
    );
    // Both backends were in the rotation before the kill (A's counts include
    // the harness's warm-up GET / and GET /stats).
    assert!(
        common::stat(&a_stats, "requests") > 2,
        "backend A got no proxied requests before it was killed: {:?}",
        common::sorted(&a_stats)
    );
    let a_status = a.exit_status().map(describe_status);
    assert_eq!(a_status.as_deref(), Some("killed by signal 9 (SIGKILL)"));

    // The access log agrees: every proxied request answered 200.
    let access = fs::read_to_string(tmp.path().join("access.log")).unwrap_or_default();
    let not_200: Vec<&str> = access.lines().filter(|l| !l.contains("\" 200 ")).collect();
    assert!(
        not_200.is_empty(),
        "non-200 lines in nginx's access log: {not_200:?}"
    );

    // ---- the survivor ------------------------------------------------------
    b.assert_alive("after the load");
    let b_stats = b.stats();
    let (b_requests, b_accepted) = (
        common::stat(&b_stats, "requests"),
        common::stat(&b_stats, "accepted"),
    );
    eprintln!("backend B: {b_requests} requests on {b_accepted} connections");
    assert!(
        b_accepted * 2 < b_requests,
        "nginx did not reuse upstream connections to B ({b_requests} requests on {b_accepted} connections)"
    );
    let baseline = b.baseline_fds;
    let mut fds = 0;
    let settled = wait_until(Duration::from_secs(5), || {
        fds = fd_count(b.pid);
        fds <= baseline + NGINX_KEEPALIVE && close_wait_count(b.port) == 0
    });
    assert!(
        settled,
        "backend B after the load: {fds} fds (baseline {baseline} + at most {NGINX_KEEPALIVE} idle \
         nginx connections), CLOSE_WAIT {}; fds {:?}",
        close_wait_count(b.port),
        common::list_fds(b.pid)
    );
    eprintln!("backend B: {fds} fds after the load (baseline {baseline})");

    // ---- nginx stops gracefully ---------------------------------------------
    common::send_signal(nginx.pid, libc::SIGQUIT);
    let status = wait_child(&mut nginx.child, Duration::from_secs(15));
    nginx.status = status;
    let status = status.unwrap_or_else(|| panic!("nginx did not exit within 15 s of SIGQUIT"));
    assert_eq!(
        status.code(),
        Some(0),
        "nginx exit: {}",
        describe_status(status)
    );
    let log = nginx.error_log();
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("[emerg]") || l.contains("[alert]") || l.contains("[crit]"))
        .collect();
    assert!(
        bad.is_empty(),
        "nginx logged emerg/alert/crit:\n{}",
        bad.join("\n")
    );
    // The failover really happened: nginx met the dead backend and went on.
    let a_addr = format!("127.0.0.1:{}", a.port);
    let upstream_errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("[error]") && l.contains(&a_addr))
        .collect();
    eprintln!(
        "nginx error log: {} [error] lines about backend A, e.g.:\n{}",
        upstream_errors.len(),
        upstream_errors
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        !upstream_errors.is_empty(),
        "nginx logged no error about the killed backend {a_addr}: was it still in the rotation?\n{log}"
    );

    // With nginx gone, its idle upstream connections are closed too: B is
    // back to exactly its baseline, no CLOSE_WAIT, no active connection.
    b.assert_settled("after nginx exited");
    b.stop_cleanly("backend B");
    assert!(
        common::try_connect(listen).is_err(),
        "something still listens on nginx's port {listen}"
    );
}
