//! Application timers fire on the loop thread in deadline order and never early, cancel calls the task once with cancelled=1, 100,000 timers cost O(log n) each, other threads are refused, Destroy calls every pending post and timer exactly once as cancelled, and Connection_NextTimeout follows timers and posts.
//!
//! * Timers fire earliest deadline first (ties in the order added), each
//!   no earlier than its delay, from `Connection_Process` itself (its wait
//!   ends at the earliest timer).
//! * `Connection_CancelTimer` calls the task at once with `cancelled` = 1
//!   and never again; a second cancel, or a cancel after it fired, returns
//!   CONNECTION_ERR_NO_TIMER. A cancel from inside a task keeps the outer
//!   task's "in a callback" mark (Process from it is still BUSY).
//! * 100,000 timers added and cancelled in scrambled order finish in well
//!   under the bound an O(n) cancel would need (the heap's step count is
//!   checked by the unit test in `src/reactor/app_timers.rs`).
//! * AddTimer, CancelTimer and NextTimeout from another thread return
//!   CONNECTION_ERR_WRONG_THREAD and call nothing.
//! * Destroy with 1,000 pending posts and 1,000 pending timers calls each
//!   task exactly once with `cancelled` = 1 and frees each argument once;
//!   a cancelled task's calls through its `conn` are refused.
//! * `Connection_NextTimeout`: -1 on a fresh loop; an application timer's
//!   delay (never more); 0 once a task is posted; -1 again when the timer
//!   is cancelled. (0 for connections left over for the next turn: the
//!   unit test in `src/reactor/event_loop.rs`.)
#![allow(clippy::field_reassign_with_default)] // mirrors the C usage: Default, then set fields

use std::os::raw::{c_int, c_void};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use connection_core::*;

fn start() -> Connection {
    let mut conn = Connection {
        _private_core: null_mut(),
        _private_stop_fd: -1,
        _private_magic: 0,
    };
    let mut cfg = ConnectionConfig::default();
    cfg.host = c"127.0.0.1".as_ptr();
    cfg.port = 0;
    // SAFETY: valid pointers to live locals.
    assert_eq!(
        unsafe { Connection_InitWith(&mut conn, &cfg) },
        CONNECTION_OK
    );
    conn
}

/// What a task saw.
#[derive(Clone, Debug)]
struct Fired {
    name: usize,
    cancelled: bool,
    /// Time since the timer was added.
    after: Duration,
    /// What calls through `conn` returned inside the task.
    process_rc: c_int,
}

#[derive(Default)]
struct Log {
    fired: Mutex<Vec<Fired>>,
    freed: AtomicUsize,
}

struct Arg {
    name: usize,
    added: Instant,
    log: Arc<Log>,
    /// A timer to cancel from inside this task.
    cancel: Option<u64>,
}

impl Drop for Arg {
    fn drop(&mut self) {
        self.log.freed.fetch_add(1, Ordering::SeqCst);
    }
}

fn arg(name: usize, log: &Arc<Log>) -> *mut c_void {
    arg_cancelling(name, log, None)
}

fn arg_cancelling(name: usize, log: &Arc<Log>, cancel: Option<u64>) -> *mut c_void {
    Box::into_raw(Box::new(Arg {
        name,
        added: Instant::now(),
        log: Arc::clone(log),
        cancel,
    }))
    .cast()
}

unsafe extern "C" fn record(conn: *mut Connection, arg: *mut c_void, cancelled: c_int) {
    // SAFETY: every task here gets a Box<Arg>; this is its one call.
    let arg = unsafe { Box::from_raw(arg.cast::<Arg>()) };
    let after = arg.added.elapsed();
    if let Some(id) = arg.cancel {
        // SAFETY: the Connection the library passed, on the loop thread.
        assert_eq!(unsafe { Connection_CancelTimer(conn, id) }, CONNECTION_OK);
    }
    // From a task: a re-entrant Process is refused (BUSY) while the loop
    // lives, NOT_INITIALIZED once it is being destroyed.
    // SAFETY: as above.
    let process_rc = unsafe { Connection_ProcessTimeout(conn, 0) };
    arg.log.fired.lock().unwrap().push(Fired {
        name: arg.name,
        cancelled: cancelled != 0,
        after,
        process_rc,
    });
}

fn add(conn: &mut Connection, delay_ms: i64, a: *mut c_void) -> u64 {
    let mut id = 0;
    // SAFETY: live connection on its loop thread; valid out-pointer.
    let rc = unsafe { Connection_AddTimer(conn, delay_ms, Some(record), a, &mut id) };
    assert_eq!(rc, CONNECTION_OK, "AddTimer");
    assert_ne!(id, 0);
    id
}

