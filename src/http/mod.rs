//! HTTP/1.1 framing: request heads (httparse plus RFC 9112 checks),
//! chunked request bodies decoded in place, response heads, the cached Date.
//! Nothing here touches a socket, so all of it can be driven from memory.

pub mod chunked;
pub mod date;
pub mod request;
pub mod response;
