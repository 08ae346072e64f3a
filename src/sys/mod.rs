//! The OS layer: the only code that makes system calls.
//!
//! Like mio's `sys/unix/`, everything above this folder speaks in typed
//! wrappers (`Poller`, `Interest`, `Event`, `EventFd`, owned descriptors,
//! results carrying `std::io::Error`) and never calls `libc` itself. That
//! keeps every errno decision in one place and the rules easy to audit:
//!
//! * every `send` carries `MSG_NOSIGNAL`, so a reset peer can never raise
//!   SIGPIPE, whatever the process's signal disposition is; `sendfile`,
//!   which has no such flag, blocks SIGPIPE in the calling thread for the
//!   call and takes off the one it raised (`sendfile.rs`);
//! * every descriptor is created non-blocking and close-on-exec in the same
//!   call (`accept4`, `socket(SOCK_NONBLOCK|SOCK_CLOEXEC)`), so no `fcntl`
//!   can forget to OR the old flags back in;
//! * every descriptor is owned (`std::os::fd::OwnedFd`) and closes itself
//!   when dropped, exactly once;
//! * `EINTR` is retried here, never seen by callers.

pub mod activation;
pub mod epoll;
pub mod eventfd;
pub mod file;
pub mod listen;
pub mod mem;
pub mod sendfile;
pub mod socket;
pub mod thread;
pub mod time;

use std::io;
use std::os::raw::c_int;

pub use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub use epoll::{Event, Interest, Poller};
pub use eventfd::EventFd;
pub use socket::PeerAddr;
pub use thread::ThreadTag;

pub(crate) fn cvt(ret: c_int) -> io::Result<c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

pub(crate) fn cvt_size(ret: isize) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// Takes ownership of a descriptor the kernel just returned.
pub(crate) fn owned(fd: c_int) -> OwnedFd {
    debug_assert!(fd >= 0);
    // SAFETY: `fd` was just returned by a successful syscall that created
    // it; nothing else owns it, so it is closed exactly once, by the OwnedFd.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
