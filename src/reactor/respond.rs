//! What the application's response calls do (`Response_*` in ffi/response.rs,
//! ffi/file.rs, ffi/upgrade.rs): each borrows the reply's loop briefly
//! through `LoopPtr::with`, composes into the connection's output, and, for
//! an answer given outside the handler (a deferred response, a chunk
//! written later), drives the connection on at once or queues it for the
//! loop's next turn. The callback invariant of `driver.rs` holds: no borrow
//! of the loop outlives a call.

use std::os::raw::c_void;

use super::connection::{CleanupFn, Conn, ProducerFn, State, Stream};
use super::driver::LoopPtr;
use super::error::{CloseReason, Error};
use super::event_loop::EventLoop;
use super::exchange::{self, Body};
use super::file_response::{self, CallerFile, Conditional};
use super::output::Borrowed;
use super::reply::{Deferred, Phase, Reply};
use super::shared::Shared;
use super::slab::Token;
use super::transfer::{self, Flush};
use super::upgrade::{self, Upgrade};
use crate::http::response::push_chunk;

/// The loop a live reply belongs to.
fn owner(reply: &Reply) -> LoopPtr {
    // SAFETY: replies are created by a live loop with its own address (see
    // `EventLoop::build`), and every reply is freed before (or with) its loop.
    unsafe { LoopPtr::new(reply.owner.0 as *mut EventLoop) }.expect("a reply always has its loop")
}

/// What every answer does: the reply must still be waiting for one
/// (`Phase::Handler`), `compose` writes it into its connection (a short
/// borrow of the loop), and an answer given to a deferred response outside
/// its handler is driven on at once (`answered_later`).
///
/// # Safety
/// `reply` is a live handle given out by the library, not borrowed elsewhere.
unsafe fn answer(
    reply: *mut Reply,
    compose: impl FnOnce(&mut Conn, &mut Shared) -> Result<(), Error>,
) -> Result<(), Error> {
    // SAFETY: contract.
    let r = unsafe { &*reply };
    r.check(Phase::Handler)?;
    let (token, deferred) = (r.token, r.deferred.is_some());
    let lp = owner(r);
    lp.with(|el| {
        let c = el.conns.get_mut(token).ok_or(Error::Closed)?;
        compose(c, &mut el.sh)
    })?;
    answered_later(lp, token, deferred);
    Ok(())
}

/// Answers with a complete response.
///
/// # Safety
/// `reply` is a live handle given out by the library, not borrowed elsewhere.
/// Inlined into `Response_Send`: one call frame per response fewer.
#[inline]
pub unsafe fn respond_full(reply: *mut Reply, body: &[u8]) -> Result<(), Error> {
    // SAFETY: forwarded contract.
    unsafe {
        answer(reply, |c, sh| {
            exchange::compose_full(c, sh, body);
            Ok(())
        })
    }
}

/// Answers with a complete response whose body the application lent (sent
/// without a copy; its release is queued once the loop is done with it).
/// On an error the body is dropped unsent and no release is owed.
///
/// # Safety
/// As for `respond_full`.
pub unsafe fn respond_borrowed(reply: *mut Reply, body: Borrowed) -> Result<(), Error> {
    // SAFETY: forwarded contract.
    unsafe {
        answer(reply, |c, sh| {
            exchange::compose_borrowed(c, sh, body);
            Ok(())
        })
    }
}

/// Accepts the protocol upgrade the current request asks for: the 101
/// head is queued; the connection is handed to `upgrade` once it is out.
///
/// # Safety
/// As for `respond_full`.
pub unsafe fn accept_upgrade(
    reply: *mut Reply,
    protocol: &[u8],
    upgrade: Upgrade,
) -> Result<(), Error> {
    // SAFETY: contract.
    let r = unsafe { &*reply };
    r.check(Phase::Handler)?;
    // Only from inside the handler: a deferred reply's request may no
    // longer be the one in the view.
    if r.deferred.is_some() {
        return Err(Error::State);
    }
    let token = r.token;
    owner(r).with(|el| {
        // SAFETY: the view is the loop's own allocation; while a reply is in
        // `Phase::Handler` its handler is running, so the view holds that
        // reply's request, and the application reads nothing during this call.
        let view = unsafe { &*el.view };
        upgrade::check_request(view, protocol)?;
        let c = el.conns.get_mut(token).ok_or(Error::Closed)?;
        exchange::compose_upgrade(c, &mut el.sh, protocol, upgrade);
        Ok(())
    })
}

