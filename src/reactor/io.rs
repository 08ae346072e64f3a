//! How a connection's bytes move. What ships is the kernel's sockets,
//! called directly (no trait object, no "is this a test" check). Builds with
//! the `testing` feature add scripted in-memory peers with a manual clock,
//! so the whole connection state machine can be driven without a socket
//! (split-anywhere tests, fuzzing).

use std::io;
use std::os::fd::RawFd as Fd;

use crate::sys::{self, time};

/// The kernel: real sockets and clocks.
#[cfg(not(feature = "testing"))]
#[derive(Default)]
pub struct Io;

#[cfg(not(feature = "testing"))]
impl Io {
    #[inline]
    pub fn recv(&self, fd: Fd, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        sys::socket::recv_into_spare(fd, buf, max)
    }
    #[inline]
    pub fn send(&self, fd: Fd, buf: &[u8]) -> io::Result<usize> {
        sys::socket::send(fd, buf)
    }
    #[inline]
    pub fn send_two(&self, fd: Fd, first: &[u8], second: &[u8]) -> io::Result<usize> {
        sys::socket::send_two(fd, first, second)
    }
    /// Up to `count` bytes of `file` from `offset`, with `sendfile` (no
    /// SIGPIPE; see `sys/sendfile.rs`).
    #[inline]
    pub fn send_file(&self, fd: Fd, file: Fd, offset: u64, count: usize) -> io::Result<usize> {
        sys::sendfile::send_file(fd, file, offset, count)
    }
    #[inline]
    pub fn shutdown_write(&self, fd: Fd) {
        sys::socket::shutdown_write(fd)
    }
    /// Whether input (bytes or FIN) waits to be read.
    #[inline]
    pub fn input_waiting(&self, fd: Fd) -> bool {
        sys::socket::backlog_waiting(fd)
    }
    /// The descriptor itself closes when its `OwnedFd` drops.
    #[inline]
    pub fn closing(&self, _fd: Fd) {}
    #[inline]
    pub fn now_ms(&self) -> u64 {
        time::monotonic_ms()
    }
    #[inline]
    pub fn unix_seconds(&self) -> i64 {
        time::unix_seconds()
    }
}

/// The kernel, or (tests and fuzzing only) scripted memory peers.
#[cfg(feature = "testing")]
#[derive(Default)]
pub enum Io {
    #[default]
    Kernel,
    Memory(Memory),
}

#[cfg(feature = "testing")]
impl Io {
    pub fn recv(&self, fd: Fd, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        match self {
            Io::Kernel => sys::socket::recv_into_spare(fd, buf, max),
            Io::Memory(m) => m.recv(fd, buf, max),
        }
    }
    pub fn send(&self, fd: Fd, buf: &[u8]) -> io::Result<usize> {
        match self {
            Io::Kernel => sys::socket::send(fd, buf),
            Io::Memory(m) => m.send(fd, buf),
        }
    }
    pub fn send_two(&self, fd: Fd, first: &[u8], second: &[u8]) -> io::Result<usize> {
        match self {
            Io::Kernel => sys::socket::send_two(fd, first, second),
            Io::Memory(m) => m.send_two(fd, first, second),
        }
    }
    /// A memory peer gets the file's bytes read with `pread` and sent.
    pub fn send_file(&self, fd: Fd, file: Fd, offset: u64, count: usize) -> io::Result<usize> {
        match self {
            Io::Kernel => sys::sendfile::send_file(fd, file, offset, count),
            Io::Memory(m) => {
                let mut buf = vec![0; count.min(64 * 1024)];
                let n = sys::file::pread(file, &mut buf, offset)?;
                if n == 0 {
                    return Ok(0);
                }
                m.send(fd, &buf[..n])
            }
        }
    }
    pub fn shutdown_write(&self, fd: Fd) {
        match self {
            Io::Kernel => sys::socket::shutdown_write(fd),
            Io::Memory(m) => m.shutdown_write(fd),
        }
    }
    /// Whether input (bytes or FIN) waits to be read.
    pub fn input_waiting(&self, fd: Fd) -> bool {
        match self {
            Io::Kernel => sys::socket::backlog_waiting(fd),
            Io::Memory(m) => m
                .sockets
                .borrow()
                .get(&fd)
                .is_some_and(|s| !s.pending.is_empty() || s.fin),
        }
    }
    pub fn closing(&self, fd: Fd) {
        if let Io::Memory(m) = self {
            m.close(fd)
        }
    }
    pub fn now_ms(&self) -> u64 {
        match self {
            Io::Kernel => time::monotonic_ms(),
            Io::Memory(m) => m.clock_ms.get(),
        }
    }
    pub fn unix_seconds(&self) -> i64 {
        match self {
            Io::Kernel => time::unix_seconds(),
            // Deterministic output: the Date line stays at the epoch.
            Io::Memory(_) => 0,
        }
    }
}

