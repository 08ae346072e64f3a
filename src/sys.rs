//! The only module that makes system calls.
//!
//! Like mio's `Selector`, everything above this file speaks in typed
//! wrappers (`Poller`, `Interest`, results carrying `std::io::Error`) and
//! never touches `libc::epoll_*`, `send`, `recv` or `close` directly. That
//! keeps every errno decision in one place and makes the rules easy to audit:
//!
//! * every `send` carries `MSG_NOSIGNAL`, so a reset peer can never raise
//!   SIGPIPE, whatever the process's signal disposition is;
//! * every descriptor is created non-blocking and close-on-exec in the same
//!   call (`accept4`, `socket(SOCK_NONBLOCK|SOCK_CLOEXEC)`), so no `fcntl`
//!   can forget to OR the old flags back in;
//! * `EINTR` is retried here, never seen by callers.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::raw::c_int;

pub type Fd = c_int;

fn cvt(ret: c_int) -> io::Result<c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_size(ret: isize) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// Closes a descriptor. The result is ignored on purpose: on Linux the
/// descriptor is released even when close reports an error (EINTR included),
/// so retrying could close a descriptor someone else just got.
pub fn close(fd: Fd) {
    if fd >= 0 {
        // SAFETY: closing an integer descriptor has no memory-safety
        // preconditions; callers own `fd` and forget it after this call.
        unsafe {
            libc::close(fd);
        }
    }
}

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
pub struct Readiness {
    pub token: u64,
    bits: u32,
}

impl Readiness {
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
    epfd: Fd,
    events: Vec<libc::epoll_event>,
}

impl Poller {
    pub fn new(capacity: usize) -> io::Result<Poller> {
        // SAFETY: plain syscall with a flag argument.
        let epfd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        let empty = libc::epoll_event { events: 0, u64: 0 };
        Ok(Poller {
            epfd,
            events: vec![empty; capacity.max(1)],
        })
    }

    pub fn fd(&self) -> Fd {
        self.epfd
    }

    fn ctl(&self, op: c_int, fd: Fd, interest: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: interest,
            u64: token,
        };
        // SAFETY: `ev` is a valid, initialised epoll_event that lives across
        // the call; the kernel copies it.
        cvt(unsafe { libc::epoll_ctl(self.epfd, op, fd, &mut ev) }).map(|_| ())
    }

    pub fn add(&self, fd: Fd, interest: Interest, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, interest.0, token)
    }

    pub fn modify(&self, fd: Fd, interest: Option<Interest>, token: u64) -> io::Result<()> {
        self.ctl(
            libc::EPOLL_CTL_MOD,
            fd,
            interest.map(|i| i.0).unwrap_or(0),
            token,
        )
    }

    /// Removes `fd`. Always called before `close(fd)`: a descriptor that is
    /// closed while still registered (a dup shares the open file) would keep
    /// reporting events for a connection that no longer exists.
    pub fn delete(&self, fd: Fd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Waits for events; EINTR is reported as an empty batch so the caller
    /// goes round its loop (and sees a Stop request) instead of failing.
    pub fn wait(&mut self, timeout_ms: c_int) -> io::Result<usize> {
        // SAFETY: the pointer and length describe our own initialised vector.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd,
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

    pub fn event(&self, i: usize) -> Readiness {
        let ev = self.events[i];
        Readiness {
            token: ev.u64,
            bits: ev.events,
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        close(self.epfd);
    }
}

/// A socket address in the form the kernel hands back from accept.
#[derive(Clone, Copy)]
pub struct PeerAddr {
    storage: libc::sockaddr_in6,
}

impl PeerAddr {
    pub fn unspecified() -> PeerAddr {
        // SAFETY: sockaddr_in6 is plain old data; all-zero is a valid value.
        PeerAddr {
            storage: unsafe { zeroed() },
        }
    }

    pub fn to_socket_addr(&self) -> Option<SocketAddr> {
        let family = self.storage.sin6_family as c_int;
        if family == libc::AF_INET {
            // SAFETY: for AF_INET the kernel wrote a sockaddr_in, which is
            // smaller than and layout-compatible with the start of our storage.
            let v4: libc::sockaddr_in = unsafe {
                std::ptr::read_unaligned(&self.storage as *const _ as *const libc::sockaddr_in)
            };
            let ip = Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(v4.sin_port)))
        } else if family == libc::AF_INET6 {
            let ip = Ipv6Addr::from(self.storage.sin6_addr.s6_addr);
            Some(SocketAddr::new(
                IpAddr::V6(ip),
                u16::from_be(self.storage.sin6_port),
            ))
        } else {
            None
        }
    }
}

fn socket_addr_raw(addr: &SocketAddr) -> (libc::sockaddr_in6, libc::socklen_t) {
    // SAFETY: sockaddr_in6 is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_in6 = unsafe { zeroed() };
    match addr {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits inside sockaddr_in6 (16 <= 28 bytes).
            unsafe {
                std::ptr::write_unaligned(&mut storage as *mut _ as *mut libc::sockaddr_in, sin)
            };
            (storage, size_of::<libc::sockaddr_in>() as libc::socklen_t)
        }
        SocketAddr::V6(v6) => {
            storage.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            storage.sin6_port = v6.port().to_be();
            storage.sin6_addr.s6_addr = v6.ip().octets();
            storage.sin6_scope_id = v6.scope_id();
            (storage, size_of::<libc::sockaddr_in6>() as libc::socklen_t)
        }
    }
}

