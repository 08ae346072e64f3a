//! One connection's progress: read, parse, write, close or wait, as far as
//! it can go without application code (`EventLoop::step`), and what the
//! loop does once application code has returned.

use std::os::raw::c_void;

use super::config::Limits;
use super::connection::{Conn, ProducerFn, State};
use super::error::CloseReason;
use super::event_loop::EventLoop;
use super::exchange::{self, Body, Next};
use super::records;
use super::reply::{Phase, Reply};
use super::shared::Shared;
use super::slab::Token;
use super::timers::TimerKind;
use super::transfer::{self, Flush, Read};
use super::upgrade::Handoff;
use crate::http::response::chunk_size_line;

/// Idle deadlines are rounded up to a multiple of this many milliseconds,
/// so a keep-alive connection answering many requests a millisecond moves
/// its timer once per grain instead of once per request (the list stays
/// sorted: the rounded deadline never decreases). An idle connection closes
/// at most this much after `idle_timeout_ms` (nginx re-arms lazily by up
/// to 300 ms for the same reason).
const IDLE_GRAIN_MS: u64 = 8;

/// `now + timeout`, rounded up to the idle grain.
fn idle_deadline(now: u64, timeout: u64) -> u64 {
    (now + timeout).next_multiple_of(IDLE_GRAIN_MS)
}

/// Bytes one connection may read per turn before others get theirs.
const READ_BUDGET: usize = 256 * 1024;
/// Largest piece a stream producer is asked for.
const PRODUCE_MAX: usize = 64 * 1024;

/// The loop's queued output is over its bound: drive connection `token`
/// (`c`) again once it falls (`EventLoop::end_turn`).
fn wait_for_room(c: &mut Conn, sh: &mut Shared, token: Token) {
    if !c.waiting_room {
        c.waiting_room = true;
        sh.room_waiters.push(token);
    }
}

/// Whether a pass of `step` over `c`, its output just sent, would do
/// nothing before step 5: no record to finish, no stream, upgrade or body
/// in progress, nothing buffered or readable, no wait for room.
fn settled(c: &Conn, sh: &Shared) -> bool {
    matches!(c.state, State::Receiving(None))
        && !c.record_open
        && c.input.is_empty()
        && !c.socket.readable
        && !sh.over_output_total()
}

/// What a connection needs from application code next.
pub enum Step {
    Idle,
    /// A request is in the view; `len` input bytes belong to it; `reply`
    /// is the connection's reply handle, given to the handler.
    Dispatch {
        len: usize,
        reply: *mut Reply,
    },
    /// A piece of a streamed body, `len` bytes, is in the view.
    BodyPiece {
        len: usize,
    },
    Produce {
        producer: ProducerFn,
        user: *mut c_void,
        buf: *mut u8,
        cap: usize,
    },
    /// The 101 head of an accepted upgrade is out: the connection has left
    /// the loop; the application is to be handed it.
    Upgrade(Handoff),
}

