//! Shared helpers for the integration tests: build the C example server once,
//! run it and other programs as child processes, talk HTTP/1.1 to them over
//! 127.0.0.1 and look at the processes from /proc and `ss`.
//!
//! Every wait in here is bounded; nothing sleeps without a deadline, and
//! every child is cleaned up in Drop, also when a test fails.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

mod build;
mod nginx;
mod process;

pub use build::*;
#[allow(unused_imports)] // only the tests that run nginx use these
pub use nginx::*;
pub use process::*;

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

/// How long the example server may take to exit after SIGINT.
const SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server's fd count may take to come back down after a round.
pub const SETTLE_TIMEOUT: Duration = Duration::from_millis(2500);
/// Default bound for one probe request.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Bound for connect() on loopback.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

pub const HELLO: &[u8] = b"Hello, World!";

// ---------------------------------------------------------------------------
// The example server
// ---------------------------------------------------------------------------

/// The example server (`c-examples/server`), or the test server
/// (`c-examples/test_server` from tests/fixtures/test_server.c: the same
/// routes plus stream cleanup counters and stub_status in /stats), as a
/// `Program`.
pub struct Server {
    program: Program,
    pub port: u16,
    pub pid: i32,
    /// Open fds once the server has answered a first request and settled.
    pub baseline_fds: usize,
    /// `active_connections` reported by /stats on the otherwise idle server
    /// (0, or 1 if the server counts the /stats request itself).
    pub baseline_active: u64,
}

impl Server {
    /// `c-examples/server --port 0 --host 127.0.0.1 ARGS...`
    pub fn start(args: &[&str]) -> Server {
        Self::start_with(args, None)
    }

    /// As `start`, with RLIMIT_NOFILE (soft and hard) set to `nofile`.
    pub fn start_with(args: &[&str], nofile: Option<u64>) -> Server {
        Self::start_program("server", server_binary(), args, nofile)
    }

    /// `c-examples/test_server --port 0 --host 127.0.0.1 ARGS...`, for tests
    /// that read its /stats cleanup_* counters or its stub_status form.
    pub fn start_fixture(args: &[&str]) -> Server {
        Self::start_program("test_server", &test_server_binary(), args, None)
    }

    fn start_program(name: &str, bin: &Path, args: &[&str], nofile: Option<u64>) -> Server {
        let mut cmd = Command::new(bin);
        cmd.args(["--port", "0", "--host", "127.0.0.1"])
            .args(args)
            .current_dir(repo_root());
        let program = Program::start_with(
            &format!("{name} {args:?}"),
            cmd,
            nofile,
            SERVER_STOP_TIMEOUT,
        );
        let (pid, port) = (program.pid, program.port);
        let mut server = Server {
            program,
            port,
            pid,
            baseline_fds: 0,
            baseline_active: 0,
        };
        // Warm up (lazily created fds such as timers), then take the baseline.
        let started = Instant::now();
        probe(port);
        server.baseline_active = stat(&stats(port), "active_connections");
        server.baseline_fds = wait_stable_fd_count(pid, Duration::from_secs(2));
        eprintln!(
            "[{name} pid {pid} port {port} args {args:?} nofile {nofile:?}] baseline fds {} active {} (warm-up {:?})",
            server.baseline_fds,
            server.baseline_active,
            started.elapsed()
        );
        server
    }

    pub fn stderr_tail(&self) -> String {
        tail(self.program.stderr_text().as_bytes(), 6000)
    }

