//! `Connection_AddListen*`: more listening sockets for one Connection
//! (TCP, Unix domain, a descriptor the caller holds, or the ones systemd
//! socket activation handed over), and what can be asked about them.

use std::ffi::{CStr, CString};
use std::net::SocketAddr;
use std::os::raw::{c_char, c_int};

use super::config::parse_host;
use super::connection::{with_live, Connection};
use super::error::*;
use super::guard_ptr;
use crate::reactor::acceptor::MAX_LISTENERS;
use crate::reactor::{Error, LoopPtr};
use crate::sys::activation::{self, Activation};
use crate::sys::listen::{self, ListenSocket};
use crate::sys::socket;

/// Most listeners one Connection serves (listener 0 included).
pub const CONNECTION_MAX_LISTENERS: c_int = 64;
const _: () = assert!(CONNECTION_MAX_LISTENERS as usize == MAX_LISTENERS);
/// `Connection_AddListenTcp` flag: an IPv6 listener takes IPv6 only
/// (`IPV6_V6ONLY` on), so an IPv4 listener may share the port.
pub const CONNECTION_LISTEN_V6ONLY: c_int = 1;
/// `Connection_AddListenTcp` flag: an IPv6 listener also takes IPv4
/// (`IPV6_V6ONLY` off). Without either flag the system default
/// (`/proc/sys/net/ipv6/bindv6only`) holds.
pub const CONNECTION_LISTEN_DUALSTACK: c_int = 2;
/// `Connection_AddListenTcp` flag: set `SO_REUSEPORT`.
pub const CONNECTION_LISTEN_REUSEPORT: c_int = 4;

/// Hands `socket` to the loop; its index, or the code.
fn add(lp: LoopPtr, socket: ListenSocket, name: Option<CString>) -> c_int {
    match lp.with(|el| el.add_listener(socket, name)) {
        Ok(index) => index as c_int,
        Err(Error::TooLarge) => CONNECTION_ERR_TOO_MANY_LISTENERS,
        Err(e) => code(e),
    }
}

/// Whether one more listener fits (checked before anything is opened).
fn room(lp: LoopPtr, more: usize) -> Result<(), c_int> {
    if lp.with(|el| el.listener_count()) + more > MAX_LISTENERS {
        return Err(CONNECTION_ERR_TOO_MANY_LISTENERS);
    }
    Ok(())
}