impl EventLoop {
    /// Advances a connection as far as it can go without application code;
    /// returns what it needs from application code next.
    pub(crate) fn step(&mut self, token: Token) -> Step {
        let mut read_budget = READ_BUDGET;
        loop {
            let high_water = self.sh.limits.output_high_water;
            let Some(c) = self.conns.get_mut(token) else {
                return Step::Idle;
            };
            if c.lingering().is_some() {
                if c.socket.readable {
                    if let Some(reason) = transfer::linger_read(c, &mut self.sh, &mut self.scratch)
                    {
                        self.close(token, reason);
                    }
                }
                return Step::Idle;
            }
            if c.record_open && c.output.is_empty() && !c.responding() {
                // The response left: its completion record is done.
                let close = c.close_after;
                records::finish(c, &mut self.sh, close, true);
            }

            // 0. An accepted upgrade whose 101 head is out leaves the loop.
            if matches!(c.state, State::Upgrading(_)) && c.output.is_empty() {
                return self.hand_off(token);
            }

            // 1. A stream wants refilling, or has finished.
            if let State::Streaming(stream) = &c.state {
                let pending = c.output.len();
                if !stream.eof && pending < high_water.div_ceil(2) {
                    let cap = (high_water - pending).clamp(1, PRODUCE_MAX);
                    let frame = if stream.raw { 0 } else { 10 };
                    let (producer, user) = (stream.producer, stream.user);
                    let out = c.output.writer(&mut self.sh.pool);
                    out.reserve(frame + cap + 2);
                    // SAFETY: reserve guaranteed `frame + cap` bytes of
                    // capacity past len; the producer writes into them.
                    let buf = unsafe { out.as_mut_ptr().add(out.len() + frame) };
                    return Step::Produce {
                        producer,
                        user,
                        buf,
                        cap,
                    };
                }
                if stream.eof && pending == 0 {
                    if let Some(cleanup) = stream.cleanup {
                        self.cleanups
                            .push((cleanup, stream.user, CloseReason::Completed));
                    }
                    exchange::finish_response(c, &mut self.sh, false);
                    continue;
                }
            }

            // 2. The next request, if the connection may start one. Hot
            // path: with nothing buffered and no body being streamed,
            // parse_next would answer NeedMore at once; the call is skipped
            // (it happens on most passes of a keep-alive request).
            let nothing_to_parse = c.input.is_empty() && !matches!(c.state, State::Uploading(_));
            if nothing_to_parse {
                if self.sh.over_output_total() {
                    wait_for_room(c, &mut self.sh, token);
                }
            } else if can_start(c, &self.sh) {
                let stream_above = self.handlers.body.map(|_| self.handlers.stream_above);
                // SAFETY: the view is the loop's own allocation; no
                // application code holds it during a step.
                let view = unsafe { &mut *self.view };
                match exchange::parse_next(c, &mut self.sh, view, stream_above) {
                    Next::Dispatch { len } => {
                        return Step::Dispatch {
                            len,
                            reply: c.reply,
                        }
                    }
                    Next::BodyPiece { len } => return Step::BodyPiece { len },
                    Next::Error(status) => {
                        exchange::reject(c, &mut self.sh, status);
                        continue;
                    }
                    Next::NeedMore => {}
                }
            } else if self.sh.over_output_total() {
                wait_for_room(c, &mut self.sh, token);
            }

            // 3. Read more. (Steps 2 to 5 work on the connection looked up
            // once per pass: only the loop's other fields are borrowed.)
            if c.socket.readable && wants_input(c, &self.sh) {
                if read_budget == 0 {
                    self.ready.push(token);
                } else {
                    match transfer::read_some(c, &mut self.sh, &mut self.first_read) {
                        Read::Data(n) => {
                            read_budget = read_budget.saturating_sub(n);
                            continue;
                        }
                        Read::Nothing => {}
                        Read::Full => {
                            exchange::reject(c, &mut self.sh, 413);
                        }
                        Read::Failed(reason) => {
                            self.close(token, reason);
                            return Step::Idle;
                        }
                    }
                }
            }

            // 4. Write what is queued.
            if !c.output.is_empty() && !c.socket.write_blocked {
                match transfer::flush(c, &mut self.sh) {
                    Flush::Done => {
                        c.output.clear();
                        if !settled(c, &self.sh) {
                            continue;
                        }
                        // Hot path (a keep-alive response just went out):
                        // another pass would find nothing to do before
                        // step 5, so go straight there.
                    }
                    Flush::Blocked => {}
                    Flush::Failed(reason) => {
                        self.close(token, reason);
                        return Step::Idle;
                    }
                }
            }

            // 5. Nothing more to do now: close, or wait with the right timer.
            if c.output.is_empty() && !c.responding() {
                if let Some(reason) = c.close_after {
                    self.begin_close(token, reason);
                    return Step::Idle;
                }
                if c.socket.peer_fin {
                    // Everything the client sent has been answered; what is
                    // left (if anything) is an incomplete request.
                    self.close(token, CloseReason::PeerClosed);
                    return Step::Idle;
                }
                if c.input.is_empty() {
                    // Idle: hand the buffers back so an idle connection
                    // costs only its `Conn`.
                    c.input.release(&mut self.sh.pool);
                    c.output
                        .release(&mut self.sh.pool, &mut self.sh.queued_output);
                }
            }
            // `arm_timer` with the connection in hand.
            if let Some((kind, deadline, dirty)) = timer_wanted(c, self.sh.now, &self.sh.limits) {
                self.set_timer(token, kind, deadline, dirty);
            }
            return Step::Idle;
        }
    }

