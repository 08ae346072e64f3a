//! The listening sockets (muduo's Acceptor): up to `MAX_LISTENERS` of
//! them (TCP, Unix, or handed in), one accept4 at a time (the loop takes a
//! budget of clients per wake-up of each, `accept_budget.rs`); a
//! waiting client turned away through the one spare descriptor on EMFILE;
//! all of them paused (taken out of epoll) and resumed together.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::sys::listen::ListenSocket;
use crate::sys::socket::{self, PeerAddr};
use crate::sys::{Interest, Poller};

/// Most listeners one loop serves.
pub const MAX_LISTENERS: usize = 64;

/// Back-off before retrying accept after ENOBUFS/ENOMEM or an fd shortage
/// with no spare descriptor.
pub const ACCEPT_RETRY_MS: u64 = 100;

/// What one accept attempt gave.
pub enum Accepted {
    Client(OwnedFd, PeerAddr),
    /// The backlog is empty.
    Drained,
    /// That one died in the backlog or was refused by a firewall; go on.
    Skip,
    /// EMFILE/ENFILE: one waiting client was accepted and closed through
    /// the spare descriptor; go on.
    TurnedAway,
    /// Stop for now; retry after this many milliseconds.
    Pause(u64),
}

/// One listening socket, its TCP port (0 for other kinds) and the name it
/// was handed in with (socket activation).
struct Listener {
    socket: ListenSocket,
    port: u16,
    name: Option<CString>,
}

pub struct Acceptor {
    /// Listener `i` is registered under token `token - i`.
    listeners: Vec<Listener>,
    /// Spare descriptor released to accept-and-close on EMFILE.
    spare: Option<OwnedFd>,
    token: u64,
    pub paused: bool,
    pub retry_at: Option<u64>,
}

impl Acceptor {
    /// Binds and listens on `addr` as listener 0, registered
    /// (level-triggered) under `token`.
    pub fn listen(
        poller: &Poller,
        addr: &std::net::SocketAddr,
        backlog: i32,
        reuse_port: bool,
        token: u64,
    ) -> io::Result<Acceptor> {
        let mut acceptor = Acceptor::none(token);
        let listener = socket::listen_tcp(addr, backlog, reuse_port)?;
        acceptor.add(poller, ListenSocket::owned(listener), None)?;
        Ok(acceptor)
    }

    /// No listener yet (an in-memory loop, or one that adds its own).
    pub fn none(token: u64) -> Acceptor {
        Acceptor {
            listeners: Vec::new(),
            spare: None,
            token,
            paused: false,
            retry_at: None,
        }
    }

    /// Adds a listening socket (watched at once, or from when accepting
    /// resumes if paused); returns its index. The caller keeps the count
    /// below `MAX_LISTENERS`.
    pub fn add(
        &mut self,
        poller: &Poller,
        socket: ListenSocket,
        name: Option<CString>,
    ) -> io::Result<usize> {
        let index = self.listeners.len();
        assert!(index < MAX_LISTENERS, "checked by the caller");
        let fd = socket.as_raw_fd();
        poller.add(fd, Interest::READ_LEVEL, self.token - index as u64)?;
        if self.paused {
            // Watched again when accepting resumes, with the others.
            poller.modify(fd, None, self.token - index as u64)?;
        }
        // The one spare descriptor, taken with the first listener.
        if self.spare.is_none() {
            self.spare = socket::open_spare_fd();
        }
        let port = crate::sys::listen::tcp_port(fd);
        self.listeners.push(Listener { socket, port, name });
        Ok(index)
    }

    /// The name listener `index` was handed in with, if any.
    pub fn name(&self, index: usize) -> Option<&CStr> {
        self.listeners.get(index)?.name.as_deref()
    }

    /// How many listeners there are.
    pub fn count(&self) -> usize {
        self.listeners.len()
    }

    /// The listener index of an epoll token, if it is one.
    pub fn index_of(&self, token: u64) -> Option<usize> {
        let i = self.token.checked_sub(token)? as usize;
        (i < MAX_LISTENERS).then_some(i)
    }

    /// Listener 0's TCP port (0 if it has none).
    pub fn port(&self) -> u16 {
        self.port_of(0).unwrap_or(0)
    }

    /// Listener `index`'s descriptor, if it exists.
    pub fn fd_of(&self, index: usize) -> Option<RawFd> {
        self.listeners.get(index).map(|l| l.socket.as_raw_fd())
    }

    /// Listener `index`'s TCP port (0 for other kinds), if it exists.
    pub fn port_of(&self, index: usize) -> Option<u16> {
        self.listeners.get(index).map(|l| l.port)
    }

    pub fn is_open(&self) -> bool {
        !self.listeners.is_empty()
    }

    /// Whether a client waits in listener `index`'s backlog.
    pub fn client_waiting(&self, index: usize) -> bool {
        self.fd_of(index).is_some_and(socket::backlog_waiting)
    }

