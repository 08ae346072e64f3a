//! Which thread is running: a number per thread, handed out on first use
//! and never reused (the kernel's thread ids are reused once a thread
//! exits, so a stale one could name the wrong thread).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT: AtomicU64 = AtomicU64::new(1);

thread_local! {
    // `const`, no destructor: reading it is a plain thread-local load and
    // never allocates.
    static TAG: Cell<u64> = const { Cell::new(0) };
}

/// A thread's number (never 0: only `current` makes one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadTag(u64);

impl ThreadTag {
    /// The calling thread's number.
    pub fn current() -> ThreadTag {
        TAG.with(|tag| {
            let mut n = tag.get();
            if n == 0 {
                n = NEXT.fetch_add(1, Ordering::Relaxed);
                tag.set(n);
            }
            ThreadTag(n)
        })
    }

    /// The number itself.
    pub fn number(self) -> u64 {
        self.0
    }

    /// Whether the calling thread is this one. A thread not numbered yet
    /// reads 0, which no tag is: no number is handed out for this.
    #[inline]
    pub fn is_current(self) -> bool {
        TAG.with(Cell::get) == self.0
    }
}

#[cfg(test)]
mod tests {
    use super::ThreadTag;

    #[test]
    fn a_thread_keeps_its_number_and_another_thread_has_another() {
        let here = ThreadTag::current();
        assert_eq!(here, ThreadTag::current());
        assert!(here.is_current());
        let there = std::thread::spawn(ThreadTag::current).join().unwrap();
        assert_ne!(here, there);
        assert!(!there.is_current());
        // A thread with no number yet (its tag reads 0) is no tag's thread.
        let fresh = std::thread::spawn(move || (here.is_current(), there.is_current()));
        assert_eq!(fresh.join().unwrap(), (false, false));
    }
}