fn set_int_opt(fd: Fd, level: c_int, name: c_int, value: c_int) -> io::Result<()> {
    // SAFETY: we pass a pointer to a live c_int and its exact size.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const c_int as *const libc::c_void,
            size_of::<c_int>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// Creates a non-blocking, close-on-exec listening TCP socket.
pub fn listen_tcp(addr: &SocketAddr, backlog: c_int, reuse_port: bool) -> io::Result<Fd> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain syscall with integer arguments.
    let fd = cvt(unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    let result = (|| {
        set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
        if reuse_port {
            set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
        }
        let (raw, len) = socket_addr_raw(addr);
        // SAFETY: `raw` holds a valid sockaddr of `len` bytes for `family`.
        cvt(unsafe { libc::bind(fd, &raw as *const _ as *const libc::sockaddr, len) })?;
        // SAFETY: plain syscall with integer arguments.
        cvt(unsafe { libc::listen(fd, backlog) })?;
        Ok(())
    })();
    match result {
        Ok(()) => Ok(fd),
        Err(e) => {
            close(fd);
            Err(e)
        }
    }
}

/// The port a bound socket ended up on (for port 0).
pub fn local_port(fd: Fd) -> io::Result<u16> {
    // SAFETY: sockaddr_in6 is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_in6 = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    // SAFETY: storage is large enough for either family and len says so.
    cvt(unsafe { libc::getsockname(fd, &mut storage as *mut _ as *mut libc::sockaddr, &mut len) })?;
    // Both sockaddr_in and sockaddr_in6 keep the port at the same offset.
    Ok(u16::from_be(storage.sin6_port))
}

/// Accepts one connection, already non-blocking and close-on-exec.
pub fn accept(listener: Fd) -> io::Result<(Fd, PeerAddr)> {
    let mut peer = PeerAddr::unspecified();
    loop {
        let mut len = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        // SAFETY: `peer.storage` is writable and `len` is its size.
        let ret = unsafe {
            libc::accept4(
                listener,
                &mut peer.storage as *mut _ as *mut libc::sockaddr,
                &mut len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        match cvt(ret) {
            Ok(fd) => return Ok((fd, peer)),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Disables Nagle: responses are written whole, so delaying the last
/// segment only adds latency. Failure is harmless and ignored.
pub fn set_nodelay(fd: Fd) {
    let _ = set_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
}

/// Writes from `buf` with `MSG_NOSIGNAL`: a peer that is gone yields EPIPE
/// or ECONNRESET here and never a SIGPIPE for the process.
pub fn send(fd: Fd, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: the pointer and length describe a readable slice we own.
        let ret = unsafe {
            libc::send(
                fd,
                buf.as_ptr() as *const libc::c_void,
                buf.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        match cvt_size(ret) {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            other => return other,
        }
    }
}

/// Half-closes our side: the peer reads EOF after everything we sent, while
/// we can still read (and discard) what it sends, so it sees our response
/// instead of an RST.
pub fn shutdown_write(fd: Fd) {
    // SAFETY: plain syscall with integer arguments; failure (ENOTCONN after
    // an RST) is harmless, the caller closes soon anyway.
    unsafe {
        libc::shutdown(fd, libc::SHUT_WR);
    }
}

/// The pending error of a socket (SO_ERROR), used to tell RST from FIN when
/// epoll reports EPOLLERR.
pub fn take_socket_error(fd: Fd) -> c_int {
    let mut err: c_int = 0;
    let mut len = size_of::<c_int>() as libc::socklen_t;
    // SAFETY: we pass a pointer to a live c_int and its size.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            &mut err as *mut c_int as *mut libc::c_void,
            &mut len,
        )
    };
    if ret < 0 {
        io::Error::last_os_error().raw_os_error().unwrap_or(0)
    } else {
        err
    }
}

/// A non-blocking eventfd used to wake the loop from a signal handler.
pub fn eventfd() -> io::Result<Fd> {
    // SAFETY: plain syscall with integer arguments.
    cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })
}

/// Async-signal-safe: one `write(2)` of 8 bytes and nothing else (no
/// allocation, no lock, errno preserved for the interrupted code).
pub fn eventfd_signal(fd: Fd) -> bool {
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

/// Drains an eventfd's counter.
pub fn eventfd_drain(fd: Fd) {
    let mut value: u64 = 0;
    // SAFETY: reading 8 bytes into a live u64; EAGAIN means already drained.
    unsafe {
        libc::read(fd, &mut value as *mut u64 as *mut libc::c_void, 8);
    }
}

/// Opens the spare descriptor kept for EMFILE recovery (muduo's idle fd).
pub fn open_spare_fd() -> Fd {
    // SAFETY: the path is a valid NUL-terminated C string.
    unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) }
}

/// Milliseconds on the monotonic clock: timeouts must not jump with the
/// wall clock.
pub fn monotonic_ms() -> u64 {
    // SAFETY: timespec is plain old data; clock_gettime fills it.
    let mut ts: libc::timespec = unsafe { zeroed() };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Seconds since the epoch, for the Date header.
pub fn unix_seconds() -> i64 {
    // SAFETY: time(NULL) has no preconditions.
    unsafe { libc::time(std::ptr::null_mut()) as i64 }
}

/// Reads into the spare capacity of `buf` (at most `max` bytes) and extends
/// its length by what arrived; nothing is zero-filled first.
pub fn recv_into_spare(fd: Fd, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    let spare = (buf.capacity() - buf.len()).min(max);
    loop {
        // SAFETY: the pointer addresses `spare` bytes of allocated but unused
        // capacity of `buf`; recv writes at most that many.
        let ret = unsafe {
            libc::recv(
                fd,
                buf.as_mut_ptr().add(buf.len()) as *mut libc::c_void,
                spare,
                0,
            )
        };
        match cvt_size(ret) {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(n) => {
                // SAFETY: the kernel initialised exactly `n <= spare` bytes.
                unsafe { buf.set_len(buf.len() + n) };
                return Ok(n);
            }
        }
    }
}
