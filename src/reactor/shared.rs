//! `Shared`: what every step of every connection needs from the loop
//! (settings, clock, Date, buffers, counters, the I/O backend), kept apart
//! from the connection table so a step can borrow both at once; and how
//! the loop's memory is bounded and given back (`queued_output`,
//! `return_memory`).

use super::buffer_pool::BufferPool;
use super::completion::Finished;
use super::config::Limits;
use super::io::Io;
use super::output::{Borrowed, Release};
use super::reply::{Owner, Reply};
use super::slab::Token;
use super::stats::Stats;
use crate::http::date::DateCache;
use crate::http::ParseLimits;
use crate::sys::{mem, ThreadTag};

/// Size of the pooled read and write buffers.
pub const BUFFER_SIZE: usize = 16 * 1024;
/// Buffers the pool keeps at least, and per open connection beyond that.
const POOL_KEEP_MIN: usize = 16;
const POOL_KEEP_PER_CONN: usize = 2;
/// Freed buffer bytes that make a heap trim worth it.
const TRIM_AFTER_FREED: usize = 1024 * 1024;
/// Least time between two heap trims.
const TRIM_INTERVAL_MS: u64 = 1000;

pub struct Shared {
    pub limits: Limits,
    pub parse_limits: ParseLimits,
    pub io: Io,
    pub pool: BufferPool,
    pub stats: Stats,
    pub date: DateCache,
    /// Milliseconds on the loop's clock, updated once per turn.
    pub now: u64,
    /// `Stop` was requested: no new requests on kept-alive connections.
    pub stopping: bool,
    pub next_request_id: u64,
    /// Reply handles not in use, and those whose client left while the
    /// application still holds them.
    pub replies: ReplyPool,
    /// Releases of borrowed bodies owed to the application, made once no
    /// borrow of the loop is alive (`LoopPtr::run_cleanups`).
    pub released: Vec<Release>,
    /// Heap memory held by output queues across all connections: the sum
    /// of each `Output`'s counted storage (`Output::sync`). While it is at
    /// or over `limits.output_high_water_total`, no request starts.
    pub queued_output: usize,
    /// Connections that could not start a request because `queued_output`
    /// was over its bound; driven again once it falls.
    pub room_waiters: Vec<Token>,
    pub memory: MemoryReturn,
    /// A completion sink is set: requests keep completion records.
    pub recording: bool,
    /// Completion records waiting for the application.
    pub finished: Finished,
}

/// When the heap was last trimmed, and what has been freed since.
#[derive(Default)]
pub struct MemoryReturn {
    /// Buffer bytes freed since the last trim.
    pub freed: usize,
    /// Most connections open since the last trim.
    pub peak_conns: usize,
    pub last_trim_ms: u64,
    /// A trim is due but waits for `TRIM_INTERVAL_MS`: wake the loop then.
    pub trim_at: Option<u64>,
}

impl Shared {
    pub fn new(limits: Limits, io: Io) -> Shared {
        Shared {
            parse_limits: limits.parse(),
            now: io.now_ms(),
            io,
            pool: BufferPool::new(BUFFER_SIZE, 256),
            stats: Stats::default(),
            date: DateCache::default(),
            stopping: false,
            next_request_id: 1,
            replies: ReplyPool::default(),
            released: Vec::new(),
            queued_output: 0,
            room_waiters: Vec::new(),
            memory: MemoryReturn::default(),
            recording: false,
            finished: Finished::default(),
            limits,
        }
    }

    /// A borrowed body the loop is done with: its release (if any) is owed.
    pub fn release_later(&mut self, body: Borrowed) {
        if let Some(release) = body.into_release() {
            self.released.push(release);
        }
    }

    /// Output memory across all connections is at or over its bound: no
    /// connection starts a new request, and chunks are refused.
    pub fn over_output_total(&self) -> bool {
        self.queued_output >= self.limits.output_high_water_total
    }

    /// Called once per loop turn with the number of open connections. Once
    /// most of the connections seen since the last trim are gone, the pools
    /// keep only what the open ones may use again, and when enough buffer
    /// memory was freed the heap's free pages go back to the kernel (at most
    /// once per `TRIM_INTERVAL_MS`; `trim_at` says when the next may run).
    pub fn return_memory(&mut self, open: usize) {
        let m = &mut self.memory;
        m.peak_conns = m.peak_conns.max(open);
        m.freed += self.pool.take_freed();
        m.trim_at = None;
        if open.saturating_mul(2) > m.peak_conns {
            return;
        }
        self.pool
            .shrink(POOL_KEEP_MIN.max(POOL_KEEP_PER_CONN.saturating_mul(open)));
        self.replies.shrink(POOL_KEEP_MIN.max(open));
        m.freed += self.pool.take_freed();
        if m.freed < TRIM_AFTER_FREED {
            return;
        }
        let due = m.last_trim_ms + TRIM_INTERVAL_MS;
        if m.last_trim_ms != 0 && self.now < due {
            m.trim_at = Some(due);
            return;
        }
        mem::trim_heap();
        m.freed = 0;
        m.peak_conns = open;
        m.last_trim_ms = self.now.max(1);
    }

