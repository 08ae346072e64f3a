//! Building with a nested make/cargo: the repository paths, the shared build
//! lock, the environment cleaning, and the example programs built once per
//! test binary.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use super::process::{describe_status, run, tail};

/// How long a nested build (`make -C c-examples`, `cargo build --release`,
/// `make install`) may take.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cargo target dir the tests build in, so a nested cargo never waits on
/// the lock held by the outer `cargo test`.
pub fn ctest_target() -> PathBuf {
    repo_root().join("target").join("ctest")
}

/// The cargo the outer `cargo test` runs (it sets $CARGO), else `cargo`.
pub fn cargo_bin() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Removes what the outer cargo/make puts in the environment that would
/// change a nested make or cargo run (jobserver fds, target dir).
pub fn clean_build_env(cmd: &mut Command) -> &mut Command {
    for var in [
        "MAKEFLAGS",
        "MFLAGS",
        "MAKELEVEL",
        "CARGO_MAKEFLAGS",
        "CARGO_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// `make -C DIR CARGO_TARGET_DIR=target/ctest` from the repository root,
/// with a clean build environment; add targets and variables with `.args`.
pub fn make_in(dir: &Path) -> Command {
    let mut cmd = Command::new("make");
    clean_build_env(&mut cmd)
        .arg("-C")
        .arg(dir)
        .arg(format!("CARGO_TARGET_DIR={}", ctest_target().display()))
        .current_dir(repo_root());
    cmd
}

/// `make -C c-examples CARGO_TARGET_DIR=target/ctest ARGS...`.
pub fn make_examples(args: &[&str]) -> Command {
    let mut cmd = make_in(&repo_root().join("c-examples"));
    cmd.args(args);
    cmd
}

/// The exclusive flock on `target/ctest-build.lock`: whoever holds it may
/// build in target/ctest and read the build's outputs without another test
/// process rebuilding them underneath. Released on drop.
pub struct BuildLock {
    _file: File,
}

impl BuildLock {
    /// Waits (up to `BUILD_TIMEOUT`) for the lock; panics on failure.
    pub fn acquire() -> BuildLock {
        Self::try_acquire().unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_acquire() -> Result<BuildLock, String> {
        let target = repo_root().join("target");
        fs::create_dir_all(&target).map_err(|e| format!("mkdir {}: {e}", target.display()))?;
        let path = target.join("ctest-build.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("open {}: {e}", path.display()))?;
        let deadline = Instant::now() + BUILD_TIMEOUT;
        loop {
            // SAFETY: flock(2) on an fd we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(BuildLock { _file: file });
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::WouldBlock && err.raw_os_error() != Some(libc::EINTR) {
                return Err(format!("flock {}: {err}", path.display()));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} still locked by another test process after {BUILD_TIMEOUT:?}",
                    path.display()
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Path of `c-examples/server`, built once per test binary (and serialised
/// across test processes by the `BuildLock`), with the other examples and
/// the test server.
pub fn server_binary() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BUILT.get_or_init(build_example) {
        Ok(path) => path,
        Err(msg) => panic!("building the example server failed:\n{msg}"),
    }
}

fn build_example() -> Result<PathBuf, String> {
    let _lock = BuildLock::try_acquire()?;
    let root = repo_root();
    let log_path = root.join("target").join("ctest-build.log");
    let out = run(&mut make_examples(&["all", "test_server"]), BUILD_TIMEOUT)?;
    let mut output = out.stdout;
    output.extend_from_slice(&out.stderr);
    // The whole log stays on disk for a look after the fact.
    let _ = fs::write(&log_path, &output);
    if !out.status.success() {
        return Err(format!(
            "`make -C c-examples CARGO_TARGET_DIR={} all test_server` failed ({}); log {}:\n{}",
            ctest_target().display(),
            describe_status(out.status),
            log_path.display(),
            tail(&output, 8000)
        ));
    }
    let bin = root.join("c-examples").join("server");
    if !bin.is_file() {
        return Err(format!(
            "make succeeded but {} does not exist:\n{}",
            bin.display(),
            tail(&output, 4000)
        ));
    }
    Ok(bin)
    // The lock is released when it is dropped here.
}

/// Path of `c-examples/test_server`, the example server plus the
/// instrumentation some tests inspect (tests/fixtures/test_server.c), built
/// with the examples.
pub fn test_server_binary() -> PathBuf {
    example("test_server")
}

/// The path of a program that `make -C c-examples all test_server` builds
/// (building it, with the example server, if needed).
pub fn example(name: &str) -> PathBuf {
    let path = server_binary().with_file_name(name);
    assert!(
        path.is_file(),
        "{} was not built by `make -C c-examples` (is it in the Makefile's all target?)",
        path.display()
    );
    path
}