    /// Paused because the connection limit was reached (not for a retry).
    pub fn paused_at_limit(&self) -> bool {
        self.paused && self.retry_at.is_none()
    }

    /// Whether accepting may go on now.
    pub fn ready(&self) -> bool {
        !self.listeners.is_empty() && !self.paused
    }

    /// One accept4 on listener `index`, with every errno decided.
    pub fn accept(&mut self, index: usize, count_fd_exhausted: &mut u64) -> Accepted {
        let Some(fd) = self.fd_of(index) else {
            return Accepted::Drained;
        };
        let e = match socket::accept(fd) {
            Ok((client, mut peer)) => {
                peer.listener = index as u16;
                return Accepted::Client(client, peer);
            }
            Err(e) => e,
        };
        match e.raw_os_error().unwrap_or(0) {
            libc::EAGAIN => Accepted::Drained,
            // The connection died in the backlog, or a firewall refused it:
            // nothing to do for it, keep accepting.
            libc::ECONNABORTED
            | libc::EPROTO
            | libc::EPERM
            | libc::ENETDOWN
            | libc::ENOPROTOOPT
            | libc::EHOSTDOWN
            | libc::ENONET
            | libc::EHOSTUNREACH
            | libc::EOPNOTSUPP
            | libc::ENETUNREACH => Accepted::Skip,
            libc::EMFILE | libc::ENFILE => {
                *count_fd_exhausted += 1;
                self.shed_with_spare_fd(fd)
            }
            libc::ENOBUFS | libc::ENOMEM => {
                log::warn!("accept: {e}; pausing {ACCEPT_RETRY_MS} ms");
                Accepted::Pause(ACCEPT_RETRY_MS)
            }
            _ => {
                log::error!("accept: {e}; pausing 1000 ms");
                Accepted::Pause(1000)
            }
        }
    }

    /// EMFILE/ENFILE: free the spare descriptor, accept the waiting client
    /// and close it at once (it sees a close instead of hanging in the
    /// backlog), then take the spare back.
    fn shed_with_spare_fd(&mut self, listener: RawFd) -> Accepted {
        if self.spare.take().is_none() {
            self.spare = socket::open_spare_fd();
            log::warn!("accept: out of file descriptors; pausing {ACCEPT_RETRY_MS} ms");
            return Accepted::Pause(ACCEPT_RETRY_MS);
        }
        // The spare was dropped (closed) by take(): one descriptor is free.
        // accept4 reports EMFILE before it looks at the backlog, so the
        // backlog may turn out to be empty after all.
        let outcome = match socket::accept(listener) {
            Ok((client, _)) => {
                drop(client);
                Accepted::TurnedAway
            }
            Err(_) => Accepted::Drained,
        };
        self.spare = socket::open_spare_fd();
        if self.spare.is_none() {
            // Someone else took the descriptor: no spare until the retry.
            log::warn!("accept: out of file descriptors; pausing {ACCEPT_RETRY_MS} ms");
            return Accepted::Pause(ACCEPT_RETRY_MS);
        }
        outcome
    }

    /// Stops watching every listener. With `retry_at`, try again then;
    /// without, resume when told. Returns whether it was newly paused.
    pub fn pause(&mut self, poller: &Poller, retry_at: Option<u64>) -> bool {
        let newly = !self.paused;
        if newly {
            self.paused = true;
            for (i, l) in self.listeners.iter().enumerate() {
                let fd = l.socket.as_raw_fd();
                if let Err(e) = poller.modify(fd, None, self.token - i as u64) {
                    log::error!("epoll_ctl(MOD) pausing listener {i}: {e}");
                }
            }
        }
        self.retry_at = retry_at;
        newly
    }

    pub fn resume(&mut self, poller: &Poller) {
        if self.paused {
            self.paused = false;
            self.retry_at = None;
            // Level-triggered: a backlog that built up meanwhile is reported
            // by the next epoll_wait.
            for (i, l) in self.listeners.iter().enumerate() {
                let fd = l.socket.as_raw_fd();
                let interest = Some(Interest::READ_LEVEL);
                if let Err(e) = poller.modify(fd, interest, self.token - i as u64) {
                    log::error!("epoll_ctl(MOD) resuming listener {i}: {e}");
                }
            }
        }
    }

    /// The retry time has come: take a spare again if we lost it.
    pub fn retry_due(&mut self) {
        self.retry_at = None;
        if self.spare.is_none() {
            self.spare = socket::open_spare_fd();
        }
    }

    /// Closes every listener (stop): each removed from epoll first; a
    /// Unix socket file we made is removed, a socket the caller kept
    /// ownership of is left open.
    pub fn close(&mut self, poller: &Poller) {
        for l in self.listeners.drain(..) {
            let _ = poller.delete(l.socket.as_raw_fd());
        }
    }
}