/// Adds a TCP listener on `host` (an IPv4 or IPv6 literal, IPv6 perhaps
/// in brackets, or "localhost" for 127.0.0.1) and `port` (0 picks a free
/// one: see `Connection_ListenerPort`). `flags`: 0 or an OR of
/// `CONNECTION_LISTEN_V6ONLY` / `CONNECTION_LISTEN_DUALSTACK` (not both;
/// they matter only for IPv6) and `CONNECTION_LISTEN_REUSEPORT`. The
/// socket is non-blocking, close-on-exec, with `SO_REUSEADDR`, and the
/// config's backlog. Returns the listener's index (>= 0; requests it
/// accepts report it through `Request_Listener`), or
/// `CONNECTION_ERR_NULL`, `CONNECTION_ERR_INVALID` (flags),
/// `CONNECTION_ERR_ADDR`, `CONNECTION_ERR_ADDR_IN_USE`,
/// `CONNECTION_ERR_PERMISSION`, `CONNECTION_ERR_TOO_MANY_LISTENERS`,
/// `CONNECTION_ERR_STATE` (after `Connection_Stop`),
/// `CONNECTION_ERR_NOT_INITIALIZED`, `CONNECTION_ERR_WRONG_THREAD`,
/// `CONNECTION_ERR_SYSTEM`. Listeners live until Stop or Destroy.
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Connection_AddListenTcp(
    conn: *mut Connection,
    host: *const c_char,
    port: u16,
    flags: c_int,
) -> c_int {
    // SAFETY: `conn` is NULL or a Connection (contract); `with_live` passes
    // a live core, borrowed only briefly; no callback runs.
    unsafe {
        with_live(conn, |lp| {
            if host.is_null() {
                return CONNECTION_ERR_NULL;
            }
            let known = CONNECTION_LISTEN_V6ONLY
                | CONNECTION_LISTEN_DUALSTACK
                | CONNECTION_LISTEN_REUSEPORT;
            let both = CONNECTION_LISTEN_V6ONLY | CONNECTION_LISTEN_DUALSTACK;
            if flags & !known != 0 || flags & both == both {
                return CONNECTION_ERR_INVALID;
            }
            // SAFETY: non-NULL; the caller passes a NUL-terminated string.
            let Some(ip) = CStr::from_ptr(host).to_str().ok().and_then(parse_host) else {
                return CONNECTION_ERR_ADDR;
            };
            if let Err(code) = room(lp, 1) {
                return code;
            }
            let v6only = match flags & both {
                CONNECTION_LISTEN_V6ONLY => Some(true),
                CONNECTION_LISTEN_DUALSTACK => Some(false),
                _ => None,
            };
            let reuse_port = flags & CONNECTION_LISTEN_REUSEPORT != 0;
            let addr = SocketAddr::new(ip, port);
            let backlog = lp.with(|el| el.backlog());
            match socket::listen_tcp_with(&addr, backlog, reuse_port, v6only) {
                Ok(fd) => add(lp, ListenSocket::owned(fd), None),
                // An IPv4-mapped address on an IPv6-only socket.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => CONNECTION_ERR_ADDR,
                Err(e) => from_io(&e),
            }
        })
    }
}

/// Adds a Unix domain stream listener at `path` (at most 107 bytes). The
/// socket file gets permission bits `mode` (e.g. 0660; 0 keeps what the
/// process umask gives) before the socket listens, so nobody connects
/// under looser permissions. A socket file nobody accepts on (left by a
/// dead server: connect is refused) is replaced; one a live server
/// accepts on gives `CONNECTION_ERR_ADDR_IN_USE`; any other file at
/// `path` gives `CONNECTION_ERR_SOCKET_PATH` and is left alone. The file
/// is removed when the listener closes (Stop or Destroy) if it is still
/// the one made here, by this process, and no other process accepts on
/// it (a successor it was handed to across exec keeps it). Put it in a
/// directory only trusted users can write to: the mode is set through the
/// path (chmod). Peers' `Request_RemoteAddr` is "unix". Returns the listener's index, or
/// `CONNECTION_ERR_NULL`, `CONNECTION_ERR_INVALID` (mode above 0777),
/// `CONNECTION_ERR_SOCKET_PATH`, `CONNECTION_ERR_ADDR_IN_USE`,
/// `CONNECTION_ERR_PERMISSION`, `CONNECTION_ERR_TOO_MANY_LISTENERS`,
/// `CONNECTION_ERR_STATE`, `CONNECTION_ERR_NOT_INITIALIZED`,
/// `CONNECTION_ERR_WRONG_THREAD`, `CONNECTION_ERR_SYSTEM`.
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Connection_AddListenUnix(
    conn: *mut Connection,
    path: *const c_char,
    mode: u32,
) -> c_int {
    // SAFETY: `conn` is NULL or a Connection (contract); `with_live` passes
    // a live core, borrowed only briefly; no callback runs.
    unsafe {
        with_live(conn, |lp| {
            if path.is_null() {
                return CONNECTION_ERR_NULL;
            }
            if mode & !0o777 != 0 {
                return CONNECTION_ERR_INVALID;
            }
            if let Err(code) = room(lp, 1) {
                return code;
            }
            // SAFETY: non-NULL; the caller passes a NUL-terminated string.
            let path = CStr::from_ptr(path);
            let backlog = lp.with(|el| el.backlog());
            match listen::listen_unix(path, mode, backlog) {
                Ok(socket) => add(lp, socket, None),
                Err(listen::ListenError::Live) => {
                    log::error!(
                        "{}: a live server accepts on this socket",
                        path.to_string_lossy()
                    );
                    CONNECTION_ERR_ADDR_IN_USE
                }
                Err(e) => from_listen(e),
            }
        })
    }
}