    /// `Some(status)` once the server has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.program.exit_status()
    }

    /// Panics (with the exit status and stderr) if the server has exited.
    pub fn assert_alive(&mut self, context: &str) {
        self.program.assert_alive(context);
    }

    pub fn fd_count(&self) -> usize {
        fd_count(self.pid)
    }

    pub fn cpu_ticks(&self) -> u64 {
        cpu_ticks(self.pid)
    }

    pub fn stats(&self) -> HashMap<String, u64> {
        stats(self.port)
    }

    /// Waits (bounded by `SETTLE_TIMEOUT`) until the server's fd count is
    /// back to its baseline and no socket of its port sits in CLOSE_WAIT, then
    /// checks that /stats reports no connection besides the /stats request.
    pub fn assert_settled(&mut self, context: &str) {
        self.assert_alive(context);
        let pid = self.pid;
        let port = self.port;
        let baseline = self.baseline_fds;
        let mut last = (0, 0);
        let ok = wait_until(SETTLE_TIMEOUT, || {
            last = (fd_count(pid), close_wait_count(port));
            last.0 <= baseline && last.1 == 0
        });
        if !ok {
            let st = stats(port);
            panic!(
                "{context}: server did not settle within {SETTLE_TIMEOUT:?}: open fds {} (baseline {baseline}), \
                 CLOSE_WAIT sockets {}; stats {:?}; fds: {:?}; stderr:\n{}",
                last.0,
                last.1,
                sorted(&st),
                list_fds(pid),
                self.stderr_tail()
            );
        }
        let st = stats(port);
        let active = stat(&st, "active_connections");
        assert_eq!(
            active,
            self.baseline_active,
            "{context}: /stats active_connections = {active} with no client connected \
             (an idle server reported {}); stats {:?}",
            self.baseline_active,
            sorted(&st)
        );
    }

    /// SIGINT, then wait (bounded) for the exit status. Panics if the server
    /// does not exit in time (it is then SIGKILLed).
    pub fn stop(mut self) -> ExitStatus {
        self.program.interrupt()
    }

    /// `stop`, and the server must exit 0 (its graceful path: drain,
    /// Connection_Destroy). `who` names it in the failure message.
    pub fn stop_cleanly(self, who: &str) {
        let status = self.stop();
        assert_eq!(
            status.code(),
            Some(0),
            "{who} after SIGINT: {} (expected exit code 0)",
            describe_status(status)
        );
    }
}

// ---------------------------------------------------------------------------
// /proc and ss
// ---------------------------------------------------------------------------

pub fn fd_count(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/fd: {e}"))
        .count()
}

/// VmRSS of a process, in KiB (0 once it is gone).
pub fn rss_kib(pid: i32) -> u64 {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The highest total VmRSS of some processes, sampled every 10 ms on a
/// thread from `start` until `finish`.
pub struct PeakRss {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sampler: thread::JoinHandle<u64>,
}

impl PeakRss {
    pub fn start(pids: Vec<i32>) -> PeakRss {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let sampler = thread::spawn(move || {
            let mut peak = 0;
            loop {
                peak = pids.iter().map(|&p| rss_kib(p)).sum::<u64>().max(peak);
                if flag.load(Ordering::SeqCst) {
                    return peak;
                }
                thread::sleep(Duration::from_millis(10));
            }
        });
        PeakRss { stop, sampler }
    }

    /// The peak in KiB.
    pub fn finish(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.sampler.join().expect("RSS sampler")
    }
}

/// Raises this process's soft RLIMIT_NOFILE to the hard limit if it is
/// below `need`; panics if the hard limit is too low.
pub fn ensure_nofile(need: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid out pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    if lim.rlim_cur >= need {
        return;
    }
    assert!(
        lim.rlim_max >= need,
        "this test needs {need} descriptors; the hard RLIMIT_NOFILE is {}",
        lim.rlim_max
    );
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: a valid rlimit value.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
}

/// `count` slow readers (`slowhttptest -X -k PIPELINED` in small): each
/// connects with a small receive buffer (`rcvbuf`), sends `request`
/// `pipelined` times in one write, reads the first `read_first` bytes and
/// then reads nothing more. Returns them open (dropping them closes them,
/// with unread data: an RST) and how many got the start of a 200 response
/// within `wait` (the others are still waiting for one, or were closed).
pub fn slow_readers(
    port: u16,
    count: usize,
    request: &[u8],
    pipelined: usize,
    read_first: usize,
    rcvbuf: i32,
    wait: Duration,
) -> (Vec<Conn>, usize) {
    let wire = request.repeat(pipelined);
    let mut clients = Vec::with_capacity(count);
    for i in 0..count {
        let stream = connect_with_rcvbuf(port, rcvbuf)
            .unwrap_or_else(|e| panic!("slow reader {i}: connect 127.0.0.1:{port}: {e}"));
        let mut c = Conn::new(stream);
        c.send(&wire)
            .unwrap_or_else(|e| panic!("slow reader {i}: send: {e}"));
        clients.push(c);
    }
    let deadline = Instant::now() + wait;
    let mut answered = 0;
    for (i, c) in clients.iter_mut().enumerate() {
        // Past the deadline, only what has already arrived counts.
        let until = deadline.max(Instant::now() + Duration::from_millis(5));
        match c.read_at_least(read_first, until) {
            Ok(_) if c.buffered().starts_with(b"HTTP/1.1 200 ") => answered += 1,
            Ok(_) => panic!(
                "slow reader {i}: {:?}",
                String::from_utf8_lossy(&c.buffered()[..c.buffered().len().min(100)])
            ),
            // Still waiting, or closed by the server (a timeout) meanwhile.
            Err(_) => {}
        }
    }
    (clients, answered)
}

/// `fd -> link target` for diagnostics.
pub fn list_fds(pid: i32) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) {
        for entry in dir.flatten() {
            let target = fs::read_link(entry.path())
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| "?".into());
            out.push(format!("{}->{target}", entry.file_name().to_string_lossy()));
        }
    }
    out.sort();
    out
}

