//! Calling application code soundly.
//!
//! The one invariant: **no `&mut EventLoop` is alive while application
//! code runs.** A handler may call back into the library (a response call
//! reaches the loop through the reply's owner pointer), and that call
//! borrows the loop mutably itself; if the driver still held a borrow, the
//! two would alias. So the loop is held as a raw pointer, `LoopPtr`, and
//! every use of it is a short borrow (`LoopPtr::with`) that ends before the
//! next application call (`LoopPtr::call_app`). The objects the application
//! holds pointers to (the request view, reply handles) live in their own
//! allocations, outside the loop, so those short borrows never invalidate
//! them.

use std::os::fd::IntoRawFd;
use std::os::raw::c_int;
use std::ptr::NonNull;

use super::error::{CloseReason, Error};
use super::event_loop::EventLoop;
use super::exchange::{self, Body};
pub use super::handlers::{BodyFn, Handlers, RequestFn};
use super::posts::Task;
use super::progress::Step;
use super::request::RequestView;
use super::slab::Token;
use super::upgrade::Handoff;

/// A live event loop, held as a raw pointer (see the module doc).
#[derive(Clone, Copy)]
pub struct LoopPtr(NonNull<EventLoop>);

impl LoopPtr {
    /// # Safety
    /// `el` points to a live loop that stays live while this `LoopPtr` (or
    /// a copy) is used, and the caller holds no borrow of it.
    pub unsafe fn new(el: *mut EventLoop) -> Option<LoopPtr> {
        NonNull::new(el).map(LoopPtr)
    }

    /// Borrows the loop for `f` only. `f` must not call application code
    /// nor `with` again.
    pub fn with<R>(self, f: impl FnOnce(&mut EventLoop) -> R) -> R {
        // SAFETY: the loop is live (constructor contract), and no other
        // borrow is alive: drivers borrow only inside `with`, never across
        // `call_app`, and `f` neither nests `with` nor calls the application.
        f(unsafe { &mut *self.0.as_ptr() })
    }

    /// Runs application code with no borrow of the loop alive, marked as
    /// "in a callback" so re-entry into the loop is refused.
    /// (A callback may itself run one, e.g. `Connection_CancelTimer` from
    /// a handler calls the timer's task: the outer mark is kept.)
    pub fn call_app<R>(self, f: impl FnOnce() -> R) -> R {
        let outer = self.with(|el| std::mem::replace(&mut el.in_callback, true));
        let result = f();
        self.with(|el| el.in_callback = outer);
        result
    }

    /// Runs queued stream cleanups and borrowed-body releases.
    ///
    /// Called after every event and callback; the common case, nothing
    /// queued, is one inlined check (keeps the keep-alive path's
    /// instructions per request where they were before completion
    /// records and deferred responses added queues to look at).
    #[inline]
    pub fn run_cleanups(self) {
        let idle = self.with(|el| {
            el.cleanups.is_empty()
                && el.sh.released.is_empty()
                && el.lost_upgrades.is_empty()
                && el.sh.finished.records.is_empty()
        });
        if !idle {
            self.run_queued_cleanups();
        }
    }

    #[inline(never)]
    fn run_queued_cleanups(self) {
        while let Some((cleanup, user, reason)) = self.with(|el| el.cleanups.pop()) {
            // SAFETY: the application registered this callback for `user`.
            self.call_app(|| unsafe { cleanup(user, reason.number()) });
        }
        while let Some(r) = self.with(|el| el.sh.released.pop()) {
            // SAFETY: the application lent a body with this release for
            // `user`; it was taken out of the output, so this is its only call.
            self.call_app(|| unsafe { (r.release)(r.user) });
        }
        while let Some((u, reason)) = self.with(|el| el.lost_upgrades.pop()) {
            // SAFETY: the application registered this callback for `user`
            // with an accepted upgrade; the connection is closed, so this
            // is the upgrade's only call.
            self.call_app(|| unsafe {
                (u.on_upgrade)(u.user, -1, std::ptr::null(), 0, reason.number())
            });
        }
        self.run_completions();
    }

    /// Gives an upgraded connection to the application: its descriptor
    /// (from now on the application's) and the bytes read past the upgrade
    /// request, valid during the call.
    fn hand_over(self, handoff: Handoff) {
        let Handoff {
            fd,
            mut input,
            upgrade,
        } = handoff;
        let data = input.unread();
        let (ptr, len) = if data.is_empty() {
            (std::ptr::null(), 0)
        } else {
            (data.as_ptr(), data.len())
        };
        let fd = fd.into_raw_fd();
        // SAFETY: the application's callback for this upgrade, called once
        // (the connection left the loop); `ptr` holds `len` bytes owned by
        // `input`, which nothing touches until the call returns.
        self.call_app(|| unsafe {
            (upgrade.on_upgrade)(upgrade.user, fd, ptr, len, CloseReason::Completed.number())
        });
        self.with(|el| input.release(&mut el.sh.pool));
    }

