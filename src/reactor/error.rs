//! The reactor's errors and close reasons, in Rust terms. The C boundary
//! maps each to its fixed C value in one place (`ffi/error.rs`).

use std::ffi::CStr;
use std::io;

/// Why a call on the loop or on a response failed.
#[derive(Debug)]
pub enum Error {
    /// An argument is out of range.
    Invalid,
    /// The client of this response is gone.
    Closed,
    /// The call does not fit the object's state (e.g. answered twice).
    State,
    /// The output queue is above its high-water mark; nothing was queued.
    WouldBlock,
    /// Not allowed from inside a callback.
    Busy,
    /// A header name or value is not valid HTTP.
    Header,
    /// Too large for its limit.
    TooLarge,
    /// The request does not ask for this protocol upgrade (HTTP/1.1, an
    /// `Upgrade` header listing it, `Connection: upgrade`).
    NotUpgrade,
    /// An upgrade was asked for by a request with a body.
    UpgradeBody,
    /// A system call failed while setting up.
    Io(io::Error),
    /// A file response's descriptor is not a regular file.
    NotFile,
    /// A file response's offset and length reach beyond the file's end
    /// (or the file was shorter than `fstat` said when it was read).
    FileRange,
    /// `fstat`, `read` or `dup` of a file response's descriptor failed.
    FileIo(io::Error),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

/// Why a connection (or a pull stream) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The response (or stream) was written completely.
    Completed,
    /// The peer finished sending (FIN) and was answered, or closed idle.
    PeerClosed,
    /// The peer reset the connection (RST, ECONNRESET, EPIPE).
    Reset,
    /// A header, body, idle, send or linger timeout expired.
    Timeout,
    /// Stop or Destroy.
    Shutdown,
    /// A local failure (unexpected errno, producer error).
    Error,
    /// An idle keep-alive connection closed to make room at the limit.
    Limit,
    /// A malformed or over-limit request answered with 4xx/5xx.
    Protocol,
}

impl CloseReason {
    /// Every reason, in the order of their stable numbers.
    pub const ALL: [CloseReason; 8] = [
        CloseReason::Completed,
        CloseReason::PeerClosed,
        CloseReason::Reset,
        CloseReason::Timeout,
        CloseReason::Shutdown,
        CloseReason::Error,
        CloseReason::Limit,
        CloseReason::Protocol,
    ];

    /// The stable number of this reason (its index in `ALL`), which the C
    /// boundary publishes.
    pub fn number(self) -> i32 {
        self as i32
    }

    /// Lower-case name, as in logs ("peer_closed").
    pub fn name(self) -> &'static str {
        self.name_c().to_str().expect("names are ASCII")
    }

    /// The name, NUL-terminated (the C boundary hands it out as is).
    pub fn name_c(self) -> &'static CStr {
        match self {
            CloseReason::Completed => c"completed",
            CloseReason::PeerClosed => c"peer_closed",
            CloseReason::Reset => c"reset",
            CloseReason::Timeout => c"timeout",
            CloseReason::Shutdown => c"shutdown",
            CloseReason::Error => c"error",
            CloseReason::Limit => c"limit",
            CloseReason::Protocol => c"protocol",
        }
    }
}
