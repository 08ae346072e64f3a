//! The event loop (muduo's EventLoop): owns the epoll instance, the
//! acceptor, the connection table, the timers and the wake-up eventfds;
//! turns events into connection steps. Application code is never called
//! from here: `driver.rs` does that, through `LoopPtr`.

use std::os::raw::c_void;

use super::acceptor::{Accepted, Acceptor};
use super::config::Limits;
use super::connection::{CleanupFn, Conn};
use super::error::{CloseReason, Error};
use super::first_read::FirstRead;
use super::handlers::Handlers;
use super::io::Io;
use super::reply::{Owner, Phase};
use super::request::RequestView;
use super::shared::Shared;
use super::slab::{Slab, Token};
use super::stats::Stats;
use super::timers::{TimerKind, Timers};
use crate::http::forwarded::Cidr;
use crate::sys::{socket, Event, EventFd, Interest, OwnedFd, PeerAddr, Poller};

pub(crate) const LISTENER: Token = Token(u64::MAX);
pub(crate) const STOP: Token = Token(u64::MAX - 1);
pub(crate) const NOTIFY: Token = Token(u64::MAX - 2);

/// Events taken from one epoll_wait.
const EVENT_BATCH: usize = 1024;

pub struct EventLoop {
    pub(crate) poller: Poller,
    pub(crate) acceptor: Acceptor,
    /// Written by Stop (async-signal-safe).
    pub(crate) stop: EventFd,
    /// Written when a response is advanced from outside the loop, so an
    /// embedding loop polling the epoll fd wakes up.
    pub(crate) notify: EventFd,
    pub(crate) conns: Slab<Conn>,
    pub(crate) timers: Timers,
    pub(crate) sh: Shared,
    /// Whether new clients are read before they are added to epoll.
    pub(crate) first_read: FirstRead,
    pub(crate) handlers: Handlers,
    /// The request the application is looking at: its own allocation (see
    /// `request.rs`), freed in Drop.
    pub(crate) view: *mut RequestView,
    /// Application code is running (re-entry guard).
    pub(crate) in_callback: bool,
    /// Connections with work left (read budget used up, or advanced from
    /// outside the loop), and the batch being worked through.
    pub(crate) ready: Vec<Token>,
    pub(crate) ready_scratch: Vec<Token>,
    /// The connection `drive` is moving along (its own writes are flushed
    /// when its callback returns).
    pub(crate) driving: Option<Token>,
    /// Stream cleanups to call once no borrow of the loop is alive.
    pub(crate) cleanups: Vec<(CleanupFn, *mut c_void, CloseReason)>,
    /// Where lingering connections' input is discarded.
    pub(crate) scratch: Vec<u8>,
    pub(crate) drain_deadline: u64,
}

impl EventLoop {
    /// Binds and listens on `limits.addr`, sets up epoll and the eventfds.
    /// The loop comes back as the raw pointer of its allocation (from
    /// `Box::into_raw`): the addresses it hands out (each reply's owner)
    /// derive from it, and `LoopPtr::destroy` frees it.
    pub fn create(limits: Limits) -> Result<*mut EventLoop, Error> {
        let poller = Poller::new(EVENT_BATCH)?;
        let acceptor = Acceptor::listen(
            &poller,
            &limits.addr,
            limits.backlog,
            limits.reuse_port,
            LISTENER.0,
        )?;
        let stop = EventFd::new()?;
        let notify = EventFd::new()?;
        poller.add(stop.raw(), Interest::READ_LEVEL, STOP.0)?;
        poller.add(notify.raw(), Interest::READ_LEVEL, NOTIFY.0)?;
        let addr = limits.addr;
        let port = acceptor.port();
        let el = EventLoop::build(limits, poller, acceptor, (stop, notify), Io::default());
        log::info!("listening on {}:{}", addr.ip(), port);
        Ok(el)
    }

    /// The loop around its parts; `create` registers the eventfds (an
    /// in-memory loop never waits on epoll, so it has no registrations).
    pub(crate) fn build(
        limits: Limits,
        poller: Poller,
        acceptor: Acceptor,
        (stop, notify): (EventFd, EventFd),
        io: Io,
    ) -> *mut EventLoop {
        let initial = limits.max_connections.min(1024);
        let view = Box::into_raw(Box::new(RequestView::new(limits.max_headers)));
        let el = Box::into_raw(Box::new(EventLoop {
            poller,
            acceptor,
            stop,
            notify,
            conns: Slab::with_capacity(initial),
            timers: Timers::new(initial),
            sh: Shared::new(limits, io),
            first_read: FirstRead::default(),
            handlers: Handlers::default(),
            view,
            in_callback: false,
            ready: Vec::with_capacity(64),
            ready_scratch: Vec::with_capacity(64),
            driving: None,
            cleanups: Vec::with_capacity(16),
            scratch: Vec::with_capacity(4096),
            drain_deadline: 0,
        }));
        // SAFETY: just allocated and not shared; the replies' owner address
        // derives from the allocation's own pointer.
        unsafe { (*el).sh.replies.owner = Owner(el as *mut ()) };
        el
    }

