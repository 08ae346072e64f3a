//! The event loop (muduo's EventLoop): owns the epoll instance, the
//! acceptor, the connection table, the timers and the wake-up eventfds;
//! turns events into connection steps. Application code is never called
//! from here: `driver.rs` does that, through `LoopPtr`.

use std::collections::VecDeque;
use std::os::raw::c_void;
use std::sync::Arc;

use super::accept_budget::AcceptBudget;
use super::acceptor::{Accepted, Acceptor, MAX_LISTENERS};
use super::app_timers::AppTimers;
use super::completion::Finished;
use super::config::Limits;
use super::connection::{CleanupFn, Conn};
use super::error::{CloseReason, Error};
use super::first_read::FirstRead;
use super::handlers::Handlers;
use super::io::Io;
use super::posts::{Posts, Task};
use super::records;
use super::reply::{Owner, Phase};
use super::request::RequestView;
use super::shared::Shared;
use super::slab::{Slab, Token};
use super::stats::Stats;
use super::timers::{TimerKind, Timers};
use super::upgrade::Upgrade;
use crate::http::forwarded::Cidr;
use crate::sys::listen::ListenSocket;
use crate::sys::{socket, Event, EventFd, Interest, OwnedFd, PeerAddr, Poller};

/// Listener 0's token; listener `i` has `LISTENER - i`.
pub(crate) const LISTENER: Token = Token(u64::MAX);
pub(crate) const STOP: Token = Token(u64::MAX - MAX_LISTENERS as u64);
pub(crate) const NOTIFY: Token = Token(u64::MAX - MAX_LISTENERS as u64 - 1);

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
    /// How many clients to accept per wake-up, one budget per listener.
    pub(crate) accept_budget: [AcceptBudget; MAX_LISTENERS],
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
    /// Accepted upgrades whose connection ended before the hand-off: the
    /// application is told, once no borrow of the loop is alive.
    pub(crate) lost_upgrades: Vec<(Upgrade, CloseReason)>,
    /// Where lingering connections' input is discarded.
    pub(crate) scratch: Vec<u8>,
    pub(crate) drain_deadline: u64,
    /// Storage for the next batch of completion records, swapped with
    /// `sh.finished` when a batch is handed over (`LoopPtr::run_cleanups`).
    pub(crate) finished_spare: Finished,
    /// Tasks posted from any thread (shared with the ffi's table of live
    /// loops), and the batch being run.
    pub(crate) posts: Arc<Posts>,
    pub(crate) post_batch: VecDeque<Task>,
    /// The application's timers.
    pub(crate) app_timers: AppTimers,
    /// What posted tasks and timers get as their first argument (the ffi's
    /// handle of this loop; NULL for an in-memory loop).
    pub(crate) task_handle: *mut c_void,
}

