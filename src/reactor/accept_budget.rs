//! How many clients to accept per wake-up of the listener.
//!
//! Accepting until EAGAIN costs one accept4 that fails on every wake-up:
//! under `Connection: close` churn with a shallow backlog (one or two
//! clients per wake-up) that is 0.7 system calls per connection.
//! Accepting one per wake-up (nginx's default) costs an `epoll_wait` per
//! client instead when the backlog is deep. So the budget follows the
//! backlog: the number the last drain found (no EAGAIN next time if as many
//! wait again), doubled each time a wake-up uses all of it, up to `MAX`.
//!
//! Stopping before EAGAIN loses nothing: the listener is level-triggered,
//! so while clients wait, the next `epoll_wait` returns at once with it.
//! And `MAX` bounds the accepts between two batches of the other
//! connections' events (tests/api/accept_burst.rs).

/// At most this many accepts per wake-up.
const MAX: u16 = 64;

#[derive(Debug)]
pub struct AcceptBudget {
    limit: u16,
}

impl Default for AcceptBudget {
    fn default() -> Self {
        AcceptBudget { limit: 1 }
    }
}

impl AcceptBudget {
    /// Accepts allowed in this wake-up.
    pub fn limit(&self) -> u16 {
        self.limit
    }

    /// The wake-up is over: `accepted` clients taken (or turned away or
    /// found dead), and whether the backlog was seen empty (EAGAIN).
    pub fn record(&mut self, accepted: u16, drained: bool) {
        self.limit = if drained {
            accepted.clamp(1, MAX)
        } else if accepted >= self.limit {
            self.limit.saturating_mul(2).min(MAX)
        } else {
            self.limit
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_backlog() {
        let mut b = AcceptBudget::default();
        assert_eq!(b.limit(), 1);
        // A deep backlog: the budget doubles while each wake-up uses it all.
        for want in [2, 4, 8, 16, 32, 64, 64] {
            let used = b.limit();
            b.record(used, false);
            assert_eq!(b.limit(), want);
        }
        // A drain finds 3: next time 3, with no EAGAIN if 3 wait again.
        b.record(3, true);
        assert_eq!(b.limit(), 3);
        // A spurious wake-up (nothing there) falls back to one.
        b.record(0, true);
        assert_eq!(b.limit(), 1);
    }
}
