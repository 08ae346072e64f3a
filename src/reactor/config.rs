//! `Limits`: the validated settings one event loop runs with.
//!
//! Every client-driven resource has a field here: buffers, header counts,
//! queues and each kind of wait. The C boundary builds it from
//! `ConnectionConfig` (checking each value); the defaults live here, once.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::http::ParseLimits;

#[derive(Clone, Debug)]
pub struct Limits {
    pub addr: SocketAddr,
    pub backlog: i32,
    pub reuse_port: bool,
    pub max_connections: usize,
    pub header_timeout_ms: u64,
    pub body_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub send_timeout_ms: u64,
    pub linger_timeout_ms: u64,
    pub drain_timeout_ms: u64,
    pub max_request_line: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_body_bytes: usize,
    pub output_high_water: usize,
    /// Memory held by output queues across all connections at which no
    /// connection starts a new request and chunks are refused.
    pub output_high_water_total: usize,
    /// Bytes of a `Server: ...\r\n` line, or empty.
    pub server_line: Vec<u8>,
    /// See `ParseLimits::trusted_gateway`.
    pub trusted_gateway: bool,
    /// Time a deferred response may wait for the application before the
    /// library answers 503 in its place.
    pub response_timeout_ms: u64,
    /// Tasks posted (`Connection_Post`) and not yet run, at most.
    pub max_pending_posts: usize,
    /// Whether the loop binds `addr` as listener 0 when created.
    pub listen: bool,
}

impl Default for Limits {
    fn default() -> Self {
        let parse = ParseLimits::default();
        Limits {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080),
            backlog: libc::SOMAXCONN,
            reuse_port: false,
            max_connections: 10_000,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            idle_timeout_ms: 60_000,
            send_timeout_ms: 30_000,
            linger_timeout_ms: 2_000,
            drain_timeout_ms: 5_000,
            max_request_line: parse.max_request_line,
            max_header_bytes: parse.max_header_bytes,
            max_headers: parse.max_headers,
            max_body_bytes: parse.max_body_bytes,
            output_high_water: 256 * 1024,
            output_high_water_total: 64 * 1024 * 1024,
            server_line: Vec::new(),
            trusted_gateway: parse.trusted_gateway,
            response_timeout_ms: 30_000,
            max_pending_posts: 65_536,
            listen: true,
        }
    }
}

impl Limits {
    /// The subset the request parser needs.
    pub fn parse(&self) -> ParseLimits {
        ParseLimits {
            max_request_line: self.max_request_line,
            max_header_bytes: self.max_header_bytes,
            max_headers: self.max_headers,
            max_body_bytes: self.max_body_bytes,
            trusted_gateway: self.trusted_gateway,
        }
    }
}
