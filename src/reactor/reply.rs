//! `Reply`: the handle the application answers one request through, and
//! the rules for what may be done with it in each `Phase`.
//!
//! Replies are allocated once per connection and reused; the application
//! gets a raw pointer. A reply whose client went away while the
//! application still holds it (an open chunked response) is `Detached`: it
//! stays allocated, refuses every call with `Error::Closed`, and is freed
//! when the application ends it, or when the loop is destroyed.
//!
//! A reply the handler kept with `Response_Defer` is `deferred`: it belongs
//! to the application until its release (`Response_Release`) and is never
//! reused before, whatever happened to its connection. While the request
//! waits its phase stays `Handler`; once answered it leaves the connection
//! (`Done`: further calls get `Error::State`); if the connection ends first,
//! or the library answers 503 at the response timeout, it is `Detached`
//! (further calls get `Error::Closed`) and its cleanup is queued once.

use std::os::raw::c_void;

use super::completion::Track;
use super::error::Error;
use super::slab::Token;
use crate::http::response::{c_header_name, c_header_value, copy_bytes};
use crate::sys::ThreadTag;

/// Largest total size of the headers an application may add to one response.
const MAX_APP_HEADER_BYTES: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// No request is being answered through this handle.
    Done,
    /// The handler is running and has not answered yet, or it deferred the
    /// response (`Reply::deferred`) and the application answers later.
    Handler,
    /// A chunked response is open; the application writes and ends it.
    Chunked,
    /// A pull stream owns the response.
    Streaming,
    /// The client went away while a chunked response was open (the handle
    /// waits for the application's end call to be freed), or a deferred
    /// response can no longer be answered (freed by its release).
    Detached,
}

/// What `Response_Defer` registered.
#[derive(Clone, Copy)]
pub struct Deferred {
    /// Called once with `CloseReason::number()` if the response can no
    /// longer be answered (its connection ended, or the response timeout
    /// answered 503) before the application answered or released it.
    pub cleanup: Option<unsafe extern "C" fn(user: *mut c_void, reason: i32)>,
    pub user: *mut c_void,
    /// When the handler deferred it (the response timeout counts from here).
    pub since_ms: u64,
    /// Its index in `ReplyPool::deferred`.
    pub slot: usize,
    /// The application released it while a stream still owned the
    /// response: freed when the stream ends.
    pub released: bool,
}

/// The address of the event loop a reply belongs to. Kept as an untyped
/// address so this file stays below the loop; only `driver.rs` turns it
/// back into the loop.
#[derive(Clone, Copy)]
pub struct Owner(pub(crate) *mut ());

pub struct Reply {
    pub(crate) owner: Owner,
    /// The loop's thread, the only one allowed to use this reply. Written
    /// once, at creation: `thread_of` reads it from any thread.
    thread: ThreadTag,
    pub(crate) token: Token,
    pub(crate) phase: Phase,
    pub(crate) status: u16,
    /// Application headers, already serialised as `Name: value\r\n` lines.
    pub(crate) headers: Vec<u8>,
    pub(crate) head_method: bool,
    pub(crate) keep_alive: bool,
    pub(crate) minor_version: u8,
    /// The application asked for `Connection: close`.
    pub(crate) app_close: bool,
    /// Kept by `Response_Defer`: owned by the application until released.
    pub(crate) deferred: Option<Deferred>,
    /// What the completion record of the request answered needs.
    pub(crate) track: Track,
}

impl Reply {
    pub(crate) fn new(owner: Owner, thread: ThreadTag) -> Reply {
        Reply {
            owner,
            thread,
            token: Token(u64::MAX),
            phase: Phase::Done,
            status: 200,
            headers: Vec::new(),
            head_method: false,
            keep_alive: true,
            minor_version: 1,
            app_close: false,
            deferred: None,
            track: Track::default(),
        }
    }

    /// The loop thread of the reply at `reply`. Reads only that field,
    /// through the raw pointer (no reference to the reply is made), and the
    /// field is never written after creation: so this is no data race even
    /// while the loop thread is using the reply.
    ///
    /// # Safety
    /// `reply` points to a live reply.
    pub unsafe fn thread_of(reply: *const Reply) -> ThreadTag {
        // SAFETY: contract: live; a read of an immutable field.
        unsafe { std::ptr::addr_of!((*reply).thread).read() }
    }

    /// Whether the handle may be used in phase `wanted`.
    #[inline(always)]
    pub fn check(&self, wanted: Phase) -> Result<(), Error> {
        if self.phase == wanted {
            Ok(())
        } else {
            Err(self.refusal())
        }
    }

    /// Why a call that does not fit the phase is refused (off the hot
    /// path of `check`).
    #[cold]
    fn refusal(&self) -> Error {
        if self.phase == Phase::Detached {
            Error::Closed
        } else {
            Error::State
        }
    }

    /// Sets the status (200..=599) while the handler has not answered.
    pub fn set_status(&mut self, status: i32) -> Result<(), Error> {
        self.check(Phase::Handler)?;
        if !(200..=599).contains(&status) {
            return Err(Error::Invalid);
        }
        self.status = status as u16;
        Ok(())
    }

    /// Adds a header line, its name and value given as C strings, while
    /// the handler has not answered. Framing headers are the library's;
    /// `Connection: close` is honoured. Each string is measured and
    /// checked in one pass (`c_header_name`, `c_header_value`). Inlined
    /// into `Response_AddHeader`: one call frame per header fewer.
    ///
    /// # Safety
    /// `name` and `value` point to NUL-terminated strings, unchanged
    /// during the call.
    #[inline]
    pub unsafe fn add_header(&mut self, name: *const u8, value: *const u8) -> Result<(), Error> {
        self.check(Phase::Handler)?;
        // SAFETY: contract; the slices are used during this call only.
        let (Some(name), Some(value)) = (unsafe { (c_header_name(name), c_header_value(value)) })
        else {
            return Err(Error::Header);
        };
        // Hot path: the managed names have lengths 14, 17 and 4, and
        // "connection" 10; any other name skips all four comparisons.
        let special = matches!(name.len(), 4 | 10 | 14 | 17);
        if special {
            for managed in [&b"content-length"[..], b"transfer-encoding", b"date"] {
                if name.eq_ignore_ascii_case(managed) {
                    return Err(Error::Invalid);
                }
            }
        }
        if special && name.eq_ignore_ascii_case(b"connection") {
            if value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
            {
                self.app_close = true;
            }
            return Ok(());
        }
        if self.headers.len() + name.len() + value.len() + 4 > MAX_APP_HEADER_BYTES {
            return Err(Error::TooLarge);
        }
        // The line is written into room reserved for it, with one length
        // update; a short name or value is copied without a `memcpy` call.
        let (n, line) = (name.len(), name.len() + value.len() + 4);
        self.headers.reserve(line);
        let len = self.headers.len();
        // SAFETY: `reserve` made room for `line` bytes after `len`; the
        // four writes below fill exactly those (`n`, 2, `value.len()`, 2
        // bytes), from slices that cannot overlap the vector's spare room.
        unsafe {
            let d = self.headers.as_mut_ptr().add(len);
            copy_bytes(name, d);
            std::ptr::copy_nonoverlapping(b": ".as_ptr(), d.add(n), 2);
            copy_bytes(value, d.add(n + 2));
            std::ptr::copy_nonoverlapping(b"\r\n".as_ptr(), d.add(line - 2), 2);
            self.headers.set_len(len + line);
        }
        Ok(())
    }
}