    /// Hands finished completion records to the application's sink. The
    /// batch is taken out of the loop first: the sink may call back into
    /// the library, which may queue more records meanwhile.
    fn run_completions(self) {
        let sink = self.with(|el| {
            if el.sh.finished.records.is_empty() {
                return None;
            }
            Some(el.handlers.completion)
        });
        let Some(sink) = sink else {
            return;
        };
        let mut batch = self.with(|el| {
            let mut batch = std::mem::take(&mut el.finished_spare);
            std::mem::swap(&mut batch, &mut el.sh.finished);
            batch
        });
        if let Some(sink) = sink {
            for entry in &batch.records {
                let record = batch.record(entry);
                // SAFETY: the application set this sink with its callback
                // and user pointer; the record lives in `batch`, owned here,
                // for the whole call.
                self.call_app(|| unsafe { (sink.emit)(&record, sink.callback, sink.user) });
            }
        }
        batch.clear();
        self.with(|el| el.finished_spare = batch);
    }

    /// Moves one connection along, calling the handler, body handler and
    /// producers as it asks for them; the cleanups queued meanwhile have
    /// run when it returns.
    pub fn drive(self, token: Token) {
        let outer = self.with(|el| el.driving.replace(token));
        self.drive_one(token);
        self.with(|el| el.driving = outer);
    }

    fn drive_one(self, token: Token) {
        loop {
            match self.with(|el| el.step(token)) {
                Step::Idle => {
                    self.with(|el| el.ensure_registered(token));
                    break;
                }
                Step::Dispatch { len, reply } => {
                    let (handlers, view) =
                        self.with(|el| (el.handlers, el.view as *const RequestView));
                    if let Some(handler) = handlers.request {
                        // SAFETY: the application's handler, with pointers
                        // that stay valid for the duration of the call.
                        self.call_app(|| unsafe { handler(view, reply, handlers.request_user) });
                    } else {
                        // No handler: every request gets a 404.
                        self.with(|el| {
                            if let Some(c) = el.conns.get_mut(token) {
                                // SAFETY: the connection's own reply handle.
                                unsafe { (*c.reply).status = 404 };
                                let _ =
                                    exchange::compose(c, &mut el.sh, b"Not Found\n", Body::Full);
                            }
                        });
                    }
                    self.with(|el| el.end_dispatch(token, len));
                }
                Step::BodyPiece { len } => {
                    let (handlers, view) =
                        self.with(|el| (el.handlers, el.view as *const RequestView));
                    let verdict = match handlers.body {
                        // SAFETY: the request view and its body piece stay
                        // valid for the call.
                        Some(f) => self
                            .call_app(|| unsafe { f(view, (*view).body, len, handlers.body_user) }),
                        None => 0,
                    };
                    self.with(|el| {
                        if let Some(c) = el.conns.get_mut(token) {
                            exchange::end_body_piece(c, &mut el.sh, len, verdict);
                        }
                    });
                }
                Step::Produce {
                    producer,
                    user,
                    buf,
                    cap,
                } => {
                    // SAFETY: `buf` has `cap` writable bytes reserved in the
                    // connection's output, which nothing else touches during
                    // the call (the stream's handle refuses all calls).
                    let n = self.call_app(|| unsafe { producer(user, buf, cap) });
                    self.with(|el| el.end_produce(token, n, cap));
                }
                Step::Upgrade(handoff) => self.hand_over(handoff),
            }
            self.run_cleanups();
        }
        self.run_cleanups();
    }

