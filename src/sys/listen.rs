//! Listening sockets besides TCP (`socket::listen_tcp_with`): Unix domain
//! sockets at a path (mode
//! applied before anyone can connect, a stale file from a dead server
//! replaced, a live one refused), descriptors handed in by the caller
//! (validated), and the `ListenSocket` that owns one of them, or not.

use std::ffi::{CStr, CString};
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::raw::c_int;

use super::{cvt, owned};

/// Why a listener could not be set up, beyond a plain errno.
#[derive(Debug)]
pub enum ListenError {
    /// The path is empty, has a NUL, does not fit `sun_path`, or names a
    /// file that is not a socket (which is never removed).
    Path,
    /// A server is accepting on that Unix socket path.
    Live,
    /// The descriptor is not a listening stream socket.
    NotListening,
    Io(io::Error),
}

impl From<io::Error> for ListenError {
    fn from(e: io::Error) -> ListenError {
        ListenError::Io(e)
    }
}

/// The file a Unix listener created: removed on drop if it is still ours
/// (same device and inode, and the process that made it).
struct UnixFile {
    path: CString,
    dev: u64,
    ino: u64,
    pid: libc::pid_t,
}

/// A listening socket, closed on drop only if it is ours (`owned`).
pub struct ListenSocket {
    fd: Option<OwnedFd>,
    owned: bool,
    unix: Option<UnixFile>,
}

impl ListenSocket {
    pub fn owned(fd: OwnedFd) -> ListenSocket {
        ListenSocket {
            fd: Some(fd),
            owned: true,
            unix: None,
        }
    }

    /// From now on closed on drop.
    pub fn into_owned(mut self) -> ListenSocket {
        self.owned = true;
        self
    }

    /// Whether it is a Unix domain socket we bound at a path.
    pub fn unix_path(&self) -> Option<&CStr> {
        self.unix.as_ref().map(|u| u.path.as_c_str())
    }
}

impl AsRawFd for ListenSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, |f| f.as_raw_fd())
    }
}

impl Drop for ListenSocket {
    fn drop(&mut self) {
        if let Some(fd) = self.fd.take() {
            if !self.owned {
                // The caller keeps it open: give the number back unclosed.
                let _ = fd.into_raw_fd();
            }
        }
        if let Some(u) = &self.unix {
            // SAFETY: getpid has no preconditions.
            let ours = u.pid == unsafe { libc::getpid() }
                && file_id(&u.path).is_some_and(|id| id == (u.dev, u.ino));
            // Still accepted on after our descriptor closed: a process we
            // handed the socket to (across exec) serves it; leave the file.
            if ours && !accepting(&u.path) {
                // SAFETY: a NUL-terminated path; failure is harmless.
                unsafe { libc::unlink(u.path.as_ptr()) };
            }
        }
    }
}

/// Whether some process accepts on the Unix socket at `path` (a connect
/// that succeeds, or finds the backlog full).
fn accepting(path: &CStr) -> bool {
    let Ok((sun, len)) = unix_addr(path) else {
        return false;
    };
    matches!(probe(&sun, len), Ok(true) | Err(ListenError::Live))
}

