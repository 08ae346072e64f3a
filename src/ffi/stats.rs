//! `ConnectionStats`: counters for operators and tests (the reactor's
//! `Stats` in C form).

use crate::reactor::Stats;

/// A snapshot of a Connection's counters (`Connection_GetStats`). Every
/// field is a running total since Init, except `active_connections`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnectionStats {
    /// Client connections open now.
    pub active_connections: u64,
    /// Client connections accepted.
    pub accepted: u64,
    /// Requests parsed and handed to the handler.
    pub requests: u64,
    /// Responses completed (including error responses sent by the library).
    pub responses: u64,
    /// Connections closed after a completed response (`Connection: close`, HTTP/1.0).
    pub closed_completed: u64,
    /// Connections closed because the peer finished (FIN) or closed while idle.
    pub closed_peer: u64,
    /// Connections closed by a reset (RST, ECONNRESET, EPIPE).
    pub closed_reset: u64,
    /// Connections closed by a header, body, idle, send or linger timeout.
    pub closed_timeout: u64,
    /// Idle connections closed to make room at `max_connections`.
    pub closed_limit: u64,
    /// Connections closed after a protocol error response (4xx/5xx from the library).
    pub closed_protocol: u64,
    /// Connections closed by `Connection_Stop` / `Connection_Destroy`.
    pub closed_shutdown: u64,
    /// Connections closed by a local error (unexpected errno, producer error).
    pub closed_error: u64,
    /// Times accepting was paused (connection limit or descriptor shortage).
    pub accept_paused: u64,
    /// Times accept failed with EMFILE/ENFILE (the waiting client was
    /// accepted and closed through the reserved descriptor when possible).
    pub accept_fd_exhausted: u64,
    /// Responses kept past their handler with `Response_Defer`.
    pub deferred: u64,
    /// Deferred responses the library answered 503 at `response_timeout_ms`.
    pub response_timeouts: u64,
    /// Connections handed to the application by `Response_Upgrade` (from
    /// then on neither counted in `active_connections` nor closed by the
    /// library).
    pub upgraded: u64,
}

impl From<Stats> for ConnectionStats {
    fn from(s: Stats) -> Self {
        ConnectionStats {
            active_connections: s.active_connections,
            accepted: s.accepted,
            requests: s.requests,
            responses: s.responses,
            closed_completed: s.closed_completed,
            closed_peer: s.closed_peer,
            closed_reset: s.closed_reset,
            closed_timeout: s.closed_timeout,
            closed_limit: s.closed_limit,
            closed_protocol: s.closed_protocol,
            closed_shutdown: s.closed_shutdown,
            closed_error: s.closed_error,
            accept_paused: s.accept_paused,
            accept_fd_exhausted: s.accept_fd_exhausted,
            deferred: s.deferred,
            response_timeouts: s.response_timeouts,
            upgraded: s.upgraded,
        }
    }
}