    /// Reads the clocks (once per loop turn).
    pub fn tick(&mut self) {
        self.now = self.io.now_ms();
        self.date.update(self.io.unix_seconds());
    }

    pub fn take_request_id(&mut self) -> u64 {
        let id = self.next_request_id;
        self.next_request_id += 1;
        id
    }
}

/// Reply handles: each came from `Box::into_raw` and is owned here (or by a
/// connection) until the loop is dropped.
pub struct ReplyPool {
    pub owner: Owner,
    /// The loop's thread (the one that built it), given to every reply.
    pub thread: ThreadTag,
    pub spare: Vec<*mut Reply>,
    pub detached: Vec<*mut Reply>,
    /// Handles kept with `Response_Defer` and not yet released by the
    /// application (each knows its index: `Deferred::slot`).
    pub deferred: Vec<*mut Reply>,
}

impl Default for ReplyPool {
    fn default() -> Self {
        ReplyPool {
            owner: Owner(std::ptr::null_mut()),
            thread: ThreadTag::current(),
            spare: Vec::with_capacity(64),
            detached: Vec::new(),
            deferred: Vec::new(),
        }
    }
}

impl ReplyPool {
    pub fn take(&mut self) -> *mut Reply {
        self.spare
            .pop()
            .unwrap_or_else(|| Box::into_raw(Box::new(Reply::new(self.owner, self.thread))))
    }

    /// Frees spare handles beyond `keep` (open connections hold their own).
    pub fn shrink(&mut self, keep: usize) {
        while self.spare.len() > keep {
            if let Some(reply) = self.spare.pop() {
                // SAFETY: the handle came from Box::into_raw and is owned by
                // the pool; a spare handle is in no connection and the
                // application holds none of it.
                drop(unsafe { Box::from_raw(reply) });
            }
        }
    }

    /// Frees a detached handle the application has ended. Returns whether
    /// it was one. (`reply` is only compared until it is found in the list,
    /// which proves it is ours.)
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    pub fn release_detached(&mut self, reply: *mut Reply) -> bool {
        let Some(pos) = self.detached.iter().position(|&r| r == reply) else {
            return false;
        };
        self.detached.swap_remove(pos);
        // SAFETY: the handle came from Box::into_raw; removed from the list,
        // nothing else refers to it.
        drop(unsafe { Box::from_raw(reply) });
        true
    }
}

impl ReplyPool {
    /// Records a handle the application keeps (`Response_Defer`); returns
    /// its slot.
    pub fn keep_deferred(&mut self, reply: *mut Reply) -> usize {
        self.deferred.push(reply);
        self.deferred.len() - 1
    }

    /// Takes back a deferred handle the application released: it becomes a
    /// spare, reused for a later request.
    ///
    /// # Safety
    /// `reply` is in `deferred` at its recorded slot, and no connection
    /// refers to it any more.
    pub unsafe fn free_deferred(&mut self, reply: *mut Reply) {
        // SAFETY: contract: a live handle owned by the pool.
        let r = unsafe { &mut *reply };
        let Some(d) = r.deferred.take() else {
            return;
        };
        debug_assert!(self.deferred[d.slot] == reply);
        self.deferred.swap_remove(d.slot);
        if let Some(&moved) = self.deferred.get(d.slot) {
            // SAFETY: every handle in `deferred` is live and deferred.
            if let Some(m) = unsafe { &mut (*moved).deferred } {
                m.slot = d.slot;
            }
        }
        r.phase = super::reply::Phase::Done;
        r.token = Token(u64::MAX);
        self.spare.push(reply);
    }
}

impl Drop for ReplyPool {
    fn drop(&mut self) {
        for reply in self
            .spare
            .drain(..)
            .chain(self.detached.drain(..))
            .chain(self.deferred.drain(..))
        {
            // SAFETY: each came from Box::into_raw and is owned by the pool.
            drop(unsafe { Box::from_raw(reply) });
        }
    }
}
