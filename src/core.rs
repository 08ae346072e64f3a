//! The event loop (muduo's EventLoop + Acceptor, in one reactor).
//!
//! `Core` owns the epoll instance, the listener, every client connection and
//! every write. Application code runs only inside callbacks (the request
//! handler, stream producers and cleanups), and those are invoked only from
//! the few `unsafe fn(core: *mut Core, ..)` drivers at the bottom of this
//! file, never while a `&mut Core` is alive: a callback may call back into
//! `Response_*`, which reaches the core through the same raw pointer.
//!
//! Connection life cycle, per `step`:
//! read until EAGAIN → parse (httparse) → dispatch to the handler → queue the
//! response → flush with `send(MSG_NOSIGNAL)` → keep-alive, or close (with a
//! lingering half-close when the client may still be sending).

use std::os::raw::{c_int, c_void};

use crate::buffer_pool::BufferPool;
use crate::config::Limits;
use crate::conn::{Conn, Stream, Upload};
use crate::error::ConnectionCloseReason as Reason;
use crate::error::*;
use crate::ffi::request::Request;
use crate::ffi::response::{ConnectionCleanup, ConnectionProducer, Phase, Response};
use crate::ffi::stats::ConnectionStats;
use crate::first_read::FirstRead;
use crate::http::chunked::{ChunkedDecoder, Progress};
use crate::http::date::DateCache;
use crate::http::request::{parse_head, Framing, Head, HeaderSpan, Parsed};
use crate::http::response::{chunk_size_line, push_decimal, push_status_line, status_allows_body};
use crate::slab::{Slab, Token};
use crate::sys::{self, Fd, Interest, Poller, Readiness};
use crate::timer::{TimerKind, Timers};
use crate::transport::{Kernel, Memory, Transport};

/// Request handler: answer through `resp` (see `Response_*`). `req` is
/// borrowed for the duration of the call.
pub type ConnectionHandler =
    Option<unsafe extern "C" fn(req: *const Request, resp: *mut Response, user: *mut c_void)>;

/// Streamed request body handler: called with each piece of a streamed
/// body (`len` > 0) as it arrives, in order, before the request handler
/// (which then sees an empty body). `req` and `data` are borrowed for the
/// call; `Request_Id(req)` tells requests apart. Return 0 to go on, or an
/// HTTP status 400..=599 to refuse the request (the library answers with
/// it and closes the connection; the request handler is not called).
pub type ConnectionBodyHandler = Option<
    unsafe extern "C" fn(
        req: *const Request,
        data: *const u8,
        len: usize,
        user: *mut c_void,
    ) -> c_int,
>;

const LISTENER: Token = Token(u64::MAX);
const STOP: Token = Token(u64::MAX - 1);
const NOTIFY: Token = Token(u64::MAX - 2);

/// Events taken from one epoll_wait.
const EVENT_BATCH: usize = 1024;
/// Size of the pooled read and write buffers.
const BUFFER_SIZE: usize = 16 * 1024;
/// Bytes one connection may read per turn before others get theirs.
const READ_BUDGET: usize = 256 * 1024;
/// Largest piece a stream producer is asked for.
const PRODUCE_MAX: usize = 64 * 1024;
/// Input discarded during a lingering close before giving up on the client.
const LINGER_DISCARD_MAX: usize = 1024 * 1024;
/// Back-off before retrying accept after ENOBUFS/ENOMEM or an fd shortage
/// with no spare descriptor.
const ACCEPT_RETRY_MS: u64 = 100;

/// What a connection needs from application code next.
enum Step {
    Idle,
    Dispatch,
    BodyPiece,
    Produce {
        producer: unsafe extern "C" fn(*mut c_void, *mut u8, usize) -> isize,
        user: *mut c_void,
        buf: *mut u8,
        cap: usize,
    },
}

/// Outcome of using the spare descriptor on EMFILE.
enum Shed {
    TurnedAway,
    BacklogEmpty,
    NoSpare,
}

/// Outcome of trying to parse the next request.
enum Next {
    NeedMore,
    Dispatch,
    /// A piece of a streamed body is ready for the body handler.
    BodyPiece,
    Error(u16),
}

/// The connection's output buffer, taken from the pool if it holds none
/// (an idle connection gives its buffers back).
fn with_buffer<'a>(buf: &'a mut Vec<u8>, pool: &mut BufferPool) -> &'a mut Vec<u8> {
    if buf.capacity() == 0 {
        *buf = pool.take();
    }
    buf
}

/// Status line, Date and (if configured) Server: how every response head
/// starts, the library's own error responses included.
fn start_head(out: &mut Vec<u8>, status: u16, date: &DateCache, server_line: &[u8]) {
    push_status_line(out, status);
    out.extend_from_slice(date.line());
    out.extend_from_slice(server_line);
}

/// NUL-terminates every field of a parsed head in place: the byte after
/// each one is a delimiter (space, '?', ':', CR or OWS) no longer needed.
fn terminate_fields(buf: &mut [u8], head: &Head, headers: &[HeaderSpan]) {
    buf[head.method.end()] = 0;
    if let Some(mark) = head.query_mark {
        buf[mark as usize] = 0;
        buf[head.query.end()] = 0;
    } else {
        buf[head.path.end()] = 0;
    }
    for h in headers {
        buf[h.name.end()] = 0;
        buf[h.value.end()] = 0;
    }
}

pub struct Core {
    /// This core's own address (from Box::into_raw); handed to responses.
    self_ptr: *mut Core,
    /// Moves bytes for client connections (real sockets, or memory).
    io: Box<dyn Transport>,
    /// Connections live in memory: no epoll registration, manual clock.
    memory: bool,
    linger_scratch: Vec<u8>,
    limits: Limits,
    poller: Poller,
    listener: Fd,
    accept_paused: bool,
    accept_retry_at: Option<u64>,
    /// Spare descriptor released to accept-and-close on EMFILE.
    spare_fd: Fd,
    /// Whether new clients are read before they are added to epoll.
    first_read: FirstRead,
    /// Written by `Connection_Stop` (async-signal-safe).
    stop_fd: Fd,
    /// Written when a response is advanced from outside the loop, so an
    /// embedding loop polling `Connection_Fd` wakes up.
    notify_fd: Fd,
    port: u16,
    conns: Slab<Conn>,
    timers: Timers,
    pool: BufferPool,
    spare_responses: Vec<*mut Response>,
    detached: Vec<*mut Response>,
    handler: ConnectionHandler,
    handler_user: *mut c_void,
    request: Request,
    header_spans: Vec<HeaderSpan>,
    /// Length of the request being dispatched (head + raw body).
    dispatch_len: usize,
    /// Size of the streamed-body piece being delivered.
    upload_piece: usize,
    /// Streamed request bodies go here (see Connection_SetBodyHandler).
    body_handler: ConnectionBodyHandler,
    body_user: *mut c_void,
    /// Content-Length above which bodies are streamed (chunked ones always are).
    stream_above: usize,
    next_request_id: u64,
    stats: ConnectionStats,
    date: DateCache,
    now: u64,
    stopping: bool,
    drain_deadline: u64,
    /// Application code is running (re-entry guard).
    pub(crate) in_callback: bool,
    /// Connections with work left (read budget used up, or advanced from
    /// outside the loop).
    ready: Vec<Token>,
    ready_scratch: Vec<Token>,
    cleanups: Vec<(
        unsafe extern "C" fn(*mut c_void, Reason),
        *mut c_void,
        Reason,
    )>,
}