    pub fn is_open(&self, token: Token) -> bool {
        self.conns.get(token).is_some()
    }

    pub fn port(&self) -> u16 {
        self.acceptor.port()
    }

    pub fn epoll_fd(&self) -> i32 {
        self.poller.fd()
    }

    /// The eventfd that Stop writes to (async-signal-safe from any thread).
    pub fn stop_fd(&self) -> i32 {
        self.stop.raw()
    }

    pub fn set_handlers(&mut self, handlers: Handlers) {
        self.handlers = handlers;
    }

    /// See `ParseLimits::trusted_gateway`.
    pub fn set_trusted_gateway(&mut self, trusted: bool) {
        self.sh.limits.trusted_gateway = trusted;
        self.sh.parse_limits = self.sh.limits.parse();
    }

    /// The proxies whose forwarding headers name the client (see
    /// `http::forwarded`). Kept in the request view, where the request
    /// helpers read them; set between requests or from a handler.
    pub fn set_trusted_proxies(&mut self, list: Vec<Cidr>) {
        // SAFETY: `view` is the live allocation from `build`, freed only in
        // Drop. No reference to it outlives a call: the driver passes the
        // application a raw pointer, and each Request_* call borrows the
        // view only for its own duration, so none is alive now.
        unsafe { (*self.view).trusted_proxies = list };
    }

    pub fn handlers(&self) -> Handlers {
        self.handlers
    }

    pub fn in_callback(&self) -> bool {
        self.in_callback
    }

    pub fn stats(&self) -> Stats {
        let mut s = self.sh.stats;
        s.active_connections = self.conns.len() as u64;
        s
    }

    /// Queues a connection for the loop's next turn. The first one queued
    /// wakes the loop (its eventfd makes the epoll fd readable, also for an
    /// embedding loop that polls it).
    pub(crate) fn queue_ready(&mut self, token: Token) {
        if self.ready.is_empty() {
            self.notify.signal();
        }
        self.ready.push(token);
    }

    // ----- accepting ---------------------------------------------------

    /// Accepts until EAGAIN, the connection limit, or an fd shortage. At
    /// the limit, room is made only for a client that is really waiting:
    /// the longest-idle keep-alive connection is closed for it; with none
    /// idle, accepting pauses until a connection closes or becomes idle.
    /// Nobody waiting: the (level-triggered) listener stays watched, and
    /// reports the next client.
    fn accept_ready(&mut self) {
        while !self.sh.stopping && self.acceptor.ready() {
            if self.conns.len() >= self.sh.limits.max_connections {
                if !self.acceptor.client_waiting() {
                    return;
                }
                if !self.evict_idle() {
                    self.pause_accept(None);
                    return;
                }
            }
            match self.acceptor.accept(&mut self.sh.stats.accept_fd_exhausted) {
                Accepted::Client(fd, peer) => {
                    self.register(fd, peer);
                }
                Accepted::Skip | Accepted::TurnedAway => continue,
                Accepted::Drained => return,
                Accepted::Pause(ms) => {
                    self.pause_accept(Some(ms));
                    return;
                }
            }
        }
    }

    /// A new client is first run without epoll. While first reads tend to
    /// find the request (`FirstRead`), it is read at once, answered and
    /// (with `Connection: close`) closed without ever being registered;
    /// otherwise, or when it has to wait, it is added to the epoll set
    /// (`ensure_registered`).
    pub(crate) fn register(&mut self, fd: OwnedFd, peer: PeerAddr) -> Token {
        let mut conn = Conn::new(self.conns.next_token(), fd, peer, self.sh.now);
        conn.socket.readable = self.first_read.should_try();
        conn.socket.first_read_pending = conn.socket.readable;
        let token = self.conns.insert(conn);
        self.sh.stats.accepted += 1;
        self.arm_timer(token);
        self.ready.push(token);
        token
    }

