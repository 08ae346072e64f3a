//! Counters for operators and tests.

use super::error::CloseReason;

/// Running totals since the loop was created.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub active_connections: u64,
    pub accepted: u64,
    pub requests: u64,
    pub responses: u64,
    pub closed_completed: u64,
    pub closed_peer: u64,
    pub closed_reset: u64,
    pub closed_timeout: u64,
    pub closed_limit: u64,
    pub closed_protocol: u64,
    pub closed_shutdown: u64,
    pub closed_error: u64,
    pub accept_paused: u64,
    pub accept_fd_exhausted: u64,
    /// Responses kept by their handler with `Response_Defer`.
    pub deferred: u64,
    /// Deferred responses answered 503 at `response_timeout_ms`.
    pub response_timeouts: u64,
    /// Connections handed to the application after a protocol upgrade
    /// (no longer the loop's: neither open nor closed here).
    pub upgraded: u64,
}

impl Stats {
    pub fn count_close(&mut self, reason: CloseReason) {
        *match reason {
            CloseReason::Completed => &mut self.closed_completed,
            CloseReason::PeerClosed => &mut self.closed_peer,
            CloseReason::Reset => &mut self.closed_reset,
            CloseReason::Timeout => &mut self.closed_timeout,
            CloseReason::Shutdown => &mut self.closed_shutdown,
            CloseReason::Error => &mut self.closed_error,
            CloseReason::Limit => &mut self.closed_limit,
            CloseReason::Protocol => &mut self.closed_protocol,
        } += 1;
    }
}
