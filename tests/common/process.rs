//! Child processes for the tests: bounded waits, bounded command runs,
//! programs that print `listening on HOST:PORT` (run in their own process
//! group, cleaned up in Drop also when a test fails), temporary directories
//! and a look at /proc.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long a program may take to print `listening on`.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a `Program` may take to exit after SIGINT (unless started with
/// another bound).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How much of a program's stderr is kept.
const STDERR_KEEP: usize = 256 * 1024;

/// `try_wait` in a loop until `timeout`; `None` if the child is still running.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(e) => panic!("waitpid({}): {e}", child.id()),
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

pub fn describe_status(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exit code {code}")
    } else if let Some(sig) = status.signal() {
        let name = match sig {
            libc::SIGPIPE => " (SIGPIPE)",
            libc::SIGSEGV => " (SIGSEGV)",
            libc::SIGABRT => " (SIGABRT)",
            libc::SIGKILL => " (SIGKILL)",
            libc::SIGINT => " (SIGINT)",
            libc::SIGBUS => " (SIGBUS)",
            _ => "",
        };
        format!(
            "killed by signal {sig}{name}{}",
            if status.core_dumped() {
                ", core dumped"
            } else {
                ""
            }
        )
    } else {
        format!("{status:?}")
    }
}

pub fn send_signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a child we spawned and have not reaped yet.
    unsafe { libc::kill(pid, sig) };
}