impl Core {
    /// Creates the listener, epoll instance and eventfds.
    pub fn create(limits: Limits, stop_fd: Fd) -> Result<*mut Core, c_int> {
        let poller = Poller::new(EVENT_BATCH).map_err(|e| from_io(&e))?;
        let listener = sys::listen_tcp(&limits.addr, limits.backlog, limits.reuse_port)
            .map_err(|e| from_io(&e))?;
        let cleanup_on_err = |code: c_int| {
            sys::close(listener);
            code
        };
        let port = sys::local_port(listener).map_err(|e| cleanup_on_err(from_io(&e)))?;
        let notify_fd = sys::eventfd().map_err(|e| cleanup_on_err(from_io(&e)))?;
        let register = poller
            .add(listener, Interest::READ_LEVEL, LISTENER.0)
            .and_then(|_| poller.add(stop_fd, Interest::READ_LEVEL, STOP.0))
            .and_then(|_| poller.add(notify_fd, Interest::READ_LEVEL, NOTIFY.0));
        if let Err(e) = register {
            sys::close(notify_fd);
            return Err(cleanup_on_err(from_io(&e)));
        }
        let raw = Core::build(
            limits,
            poller,
            listener,
            port,
            stop_fd,
            notify_fd,
            Box::new(Kernel),
        );
        // SAFETY: `raw` was just built and is not shared yet.
        let addr = unsafe { (*raw).limits.addr };
        log::info!("listening on {}:{}", addr.ip(), port);
        Ok(raw)
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        limits: Limits,
        poller: Poller,
        listener: Fd,
        port: u16,
        stop_fd: Fd,
        notify_fd: Fd,
        io: Box<dyn Transport>,
    ) -> *mut Core {
        let initial = limits.max_connections.min(1024);
        let core = Box::new(Core {
            self_ptr: std::ptr::null_mut(),
            io,
            memory: false,
            linger_scratch: Vec::with_capacity(4096),
            poller,
            listener,
            accept_paused: false,
            accept_retry_at: None,
            first_read: FirstRead::default(),
            spare_fd: if listener >= 0 {
                sys::open_spare_fd()
            } else {
                -1
            },
            stop_fd,
            notify_fd,
            port,
            conns: Slab::with_capacity(initial),
            timers: Timers::new(initial),
            pool: BufferPool::new(BUFFER_SIZE, 256),
            spare_responses: Vec::with_capacity(64),
            detached: Vec::new(),
            handler: None,
            handler_user: std::ptr::null_mut(),
            request: Request::new(limits.max_headers),
            header_spans: Vec::with_capacity(limits.max_headers),
            dispatch_len: 0,
            upload_piece: 0,
            body_handler: None,
            body_user: std::ptr::null_mut(),
            stream_above: 0,
            next_request_id: 1,
            stats: ConnectionStats::default(),
            date: DateCache::default(),
            now: sys::monotonic_ms(),
            stopping: false,
            drain_deadline: 0,
            in_callback: false,
            ready: Vec::with_capacity(64),
            ready_scratch: Vec::with_capacity(64),
            cleanups: Vec::with_capacity(16),
            limits,
        });
        let raw = Box::into_raw(core);
        // SAFETY: `raw` was just produced by Box::into_raw and is unaliased.
        unsafe { (*raw).self_ptr = raw };
        raw
    }

    /// A core without a listener whose connections live in `memory`, for
    /// the fuzz targets and split-anywhere tests. Its clock only moves
    /// through `advance_clock`. Free it with `Core::destroy`.
    #[doc(hidden)]
    pub fn new_in_memory(limits: Limits, memory: Memory) -> Result<*mut Core, c_int> {
        let poller = Poller::new(16).map_err(|e| from_io(&e))?;
        let notify_fd = sys::eventfd().map_err(|e| from_io(&e))?;
        let raw = Core::build(limits, poller, -1, 0, -1, notify_fd, Box::new(memory));
        // SAFETY: just built, not shared.
        unsafe {
            (*raw).memory = true;
            (*raw).now = 1_000_000;
        }
        Ok(raw)
    }

    /// Adds an in-memory connection whose socket is `fd` in the `Memory`
    /// transport; returns its token.
    ///
    /// # Safety
    /// `core` came from `new_in_memory` and is not borrowed.
    #[doc(hidden)]
    pub unsafe fn attach_memory_conn(core: *mut Core, fd: Fd) -> Token {
        // SAFETY: contract.
        let me = unsafe { &mut *core };
        let token = me.conns.next_token();
        let conn = Conn::new(token, fd, sys::PeerAddr::unspecified(), me.now);
        me.conns.insert(conn);
        me.stats.accepted += 1;
        me.arm_timer(token);
        token
    }

    /// Tells an in-memory connection it is readable and writable, and runs it.
    ///
    /// # Safety
    /// `core` came from `new_in_memory` and is not borrowed.
    #[doc(hidden)]
    pub unsafe fn pump(core: *mut Core, token: Token) {
        // SAFETY: contract; short borrow.
        if let Some(c) = unsafe { (*core).conns.get_mut(token) } {
            c.readable = true;
            c.write_blocked = false;
        } else {
            return;
        }
        // SAFETY: contract.
        unsafe { Core::drive(core, token) };
    }

    /// Moves the in-memory clock on and expires timers.
    ///
    /// # Safety
    /// `core` came from `new_in_memory` and is not borrowed.
    #[doc(hidden)]
    pub unsafe fn advance_clock(core: *mut Core, ms: u64) {
        // SAFETY: contract; short borrows, cleanups run with none alive.
        unsafe {
            (*core).now += ms;
            (*core).expire_timers();
            Core::run_cleanups(core);
        }
    }

