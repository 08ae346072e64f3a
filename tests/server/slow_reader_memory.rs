//! Slow readers do not pin memory: 500 slow readers of
//! the example server's 1 MiB `/big` (each: a 4 KiB receive buffer, three
//! pipelined requests as `slowhttptest -X -k 3` sends, the first 4 KiB
//! read, then nothing): the server's peak RSS must stay within 2x nginx's
//! under the same load (nginx-light serving a 1 MiB static file with
//! `sendfile on`, master and worker counted), and once the clients are gone
//! its RSS must be back within 10% of where it started within 5 s.
//!
//! Before the fix the example copied `/big` into each connection's queue
//! (RSS 3.3 -> 500+ MB), and glibc kept what was freed. Fails (never skips)
//! without nginx: install nginx-light (.ci/run does).

#[path = "../common/mod.rs"]
mod common;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const CLIENTS: usize = 500;
const PIPELINED: usize = 3;
const RCVBUF: i32 = 4096;
const READ_FIRST: usize = 4096;
/// How long the clients may wait for the start of their answers: generous,
/// since the property is memory, and a machine loaded by other work slows
/// both servers' first bytes (the wait ends as soon as all have them).
const ANSWER_WITHIN: Duration = Duration::from_secs(20);
/// How long the clients stay connected, not reading, while RSS is sampled.
const HOLD: Duration = Duration::from_secs(2);
/// How long RSS may take to come back once the clients are gone.
const RETURN_WITHIN: Duration = Duration::from_secs(5);
/// Descriptors: the clients, plus the server's (nginx's) side of them, plus slack.
const NOFILE: u64 = 2 * CLIENTS as u64 + 256;

/// What one load did to a server's RSS (KiB).
struct Figures {
    /// Clients that got the start of their response.
    answered: usize,
    start: u64,
    peak: u64,
    /// RSS when it was first back within 10% of `start`, and how long after
    /// the clients left; or the last sample if it never was.
    after: u64,
    back_after: Option<Duration>,
}

/// Runs the slow-reader load against `port` and samples the total RSS of
/// `pids`.
fn load(port: u16, pids: &[i32]) -> Figures {
    let rss = || pids.iter().map(|&p| rss_kib(p)).sum::<u64>();
    let start = rss();
    let sampler = PeakRss::start(pids.to_vec());
    let request = format!("GET /big HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let (clients, answered) = slow_readers(
        port,
        CLIENTS,
        request.as_bytes(),
        PIPELINED,
        READ_FIRST,
        RCVBUF,
        ANSWER_WITHIN,
    );
    thread::sleep(HOLD);
    let peak = sampler.finish();
    drop(clients);
    let left = Instant::now();
    let limit = start + start / 10;
    let mut after = rss();
    let back = wait_until(RETURN_WITHIN, || {
        after = rss();
        after <= limit
    });
    Figures {
        answered,
        start,
        peak,
        after,
        back_after: back.then(|| left.elapsed()),
    }
}

#[test]
fn slow_readers_pin_no_memory_and_it_comes_back() {
    ensure_nofile(NOFILE);
    let nginx_bin = nginx_program();

    // ---- connection-core: the example server -----------------------------
    let mut server = Server::start_with(&[], Some(NOFILE));
    let ours = load(server.port, &[server.pid]);
    eprintln!(
        "connection-core example: RSS start {} KiB, peak {} KiB with {CLIENTS} slow readers \
         ({} answered), {} KiB {} after they left",
        ours.start,
        ours.peak,
        ours.answered,
        ours.after,
        ours.back_after
            .map_or(format!("(not back within {RETURN_WITHIN:?})"), |d| format!(
                "{d:?}"
            ))
    );
    server.assert_settled("after the slow readers left");
    server.stop_cleanly("example server");

    // ---- nginx, same load ---------------------------------------------------
    let tmp = TempDir::new("nginx-static");
    let nginx = Nginx::start(&nginx_bin, tmp.path());
    let theirs = load(nginx.port, &nginx.pids());
    eprintln!(
        "nginx (master + worker, sendfile on): RSS start {} KiB, peak {} KiB with {CLIENTS} slow \
         readers ({} answered)",
        theirs.start, theirs.peak, theirs.answered
    );
    drop(nginx);

    assert!(
        ours.peak <= 2 * theirs.peak,
        "peak RSS {} KiB with {CLIENTS} slow readers of a 1 MiB body: more than twice nginx's {} KiB",
        ours.peak,
        theirs.peak
    );
    assert_eq!(
        theirs.answered, CLIENTS,
        "nginx did not answer every slow reader"
    );
    assert_eq!(
        ours.answered, CLIENTS,
        "the example server did not answer every slow reader within {ANSWER_WITHIN:?}"
    );
    assert!(
        ours.back_after.is_some(),
        "RSS still {} KiB {RETURN_WITHIN:?} after the slow readers left: not back within 10% of \
         its start ({} KiB)",
        ours.after,
        ours.start
    );
}

