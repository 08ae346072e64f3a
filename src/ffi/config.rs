//! `ConnectionConfig` (the C view of the settings), its defaults, and
//! `ConnectionConfig_Default`; `limits_from_config` checks every field and
//! builds the reactor's `Limits`, rejecting values that would make a limit
//! meaningless (zero timeouts, a header limit smaller than a request line)
//! with `CONNECTION_ERR_INVALID`.

use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::raw::{c_char, c_int};

use super::error::*;
use super::guard_int;
use crate::http::response::valid_header_value;
use crate::http::MAX_HEADERS_CAP;
use crate::reactor::Limits;

/// Settings for `Connection_InitWith`. Fill it with `ConnectionConfig_Default`
/// first, then change fields; the struct is only read during the call, and
/// the strings it points to are copied.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ConnectionConfig {
    /// IPv4 or IPv6 literal (or "localhost") to listen on. Default "0.0.0.0".
    /// NULL means the default. Borrowed for the duration of the call.
    pub host: *const c_char,
    /// TCP port. Default 8080; 0 picks a free port (see `Connection_Port`).
    pub port: u16,
    /// listen(2) backlog. Default SOMAXCONN. Must be > 0.
    pub backlog: i32,
    /// Most client connections open at once. Default 10000. At the limit,
    /// idle keep-alive connections are closed to make room, else accepting
    /// pauses until a connection closes.
    pub max_connections: u32,
    /// Time from the first byte of a request until its header section is
    /// complete. Default 10000 ms.
    pub header_timeout_ms: u32,
    /// Time allowed for a request body once its headers are in. Default 30000 ms.
    pub body_timeout_ms: u32,
    /// Time a keep-alive connection may sit idle between requests, and time an
    /// open chunked response may go without output. Default 60000 ms. An idle
    /// keep-alive connection is closed at most 8 ms after it (its deadline is
    /// kept on an 8 ms grain, so a busy connection does not move its timer on
    /// every request).
    pub idle_timeout_ms: u32,
    /// Time queued output may wait without any byte being accepted by the
    /// kernel (a client that stopped reading). Default 30000 ms.
    pub send_timeout_ms: u32,
    /// Lingering close after the last response: time to wait for the client's
    /// FIN while discarding its input. Default 2000 ms.
    pub linger_timeout_ms: u32,
    /// After `Connection_Stop`, time in-flight responses get to finish.
    /// Default 5000 ms.
    pub drain_timeout_ms: u32,
    /// Longest request line (method, target, version); longer → 414.
    /// Default 8192.
    pub max_request_line_bytes: u32,
    /// Largest request header section, request line included; larger → 431.
    /// Default 16384.
    pub max_header_bytes: u32,
    /// Most header fields in a request; more → 431. Default 128 (real
    /// clients behind proxies stay well below it), at most 256.
    pub max_headers: u32,
    /// Largest request body; larger → 413. Default 1 MiB.
    pub max_body_bytes: u64,
    /// Output queued for one connection above which it stops reading new
    /// requests and `Response_WriteChunk` returns `CONNECTION_ERR_WOULD_BLOCK`.
    /// Default 256 KiB.
    pub output_high_water: u64,
    /// Set SO_REUSEPORT so several processes or threads can each have their
    /// own listener on the same port. Default false.
    pub reuse_port: bool,
    /// Value of a `Server` header added to every response, or NULL for none
    /// (the default). Copied during the call.
    pub server_header: *const c_char,
    /// Memory held by output queues across all connections (what the
    /// library copied: `Response_Send` bodies, chunks, heads; not the
    /// bodies lent with `Response_SendBorrowed`) at which no connection
    /// starts a new request and `Response_WriteChunk` returns
    /// `CONNECTION_ERR_WOULD_BLOCK`, until clients have read enough (every
    /// wait is still bounded by the timeouts). Bounds what slow readers can
    /// make the server hold: this plus one response. Default 64 MiB.
    pub output_high_water_total: u64,
    /// Time a response kept with `Response_Defer` may wait for the
    /// application, counted from the `Response_Defer` call. When it passes
    /// unanswered, the library answers 503 (and logs a warning), and the
    /// handle is closed for the application (`CONNECTION_ERR_CLOSED`; its
    /// cleanup gets `CONNECTION_CLOSE_TIMEOUT`). Default 30000 ms. Must be
    /// > 0, like every timeout (for long polling, set a large value).
    pub response_timeout_ms: u32,
    /// Tasks posted with `Connection_Post` and not yet run, at most; a post
    /// beyond it returns `CONNECTION_ERR_QUEUE_FULL` (nothing queued).
    /// Default 65536; 1 to 16777216.
    pub max_pending_posts: u32,
    /// Start with no listener: `host` and `port` are ignored, and the
    /// caller adds its listeners with `Connection_AddListen*` (or
    /// `Connection_AddSystemdListeners`). Default false: `host`:`port` is
    /// bound as listener 0.
    pub no_default_listener: bool,
}

impl Default for ConnectionConfig {
    /// The reactor's defaults (`Limits::default`), in C form.
    fn default() -> Self {
        let d = Limits::default();
        ConnectionConfig {
            host: std::ptr::null(),
            port: d.addr.port(),
            backlog: d.backlog,
            max_connections: d.max_connections as u32,
            header_timeout_ms: d.header_timeout_ms as u32,
            body_timeout_ms: d.body_timeout_ms as u32,
            idle_timeout_ms: d.idle_timeout_ms as u32,
            send_timeout_ms: d.send_timeout_ms as u32,
            linger_timeout_ms: d.linger_timeout_ms as u32,
            drain_timeout_ms: d.drain_timeout_ms as u32,
            max_request_line_bytes: d.max_request_line as u32,
            max_header_bytes: d.max_header_bytes as u32,
            max_headers: d.max_headers as u32,
            max_body_bytes: d.max_body_bytes as u64,
            output_high_water: d.output_high_water as u64,
            reuse_port: d.reuse_port,
            server_header: std::ptr::null(),
            output_high_water_total: d.output_high_water_total as u64,
            response_timeout_ms: d.response_timeout_ms as u32,
            max_pending_posts: d.max_pending_posts as u32,
            no_default_listener: !d.listen,
        }
    }
}

