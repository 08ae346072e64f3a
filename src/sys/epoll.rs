//! epoll: the only file that calls `epoll_*` (mio's `selector/epoll.rs`).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::raw::c_int;

use super::{cvt, owned};

/// Readiness interest for a registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interest(u32);

impl Interest {
    /// Level-triggered readable: the listener and the wake-up eventfd. Level
    /// triggering means a paused listener that is re-armed reports a
    /// non-empty backlog at once; no wake-up can be lost.
    pub const READ_LEVEL: Interest = Interest(libc::EPOLLIN as u32);
    /// Edge-triggered read, write and peer-half-close for a client. Registered
    /// once, never modified: the connection code reads and writes until
    /// EAGAIN and remembers readiness itself.
    pub const CLIENT_EDGE: Interest =
        Interest((libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32);
}

/// What one readiness event says, decoded once.
#[derive(Clone, Copy, Debug)]
pub struct Event {
    pub token: u64,
    bits: u32,
}

impl Event {
    pub fn readable(&self) -> bool {
        self.bits & (libc::EPOLLIN as u32) != 0
    }
    pub fn writable(&self) -> bool {
        self.bits & (libc::EPOLLOUT as u32) != 0
    }
    /// The peer sent FIN (`shutdown(SHUT_WR)` or close). Data may still be
    /// unread before it, so this is not a reason to close.
    pub fn read_hup(&self) -> bool {
        self.bits & (libc::EPOLLRDHUP as u32) != 0
    }
    /// Both directions are gone (EPOLLHUP) or the socket has a pending error
    /// (EPOLLERR, typically after an RST).
    pub fn hup(&self) -> bool {
        self.bits & (libc::EPOLLHUP as u32) != 0
    }
    pub fn error(&self) -> bool {
        self.bits & (libc::EPOLLERR as u32) != 0
    }
}

/// An epoll instance and its event array.
pub struct Poller {
    epfd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Poller {
    pub fn new(capacity: usize) -> io::Result<Poller> {
        // SAFETY: plain syscall with a flag argument.
        let epfd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        let empty = libc::epoll_event { events: 0, u64: 0 };
        Ok(Poller {
            epfd: owned(epfd),
            events: vec![empty; capacity.max(1)],
        })
    }

    pub fn fd(&self) -> RawFd {
        self.epfd.as_raw_fd()
    }

    fn ctl(&self, op: c_int, fd: RawFd, interest: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: interest,
            u64: token,
        };
        // SAFETY: `ev` is a valid, initialised epoll_event that lives across
        // the call; the kernel copies it.
        cvt(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev) }).map(|_| ())
    }

    pub fn add(&self, fd: RawFd, interest: Interest, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, interest.0, token)
    }

    pub fn modify(&self, fd: RawFd, interest: Option<Interest>, token: u64) -> io::Result<()> {
        self.ctl(
            libc::EPOLL_CTL_MOD,
            fd,
            interest.map(|i| i.0).unwrap_or(0),
            token,
        )
    }

    /// Removes `fd`. Called before closing the listener (level-triggered: a
    /// registration left behind by a shared descriptor would report a
    /// non-empty backlog on every wait). Client sockets are closed without
    /// it (see `EventLoop::close` for why that is safe).
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Waits for events; EINTR is reported as an empty batch so the caller
    /// goes round its loop (and sees a Stop request) instead of failing.
    pub fn wait(&mut self, timeout_ms: c_int) -> io::Result<usize> {
        // SAFETY: the pointer and length describe our own initialised vector.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as c_int,
                timeout_ms,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                return Ok(0);
            }
            return Err(err);
        }
        Ok(n as usize)
    }

    pub fn event(&self, i: usize) -> Event {
        let ev = self.events[i];
        Event {
            token: ev.u64,
            bits: ev.events,
        }
    }
}
