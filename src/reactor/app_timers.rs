//! The application's timers (`Connection_AddTimer`): an indexed binary
//! min-heap ordered by (deadline, order added), so adding, cancelling and
//! firing each cost O(log n) whatever the number of timers, and timers due
//! together fire in the order they were added.
//!
//! A timer lives in a slot (reused through a free list); the heap holds
//! slot numbers and each slot knows its heap position, so a cancel finds
//! its entry in O(1) and removes it with one sift. An id is the slot and
//! the slot's generation, which moves on each time the slot is freed: a
//! stale id (fired, cancelled) names no timer, and an id is never 0.
//!
//! Loop thread only (the ffi refuses other threads), and driven by
//! application calls, not by clients: the number of timers is the
//! application's to bound.

use super::posts::Task;

const NOT_IN_HEAP: u32 = u32::MAX;
/// Slots kept when the timers are all gone.
const KEEP: usize = 1024;

struct Slot {
    deadline: u64,
    order: u64,
    generation: u32,
    /// Position in `heap`, or NOT_IN_HEAP when the slot is free.
    pos: u32,
    task: Option<Task>,
}

#[derive(Default)]
pub struct AppTimers {
    slots: Vec<Slot>,
    free: Vec<u32>,
    heap: Vec<u32>,
    /// Counts additions: ties on a deadline fire in this order.
    order: u64,
    /// Generation given to slots created from now on (moves past every
    /// generation used so far when the slots are dropped).
    generation_floor: u32,
    /// Heap levels moved through (sift steps), for the tests that show
    /// each operation is O(log n).
    pub(crate) steps: u64,
}

