//! Work for the loop thread: `Connection_Post` (from any thread), the
//! application's timers (`Connection_AddTimer`, `Connection_CancelTimer`)
//! and `Connection_NextTimeout`, which tells an embedding loop how long it
//! may sleep.

use std::os::raw::{c_int, c_void};

use super::connection::{handle_of, with_live, Connection};
use super::error::*;
use super::guard_int;
use super::registry;
use crate::reactor::posts::{Task, TaskFn};

/// A task run on the loop thread: posted with `Connection_Post` or added
/// as a timer with `Connection_AddTimer`. `conn` is a copy of the
/// Connection's handle, valid for the call (a task may call any
/// loop-thread function through it, and post or add timers again). `arg`
/// is the pointer given with the task. `cancelled` is 0 when the task
/// runs, 1 when it never will (the Connection is being destroyed, or the
/// timer was cancelled): then only release what `arg` holds; every call
/// through `conn` returns `CONNECTION_ERR_NOT_INITIALIZED` during
/// Destroy. Each accepted task is called exactly once, one way or the
/// other, on the loop thread.
pub type ConnectionTask =
    Option<unsafe extern "C" fn(conn: *mut Connection, arg: *mut c_void, cancelled: c_int)>;

/// The reactor's view of a task (same ABI: only the first pointer's
/// pointee type differs, and the reactor passes back the `Connection*`
/// the ffi gave it).
fn task_fn(task: ConnectionTask) -> Option<TaskFn> {
    // SAFETY: same ABI, as said above.
    task.map(|f| unsafe { std::mem::transmute::<_, TaskFn>(f) })
}

/// Queues `task(conn, arg, 0)` to run on the loop thread at the loop's
/// next turn (after the events of the turn in which it is seen; it wakes
/// the loop through its eventfd, so an embedding loop polling
/// `Connection_Fd` wakes too). Tasks run in posting order: two posts from
/// one thread run in the order they were made. A task posted from a task
/// runs at the turn after.
///
/// The queue is bounded by `max_pending_posts` (default 65536), since a
/// stalled loop must not let its posters grow memory without end: beyond
/// it the call returns `CONNECTION_ERR_QUEUE_FULL` and queues nothing
/// (retry later). Nothing is allocated per post.
///
/// If it returns 0, `task` is called exactly once: with `cancelled` = 0
/// when it runs, or with `cancelled` = 1 from `Connection_Destroy` if the
/// loop is destroyed first (so `arg` can always be freed in `task`). On
/// any error `task` is never called and `arg` is still the caller's.
/// Returns 0, `CONNECTION_ERR_NULL` (`conn` or `task` NULL),
/// `CONNECTION_ERR_NOT_INITIALIZED` (never initialised, or destroyed
/// through any copy, also while the Destroy runs) or
/// `CONNECTION_ERR_QUEUE_FULL`.
///
/// Thread: any thread (takes a lock: not from a signal handler); safe
/// against a concurrent `Connection_Destroy` on the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Connection_Post(
    conn: *const Connection,
    task: ConnectionTask,
    arg: *mut c_void,
) -> c_int {
    guard_int(|| {
        if conn.is_null() {
            return CONNECTION_ERR_NULL;
        }
        let Some(run) = task_fn(task) else {
            return CONNECTION_ERR_NULL;
        };
        // SAFETY: non-NULL; plain field reads of the caller's Connection.
        let Some(h) = (unsafe { handle_of(conn) }) else {
            return CONNECTION_ERR_NOT_INITIALIZED;
        };
        match registry::post(h, |posts| posts.push(Task { run, arg })) {
            Some(Ok(())) => CONNECTION_OK,
            Some(Err(refused)) => refused_code(refused),
            None => CONNECTION_ERR_NOT_INITIALIZED,
        }
    })
}

