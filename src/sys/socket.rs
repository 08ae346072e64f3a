//! Sockets: listening, accepting, reading, writing (`send`, or `sendmsg`
//! for two slices; always `MSG_NOSIGNAL`),
//! half-closing, socket options and peer addresses.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{OwnedFd, RawFd};
use std::os::raw::c_int;

use super::{cvt, cvt_size, owned};

type Fd = RawFd;

/// A socket address in the form the kernel hands back from accept (a
/// Unix peer's path, if any, is cut short: only its family is kept), and
/// the index of the loop's listener that accepted it.
#[derive(Clone, Copy)]
pub struct PeerAddr {
    storage: libc::sockaddr_in6,
    /// Which listener accepted the connection (set by the acceptor).
    pub listener: u16,
}

impl PeerAddr {
    pub fn unspecified() -> PeerAddr {
        // SAFETY: sockaddr_in6 is plain old data; all-zero is a valid value.
        PeerAddr {
            storage: unsafe { zeroed() },
            listener: 0,
        }
    }

    /// Whether the peer came over a Unix domain socket.
    pub fn is_unix(&self) -> bool {
        self.storage.sin6_family as c_int == libc::AF_UNIX
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
pub fn listen_tcp(addr: &SocketAddr, backlog: c_int, reuse_port: bool) -> io::Result<OwnedFd> {
    listen_tcp_with(addr, backlog, reuse_port, None)
}

/// `listen_tcp`, with `IPV6_V6ONLY` set to `v6only` on an IPv6 address
/// when given (the system default otherwise).
pub fn listen_tcp_with(
    addr: &SocketAddr,
    backlog: c_int,
    reuse_port: bool,
    v6only: Option<bool>,
) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain syscall with integer arguments.
    let sock = owned(cvt(unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    if reuse_port {
        set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    }
    if let (Some(only), false) = (v6only, addr.is_ipv4()) {
        set_int_opt(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, only as c_int)?;
    }
    let (raw, len) = socket_addr_raw(addr);
    // SAFETY: `raw` holds a valid sockaddr of `len` bytes for `family`.
    cvt(unsafe { libc::bind(fd, &raw as *const _ as *const libc::sockaddr, len) })?;
    // SAFETY: plain syscall with integer arguments.
    cvt(unsafe { libc::listen(fd, backlog) })?;
    Ok(sock)
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
pub fn accept(listener: Fd) -> io::Result<(OwnedFd, PeerAddr)> {
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
            Ok(fd) => return Ok((owned(fd), peer)),
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

/// Writes `first` then `second` in one `sendmsg` (two iovecs), with
/// `MSG_NOSIGNAL` like `send`. Returns how many bytes the kernel took, which
/// may end anywhere in either slice.
pub fn send_two(fd: Fd, first: &[u8], second: &[u8]) -> io::Result<usize> {
    let mut iov = [
        libc::iovec {
            iov_base: first.as_ptr() as *mut libc::c_void,
            iov_len: first.len(),
        },
        libc::iovec {
            iov_base: second.as_ptr() as *mut libc::c_void,
            iov_len: second.len(),
        },
    ];
    // SAFETY: msghdr is plain old data; all-zero is a valid value (no
    // address, no control data).
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len() as _;
    loop {
        // SAFETY: `msg` points to two iovecs describing readable slices that
        // outlive the call; the kernel only reads through them.
        let ret = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
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

/// Whether a connection waits in a listening socket's backlog, or input
/// in a connected socket (poll with no timeout; nothing is consumed). An
/// error counts as "yes": the caller's accept or recv then reports it.
pub fn backlog_waiting(listener: Fd) -> bool {
    let mut pfd = libc::pollfd {
        fd: listener,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd, count 1, timeout 0.
        let ret = unsafe { libc::poll(&mut pfd, 1, 0) };
        if ret >= 0 {
            return ret > 0;
        }
        if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return true;
        }
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

/// Opens the spare descriptor kept for EMFILE recovery (muduo's idle fd).
pub fn open_spare_fd() -> Option<OwnedFd> {
    // SAFETY: the path is a valid NUL-terminated C string.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    (fd >= 0).then(|| owned(fd))
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
