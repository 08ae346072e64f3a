//! Return codes and close reasons shared by every C-visible function, and
//! the one place where the reactor's errors become C codes.
//!
//! Codes are plain `#define`s with fixed values so they never shift between
//! releases; new codes are only ever appended.

use std::io;
use std::os::raw::c_int;

use crate::http::FieldError;
use crate::reactor::posts::Refused;
use crate::reactor::{CloseReason, Error};
use crate::sys::listen::ListenError;

/// Success.
pub const CONNECTION_OK: c_int = 0;
/// Not an error: `Connection_Process` after `Connection_Stop`, once every
/// connection has drained (or the drain deadline passed).
pub const CONNECTION_STOPPED: c_int = 1;
/// A required pointer argument was NULL.
pub const CONNECTION_ERR_NULL: c_int = -1;
/// An argument is out of range (a config field, a status code, a length).
pub const CONNECTION_ERR_INVALID: c_int = -2;
/// The Connection was never initialised, failed to initialise, or was destroyed.
pub const CONNECTION_ERR_NOT_INITIALIZED: c_int = -3;
/// The listening address is already in use (EADDRINUSE).
pub const CONNECTION_ERR_ADDR_IN_USE: c_int = -4;
/// The host is not a valid IPv4/IPv6 literal (or "localhost"), or cannot be bound (EADDRNOTAVAIL).
pub const CONNECTION_ERR_ADDR: c_int = -5;
/// The operating system refused (EACCES/EPERM, e.g. a port below 1024).
pub const CONNECTION_ERR_PERMISSION: c_int = -6;
/// Another system call failed; the errno is logged at error level.
pub const CONNECTION_ERR_SYSTEM: c_int = -7;
/// Memory or descriptors ran out (ENOMEM, ENOBUFS, EMFILE, ENFILE) during set-up.
pub const CONNECTION_ERR_NO_MEMORY: c_int = -8;
/// The client of this response is gone; nothing more can be sent to it.
pub const CONNECTION_ERR_CLOSED: c_int = -9;
/// The call does not fit the object's state (e.g. a second response to one request).
pub const CONNECTION_ERR_STATE: c_int = -10;
/// The connection's output queue is above `output_high_water`; try again
/// after the client has read (nothing was queued).
pub const CONNECTION_ERR_WOULD_BLOCK: c_int = -11;
/// Called from inside a callback where it would re-enter the loop
/// (e.g. `Connection_Process` from a handler).
pub const CONNECTION_ERR_BUSY: c_int = -12;
/// A bug inside the library was caught at the C boundary; the call did nothing more.
pub const CONNECTION_ERR_PANIC: c_int = -13;
/// A header name or value contains CR, LF or NUL, or the name is not an HTTP token.
pub const CONNECTION_ERR_HEADER: c_int = -14;
/// The caller's buffer is too small for the result.
pub const CONNECTION_ERR_TOO_LARGE: c_int = -15;
/// Called from a thread other than the Connection's loop thread (the one
/// that initialised it); nothing was done.
pub const CONNECTION_ERR_WRONG_THREAD: c_int = -16;
/// `Response_Upgrade`: the request does not ask for this protocol (it must
/// be HTTP/1.1 with an `Upgrade` header listing the protocol and a
/// `Connection` header holding `upgrade`); nothing was sent.
pub const CONNECTION_ERR_NOT_UPGRADE: c_int = -30;
/// `Response_Upgrade`: the request has a body (Content-Length other than 0,
/// or Transfer-Encoding); such a request cannot be upgraded; nothing was sent.
pub const CONNECTION_ERR_UPGRADE_BODY: c_int = -31;
/// `Connection_Post`: `max_pending_posts` tasks are already waiting for the
/// loop; nothing was queued (the argument is still the caller's).
pub const CONNECTION_ERR_QUEUE_FULL: c_int = -17;
/// `Connection_CancelTimer`: no pending timer has this id (it fired, was
/// cancelled, or never existed).
pub const CONNECTION_ERR_NO_TIMER: c_int = -18;
/// `Response_SendFile*`: the descriptor is not a regular file (a
/// directory, pipe, socket, device...); nothing was sent.
pub const CONNECTION_ERR_NOT_FILE: c_int = -27;
/// `Response_SendFile`: the offset and length reach beyond the end of the
/// file (or the file shrank while it was being read); nothing was sent.
pub const CONNECTION_ERR_FILE_RANGE: c_int = -28;
/// `Response_SendFile*`: `fstat`, `read` or `dup` of the descriptor failed
/// (the errno is logged); nothing was sent.
pub const CONNECTION_ERR_FILE_IO: c_int = -29;
/// The Connection already serves `CONNECTION_MAX_LISTENERS` listeners.
pub const CONNECTION_ERR_TOO_MANY_LISTENERS: c_int = -23;
/// The descriptor is not a stream socket in the listening state (not a
/// socket, not listening, a datagram socket, or not open).
pub const CONNECTION_ERR_NOT_LISTENING: c_int = -24;
/// The Unix socket path is unusable: empty, too long for `sun_path`, or a
/// file that is not a socket is in the way (it is never removed).
pub const CONNECTION_ERR_SOCKET_PATH: c_int = -25;
/// Socket activation handed this process nothing: `LISTEN_PID` or
/// `LISTEN_FDS` is unset, or `LISTEN_PID` names another process.
pub const CONNECTION_ERR_NOT_ACTIVATED: c_int = -26;
/// A request helper met a '%' not followed by two hex digits, or an escape
/// it refuses: `%00` anywhere, `%2F` in a path. Answer 400.
pub const CONNECTION_ERR_BAD_ESCAPE: c_int = -32;
/// A `..` segment of the path climbs above the root. Answer 400 (or 404).
pub const CONNECTION_ERR_ABOVE_ROOT: c_int = -33;
/// The parameter, cookie or header asked for is not in the request (or
/// the index is past the last one).
pub const CONNECTION_ERR_NOT_FOUND: c_int = -34;
/// A request helper found the field malformed: a path that does not start
/// with '/', a NUL byte in form data, a cookie value with a control byte or a stray quote, a Host
/// port over 65535, a forwarded address that is not an IP address.
pub const CONNECTION_ERR_MALFORMED: c_int = -35;