    /// Takes an upgraded connection out of the loop without closing it:
    /// out of the epoll set (EPOLL_CTL_DEL, the descriptor stays open), the
    /// timers and the connection table; its reply handle back to the pool.
    /// What is left is the application's (`Step::Upgrade`).
    fn hand_off(&mut self, token: Token) -> Step {
        let Some(mut c) = self.conns.remove(token) else {
            return Step::Idle;
        };
        let State::Upgrading(upgrade) = c.state else {
            unreachable!("hand_off is called for an upgrading connection");
        };
        let fd = c.raw_fd();
        if c.socket.registered {
            if let Err(e) = self.poller.delete(fd) {
                // Only EBADF/ENOENT/ENOMEM are possible; the slot's
                // generation moved on, so a late event is ignored anyway.
                log::warn!("epoll_ctl(DEL) fd {fd} at hand-off: {e}");
            }
        }
        self.timers.cancel(token.index());
        if c.record_open {
            // The request's record: its 101 left; the connection did not
            // end, it leaves the loop (no close reason).
            records::finish(&mut c, &mut self.sh, None, true);
        }
        if !c.reply.is_null() {
            // SAFETY: `c.reply` came from the reply pool and is owned by `c`;
            // its response is complete (the 101 head), nobody holds it.
            unsafe { (*c.reply).phase = Phase::Done };
            self.sh.replies.spare.push(c.reply);
        }
        c.output
            .release(&mut self.sh.pool, &mut self.sh.queued_output);
        self.sh.stats.upgraded += 1;
        log::debug!(
            "fd {fd}: upgraded; handed to the application with {} bytes",
            c.input.len()
        );
        if self.conns.len() < self.sh.limits.max_connections && self.acceptor.retry_at.is_none() {
            self.resume_accept();
        }
        Step::Upgrade(Handoff {
            fd: c.fd,
            input: c.input,
            upgrade,
        })
    }

    /// The last response is out: half-close and linger (so the client reads
    /// the response rather than an RST caused by its unread input), or close
    /// at once when the client already sent FIN.
    fn begin_close(&mut self, token: Token, reason: CloseReason) {
        let Some(c) = self.conns.get_mut(token) else {
            return;
        };
        // Linger only when the client may still be sending (unread input, an
        // error response, or a request we did not read to the end): closing
        // with unread data makes the kernel send an RST that can destroy the
        // response in flight. Otherwise close at once, as nginx does.
        let may_send_more = reason == CloseReason::Protocol
            || !c.input.is_empty()
            || c.socket.readable
            || c.socket.rdhup && !c.socket.peer_fin;
        if c.socket.peer_fin || !may_send_more {
            self.close(token, reason);
            return;
        }
        self.sh.io.shutdown_write(c.raw_fd());
        c.state = State::Lingering {
            reason,
            discarded: 0,
        };
        c.socket.readable = true;
        c.output
            .release(&mut self.sh.pool, &mut self.sh.queued_output);
        let deadline = self.sh.now + self.sh.limits.linger_timeout_ms;
        self.timers.arm(token.index(), TimerKind::Linger, deadline);
        if let Some(reason) = transfer::linger_read(c, &mut self.sh, &mut self.scratch) {
            self.close(token, reason);
        }
    }

