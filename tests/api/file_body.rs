//! `Response_SendFile*` and the descriptor it is given: with
//! `CONNECTION_FILE_CLOSE` the descriptor is closed exactly once, whatever
//! happens (body completed, HEAD, small file, client gone mid-file, send
//! timeout, `Connection_Destroy` with the file queued, and every error
//! return, a call from another thread included); without it, never (the library's duplicate is closed instead,
//! so the process's descriptor count comes back). A file that shrinks
//! while being sent closes the connection. Driven from memory (`MemoryLoop`:
//! partial writes, EAGAIN, EPIPE on demand).

use std::cell::Cell;
use std::fs::{self, File};
use std::os::fd::IntoRawFd;
use std::os::raw::c_void;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::ptr::null_mut;
use std::sync::Mutex;

use connection_core::harness::MemoryLoop;
use connection_core::reactor::io::Memory;
use connection_core::reactor::slab::Token;
use connection_core::*;

const LEN: usize = 300_000;

/// Descriptor numbers are process-wide: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

thread_local! {
    static FD: Cell<i32> = const { Cell::new(-1) };
    static FLAGS: Cell<u32> = const { Cell::new(CONNECTION_FILE_CLOSE) };
    static RC: Cell<i32> = const { Cell::new(i32::MIN) };
}

fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 253) as u8).collect()
}

struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, len: usize) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "connection-core-file-body-{tag}-{}",
            std::process::id()
        ));
        fs::write(&path, content(len)).unwrap();
        TempFile(path)
    }

    fn open(&self) -> i32 {
        File::open(&self.0).unwrap().into_raw_fd()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD only inspects the descriptor table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

fn fd_count() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

/// After the library closed `fd`: puts a sentinel file at that number, so a
/// second close by the library would show (the sentinel would be gone).
struct Sentinel {
    fd: i32,
    ino: u64,
}

impl Sentinel {
    fn at(fd: i32) -> Sentinel {
        assert!(!is_open(fd), "fd {fd} still open");
        let file = File::open("/proc/self/exe").unwrap();
        let ino = file.metadata().unwrap().ino();
        let raw = file.into_raw_fd();
        if raw != fd {
            // SAFETY: `fd` is free (checked above, and we hold the lock);
            // `raw` is ours.
            unsafe {
                assert_eq!(libc::dup2(raw, fd), fd);
                libc::close(raw);
            }
        }
        Sentinel { fd, ino }
    }

    fn check(self, when: &str) {
        // SAFETY: all-zero is a valid `stat`, and the out pointer is valid.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let rc = unsafe { libc::fstat(self.fd, &mut st) };
        assert!(
            rc == 0 && st.st_ino == self.ino,
            "{when}: fd {} closed a second time",
            self.fd
        );
        // SAFETY: the sentinel descriptor is ours.
        unsafe { libc::close(self.fd) };
    }
}

unsafe extern "C" fn handler(req: *const Request, resp: *mut Response, _user: *mut c_void) {
    // SAFETY: live pointers for the duration of the call.
    unsafe {
        let mut len = 0usize;
        let path = Request_Path(req, &mut len);
        let path = std::slice::from_raw_parts(path as *const u8, len);
        let (fd, flags) = (FD.with(Cell::get), FLAGS.with(Cell::get));
        let rc = match path {
            b"/file" => Response_SendFile(resp, fd, 0, CONNECTION_FILE_TO_END, flags),
            b"/ranged" => Response_SendFileRanged(resp, req, fd, flags),
            b"/beyond" => Response_SendFile(resp, fd, 1, LEN as u64, flags),
            b"/badflags" => Response_SendFile(resp, fd, 0, CONNECTION_FILE_TO_END, flags | 0x80),
            b"/wrongthread" => {
                struct Carried(*mut Response, *const Request);
                // SAFETY: only handed to a thread the library must refuse.
                unsafe impl Send for Carried {}
                let c = Carried(resp, req);
                std::thread::spawn(move || {
                    let c = c;
                    let a = Response_SendFile(c.0, fd, 0, CONNECTION_FILE_TO_END, flags);
                    let b = Response_SendFileRanged(c.0, c.1, fd, 0);
                    assert_eq!(b, CONNECTION_ERR_WRONG_THREAD);
                    a
                })
                .join()
                .unwrap()
            }
            b"/twice" => {
                assert_eq!(Response_Send(resp, b"one".as_ptr().cast(), 3), 0);
                Response_SendFile(resp, fd, 0, CONNECTION_FILE_TO_END, flags)
            }
            _ => panic!("unexpected path"),
        };
        RC.with(|r| r.set(rc));
        if rc != CONNECTION_OK && rc != CONNECTION_ERR_STATE {
            Response_Send(resp, b"fallback".as_ptr().cast(), 8);
        }
    }
}

struct Harness {
    ml: MemoryLoop,
    memory: Memory,
    token: Token,
    fd: i32,
}

impl Harness {
    fn new(send_cap: usize) -> Harness {
        let memory = Memory::default();
        let limits = config::Limits {
            send_timeout_ms: 1000,
            ..config::Limits::default()
        };
        let ml = MemoryLoop::new(limits, memory.clone());
        ml.set_handlers(Some(handler), None);
        let (token, fd) = ml.attach();
        memory.sockets.borrow_mut().get_mut(&fd).unwrap().send_cap = send_cap;
        Harness {
            ml,
            memory,
            token,
            fd,
        }
    }

    fn socket<R>(&self, f: impl FnOnce(&mut connection_core::reactor::io::MemorySocket) -> R) -> R {
        f(self.memory.sockets.borrow_mut().get_mut(&self.fd).unwrap())
    }

    fn ask(&self, method: &str, path: &str, file: i32, flags: u32) -> i32 {
        FD.with(|f| f.set(file));
        FLAGS.with(|f| f.set(flags));
        RC.with(|r| r.set(i32::MIN));
        let req = format!("{method} {path} HTTP/1.1\r\nHost: a\r\n\r\n");
        self.socket(|s| s.pending.push_back(req.into_bytes()));
        self.ml.pump(self.token);
        RC.with(Cell::get)
    }

    fn sent(&self) -> Vec<u8> {
        self.socket(|s| s.sent.clone())
    }

    fn pump_out(&self) {
        for _ in 0..100_000 {
            let before = self.sent().len();
            self.ml.pump(self.token);
            if self.sent().len() == before {
                return;
            }
        }
        panic!("output never stopped");
    }
}

fn body_of(sent: &[u8]) -> &[u8] {
    let end = sent
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    &sent[end..]
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn completed_file_is_sent_whole_and_closed_once() {
    let _l = lock();
    let tf = TempFile::new("done", LEN);
    for (path, cap) in [("/file", 7_777), ("/ranged", 0)] {
        let h = Harness::new(cap);
        let fd = tf.open();
        h.socket(|s| s.window = Some(LEN / 2));
        assert_eq!(h.ask("GET", path, fd, CONNECTION_FILE_CLOSE), CONNECTION_OK);
        h.pump_out();
        assert!(is_open(fd), "{path}: closed before the file was sent");
        h.socket(|s| s.window = None);
        h.pump_out();
        assert!(
            body_of(&h.sent()) == content(LEN),
            "{path}: the file, byte for byte"
        );
        let s = Sentinel::at(fd);
        assert!(h.ml.is_open(h.token), "keep-alive");
        drop(h);
        s.check(path);
    }
}

#[test]
fn head_and_small_files_close_at_once() {
    let _l = lock();
    let small = TempFile::new("small", 1000);
    let big = TempFile::new("head", LEN);
    let h = Harness::new(0);
    for (method, file) in [("HEAD", &big), ("GET", &small), ("HEAD", &small)] {
        let fd = file.open();
        assert_eq!(
            h.ask(method, "/file", fd, CONNECTION_FILE_CLOSE),
            CONNECTION_OK
        );
        let s = Sentinel::at(fd);
        h.pump_out();
        s.check(method);
    }
    let sent = h.sent();
    let want = content(1000);
    assert!(
        sent.windows(want.len()).any(|w| w == want),
        "the small file"
    );
    drop(h);
}

#[test]
fn client_gone_timeout_and_destroy_close_once() {
    let _l = lock();
    let tf = TempFile::new("gone", LEN);
    // The client resets mid-file.
    let h = Harness::new(10_000);
    let fd = tf.open();
    h.socket(|s| s.window = Some(100_000));
    assert_eq!(
        h.ask("GET", "/file", fd, CONNECTION_FILE_CLOSE),
        CONNECTION_OK
    );
    h.pump_out();
    assert!(is_open(fd));
    h.socket(|s| {
        s.window = None;
        s.closed = true;
    });
    h.ml.pump(h.token);
    assert!(!h.ml.is_open(h.token));
    let s = Sentinel::at(fd);
    drop(h);
    s.check("client gone");

    // The client stops reading: the send timeout.
    let h = Harness::new(10_000);
    let fd = tf.open();
    h.socket(|s| s.window = Some(50_000));
    assert_eq!(
        h.ask("GET", "/file", fd, CONNECTION_FILE_CLOSE),
        CONNECTION_OK
    );
    h.ml.advance_clock(999);
    assert!(is_open(fd));
    h.ml.advance_clock(2);
    assert!(!h.ml.is_open(h.token), "send timeout");
    let s = Sentinel::at(fd);
    drop(h);
    s.check("send timeout");

    // Destroy with the file queued.
    let h = Harness::new(10_000);
    let fd = tf.open();
    h.socket(|s| s.blocked_sends = usize::MAX);
    assert_eq!(
        h.ask("GET", "/file", fd, CONNECTION_FILE_CLOSE),
        CONNECTION_OK
    );
    assert!(is_open(fd), "queued");
    drop(h);
    Sentinel::at(fd).check("Destroy");
}

#[test]
fn every_error_return_closes_once_with_the_flag() {
    let _l = lock();
    let tf = TempFile::new("errors", LEN);
    let h = Harness::new(0);
    let dir = File::open(std::env::temp_dir()).unwrap().into_raw_fd();
    for (path, fd, want) in [
        ("/beyond", tf.open(), CONNECTION_ERR_FILE_RANGE),
        ("/file", dir, CONNECTION_ERR_NOT_FILE),
        ("/twice", tf.open(), CONNECTION_ERR_STATE),
        ("/badflags", tf.open(), CONNECTION_ERR_INVALID),
        ("/wrongthread", tf.open(), CONNECTION_ERR_WRONG_THREAD),
    ] {
        assert_eq!(
            h.ask("GET", path, fd, CONNECTION_FILE_CLOSE),
            want,
            "{path}"
        );
        let s = Sentinel::at(fd);
        h.pump_out();
        s.check(path);
    }
    // The application answered otherwise after each error.
    assert_eq!(
        String::from_utf8_lossy(&h.sent())
            .matches("fallback")
            .count(),
        4
    );
    drop(h);
    // No response at all, or the wrong thread.
    let fd = tf.open();
    // SAFETY: NULL handles are documented to be refused.
    unsafe {
        assert_eq!(
            Response_SendFile(null_mut(), fd, 0, 0, CONNECTION_FILE_CLOSE),
            CONNECTION_ERR_NULL
        );
    }
    Sentinel::at(fd).check("NULL response");
    let fd = tf.open();
    // SAFETY: as above.
    unsafe {
        assert_eq!(
            Response_SendFileRanged(null_mut(), std::ptr::null(), fd, CONNECTION_FILE_CLOSE),
            CONNECTION_ERR_NULL
        );
    }
    Sentinel::at(fd).check("NULL request");
}

#[test]
fn without_the_flag_the_descriptor_stays_the_callers() {
    let _l = lock();
    let tf = TempFile::new("kept", LEN);
    let fd = tf.open();
    let before = fd_count();
    let h = Harness::new(10_000);
    for path in ["/file", "/ranged"] {
        assert_eq!(h.ask("GET", path, fd, 0), CONNECTION_OK);
        h.pump_out();
    }
    assert_eq!(h.ask("GET", "/beyond", fd, 0), CONNECTION_ERR_FILE_RANGE);
    h.pump_out();
    // A file still queued at Destroy.
    h.socket(|s| s.blocked_sends = usize::MAX);
    assert_eq!(h.ask("GET", "/file", fd, 0), CONNECTION_OK);
    drop(h);
    assert!(is_open(fd), "the caller's descriptor was closed");
    // The harness's own socket is gone too: back below the count taken
    // with it open, so no duplicate is left behind.
    assert!(fd_count() < before + 1, "a duplicate was leaked");
    // SAFETY: ours.
    unsafe { libc::close(fd) };
}

#[test]
fn a_file_shorter_than_announced_closes_the_connection() {
    let _l = lock();
    let tf = TempFile::new("shrink", LEN);
    let h = Harness::new(10_000);
    let fd = tf.open();
    h.socket(|s| s.window = Some(50_000));
    assert_eq!(
        h.ask("GET", "/file", fd, CONNECTION_FILE_CLOSE),
        CONNECTION_OK
    );
    h.pump_out();
    fs::OpenOptions::new()
        .write(true)
        .open(&tf.0)
        .unwrap()
        .set_len(60_000)
        .unwrap();
    h.socket(|s| s.window = None);
    h.pump_out();
    assert!(!h.ml.is_open(h.token), "the response cannot be completed");
    assert_eq!(h.ml.stats().closed_error, 1);
    assert_eq!(
        h.sent().len() - (h.sent().len() - body_of(&h.sent()).len()),
        60_000
    );
    let s = Sentinel::at(fd);
    drop(h);
    s.check("truncated");
}