/// Why a connection (or a pull stream) ended. Passed to cleanup callbacks
/// and counted in `ConnectionStats`.
#[repr(C)]
#[allow(non_camel_case_types)] // C-style names, as they appear in the header
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionCloseReason {
    /// The response (or stream) was written completely; a connection closed
    /// this way ended normally (`Connection: close`, HTTP/1.0).
    CONNECTION_CLOSE_COMPLETED = 0,
    /// The peer finished sending (FIN) and everything it asked for was answered,
    /// or it closed while idle.
    CONNECTION_CLOSE_PEER_CLOSED = 1,
    /// The peer reset the connection (RST, ECONNRESET, EPIPE).
    CONNECTION_CLOSE_RESET = 2,
    /// A header, body, idle, send or linger timeout expired.
    CONNECTION_CLOSE_TIMEOUT = 3,
    /// `Connection_Stop` or `Connection_Destroy`.
    CONNECTION_CLOSE_SHUTDOWN = 4,
    /// A local failure: an unexpected errno, or a producer returned an error.
    CONNECTION_CLOSE_ERROR = 5,
    /// An idle keep-alive connection closed to make room at `max_connections`.
    CONNECTION_CLOSE_LIMIT = 6,
    /// The client sent a malformed or over-limit request and got a 4xx/5xx.
    CONNECTION_CLOSE_PROTOCOL = 7,
}

impl ConnectionCloseReason {
    /// Every reason, in value order (the value is the index).
    const ALL: [ConnectionCloseReason; 8] = [
        Self::CONNECTION_CLOSE_COMPLETED,
        Self::CONNECTION_CLOSE_PEER_CLOSED,
        Self::CONNECTION_CLOSE_RESET,
        Self::CONNECTION_CLOSE_TIMEOUT,
        Self::CONNECTION_CLOSE_SHUTDOWN,
        Self::CONNECTION_CLOSE_ERROR,
        Self::CONNECTION_CLOSE_LIMIT,
        Self::CONNECTION_CLOSE_PROTOCOL,
    ];