/// Polls until the fd count has not changed for 200 ms (bounded).
pub fn wait_stable_fd_count(pid: i32, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    let mut last = fd_count(pid);
    let mut since = Instant::now();
    loop {
        thread::sleep(Duration::from_millis(20));
        let now = fd_count(pid);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_millis(200) || Instant::now() >= deadline {
            return now;
        }
    }
}

/// utime + stime of the process, in clock ticks.
pub fn cpu_ticks(pid: i32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/stat: {e}"));
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')').expect("malformed /proc/PID/stat") + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    utime + stime
}

/// SigBlk / SigIgn / SigCgt masks of the process's main thread.
pub fn signal_masks(pid: i32) -> (u64, u64, u64) {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| u64::from_str_radix(v.trim(), 16).expect("hex signal mask"))
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("SigBlk:"), field("SigIgn:"), field("SigCgt:"))
}

/// Number of TCP sockets with local port `port` in CLOSE_WAIT, from
/// `ss -tan state close-wait '( sport = :PORT )'`.
pub fn close_wait_count(port: u16) -> usize {
    let out = run_capture(
        Command::new("ss").args([
            "-tan",
            "state",
            "close-wait",
            &format!("( sport = :{port} )"),
        ]),
        Duration::from_secs(5),
    )
    .unwrap_or_else(|e| panic!("running `ss` failed ({e}); install iproute2"));
    out.lines()
        .filter(|l| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with("Recv-Q") && !l.starts_with("State")
        })
        .count()
}

/// Lines of `ss -tan '( sport = :PORT )'` (all states) for diagnostics.
pub fn ss_lines(port: u16) -> Vec<String> {
    run_capture(
        Command::new("ss").args(["-tan", &format!("( sport = :{port} )")]),
        Duration::from_secs(5),
    )
    .map(|o| o.lines().skip(1).map(str::to_owned).collect())
    .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Sockets
// ---------------------------------------------------------------------------

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub fn try_connect(port: u16) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr(port), CONNECT_TIMEOUT)?;
    s.set_nodelay(true)?;
    Ok(s)
}

pub fn connect(port: u16) -> TcpStream {
    try_connect(port).unwrap_or_else(|e| panic!("connect 127.0.0.1:{port}: {e}"))
}

