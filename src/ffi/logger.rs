//! Logging: the `log` crate's records forwarded to a C callback.
//!
//! With no callback set nothing is printed, unless the environment variable
//! `CONNECTION_LOG=error|warn|info|debug|trace` is set when the first
//! Connection is initialised: then records at that level and above go to
//! stderr. When logging is off, `log::max_level()` is `Off` and every log
//! macro in the library is a single relaxed atomic load: no formatting, no
//! allocation, no lock. Messages are formatted into a stack buffer (longer
//! ones are truncated), so logging never allocates either.

use std::io::Write;
use std::os::raw::{c_char, c_int, c_void};
use std::sync::atomic::{fence, AtomicPtr, AtomicUsize, Ordering};
use std::sync::Once;

use super::error::*;
use super::guard_int;

/// Log levels for `Connection_SetLogger`.
pub const CONNECTION_LOG_OFF: c_int = 0;
pub const CONNECTION_LOG_ERROR: c_int = 1;
pub const CONNECTION_LOG_WARN: c_int = 2;
pub const CONNECTION_LOG_INFO: c_int = 3;
pub const CONNECTION_LOG_DEBUG: c_int = 4;
pub const CONNECTION_LOG_TRACE: c_int = 5;

/// Receives one log record: `level` is a `CONNECTION_LOG_*` value, `target`
/// the module that logged (e.g. "connection_core::core") and `message` the
/// text; both strings are NUL-terminated and valid only during the call.
/// Called on the thread whose library call logs (normally a loop thread).
pub type ConnectionLogFn = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        level: c_int,
        target: *const c_char,
        message: *const c_char,
    ),
>;

/// Where records go: 0 = nowhere, 1 = the C callback, 2 = stderr.
static SINK: AtomicUsize = AtomicUsize::new(0);
static CALLBACK: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
static USER: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
/// A sequence lock over CALLBACK and USER (and the level), so a record
/// never pairs one call's callback with another call's `user`, and two
/// `Connection_SetLogger` calls on two threads never leave a mixed pair:
/// odd while a `Connection_SetLogger` is changing them.
static SEQ: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();
static ENV_CHECK: Once = Once::new();

struct Forwarder;

static FORWARDER: Forwarder = Forwarder;

fn level_code(level: log::Level) -> c_int {
    match level {
        log::Level::Error => CONNECTION_LOG_ERROR,
        log::Level::Warn => CONNECTION_LOG_WARN,
        log::Level::Info => CONNECTION_LOG_INFO,
        log::Level::Debug => CONNECTION_LOG_DEBUG,
        log::Level::Trace => CONNECTION_LOG_TRACE,
    }
}

fn filter_of(level: c_int) -> Option<log::LevelFilter> {
    Some(match level {
        CONNECTION_LOG_OFF => log::LevelFilter::Off,
        CONNECTION_LOG_ERROR => log::LevelFilter::Error,
        CONNECTION_LOG_WARN => log::LevelFilter::Warn,
        CONNECTION_LOG_INFO => log::LevelFilter::Info,
        CONNECTION_LOG_DEBUG => log::LevelFilter::Debug,
        CONNECTION_LOG_TRACE => log::LevelFilter::Trace,
        _ => return None,
    })
}

/// Copies `text` into `buf` NUL-terminated, truncating if needed.
fn c_text<'a>(buf: &'a mut [u8], args: std::fmt::Arguments<'_>) -> &'a [u8] {
    let cap = buf.len() - 1;
    let mut cursor = std::io::Cursor::new(&mut buf[..cap]);
    let _ = cursor.write_fmt(args); // a full buffer just truncates
    let n = cursor.position() as usize;
    // Interior NULs would cut the C string short: replace them.
    for b in &mut buf[..n] {
        if *b == 0 {
            *b = b'?';
        }
    }
    buf[n] = 0;
    &buf[..=n]
}

impl log::Log for Forwarder {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut message = [0u8; 1024];
        let mut target = [0u8; 128];
        let message = c_text(&mut message, *record.args());
        let target = c_text(&mut target, format_args!("{}", record.target()));
        match SINK.load(Ordering::Acquire) {
            1 => {
                let (f, user) = callback_and_user();
                if f.is_null() {
                    return;
                }
                // SAFETY: CALLBACK only ever holds a ConnectionLogFn's
                // non-NULL function pointer, stored by Connection_SetLogger.
                let f: unsafe extern "C" fn(*mut c_void, c_int, *const c_char, *const c_char) =
                    unsafe { std::mem::transmute(f) };
                // SAFETY: the application's callback; both strings are
                // NUL-terminated and live for the call.
                unsafe {
                    f(
                        user,
                        level_code(record.level()),
                        target.as_ptr() as *const c_char,
                        message.as_ptr() as *const c_char,
                    )
                };
            }
            2 => {
                let text = &message[..message.len() - 1];
                let who = &target[..target.len() - 1];
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(b"[connection-core ");
                let _ = err.write_all(record.level().as_str().as_bytes());
                let _ = err.write_all(b" ");
                let _ = err.write_all(who);
                let _ = err.write_all(b"] ");
                let _ = err.write_all(text);
                let _ = err.write_all(b"\n");
            }
            _ => {}
        }
    }

    fn flush(&self) {}
}