    /// The reason with this C value, if any.
    pub fn from_c(value: c_int) -> Option<Self> {
        usize::try_from(value)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
    }

    /// Lower-case name, NUL-terminated for C ("peer_closed", ...): the
    /// reactor's own name of the reason.
    pub fn name_c(self) -> &'static std::ffi::CStr {
        CloseReason::ALL[self as usize].name_c()
    }

    pub fn name(self) -> &'static str {
        CloseReason::ALL[self as usize].name()
    }
}

/// The message for a code; never NULL.
pub fn message(code: c_int) -> &'static std::ffi::CStr {
    match code {
        CONNECTION_OK => c"success",
        CONNECTION_STOPPED => c"stopped: the connection core has drained after Connection_Stop",
        CONNECTION_ERR_NULL => c"a required pointer argument is NULL",
        CONNECTION_ERR_INVALID => c"an argument is out of range",
        CONNECTION_ERR_NOT_INITIALIZED => c"the Connection is not initialised or was destroyed",
        CONNECTION_ERR_ADDR_IN_USE => c"the address is already in use",
        CONNECTION_ERR_ADDR => c"the host is not a valid IP address or cannot be bound",
        CONNECTION_ERR_PERMISSION => c"permission denied by the operating system",
        CONNECTION_ERR_SYSTEM => c"a system call failed (see the error log)",
        CONNECTION_ERR_NO_MEMORY => c"out of memory or file descriptors",
        CONNECTION_ERR_CLOSED => c"the client connection is closed",
        CONNECTION_ERR_STATE => c"the call does not fit the current state (e.g. responded twice)",
        CONNECTION_ERR_WOULD_BLOCK => c"the output queue is full; retry after the client reads",
        CONNECTION_ERR_BUSY => c"not allowed from inside a callback",
        CONNECTION_ERR_PANIC => c"internal error caught at the C boundary",
        CONNECTION_ERR_HEADER => c"invalid header name or value (CR, LF, NUL or a non-token name)",
        CONNECTION_ERR_TOO_LARGE => c"the buffer is too small",
        CONNECTION_ERR_WRONG_THREAD => {
            c"called from a thread other than the Connection's loop thread (the one that initialised it)"
        }
        CONNECTION_ERR_NOT_UPGRADE => {
            c"the request does not ask for this upgrade (HTTP/1.1, Upgrade listing the protocol, Connection: upgrade)"
        }
        CONNECTION_ERR_UPGRADE_BODY => c"a request with a body cannot be upgraded",
        CONNECTION_ERR_QUEUE_FULL => {
            c"the loop's queue of posted tasks is full; nothing was queued"
        }
        CONNECTION_ERR_NO_TIMER => c"no pending timer has this id (it fired or was cancelled)",
        CONNECTION_ERR_NOT_FILE => c"the descriptor is not a regular file",
        CONNECTION_ERR_FILE_RANGE => c"the offset and length reach beyond the end of the file",
        CONNECTION_ERR_FILE_IO => c"reading the file failed (fstat, read or dup; see the log)",
        CONNECTION_ERR_TOO_MANY_LISTENERS => c"the Connection already has the most listeners allowed",
        CONNECTION_ERR_NOT_LISTENING => c"the descriptor is not a listening stream socket",
        CONNECTION_ERR_SOCKET_PATH => {
            c"the Unix socket path is empty, too long, or names a file that is not a socket"
        }
        CONNECTION_ERR_NOT_ACTIVATED => {
            c"no sockets were handed to this process (LISTEN_FDS unset, or LISTEN_PID is another process)"
        }
        CONNECTION_ERR_BAD_ESCAPE => {
            c"invalid percent-escape, or a refused one (%00; %2F in a path)"
        }
        CONNECTION_ERR_ABOVE_ROOT => c"a '..' segment climbs above the root of the path",
        CONNECTION_ERR_NOT_FOUND => c"no such parameter, cookie or header in the request",
        CONNECTION_ERR_MALFORMED => c"the request field is malformed",
        _ => c"unknown error code",
    }
}

