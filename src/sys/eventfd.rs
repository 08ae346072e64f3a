//! eventfd: how the loop is woken from a signal handler or another thread.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::{cvt, owned};

/// A non-blocking, close-on-exec eventfd, closed when dropped.
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: plain syscall with integer arguments.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        Ok(EventFd { fd: owned(fd) })
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The descriptor itself (tests use an eventfd as a stand-in socket
    /// that epoll accepts).
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Wakes whoever polls this eventfd.
    pub fn signal(&self) -> bool {
        signal_raw(self.raw())
    }

    /// Resets the counter.
    pub fn drain(&self) {
        let mut value: u64 = 0;
        // SAFETY: reading 8 bytes into a live u64; EAGAIN means already drained.
        unsafe {
            libc::read(self.raw(), &mut value as *mut u64 as *mut libc::c_void, 8);
        }
    }
}

/// Async-signal-safe: one `write(2)` of 8 bytes to `fd` and nothing else (no
/// allocation, no lock, errno preserved for the interrupted code). Takes a
/// raw descriptor because a signal handler holds no Rust object.
pub fn signal_raw(fd: RawFd) -> bool {
    let one: u64 = 1;
    // SAFETY: the errno location is thread-local and always valid.
    let errno = unsafe { libc::__errno_location() };
    // SAFETY: `errno` points to this thread's errno (see above).
    let saved = unsafe { *errno };
    // SAFETY: writing 8 bytes from a live u64 to a descriptor; EAGAIN (the
    // counter is saturated) still leaves the eventfd readable, which is all
    // we need.
    let ret = unsafe { libc::write(fd, &one as *const u64 as *const libc::c_void, 8) };
    // SAFETY: as above.
    let failed_with = unsafe { *errno };
    // SAFETY: as above; the interrupted code must see its own errno.
    unsafe { *errno = saved };
    ret == 8 || failed_with == libc::EAGAIN
}