    /// Puts the connection in the timer list its state calls for.
    pub(crate) fn arm_timer(&mut self, token: Token) {
        let Some(c) = self.conns.get_mut(token) else {
            return;
        };
        if let Some((kind, deadline, dirty)) = timer_wanted(c, self.sh.now, &self.sh.limits) {
            self.set_timer(token, kind, deadline, dirty);
        }
    }

    /// `arm_timer`'s second half, once the connection's wanted timer is
    /// known (`timer_wanted`): the step, which has the connection in hand,
    /// comes here without a second lookup.
    #[inline]
    fn set_timer(&mut self, token: Token, kind: TimerKind, deadline: u64, dirty: bool) {
        let index = token.index();
        let armed = self.timers.kind(index);
        if dirty || armed != Some(kind) {
            if armed == Some(kind) && self.timers.deadline(index) == Some(deadline) {
                // Hot path: a keep-alive connection answered within its
                // idle grain (or a head still arriving) keeps its place.
                return;
            }
            self.timers.arm(index, kind, deadline);
            if kind == TimerKind::Idle && armed != Some(kind) {
                self.connection_idle();
            }
        }
    }

    /// The handler returned: consume the request, answer 500 if it did not.
    pub(crate) fn end_dispatch(&mut self, token: Token, len: usize) {
        let now = self.sh.now;
        let Some(c) = self.conns.get_mut(token) else {
            return;
        };
        c.input.consume(len);
        c.requests_served += 1;
        c.timer_dirty = true;
        c.request_start_ms = now;
        if c.reply.is_null() {
            // A deferred response answered inside its handler: the
            // application holds the handle, the connection has none.
            return;
        }
        // SAFETY: the reply is owned by the connection; the handler returned.
        let reply = unsafe { &mut *c.reply };
        if reply.phase == Phase::Handler && reply.deferred.is_some() {
            // The application answers later (`Response_Defer`).
            c.deferred_wait = true;
            return;
        }
        if reply.phase == Phase::Handler {
            log::error!("application error: the handler returned without responding; sending 500");
            reply.status = 500;
            reply.headers.clear();
            reply.app_close = true;
            let _ = exchange::compose(c, &mut self.sh, b"Internal Server Error\n", Body::Full);
        }
    }

    /// A deferred response's time is up: the library answers 503 in the
    /// application's place (the connection stays open for the next
    /// request), the application's handle is closed for it (every call gets
    /// `Error::Closed`), and its cleanup is queued with `Timeout`.
    pub(crate) fn response_timeout(&mut self, token: Token) {
        let Some(c) = self.conns.get_mut(token) else {
            return;
        };
        if !c.deferred_wait || c.reply.is_null() {
            return;
        }
        let reply = c.reply;
        log::warn!(
            "fd {}: the application did not answer a deferred request within {} ms; sent 503",
            c.raw_fd(),
            self.sh.limits.response_timeout_ms
        );
        self.sh.stats.response_timeouts += 1;
        exchange::answer_instead(c, &mut self.sh, 503, b"Service Unavailable\n", false);
        // SAFETY: the deferred handle stays allocated (the pool's deferred
        // list) until the application releases it; no reference to it is
        // alive here.
        let r = unsafe { &mut *reply };
        r.phase = Phase::Detached;
        if let Some(cleanup) = r.deferred.and_then(|d| d.cleanup) {
            let user = r.deferred.map_or(std::ptr::null_mut(), |d| d.user);
            self.cleanups.push((cleanup, user, CloseReason::Timeout));
        }
        self.queue_ready(token);
    }

