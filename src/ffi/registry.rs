//! The table of live loops that every `Connection` handle is resolved
//! through.
//!
//! A `Connection` is a few bytes the caller may copy, so whether its loop
//! is alive cannot live in those bytes: Destroy through one copy could not
//! tell the others. It lives here instead. A handle names a slot and the
//! slot's generation at Init (odd while a loop lives in the slot); Destroy
//! moves the generation on, so every copy stops resolving at once, and a
//! later Init in the same slot gets a generation that no stale copy names.
//! Slots come in segments that are never freed, so resolving even a
//! long-stale handle reads memory that is still the table's.
//!
//! Resolving takes no lock (acquire loads of the segment and the
//! generation); only Init and Destroy take a lock. The slot also
//! holds the loop's thread (`ThreadTag`), so a call from another thread is
//! told apart without touching the loop.
//!
//! `Connection_Stop` may run in a signal handler on any thread: no lock, no
//! allocation. It counts itself in the slot's `stops` before it checks the
//! generation, and Destroy, after moving the generation on, waits for that
//! count to reach zero before the loop (and its eventfd) is closed. Both
//! sides use sequentially consistent operations, so either the Stop sees
//! the new generation and writes nothing, or Destroy sees the Stop and
//! waits for its write: a Stop never writes to a descriptor number that
//! Destroy has closed and something else may have reopened.
//!
//! `Connection_Post` (any thread, not a signal handler) counts itself in
//! the same way and then pushes to the loop's post queue (`Posts`, an
//! allocation of its own that the slot points to) and may write to the
//! loop's wake-up eventfd: Destroy's wait covers it too, so once `remove`
//! returns no post is in flight, and every later one is refused.

use std::os::raw::c_int;
use std::ptr::null_mut;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
use std::sync::Mutex;

use crate::reactor::posts::Posts;
use crate::reactor::EventLoop;
use crate::sys::{eventfd, ThreadTag};

/// Slots per segment, and segments at most: 65536 loops alive at once.
const SEGMENT_SLOTS: usize = 64;
const MAX_SEGMENTS: usize = 1024;

struct Slot {
    /// Odd while a loop lives here. Init moves it from even to odd, Destroy
    /// from odd to even.
    generation: AtomicUsize,
    /// The loop; written before the generation becomes odd.
    core: AtomicPtr<EventLoop>,
    /// The loop thread's `ThreadTag`; written before the generation.
    owner: AtomicU64,
    /// The loop's stop eventfd; written before the generation.
    stop_fd: AtomicI32,
    /// The loop's post queue (owned by the loop); written before the
    /// generation.
    posts: AtomicPtr<Posts>,
    /// `stop` and `post` calls between their generation check and their
    /// last use of the slot's eventfd and post queue.
    stops: AtomicU32,
    /// Free for the next Init (set by Destroy once no Stop can still use
    /// the slot's old descriptor); read and written under `USED`'s lock.
    vacant: AtomicBool,
}

impl Slot {
    const fn empty() -> Slot {
        Slot {
            generation: AtomicUsize::new(0),
            core: AtomicPtr::new(null_mut()),
            owner: AtomicU64::new(0),
            stop_fd: AtomicI32::new(-1),
            posts: AtomicPtr::new(null_mut()),
            stops: AtomicU32::new(0),
            vacant: AtomicBool::new(true),
        }
    }
}

/// The first segment is static, so a program with up to `SEGMENT_SLOTS`
/// live Connections allocates nothing here (and valgrind sees nothing
/// left at exit).
static FIRST: [Slot; SEGMENT_SLOTS] = [const { Slot::empty() }; SEGMENT_SLOTS];

/// The further segments, `SEGMENT_SLOTS` slots each, allocated when first
/// needed and never freed (index 0 stays null: that segment is `FIRST`).
static SEGMENTS: [AtomicPtr<Slot>; MAX_SEGMENTS] =
    [const { AtomicPtr::new(null_mut()) }; MAX_SEGMENTS];

/// Slots ever handed out (the next new one); Init and Destroy take the lock.
static USED: Mutex<usize> = Mutex::new(0);

/// What a `Connection` stores: which slot, and its generation at Init.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handle {
    pub slot: usize,
    pub generation: usize,
}

/// Why a handle does not give its loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Never initialised, or destroyed (through this copy or another).
    Dead,
    /// Alive, but the calling thread is not the loop's.
    WrongThread,
}

/// The slot at `index`, if its segment exists. Lock-free and
/// async-signal-safe (one atomic load).
fn slot(index: usize) -> Option<&'static Slot> {
    if index < SEGMENT_SLOTS {
        return Some(&FIRST[index]);
    }
    let segment = SEGMENTS.get(index / SEGMENT_SLOTS)?.load(Ordering::Acquire);
    if segment.is_null() {
        return None;
    }
    // SAFETY: a published segment is SEGMENT_SLOTS initialised slots that
    // are never freed; the offset is below SEGMENT_SLOTS.
    Some(unsafe { &*segment.add(index % SEGMENT_SLOTS) })
}

/// The slot of a handle whose generation is a live one (odd), if any.
fn named(h: Handle) -> Option<&'static Slot> {
    if h.generation & 1 == 0 {
        return None;
    }
    slot(h.slot)
}