// ---- nginx serving a static file --------------------------------------------

/// nginx as a child in its own process group; Drop stops it (SIGQUIT, then
/// SIGKILL to the group).
struct Nginx {
    child: Child,
    pid: i32,
    port: u16,
}

impl Nginx {
    /// nginx on 127.0.0.1 (a free port) serving `dir/www/big` (1 MiB) with
    /// everything it writes kept in `dir`; waits until it answers.
    fn start(bin: &Path, dir: &Path) -> Nginx {
        let version = nginx_version(bin);
        let www = dir.join("www");
        fs::create_dir_all(&www).unwrap();
        fs::write(www.join("big"), vec![b'x'; 1 << 20]).unwrap();
        let port = free_port();
        let d = dir.display();
        let temp_paths = nginx_temp_paths(dir, &version);
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let conf = format!(
            "# Written by tests/server/slow_reader_memory.rs\n\
             daemon off;\nmaster_process on;\nworker_processes 1;\n{}\
             pid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections {}; }}\n\
             http {{\n    access_log off;\n{temp_paths}    sendfile on;\n\
             \x20   server {{\n        listen 127.0.0.1:{port};\n        root {d}/www;\n    }}\n}}\n",
            if root { "user root;\n" } else { "" },
            2 * CLIENTS,
        );
        let conf_path = dir.join("nginx.conf");
        fs::write(&conf_path, conf).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("-p").arg(format!("{d}/")).arg("-c").arg(&conf_path);
        if nginx_version_at_least(&version, (1, 19, 5)) {
            // The error log before the configuration is read.
            cmd.arg("-e").arg(dir.join("error.log"));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        reset_child_signals(&mut cmd, Some(NOFILE));
        let child = cmd.spawn().expect("spawn nginx");
        let nginx = Nginx {
            pid: child.id() as i32,
            child,
            port,
        };
        let mut last = None;
        let up = wait_until(Duration::from_secs(10), || {
            last = Some(try_get(port, "/big", Duration::from_secs(2)));
            matches!(&last, Some(Ok((200, _, body))) if body.len() == 1 << 20)
        });
        assert!(
            up,
            "nginx did not serve /big on 127.0.0.1:{port} within 10 s (last: {:?}); error log:\n{}",
            last.map(|r| r.map(|(s, _, b)| (s, b.len()))),
            fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        // Its worker has started and served once: the baseline is steady.
        thread::sleep(Duration::from_millis(200));
        nginx
    }

    /// The master and its workers.
    fn pids(&self) -> Vec<i32> {
        let mut pids = vec![self.pid];
        pids.extend(children_of(self.pid));
        assert!(pids.len() >= 2, "nginx has no worker process");
        pids
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        send_signal(self.pid, libc::SIGQUIT);
        if wait_child(&mut self.child, Duration::from_secs(10)).is_none() {
            kill_group(self.pid);
            let _ = wait_child(&mut self.child, Duration::from_secs(5));
        }
        // Workers included, whatever happened to the master.
        kill_group(self.pid);
    }
}
