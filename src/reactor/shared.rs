//! `Shared`: what every step of every connection needs from the loop
//! (settings, clock, Date, buffers, counters, the I/O backend), kept apart
//! from the connection table so a step can borrow both at once.

use super::buffer_pool::BufferPool;
use super::config::Limits;
use super::io::Io;
use super::reply::{Owner, Reply};
use super::stats::Stats;
use crate::http::date::DateCache;
use crate::http::request::HeaderSpan;
use crate::http::ParseLimits;
use crate::sys::ThreadTag;

/// Size of the pooled read and write buffers.
pub const BUFFER_SIZE: usize = 16 * 1024;

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
    /// Scratch for the parser: the header spans of the request just parsed.
    pub header_spans: Vec<HeaderSpan>,
    /// Reply handles not in use, and those whose client left while the
    /// application still holds them.
    pub replies: ReplyPool,
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
            header_spans: Vec::with_capacity(limits.max_headers),
            replies: ReplyPool::default(),
            limits,
        }
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
}

impl Default for ReplyPool {
    fn default() -> Self {
        ReplyPool {
            owner: Owner(std::ptr::null_mut()),
            thread: ThreadTag::current(),
            spare: Vec::with_capacity(64),
            detached: Vec::new(),
        }
    }
}

impl ReplyPool {
    pub fn take(&mut self) -> *mut Reply {
        self.spare
            .pop()
            .unwrap_or_else(|| Box::into_raw(Box::new(Reply::new(self.owner, self.thread))))
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

impl Drop for ReplyPool {
    fn drop(&mut self) {
        for reply in self.spare.drain(..).chain(self.detached.drain(..)) {
            // SAFETY: each came from Box::into_raw and is owned by the pool.
            drop(unsafe { Box::from_raw(reply) });
        }
    }
}