/// Connects to `sun` once: Ok(true) if it connected, Ok(false) if refused.
fn probe(sun: &libc::sockaddr_un, len: libc::socklen_t) -> Result<bool, ListenError> {
    // Non-blocking: a Unix connect completes or fails at once, and a full
    // backlog gives EAGAIN instead of a wait.
    // SAFETY: plain syscall with integer arguments.
    let probe = owned(cvt(unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?);
    // SAFETY: `sun` is a valid sockaddr_un of `len` bytes.
    let r = unsafe { libc::connect(probe.as_raw_fd(), sun as *const _ as *const _, len) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => Ok(false),
        // A live server whose backlog is full.
        Some(libc::EAGAIN) => Err(ListenError::Live),
        _ => Err(e.into()),
    }
}

fn lstat(path: &CStr) -> io::Result<libc::stat> {
    // SAFETY: stat is plain old data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { zeroed() };
    // SAFETY: NUL-terminated path, writable stat buffer.
    cvt(unsafe { libc::lstat(path.as_ptr(), &mut st) })?;
    Ok(st)
}

fn file_id(path: &CStr) -> Option<(u64, u64)> {
    lstat(path).ok().map(|st| (st.st_dev, st.st_ino))
}

fn int_opt(fd: RawFd, level: c_int, name: c_int) -> io::Result<c_int> {
    let mut v: c_int = 0;
    let mut len = size_of::<c_int>() as libc::socklen_t;
    // SAFETY: a live c_int and its size.
    cvt(unsafe { libc::getsockopt(fd, level, name, &mut v as *mut c_int as *mut _, &mut len) })?;
    Ok(v)
}

fn unix_addr(path: &CStr) -> Result<(libc::sockaddr_un, libc::socklen_t), ListenError> {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut sun: libc::sockaddr_un = unsafe { zeroed() };
    let bytes = path.to_bytes();
    // The path and its NUL must fit.
    if bytes.is_empty() || bytes.len() >= sun.sun_path.len() {
        return Err(ListenError::Path);
    }
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in sun.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let len = (size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
    Ok((sun, len))
}

fn unix_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    Ok(owned(cvt(unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?))
}

/// What is at `path` now: nothing, or a socket file nobody accepts on (a
/// stale one, removed here). Anything else is an error.
fn clear_stale(
    path: &CStr,
    sun: &libc::sockaddr_un,
    len: libc::socklen_t,
) -> Result<(), ListenError> {
    let st = match lstat(path) {
        Ok(st) => st,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(ListenError::Path);
    }
    if probe(sun, len)? {
        return Err(ListenError::Live);
    }
    // Nobody accepts: a dead server's file.
    // SAFETY: NUL-terminated path.
    match cvt(unsafe { libc::unlink(path.as_ptr()) }) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A Unix domain stream listener at `path`, non-blocking and close-on-exec.
/// The file gets `mode` (0: whatever bind's umask gives) between bind and
/// listen: nobody can connect before the mode is in place. A stale socket
/// file (connect refused) is replaced; a live one is `Live`; any other
/// file is `Path` and left alone. The file is removed on drop while it is
/// still the one we made.
pub fn listen_unix(path: &CStr, mode: u32, backlog: c_int) -> Result<ListenSocket, ListenError> {
    let (sun, len) = unix_addr(path)?;
    clear_stale(path, &sun, len)?;
    let sock = unix_socket()?;
    let fd = sock.as_raw_fd();
    // SAFETY: `sun` is a valid sockaddr_un of `len` bytes.
    cvt(unsafe { libc::bind(fd, &sun as *const _ as *const _, len) })?;
    let st = lstat(path)?;
    let file = UnixFile {
        path: path.to_owned(),
        dev: st.st_dev,
        ino: st.st_ino,
        // SAFETY: getpid has no preconditions.
        pid: unsafe { libc::getpid() },
    };
    let listener = |file: UnixFile| ListenSocket {
        fd: None,
        owned: true,
        unix: Some(file),
    };
    if mode != 0 {
        // SAFETY: NUL-terminated path.
        if let Err(e) = cvt(unsafe { libc::chmod(path.as_ptr(), mode as libc::mode_t) }) {
            drop(listener(file)); // removes the file we bound
            return Err(e.into());
        }
    }
    // SAFETY: plain syscall with integer arguments.
    if let Err(e) = cvt(unsafe { libc::listen(fd, backlog) }) {
        drop(listener(file));
        return Err(e.into());
    }
    Ok(ListenSocket {
        fd: Some(sock),
        owned: true,
        unix: Some(file),
    })
}

/// Adopts a descriptor the caller holds: it must be a stream socket in
/// the listening state (SO_TYPE, SO_ACCEPTCONN). It is made non-blocking
/// and close-on-exec (other flags kept). With `owned` the socket closes
/// with the listener; without, the caller closes it after the Connection
/// is destroyed.
pub fn adopt(fd: RawFd, owned_by_us: bool) -> Result<ListenSocket, ListenError> {
    if fd < 0 {
        return Err(ListenError::NotListening);
    }
    match int_opt(fd, libc::SOL_SOCKET, libc::SO_TYPE) {
        Ok(t) if t == libc::SOCK_STREAM => {}
        Ok(_) => return Err(ListenError::NotListening),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTSOCK) | Some(libc::EBADF)) => {
            return Err(ListenError::NotListening)
        }
        Err(e) => return Err(e.into()),
    }
    if int_opt(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN)? != 1 {
        return Err(ListenError::NotListening);
    }
    // SAFETY: plain fcntl calls on a descriptor the caller vouches for.
    unsafe {
        let fl = cvt(libc::fcntl(fd, libc::F_GETFL))?;
        if fl & libc::O_NONBLOCK == 0 {
            cvt(libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK))?;
        }
        let fdfl = cvt(libc::fcntl(fd, libc::F_GETFD))?;
        if fdfl & libc::FD_CLOEXEC == 0 {
            cvt(libc::fcntl(fd, libc::F_SETFD, fdfl | libc::FD_CLOEXEC))?;
        }
    }
    Ok(ListenSocket {
        // SAFETY: a valid open descriptor (checked above). Without
        // `owned_by_us` the OwnedFd never closes it: Drop gives the number
        // back with into_raw_fd.
        fd: Some(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }),
        owned: owned_by_us,
        unix: None,
    })
}

/// The port of a TCP listener, 0 for other families.
pub fn tcp_port(fd: RawFd) -> u16 {
    match int_opt(fd, libc::SOL_SOCKET, libc::SO_DOMAIN) {
        Ok(d) if d == libc::AF_INET || d == libc::AF_INET6 => {
            super::socket::local_port(fd).unwrap_or(0)
        }
        _ => 0,
    }
}