/// Last `max` bytes of `bytes`, lossily as text.
pub fn tail(bytes: &[u8], max: usize) -> String {
    let start = bytes.len().saturating_sub(max);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// Resets, in a child about to exec, what a test harness may have changed:
/// SIGPIPE and SIGINT back to SIG_DFL, empty signal mask, optional
/// RLIMIT_NOFILE. Only async-signal-safe calls.
pub fn reset_child_signals(cmd: &mut Command, nofile: Option<u64>) {
    // SAFETY: the closure runs between fork and exec and only calls
    // async-signal-safe functions (signal, sigemptyset, sigprocmask, setrlimit).
    unsafe {
        cmd.pre_exec(move || {
            if libc::signal(libc::SIGPIPE, libc::SIG_DFL) == libc::SIG_ERR {
                return Err(io::Error::last_os_error());
            }
            if libc::signal(libc::SIGINT, libc::SIG_DFL) == libc::SIG_ERR {
                return Err(io::Error::last_os_error());
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(n) = nofile {
                let lim = libc::rlimit {
                    rlim_cur: n as libc::rlim_t,
                    rlim_max: n as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// SIGKILL to the process group `pgid` (a child spawned with
/// `process_group(0)` leads the group whose id is its pid).
pub fn kill_group(pgid: i32) {
    // SAFETY: kill(2) on a process group we created for a child.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

/// Runs `cmd` to completion with stdout and stderr captured, killing its
/// process group after `timeout`. Err describes what went wrong, with the
/// output.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let mut out_pipe = child.stdout.take().expect("stdout pipe");
    let mut err_pipe = child.stderr.take().expect("stderr pipe");
    let out_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let status = match wait_child(&mut child, timeout) {
        Some(s) => s,
        None => {
            kill_group(child.id() as i32);
            let _ = wait_child(&mut child, Duration::from_secs(5));
            let err = err_reader.join().unwrap_or_default();
            return Err(format!(
                "{what} did not finish within {timeout:?} (killed); stderr:\n{}",
                tail(&err, 4000)
            ));
        }
    };
    Ok(Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

/// `run`, and panics unless the command exits 0.
pub fn run_ok(cmd: &mut Command, timeout: Duration) -> Output {
    let what = format!("{cmd:?}");
    let out = run(cmd, timeout).unwrap_or_else(|e| panic!("{e}"));
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            describe_status(out.status),
            tail(&out.stdout, 4000),
            tail(&out.stderr, 6000)
        );
    }
    out
}

/// Runs a short command and returns its stdout; bounded by `timeout`.
pub fn run_capture(cmd: &mut Command, timeout: Duration) -> io::Result<String> {
    let out = run(cmd, timeout).map_err(io::Error::other)?;
    if !out.status.success() {
        return Err(io::Error::other(describe_status(out.status)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Fails (never skips) when `program` cannot be run, naming the Debian
/// package that provides it.
pub fn require_tool(program: &str, version_arg: &str, package: &str) {
    match Command::new(program)
        .arg(version_arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => {}
        Err(e) => panic!(
            "`{program}` is needed by this test but cannot be run ({e}): install the Debian package \
             `{package}` (apt-get install {package}; .ci/run installs it)"
        ),
    }
}

/// A directory under the system temp dir, removed (recursively) on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "connection-core-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// The output a child printed so far, shared with the reader threads.
#[derive(Default)]
struct Captured {
    stdout: Mutex<Vec<String>>,
    stderr: Mutex<Vec<u8>>,
    changed: Condvar,
}

/// A program that prints `listening on HOST:PORT` when it is ready, run in
/// its own process group. Drop: SIGINT, then (after its stop timeout)
/// SIGKILL to the whole group, so no worker process it forked outlives the
/// test.
pub struct Program {
    name: String,
    child: Child,
    pub pid: i32,
    pub port: u16,
    status: Option<ExitStatus>,
    out: Arc<Captured>,
    stop_timeout: Duration,
}

impl Program {
    /// Spawns `cmd` (stdin null, stdout/stderr captured, signals reset,
    /// its own process group) and waits for `listening on HOST:PORT`.
    pub fn start(name: &str, cmd: Command) -> Program {
        Self::start_with(name, cmd, None, STOP_TIMEOUT)
    }

    /// As `start`, with RLIMIT_NOFILE (soft and hard) set to `nofile`, and
    /// `stop_timeout` as the bound on exiting after a signal.
    pub fn start_with(
        name: &str,
        mut cmd: Command,
        nofile: Option<u64>,
        stop_timeout: Duration,
    ) -> Program {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        reset_child_signals(&mut cmd, nofile);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({cmd:?}): {e}"));
        let pid = child.id() as i32;
        let out = Arc::new(Captured::default());
        {
            let pipe = child.stdout.take().expect("stdout pipe");
            let out = Arc::clone(&out);
            thread::spawn(move || {
                let mut reader = BufReader::new(pipe);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match reader.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                            out.stdout
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(text);
                            out.changed.notify_all();
                        }
                    }
                }
            });
        }
        {
            let mut pipe = child.stderr.take().expect("stderr pipe");
            let out = Arc::clone(&out);
            thread::spawn(move || {
                let mut buf = [0u8; 8192];
                loop {
                    match pipe.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let mut k = out.stderr.lock().unwrap_or_else(|p| p.into_inner());
                            k.extend_from_slice(&buf[..n]);
                            if k.len() > 2 * STDERR_KEEP {
                                let cut = k.len() - STDERR_KEEP;
                                k.drain(..cut);
                            }
                            drop(k);
                            out.changed.notify_all();
                        }
                    }
                }
            });
        }
        let mut program = Program {
            name: name.to_owned(),
            child,
            pid,
            port: 0,
            status: None,
            out,
            stop_timeout,
        };
        let line = program.wait_stdout(START_TIMEOUT, |l| l.starts_with("listening on "));
        let Some(line) = line else {
            let status = program.exit_status();
            panic!(
                "{name} did not print `listening on` within {START_TIMEOUT:?} ({}); stdout: {:?}; stderr:\n{}",
                status.map(describe_status).unwrap_or_else(|| "still running".into()),
                program.stdout_lines(),
                program.stderr_text()
            );
        };
        program.port = line
            .rsplit(':')
            .next()
            .and_then(|p| p.trim().parse::<u16>().ok())
            .unwrap_or_else(|| panic!("{name}: cannot parse a port from {line:?}"));
        assert_ne!(program.port, 0, "{name} reported port 0: {line:?}");
        program
    }

    /// Waits until a stdout line satisfies `pred` (or the program exits, or
    /// `timeout` passes); returns that line.
    pub fn wait_stdout(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.out.stdout.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(l) = lines.iter().find(|l| pred(l)) {
                return Some(l.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let (guard, _) = self
                .out
                .changed
                .wait_timeout(lines, left.min(Duration::from_millis(50)))
                .unwrap_or_else(|p| p.into_inner());
            lines = guard;
            if self.child.try_wait().ok().flatten().is_some() {
                // Exited: one last look at what it printed.
                drop(lines);
                thread::sleep(Duration::from_millis(50));
                let lines = self.out.stdout.lock().unwrap_or_else(|p| p.into_inner());
                return lines.iter().find(|l| pred(l)).cloned();
            }
        }
    }

    /// Waits until stderr (as text) satisfies `pred`; returns whether it did
    /// within `timeout`.
    pub fn wait_stderr(&self, timeout: Duration, mut pred: impl FnMut(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut err = self.out.stderr.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if pred(&String::from_utf8_lossy(&err)) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let (guard, _) = self
                .out
                .changed
                .wait_timeout(err, left.min(Duration::from_millis(50)))
                .unwrap_or_else(|p| p.into_inner());
            err = guard;
        }
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.out
            .stdout
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr.lock().unwrap_or_else(|p| p.into_inner()))
            .into_owned()
    }

    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("waitpid");
        }
        self.status
    }

    /// Panics (with stderr) if the program has exited.
    pub fn assert_alive(&mut self, context: &str) {
        if let Some(status) = self.exit_status() {
            panic!(
                "{context}: {} exited: {}; stderr:\n{}",
                self.name,
                describe_status(status),
                tail(self.stderr_text().as_bytes(), 6000)
            );
        }
    }

    /// Sends `sig` to the program (its main process only).
    pub fn signal(&self, sig: i32) {
        if self.status.is_none() {
            // SAFETY: kill(2) on our unreaped child.
            unsafe { libc::kill(self.pid, sig) };
        }
    }

    /// SIGINT, then waits (bounded) for the exit status; panics if the
    /// program does not exit in time. Waits for the output readers too, so
    /// `stderr_text` is complete afterwards.
    pub fn interrupt(&mut self) -> ExitStatus {
        self.stop_with(libc::SIGINT)
    }

    pub fn stop_with(&mut self, sig: i32) -> ExitStatus {
        if let Some(status) = self.exit_status() {
            return status;
        }
        self.signal(sig);
        match wait_child(&mut self.child, self.stop_timeout) {
            Some(status) => {
                self.status = Some(status);
                self.settle_output();
                status
            }
            None => {
                self.kill_group();
                panic!(
                    "{} did not exit within {:?} of signal {sig} (killed); stderr:\n{}",
                    self.name,
                    self.stop_timeout,
                    tail(self.stderr_text().as_bytes(), 6000)
                );
            }
        }
    }

    /// Waits (bounded) for the program to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = wait_child(&mut self.child, timeout);
            if self.status.is_some() {
                self.settle_output();
            }
        }
        self.status
    }

    /// Gives the reader threads a moment to take the last bytes of a pipe
    /// whose writer has exited.
    fn settle_output(&self) {
        let mut last = usize::MAX;
        for _ in 0..20 {
            let n = self
                .out
                .stderr
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .len()
                + self
                    .out
                    .stdout
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .len();
            if n == last {
                break;
            }
            last = n;
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL to the whole process group, then reap the leader. While any
    /// member lives, the group id cannot be reused.
    fn kill_group(&mut self) {
        kill_group(self.pid);
        if self.status.is_none() {
            self.status = wait_child(&mut self.child, Duration::from_secs(5));
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "---- {} (pid {}, port {}) stderr (tail) ----\n{}\n----",
                self.name,
                self.pid,
                self.port,
                tail(self.stderr_text().as_bytes(), 6000)
            );
        }
        if self.exit_status().is_none() {
            self.signal(libc::SIGINT);
            if let Some(status) = wait_child(&mut self.child, self.stop_timeout) {
                self.status = Some(status);
            }
        }
        // Whatever is left of its process group (forked workers) goes too.
        self.kill_group();
    }
}

/// Pids whose parent is `ppid` (from /proc/*/stat).
pub fn children_of(ppid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // fields[0] = state, fields[1] = ppid
        if fields.len() > 1 && fields[1].parse::<i32>() == Ok(ppid) && fields[0] != "Z" {
            out.push(pid);
        }
    }
    out.sort_unstable();
    out
}

/// Whether a process with this pid exists (zombies count as gone).
pub fn process_exists(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}