#[cfg(feature = "testing")]
pub use memory::*;

#[cfg(feature = "testing")]
mod memory {
    use std::cell::{Cell, RefCell};
    use std::collections::{HashMap, VecDeque};
    use std::io;
    use std::os::fd::RawFd as Fd;
    use std::rc::Rc;

    /// One in-memory peer.
    #[derive(Default, Debug)]
    pub struct MemorySocket {
        /// Pieces still to be delivered; one recv returns at most one piece.
        pub pending: VecDeque<Vec<u8>>,
        /// After the pieces: end of input (FIN) instead of EAGAIN.
        pub fin: bool,
        /// Everything the core sent.
        pub sent: Vec<u8>,
        /// Most bytes one send accepts (0 = unlimited).
        pub send_cap: usize,
        /// Sends refused with EAGAIN before one is accepted again.
        pub blocked_sends: usize,
        /// Bytes still accepted before every send returns EAGAIN (a peer
        /// that stopped reading); None: no limit.
        pub window: Option<usize>,
        pub shut_write: bool,
        pub closed: bool,
    }

    /// Shared so the test keeps a handle while the core owns the transport.
    #[derive(Clone, Default)]
    pub struct Memory {
        pub sockets: Rc<RefCell<HashMap<Fd, MemorySocket>>>,
        /// The loop's clock, moved only by the test.
        pub clock_ms: Rc<Cell<u64>>,
    }

    fn would_block() -> io::Error {
        io::Error::from_raw_os_error(libc::EAGAIN)
    }

    impl Memory {
        pub fn recv(&self, fd: Fd, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
            let mut sockets = self.sockets.borrow_mut();
            let s = sockets
                .get_mut(&fd)
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
            let Some(piece) = s.pending.front_mut() else {
                return if s.fin { Ok(0) } else { Err(would_block()) };
            };
            let room = (buf.capacity() - buf.len()).min(max);
            let n = piece.len().min(room);
            buf.extend_from_slice(&piece[..n]);
            piece.drain(..n);
            if piece.is_empty() {
                s.pending.pop_front();
            }
            Ok(n)
        }

        pub fn send(&self, fd: Fd, buf: &[u8]) -> io::Result<usize> {
            self.send_two(fd, buf, &[])
        }

        /// One send of `first` then `second` (as `sendmsg` with two iovecs).
        pub fn send_two(&self, fd: Fd, first: &[u8], second: &[u8]) -> io::Result<usize> {
            let mut sockets = self.sockets.borrow_mut();
            let s = sockets
                .get_mut(&fd)
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
            if s.closed || s.shut_write {
                return Err(io::Error::from_raw_os_error(libc::EPIPE));
            }
            if s.blocked_sends > 0 {
                s.blocked_sends -= 1;
                return Err(would_block());
            }
            let total = first.len() + second.len();
            let mut n = if s.send_cap == 0 {
                total
            } else {
                total.min(s.send_cap)
            };
            if let Some(window) = &mut s.window {
                if *window == 0 {
                    return Err(would_block());
                }
                n = n.min(*window);
                *window -= n;
            }
            let from_first = n.min(first.len());
            s.sent.extend_from_slice(&first[..from_first]);
            s.sent.extend_from_slice(&second[..n - from_first]);
            Ok(n)
        }

        pub fn shutdown_write(&self, fd: Fd) {
            if let Some(s) = self.sockets.borrow_mut().get_mut(&fd) {
                s.shut_write = true;
            }
        }

        pub fn close(&self, fd: Fd) {
            if let Some(s) = self.sockets.borrow_mut().get_mut(&fd) {
                s.closed = true;
            }
        }
    }
}