impl AppTimers {
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Adds a timer; its id, or None when 2^32 - 1 timers are pending.
    pub fn add(&mut self, deadline: u64, task: Task) -> Option<u64> {
        if self.heap.len() >= NOT_IN_HEAP as usize {
            return None;
        }
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = u32::try_from(self.slots.len()).ok()?;
                self.slots.push(Slot {
                    deadline: 0,
                    order: 0,
                    generation: self.generation_floor.max(1),
                    pos: NOT_IN_HEAP,
                    task: None,
                });
                i
            }
        };
        let pos = self.heap.len() as u32;
        let s = &mut self.slots[index as usize];
        s.deadline = deadline;
        s.order = self.order;
        s.pos = pos;
        s.task = Some(task);
        self.order += 1;
        let id = (u64::from(s.generation) << 32) | u64::from(index);
        self.heap.push(index);
        self.sift_up(pos as usize);
        Some(id)
    }

    /// Removes the timer `id` names; its task, or None if there is no such
    /// timer (it fired, was cancelled, or never existed).
    pub fn cancel(&mut self, id: u64) -> Option<Task> {
        let index = (id & 0xffff_ffff) as usize;
        let generation = (id >> 32) as u32;
        let s = self.slots.get(index)?;
        if s.generation != generation || s.pos == NOT_IN_HEAP {
            return None;
        }
        let pos = s.pos as usize;
        Some(self.remove_at(pos))
    }

    /// The earliest deadline, if any timer is pending.
    pub fn next_deadline(&self) -> Option<u64> {
        self.heap.first().map(|&i| self.slots[i as usize].deadline)
    }

    /// Takes the earliest timer if it is due at `now` and was added before
    /// the firing round began (`order < before`: a timer added by a timer's
    /// task waits for the next round, so a task re-adding itself with no
    /// delay cannot hold the loop).
    pub fn pop_due(&mut self, now: u64, before: u64) -> Option<Task> {
        let &top = self.heap.first()?;
        let s = &self.slots[top as usize];
        if s.deadline > now || s.order >= before {
            return None;
        }
        Some(self.remove_at(0))
    }

    /// The order the next timer added will get.
    pub fn next_order(&self) -> u64 {
        self.order
    }

    /// Takes every pending timer, earliest first (for Destroy).
    pub fn pop_any(&mut self) -> Option<Task> {
        if self.heap.is_empty() {
            return None;
        }
        Some(self.remove_at(0))
    }

    fn key(&self, heap_pos: usize) -> (u64, u64) {
        let s = &self.slots[self.heap[heap_pos] as usize];
        (s.deadline, s.order)
    }

    fn place(&mut self, heap_pos: usize, index: u32) {
        self.heap[heap_pos] = index;
        self.slots[index as usize].pos = heap_pos as u32;
    }

    fn swap(&mut self, a: usize, b: usize) {
        let (ia, ib) = (self.heap[a], self.heap[b]);
        self.place(a, ib);
        self.place(b, ia);
        self.steps += 1;
    }

    fn sift_up(&mut self, mut pos: usize) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if self.key(parent) <= self.key(pos) {
                break;
            }
            self.swap(parent, pos);
            pos = parent;
        }
    }

    fn sift_down(&mut self, mut pos: usize) {
        loop {
            let (l, r) = (2 * pos + 1, 2 * pos + 2);
            let mut least = pos;
            if l < self.heap.len() && self.key(l) < self.key(least) {
                least = l;
            }
            if r < self.heap.len() && self.key(r) < self.key(least) {
                least = r;
            }
            if least == pos {
                break;
            }
            self.swap(pos, least);
            pos = least;
        }
    }

    /// Takes the entry at heap position `pos` out and frees its slot.
    fn remove_at(&mut self, pos: usize) -> Task {
        let index = self.heap[pos];
        let last = self.heap.len() - 1;
        if pos != last {
            self.swap(pos, last);
        }
        self.heap.pop();
        if pos < self.heap.len() {
            self.sift_down(pos);
            self.sift_up(pos);
        }
        let s = &mut self.slots[index as usize];
        s.pos = NOT_IN_HEAP;
        s.generation = s.generation.wrapping_add(1).max(1);
        let task = s.task.take().expect("a slot in the heap holds a task");
        self.free.push(index);
        if self.heap.is_empty() && self.slots.len() > KEEP {
            self.drop_slots();
        }
        task
    }

    /// With no timer pending, gives the slots' memory back after a burst.
    /// Slots made afterwards start above every generation used so far, so
    /// no old id names them.
    fn drop_slots(&mut self) {
        let highest = self.slots.iter().map(|s| s.generation).max().unwrap_or(0);
        self.generation_floor = highest.wrapping_add(1).max(1);
        self.slots = Vec::new();
        self.free = Vec::new();
        self.heap = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::raw::{c_int, c_void};

    unsafe extern "C" fn nothing(_: *mut c_void, _: *mut c_void, _: c_int) {}

    fn t(n: usize) -> Task {
        Task {
            run: nothing,
            arg: n as *mut c_void,
        }
    }

    #[test]
    fn fires_in_deadline_order_then_added_order() {
        let mut timers = AppTimers::default();
        for (n, deadline) in [(1, 50), (2, 10), (3, 50), (4, 30), (5, 10)] {
            timers.add(deadline, t(n)).unwrap();
        }
        assert_eq!(timers.next_deadline(), Some(10));
        assert!(timers.pop_due(9, u64::MAX).is_none());
        let mut fired = Vec::new();
        while let Some(task) = timers.pop_due(100, u64::MAX) {
            fired.push(task.arg as usize);
        }
        assert_eq!(fired, [2, 5, 4, 1, 3]);
    }

    #[test]
    fn cancel_is_exact_and_stale_ids_name_nothing() {
        let mut timers = AppTimers::default();
        let a = timers.add(10, t(1)).unwrap();
        let b = timers.add(20, t(2)).unwrap();
        assert_ne!(a, 0);
        assert_eq!(timers.cancel(a).map(|t| t.arg as usize), Some(1));
        assert!(timers.cancel(a).is_none(), "cancelled twice");
        // The slot is reused under a new generation: the old id misses it.
        let c = timers.add(5, t(3)).unwrap();
        assert_ne!(a, c);
        assert!(timers.cancel(a).is_none());
        assert_eq!(
            timers.pop_due(100, u64::MAX).map(|t| t.arg as usize),
            Some(3)
        );
        assert!(timers.cancel(c).is_none(), "fired");
        assert_eq!(timers.cancel(b).map(|t| t.arg as usize), Some(2));
        assert!(timers.is_empty());
    }

    #[test]
    fn a_timer_added_while_firing_waits_for_the_next_round() {
        let mut timers = AppTimers::default();
        timers.add(10, t(1)).unwrap();
        let before = timers.next_order();
        // Added at 10 (the time of the round) with no delay: due, but new.
        timers.add(10, t(2)).unwrap();
        assert_eq!(timers.pop_due(10, before).map(|t| t.arg as usize), Some(1));
        assert!(timers.pop_due(10, before).is_none());
    }

    /// 100,000 timers added in a scrambled deadline order and cancelled in
    /// another: every operation moves through at most log2(n) + 1 levels.
    #[test]
    fn each_operation_is_logarithmic() {
        const N: u64 = 100_000;
        let mut timers = AppTimers::default();
        let mut ids = Vec::with_capacity(N as usize);
        for i in 0..N {
            let deadline = (i * 7919) % N; // a permutation of 0..N
            ids.push(timers.add(deadline, t(i as usize)).unwrap());
        }
        let levels = 64 - N.leading_zeros() as u64; // ceil(log2 N) = 17
        assert!(timers.steps <= N * levels, "add: {} steps", timers.steps);
        timers.steps = 0;
        for k in 0..N {
            let i = (k * 104_729) % N; // another permutation
            assert!(timers.cancel(ids[i as usize]).is_some());
        }
        // A removal swaps the last entry in (1) and sifts it down or up.
        assert!(
            timers.steps <= N * (levels + 1),
            "cancel: {} steps",
            timers.steps
        );
        assert!(timers.is_empty());
        // Memory went back with the last timer; old ids still name nothing.
        assert!(timers.slots.capacity() == 0);
        let fresh = timers.add(1, t(0)).unwrap();
        assert!(ids.iter().all(|&old| old != fresh));
    }
}
