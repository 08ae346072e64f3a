//! HTTP/1.1 framing: request heads (a one-pass fast path for the common
//! shape, else httparse plus RFC 9112 checks),
//! chunked request bodies decoded in place, response heads, the cached Date,
//! and for file responses `Range` and the conditional headers.
//! Nothing here touches a socket, so all of it can be driven from memory.

pub mod chunked;
pub mod conditional;
pub mod cookie;
pub mod date;
pub mod fast_head;
pub mod forwarded;
mod head;
pub mod path;
pub mod percent;
pub mod query;
pub mod range;
pub mod request;
pub mod response;
mod scan;
pub mod uri;

/// Most headers a request may carry, whatever the configuration says: the
/// parser uses a fixed array of this size on the stack (no allocation per
/// request).
pub const MAX_HEADERS_CAP: usize = 256;

/// The parser's own limits (a subset of the server's configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseLimits {
    /// Longest request line, CRLF excluded; longer gets 414.
    pub max_request_line: usize,
    /// Largest header section, request line included; larger gets 431.
    pub max_header_bytes: usize,
    /// Most header fields (at most `MAX_HEADERS_CAP`); more gets 431.
    pub max_headers: usize,
    /// Largest body a Content-Length may announce; larger gets 413.
    pub max_body_bytes: usize,
    /// Every client connection comes from a trusted gateway that secured
    /// the client's own connection (TLS terminated in front): a request for
    /// an `https` target URI is then not misdirected (RFC 9110 7.4).
    /// Default false: such a request gets 421.
    pub trusted_gateway: bool,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_request_line: 8192,
            max_header_bytes: 16 * 1024,
            max_headers: 128,
            max_body_bytes: 1024 * 1024,
            trusted_gateway: false,
        }
    }
}

/// A byte-class table: ASCII letters and digits plus `extra`. Built at
/// compile time, so a per-byte check on the hot path is one load.
pub(crate) const fn alnum_and(extra: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
}

/// Why a request helper (`path`, `query`, `cookie`, `forwarded`,
/// `uri::host_parts`) gives no result. The C boundary maps each to a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldError {
    /// A '%' not followed by two hex digits, or an escape decoding to a
    /// byte the helper never outputs: `%00` anywhere, `%2F` in a path.
    BadEscape,
    /// A `..` segment would climb above the root of the path.
    AboveRoot,
    /// No such parameter, cookie or header.
    NotFound,
    /// The field's syntax is invalid (not a path, a NUL byte in text to
    /// decode, a cookie value with a control byte, a port over 65535, an
    /// address that is not an IP).
    Malformed,
    /// The result does not fit the output: it needs this many bytes
    /// (without a terminating NUL).
    TooLarge(usize),
}
