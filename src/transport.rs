//! The byte-moving half of a client socket, behind a trait so the whole
//! connection state machine can also be driven from memory (fuzzing and
//! split-anywhere tests) with no socket at all.
//!
//! `Kernel` is the real thing (thin calls into `sys`); `Memory` replays
//! scripted input pieces and captures output, with an optional cap on what
//! one send accepts so EAGAIN and partial writes are exercised too.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::rc::Rc;

use crate::sys::{self, Fd};

pub trait Transport {
    /// Reads into the spare capacity of `buf` (at most `max` bytes).
    /// `Ok(0)` is end of input; EAGAIN comes back as an error.
    fn recv(&mut self, fd: Fd, buf: &mut Vec<u8>, max: usize) -> io::Result<usize>;
    /// Writes without blocking and without SIGPIPE.
    fn send(&mut self, fd: Fd, buf: &[u8]) -> io::Result<usize>;
    fn shutdown_write(&mut self, fd: Fd);
    fn close(&mut self, fd: Fd);
}

/// Real sockets.
pub struct Kernel;

impl Transport for Kernel {
    fn recv(&mut self, fd: Fd, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        sys::recv_into_spare(fd, buf, max)
    }
    fn send(&mut self, fd: Fd, buf: &[u8]) -> io::Result<usize> {
        sys::send(fd, buf)
    }
    fn shutdown_write(&mut self, fd: Fd) {
        sys::shutdown_write(fd)
    }
    fn close(&mut self, fd: Fd) {
        sys::close(fd)
    }
}

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
    pub shut_write: bool,
    pub closed: bool,
}

/// Shared so the test keeps a handle while the core owns the transport.
#[derive(Clone, Default)]
pub struct Memory {
    pub sockets: Rc<RefCell<HashMap<Fd, MemorySocket>>>,
}

fn would_block() -> io::Error {
    io::Error::from_raw_os_error(libc::EAGAIN)
}

impl Transport for Memory {
    fn recv(&mut self, fd: Fd, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
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

    fn send(&mut self, fd: Fd, buf: &[u8]) -> io::Result<usize> {
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
        let n = if s.send_cap == 0 {
            buf.len()
        } else {
            buf.len().min(s.send_cap)
        };
        s.sent.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn shutdown_write(&mut self, fd: Fd) {
        if let Some(s) = self.sockets.borrow_mut().get_mut(&fd) {
            s.shut_write = true;
        }
    }

    fn close(&mut self, fd: Fd) {
        if let Some(s) = self.sockets.borrow_mut().get_mut(&fd) {
            s.closed = true;
        }
    }
}