/// The code for a request helper's refusal (`TooLarge` is
/// `CONNECTION_ERR_TOO_LARGE`; the needed length is reported separately).
pub fn field_code(err: FieldError) -> c_int {
    match err {
        FieldError::BadEscape => CONNECTION_ERR_BAD_ESCAPE,
        FieldError::AboveRoot => CONNECTION_ERR_ABOVE_ROOT,
        FieldError::NotFound => CONNECTION_ERR_NOT_FOUND,
        FieldError::Malformed => CONNECTION_ERR_MALFORMED,
        FieldError::TooLarge(_) => CONNECTION_ERR_TOO_LARGE,
    }
}

/// The code for a reactor error.
pub fn code(err: Error) -> c_int {
    match err {
        Error::Invalid => CONNECTION_ERR_INVALID,
        Error::Closed => CONNECTION_ERR_CLOSED,
        Error::State => CONNECTION_ERR_STATE,
        Error::WouldBlock => CONNECTION_ERR_WOULD_BLOCK,
        Error::Busy => CONNECTION_ERR_BUSY,
        Error::Header => CONNECTION_ERR_HEADER,
        Error::TooLarge => CONNECTION_ERR_TOO_LARGE,
        Error::NotUpgrade => CONNECTION_ERR_NOT_UPGRADE,
        Error::UpgradeBody => CONNECTION_ERR_UPGRADE_BODY,
        Error::Io(e) => from_io(&e),
        Error::NotFile => CONNECTION_ERR_NOT_FILE,
        Error::FileRange => CONNECTION_ERR_FILE_RANGE,
        Error::FileIo(e) => {
            log::error!("file response: {e}");
            CONNECTION_ERR_FILE_IO
        }
    }
}

/// The code for a refused `Connection_Post`.
pub fn refused_code(refused: Refused) -> c_int {
    match refused {
        Refused::Full => CONNECTION_ERR_QUEUE_FULL,
        Refused::Closed => CONNECTION_ERR_NOT_INITIALIZED,
    }
}

/// 0 or the code for a reactor error.
pub fn result_code(result: Result<(), Error>) -> c_int {
    match result {
        Ok(()) => CONNECTION_OK,
        Err(e) => code(e),
    }
}

impl From<CloseReason> for ConnectionCloseReason {
    fn from(reason: CloseReason) -> Self {
        Self::ALL[reason.number() as usize]
    }
}

/// The code for a listener that could not be set up.
pub fn from_listen(err: ListenError) -> c_int {
    match err {
        ListenError::Path => CONNECTION_ERR_SOCKET_PATH,
        ListenError::Live => CONNECTION_ERR_ADDR_IN_USE,
        ListenError::NotListening => CONNECTION_ERR_NOT_LISTENING,
        ListenError::Io(e) => from_io(&e),
    }
}

/// Maps a set-up failure (socket, bind, listen, epoll) to a code.
pub fn from_io(err: &io::Error) -> c_int {
    match err.raw_os_error() {
        Some(libc::EADDRINUSE) => CONNECTION_ERR_ADDR_IN_USE,
        Some(libc::EADDRNOTAVAIL) | Some(libc::EAFNOSUPPORT) => CONNECTION_ERR_ADDR,
        Some(libc::EACCES) | Some(libc::EPERM) => CONNECTION_ERR_PERMISSION,
        Some(libc::ENOMEM) | Some(libc::ENOBUFS) | Some(libc::EMFILE) | Some(libc::ENFILE) => {
            CONNECTION_ERR_NO_MEMORY
        }
        _ => CONNECTION_ERR_SYSTEM,
    }
}

#[cfg(test)]
mod tests {
    use super::ConnectionCloseReason;

    #[test]
    fn every_reactor_reason_has_the_c_value_of_the_same_name() {
        for r in crate::reactor::CloseReason::ALL {
            let c = ConnectionCloseReason::from(r);
            assert_eq!(c as i32, r.number());
            assert_eq!(c.name(), r.name());
        }
    }

    #[test]
    fn every_reason_round_trips_through_its_c_value() {
        for r in ConnectionCloseReason::ALL {
            assert_eq!(ConnectionCloseReason::from_c(r as i32), Some(r));
        }
        assert_eq!(ConnectionCloseReason::from_c(8), None);
        assert_eq!(ConnectionCloseReason::from_c(-1), None);
    }
}
