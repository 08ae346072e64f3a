//! Whether to try a `recv` on a client the moment it is accepted.
//!
//! Trying pays off when the request is already there (a busy server, a
//! client that writes right after its handshake while the server was
//! elsewhere): the request is answered at once, and a `Connection: close`
//! client never costs an `epoll_ctl` or a wake-up. It costs a `recv` that
//! returns EAGAIN when the request is not there yet, which is the usual case
//! for an idle server: it accepts while the client is still between
//! `connect()` and `write()`. Which case holds depends on the clients and
//! the load, so the core keeps score of recent first reads and stops trying
//! while most of them miss, still trying every `PROBE_EVERY`th client so it
//! notices when that changes.
//!
//! Not trying never loses data: the client is then added to epoll, and an
//! edge-triggered `EPOLL_CTL_ADD` reports readiness that arose before it.

/// A hit saves about two system calls (the ADD and a wake-up), a miss costs
/// one: so trying is worth it while more than a third of first reads hit.
const HIT_GAIN: i8 = 2;
const MISS_COST: i8 = 1;
/// Bounds on the score, so a long run of either kind is forgotten quickly.
const SCORE_LIMIT: i8 = 8;
/// While not trying, every this many new clients are tried anyway.
const PROBE_EVERY: u8 = 16;

/// Starts at score 0: new clients are read at once until first reads miss.
#[derive(Debug, Default)]
pub struct FirstRead {
    /// Recent outcomes: try while it is >= 0.
    score: i8,
    /// New clients not tried since the last probe.
    untried: u8,
}

impl FirstRead {
    /// Whether to read a new client before adding it to epoll.
    pub fn should_try(&mut self) -> bool {
        if self.score >= 0 {
            return true;
        }
        self.untried += 1;
        if self.untried >= PROBE_EVERY {
            self.untried = 0;
            return true;
        }
        false
    }

    /// The outcome of a first read: data (or EOF) was there, or EAGAIN.
    pub fn record(&mut self, had_data: bool) {
        self.score = if had_data {
            (self.score + HIT_GAIN).min(SCORE_LIMIT)
        } else {
            (self.score - MISS_COST).max(-SCORE_LIMIT)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tries(f: &mut FirstRead, clients: usize) -> usize {
        (0..clients).filter(|_| f.should_try()).count()
    }

    #[test]
    fn tries_while_first_reads_find_data() {
        let mut f = FirstRead::default();
        for _ in 0..100 {
            assert!(f.should_try());
            f.record(true);
        }
    }

    #[test]
    fn stops_after_misses_but_keeps_probing() {
        let mut f = FirstRead::default();
        // Misses push the score below zero: from then on only probes.
        let mut tried = 0;
        for _ in 0..160 {
            if f.should_try() {
                tried += 1;
                f.record(false);
            }
        }
        assert!(tried <= 1 + 160 / PROBE_EVERY as usize, "tried {tried}");
        assert!(tried >= 160 / PROBE_EVERY as usize, "tried {tried}");
    }

    #[test]
    fn returns_to_trying_when_data_comes_back() {
        let mut f = FirstRead::default();
        for _ in 0..50 {
            if f.should_try() {
                f.record(false);
            }
        }
        assert!(!f.should_try());
        // Every probe now finds data: a handful of probes are enough.
        let mut clients = 0;
        while f.score < 0 {
            clients += 1;
            if f.should_try() {
                f.record(true);
            }
            assert!(clients < 100, "never went back to trying");
        }
        assert_eq!(tries(&mut f, 10), 10);
    }

    #[test]
    fn one_hit_in_three_keeps_it_trying() {
        let mut f = FirstRead::default();
        for i in 0..300 {
            assert!(f.should_try(), "stopped at {i}");
            f.record(i % 3 == 0);
        }
    }
}