/// Answers with a file (`file_response::respond`): `file` is closed, if
/// it was given away, whatever happens.
///
/// # Safety
/// As for `respond_full`.
pub unsafe fn respond_file(
    reply: *mut Reply,
    file: CallerFile,
    offset: u64,
    length: Option<u64>,
    cond: Option<&Conditional>,
) -> Result<(), Error> {
    // SAFETY: forwarded contract.
    unsafe {
        answer(reply, |c, sh| {
            file_response::respond(c, sh, file, offset, length, cond)
        })
    }
}

/// Starts a chunked response.
///
/// # Safety
/// As for `respond_full`.
pub unsafe fn begin_chunked(reply: *mut Reply) -> Result<(), Error> {
    // SAFETY: forwarded contract.
    unsafe { answer(reply, |c, sh| exchange::compose(c, sh, &[], Body::Chunked)) }
}

/// Queues one chunk of an open chunked response.
///
/// # Safety
/// As for `respond_full`.
pub unsafe fn write_chunk(reply: *mut Reply, data: &[u8]) -> Result<(), Error> {
    // SAFETY: contract.
    let r = unsafe { &*reply };
    r.check(Phase::Chunked)?;
    if data.is_empty() {
        return Ok(());
    }
    let (token, head, raw) = (r.token, r.head_method, r.minor_version == 0);
    let lp = owner(r);
    lp.with(|el| {
        let high_water = el.sh.limits.output_high_water;
        let c = el.conns.get_mut(token).ok_or(Error::Closed)?;
        if head {
            return Ok(());
        }
        c.output.sync(&mut el.sh.queued_output);
        if c.output.len() >= high_water || el.sh.over_output_total() {
            return Err(Error::WouldBlock);
        }
        let out = c.output.writer(&mut el.sh.pool);
        if raw {
            out.extend_from_slice(data);
        } else {
            push_chunk(out, data);
        }
        c.output.sync(&mut el.sh.queued_output);
        Ok::<(), Error>(())
    })?;
    advance_from_app(lp, token)
}

/// Ends an open chunked response, or frees a detached one.
///
/// # Safety
/// As for `respond_full`; `reply` is not used afterwards.
pub unsafe fn end_chunked(reply: *mut Reply) -> Result<(), Error> {
    // SAFETY: contract.
    let r = unsafe { &*reply };
    let lp = owner(r);
    match r.check(Phase::Chunked) {
        Err(Error::Closed) => {
            lp.with(|el| el.sh.replies.release_detached(reply));
            return Err(Error::Closed);
        }
        Err(e) => return Err(e),
        Ok(()) => {}
    }
    let (token, head, raw) = (r.token, r.head_method, r.minor_version == 0);
    lp.with(|el| {
        let c = el.conns.get_mut(token).ok_or(Error::Closed)?;
        exchange::finish_response(c, &mut el.sh, !head && !raw);
        Ok::<(), Error>(())
    })?;
    advance_from_app(lp, token)
}

/// Hands the body to a pull stream.
///
/// # Safety
/// As for `respond_full`.
pub unsafe fn begin_stream(
    reply: *mut Reply,
    producer: ProducerFn,
    cleanup: Option<CleanupFn>,
    user: *mut c_void,
) -> Result<(), Error> {
    // SAFETY: contract.
    let (head, raw) = unsafe { ((*reply).head_method, (*reply).minor_version == 0) };
    // SAFETY: forwarded contract.
    unsafe {
        answer(reply, |c, sh| {
            exchange::compose(c, sh, &[], Body::Stream)?;
            // A HEAD response has no body: the stream is over before it starts.
            c.state = State::Streaming(Stream {
                producer,
                cleanup,
                user,
                eof: head,
                raw,
            });
            Ok(())
        })
    }
}