    /// Whether the connection is still open.
    pub fn is_open(&self, token: Token) -> bool {
        self.conns.get(token).is_some()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn epoll_fd(&self) -> Fd {
        self.poller.fd()
    }

    pub fn set_handler(&mut self, handler: ConnectionHandler, user: *mut c_void) {
        self.handler = handler;
        self.handler_user = user;
    }

    /// See `Connection_SetTrustedGateway`.
    pub fn set_trusted_gateway(&mut self, trusted: bool) {
        self.limits.trusted_gateway = trusted;
    }

    pub fn set_body_handler(
        &mut self,
        handler: ConnectionBodyHandler,
        stream_above: usize,
        user: *mut c_void,
    ) {
        self.body_handler = handler;
        self.stream_above = stream_above;
        self.body_user = user;
    }

    pub fn stats(&self) -> ConnectionStats {
        let mut s = self.stats;
        s.active_connections = self.conns.len() as u64;
        s
    }

    fn tick(&mut self) {
        if self.memory {
            // Deterministic: the clock moves only through advance_clock and
            // the Date line stays at the epoch.
            return;
        }
        self.now = sys::monotonic_ms();
        self.date.update(sys::unix_seconds());
    }

    // ----- accepting ---------------------------------------------------

    /// Accepts until EAGAIN, the connection limit, or an fd shortage.
    fn accept_ready(&mut self) {
        while !self.stopping && self.listener >= 0 && !self.accept_paused {
            if self.conns.len() >= self.limits.max_connections && !self.evict_idle() {
                self.pause_accept(None);
                return;
            }
            match sys::accept(self.listener) {
                Ok((fd, peer)) => self.register(fd, peer),
                Err(e) => match e.raw_os_error().unwrap_or(0) {
                    libc::EAGAIN => return,
                    // The connection died in the backlog, or a firewall
                    // refused it: nothing to do for it, keep accepting.
                    libc::ECONNABORTED
                    | libc::EPROTO
                    | libc::EPERM
                    | libc::ENETDOWN
                    | libc::ENOPROTOOPT
                    | libc::EHOSTDOWN
                    | libc::ENONET
                    | libc::EHOSTUNREACH
                    | libc::EOPNOTSUPP
                    | libc::ENETUNREACH => continue,
                    libc::EMFILE | libc::ENFILE => {
                        self.stats.accept_fd_exhausted += 1;
                        match self.shed_with_spare_fd() {
                            // One waiting client was turned away; look for more.
                            Shed::TurnedAway => continue,
                            // accept4 reports EMFILE before it looks at the
                            // backlog: nobody was waiting after all.
                            Shed::BacklogEmpty => return,
                            Shed::NoSpare => {
                                log::warn!(
                                    "accept: out of file descriptors; pausing {ACCEPT_RETRY_MS} ms"
                                );
                                self.pause_accept(Some(ACCEPT_RETRY_MS));
                                return;
                            }
                        }
                    }
                    libc::ENOBUFS | libc::ENOMEM => {
                        log::warn!("accept: {e}; pausing {ACCEPT_RETRY_MS} ms");
                        self.pause_accept(Some(ACCEPT_RETRY_MS));
                        return;
                    }
                    _ => {
                        log::error!("accept: {e}; pausing 1000 ms");
                        self.pause_accept(Some(1000));
                        return;
                    }
                },
            }
        }
    }

    /// EMFILE/ENFILE: free the spare descriptor, accept the waiting client
    /// and close it at once (it sees a close instead of hanging in the
    /// backlog), then take the spare back.
    fn shed_with_spare_fd(&mut self) -> Shed {
        if self.spare_fd < 0 {
            self.spare_fd = sys::open_spare_fd();
            return Shed::NoSpare;
        }
        sys::close(self.spare_fd);
        self.spare_fd = -1;
        let outcome = match sys::accept(self.listener) {
            Ok((fd, _)) => {
                sys::close(fd);
                Shed::TurnedAway
            }
            Err(_) => Shed::BacklogEmpty,
        };
        self.spare_fd = sys::open_spare_fd();
        if self.spare_fd < 0 {
            // Someone else took the descriptor: no spare until the retry.
            return Shed::NoSpare;
        }
        outcome
    }

    /// A new client is first run without epoll. While first reads tend to
    /// find the request (`FirstRead`), it is read at once, answered and
    /// (with `Connection: close`) closed without ever being registered;
    /// otherwise, or when it has to wait, it is added to the epoll set
    /// (`ensure_registered`).
    fn register(&mut self, fd: Fd, peer: sys::PeerAddr) {
        let mut conn = Conn::new(self.conns.next_token(), fd, peer, self.now);
        conn.readable = self.first_read.should_try();
        conn.first_read_pending = conn.readable;
        let token = self.conns.insert(conn);
        self.stats.accepted += 1;
        self.arm_timer(token);
        self.ready.push(token);
    }

    /// Adds a connection that now has to wait for the network to the epoll
    /// set. Edge-triggered ADD reports readiness that arose before it, so
    /// nothing that arrived since the last EAGAIN is missed.
    fn ensure_registered(&mut self, token: Token) {
        if self.memory {
            return;
        }
        let Some(c) = self.conns.get_mut(token) else {
            return;
        };
        if c.registered {
            return;
        }
        match self.poller.add(c.fd, Interest::CLIENT_EDGE, token.0) {
            Ok(()) => c.registered = true,
            Err(e) => {
                log::warn!("epoll_ctl(ADD) for fd {}: {e}", c.fd);
                self.close(token, Reason::CONNECTION_CLOSE_ERROR);
            }
        }
    }

    /// Closes the longest-idle keep-alive connection, if there is one.
    fn evict_idle(&mut self) -> bool {
        let Some(index) = self.timers.oldest(TimerKind::Idle) else {
            return false;
        };
        let Some(token) = self.conns.at_index(index).map(|c| c.token) else {
            return false;
        };
        self.close(token, Reason::CONNECTION_CLOSE_LIMIT);
        true
    }

    /// Stops watching the listener. With `retry_ms`, try again after that
    /// long; without, resume when a connection closes.
    fn pause_accept(&mut self, retry_ms: Option<u64>) {
        if !self.accept_paused {
            self.accept_paused = true;
            self.stats.accept_paused += 1;
            if let Err(e) = self.poller.modify(self.listener, None, LISTENER.0) {
                log::error!("epoll_ctl(MOD) pausing the listener: {e}");
            }
        }
        self.accept_retry_at = retry_ms.map(|ms| self.now + ms);
    }

    fn resume_accept(&mut self) {
        if self.accept_paused && self.listener >= 0 && !self.stopping {
            self.accept_paused = false;
            self.accept_retry_at = None;
            // Level-triggered: a backlog that built up meanwhile is reported
            // by the next epoll_wait.
            if let Err(e) =
                self.poller
                    .modify(self.listener, Some(Interest::READ_LEVEL), LISTENER.0)
            {
                log::error!("epoll_ctl(MOD) resuming the listener: {e}");
            }
        }
    }

    // ----- closing -----------------------------------------------------

    /// Closes a connection once: EPOLL_CTL_DEL before close(2), the stream
    /// cleanup queued, an open chunked response detached, the slot's
    /// generation bumped so later events for it are ignored.
    fn close(&mut self, token: Token, reason: Reason) {
        let Some(mut c) = self.conns.remove(token) else {
            return;
        };
        if c.registered {
            if let Err(e) = self.poller.delete(c.fd) {
                log::warn!("epoll_ctl(DEL) fd {}: {e}", c.fd);
            }
        }
        self.io.close(c.fd);
        self.timers.cancel(token.index());
        if let Some(stream) = c.stream.take() {
            if let Some(cleanup) = stream.cleanup {
                self.cleanups.push((cleanup, stream.user, reason));
            }
        }
        if !c.resp.is_null() {
            // SAFETY: `c.resp` came from Box::into_raw and is owned by `c`.
            let phase = unsafe { (*c.resp).phase };
            if phase == Phase::Chunked {
                // The application still holds it and must call Response_End.
                // SAFETY: as above.
                unsafe { (*c.resp).phase = Phase::Detached };
                self.detached.push(c.resp);
            } else {
                // SAFETY: as above.
                unsafe { (*c.resp).phase = Phase::Done };
                self.spare_responses.push(c.resp);
            }
            c.resp = std::ptr::null_mut();
        }
        self.pool.give(std::mem::take(&mut c.input));
        self.pool.give(std::mem::take(&mut c.output));
        let counter = match reason {
            Reason::CONNECTION_CLOSE_COMPLETED => &mut self.stats.closed_completed,
            Reason::CONNECTION_CLOSE_PEER_CLOSED => &mut self.stats.closed_peer,
            Reason::CONNECTION_CLOSE_RESET => &mut self.stats.closed_reset,
            Reason::CONNECTION_CLOSE_TIMEOUT => &mut self.stats.closed_timeout,
            Reason::CONNECTION_CLOSE_SHUTDOWN => &mut self.stats.closed_shutdown,
            Reason::CONNECTION_CLOSE_ERROR => &mut self.stats.closed_error,
            Reason::CONNECTION_CLOSE_LIMIT => &mut self.stats.closed_limit,
            Reason::CONNECTION_CLOSE_PROTOCOL => &mut self.stats.closed_protocol,
        };
        *counter += 1;
        if log::log_enabled!(log::Level::Debug) {
            match c.peer.to_socket_addr() {
                Some(addr) => log::debug!("closed {addr} (fd {}): {}", c.fd, reason.name()),
                None => log::debug!("closed fd {}: {}", c.fd, reason.name()),
            }
        }
        if self.conns.len() < self.limits.max_connections && self.accept_retry_at.is_none() {
            self.resume_accept();
        }
    }

    /// The last response is out: half-close and linger (so the client reads
    /// the response rather than an RST caused by its unread input), or close
    /// at once when the client already sent FIN.
    fn begin_close(&mut self, token: Token, reason: Reason) {
        let Some(c) = self.conns.get_mut(token) else {
            return;
        };
        // Linger only when the client may still be sending (unread input, an
        // error response, or a request we did not read to the end): closing
        // with unread data makes the kernel send an RST that can destroy the
        // response in flight. Otherwise close at once, as nginx does.
        let may_send_more = reason == Reason::CONNECTION_CLOSE_PROTOCOL
            || c.unprocessed_input() > 0
            || c.readable
            || c.rdhup && !c.peer_fin;
        if c.peer_fin || !may_send_more {
            self.close(token, reason);
            return;
        }
        self.io.shutdown_write(c.fd);
        c.lingering = Some(reason);
        c.readable = true;
        self.pool.give(std::mem::take(&mut c.output));
        c.sent = 0;
        let deadline = self.now + self.limits.linger_timeout_ms;
        self.timers.arm(token.index(), TimerKind::Linger, deadline);
        self.linger_read(token);
    }

    /// Reads and discards until FIN (then closes), EAGAIN, or the discard limit.
    fn linger_read(&mut self, token: Token) {
        loop {
            let Some(c) = self.conns.get_mut(token) else {
                return;
            };
            let reason = c.lingering.unwrap_or(Reason::CONNECTION_CLOSE_COMPLETED);
            self.linger_scratch.clear();
            match self.io.recv(c.fd, &mut self.linger_scratch, 4096) {
                Ok(0) => return self.close(token, reason),
                Ok(n) => {
                    c.linger_discarded += n;
                    if c.linger_discarded > LINGER_DISCARD_MAX {
                        return self.close(token, reason);
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                    c.readable = false;
                    return;
                }
                Err(_) => return self.close(token, reason),
            }
        }
    }

    /// Stop: close the listener and idle connections; busy ones finish
    /// their current response and close.
    fn begin_shutdown(&mut self) {
        if self.stopping {
            return;
        }
        log::info!("stopping: draining {} connections", self.conns.len());
        self.stopping = true;
        self.drain_deadline = self.now + self.limits.drain_timeout_ms;
        if self.listener >= 0 {
            let _ = self.poller.delete(self.listener);
            sys::close(self.listener);
            self.listener = -1;
        }
        for token in self.conns.tokens() {
            let Some(c) = self.conns.get_mut(token) else {
                continue;
            };
            if c.pending_output() > 0 || c.responding() {
                c.close_after = Some(Reason::CONNECTION_CLOSE_SHUTDOWN);
            } else {
                self.close(token, Reason::CONNECTION_CLOSE_SHUTDOWN);
            }
        }
    }

    // ----- timers ------------------------------------------------------

    /// Puts the connection in the timer list its state calls for.
    fn arm_timer(&mut self, token: Token) {
        let Some(c) = self.conns.get_mut(token) else {
            return;
        };
        if c.lingering.is_some() {
            return;
        }
        let app_open = c.response_phase() == Phase::Chunked;
        let (kind, deadline) = if c.pending_output() > 0 || c.stream.is_some() {
            (TimerKind::Send, self.now + self.limits.send_timeout_ms)
        } else if app_open {
            (TimerKind::AppWait, self.now + self.limits.idle_timeout_ms)
        } else if c.awaiting_body {
            (TimerKind::Body, self.now + self.limits.body_timeout_ms)
        } else if c.unprocessed_input() > 0 || c.requests_served == 0 {
            (
                TimerKind::Header,
                c.request_start_ms + self.limits.header_timeout_ms,
            )
        } else {
            (TimerKind::Idle, self.now + self.limits.idle_timeout_ms)
        };
        let index = token.index();
        if c.timer_dirty || self.timers.kind(index) != Some(kind) {
            c.timer_dirty = false;
            self.timers.arm(index, kind, deadline);
        }
    }

    /// After a burst of connections (10,000 silent ones, say) has gone,
    /// gives the slab's and the timers' memory back, so memory returns to
    /// where it was rather than staying at the peak.
    fn shrink_if_mostly_empty(&mut self) {
        const KEEP: usize = 1024;
        let capacity = self.conns.capacity();
        if capacity > KEEP && self.conns.len() * 4 < capacity {
            self.conns.shrink(KEEP);
            self.timers.shrink(self.conns.slot_count(), KEEP);
            self.ready.shrink_to(64);
            self.ready_scratch.shrink_to(64);
        }
    }

    fn expire_timers(&mut self) {
        while let Some((index, kind)) = self.timers.pop_expired(self.now) {
            let Some(c) = self.conns.at_index(index) else {
                continue;
            };
            let token = c.token;
            let reason = match (kind, c.lingering) {
                (TimerKind::Linger, Some(r)) => r,
                _ => Reason::CONNECTION_CLOSE_TIMEOUT,
            };
            log::debug!("fd {}: {:?} timeout", c.fd, kind);
            self.close(token, reason);
        }
        if self.accept_retry_at.is_some_and(|at| at <= self.now) {
            self.accept_retry_at = None;
            if self.spare_fd < 0 {
                self.spare_fd = sys::open_spare_fd();
            }
            self.resume_accept();
        }
    }

    /// Milliseconds epoll_wait may sleep.
    fn wait_budget(&self, requested: c_int) -> c_int {
        if !self.ready.is_empty() {
            return 0;
        }
        let mut deadline = self.timers.next_deadline();
        for extra in [
            self.accept_retry_at,
            self.stopping.then_some(self.drain_deadline),
        ]
        .into_iter()
        .flatten()
        {
            deadline = Some(deadline.map_or(extra, |d| d.min(extra)));
        }
        let timer_ms = deadline.map(|d| d.saturating_sub(self.now).min(i32::MAX as u64) as c_int);
        match (requested, timer_ms) {
            (r, None) => r,
            (r, Some(t)) if r < 0 => t,
            (r, Some(t)) => r.min(t),
        }
    }

    // ----- one connection's progress -------------------------------------

    /// Advances a connection as far as it can go without application code;
    /// returns what it needs from application code next.
    fn step(&mut self, token: Token) -> Step {
        let mut read_budget = READ_BUDGET;
        loop {
            let high_water = self.limits.output_high_water;
            let Some(c) = self.conns.get_mut(token) else {
                return Step::Idle;
            };
            if c.lingering.is_some() {
                if c.readable {
                    self.linger_read(token);
                }
                return Step::Idle;
            }

            // 1. A stream wants refilling, or has finished.
            if let Some(stream) = &c.stream {
                let pending = c.pending_output();
                if !stream.eof && pending < high_water.div_ceil(2) {
                    let cap = (high_water - pending).clamp(1, PRODUCE_MAX);
                    let frame = if stream.raw { 0 } else { 10 };
                    c.output.reserve(frame + cap + 2);
                    // SAFETY: reserve guaranteed `frame + cap` bytes of
                    // capacity past len; the producer writes into them.
                    let buf = unsafe { c.output.as_mut_ptr().add(c.output.len() + frame) };
                    let producer = stream.producer.expect("checked at Response_Stream");
                    return Step::Produce {
                        producer,
                        user: stream.user,
                        buf,
                        cap,
                    };
                }
                if stream.eof && pending == 0 {
                    let stream = c.stream.take().expect("checked above");
                    if let Some(cleanup) = stream.cleanup {
                        self.cleanups.push((
                            cleanup,
                            stream.user,
                            Reason::CONNECTION_CLOSE_COMPLETED,
                        ));
                    }
                    self.finish_response(token);
                    continue;
                }
            }

            // 2. The next request, if the connection may start one.
            if self.can_start_request(token) {
                match self.parse_next(token) {
                    Next::Dispatch => return Step::Dispatch,
                    Next::BodyPiece => return Step::BodyPiece,
                    Next::Error(status) => {
                        self.reject(token, status);
                        continue;
                    }
                    Next::NeedMore => {}
                }
            }

            // 3. Read more.
            let wants_input = self.wants_input(token);
            let Some(c) = self.conns.get_mut(token) else {
                return Step::Idle;
            };
            if c.readable && wants_input {
                if read_budget == 0 {
                    self.ready.push(token);
                } else {
                    match self.read_some(token) {
                        Some(n) => {
                            read_budget = read_budget.saturating_sub(n);
                            continue;
                        }
                        None if self.conns.get(token).is_none() => return Step::Idle,
                        None => {}
                    }
                }
            }

            // 4. Write what is queued.
            let Some(c) = self.conns.get_mut(token) else {
                return Step::Idle;
            };
            if c.pending_output() > 0 && !c.write_blocked {
                if self.flush(token) {
                    continue;
                }
                if self.conns.get(token).is_none() {
                    return Step::Idle;
                }
            }

            // 5. Nothing more to do now: close, or wait with the right timer.
            let Some(c) = self.conns.get_mut(token) else {
                return Step::Idle;
            };
            if c.pending_output() == 0 && !c.responding() {
                if let Some(reason) = c.close_after {
                    self.begin_close(token, reason);
                    return Step::Idle;
                }
                if c.peer_fin {
                    // Everything the client sent has been answered; what is
                    // left (if anything) is an incomplete request.
                    self.close(token, Reason::CONNECTION_CLOSE_PEER_CLOSED);
                    return Step::Idle;
                }
                if c.unprocessed_input() == 0 {
                    // Idle: hand the buffers back so an idle connection
                    // costs only its `Conn`.
                    c.consumed = 0;
                    self.pool.give(std::mem::take(&mut c.input));
                    self.pool.give(std::mem::take(&mut c.output));
                    c.sent = 0;
                }
            }
            self.arm_timer(token);
            return Step::Idle;
        }
    }

    fn can_start_request(&self, token: Token) -> bool {
        let Some(c) = self.conns.get(token) else {
            return false;
        };
        !c.responding()
            && c.close_after.is_none()
            && c.pending_output() < self.limits.output_high_water
    }

    /// Whether reading more is useful now (backpressure: a connection that
    /// is answering, over its high-water mark or closing reads nothing).
    fn wants_input(&self, token: Token) -> bool {
        let Some(c) = self.conns.get(token) else {
            return false;
        };
        !c.peer_fin && self.can_start_request(token)
    }

    /// One recv into the connection's buffer. Returns the byte count, or
    /// None at EAGAIN / EOF / error (the connection may then be closed).
    fn read_some(&mut self, token: Token) -> Option<usize> {
        let max_input = self.limits.max_header_bytes + self.limits.max_body_bytes + 2 * BUFFER_SIZE;
        let c = self.conns.get_mut(token)?;
        with_buffer(&mut c.input, &mut self.pool);
        if c.input.len() == c.input.capacity() {
            if c.consumed > 0 {
                c.input.drain(..c.consumed);
                c.consumed = 0;
            } else if c.input.len() < max_input {
                let grow = c
                    .input
                    .len()
                    .min(max_input - c.input.len())
                    .max(BUFFER_SIZE);
                c.input.reserve_exact(grow);
            } else {
                // Full of an incomplete request that is within the limits
                // only in pieces (e.g. chunk framing): refuse it.
                self.reject(token, 413);
                return None;
            }
        }
        if c.unprocessed_input() == 0 {
            c.request_start_ms = self.now;
        }
        let room = max_input
            .saturating_sub(c.input.len())
            .max(1)
            .min(c.input.capacity() - c.input.len());
        let result = self.io.recv(c.fd, &mut c.input, room);
        if c.first_read_pending {
            c.first_read_pending = false;
            let would_block = matches!(&result, Err(e) if e.raw_os_error() == Some(libc::EAGAIN));
            self.first_read.record(!would_block);
        }
        match result {
            Ok(0) => {
                c.peer_fin = true;
                c.readable = false;
                None
            }
            Ok(n) => {
                // A short read means the socket was drained: with edge
                // triggering, any later data raises a new event, so the
                // extra recv that would only return EAGAIN is skipped. Not
                // after EPOLLRDHUP: the FIN raised no event of its own, so
                // we must read on until recv returns 0.
                if n < room && !c.rdhup {
                    c.readable = false;
                }
                Some(n)
            }
            Err(e) => match e.raw_os_error().unwrap_or(0) {
                libc::EAGAIN => {
                    c.readable = false;
                    None
                }
                libc::ECONNRESET | libc::EPIPE | libc::ETIMEDOUT => {
                    self.close(token, Reason::CONNECTION_CLOSE_RESET);
                    None
                }
                _ => {
                    log::warn!("recv on fd {}: {e}", c.fd);
                    self.close(token, Reason::CONNECTION_CLOSE_ERROR);
                    None
                }
            },
        }
    }

    /// Sends queued output until it is all out (true) or the socket is full
    /// or the connection failed (false). EPIPE/ECONNRESET close it as RESET.
    fn flush(&mut self, token: Token) -> bool {
        let Some(c) = self.conns.get_mut(token) else {
            return false;
        };
        while c.sent < c.output.len() {
            if c.sends == 1 && !self.memory {
                // A second write may meet an unacknowledged first one: without
                // TCP_NODELAY, Nagle would hold it back for a delayed ACK.
                // The first write never waits, so a one-response connection
                // saves the setsockopt.
                sys::set_nodelay(c.fd);
            }
            c.sends += 1;
            match self.io.send(c.fd, &c.output[c.sent..]) {
                Ok(n) => {
                    c.sent += n;
                    c.timer_dirty = true;
                }
                Err(e) => {
                    return match e.raw_os_error().unwrap_or(0) {
                        libc::EAGAIN => {
                            c.write_blocked = true;
                            false
                        }
                        libc::EPIPE | libc::ECONNRESET | libc::ETIMEDOUT => {
                            self.close(token, Reason::CONNECTION_CLOSE_RESET);
                            false
                        }
                        _ => {
                            log::warn!("send on fd {}: {e}", c.fd);
                            self.close(token, Reason::CONNECTION_CLOSE_ERROR);
                            false
                        }
                    };
                }
            }
        }
        c.output.clear();
        c.sent = 0;
        true
    }

    /// Parses the next buffered request; on success fills `self.request`.
    fn parse_next(&mut self, token: Token) -> Next {
        let max_body = self.limits.max_body_bytes;
        let max_trailer = self.limits.max_header_bytes;
        let streams_bodies = self.body_handler.is_some();
        let stream_above = self.stream_above;
        let Some(c) = self.conns.get_mut(token) else {
            return Next::NeedMore;
        };
        if c.upload.is_some() {
            return self.continue_upload(token);
        }
        if c.unprocessed_input() == 0 {
            return Next::NeedMore;
        }
        let start = c.consumed;
        let head = match parse_head(&c.input[start..], &self.limits, &mut self.header_spans) {
            Parsed::Partial => return Next::NeedMore,
            Parsed::Error(status) => return Next::Error(status),
            Parsed::Complete(head) => head,
        };
        let streamed = streams_bodies
            && match head.framing {
                Framing::None => false,
                Framing::Length(n) => n > stream_above as u64,
                Framing::Chunked => true,
            };
        if streamed {
            // The body goes to the body handler piece by piece; the head stays
            // in the buffer (NUL-terminated once) until the request is done.
            terminate_fields(&mut c.input[start..], &head, &self.header_spans);
            c.upload = Some(Box::new(Upload {
                head,
                headers: self.header_spans.clone(),
                remaining: match head.framing {
                    Framing::Length(n) => n,
                    _ => 0,
                },
                decoder: ChunkedDecoder::default(),
                raw_done: None,
                delivered: 0,
                id: self.next_request_id,
            }));
            self.next_request_id += 1;
            return self.continue_upload(token);
        }
        let body_start = start + head.len;
        let (body_len, total) = match head.framing {
            Framing::None => (0, head.len),
            Framing::Length(n) => {
                let n = n as usize;
                if c.input.len() - body_start < n {
                    return self.await_body(token, head.expect_continue);
                }
                (n, head.len + n)
            }
            Framing::Chunked => {
                let decoder = c.chunked.get_or_insert_with(ChunkedDecoder::default);
                match decoder.decode(&mut c.input[body_start..], max_body, max_trailer) {
                    Err(status) => return Next::Error(status),
                    Ok(Progress::NeedMore) => {
                        // All raw input was decoded in place; drop it.
                        let keep = body_start + decoder.decoded();
                        c.input.truncate(keep);
                        return self.await_body(token, head.expect_continue);
                    }
                    Ok(Progress::Done { decoded, consumed }) => (decoded, head.len + consumed),
                }
            }
        };
        c.awaiting_body = false;
        c.chunked = None;
        c.sent_continue = false;
        terminate_fields(&mut c.input[start..], &head, &self.header_spans);
        let id = self.next_request_id;
        self.next_request_id += 1;
        self.fill_request(token, &head, None, body_len, id);
        self.dispatch_len = total;
        self.prepare_response(token, &head);
        Next::Dispatch
    }

    /// Points `self.request` at the request starting at the connection's
    /// `consumed` offset (fields already NUL-terminated). `headers` None
    /// means `self.header_spans`. The body, if any, follows the head.
    fn fill_request(
        &mut self,
        token: Token,
        head: &Head,
        headers: Option<&[HeaderSpan]>,
        body_len: usize,
        id: u64,
    ) {
        let Some(c) = self.conns.get(token) else {
            return;
        };
        let buf = &c.input[c.consumed..];
        let req = &mut self.request;
        req.base = buf.as_ptr();
        req.method = head.method;
        req.path = head.path;
        req.query = head.query;
        req.minor_version = head.minor_version;
        req.headers.clear();
        req.headers
            .extend_from_slice(headers.unwrap_or(&self.header_spans));
        req.body = if body_len == 0 {
            c"".as_ptr() as *const u8
        } else {
            buf[head.len..].as_ptr()
        };
        req.body_len = body_len;
        req.peer = c.peer;
        req.id = id;
    }

    /// Readies the connection's response handle for a new request.
    fn prepare_response(&mut self, token: Token, head: &Head) {
        let Some(c) = self.conns.get_mut(token) else {
            return;
        };
        c.awaiting_body = false;
        c.sent_continue = false;
        if c.resp.is_null() {
            c.resp = self
                .spare_responses
                .pop()
                .unwrap_or_else(|| Box::into_raw(Box::new(Response::new(self.self_ptr))));
        }
        // SAFETY: `c.resp` is owned by the connection and not borrowed elsewhere.
        let r = unsafe { &mut *c.resp };
        r.core = self.self_ptr;
        r.token = token;
        r.phase = Phase::Handler;
        r.status = 200;
        r.headers.clear();
        r.head_method = head.is_head_method;
        r.keep_alive = head.keep_alive && !self.stopping;
        r.minor_version = head.minor_version;
        r.app_close = false;
        self.stats.requests += 1;
    }

    /// Next move of a request whose body is streamed to the body handler:
    /// deliver what has arrived, or dispatch once the body is complete.
    fn continue_upload(&mut self, token: Token) -> Next {
        let max_trailer = self.limits.max_header_bytes;
        let Some(c) = self.conns.get_mut(token) else {
            return Next::NeedMore;
        };
        let Some(up) = c.upload.as_mut() else {
            return Next::NeedMore;
        };
        let head = up.head;
        let id = up.id;
        let body_start = c.consumed + head.len;
        let piece = match head.framing {
            Framing::Length(_) => {
                let available = (c.input.len() - body_start) as u64;
                let n = available.min(up.remaining) as usize;
                if n == 0 && up.remaining > 0 {
                    return self.await_body(token, head.expect_continue);
                }
                n
            }
            _ if up.raw_done.is_some() => 0,
            _ => match up
                .decoder
                .decode(&mut c.input[body_start..], usize::MAX, max_trailer)
            {
                Err(status) => return Next::Error(status),
                Ok(Progress::NeedMore) => {
                    let decoded = up.decoder.decoded();
                    c.input.truncate(body_start + decoded);
                    if decoded == 0 {
                        return self.await_body(token, head.expect_continue);
                    }
                    decoded
                }
                Ok(Progress::Done { decoded, consumed }) => {
                    // After the decoded piece is removed, the raw body ends
                    // `consumed - decoded` bytes past the head.
                    up.raw_done = Some(consumed - decoded);
                    decoded
                }
            },
        };
        if up.delivered + piece as u64 > self.limits.max_body_bytes as u64 {
            return Next::Error(413);
        }
        let raw_done = up.raw_done.unwrap_or(0);
        let headers = std::mem::take(&mut up.headers);
        if piece > 0 {
            self.fill_request(token, &head, Some(&headers), piece, id);
            self.upload_piece = piece;
        } else {
            // Body complete: the handler runs with an empty body.
            self.fill_request(token, &head, Some(&headers), 0, id);
            self.dispatch_len = head.len + raw_done;
            self.prepare_response(token, &head);
            if let Some(c) = self.conns.get_mut(token) {
                c.upload = None;
            }
            return Next::Dispatch;
        }
        if let Some(up) = self.conns.get_mut(token).and_then(|c| c.upload.as_mut()) {
            up.headers = headers;
        }
        Next::BodyPiece
    }

    /// The body handler took `self.upload_piece` bytes (or refused them
    /// with an HTTP status): drop them from the buffer.
    fn end_body_piece(&mut self, token: Token, verdict: c_int) {
        let n = self.upload_piece;
        let Some(c) = self.conns.get_mut(token) else {
            return;
        };
        if verdict != 0 {
            let status = if (400..=599).contains(&verdict) {
                verdict as u16
            } else {
                500
            };
            c.upload = None;
            self.reject(token, status);
            return;
        }
        let Some(up) = c.upload.as_mut() else {
            return;
        };
        let body_start = c.consumed + up.head.len;
        c.input.copy_within(body_start + n.., body_start);
        let len = c.input.len() - n;
        c.input.truncate(len);
        up.delivered += n as u64;
        match up.head.framing {
            Framing::Length(_) => up.remaining -= n as u64,
            _ => up.decoder.forget_decoded(),
        }
    }

    /// A complete head whose body is still arriving: maybe send 100 Continue.
    fn await_body(&mut self, token: Token, expect_continue: bool) -> Next {
        let Some(c) = self.conns.get_mut(token) else {
            return Next::NeedMore;
        };
        if !c.awaiting_body {
            c.awaiting_body = true;
            c.timer_dirty = true;
        }
        if expect_continue && !c.sent_continue {
            c.sent_continue = true;
            with_buffer(&mut c.output, &mut self.pool)
                .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        Next::NeedMore
    }

    /// The handler returned: consume the request, answer 500 if it did not.
    fn end_dispatch(&mut self, token: Token) {
        let total = self.dispatch_len;
        let Some(c) = self.conns.get_mut(token) else {
            return;
        };
        c.consumed += total;
        if c.consumed >= c.input.len() {
            c.input.clear();
            c.consumed = 0;
        }
        c.requests_served += 1;
        c.timer_dirty = true;
        c.request_start_ms = self.now;
        let resp = c.resp;
        // SAFETY: `resp` is owned by the connection; the handler has returned.
        if unsafe { (*resp).phase } == Phase::Handler {
            log::error!("application error: the handler returned without responding; sending 500");
            // SAFETY: as above.
            unsafe {
                (*resp).status = 500;
                (*resp).headers.clear();
                (*resp).app_close = true;
            }
            self.compose(token, b"Internal Server Error\n", Body::Full);
        }
    }

    /// Queues a canned error response and closes after it.
    fn reject(&mut self, token: Token, status: u16) {
        let Some(c) = self.conns.get_mut(token) else {
            return;
        };
        log::debug!("fd {}: rejecting request with {status}", c.fd);
        let out = with_buffer(&mut c.output, &mut self.pool);
        start_head(out, status, &self.date, &self.limits.server_line);
        let body = crate::http::response::reason_phrase(status).as_bytes();
        out.extend_from_slice(b"Content-Type: text/plain\r\nConnection: close\r\nContent-Length: ");
        push_decimal(out, body.len() as u64 + 1);
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(body);
        out.push(b'\n');
        c.close_after = Some(Reason::CONNECTION_CLOSE_PROTOCOL);
        c.upload = None;
        c.input.clear();
        c.consumed = 0;
        c.chunked = None;
        c.awaiting_body = false;
        self.stats.responses += 1;
    }

    /// Serialises the response head (and a full body) for `token`'s current
    /// response into its output queue.
    fn compose(&mut self, token: Token, body: &[u8], kind: Body) -> c_int {
        let stopping = self.stopping;
        let Some(c) = self.conns.get_mut(token) else {
            return CONNECTION_ERR_CLOSED;
        };
        // SAFETY: `c.resp` is owned by the connection; only this function
        // touches it while it runs.
        let r = unsafe { &mut *c.resp };
        let allows_body = status_allows_body(r.status);
        if kind != Body::Full && !allows_body {
            return CONNECTION_ERR_INVALID;
        }
        let raw_stream = kind != Body::Full && r.minor_version == 0;
        let closing = !r.keep_alive || r.app_close || stopping || raw_stream;
        let out = with_buffer(&mut c.output, &mut self.pool);
        start_head(out, r.status, &self.date, &self.limits.server_line);
        out.extend_from_slice(&r.headers);
        match kind {
            Body::Full if r.status == 204 || r.status == 304 => {}
            Body::Full => {
                out.extend_from_slice(b"Content-Length: ");
                push_decimal(out, body.len() as u64);
                out.extend_from_slice(b"\r\n");
            }
            _ if raw_stream => {}
            _ => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        }
        if closing {
            out.extend_from_slice(b"Connection: close\r\n\r\n");
        } else if r.minor_version == 0 {
            out.extend_from_slice(b"Connection: keep-alive\r\n\r\n");
        } else {
            out.extend_from_slice(b"\r\n");
        }
        if kind == Body::Full && allows_body && !r.head_method {
            out.extend_from_slice(body);
        }
        if closing {
            c.close_after = Some(if stopping {
                Reason::CONNECTION_CLOSE_SHUTDOWN
            } else {
                Reason::CONNECTION_CLOSE_COMPLETED
            });
        }
        r.phase = match kind {
            Body::Full => Phase::Done,
            Body::Chunked => Phase::Chunked,
            Body::Stream => Phase::Streaming,
        };
        if kind == Body::Full {
            self.stats.responses += 1;
        }
        CONNECTION_OK
    }

    /// The current response is complete.
    fn finish_response(&mut self, token: Token) {
        let Some(c) = self.conns.get_mut(token) else {
            return;
        };
        if !c.resp.is_null() {
            // SAFETY: `c.resp` is owned by the connection.
            unsafe { (*c.resp).phase = Phase::Done };
        }
        c.timer_dirty = true;
        self.stats.responses += 1;
    }

    /// Stores what a producer returned.
    fn end_produce(&mut self, token: Token, produced: isize, cap: usize) {
        let Some(c) = self.conns.get_mut(token) else {
            return;
        };
        let Some(stream) = c.stream.as_mut() else {
            return;
        };
        if produced < 0 || produced as usize > cap {
            log::warn!("fd {}: stream producer failed ({produced}); aborting", c.fd);
            self.close(token, Reason::CONNECTION_CLOSE_ERROR);
            return;
        }
        let n = produced as usize;
        if n == 0 {
            stream.eof = true;
            if !stream.raw {
                c.output.extend_from_slice(b"0\r\n\r\n");
            }
            return;
        }
        if stream.raw {
            // SAFETY: the producer initialised `n <= cap` bytes right after len.
            unsafe { c.output.set_len(c.output.len() + n) };
        } else {
            let at = c.output.len();
            // SAFETY: the producer initialised `n <= cap` bytes after the 10
            // reserved for the size line, which we now fill.
            unsafe { c.output.set_len(at + 10 + n) };
            c.output[at..at + 10].copy_from_slice(&chunk_size_line(n));
            c.output.extend_from_slice(b"\r\n");
        }
    }

    fn handle_event(&mut self, ev: Readiness) -> Option<Token> {
        match Token(ev.token) {
            LISTENER => {
                self.accept_ready();
                None
            }
            STOP => {
                sys::eventfd_drain(self.stop_fd);
                self.begin_shutdown();
                None
            }
            NOTIFY => {
                sys::eventfd_drain(self.notify_fd);
                None
            }
            token => {
                // A stale token (connection closed earlier in this batch, slot
                // perhaps reused) does not match any live connection.
                let c = self.conns.get_mut(token)?;
                if ev.error() {
                    let err = sys::take_socket_error(c.fd);
                    let reason = if err == libc::ECONNRESET || err == libc::EPIPE || err == 0 {
                        Reason::CONNECTION_CLOSE_RESET
                    } else {
                        Reason::CONNECTION_CLOSE_ERROR
                    };
                    self.close(token, reason);
                    return None;
                }
                if ev.hup() {
                    // Both directions are finished: nothing can be sent.
                    let reason = c.lingering.unwrap_or(if c.pending_output() > 0 {
                        Reason::CONNECTION_CLOSE_RESET
                    } else {
                        Reason::CONNECTION_CLOSE_PEER_CLOSED
                    });
                    self.close(token, reason);
                    return None;
                }
                if ev.readable() || ev.read_hup() {
                    c.readable = true;
                }
                if ev.read_hup() {
                    c.rdhup = true;
                }
                if ev.writable() {
                    c.write_blocked = false;
                }
                Some(token)
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Body {
    Full,
    Chunked,
    Stream,
}

// ----- drivers: the only places application code is called from ----------

impl Core {
    /// Runs queued cleanup callbacks.
    ///
    /// # Safety
    /// `core` is live and no `&mut Core` exists across this call.
    unsafe fn run_cleanups(core: *mut Core) {
        loop {
            // SAFETY: short-lived borrow; ends before the callback runs.
            let Some((cleanup, user, reason)) = (unsafe { (*core).cleanups.pop() }) else {
                return;
            };
            // SAFETY: as above.
            unsafe { (*core).in_callback = true };
            // SAFETY: the application registered this callback for `user`.
            unsafe { cleanup(user, reason) };
            // SAFETY: as above.
            unsafe { (*core).in_callback = false };
        }
    }

    /// Moves one connection along, calling the handler and producers as it
    /// asks for them.
    ///
    /// # Safety
    /// `core` is live and no `&mut Core` exists across this call.
    unsafe fn drive(core: *mut Core, token: Token) {
        loop {
            // SAFETY: the borrow ends with the statement.
            let step = unsafe { (*core).step(token) };
            match step {
                Step::Idle => {
                    // SAFETY: the borrow ends with the statement.
                    unsafe { (*core).ensure_registered(token) };
                    break;
                }
                Step::Dispatch => {
                    // SAFETY: short borrows; none is alive during the call.
                    let (handler, user, req, resp) = unsafe {
                        let me = &mut *core;
                        let resp = me.conns.get(token).map_or(std::ptr::null_mut(), |c| c.resp);
                        (
                            me.handler,
                            me.handler_user,
                            &me.request as *const Request,
                            resp,
                        )
                    };
                    if let Some(handler) = handler {
                        // SAFETY: as above.
                        unsafe { (*core).in_callback = true };
                        // SAFETY: the application's handler with pointers that
                        // stay valid for the duration of the call.
                        unsafe { handler(req, resp, user) };
                        // SAFETY: as above.
                        unsafe { (*core).in_callback = false };
                    } else {
                        // No handler set: every request gets a 404.
                        // SAFETY: `resp` is the connection's live handle.
                        unsafe { (*resp).status = 404 };
                        // SAFETY: the borrow ends with the statement.
                        unsafe { (*core).compose(token, b"Not Found\n", Body::Full) };
                    }
                    // SAFETY: the borrow ends with the statement.
                    unsafe { (*core).end_dispatch(token) };
                }
                Step::BodyPiece => {
                    // SAFETY: short borrows; none is alive during the call.
                    let (handler, user, req, n) = unsafe {
                        let me = &mut *core;
                        (
                            me.body_handler,
                            me.body_user,
                            &me.request as *const Request,
                            me.upload_piece,
                        )
                    };
                    let verdict = match handler {
                        Some(f) => {
                            // SAFETY: as above.
                            unsafe { (*core).in_callback = true };
                            // SAFETY: the request view and its body piece stay
                            // valid for the call.
                            let v = unsafe { f(req, (*req).body, n, user) };
                            // SAFETY: as above.
                            unsafe { (*core).in_callback = false };
                            v
                        }
                        None => 0,
                    };
                    // SAFETY: the borrow ends with the statement.
                    unsafe { (*core).end_body_piece(token, verdict) };
                }
                Step::Produce {
                    producer,
                    user,
                    buf,
                    cap,
                } => {
                    // SAFETY: as above.
                    unsafe { (*core).in_callback = true };
                    // SAFETY: `buf` has `cap` writable bytes reserved in the
                    // connection's output, which nothing else touches during
                    // the call (the stream's handle refuses all calls).
                    let n = unsafe { producer(user, buf, cap) };
                    // SAFETY: as above.
                    unsafe { (*core).in_callback = false };
                    // SAFETY: the borrow ends with the statement.
                    unsafe { (*core).end_produce(token, n, cap) };
                }
            }
            // SAFETY: forwarded contract.
            unsafe { Core::run_cleanups(core) };
        }
        // SAFETY: forwarded contract.
        unsafe { Core::run_cleanups(core) };
    }

    /// Waits for one batch of events (at most `timeout_ms`, -1 = until the
    /// next timer) and handles it. Returns 0, `CONNECTION_STOPPED` once a
    /// stop has drained, or an error code.
    ///
    /// # Safety
    /// `core` is live and not borrowed by the caller.
    pub unsafe fn process(core: *mut Core, timeout_ms: c_int) -> c_int {
        // SAFETY: short borrows throughout; none spans a driver call.
        let me = unsafe { &mut *core };
        if me.in_callback {
            return CONNECTION_ERR_BUSY;
        }
        if me.stopping && me.conns.is_empty() {
            return CONNECTION_STOPPED;
        }
        me.tick();
        let budget = me.wait_budget(timeout_ms);
        let n = match me.poller.wait(budget) {
            Ok(n) => n,
            Err(e) => {
                log::error!("epoll_wait: {e}");
                return CONNECTION_ERR_SYSTEM;
            }
        };
        me.tick();
        for i in 0..n {
            // SAFETY: the borrow ends with the statement.
            let ev = unsafe { (*core).poller.event(i) };
            // SAFETY: the borrow ends with the statement.
            if let Some(token) = unsafe { (*core).handle_event(ev) } {
                // SAFETY: no borrow is alive here.
                unsafe { Core::drive(core, token) };
            }
            // SAFETY: no borrow is alive here.
            unsafe { Core::run_cleanups(core) };
        }
        // Connections with leftover work.
        // SAFETY: the borrow ends with the block.
        let count = unsafe {
            let me = &mut *core;
            std::mem::swap(&mut me.ready, &mut me.ready_scratch);
            me.ready_scratch.len()
        };
        for i in 0..count {
            // SAFETY: the borrow ends with the statement.
            let token = unsafe { (&(*core).ready_scratch)[i] };
            // SAFETY: no borrow is alive here.
            unsafe { Core::drive(core, token) };
        }
        // SAFETY: short borrows; cleanups run with none alive.
        unsafe {
            (*core).ready_scratch.clear();
            (*core).tick();
            (*core).expire_timers();
            Core::run_cleanups(core);
            (*core).shrink_if_mostly_empty();
        }
        // SAFETY: short borrow.
        let me = unsafe { &mut *core };
        if me.stopping {
            if !me.conns.is_empty() && me.now >= me.drain_deadline {
                log::warn!(
                    "drain deadline passed; closing {} connections",
                    me.conns.len()
                );
                for token in me.conns.tokens() {
                    me.close(token, Reason::CONNECTION_CLOSE_SHUTDOWN);
                }
                // SAFETY: no borrow is alive across the call.
                unsafe { Core::run_cleanups(core) };
            }
            // SAFETY: short borrow.
            if unsafe { (*core).conns.len() } == 0 {
                return CONNECTION_STOPPED;
            }
        }
        CONNECTION_OK
    }

    /// Closes everything (cleanups get SHUTDOWN) and frees the core.
    ///
    /// # Safety
    /// `core` came from `Core::create`, is not used afterwards, and no
    /// callback is running.
    pub unsafe fn destroy(core: *mut Core) {
        // SAFETY: short borrow.
        let tokens = unsafe { (*core).conns.tokens() };
        for token in tokens {
            // SAFETY: short borrow.
            unsafe { (*core).close(token, Reason::CONNECTION_CLOSE_SHUTDOWN) };
            // SAFETY: no borrow is alive across the call.
            unsafe { Core::run_cleanups(core) };
        }
        // SAFETY: we own the core (function contract).
        let me = unsafe { Box::from_raw(core) };
        for resp in me.spare_responses.iter().chain(me.detached.iter()) {
            // SAFETY: each came from Box::into_raw and is owned by the core.
            drop(unsafe { Box::from_raw(*resp) });
        }
        if me.listener >= 0 {
            let _ = me.poller.delete(me.listener);
            sys::close(me.listener);
        }
        sys::close(me.spare_fd);
        sys::close(me.notify_fd);
        // stop_fd belongs to the Connection struct; the Poller closes epoll.
    }

    // ----- responses (called from Response_*) ----------------------------

    /// # Safety
    /// `core` is live; `resp` is a live handle of it in phase Handler.
    pub unsafe fn respond_full(core: *mut Core, resp: *mut Response, body: &[u8]) -> c_int {
        // SAFETY: contract; short borrows.
        let token = unsafe { (*resp).token };
        // SAFETY: contract; no callback runs inside compose.
        unsafe { (*core).compose(token, body, Body::Full) }
    }

    /// # Safety
    /// As for `respond_full`.
    pub unsafe fn begin_chunked(core: *mut Core, resp: *mut Response) -> c_int {
        // SAFETY: contract.
        let token = unsafe { (*resp).token };
        // SAFETY: contract; no callback runs inside compose.
        unsafe { (*core).compose(token, &[], Body::Chunked) }
    }

    /// # Safety
    /// `core` is live; `resp` a live handle of it in phase Chunked.
    pub unsafe fn write_chunk(core: *mut Core, resp: *mut Response, data: &[u8]) -> c_int {
        // SAFETY: contract.
        let (token, head, raw) = unsafe {
            (
                (*resp).token,
                (*resp).head_method,
                (*resp).minor_version == 0,
            )
        };
        // SAFETY: contract; short borrow, no callbacks below.
        let me = unsafe { &mut *core };
        let high_water = me.limits.output_high_water;
        let Some(c) = me.conns.get_mut(token) else {
            return CONNECTION_ERR_CLOSED;
        };
        if head {
            return CONNECTION_OK;
        }
        if c.pending_output() >= high_water {
            return CONNECTION_ERR_WOULD_BLOCK;
        }
        if raw {
            c.output.extend_from_slice(data);
        } else {
            c.output.extend_from_slice(&chunk_size_line(data.len()));
            c.output.extend_from_slice(data);
            c.output.extend_from_slice(b"\r\n");
        }
        // SAFETY: forwarded contract.
        unsafe { Core::advance_from_app(core, token) }
    }

    /// # Safety
    /// As for `write_chunk`.
    pub unsafe fn end_chunked(core: *mut Core, resp: *mut Response) -> c_int {
        // SAFETY: contract.
        let (token, head, raw) = unsafe {
            (
                (*resp).token,
                (*resp).head_method,
                (*resp).minor_version == 0,
            )
        };
        // SAFETY: contract; short borrow.
        let me = unsafe { &mut *core };
        let Some(c) = me.conns.get_mut(token) else {
            return CONNECTION_ERR_CLOSED;
        };
        if !head && !raw {
            c.output.extend_from_slice(b"0\r\n\r\n");
        }
        me.finish_response(token);
        // SAFETY: forwarded contract.
        unsafe { Core::advance_from_app(core, token) }
    }

    /// After a chunk or the end was queued: inside a callback the loop will
    /// flush when the callback returns; outside (the application writing on
    /// its own schedule), write now and let the loop finish the rest.
    ///
    /// # Safety
    /// `core` is live and the caller holds no borrow of it.
    unsafe fn advance_from_app(core: *mut Core, token: Token) -> c_int {
        // SAFETY: contract; short borrow.
        let me = unsafe { &mut *core };
        if me.in_callback {
            return CONNECTION_OK;
        }
        me.tick();
        if let Some(c) = me.conns.get(token) {
            if !c.write_blocked {
                me.flush(token);
            }
        }
        if me.conns.get(token).is_none() {
            // SAFETY: no borrow alive.
            unsafe { Core::run_cleanups(core) };
            return CONNECTION_ERR_CLOSED;
        }
        me.arm_timer(token);
        me.ready.push(token);
        sys::eventfd_signal(me.notify_fd);
        CONNECTION_OK
    }

    /// Frees a detached handle (its client went away).
    ///
    /// # Safety
    /// `resp` is a detached handle of the live `core`.
    pub unsafe fn release_detached(core: *mut Core, resp: *mut Response) -> c_int {
        // SAFETY: contract; short borrow.
        let me = unsafe { &mut *core };
        if let Some(pos) = me.detached.iter().position(|&r| r == resp) {
            me.detached.swap_remove(pos);
            // SAFETY: the handle came from Box::into_raw; removed from the
            // list, nothing else refers to it.
            drop(unsafe { Box::from_raw(resp) });
        }
        CONNECTION_ERR_CLOSED
    }

    /// # Safety
    /// As for `respond_full`.
    pub unsafe fn begin_stream(
        core: *mut Core,
        resp: *mut Response,
        producer: ConnectionProducer,
        cleanup: ConnectionCleanup,
        user: *mut c_void,
    ) -> c_int {
        // SAFETY: contract.
        let (token, head, raw) = unsafe {
            (
                (*resp).token,
                (*resp).head_method,
                (*resp).minor_version == 0,
            )
        };
        // SAFETY: contract; no callback runs inside compose.
        let code = unsafe { (*core).compose(token, &[], Body::Stream) };
        if code != CONNECTION_OK {
            return code;
        }
        // SAFETY: contract; short borrow.
        let me = unsafe { &mut *core };
        let Some(c) = me.conns.get_mut(token) else {
            return CONNECTION_ERR_CLOSED;
        };
        // A HEAD response has no body: the stream is over before it starts.
        c.stream = Some(Stream {
            producer,
            cleanup,
            user,
            eof: head,
            raw,
        });
        CONNECTION_OK
    }
}