/// Adds a listening socket the caller already holds (inherited, or made
/// itself): it must be a stream socket in the listening state (TCP or
/// Unix), else `CONNECTION_ERR_NOT_LISTENING` and nothing changes. It is
/// made non-blocking and close-on-exec (its other flags kept). With
/// `owned` non-zero the library closes it with the listener (Stop,
/// Destroy, or a failure here); with 0 the caller closes it, after
/// `Connection_Destroy`. Returns the listener's index, or
/// `CONNECTION_ERR_NOT_LISTENING`, `CONNECTION_ERR_TOO_MANY_LISTENERS`,
/// `CONNECTION_ERR_STATE`, `CONNECTION_ERR_NULL`,
/// `CONNECTION_ERR_NOT_INITIALIZED`, `CONNECTION_ERR_WRONG_THREAD`,
/// `CONNECTION_ERR_SYSTEM`.
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Connection_AddListenFd(
    conn: *mut Connection,
    fd: c_int,
    owned: c_int,
) -> c_int {
    // SAFETY: `conn` is NULL or a Connection (contract); `with_live` passes
    // a live core, borrowed only briefly; no callback runs.
    unsafe {
        with_live(conn, |lp| {
            if let Err(code) = room(lp, 1) {
                return code;
            }
            match listen::adopt(fd, owned != 0) {
                Ok(socket) => add(lp, socket, None),
                Err(e) => from_listen(e),
            }
        })
    }
}

/// Adopts the sockets systemd socket activation (or anything following
/// `sd_listen_fds(3)`, such as a restarting server handing its sockets
/// to its successor) passed: when `LISTEN_PID` is this process,
/// descriptors 3 .. 3+`LISTEN_FDS`-1, named by `LISTEN_FDNAMES`
/// (`Connection_ListenerName`). Each is made close-on-exec, checked to be
/// a listening stream socket, and owned by the library from then on. With
/// `unset_environment` non-zero the three variables are removed (whatever
/// the outcome), so children do not see them; that calls `unsetenv`,
/// which other threads must not race with. Returns how many listeners
/// were added (their indexes follow the ones already there:
/// `Connection_ListenerCount` before the call gives the first), or
/// `CONNECTION_ERR_NOT_ACTIVATED` (variables unset, or `LISTEN_PID` is
/// another process: nothing is touched), `CONNECTION_ERR_INVALID`
/// (malformed variables), `CONNECTION_ERR_NOT_LISTENING` (one of them is
/// not a listening stream socket: none is added),
/// `CONNECTION_ERR_TOO_MANY_LISTENERS`, `CONNECTION_ERR_STATE`,
/// `CONNECTION_ERR_NULL`, `CONNECTION_ERR_NOT_INITIALIZED`,
/// `CONNECTION_ERR_WRONG_THREAD`, `CONNECTION_ERR_SYSTEM`.
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Connection_AddSystemdListeners(
    conn: *mut Connection,
    unset_environment: c_int,
) -> c_int {
    // SAFETY: `conn` is NULL or a Connection (contract); `with_live` passes
    // a live core, borrowed only briefly; no callback runs.
    unsafe {
        with_live(conn, |lp| {
            let fds = match activation::listen_fds(unset_environment != 0) {
                Ok(Activation::Fds(fds)) => fds,
                Ok(Activation::NotSet) => {
                    log::error!("socket activation: LISTEN_PID/LISTEN_FDS not set");
                    return CONNECTION_ERR_NOT_ACTIVATED;
                }
                Ok(Activation::OtherProcess(pid)) => {
                    log::error!(
                        "socket activation: LISTEN_PID={pid} is not this process ({}); ignored",
                        std::process::id()
                    );
                    return CONNECTION_ERR_NOT_ACTIVATED;
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    log::error!("socket activation: malformed LISTEN_* variables");
                    return CONNECTION_ERR_INVALID;
                }
                Err(e) => return from_io(&e),
            };
            if let Err(code) = room(lp, fds.len()) {
                return code;
            }
            let mut sockets = Vec::with_capacity(fds.len());
            for (fd, name) in fds {
                // Not owned until every one passed: a refusal leaves the
                // descriptors open, as they were handed.
                match listen::adopt(fd, false) {
                    Ok(s) => sockets.push((s, fd, name)),
                    Err(e) => {
                        log::error!(
                            "socket activation: fd {fd} ({name}): not a listening stream socket"
                        );
                        return from_listen(e);
                    }
                }
            }
            let count = sockets.len() as c_int;
            for (socket, _, name) in sockets {
                let name = CString::new(name).ok();
                let r = add(lp, socket.into_owned(), name);
                if r < 0 {
                    return r;
                }
            }
            count
        })
    }
}