fn setsockopt<T>(fd: i32, level: i32, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live T of the size we pass.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast::<libc::c_void>(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Connects with a small SO_RCVBUF (set before connect, so the window stays
/// small and a non-reading client does not pin megabytes of kernel memory).
pub fn connect_with_rcvbuf(port: u16, rcvbuf: i32) -> io::Result<TcpStream> {
    // SAFETY: plain socket(2); the fd is immediately owned by a TcpStream.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket nobody else owns.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &rcvbuf)?;
    // Bounds the blocking connect(2) below (Linux honours SO_SNDTIMEO there).
    stream.set_write_timeout(Some(CONNECT_TIMEOUT))?;
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `sin` is a valid sockaddr_in of the size passed.
    let rc = unsafe {
        libc::connect(
            fd,
            (&sin as *const libc::sockaddr_in).cast::<libc::sockaddr>(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    stream.set_write_timeout(None)?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Closes with SO_LINGER {1, 0}: the kernel sends RST instead of FIN.
pub fn rst_close(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    setsockopt(
        stream.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_LINGER,
        &linger,
    )
    .expect("setsockopt(SO_LINGER {1,0})");
    drop(stream);
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------
// HTTP client
// ---------------------------------------------------------------------------

/// `(status, headers, body)`; the body is de-chunked.
pub type Reply = (u16, Vec<(String, String)>, Vec<u8>);

/// Case-insensitive header lookup.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("timed out waiting for {what}"),
    )
}

/// A client connection with a read buffer; every read has a deadline.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// Total bytes read from the socket so far.
    pub received: usize,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: Vec::new(),
            received: 0,
        }
    }

    pub fn open(port: u16) -> Conn {
        Conn::new(connect(port))
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream
            .set_write_timeout(Some(Duration::from_secs(5)))?;
        self.stream.write_all(bytes)
    }

    /// Bytes read but not consumed yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Drops whatever is buffered.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Whether the server has closed this connection (EOF or reset seen
    /// within a few milliseconds); data that arrives is discarded.
    pub fn closed_by_peer(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_millis(5);
        loop {
            match self.fill(deadline) {
                Ok(0) => return true,
                Ok(_) => self.buf.clear(),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return false,
                Err(_) => return true,
            }
        }
    }

    /// One read(2) into the buffer; Ok(0) at EOF; TimedOut past `deadline`.
    pub fn fill(&mut self, deadline: Instant) -> io::Result<usize> {
        let mut tmp = vec![0u8; 64 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timed_out("data from the server"));
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut tmp) {
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    self.received += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(timed_out("data from the server"))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads until at least `n` bytes arrived in total (or EOF); returns the
    /// total received.
    pub fn read_at_least(&mut self, n: usize, deadline: Instant) -> io::Result<usize> {
        while self.received < n {
            if self.fill(deadline)? == 0 {
                break;
            }
        }
        Ok(self.received)
    }

    fn take(&mut self, n: usize, deadline: Instant) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill(deadline)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed with {} of {n} expected bytes",
                        self.buf.len()
                    ),
                ));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    fn read_line(&mut self, deadline: Instant) -> io::Result<Vec<u8>> {
        let mut scanned: usize = 0;
        loop {
            if let Some(p) = find(&self.buf[scanned.saturating_sub(1)..], b"\r\n") {
                let p = p + scanned.saturating_sub(1);
                let line: Vec<u8> = self.buf.drain(..p + 2).take(p).collect();
                return Ok(line);
            }
            scanned = self.buf.len();
            if self.fill(deadline)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed in the middle of a line",
                ));
            }
        }
    }

    /// Reads the status line and headers only.
    pub fn read_head(&mut self, deadline: Instant) -> io::Result<(u16, Vec<(String, String)>)> {
        let head_end = loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                break p;
            }
            if self.fill(deadline)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed before a full response head; got {:?}",
                        String::from_utf8_lossy(&self.buf[..self.buf.len().min(200)])
                    ),
                ));
            }
        };
        let head: Vec<u8> = self.buf.drain(..head_end + 4).collect();
        let text = String::from_utf8_lossy(&head[..head_end]).into_owned();
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let bad = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {status_line:?}"),
            )
        };
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().ok_or_else(bad)?;
        if !version.starts_with("HTTP/1.") {
            return Err(bad());
        }
        let status: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line.split_once(':').ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad header line {line:?}"),
                )
            })?;
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        Ok((status, headers))
    }

    /// Reads one full response (Content-Length, chunked, or until EOF).
    pub fn read_response(&mut self, deadline: Instant) -> io::Result<Reply> {
        let (status, headers) = self.read_head(deadline)?;
        let chunked = header(&headers, "transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let body = if chunked {
            self.read_chunked(deadline)?
        } else if let Some(len) = header(&headers, "content-length") {
            let len: usize = len.parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad Content-Length {len:?}"),
                )
            })?;
            self.take(len, deadline)?
        } else if status < 200 || status == 204 || status == 304 {
            Vec::new()
        } else {
            self.read_to_eof(deadline)?
        };
        Ok((status, headers, body))
    }

    fn read_chunked(&mut self, deadline: Instant) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line(deadline)?;
            let text = String::from_utf8_lossy(&line);
            let size_text = text.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad chunk size line {text:?}"),
                )
            })?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !self.read_line(deadline)?.is_empty() {}
                return Ok(body);
            }
            body.extend_from_slice(&self.take(size, deadline)?);
            let crlf = self.take(2, deadline)?;
            if crlf != b"\r\n" {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("chunk not followed by CRLF but {crlf:?}"),
                ));
            }
        }
    }

    /// Everything until EOF (including what is buffered).
    pub fn read_to_eof(&mut self, deadline: Instant) -> io::Result<Vec<u8>> {
        while self.fill(deadline)? > 0 {}
        Ok(std::mem::take(&mut self.buf))
    }

    /// Expects the server to close: nothing more buffered, and read(2)
    /// returns 0 before `deadline`.
    pub fn expect_eof(&mut self, deadline: Instant) -> io::Result<()> {
        if !self.buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "unexpected extra bytes: {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            ));
        }
        match self.fill(deadline)? {
            0 => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "unexpected extra bytes: {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            )),
        }
    }
}

