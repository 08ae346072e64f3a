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

/// A thread's number (never 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadTag(pub u64);

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

    /// Whether the calling thread is this one.
    pub fn is_current(self) -> bool {
        self == ThreadTag::current()
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
    }
}