fn fired(log: &Log) -> Vec<Fired> {
    log.fired.lock().unwrap().clone()
}

#[test]
fn timers_fire_in_deadline_order_never_early() {
    let mut conn = start();
    let log = Arc::new(Log::default());
    let delays = [(0, 120), (1, 40), (2, 80), (3, 40), (4, 0)];
    for (name, delay) in delays {
        add(&mut conn, delay, arg(name, &log));
    }
    let started = Instant::now();
    while fired(&log).len() < delays.len() {
        assert!(started.elapsed() < Duration::from_secs(5), "timers late");
        // The core waits until the earliest timer by itself: with no
        // deadline of its own this would sleep the full 10 s.
        // SAFETY: live connection, on its loop thread.
        assert_eq!(
            unsafe { Connection_ProcessTimeout(&mut conn, 10_000) },
            CONNECTION_OK
        );
    }
    let got = fired(&log);
    let order: Vec<usize> = got.iter().map(|f| f.name).collect();
    assert_eq!(order, [4, 1, 3, 2, 0], "deadline order, ties as added");
    for f in &got {
        let delay = delays.iter().find(|d| d.0 == f.name).unwrap().1;
        assert!(!f.cancelled);
        assert!(
            f.after >= Duration::from_millis(delay as u64),
            "timer {} ({delay} ms) fired early, after {:?}",
            f.name,
            f.after
        );
        assert!(
            f.after < Duration::from_millis(delay as u64 + 500),
            "timer {} ({delay} ms) fired after {:?}",
            f.name,
            f.after
        );
        assert_eq!(f.process_rc, CONNECTION_ERR_BUSY, "Process from a task");
    }
    assert_eq!(log.freed.load(Ordering::SeqCst), delays.len());
    let mut id = 0;
    // SAFETY: live connection; argument checks.
    unsafe {
        assert_eq!(
            Connection_AddTimer(&mut conn, -1, Some(record), null_mut(), &mut id),
            CONNECTION_ERR_INVALID
        );
        assert_eq!(
            Connection_AddTimer(&mut conn, 1, None, null_mut(), &mut id),
            CONNECTION_ERR_NULL
        );
        assert_eq!(
            Connection_AddTimer(&mut conn, 1, Some(record), null_mut(), null_mut()),
            CONNECTION_ERR_NULL
        );
        Connection_Destroy(&mut conn);
    }
}

#[test]
fn cancel_calls_the_task_once_as_cancelled_and_never_fires_it() {
    let mut conn = start();
    let log = Arc::new(Log::default());
    let a = add(&mut conn, 30, arg(1, &log));
    let b = add(&mut conn, 60, arg(2, &log));
    // SAFETY: live connection, on its loop thread.
    unsafe {
        assert_eq!(Connection_CancelTimer(&mut conn, a), CONNECTION_OK);
        // Called before CancelTimer returned, outside any callback.
        let got = fired(&log);
        assert_eq!(got.len(), 1);
        assert!(got[0].cancelled && got[0].name == 1);
        assert_eq!(got[0].process_rc, CONNECTION_ERR_BUSY);
        assert_eq!(
            Connection_CancelTimer(&mut conn, a),
            CONNECTION_ERR_NO_TIMER
        );
        assert_eq!(
            Connection_CancelTimer(&mut conn, 0),
            CONNECTION_ERR_NO_TIMER
        );
    }
    // Timer 3 cancels timer 4 from inside its task; timer 4 would fire
    // right after it.
    let d = add(&mut conn, 500, arg(4, &log));
    add(&mut conn, 70, arg_cancelling(3, &log, Some(d)));
    let started = Instant::now();
    while fired(&log).len() < 4 {
        assert!(started.elapsed() < Duration::from_secs(5), "timers late");
        // SAFETY: live connection, on its loop thread.
        unsafe { Connection_ProcessTimeout(&mut conn, 1000) };
    }
    // Long enough for cancelled timers to have fired, had they stayed.
    thread::sleep(Duration::from_millis(40));
    // SAFETY: as above.
    unsafe { Connection_ProcessTimeout(&mut conn, 0) };
    let got = fired(&log);
    let seen: Vec<(usize, bool)> = got.iter().map(|f| (f.name, f.cancelled)).collect();
    assert_eq!(seen, [(1, true), (2, false), (4, true), (3, false)]);
    // The nested cancel kept the outer task "in a callback".
    assert_eq!(got[3].process_rc, CONNECTION_ERR_BUSY);
    // SAFETY: live connection, on its loop thread.
    unsafe {
        assert_eq!(
            Connection_CancelTimer(&mut conn, b),
            CONNECTION_ERR_NO_TIMER
        );
        Connection_Destroy(&mut conn);
    }
    assert_eq!(fired(&log).len(), 4, "Destroy found nothing pending");
    assert_eq!(log.freed.load(Ordering::SeqCst), 4);
}