impl EventLoop {
    /// Binds and listens on `limits.addr` (unless `limits.listen` is off),
    /// sets up epoll and the eventfds.
    /// The loop comes back as the raw pointer of its allocation (from
    /// `Box::into_raw`): the addresses it hands out (each reply's owner)
    /// derive from it, and `LoopPtr::destroy` frees it.
    pub fn create(limits: Limits) -> Result<*mut EventLoop, Error> {
        let poller = Poller::new(EVENT_BATCH)?;
        let acceptor = if limits.listen {
            Acceptor::listen(
                &poller,
                &limits.addr,
                limits.backlog,
                limits.reuse_port,
                LISTENER.0,
            )?
        } else {
            Acceptor::none(LISTENER.0)
        };
        let stop = EventFd::new()?;
        let notify = EventFd::new()?;
        poller.add(stop.raw(), Interest::READ_LEVEL, STOP.0)?;
        poller.add(notify.raw(), Interest::READ_LEVEL, NOTIFY.0)?;
        let addr = limits.addr;
        let port = acceptor.port();
        let listen = limits.listen;
        let el = EventLoop::build(limits, poller, acceptor, (stop, notify), Io::default());
        if listen {
            log::info!("listening on {}:{}", addr.ip(), port);
        }
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
        let posts = Arc::new(Posts::new(notify.raw(), limits.max_pending_posts));
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
            accept_budget: std::array::from_fn(|_| AcceptBudget::default()),
            handlers: Handlers::default(),
            view,
            in_callback: false,
            ready: Vec::with_capacity(64),
            ready_scratch: Vec::with_capacity(64),
            driving: None,
            cleanups: Vec::with_capacity(16),
            lost_upgrades: Vec::new(),
            scratch: Vec::with_capacity(4096),
            drain_deadline: 0,
            finished_spare: Finished::default(),
            posts,
            post_batch: VecDeque::new(),
            app_timers: AppTimers::default(),
            task_handle: std::ptr::null_mut(),
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

    /// Serves one more listening socket; returns its index. Refused once
    /// stopping (`State`) and at `MAX_LISTENERS` (`TooLarge`).
    pub fn add_listener(
        &mut self,
        socket: ListenSocket,
        name: Option<std::ffi::CString>,
    ) -> Result<usize, Error> {
        if self.sh.stopping {
            return Err(Error::State);
        }
        if self.acceptor.count() >= MAX_LISTENERS {
            return Err(Error::TooLarge);
        }
        Ok(self.acceptor.add(&self.poller, socket, name)?)
    }

    /// How many listeners have been added (until Stop closes them).
    pub fn listener_count(&self) -> usize {
        self.acceptor.count()
    }

    /// Listener `index`'s descriptor, if it exists.
    pub fn listener_fd(&self, index: usize) -> Option<i32> {
        self.acceptor.fd_of(index)
    }

    /// Listener `index`'s TCP port (0 for a Unix socket), if it exists.
    pub fn listener_port(&self, index: usize) -> Option<u16> {
        self.acceptor.port_of(index)
    }

    /// The name listener `index` was handed in with, if any.
    pub fn listener_name(&self, index: usize) -> Option<*const std::os::raw::c_char> {
        self.acceptor.name(index).map(|n| n.as_ptr())
    }

    /// The listen(2) backlog from the settings.
    pub fn backlog(&self) -> i32 {
        self.sh.limits.backlog
    }

    pub fn epoll_fd(&self) -> i32 {
        self.poller.fd()
    }

    /// The eventfd that Stop writes to (async-signal-safe from any thread).
    pub fn stop_fd(&self) -> i32 {
        self.stop.raw()
    }

    /// The queue `Connection_Post` pushes to from any thread.
    pub fn posts(&self) -> Arc<Posts> {
        Arc::clone(&self.posts)
    }

    /// What posted tasks and timers get as their first argument.
    pub fn set_task_handle(&mut self, handle: *mut c_void) {
        self.task_handle = handle;
    }

    pub fn task_handle(&self) -> *mut c_void {
        self.task_handle
    }

    pub fn set_handlers(&mut self, handlers: Handlers) {
        self.handlers = handlers;
        self.sh.recording = handlers.completion.is_some();
    }

    /// See `ParseLimits::trusted_gateway`.
    pub fn set_trusted_gateway(&mut self, trusted: bool) {
        self.sh.limits.trusted_gateway = trusted;
        self.sh.parse_limits = self.sh.limits.parse();
    }

    /// The proxies whose forwarding headers name the client (see
    /// `http::forwarded`). Kept in the request view, where the request
    /// helpers read them; set between requests or from a handler.
    /// `unix`: peers on a Unix domain socket are trusted too.
    pub fn set_trusted_proxies(&mut self, list: Vec<Cidr>, unix: bool) {
        // SAFETY: `view` is the live allocation from `build`, freed only in
        // Drop. No reference to it outlives a call: the driver passes the
        // application a raw pointer, and each Request_* call borrows the
        // view only for its own duration, so none is alive now.
        unsafe {
            (*self.view).trusted_proxies = list;
            (*self.view).trusted_unix = unix;
        }
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

    /// Accepts up to the wake-up's budget (`accept_budget.rs`: no accept4
    /// that ends in EAGAIN while the backlog stays as deep), or stops at
    /// EAGAIN, the connection limit or an fd shortage. At
    /// the limit, room is made only for a client that is really waiting:
    /// the longest-idle keep-alive connection is closed for it; with none
    /// idle, accepting pauses until a connection closes or becomes idle.
    /// Nobody waiting: the (level-triggered) listener stays watched, and
    /// reports the next client.
    fn accept_ready(&mut self, index: usize) {
        let mut taken = 0u16;
        while !self.sh.stopping && self.acceptor.ready() {
            if taken >= self.accept_budget[index].limit() {
                // Clients may still wait: the level-triggered listener is
                // reported again by the next epoll_wait.
                self.accept_budget[index].record(taken, false);
                return;
            }
            if self.conns.len() >= self.sh.limits.max_connections {
                if !self.acceptor.client_waiting(index) {
                    return;
                }
                if !self.evict_idle() {
                    self.pause_accept(None);
                    return;
                }
            }
            match self
                .acceptor
                .accept(index, &mut self.sh.stats.accept_fd_exhausted)
            {
                Accepted::Client(fd, peer) => {
                    self.register(fd, peer);
                    taken += 1;
                }
                Accepted::Skip | Accepted::TurnedAway => taken += 1,
                Accepted::Drained => {
                    self.accept_budget[index].record(taken, true);
                    return;
                }
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

    pub(crate) fn resume_accept(&mut self) {
        if !self.sh.stopping {
            self.acceptor.resume(&self.poller);
        }
    }

    // ----- closing -----------------------------------------------------

    /// Closes a connection once: the stream cleanup queued, an open chunked
    /// response detached, the slot's generation bumped so later events for
    /// it are ignored, then close(2) with no EPOLL_CTL_DEL before it.
    ///
    /// Why no DEL (one system call per connection, as nginx does with
    /// `NGX_CLOSE_EVENT`): epoll drops a registration by itself when the
    /// last descriptor of the open file description closes. When another
    /// one survives (a `fork`ed child, a `dup`, SCM_RIGHTS) the registration
    /// stays and keeps reporting under the old token; a DEL would not help
    /// once the number is reused anyway. That is safe here because
    /// (1) every token carries its slot's generation, bumped above, so a
    /// stale event matches nothing (`handle_event`), and (2) a client is
    /// registered edge-triggered (`Interest::CLIENT_EDGE`), so a stale
    /// registration reports each change of its socket once and can never
    /// spin the loop the way a level-triggered one would. The listener and
    /// the eventfds (level-triggered) are still removed before they close.
    /// tests/api/stale_events.rs checks both cases, fork included.
    pub(crate) fn close(&mut self, token: Token, reason: CloseReason) {
        let Some(mut c) = self.conns.remove(token) else {
            return;
        };
        self.sh.io.closing(c.raw_fd());
        self.timers.cancel(token.index());
        if c.record_open {
            let completed = c.output.is_empty() && !c.responding();
            records::finish(&mut c, &mut self.sh, Some(reason), completed);
        }
        match &c.state {
            super::connection::State::Streaming(stream) => {
                if let Some(cleanup) = stream.cleanup {
                    self.cleanups.push((cleanup, stream.user, reason));
                }
            }
            // The 101 head was not out: the application is told instead.
            super::connection::State::Upgrading(upgrade) => {
                self.lost_upgrades.push((*upgrade, reason));
            }
            _ => {}
        }
        if !c.reply.is_null() {
            // SAFETY: `c.reply` came from the reply pool and is owned by `c`.
            let reply = unsafe { &mut *c.reply };
            if let Some(d) = reply.deferred {
                // The application holds it until its release: unanswered, it
                // is told once why it can no longer answer.
                if matches!(reply.phase, Phase::Handler | Phase::Chunked) {
                    if let Some(cleanup) = d.cleanup {
                        self.cleanups.push((cleanup, d.user, reason));
                    }
                }
                if d.released {
                    // SAFETY: in the pool's deferred list; `c` is gone.
                    unsafe { self.sh.replies.free_deferred(c.reply) };
                } else {
                    reply.phase = Phase::Detached;
                }
            } else if reply.phase == Phase::Chunked {
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
        c.output.drop_file();
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
        // `c` drops here: its descriptor closes (see above: no DEL).
        drop(c);
        if self.conns.len() < self.sh.limits.max_connections && self.acceptor.retry_at.is_none() {
            self.resume_accept();
        }
    }

    /// Stop: close the listeners and idle connections; busy ones finish
    /// their current response and close (a request pipelined behind it is
    /// not started). A connection with a request on its way (part of it
    /// read, input waiting in the socket, or a new client that has sent
    /// nothing yet: it was accepted to be answered) is kept: that request
    /// is answered, with `Connection: close`, then it closes. The header
    /// and drain timeouts bound all of it.
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
            } else if c.close_after.is_none()
                && c.lingering().is_none()
                && (!c.input.is_empty()
                    || c.requests_served == 0
                    || c.awaiting_body()
                    || self.sh.io.input_waiting(c.raw_fd()))
            {
                // `stopping` makes its response the last one.
                c.socket.readable = true;
                self.ready.push(token);
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
            if kind == TimerKind::Response {
                self.response_timeout(token);
                continue;
            }
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
        match (requested, self.next_timeout()) {
            (r, None) => r,
            (r, Some(t)) if r < 0 => t,
            (r, Some(t)) => r.min(t),
        }
    }

    /// Adds an application timer due `delay_ms` from now; its id.
    pub fn add_timer(&mut self, delay_ms: u64, task: Task) -> Option<u64> {
        self.sh.tick();
        // Whole milliseconds: the clock may be up to 1 ms past the last
        // full one, so one more is counted to be sure `delay_ms` has
        // passed when the timer fires (a zero delay fires at the next turn).
        let slack = u64::from(delay_ms > 0);
        let deadline = self.sh.now.saturating_add(delay_ms).saturating_add(slack);
        self.app_timers.add(deadline, task)
    }

    /// `next_timeout` with the clock read now.
    pub fn next_timeout_now(&mut self) -> Option<i32> {
        self.sh.tick();
        self.next_timeout()
    }

    /// Milliseconds until the loop has something to do without an epoll
    /// event (`Connection_NextTimeout`): 0 when work is queued for its next
    /// turn (connections left over from the last one, posted tasks, a
    /// drained stop to report), else until the earliest deadline: the
    /// connections' timers, the application's timers, the accept retry
    /// after EMFILE, the drain deadline, giving memory back. None: no
    /// deadline at all. Read `sh.now`: tick first.
    pub fn next_timeout(&self) -> Option<i32> {
        if !self.ready.is_empty()
            || self.posts.pending()
            || (self.sh.stopping && self.conns.is_empty())
        {
            return Some(0);
        }
        let mut deadline = self.timers.next_deadline();
        for extra in [
            self.acceptor.retry_at,
            self.sh.stopping.then_some(self.drain_deadline),
            self.sh.memory.trim_at,
            self.app_timers.next_deadline(),
        ]
        .into_iter()
        .flatten()
        {
            deadline = Some(deadline.map_or(extra, |d| d.min(extra)));
        }
        deadline.map(|d| d.saturating_sub(self.sh.now).min(i32::MAX as u64) as i32)
    }

    /// Handles one readiness event; returns the connection to drive.
    pub(crate) fn handle_event(&mut self, ev: Event) -> Option<Token> {
        if let Some(index) = self.acceptor.index_of(ev.token) {
            self.accept_ready(index);
            return None;
        }
        match Token(ev.token) {
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
                // perhaps reused; or a registration left behind by a close
                // without EPOLL_CTL_DEL, see `close`) matches no live
                // connection. tests/api/stale_events.rs reads this record.
                let Some(c) = self.conns.get_mut(token) else {
                    log::debug!(
                        "stale event for token {:#x} ignored (slot {})",
                        token.0,
                        if self.conns.at_index(token.index()).is_some() {
                            "reused"
                        } else {
                            "free"
                        }
                    );
                    return None;
                };
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Work left for the next turn raises no epoll event (a connection
    /// that used up its read budget with data still in the kernel, whose
    /// edge-triggered event was consumed): an embedding loop must be told
    /// not to sleep.
    #[test]
    fn next_timeout_is_zero_with_connections_left_for_the_next_turn() {
        let limits = Limits {
            addr: "127.0.0.1:0".parse().unwrap(),
            ..Limits::default()
        };
        let el = EventLoop::create(limits).unwrap();
        // SAFETY: just created, not shared; freed below.
        let loop_ = unsafe { &mut *el };
        loop_.sh.tick();
        assert_eq!(loop_.next_timeout(), None);
        loop_.ready.push(Token(7));
        assert_eq!(loop_.next_timeout(), Some(0));
        assert_eq!(loop_.wait_budget(-1), 0);
        loop_.ready.clear();
        // SAFETY: made by Box::into_raw in `create`; nothing else holds it.
        drop(unsafe { Box::from_raw(el) });
    }
}
