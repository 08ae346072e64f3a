//! HTTP/1.1 framing: request heads (httparse plus RFC 9112 checks),
//! chunked request bodies decoded in place, response heads, the cached Date.
//! Nothing here touches a socket, so all of it can be driven from memory.

pub mod chunked;
pub mod date;
pub mod request;
pub mod response;

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