unsafe extern "C" fn count(_conn: *mut Connection, arg: *mut c_void, cancelled: c_int) {
    // SAFETY: `arg` is the test's counter pair, alive until Destroy returns.
    let counts = unsafe { &*(arg as *const [AtomicUsize; 2]) };
    counts[cancelled as usize].fetch_add(1, Ordering::Relaxed);
}

#[test]
fn a_hundred_thousand_timers_are_added_and_cancelled_quickly() {
    const N: u64 = 100_000;
    let mut conn = start();
    let counts = [AtomicUsize::new(0), AtomicUsize::new(0)];
    let arg = &counts as *const _ as *mut c_void;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(N as usize);
    for i in 0..N {
        let delay = 1_000_000 + ((i * 7919) % N) as i64; // scrambled deadlines
        let mut id = 0;
        // SAFETY: live connection on its loop thread; `counts` outlives it.
        let rc = unsafe { Connection_AddTimer(&mut conn, delay, Some(count), arg, &mut id) };
        assert_eq!(rc, CONNECTION_OK);
        ids.push(id);
    }
    let mut next = -1;
    // SAFETY: live connection, on its loop thread.
    unsafe { Connection_NextTimeout(&conn, &mut next) };
    assert!((999_000..=1_000_001).contains(&next), "NextTimeout {next}");
    for k in 0..N {
        let id = ids[((k * 104_729) % N) as usize];
        // SAFETY: as above.
        assert_eq!(
            unsafe { Connection_CancelTimer(&mut conn, id) },
            CONNECTION_OK
        );
    }
    let took = started.elapsed();
    assert_eq!(counts[1].load(Ordering::Relaxed), N as usize);
    assert_eq!(counts[0].load(Ordering::Relaxed), 0);
    // O(log n) each takes a few tens of ms here; an O(n) scan per cancel
    // (5e9 steps) would take far longer than this generous bound.
    assert!(
        took < Duration::from_secs(5),
        "100,000 timers took {took:?}"
    );
    // SAFETY: as above.
    unsafe {
        Connection_NextTimeout(&conn, &mut next);
        assert_eq!(next, -1, "no deadline left");
        Connection_Destroy(&mut conn);
    }
    assert_eq!(counts[1].load(Ordering::Relaxed), N as usize);
}

#[test]
fn loop_only_calls_from_another_thread_are_refused() {
    struct Carried(Connection, u64);
    // SAFETY: carried to another thread to check that it is refused there.
    unsafe impl Send for Carried {}
    let mut conn = start();
    let log = Arc::new(Log::default());
    let id = add(&mut conn, 60_000, arg(1, &log));
    // SAFETY: a plain copy of the handle.
    let carried = Carried(unsafe { std::ptr::read(&conn) }, id);
    let log2 = Arc::clone(&log);
    thread::spawn(move || {
        let whole = carried; // moves the whole (Send) wrapper in
        let Carried(mut conn, id) = whole;
        let mut out = 0;
        let mut ms = 0;
        let a = arg(2, &log2);
        // SAFETY: each call is refused before it touches the loop.
        unsafe {
            assert_eq!(
                Connection_AddTimer(&mut conn, 1, Some(record), a, &mut out),
                CONNECTION_ERR_WRONG_THREAD
            );
            assert_eq!(out, 0, "id written on refusal");
            assert_eq!(
                Connection_CancelTimer(&mut conn, id),
                CONNECTION_ERR_WRONG_THREAD
            );
            assert_eq!(
                Connection_NextTimeout(&conn, &mut ms),
                CONNECTION_ERR_WRONG_THREAD
            );
            // Refused: still ours.
            drop(Box::from_raw(a.cast::<Arg>()));
        }
    })
    .join()
    .unwrap();
    assert!(fired(&log).is_empty(), "a refused call ran a task");
    // SAFETY: live connection, on its loop thread.
    unsafe {
        assert_eq!(Connection_CancelTimer(&mut conn, id), CONNECTION_OK);
        Connection_Destroy(&mut conn);
    }
    assert_eq!(log.freed.load(Ordering::SeqCst), 2);
}