/// Adds a timer: `task(conn, arg, 0)` runs on the loop thread once
/// `delay_ms` milliseconds have passed (never earlier; the clock counts
/// whole milliseconds, so up to about 1 ms later, plus however long the
/// loop is busy), at the first turn after that. Timers due together run
/// earliest deadline first, then in the order they were added; a timer
/// added by a timer's task runs at a later turn. Adding, cancelling and
/// firing each cost O(log n) in the number of pending timers. The loop's
/// `Connection_Process` waits no longer than the earliest timer, and
/// `Connection_NextTimeout` includes it.
///
/// On success `*id` is the timer's id (never 0; not given to another timer
/// of this Connection until about 2^32 further timers have used its
/// slot), and `task` is called exactly once: when the timer fires
/// (`cancelled` = 0), or with `cancelled` = 1 by `Connection_CancelTimer`
/// or, for a timer still pending, by `Connection_Destroy`. On error `task`
/// is never called and `*id` is untouched. Returns 0,
/// `CONNECTION_ERR_NULL` (`conn`, `task` or `id` NULL),
/// `CONNECTION_ERR_INVALID` (`delay_ms` negative),
/// `CONNECTION_ERR_NOT_INITIALIZED`, `CONNECTION_ERR_NO_MEMORY` (about
/// 2^32 timers pending) or `CONNECTION_ERR_WRONG_THREAD`.
///
/// Thread: the loop thread (also from callbacks and tasks).
#[no_mangle]
pub unsafe extern "C" fn Connection_AddTimer(
    conn: *mut Connection,
    delay_ms: i64,
    task: ConnectionTask,
    arg: *mut c_void,
    id: *mut u64,
) -> c_int {
    if id.is_null() {
        return CONNECTION_ERR_NULL;
    }
    let Some(run) = task_fn(task) else {
        return CONNECTION_ERR_NULL;
    };
    // SAFETY: `conn` is NULL or a Connection (contract); `with_live` passes
    // a live core, borrowed only for the call; no callback runs.
    unsafe {
        with_live(conn, |lp| {
            let Ok(delay) = u64::try_from(delay_ms) else {
                return CONNECTION_ERR_INVALID;
            };
            let added = lp.with(|el| el.add_timer(delay, Task { run, arg }));
            match added {
                Some(timer) => {
                    // SAFETY: non-NULL, and writable by contract.
                    id.write(timer);
                    CONNECTION_OK
                }
                None => CONNECTION_ERR_NO_MEMORY,
            }
        })
    }
}

/// Cancels the pending timer `id`: its task is called at once, before this
/// returns, with `cancelled` = 1 (and never again). Returns 0,
/// `CONNECTION_ERR_NULL`, `CONNECTION_ERR_NOT_INITIALIZED`,
/// `CONNECTION_ERR_WRONG_THREAD`, or `CONNECTION_ERR_NO_TIMER` when no
/// pending timer has this id (it fired, is firing now, or was cancelled:
/// its task has been or is being called, and nothing is done).
///
/// Thread: the loop thread (also from callbacks and tasks).
#[no_mangle]
pub unsafe extern "C" fn Connection_CancelTimer(conn: *mut Connection, id: u64) -> c_int {
    // SAFETY: `conn` is NULL or a Connection (contract); `with_live` passes
    // a live core that nothing here borrows while the task runs.
    unsafe {
        with_live(conn, |lp| {
            if lp.cancel_timer(id) {
                CONNECTION_OK
            } else {
                CONNECTION_ERR_NO_TIMER
            }
        })
    }
}

/// For embedding in another loop, like libmicrohttpd's `MHD_get_timeout`:
/// stores in `*timeout_ms` how long the caller may wait for
/// `Connection_Fd` to become readable before it must call
/// `Connection_ProcessTimeout(conn, 0)` anyway: 0 when work is waiting for
/// the next turn without an event on the fd (a client that used up its
/// read budget, posted tasks, a drained stop), else the milliseconds until
/// the core's earliest deadline (connection timeouts, application timers,
/// the drain deadline after `Connection_Stop`, the accept retry after
/// EMFILE, giving memory back), or -1 when there is none (wait for the
/// fd alone). Call it again after each `Connection_ProcessTimeout` and after
/// adding a timer. Returns 0, `CONNECTION_ERR_NULL`,
/// `CONNECTION_ERR_NOT_INITIALIZED` or `CONNECTION_ERR_WRONG_THREAD`.
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Connection_NextTimeout(
    conn: *const Connection,
    timeout_ms: *mut c_int,
) -> c_int {
    if timeout_ms.is_null() {
        return CONNECTION_ERR_NULL;
    }
    // SAFETY: `conn` is NULL or a Connection and `timeout_ms` writable
    // (contract); `with_live` passes a live core, borrowed only for the call.
    unsafe {
        with_live(conn, |lp| {
            let t = lp.with(|el| el.next_timeout_now());
            timeout_ms.write(t.unwrap_or(-1));
            CONNECTION_OK
        })
    }
}
