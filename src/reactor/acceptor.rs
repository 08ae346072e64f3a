//! The listening socket (muduo's Acceptor): one accept4 at a time (the
//! loop takes a budget of clients per wake-up, `accept_budget.rs`), turn a
//! waiting client away through a spare descriptor on EMFILE, and pause
//! (taking the listener out of epoll) when told to.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::sys::socket::{self, PeerAddr};
use crate::sys::{Interest, Poller};

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

pub struct Acceptor {
    listener: Option<OwnedFd>,
    /// Spare descriptor released to accept-and-close on EMFILE.
    spare: Option<OwnedFd>,
    token: u64,
    pub paused: bool,
    pub retry_at: Option<u64>,
    port: u16,
}

impl Acceptor {
    /// Binds, listens and registers (level-triggered) under `token`.
    pub fn listen(
        poller: &Poller,
        addr: &std::net::SocketAddr,
        backlog: i32,
        reuse_port: bool,
        token: u64,
    ) -> io::Result<Acceptor> {
        let listener = socket::listen_tcp(addr, backlog, reuse_port)?;
        let port = socket::local_port(listener.as_raw_fd())?;
        poller.add(listener.as_raw_fd(), Interest::READ_LEVEL, token)?;
        Ok(Acceptor {
            listener: Some(listener),
            spare: socket::open_spare_fd(),
            token,
            paused: false,
            retry_at: None,
            port,
        })
    }

    /// No listener (an in-memory loop).
    pub fn none(token: u64) -> Acceptor {
        Acceptor {
            listener: None,
            spare: None,
            token,
            paused: false,
            retry_at: None,
            port: 0,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn is_open(&self) -> bool {
        self.listener.is_some()
    }

    fn raw(&self) -> Option<RawFd> {
        self.listener.as_ref().map(|l| l.as_raw_fd())
    }

    /// Whether a client waits in the backlog.
    pub fn client_waiting(&self) -> bool {
        self.raw().is_some_and(socket::backlog_waiting)
    }

    /// Paused because the connection limit was reached (not for a retry).
    pub fn paused_at_limit(&self) -> bool {
        self.paused && self.retry_at.is_none()
    }

    /// Whether accepting may go on now.
    pub fn ready(&self) -> bool {
        self.listener.is_some() && !self.paused
    }

    /// One accept4, with every errno decided.
    pub fn accept(&mut self, count_fd_exhausted: &mut u64) -> Accepted {
        let Some(fd) = self.raw() else {
            return Accepted::Drained;
        };
        let e = match socket::accept(fd) {
            Ok((client, peer)) => return Accepted::Client(client, peer),
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

    /// Stops watching the listener. With `retry_at`, try again then;
    /// without, resume when told. Returns whether it was newly paused.
    pub fn pause(&mut self, poller: &Poller, retry_at: Option<u64>) -> bool {
        let newly = !self.paused;
        if newly {
            self.paused = true;
            if let Some(fd) = self.raw() {
                if let Err(e) = poller.modify(fd, None, self.token) {
                    log::error!("epoll_ctl(MOD) pausing the listener: {e}");
                }
            }
        }
        self.retry_at = retry_at;
        newly
    }

    pub fn resume(&mut self, poller: &Poller) {
        let Some(fd) = self.raw() else {
            return;
        };
        if self.paused {
            self.paused = false;
            self.retry_at = None;
            // Level-triggered: a backlog that built up meanwhile is reported
            // by the next epoll_wait.
            if let Err(e) = poller.modify(fd, Some(Interest::READ_LEVEL), self.token) {
                log::error!("epoll_ctl(MOD) resuming the listener: {e}");
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

    /// Closes the listener (stop): removed from epoll first.
    pub fn close(&mut self, poller: &Poller) {
        if let Some(l) = self.listener.take() {
            let _ = poller.delete(l.as_raw_fd());
        }
    }
}