/// Enters `core` (just created by the calling thread, its loop thread)
/// into the table. None when the table is full or out of memory.
/// `posts` is the loop's post queue, alive as long as the loop.
pub fn insert(core: *mut EventLoop, stop_fd: c_int, posts: *const Posts) -> Option<Handle> {
    let mut used = USED.lock().unwrap_or_else(|e| e.into_inner());
    // A vacant slot first (Init is rare: a scan is fine), else a new one.
    let reuse = (0..*used).find(|&i| slot(i).is_some_and(|s| s.vacant.load(Ordering::Relaxed)));
    let index = match reuse {
        Some(i) => i,
        None => {
            let i = *used;
            if i >= SEGMENT_SLOTS && i % SEGMENT_SLOTS == 0 {
                let segment = SEGMENTS.get(i / SEGMENT_SLOTS)?;
                let slots: Box<[Slot; SEGMENT_SLOTS]> =
                    Box::new(std::array::from_fn(|_| Slot::empty()));
                segment.store(Box::into_raw(slots) as *mut Slot, Ordering::Release);
            }
            *used += 1;
            i
        }
    };
    let s = slot(index).expect("a handed-out slot's segment exists");
    s.vacant.store(false, Ordering::Relaxed);
    s.core.store(core, Ordering::Relaxed);
    s.owner
        .store(ThreadTag::current().number(), Ordering::Relaxed);
    s.stop_fd.store(stop_fd, Ordering::Relaxed);
    s.posts.store(posts.cast_mut(), Ordering::Relaxed);
    // Only Destroy (which then frees the slot under this lock) and Init
    // (under this lock) write the generation: it is even here.
    let generation = s.generation.load(Ordering::Relaxed).wrapping_add(1);
    // Publishes the four stores above to whoever sees this generation.
    s.generation.store(generation, Ordering::SeqCst);
    Some(Handle {
        slot: index,
        generation,
    })
}

/// The loop `h` names, for its loop thread. Lock-free.
pub fn resolve(h: Handle) -> Result<*mut EventLoop, Refused> {
    let s = named(h).ok_or(Refused::Dead)?;
    if s.generation.load(Ordering::Acquire) != h.generation {
        return Err(Refused::Dead);
    }
    // If the owner is the calling thread, the loop of this generation is
    // this thread's and only this thread can destroy it: it stays alive
    // for the rest of this call. Any other owner is refused without the
    // loop being touched.
    if s.owner.load(Ordering::Relaxed) != ThreadTag::current().number() {
        return Err(Refused::WrongThread);
    }
    Ok(s.core.load(Ordering::Relaxed))
}

/// Whether `h` names a live loop (from any thread).
pub fn is_live(h: Handle) -> bool {
    named(h).is_some_and(|s| s.generation.load(Ordering::Acquire) == h.generation)
}

/// Wakes the loop `h` names with a stop request: Some(whether the write
/// worked), or None if `h` names no live loop (then nothing is written).
/// Async-signal-safe: atomics and one `write(2)`; no lock, no allocation.
pub fn stop(h: Handle) -> Option<bool> {
    let s = named(h)?;
    s.stops.fetch_add(1, Ordering::SeqCst);
    let result = if s.generation.load(Ordering::SeqCst) == h.generation {
        // Destroy cannot close this descriptor before `stops` drops back.
        Some(eventfd::signal_raw(s.stop_fd.load(Ordering::Relaxed)))
    } else {
        None
    };
    s.stops.fetch_sub(1, Ordering::Release);
    result
}

/// Runs `f` on the post queue of the loop `h` names, from any thread
/// (not a signal handler: `f` takes a lock): Some(what `f` returned), or
/// None if `h` names no live loop (then `f` is not called). The queue and
/// the loop's eventfd stay alive until `f` returns (Destroy waits).
pub fn post<R>(h: Handle, f: impl FnOnce(&Posts) -> R) -> Option<R> {
    let s = named(h)?;
    /// Uncounts the call however it ends (a panic in `f` included), so
    /// Destroy never waits for it in vain.
    struct Counted<'a>(&'a AtomicU32);
    impl Drop for Counted<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Release);
        }
    }
    s.stops.fetch_add(1, Ordering::SeqCst);
    let _counted = Counted(&s.stops);
    if s.generation.load(Ordering::SeqCst) != h.generation {
        return None;
    }
    let posts = s.posts.load(Ordering::Relaxed);
    // SAFETY: the generation is the live one and this call is counted:
    // Destroy waits for the count before the loop (which owns the queue)
    // is freed, and the pointer was published with the generation.
    let posts = unsafe { posts.as_ref() }?;
    Some(f(posts))
}

/// Takes the loop `h` names out of the table, for Destroy on its loop
/// thread (after `resolve` succeeded): every copy of the handle is dead
/// when this returns, and no `stop` is still writing to the loop's eventfd,
/// so the caller may close it.
pub fn remove(h: Handle) {
    let Some(s) = named(h) else {
        return;
    };
    // Dead for every copy from here on.
    s.generation
        .store(h.generation.wrapping_add(1), Ordering::SeqCst);
    // A Stop or Post that counted itself before the store above may still
    // be about to write: wait for it (one write(2), or a push under the
    // queue's lock; never this thread's own, since a signal handler returns
    // before the code it interrupted goes on, and a Post on this thread
    // is not running while this thread destroys).
    while s.stops.load(Ordering::SeqCst) != 0 {
        std::hint::spin_loop();
        std::thread::yield_now();
    }
    s.core.store(null_mut(), Ordering::Relaxed);
    s.stop_fd.store(-1, Ordering::Relaxed);
    s.posts.store(null_mut(), Ordering::Relaxed);
    let _used = USED.lock().unwrap_or_else(|e| e.into_inner());
    s.vacant.store(true, Ordering::Relaxed);
}
