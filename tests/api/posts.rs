//! `Connection_Post` from any thread: every accepted task is called exactly once on the loop thread (run in posting order, or cancelled at Destroy), the loop wakes for it, the queue is bounded, and a post racing Destroy is safe.
//!
//! * 4 threads x 1,000 posts: each runs once, on the loop thread, with
//!   `cancelled` = 0, and the posts of one thread run in the order it made
//!   them; the task may call loop-thread functions through its `conn`.
//! * A post wakes a loop blocked in `Connection_Process` with no deadline,
//!   and makes `Connection_Fd` readable for an embedding loop.
//! * `max_pending_posts` bounds the queue: beyond it
//!   CONNECTION_ERR_QUEUE_FULL and nothing queued.
//! * Threads posting in a loop while the loop thread destroys: no crash,
//!   each accepted post's task is called exactly once (run or cancelled),
//!   each argument is freed once, and every post after Destroy returns
//!   CONNECTION_ERR_NOT_INITIALIZED.
#![allow(clippy::field_reassign_with_default)] // mirrors the C usage: Default, then set fields

use std::os::raw::{c_int, c_void};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use connection_core::*;

fn start_with(max_pending_posts: u32) -> Connection {
    let mut conn = Connection {
        _private_core: null_mut(),
        _private_stop_fd: -1,
        _private_magic: 0,
    };
    let mut cfg = ConnectionConfig::default();
    cfg.host = c"127.0.0.1".as_ptr();
    cfg.port = 0;
    cfg.max_pending_posts = max_pending_posts;
    // SAFETY: valid pointers to live locals.
    assert_eq!(
        unsafe { Connection_InitWith(&mut conn, &cfg) },
        CONNECTION_OK
    );
    conn
}

/// A handle copied to a posting thread (as `Connection copy = conn;` in C).
struct Carried(Connection);
// SAFETY: `Connection_Post` is documented callable from any thread with
// any copy of the handle; the posting threads do nothing else with it.
unsafe impl Send for Carried {}

impl Carried {
    fn of(conn: &Connection) -> Carried {
        // SAFETY: a plain read of an initialised struct; copies are allowed.
        Carried(unsafe { std::ptr::read(conn) })
    }
    fn take(self) -> Connection {
        self.0
    }
}

/// What each task records when it is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Call {
    poster: usize,
    seq: usize,
    cancelled: bool,
    thread: ThreadId,
    /// `Connection_Port(conn)` from inside the task (a loop-thread call).
    port: c_int,
}

#[derive(Default)]
struct Log {
    calls: Mutex<Vec<Call>>,
    freed: AtomicUsize,
}

/// A task's argument: boxed per post, freed by the task.
struct Arg {
    poster: usize,
    seq: usize,
    log: Arc<Log>,
}

impl Drop for Arg {
    fn drop(&mut self) {
        self.log.freed.fetch_add(1, Ordering::SeqCst);
    }
}

fn arg(poster: usize, seq: usize, log: &Arc<Log>) -> *mut c_void {
    Box::into_raw(Box::new(Arg {
        poster,
        seq,
        log: Arc::clone(log),
    }))
    .cast()
}

unsafe extern "C" fn record(conn: *mut Connection, arg: *mut c_void, cancelled: c_int) {
    // SAFETY: every post in this file passes a Box<Arg>; this is its one call.
    let arg = unsafe { Box::from_raw(arg.cast::<Arg>()) };
    // SAFETY: the library passes a Connection valid for the call.
    let port = unsafe { Connection_Port(conn) };
    arg.log.calls.lock().unwrap().push(Call {
        poster: arg.poster,
        seq: arg.seq,
        cancelled: cancelled != 0,
        thread: thread::current().id(),
        port,
    });
}

/// Posts until accepted (retrying while the queue is full); false once
/// the Connection is gone.
fn post(conn: &Connection, poster: usize, seq: usize, log: &Arc<Log>) -> bool {
    let a = arg(poster, seq, log);
    loop {
        // SAFETY: `conn` is a copy of a handle; Post is any-thread.
        match unsafe { Connection_Post(conn, Some(record), a) } {
            CONNECTION_OK => return true,
            CONNECTION_ERR_QUEUE_FULL => thread::yield_now(),
            CONNECTION_ERR_NOT_INITIALIZED => {
                // Refused: the argument is still ours.
                // SAFETY: made by `arg` above and never handed over.
                drop(unsafe { Box::from_raw(a.cast::<Arg>()) });
                return false;
            }
            rc => panic!("Connection_Post: {rc}"),
        }
    }
}