/// Keeps the response past the handler's return (`Response_Defer`): the
/// handle is the application's until `release`, and `cleanup(user, reason)`
/// is queued once if the response can no longer be answered first.
///
/// # Safety
/// As for `respond_full`.
pub unsafe fn defer(
    reply: *mut Reply,
    cleanup: Option<CleanupFn>,
    user: *mut c_void,
) -> Result<(), Error> {
    // SAFETY: contract.
    let r = unsafe { &mut *reply };
    // Phase `Handler` without a deferral happens only while the handler
    // runs: `end_dispatch` answers 500 otherwise.
    r.check(Phase::Handler)?;
    if r.deferred.is_some() {
        return Err(Error::State);
    }
    let token = r.token;
    let (since_ms, slot) = owner(r).with(|el| {
        el.conns.get(token).ok_or(Error::Closed)?;
        el.sh.stats.deferred += 1;
        Ok::<_, Error>((el.sh.now, el.sh.replies.keep_deferred(reply)))
    })?;
    r.deferred = Some(Deferred {
        cleanup,
        user,
        since_ms,
        slot,
        released: false,
    });
    Ok(())
}

/// The application is done with a deferred handle. Unanswered, the library
/// answers 500 in its place; an open chunked response is cut off (the
/// connection closes); a stream keeps the handle until it ends. The
/// cleanup is not called after this.
///
/// # Safety
/// As for `respond_full`; `reply` is not used afterwards.
pub unsafe fn release(reply: *mut Reply) -> Result<(), Error> {
    // SAFETY: contract.
    let r = unsafe { &mut *reply };
    let lp = owner(r);
    let (token, phase) = (r.token, r.phase);
    let Some(d) = r.deferred.as_mut() else {
        return Err(Error::State);
    };
    if d.released {
        return Err(Error::State);
    }
    match phase {
        Phase::Handler => {
            lp.with(|el| {
                if let Some(c) = el.conns.get_mut(token) {
                    log::error!("application error: a deferred response was released unanswered; sending 500");
                    exchange::answer_instead(c, &mut el.sh, 500, b"Internal Server Error\n", true);
                }
                // SAFETY: deferred, and no longer the connection's.
                unsafe { el.sh.replies.free_deferred(reply) };
            });
            answered_later(lp, token, true);
        }
        Phase::Chunked => {
            d.cleanup = None;
            log::warn!("a deferred chunked response was released before its end; closing");
            lp.with(|el| {
                el.close(token, CloseReason::Error);
                // SAFETY: deferred, and no longer the connection's.
                unsafe { el.sh.replies.free_deferred(reply) };
            });
            lp.run_cleanups();
        }
        Phase::Streaming => d.released = true,
        Phase::Done | Phase::Detached => {
            // SAFETY: deferred, and no longer any connection's.
            lp.with(|el| unsafe { el.sh.replies.free_deferred(reply) });
        }
    }
    Ok(())
}

/// A deferred response was answered (begun or completed) after its
/// handler returned: have the loop send it. (From inside its own handler
/// the loop does that when the handler returns.)
fn answered_later(lp: LoopPtr, token: Token, deferred: bool) {
    if deferred {
        // The answer was accepted; if writing it now finds the client gone,
        // that is the connection's end, not this call's failure.
        let _ = advance_from_app(lp, token);
    }
}

/// After a chunk or the end was queued. Outside any callback (the
/// application writing on its own schedule): write now and let the loop
/// finish the rest. Inside a callback: the connection being driven is
/// flushed when the callback returns; any other (a response kept by the
/// application, written from another connection's handler, producer or
/// cleanup) is queued for the loop's next turn, and the loop woken.
fn advance_from_app(lp: LoopPtr, token: Token) -> Result<(), Error> {
    let closed = lp.with(|el| {
        if el.in_callback {
            if el.driving != Some(token) && el.conns.get(token).is_some() {
                el.arm_timer(token);
                el.queue_ready(token);
            }
            return Some(false);
        }
        el.sh.tick();
        let c = el.conns.get_mut(token)?;
        if !c.socket.write_blocked {
            if let Flush::Failed(reason) = transfer::flush(c, &mut el.sh) {
                el.close(token, reason);
                return None;
            }
        }
        el.arm_timer(token);
        el.queue_ready(token);
        Some(false)
    });
    if closed.is_none() {
        lp.run_cleanups();
        return Err(Error::Closed);
    }
    Ok(())
}