#[test]
fn destroy_calls_every_pending_post_and_timer_once_as_cancelled() {
    const EACH: usize = 1000;
    let mut conn = start();
    let log = Arc::new(Log::default());
    for i in 0..EACH {
        add(&mut conn, 60_000 + i as i64, arg(i, &log));
    }
    struct Carried(Connection);
    // SAFETY: Post is callable from any thread with any copy of the handle.
    unsafe impl Send for Carried {}
    // SAFETY: a plain copy of the handle.
    let carried = Carried(unsafe { std::ptr::read(&conn) });
    let log2 = Arc::clone(&log);
    thread::spawn(move || {
        let whole = carried; // moves the whole (Send) wrapper in
        let Carried(conn) = whole;
        for i in 0..EACH {
            // SAFETY: a copy of a live handle; Post is any-thread.
            let rc = unsafe { Connection_Post(&conn, Some(record), arg(EACH + i, &log2)) };
            assert_eq!(rc, CONNECTION_OK);
        }
    })
    .join()
    .unwrap();
    assert!(fired(&log).is_empty());
    // SAFETY: live connection, on its loop thread; no Process ran since.
    unsafe { Connection_Destroy(&mut conn) };
    let got = fired(&log);
    assert_eq!(got.len(), 2 * EACH, "each pending task called once");
    let mut names: Vec<usize> = got.iter().map(|f| f.name).collect();
    // Posts first, in posting order; then timers, earliest first.
    let expected: Vec<usize> = (EACH..2 * EACH).chain(0..EACH).collect();
    assert_eq!(names, expected);
    names.dedup();
    assert_eq!(names.len(), 2 * EACH);
    for f in &got {
        assert!(f.cancelled, "{f:?}");
        assert_eq!(f.process_rc, CONNECTION_ERR_NOT_INITIALIZED);
    }
    assert_eq!(log.freed.load(Ordering::SeqCst), 2 * EACH);
    // And a post after Destroy is refused, its task never called.
    // SAFETY: a destroyed handle is refused.
    let a = arg(0, &log);
    assert_eq!(
        unsafe { Connection_Post(&conn, Some(record), a) },
        CONNECTION_ERR_NOT_INITIALIZED
    );
    // SAFETY: refused, so still ours.
    drop(unsafe { Box::from_raw(a.cast::<Arg>()) });
    assert_eq!(fired(&log).len(), 2 * EACH);
}

fn next_timeout(conn: &Connection) -> c_int {
    let mut ms = -2;
    // SAFETY: live connection on its loop thread; valid out-pointer.
    assert_eq!(
        unsafe { Connection_NextTimeout(conn, &mut ms) },
        CONNECTION_OK
    );
    ms
}

unsafe extern "C" fn nothing(_conn: *mut Connection, _arg: *mut c_void, _cancelled: c_int) {}

#[test]
fn next_timeout_follows_timers_and_posts() {
    let mut conn = start();
    assert_eq!(next_timeout(&conn), -1, "fresh loop: no deadline");
    let mut id = 0;
    // SAFETY: live connection on its loop thread.
    unsafe {
        assert_eq!(
            Connection_AddTimer(&mut conn, 300, Some(nothing), null_mut(), &mut id),
            CONNECTION_OK
        );
    }
    let t = next_timeout(&conn);
    assert!((250..=301).contains(&t), "300 ms timer: NextTimeout {t}");
    // SAFETY: as above.
    unsafe {
        assert_eq!(
            Connection_Post(&conn, Some(nothing), null_mut()),
            CONNECTION_OK
        );
    }
    assert_eq!(next_timeout(&conn), 0, "a posted task waits");
    // SAFETY: as above.
    unsafe { assert_eq!(Connection_ProcessTimeout(&mut conn, 0), CONNECTION_OK) };
    let t = next_timeout(&conn);
    assert!((1..=301).contains(&t), "after the post ran: {t}");
    // SAFETY: as above.
    unsafe {
        assert_eq!(Connection_CancelTimer(&mut conn, id), CONNECTION_OK);
        assert_eq!(
            Connection_NextTimeout(&conn, null_mut()),
            CONNECTION_ERR_NULL
        );
        assert_eq!(
            Connection_NextTimeout(std::ptr::null(), &mut id as *mut u64 as *mut c_int),
            CONNECTION_ERR_NULL
        );
    }
    assert_eq!(next_timeout(&conn), -1);
    // SAFETY: as above.
    unsafe { Connection_Destroy(&mut conn) };
}