    /// Waits for one batch of events (at most `timeout_ms`, -1 = until the
    /// next timer) and handles it. Ok(true) once a stop has drained.
    pub fn process(self, timeout_ms: i32) -> Result<bool, Error> {
        let n = self.with(|el| {
            if el.in_callback {
                return Err(Error::Busy);
            }
            if el.sh.stopping && el.conns.is_empty() {
                return Ok(None);
            }
            el.sh.tick();
            let budget = el.wait_budget(timeout_ms);
            let n = el.poller.wait(budget).inspect_err(|e| {
                log::error!("epoll_wait: {e}");
            })?;
            el.sh.tick();
            Ok(Some(n))
        })?;
        let Some(n) = n else {
            return Ok(true);
        };
        for i in 0..n {
            match self.with(|el| {
                let ev = el.poller.event(i);
                el.handle_event(ev)
            }) {
                // `drive` runs what it queued itself, last.
                Some(token) => self.drive(token),
                None => self.run_cleanups(),
            }
        }
        // The application's timers due now, then what was posted.
        self.fire_timers();
        self.run_posts();
        // Connections with leftover work.
        let count = self.with(|el| {
            std::mem::swap(&mut el.ready, &mut el.ready_scratch);
            el.ready_scratch.len()
        });
        for i in 0..count {
            let token = self.with(|el| el.ready_scratch[i]);
            self.drive(token);
        }
        self.with(|el| {
            el.ready_scratch.clear();
            el.sh.tick();
            el.expire_timers();
        });
        self.run_cleanups();
        self.with(|el| el.end_turn());
        let overdue = self
            .with(|el| el.sh.stopping && !el.conns.is_empty() && el.sh.now >= el.drain_deadline);
        if overdue {
            self.with(|el| {
                log::warn!(
                    "drain deadline passed; closing {} connections",
                    el.conns.len()
                );
                el.close_all();
            });
            self.run_cleanups();
        }
        Ok(self.with(|el| el.sh.stopping && el.conns.is_empty()))
    }

    /// Calls every pending posted task and timer with `cancelled` = 1,
    /// closes everything (cleanups get SHUTDOWN) and frees the loop.
    ///
    /// # Safety
    /// The loop came from `Box::into_raw`, no callback is running, and
    /// neither this pointer nor a copy is used afterwards.
    pub unsafe fn destroy(self) {
        // Tasks that will never run are told so first, while everything
        // they may refer to still exists.
        self.cancel_tasks();
        let tokens = self.with(|el| el.conns.tokens());
        for token in tokens {
            self.with(|el| el.close(token, CloseReason::Shutdown));
            self.run_cleanups();
        }
        // SAFETY: we own the loop (function contract).
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

// ----- tasks: posted from any thread, and the application's timers -------

impl LoopPtr {
    /// Calls one task (posted or a timer) with the loop's handle.
    fn run_task(self, task: Task, cancelled: c_int) {
        let handle = self.with(|el| el.task_handle);
        // SAFETY: the application gave this function for `arg`; the task
        // was taken out of its queue or heap, so this is its only call.
        self.call_app(|| unsafe { (task.run)(handle, task.arg, cancelled) });
        self.run_cleanups();
    }

    /// Runs the tasks posted before this call, in posting order. Tasks
    /// they post run at the next turn.
    pub fn run_posts(self) {
        let taken = self.with(|el| {
            if !el.posts.pending() {
                return false;
            }
            // The two rings swap: nothing is allocated.
            let mut batch = std::mem::take(&mut el.post_batch);
            el.posts.take(&mut batch);
            el.post_batch = batch;
            true
        });
        if taken {
            while let Some(task) = self.with(|el| el.post_batch.pop_front()) {
                self.run_task(task, 0);
            }
        }
    }

    /// Fires the application's timers due now, earliest first. Timers
    /// their tasks add wait for a later turn.
    pub fn fire_timers(self) {
        let due = self.with(|el| {
            el.app_timers
                .next_deadline()
                .is_some_and(|d| d <= el.sh.now)
        });
        if !due {
            return;
        }
        let before = self.with(|el| el.app_timers.next_order());
        while let Some(task) = self.with(|el| el.app_timers.pop_due(el.sh.now, before)) {
            self.run_task(task, 0);
        }
    }

    /// Cancels a timer: its task is called at once with `cancelled` = 1.
    /// False if `id` names no pending timer.
    pub fn cancel_timer(self, id: u64) -> bool {
        match self.with(|el| el.app_timers.cancel(id)) {
            Some(task) => {
                self.run_task(task, 1);
                true
            }
            None => false,
        }
    }

    /// At Destroy: each posted task that never ran (in posting order; no
    /// post is accepted afterwards), then each pending timer (earliest
    /// first), is called once with `cancelled` = 1.
    fn cancel_tasks(self) {
        let mut posted = self.with(|el| {
            let mut tasks = std::mem::take(&mut el.post_batch);
            tasks.extend(el.posts.close());
            tasks
        });
        while let Some(task) = posted.pop_front() {
            self.run_task(task, 1);
        }
        while let Some(task) = self.with(|el| el.app_timers.pop_any()) {
            self.run_task(task, 1);
        }
    }
}
