//! A new client is read at once only while such first reads tend to find
//! the request (src/first_read.rs). After a run of clients that connect and
//! say nothing, the core stops reading new clients before adding them to
//! epoll; those clients must still be answered, whether their request was
//! already there when they were accepted or came after the ADD.

#[path = "../common/mod.rs"]
mod common;

use common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Silent clients: enough to use up what the start-up requests put in the
/// score (at most 8, so at most 9 misses) and leave most of them untried.
const SILENT: usize = 80;
const ANSWER_LIMIT: Duration = Duration::from_secs(2);
const CLIENTS: usize = 20;
const LATE: usize = 10;

fn wait_accepted(server: &Server, fds: usize, which: usize) {
    assert!(
        wait_until(Duration::from_secs(5), || fd_count(server.pid) >= fds),
        "client {which} not accepted: {} fds, expected {fds}",
        fd_count(server.pid)
    );
}

fn ask_hello(c: &mut Conn, port: u16, which: usize) {
    let request = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    c.send(request.as_bytes()).expect("send request");
    let reply = c
        .read_response(Instant::now() + ANSWER_LIMIT)
        .unwrap_or_else(|e| {
            panic!(
                "client {which} not answered within {ANSWER_LIMIT:?}: {e}; sockets {:?}",
                ss_lines(port)
            )
        });
    assert_eq!(reply.0, 200, "client {which}");
    assert_eq!(reply.2, b"Hello, World!", "client {which}");
}

#[test]
fn silent_clients_turn_first_reads_off_and_clients_are_still_answered() {
    let mut server = Server::start(&["--header-timeout-ms", "10000"]);
    let port = server.port;
    let trace = Trace::attach(server.pid);

    // Silent clients, each accepted before the next connects: the first
    // reads tried on them find nothing, so the core stops trying. Accepts
    // are seen in the server's fd count: asking /stats would itself be a
    // client whose first read finds its request.
    let mut silent = Vec::new();
    for i in 0..SILENT {
        silent.push(connect(port));
        wait_accepted(&server, server.baseline_fds + i + 1, i);
    }

    // Clients whose request races the accept: while first reads are off
    // they are added to epoll before any recv, whether their request is
    // already there or not, and each is answered.
    for i in 0..CLIENTS {
        let mut c = Conn::open(port);
        ask_hello(&mut c, port, i);
    }

    // Clients that send only after the server has accepted them and, first
    // reads being off, added them to epoll (it does so within microseconds
    // of the accept; 20 ms is ample): the request arrives as an epoll event.
    for i in 0..LATE {
        let mut c = Conn::open(port);
        wait_accepted(&server, server.baseline_fds + SILENT + 1, i);
        std::thread::sleep(Duration::from_millis(20));
        ask_hello(&mut c, port, SILENT + CLIENTS + i);
    }

    let log = trace.finish();
    let firsts = first_calls(&log);
    assert!(
        firsts.len() >= SILENT + CLIENTS + LATE,
        "strace saw {} accepted clients, expected {}:\n{log}",
        firsts.len(),
        SILENT + CLIENTS + LATE
    );
    let added = |calls: &[String]| calls.iter().filter(|c| c.as_str() == "epoll_ctl").count();
    // Tried: the first few (until the score is below zero, at most 9) and
    // then every 16th as a probe.
    let silent_added = added(&firsts[..SILENT]);
    assert!(
        silent_added >= SILENT - 9 - SILENT / 16,
        "only {silent_added} of {SILENT} silent clients were added to epoll before a recv \
         (first calls {firsts:?})"
    );
    // Probes that find a request turn first reads back on, so only the
    // clients before that are sure to take the epoll path.
    let racing_added = added(&firsts[SILENT..SILENT + CLIENTS]);
    let late_added = added(&firsts[SILENT + CLIENTS..]);
    assert!(
        racing_added >= 5,
        "only {racing_added} of {CLIENTS} requesting clients were added to epoll before a recv \
         (first calls {firsts:?})"
    );
    assert!(
        late_added >= LATE - 2,
        "only {late_added} of {LATE} late clients were added to epoll before a recv \
         (first calls {firsts:?})"
    );
    eprintln!(
        "added to epoll before a recv: {silent_added} of {SILENT} silent clients, \
         {racing_added} of {CLIENTS} requesting clients, {late_added} of {LATE} clients \
         that sent after the ADD (all answered)"
    );

    drop(silent);
    server.assert_alive("after the silent clients left");
    server.stop_cleanly("first_read");
}

/// strace of the server's accept4, recvfrom and epoll_ctl calls.
struct Trace {
    child: Child,
    path: std::path::PathBuf,
}

impl Trace {
    fn attach(pid: i32) -> Trace {
        let path = std::env::temp_dir().join(format!("first_read.{}.strace", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let child = Command::new("strace")
            .args(["-qq", "-e", "trace=accept4,recvfrom,epoll_ctl", "-o"])
            .arg(&path)
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("strace (apt-get install strace)");
        let mut trace = Trace { child, path };
        // Attached once the kernel names a tracer for the server.
        let attached = wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|st| {
                st.lines().any(|l| {
                    l.starts_with("TracerPid:") && l.split_whitespace().nth(1) != Some("0")
                })
            })
        });
        if !attached {
            let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
                .unwrap_or_else(|_| "absent".into());
            let status = trace.child.try_wait().ok().flatten();
            panic!(
                "strace -p {pid} did not attach within 10 s (strace exit {status:?}; \
                 kernel.yama.ptrace_scope {}): attaching needs root or CAP_SYS_PTRACE",
                scope.trim()
            );
        }
        trace
    }

    /// Detaches (SIGINT makes strace flush its output) and returns the log.
    fn finish(mut self) -> String {
        self.stop();
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Trace {
    /// Also on a failed assertion: no strace left attached, no temp file.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// For each fd accept4 returned, the first later call on it: "recvfrom"
/// or "epoll_ctl" (ADD).
fn first_calls(log: &str) -> Vec<String> {
    let mut open: Vec<String> = Vec::new();
    let mut firsts = Vec::new();
    for line in log.lines() {
        if line.starts_with("accept4(") {
            if let Some(fd) = line.rsplit("= ").next().map(str::trim) {
                if fd.parse::<u32>().is_ok() {
                    open.push(fd.to_string());
                }
            }
            continue;
        }
        let on_fd = |fd: &str| {
            line.starts_with(&format!("recvfrom({fd},"))
                || line.contains(&format!("EPOLL_CTL_ADD, {fd},"))
        };
        if let Some(i) = open.iter().position(|fd| on_fd(fd)) {
            let call = line.split('(').next().unwrap_or("").to_string();
            firsts.push(call);
            open.remove(i);
        }
    }
    firsts
}