/// Largest value accepted for a byte limit: keeps all arithmetic on
/// buffer sizes far from overflow.
const MAX_BYTES: u64 = 1 << 40;

/// Largest `max_pending_posts` (16 bytes each: 256 MiB).
const MAX_PENDING_POSTS: u32 = 1 << 24;

/// Validates `cfg` into the reactor's `Limits`.
///
/// # Safety
/// `cfg.host` and `cfg.server_header` must each be NULL or point to a
/// NUL-terminated string.
pub unsafe fn limits_from_config(cfg: &ConnectionConfig) -> Result<Limits, i32> {
    let ip = if cfg.host.is_null() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        // SAFETY: caller guarantees a NUL-terminated string.
        let host = unsafe { CStr::from_ptr(cfg.host) }
            .to_str()
            .map_err(|_| CONNECTION_ERR_ADDR)?;
        parse_host(host).ok_or(CONNECTION_ERR_ADDR)?
    };
    let server_line = if cfg.server_header.is_null() {
        Vec::new()
    } else {
        // SAFETY: caller guarantees a NUL-terminated string.
        let value = unsafe { CStr::from_ptr(cfg.server_header) }.to_bytes();
        if value.is_empty() || !valid_header_value(value) {
            return Err(CONNECTION_ERR_HEADER);
        }
        let mut line = b"Server: ".to_vec();
        line.extend_from_slice(value);
        line.extend_from_slice(b"\r\n");
        line
    };
    let timeouts = [
        cfg.header_timeout_ms,
        cfg.body_timeout_ms,
        cfg.idle_timeout_ms,
        cfg.send_timeout_ms,
        cfg.linger_timeout_ms,
        cfg.drain_timeout_ms,
        cfg.response_timeout_ms,
    ];
    if timeouts.contains(&0) {
        return Err(CONNECTION_ERR_INVALID);
    }
    if cfg.backlog <= 0 || cfg.max_connections == 0 || cfg.max_connections > 1_000_000 {
        return Err(CONNECTION_ERR_INVALID);
    }
    if cfg.max_headers == 0 || cfg.max_headers as usize > MAX_HEADERS_CAP {
        return Err(CONNECTION_ERR_INVALID);
    }
    // A request line needs at least "GET / HTTP/1.1\r\n"; the header
    // section includes the request line.
    if cfg.max_request_line_bytes < 16
        || cfg.max_header_bytes < cfg.max_request_line_bytes
        || cfg.max_header_bytes as u64 > MAX_BYTES
    {
        return Err(CONNECTION_ERR_INVALID);
    }
    if cfg.max_body_bytes > MAX_BYTES
        || cfg.output_high_water == 0
        || cfg.output_high_water > MAX_BYTES
        || cfg.output_high_water_total == 0
        || cfg.output_high_water_total > MAX_BYTES
    {
        return Err(CONNECTION_ERR_INVALID);
    }
    if cfg.max_pending_posts == 0 || cfg.max_pending_posts > MAX_PENDING_POSTS {
        return Err(CONNECTION_ERR_INVALID);
    }
    Ok(Limits {
        addr: SocketAddr::new(ip, cfg.port),
        backlog: cfg.backlog,
        reuse_port: cfg.reuse_port,
        max_connections: cfg.max_connections as usize,
        header_timeout_ms: cfg.header_timeout_ms as u64,
        body_timeout_ms: cfg.body_timeout_ms as u64,
        idle_timeout_ms: cfg.idle_timeout_ms as u64,
        send_timeout_ms: cfg.send_timeout_ms as u64,
        linger_timeout_ms: cfg.linger_timeout_ms as u64,
        drain_timeout_ms: cfg.drain_timeout_ms as u64,
        max_request_line: cfg.max_request_line_bytes as usize,
        max_header_bytes: cfg.max_header_bytes as usize,
        max_headers: cfg.max_headers as usize,
        max_body_bytes: cfg.max_body_bytes as usize,
        output_high_water: cfg.output_high_water as usize,
        output_high_water_total: cfg.output_high_water_total as usize,
        server_line,
        trusted_gateway: false,
        response_timeout_ms: cfg.response_timeout_ms as u64,
        max_pending_posts: cfg.max_pending_posts as usize,
        listen: !cfg.no_default_listener,
    })
}

pub(super) fn parse_host(host: &str) -> Option<IpAddr> {
    if host.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let trimmed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    trimmed.parse().ok()
}

/// Fills `cfg` with the defaults (see `ConnectionConfig`'s field comments).
/// Returns 0 or `CONNECTION_ERR_NULL`.
///
/// Thread: any thread.
#[no_mangle]
pub unsafe extern "C" fn ConnectionConfig_Default(cfg: *mut ConnectionConfig) -> c_int {
    guard_int(|| {
        if cfg.is_null() {
            return CONNECTION_ERR_NULL;
        }
        // SAFETY: non-NULL and, per the contract, points to writable
        // storage for a ConnectionConfig (possibly uninitialised: we write
        // without reading).
        unsafe { cfg.write(ConnectionConfig::default()) };
        CONNECTION_OK
    })
}
