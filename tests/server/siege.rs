//! The server keeps answering a real `siege -b` run, interrupted
//! with SIGINT after a second or two, five times (the way the original bug
//! was found). After each interruption a fresh `GET /` must be answered within
//! 1 s, and the server must be back to its idle fd count with no connection
//! left open.
//!
//! siege is required: where it is missing the test fails and says how to
//! install it; it never passes silently.

#[path = "../common/mod.rs"]
mod common;

use common::*;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const RUNS: usize = 5;
const CONCURRENT: &str = "32";
/// How long siege keeps hammering once it has got going, before SIGINT.
const HAMMER: Duration = Duration::from_millis(1200);

/// A scratch directory (siege's HOME, rc file, URL file, output), removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "connection-core-{tag}-{}-{nanos}",
            std::process::id()
        ));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Fails (never skips) when siege is not installed.
fn require_siege(home: &Path) {
    let spawned = Command::new("siege")
        .arg("-V")
        .env("HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match spawned {
        Ok(mut child) => {
            if wait_child(&mut child, Duration::from_secs(10)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`siege -V` did not finish within 10 s");
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => panic!(
            "siege is not installed, and this test needs it: install it with `apt-get install siege` \
             (.ci/run installs it)"
        ),
        Err(e) => panic!("cannot run siege: {e}"),
    }
}

fn write_rc(dir: &Path, keep_alive: bool) -> PathBuf {
    let rc = dir.join("siegerc");
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let text = format!(
        "verbose = false\nquiet = true\ncolor = off\nlogging = false\nshow-logfile = false\n\
         json_output = false\nparser = false\nprotocol = HTTP/1.1\nchunked = true\n\
         connection = {connection}\nlimit = 255\nfailures = 1000000\ntimeout = 10\n"
    );
    fs::write(&rc, text).unwrap_or_else(|e| panic!("write {}: {e}", rc.display()));
    rc
}

#[test]
fn siege_interrupted_five_times() {
    let tmp = TempDir::new("siege");
    let dir = tmp.path();
    require_siege(dir);

    let mut server = Server::start(&[]);
    let port = server.port;
    let urls = dir.join("urls.txt");
    fs::write(
        &urls,
        format!(
            "http://127.0.0.1:{port}/user/register\nhttp://127.0.0.1:{port}/chunked?size=1048576\n\
             http://127.0.0.1:{port}/user/register\nhttp://127.0.0.1:{port}/\n"
        ),
    )
    .expect("write urls file");

    for run in 0..RUNS {
        let keep_alive = run % 2 == 1;
        let rc = write_rc(dir, keep_alive);
        let out_path = dir.join(format!("siege-{run}.out"));
        let out = fs::File::create(&out_path).expect("create siege output file");
        let err = out.try_clone().expect("dup siege output file");
        let before = stat(&server.stats(), "requests");

        let mut cmd = Command::new("siege");
        cmd.env("HOME", dir)
            .arg("-b")
            .arg("-q")
            .args(["-c", CONCURRENT, "-t", "30S"])
            .arg("-R")
            .arg(&rc)
            .arg("-f")
            .arg(&urls)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        reset_child_signals(&mut cmd, None);
        let mut siege = cmd.spawn().expect("spawn siege");
        let siege_pid = siege.id() as i32;
        let siege_output = || tail(&fs::read(&out_path).unwrap_or_default(), 3000);

        // Readiness: siege has got going once the server has seen a good
        // number of requests (our own /stats polls count too).
        let mut polls = 0u64;
        let going = wait_until(Duration::from_secs(10), || {
            polls += 1;
            stat(&server.stats(), "requests") >= before + polls + 64
        });
        if !going {
            send_signal(siege_pid, libc::SIGKILL);
            let _ = wait_child(&mut siege, Duration::from_secs(5));
            panic!(
                "run {run}: siege did not get going within 10 s (server stats {:?}); siege output:\n{}",
                sorted(&server.stats()),
                siege_output()
            );
        }
        thread::sleep(HAMMER);

        // Ctrl-C.
        let interrupted = Instant::now();
        send_signal(siege_pid, libc::SIGINT);
        match wait_child(&mut siege, Duration::from_secs(10)) {
            Some(status) => eprintln!(
                "run {run} ({}): siege exited after SIGINT in {:?}: {}",
                if keep_alive { "keep-alive" } else { "close" },
                interrupted.elapsed(),
                describe_status(status)
            ),
            None => {
                send_signal(siege_pid, libc::SIGKILL);
                let _ = wait_child(&mut siege, Duration::from_secs(5));
                eprintln!(
                    "run {run}: siege ignored SIGINT for 10 s and was killed; output:\n{}",
                    siege_output()
                );
            }
        }

        server.assert_alive(&format!("run {run}: after siege was interrupted"));
        let took = probe(port);
        eprintln!("run {run}: probe GET / answered in {took:?}");
        server.assert_settled(&format!("run {run}: after siege was interrupted"));
    }

    let st = server.stats();
    eprintln!("stats after {RUNS} siege runs: {:?}", sorted(&st));
    server.stop_cleanly("server");
}
