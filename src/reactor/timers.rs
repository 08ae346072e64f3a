//! Connection deadlines: one intrusive FIFO list per kind of wait.
//!
//! Each kind has a fixed duration, so a connection appended to a kind's list
//! always has a deadline no earlier than the one before it: the list is
//! sorted by construction. Arming, re-arming and cancelling are O(1), the
//! next deadline is the minimum of a handful of list heads, and nothing is
//! allocated once the link table has grown to the largest slot index seen.
//! No timer fd per connection.

pub(crate) const NIL: u32 = u32::MAX;

/// Which wait a connection is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerKind {
    /// Receiving a request's header section (counted from its first byte).
    Header = 0,
    /// Receiving a request body.
    Body = 1,
    /// Keep-alive connection between requests.
    Idle = 2,
    /// Output queued that the client is not reading.
    Send = 3,
    /// Lingering close: waiting for the client's FIN.
    Linger = 4,
    /// An open chunked response that the application has not written to.
    AppWait = 5,
    /// A deferred response the application has not answered (counted from
    /// `Response_Defer`).
    Response = 6,
}

const KINDS: usize = 7;

#[derive(Clone, Copy)]
struct Link {
    kind: Option<TimerKind>,
    deadline: u64,
    prev: u32,
    next: u32,
}

const UNLINKED: Link = Link {
    kind: None,
    deadline: 0,
    prev: NIL,
    next: NIL,
};

pub struct Timers {
    links: Vec<Link>,
    heads: [u32; KINDS],
    tails: [u32; KINDS],
}

impl Timers {
    pub fn new(capacity: usize) -> Timers {
        Timers {
            links: Vec::with_capacity(capacity),
            heads: [NIL; KINDS],
            tails: [NIL; KINDS],
        }
    }

    pub fn kind(&self, index: usize) -> Option<TimerKind> {
        self.links.get(index).and_then(|l| l.kind)
    }

    /// The deadline `index` is armed with, if it is armed.
    pub fn deadline(&self, index: usize) -> Option<u64> {
        self.links
            .get(index)
            .and_then(|l| l.kind.map(|_| l.deadline))
    }

    /// Removes `index` from whatever list it is in.
    pub fn cancel(&mut self, index: usize) {
        let Some(link) = self.links.get(index).copied() else {
            return;
        };
        let Some(kind) = link.kind else {
            return;
        };
        let k = kind as usize;
        if link.prev == NIL {
            self.heads[k] = link.next;
        } else {
            self.links[link.prev as usize].next = link.next;
        }
        if link.next == NIL {
            self.tails[k] = link.prev;
        } else {
            self.links[link.next as usize].prev = link.prev;
        }
        self.links[index] = UNLINKED;
    }

    /// (Re-)arms `index` in `kind`'s list with `deadline`, which must be no
    /// earlier than any deadline already in that list.
    pub fn arm(&mut self, index: usize, kind: TimerKind, deadline: u64) {
        self.cancel(index);
        if self.links.len() <= index {
            self.links.resize(index + 1, UNLINKED);
        }
        let k = kind as usize;
        let tail = self.tails[k];
        // Clamp instead of trusting the caller: a list must stay sorted.
        let deadline = if tail == NIL {
            deadline
        } else {
            deadline.max(self.links[tail as usize].deadline)
        };
        self.links[index] = Link {
            kind: Some(kind),
            deadline,
            prev: tail,
            next: NIL,
        };
        if tail == NIL {
            self.heads[k] = index as u32;
        } else {
            self.links[tail as usize].next = index as u32;
        }
        self.tails[k] = index as u32;
    }

    /// Drops the links of slots at or above `slots` (all unlinked: their
    /// connections are closed) and gives the memory back.
    pub fn shrink(&mut self, slots: usize, keep: usize) {
        debug_assert!(self.links[slots.min(self.links.len())..]
            .iter()
            .all(|l| l.kind.is_none()));
        self.links.truncate(slots);
        self.links.shrink_to(keep.max(slots));
    }

    /// The earliest deadline of any armed timer.
    pub fn next_deadline(&self) -> Option<u64> {
        self.heads
            .iter()
            .filter(|&&h| h != NIL)
            .map(|&h| self.links[h as usize].deadline)
            .min()
    }

    /// Pops one expired entry (deadline <= now), if any.
    pub fn pop_expired(&mut self, now: u64) -> Option<(usize, TimerKind)> {
        for k in 0..KINDS {
            let h = self.heads[k];
            if h != NIL && self.links[h as usize].deadline <= now {
                let kind = self.links[h as usize].kind?;
                self.cancel(h as usize);
                return Some((h as usize, kind));
            }
        }
        None
    }

    /// The oldest entry of `kind` (used to evict the longest-idle connection).
    pub fn oldest(&self, kind: TimerKind) -> Option<usize> {
        let h = self.heads[kind as usize];
        (h != NIL).then_some(h as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_stay_sorted_and_cancel_is_exact() {
        let mut t = Timers::new(4);
        t.arm(0, TimerKind::Idle, 100);
        t.arm(1, TimerKind::Idle, 200);
        t.arm(2, TimerKind::Header, 150);
        assert_eq!(t.next_deadline(), Some(100));
        t.arm(0, TimerKind::Idle, 300); // re-arm moves it to the tail
        assert_eq!(t.oldest(TimerKind::Idle), Some(1));
        assert_eq!(t.pop_expired(160), Some((2, TimerKind::Header)));
        assert_eq!(t.pop_expired(160), None);
        t.cancel(1);
        assert_eq!(t.next_deadline(), Some(300));
        assert_eq!(t.pop_expired(1000), Some((0, TimerKind::Idle)));
        assert_eq!(t.next_deadline(), None);
    }
}