fn calls(log: &Log) -> Vec<Call> {
    log.calls.lock().unwrap().clone()
}

#[test]
fn posts_from_four_threads_run_once_each_in_order_on_the_loop_thread() {
    const THREADS: usize = 4;
    const POSTS: usize = 1000;
    let mut conn = start_with(65_536);
    // SAFETY: live connection, on its loop thread.
    let port = unsafe { Connection_Port(&conn) };
    let log = Arc::new(Log::default());
    let posters: Vec<_> = (0..THREADS)
        .map(|t| {
            let (carried, log) = (Carried::of(&conn), Arc::clone(&log));
            thread::spawn(move || {
                let conn = carried.take();
                for seq in 0..POSTS {
                    assert!(post(&conn, t, seq, &log), "refused while alive");
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.calls.lock().unwrap().len() < THREADS * POSTS {
        assert!(Instant::now() < deadline, "posts did not all run in 10 s");
        // SAFETY: live connection, on its loop thread.
        assert_eq!(
            unsafe { Connection_ProcessTimeout(&mut conn, 100) },
            CONNECTION_OK
        );
    }
    for p in posters {
        p.join().unwrap();
    }
    let got = calls(&log);
    assert_eq!(got.len(), THREADS * POSTS, "a task ran twice");
    let me = thread::current().id();
    let mut next = [0usize; THREADS];
    for c in &got {
        assert_eq!(c.thread, me, "a task ran off the loop thread: {c:?}");
        assert!(!c.cancelled, "cancelled while the loop lives: {c:?}");
        assert_eq!(c.port, port, "Connection_Port from the task");
        assert_eq!(c.seq, next[c.poster], "thread {}'s order", c.poster);
        next[c.poster] += 1;
    }
    assert_eq!(log.freed.load(Ordering::SeqCst), THREADS * POSTS);
    // SAFETY: live connection, on its loop thread.
    unsafe { Connection_Destroy(&mut conn) };
}

#[test]
fn a_post_wakes_a_loop_that_has_nothing_to_wait_for() {
    let mut conn = start_with(65_536);
    let log = Arc::new(Log::default());
    // SAFETY: live connection, on its loop thread.
    let epfd = unsafe { Connection_Fd(&conn) };
    let mut pfd = libc::pollfd {
        fd: epfd,
        events: libc::POLLIN,
        revents: 0,
    };
    // Settle: nothing pending, nothing to wait for.
    // SAFETY: as above; `pfd` is a live pollfd.
    unsafe {
        assert_eq!(Connection_ProcessTimeout(&mut conn, 0), CONNECTION_OK);
        assert_eq!(libc::poll(&mut pfd, 1, 0), 0, "epoll fd readable at rest");
    }
    let (carried, log2) = (Carried::of(&conn), Arc::clone(&log));
    let poster = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        assert!(post(&carried.take(), 0, 0, &log2));
    });
    // For an embedding loop: the epoll fd turns readable.
    // SAFETY: a live pollfd.
    assert_eq!(unsafe { libc::poll(&mut pfd, 1, 5000) }, 1, "no wake-up");
    // The core's own wait returns too (a 5 s budget; a missed wake-up
    // would use it all).
    let started = Instant::now();
    while calls(&log).is_empty() {
        // SAFETY: live connection, on its loop thread.
        assert_eq!(
            unsafe { Connection_ProcessTimeout(&mut conn, 5000) },
            CONNECTION_OK
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the task waited"
        );
    }
    poster.join().unwrap();
    // SAFETY: live connection, on its loop thread.
    unsafe { Connection_Destroy(&mut conn) };
}

#[test]
fn the_queue_is_bounded_by_max_pending_posts() {
    let mut cfg = ConnectionConfig::default();
    cfg.max_pending_posts = 0;
    let mut refused = Connection {
        _private_core: null_mut(),
        _private_stop_fd: -1,
        _private_magic: 0,
    };
    // SAFETY: valid pointers to live locals.
    assert_eq!(
        unsafe { Connection_InitWith(&mut refused, &cfg) },
        CONNECTION_ERR_INVALID
    );

    let mut conn = start_with(4);
    let log = Arc::new(Log::default());
    for seq in 0..4 {
        assert!(post(&conn, 0, seq, &log));
    }
    let a = arg(0, 4, &log);
    // SAFETY: live connection; `a` is a valid argument.
    assert_eq!(
        unsafe { Connection_Post(&conn, Some(record), a) },
        CONNECTION_ERR_QUEUE_FULL
    );
    // Refused: not called, still ours.
    // SAFETY: made by `arg`, never handed over.
    drop(unsafe { Box::from_raw(a.cast::<Arg>()) });
    // SAFETY: live connection, on its loop thread.
    assert_eq!(
        unsafe { Connection_ProcessTimeout(&mut conn, 0) },
        CONNECTION_OK
    );
    assert_eq!(calls(&log).len(), 4);
    assert!(post(&conn, 0, 5, &log), "room again once the loop ran them");
    // SAFETY: NULL arguments are refused.
    unsafe {
        assert_eq!(
            Connection_Post(std::ptr::null(), Some(record), null_mut()),
            CONNECTION_ERR_NULL
        );
        assert_eq!(
            Connection_Post(&conn, None, null_mut()),
            CONNECTION_ERR_NULL
        );
    }
    // SAFETY: live connection, on its loop thread.
    unsafe { Connection_Destroy(&mut conn) };
    let got = calls(&log);
    assert_eq!(got.len(), 5);
    assert!(
        got[4].cancelled,
        "the last post never ran: cancelled at Destroy"
    );
    assert_eq!(got[4].port, CONNECTION_ERR_NOT_INITIALIZED);
    assert_eq!(log.freed.load(Ordering::SeqCst), 6);
}

#[test]
fn posts_racing_destroy_are_each_called_exactly_once() {
    const ROUNDS: usize = 20;
    const POSTERS: usize = 3;
    let mut cancelled_in_all = 0;
    for round in 0..ROUNDS {
        let mut conn = start_with(1024);
        let log = Arc::new(Log::default());
        let accepted = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicBool::new(false));
        let posters: Vec<_> = (0..POSTERS)
            .map(|t| {
                let carried = Carried::of(&conn);
                let (log, accepted, started) = (
                    Arc::clone(&log),
                    Arc::clone(&accepted),
                    Arc::clone(&started),
                );
                thread::spawn(move || {
                    let conn = carried.take();
                    let mut seq = 0;
                    while post(&conn, t, seq, &log) {
                        accepted.fetch_add(1, Ordering::SeqCst);
                        started.store(true, Ordering::SeqCst);
                        seq += 1;
                    }
                    // Gone for good: every later post is refused too.
                    for _ in 0..10 {
                        assert!(!post(&conn, t, seq, &log));
                    }
                })
            })
            .collect();
        // Let some run, then destroy while the posters are still at it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !started.load(Ordering::SeqCst) || calls(&log).is_empty() {
            assert!(Instant::now() < deadline, "round {round}: nothing ran");
            // SAFETY: live connection, on its loop thread.
            unsafe { Connection_ProcessTimeout(&mut conn, 1) };
        }
        // SAFETY: live connection, on its loop thread.
        unsafe { Connection_Destroy(&mut conn) };
        for p in posters {
            p.join().unwrap();
        }
        let got = calls(&log);
        let n = accepted.load(Ordering::SeqCst);
        assert_eq!(got.len(), n, "round {round}: calls vs accepted posts");
        let mut seen = std::collections::HashSet::new();
        for c in &got {
            assert!(
                seen.insert((c.poster, c.seq)),
                "round {round}: twice: {c:?}"
            );
        }
        let cancelled = got.iter().filter(|c| c.cancelled).count();
        cancelled_in_all += cancelled;
        assert!(
            got.iter().filter(|c| !c.cancelled).count() > 0,
            "round {round}: none ran"
        );
        // Cancelled ones come after every run one (Destroy ends the runs).
        assert!(got[got.len() - cancelled..].iter().all(|c| c.cancelled));
        // Every argument freed once: the accepted ones by their task, the
        // refused ones by their poster (one per poster, plus 10 each).
        let refused = POSTERS * 11;
        assert_eq!(log.freed.load(Ordering::SeqCst), n + refused);
    }
    // The posters keep the queue busy: Destroy finds posts waiting (else
    // this test would not have raced anything).
    assert!(
        cancelled_in_all > 0,
        "no round destroyed with posts pending"
    );
}