/// How many listeners the Connection serves (0 after `Connection_Stop`,
/// which closes them), or a negative error.
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Connection_ListenerCount(conn: *const Connection) -> c_int {
    // SAFETY: `conn` is NULL or a Connection (contract); `with_live` passes
    // a live core, read only for the call.
    unsafe { with_live(conn, |lp| lp.with(|el| el.listener_count() as c_int)) }
}

/// The TCP port of listener `index` (useful with port 0), 0 for a Unix
/// socket, or `CONNECTION_ERR_INVALID` (no such listener) or another
/// negative error. `Connection_Port` is the same for listener 0.
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Connection_ListenerPort(conn: *const Connection, index: c_int) -> c_int {
    // SAFETY: `conn` is NULL or a Connection (contract); `with_live` passes
    // a live core, read only for the call.
    unsafe {
        with_live(conn, |lp| {
            let Ok(i) = usize::try_from(index) else {
                return CONNECTION_ERR_INVALID;
            };
            lp.with(|el| el.listener_port(i))
                .map_or(CONNECTION_ERR_INVALID, c_int::from)
        })
    }
}

/// The descriptor of listener `index`, or `CONNECTION_ERR_INVALID` (no
/// such listener) or another negative error. It stays the library's (or,
/// for `Connection_AddListenFd` without ownership, yours): do not close it
/// or change its flags. Meant for handing the socket to a successor
/// process: `dup2` it into place in a child after `fork`, before `exec`
/// (see c-examples/restart.c).
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Connection_ListenerFd(conn: *const Connection, index: c_int) -> c_int {
    // SAFETY: `conn` is NULL or a Connection (contract); `with_live` passes
    // a live core, read only for the call.
    unsafe {
        with_live(conn, |lp| {
            let Ok(i) = usize::try_from(index) else {
                return CONNECTION_ERR_INVALID;
            };
            lp.with(|el| el.listener_fd(i))
                .unwrap_or(CONNECTION_ERR_INVALID)
        })
    }
}

/// The name listener `index` was handed in with (`LISTEN_FDNAMES`, by
/// `Connection_AddSystemdListeners`), or NULL (no name, no such
/// listener, a bad handle, the wrong thread). Valid until the listener
/// closes (Stop or Destroy).
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Connection_ListenerName(
    conn: *const Connection,
    index: c_int,
) -> *const c_char {
    guard_ptr(|| {
        let mut out: *const c_char = std::ptr::null();
        // SAFETY: `conn` is NULL or a Connection (contract); `with_live`
        // passes a live core, read only for the call.
        unsafe {
            with_live(conn, |lp| {
                if let Ok(i) = usize::try_from(index) {
                    out = lp.with(|el| el.listener_name(i)).unwrap_or(out);
                }
                CONNECTION_OK
            })
        };
        out
    })
}