pub fn get_request(port: u16, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

/// Sends `raw` on a fresh connection and reads one response, all within `timeout`.
pub fn request(port: u16, raw: &[u8], timeout: Duration) -> io::Result<Reply> {
    let deadline = Instant::now() + timeout;
    let stream = TcpStream::connect_timeout(&addr(port), timeout)?;
    stream.set_nodelay(true)?;
    let mut conn = Conn::new(stream);
    conn.stream.set_write_timeout(Some(timeout))?;
    conn.stream.write_all(raw)?;
    conn.read_response(deadline)
}

pub fn try_get(port: u16, path: &str, timeout: Duration) -> io::Result<Reply> {
    request(port, &get_request(port, path), timeout)
}

/// `GET path` (HTTP/1.1, Connection: close) with a 1 s bound; panics on failure.
pub fn get(port: u16, path: &str) -> Reply {
    try_get(port, path, PROBE_TIMEOUT).unwrap_or_else(|e| {
        panic!("GET {path} on 127.0.0.1:{port} failed within {PROBE_TIMEOUT:?}: {e}")
    })
}

/// `GET /` must answer 200 "Hello, World!" within 1 s; returns how long it took.
pub fn probe(port: u16) -> Duration {
    let start = Instant::now();
    let (status, _, body) = try_get(port, "/", PROBE_TIMEOUT).unwrap_or_else(|e| {
        panic!("probe GET / on 127.0.0.1:{port} got no answer within {PROBE_TIMEOUT:?}: {e}")
    });
    let took = start.elapsed();
    assert_eq!(
        status,
        200,
        "probe GET /: status {status}, body {:?}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(
        body,
        HELLO,
        "probe GET /: body {:?}",
        String::from_utf8_lossy(&body)
    );
    took
}

/// `GET /stats`, parsed as a flat JSON object of numbers.
pub fn stats(port: u16) -> HashMap<String, u64> {
    let (status, _, body) = get(port, "/stats");
    assert_eq!(status, 200, "GET /stats: status {status}");
    let text = String::from_utf8_lossy(&body);
    let map = parse_flat_json_numbers(&text);
    assert!(
        map.contains_key("active_connections"),
        "GET /stats: no active_connections in {text:?}"
    );
    map
}

pub fn stat(stats: &HashMap<String, u64>, name: &str) -> u64 {
    *stats
        .get(name)
        .unwrap_or_else(|| panic!("/stats has no {name:?}: {:?}", sorted(stats)))
}

pub fn sorted(stats: &HashMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = stats.iter().map(|(k, v)| (k.clone(), *v)).collect();
    v.sort();
    v
}

/// Tiny parser for `{"key": 123, ...}`: picks every `"key": <digits>` pair,
/// ignores anything else.
pub fn parse_flat_json_numbers(text: &str) -> HashMap<String, u64> {
    let b = text.as_bytes();
    let mut map = HashMap::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'"' {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut j = start;
        while j < b.len() && b[j] != b'"' {
            j += 1;
        }
        let key = &text[start..j.min(b.len())];
        i = j + 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b':' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let digits = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i > digits {
                if let Ok(v) = text[digits..i].parse::<u64>() {
                    map.insert(key.to_owned(), v);
                }
            }
        }
    }
    map
}

/// Small deterministic PRNG (xorshift64*), so runs are reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }
}