    /// Stores what a stream producer returned.
    pub(crate) fn end_produce(&mut self, token: Token, produced: isize, cap: usize) {
        let Some(c) = self.conns.get_mut(token) else {
            return;
        };
        let State::Streaming(stream) = &mut c.state else {
            return;
        };
        if produced < 0 || produced as usize > cap {
            log::warn!(
                "fd {}: stream producer failed ({produced}); aborting",
                c.raw_fd()
            );
            self.close(token, CloseReason::Error);
            return;
        }
        let n = produced as usize;
        let raw = stream.raw;
        if n == 0 {
            stream.eof = true;
            if !raw {
                c.output
                    .append(&mut self.sh.pool, crate::http::response::LAST_CHUNK);
            }
            return;
        }
        let out = c.output.storage_mut();
        if raw {
            // SAFETY: the producer initialised `n <= cap` bytes right after len.
            unsafe { out.set_len(out.len() + n) };
        } else {
            let at = out.len();
            // SAFETY: the producer initialised `n <= cap` bytes after the 10
            // reserved for the size line, which we now fill.
            unsafe { out.set_len(at + 10 + n) };
            out[at..at + 10].copy_from_slice(&chunk_size_line(n));
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// The timer list connection `c` belongs in now and its deadline, and
/// whether it had to be looked at again (`timer_dirty`, cleared here);
/// None while it lingers (its linger deadline stays).
#[inline]
fn timer_wanted(c: &mut Conn, now: u64, limits: &Limits) -> Option<(TimerKind, u64, bool)> {
    if c.lingering().is_some() {
        return None;
    }
    let app_open = matches!(c.state, State::Answering)
        // SAFETY: an answering connection has its reply handle.
        && unsafe { (*c.reply).phase } == Phase::Chunked;
    let (kind, deadline) = if !c.output.is_empty() || matches!(c.state, State::Streaming(_)) {
        (TimerKind::Send, now + limits.send_timeout_ms)
    } else if c.deferred_wait {
        // SAFETY: a deferred connection has its reply handle, which no
        // application code is using during a loop step.
        let since = unsafe { (*c.reply).deferred }.map_or(now, |d| d.since_ms);
        (TimerKind::Response, since + limits.response_timeout_ms)
    } else if app_open {
        (TimerKind::AppWait, now + limits.idle_timeout_ms)
    } else if c.awaiting_body() {
        (TimerKind::Body, now + limits.body_timeout_ms)
    } else if !c.input.is_empty() || c.requests_served == 0 {
        (
            TimerKind::Header,
            c.request_start_ms + limits.header_timeout_ms,
        )
    } else {
        (TimerKind::Idle, idle_deadline(now, limits.idle_timeout_ms))
    };
    Some((kind, deadline, std::mem::take(&mut c.timer_dirty)))
}

/// Whether the connection may start its next request (it is not answering
/// one, nor closing, and its output is below the high-water marks).
/// Takes the connection in hand: the step decides without a slab lookup.
fn can_start(c: &Conn, sh: &Shared) -> bool {
    !c.responding()
        && !c.record_open
        && c.close_after.is_none()
        // Hot path: with no borrowed body or file queued, the output's
        // length is its copied bytes (no need to add up the parts).
        && !c.output.has_borrowed()
        && c.output.copied() < sh.limits.output_high_water
        && !sh.over_output_total()
}

/// Whether reading more is useful now (backpressure: a connection that is
/// answering, over its high-water mark or closing reads nothing).
fn wants_input(c: &Conn, sh: &Shared) -> bool {
    if c.socket.peer_fin {
        return false;
    }
    // A deferred request waits for the application: read on (a reset or
    // FIN is seen at once) until `max_header_bytes` of what follows is
    // buffered, then stop until the answer (backpressure).
    can_start(c, sh) || c.deferred_wait && c.input.len() < sh.limits.max_header_bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_deadlines_are_late_by_less_than_a_grain_and_never_go_back() {
        let timeout = 5_000;
        let mut last = 0;
        for now in 0..100 {
            let d = idle_deadline(now, timeout);
            assert!(d >= now + timeout && d < now + timeout + IDLE_GRAIN_MS);
            assert_eq!(d % IDLE_GRAIN_MS, 0);
            assert!(d >= last);
            last = d;
        }
        // One re-arm per grain, not per millisecond.
        let distinct: std::collections::BTreeSet<u64> =
            (1..=64).map(|now| idle_deadline(now, timeout)).collect();
        assert_eq!(distinct.len() as u64, 64 / IDLE_GRAIN_MS);
    }
}
