//! Tasks posted to the loop from any thread (`Connection_Post`), run on the
//! loop thread at its next turn, in posting order.
//!
//! The queue is its own allocation, shared (`Arc`) between the loop and the
//! ffi's table of live loops, so a posting thread touches only this, never
//! the `EventLoop` (which the loop thread borrows mutably). A mutex guards
//! the queue; the first post after the loop took a batch wakes it through
//! its `notify` eventfd (the epoll fd turns readable, for an embedding loop
//! too), later ones find the wake-up pending and make no system call.
//!
//! The queue is bounded (`Limits::max_pending_posts`): a post beyond it is
//! refused (`Refused::Full`) and not queued, so a stalled loop cannot make
//! its posters grow memory without end; the poster keeps its argument and
//! may retry. Nothing is allocated per post: a post is two words in a ring
//! that grows to the largest backlog seen.
//!
//! The owner of the fd is the loop; the ffi guarantees (its in-flight count
//! in the table) that no post is between its check and its `signal_raw`
//! when the loop is destroyed, and `close` refuses every post after that.

use std::collections::VecDeque;
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::sys::eventfd;

/// A task: `handle` is the application's handle of the loop (what the ffi
/// made of it), `arg` the application's pointer, `cancelled` 1 when the
/// task will never run (its loop is being destroyed, or a timer was
/// cancelled), 0 when it runs.
pub type TaskFn = unsafe extern "C" fn(handle: *mut c_void, arg: *mut c_void, cancelled: c_int);

/// One queued task and its argument.
#[derive(Clone, Copy)]
pub struct Task {
    pub run: TaskFn,
    pub arg: *mut c_void,
}

/// Why a post was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// `max_pending_posts` tasks are waiting already.
    Full,
    /// The loop is being destroyed.
    Closed,
}

struct Queue {
    tasks: VecDeque<Task>,
    /// The loop has been woken for the tasks now queued.
    woken: bool,
    closed: bool,
}

// SAFETY: the `arg` pointers are the application's, handed from the
// posting thread to the loop thread: passing them across threads is what
// `Connection_Post` is for; the queue itself never dereferences them.
unsafe impl Send for Queue {}

pub struct Posts {
    queue: Mutex<Queue>,
    /// Tasks are queued (read without the lock, by the loop thread, to skip
    /// the lock on turns with nothing posted).
    pending: AtomicBool,
    /// The loop's `notify` eventfd.
    wake_fd: c_int,
    limit: usize,
}

impl Posts {
    pub fn new(wake_fd: c_int, limit: usize) -> Posts {
        Posts {
            queue: Mutex::new(Queue {
                tasks: VecDeque::new(),
                woken: false,
                closed: false,
            }),
            pending: AtomicBool::new(false),
            wake_fd,
            limit,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A poisoned lock only means a panic elsewhere while holding it;
        // the queue is consistent after every statement.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `task` (any thread). The loop is woken unless a wake-up is
    /// already pending.
    pub fn push(&self, task: Task) -> Result<(), Refused> {
        let wake = {
            let mut q = self.lock();
            if q.closed {
                return Err(Refused::Closed);
            }
            if q.tasks.len() >= self.limit {
                return Err(Refused::Full);
            }
            q.tasks.push_back(task);
            self.pending.store(true, Ordering::Release);
            !std::mem::replace(&mut q.woken, true)
        };
        if wake {
            // EAGAIN (counter saturated) still leaves the eventfd readable.
            eventfd::signal_raw(self.wake_fd);
        }
        Ok(())
    }

    /// Whether tasks wait (loop thread; a post racing with this is seen at
    /// the latest through the wake-up it writes).
    pub fn pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Moves every queued task into `batch` (kept by the loop, so the two
    /// rings swap and nothing is allocated), in posting order.
    pub fn take(&self, batch: &mut VecDeque<Task>) {
        if !self.pending() {
            return;
        }
        let mut q = self.lock();
        std::mem::swap(&mut q.tasks, batch);
        q.woken = false;
        self.pending.store(false, Ordering::Release);
    }

    /// Refuses every later post and hands back what never ran.
    pub fn close(&self) -> VecDeque<Task> {
        let mut q = self.lock();
        q.closed = true;
        self.pending.store(false, Ordering::Release);
        std::mem::take(&mut q.tasks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::EventFd;

    unsafe extern "C" fn nothing(_: *mut c_void, _: *mut c_void, _: c_int) {}

    fn task(n: usize) -> Task {
        Task {
            run: nothing,
            arg: n as *mut c_void,
        }
    }

    #[test]
    fn bounded_in_order_and_closed_for_good() {
        let fd = EventFd::new().unwrap();
        let posts = Posts::new(fd.raw(), 3);
        for n in 1..=3 {
            posts.push(task(n)).unwrap();
        }
        assert_eq!(posts.push(task(4)).err(), Some(Refused::Full));
        let mut batch = VecDeque::new();
        posts.take(&mut batch);
        let args: Vec<usize> = batch.iter().map(|t| t.arg as usize).collect();
        assert_eq!(args, [1, 2, 3]);
        assert!(!posts.pending());
        posts.push(task(5)).unwrap();
        let left = posts.close();
        assert_eq!(left.len(), 1);
        assert_eq!(posts.push(task(6)).err(), Some(Refused::Closed));
    }
}