    /// Adds a connection that now has to wait for the network to the epoll
    /// set. Edge-triggered ADD reports readiness that arose before it, so
    /// nothing that arrived since the last EAGAIN is missed.
    pub(crate) fn ensure_registered(&mut self, token: Token) {
        let Some(c) = self.conns.get_mut(token) else {
            return;
        };
        if c.socket.registered {
            return;
        }
        match self.poller.add(c.raw_fd(), Interest::CLIENT_EDGE, token.0) {
            Ok(()) => c.socket.registered = true,
            Err(e) => {
                log::warn!("epoll_ctl(ADD) for fd {}: {e}", c.raw_fd());
                self.close(token, CloseReason::Error);
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
        self.close(token, CloseReason::Limit);
        true
    }

    fn pause_accept(&mut self, retry_ms: Option<u64>) {
        let retry_at = retry_ms.map(|ms| self.sh.now + ms);
        if self.acceptor.pause(&self.poller, retry_at) {
            self.sh.stats.accept_paused += 1;
        }
    }

    /// A connection became idle: a client waiting at the connection limit
    /// may now take its place.
    pub(crate) fn connection_idle(&mut self) {
        if self.acceptor.paused_at_limit() {
            self.resume_accept();
        }
    }

    fn resume_accept(&mut self) {
        if !self.sh.stopping {
            self.acceptor.resume(&self.poller);
        }
    }

    // ----- closing -----------------------------------------------------

    /// Closes a connection once: EPOLL_CTL_DEL before close(2), the stream
    /// cleanup queued, an open chunked response detached, the slot's
    /// generation bumped so later events for it are ignored.
    pub(crate) fn close(&mut self, token: Token, reason: CloseReason) {
        let Some(mut c) = self.conns.remove(token) else {
            return;
        };
        if c.socket.registered {
            if let Err(e) = self.poller.delete(c.raw_fd()) {
                log::warn!("epoll_ctl(DEL) fd {}: {e}", c.raw_fd());
            }
        }
        self.sh.io.closing(c.raw_fd());
        self.timers.cancel(token.index());
        if let super::connection::State::Streaming(stream) = &c.state {
            if let Some(cleanup) = stream.cleanup {
                self.cleanups.push((cleanup, stream.user, reason));
            }
        }
        if !c.reply.is_null() {
            // SAFETY: `c.reply` came from the reply pool and is owned by `c`.
            let reply = unsafe { &mut *c.reply };
            if reply.phase == Phase::Chunked {
                // The application still holds it and must end it.
                reply.phase = Phase::Detached;
                self.sh.replies.detached.push(c.reply);
            } else {
                reply.phase = Phase::Done;
                self.sh.replies.spare.push(c.reply);
            }
        }
        if let Some(body) = c.output.take_borrowed() {
            self.sh.release_later(body);
        }
        c.input.release(&mut self.sh.pool);
        c.output
            .release(&mut self.sh.pool, &mut self.sh.queued_output);
        self.sh.stats.count_close(reason);
        if log::log_enabled!(log::Level::Debug) {
            match c.peer.to_socket_addr() {
                Some(addr) => log::debug!("closed {addr} (fd {}): {}", c.raw_fd(), reason.name()),
                None => log::debug!("closed fd {}: {}", c.raw_fd(), reason.name()),
            }
        }
        // `c` drops here: its descriptor closes, after the DEL above.
        drop(c);
        if self.conns.len() < self.sh.limits.max_connections && self.acceptor.retry_at.is_none() {
            self.resume_accept();
        }
    }

    /// Stop: close the listener and idle connections; busy ones finish
    /// their current response and close.
    pub(crate) fn begin_shutdown(&mut self) {
        if self.sh.stopping {
            return;
        }
        log::info!("stopping: draining {} connections", self.conns.len());
        self.sh.stopping = true;
        self.drain_deadline = self.sh.now + self.sh.limits.drain_timeout_ms;
        self.acceptor.close(&self.poller);
        for token in self.conns.tokens() {
            let Some(c) = self.conns.get_mut(token) else {
                continue;
            };
            if !c.output.is_empty() || c.responding() {
                c.close_after = Some(CloseReason::Shutdown);
            } else {
                self.close(token, CloseReason::Shutdown);
            }
        }
    }

    // ----- timers ------------------------------------------------------

    /// The end of a loop turn: memory goes back (`shrink_if_mostly_empty`,
    /// `Shared::return_memory`), and connections waiting for the loop's
    /// queued output to fall are driven again once it has.
    pub(crate) fn end_turn(&mut self) {
        self.shrink_if_mostly_empty();
        self.sh.return_memory(self.conns.len());
        if !self.sh.room_waiters.is_empty() && !self.sh.over_output_total() {
            for token in self.sh.room_waiters.drain(..) {
                if let Some(c) = self.conns.get_mut(token) {
                    c.waiting_room = false;
                    self.ready.push(token);
                }
            }
            // An embedding loop polling the epoll fd learns there is work.
            self.notify.signal();
        }
    }

    /// After a burst of connections (10,000 silent ones, say) has gone,
    /// gives the slab's and the timers' memory back, so memory returns to
    /// where it was rather than staying at the peak.
    pub(crate) fn shrink_if_mostly_empty(&mut self) {
        const KEEP: usize = 1024;
        let capacity = self.conns.capacity();
        if capacity > KEEP && self.conns.len() * 4 < capacity {
            self.conns.shrink(KEEP);
            self.timers.shrink(self.conns.slot_count(), KEEP);
            self.ready.shrink_to(64);
            self.ready_scratch.shrink_to(64);
        }
    }

    pub(crate) fn expire_timers(&mut self) {
        while let Some((index, kind)) = self.timers.pop_expired(self.sh.now) {
            let Some(c) = self.conns.at_index(index) else {
                continue;
            };
            let token = c.token;
            let reason = match (kind, c.lingering()) {
                (TimerKind::Linger, Some(r)) => r,
                _ => CloseReason::Timeout,
            };
            log::debug!("fd {}: {:?} timeout", c.raw_fd(), kind);
            self.close(token, reason);
        }
        if self.acceptor.retry_at.is_some_and(|at| at <= self.sh.now) {
            self.acceptor.retry_due();
            self.resume_accept();
        }
    }

    /// Milliseconds epoll_wait may sleep.
    pub(crate) fn wait_budget(&self, requested: i32) -> i32 {
        if !self.ready.is_empty() {
            return 0;
        }
        let mut deadline = self.timers.next_deadline();
        for extra in [
            self.acceptor.retry_at,
            self.sh.stopping.then_some(self.drain_deadline),
            self.sh.memory.trim_at,
        ]
        .into_iter()
        .flatten()
        {
            deadline = Some(deadline.map_or(extra, |d| d.min(extra)));
        }
        let timer_ms = deadline.map(|d| d.saturating_sub(self.sh.now).min(i32::MAX as u64) as i32);
        match (requested, timer_ms) {
            (r, None) => r,
            (r, Some(t)) if r < 0 => t,
            (r, Some(t)) => r.min(t),
        }
    }

    /// Handles one readiness event; returns the connection to drive.
    pub(crate) fn handle_event(&mut self, ev: Event) -> Option<Token> {
        match Token(ev.token) {
            LISTENER => {
                self.accept_ready();
                None
            }
            STOP => {
                self.stop.drain();
                self.begin_shutdown();
                None
            }
            NOTIFY => {
                self.notify.drain();
                None
            }
            token => {
                // A stale token (connection closed earlier in this batch, slot
                // perhaps reused) does not match any live connection.
                let c = self.conns.get_mut(token)?;
                if ev.error() {
                    let err = socket::take_socket_error(c.raw_fd());
                    let reason = if err == libc::ECONNRESET || err == libc::EPIPE || err == 0 {
                        CloseReason::Reset
                    } else {
                        CloseReason::Error
                    };
                    self.close(token, reason);
                    return None;
                }
                if ev.hup() {
                    // Both directions are finished: nothing can be sent.
                    let reason = c.lingering().unwrap_or(if !c.output.is_empty() {
                        CloseReason::Reset
                    } else {
                        CloseReason::PeerClosed
                    });
                    self.close(token, reason);
                    return None;
                }
                if ev.readable() || ev.read_hup() {
                    c.socket.readable = true;
                }
                if ev.read_hup() {
                    c.socket.rdhup = true;
                }
                if ev.writable() {
                    c.socket.write_blocked = false;
                }
                Some(token)
            }
        }
    }

    /// Closes every connection (cleanups queued with SHUTDOWN).
    pub(crate) fn close_all(&mut self) {
        for token in self.conns.tokens() {
            self.close(token, CloseReason::Shutdown);
        }
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        self.close_all();
        self.acceptor.close(&self.poller);
        // SAFETY: `view` came from Box::into_raw in `build` and is freed
        // only here.
        drop(unsafe { Box::from_raw(self.view) });
    }
}