/// CALLBACK and USER as one `Connection_SetLogger` call left them.
fn callback_and_user() -> (*mut c_void, *mut c_void) {
    loop {
        let before = SEQ.load(Ordering::Acquire);
        if before & 1 == 0 {
            let pair = (
                CALLBACK.load(Ordering::Relaxed),
                USER.load(Ordering::Relaxed),
            );
            fence(Ordering::Acquire);
            if SEQ.load(Ordering::Relaxed) == before {
                return pair;
            }
        }
        std::hint::spin_loop();
        std::thread::yield_now();
    }
}

/// Runs `f` as the only writer of CALLBACK, USER and the level.
fn write_settings<R>(f: impl FnOnce() -> R) -> R {
    let seq = loop {
        let seq = SEQ.load(Ordering::Relaxed);
        if seq & 1 == 0
            && SEQ
                .compare_exchange_weak(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            break seq;
        }
        std::hint::spin_loop();
        std::thread::yield_now();
    };
    fence(Ordering::Release);
    let result = f();
    SEQ.store(seq + 2, Ordering::Release);
    result
}

/// Installs our logger in the `log` crate (once per process). Returns false
/// if another logger was installed first (a Rust host program).
fn install() -> bool {
    INSTALL.call_once(|| {
        if log::set_logger(&FORWARDER).is_err() {
            SINK.store(usize::MAX, Ordering::Release);
        }
    });
    SINK.load(Ordering::Acquire) != usize::MAX
}

/// Applies `CONNECTION_LOG` from the environment, once, unless a C logger
/// was set first. Called by Connection_InitWith.
pub(crate) fn apply_env() {
    ENV_CHECK.call_once(|| {
        if SINK.load(Ordering::Acquire) != 0 {
            return;
        }
        let Some(value) = std::env::var_os("CONNECTION_LOG") else {
            return;
        };
        let level = match value.to_string_lossy().to_ascii_lowercase().as_str() {
            "error" => log::LevelFilter::Error,
            "warn" => log::LevelFilter::Warn,
            "info" => log::LevelFilter::Info,
            "debug" => log::LevelFilter::Debug,
            "trace" => log::LevelFilter::Trace,
            _ => return,
        };
        if install() {
            SINK.store(2, Ordering::Release);
            log::set_max_level(level);
        }
    });
}

/// Forwards the library's log records at `max_level` (`CONNECTION_LOG_*`)
/// and above to `callback(user, level, target, message)`. NULL `callback`
/// or `CONNECTION_LOG_OFF` turns logging off. Process-wide (it applies to
/// every Connection); `user` is not owned by the library. Returns 0,
/// `CONNECTION_ERR_INVALID` (unknown level) or `CONNECTION_ERR_STATE` (a Rust
/// program linking this library installed its own `log` logger). The
/// callback is called on the thread whose library call logs, always with
/// the `user` given with it; a record being logged on another thread while
/// this runs may still reach the previous callback.
///
/// Thread: any thread (not async-signal-safe).
#[no_mangle]
pub unsafe extern "C" fn Connection_SetLogger(
    callback: ConnectionLogFn,
    user: *mut c_void,
    max_level: c_int,
) -> c_int {
    guard_int(|| {
        let Some(filter) = filter_of(max_level) else {
            return CONNECTION_ERR_INVALID;
        };
        if !install() {
            return CONNECTION_ERR_STATE;
        }
        // Later CONNECTION_LOG settings must not override an explicit choice.
        ENV_CHECK.call_once(|| {});
        write_settings(|| {
            log::set_max_level(log::LevelFilter::Off);
            match callback {
                Some(f) if filter != log::LevelFilter::Off => {
                    USER.store(user, Ordering::Relaxed);
                    CALLBACK.store(f as *mut c_void, Ordering::Relaxed);
                    SINK.store(1, Ordering::Release);
                    log::set_max_level(filter);
                }
                _ => {
                    SINK.store(0, Ordering::Release);
                    CALLBACK.store(std::ptr::null_mut(), Ordering::Relaxed);
                }
            }
        });
        CONNECTION_OK
    })
}

/// The library version, "MAJOR.MINOR.PATCH", the same as
/// `CONNECTION_VERSION_STRING`. Static; never NULL.
///
/// Thread: any thread.
#[no_mangle]
pub extern "C" fn Connection_Version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}
