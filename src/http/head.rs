//! The parsed request head, the parsers' common result: spans into the
//! request buffer, the body framing, and the methods this server knows.
//! Shared by the full parser (request.rs) and its fast path (fast_head.rs).

/// A byte range `start..start+len` in the request buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub len: u32,
}

impl Span {
    pub(super) fn of(base: &[u8], part: &[u8]) -> Span {
        Span {
            start: (part.as_ptr() as usize - base.as_ptr() as usize) as u32,
            len: part.len() as u32,
        }
    }
    pub fn end(self) -> usize {
        self.start as usize + self.len as usize
    }
    pub fn slice(self, buf: &[u8]) -> &[u8] {
        &buf[self.start as usize..self.end()]
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeaderSpan {
    pub name: Span,
    pub value: Span,
}

/// How the request body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// A complete, valid request head.
#[derive(Clone, Copy, Debug)]
pub struct Head {
    /// Bytes up to and including the blank line.
    pub len: usize,
    pub method: Span,
    /// The target's path (origin-form), without the query.
    pub path: Span,
    /// The query without its '?' (len 0 when absent).
    pub query: Span,
    /// Where the '?' is, so it can be replaced by a NUL in place.
    pub query_mark: Option<u32>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub framing: Framing,
    pub keep_alive: bool,
    pub expect_continue: bool,
    pub is_head_method: bool,
}

/// A placeholder for a parser to write into. (A trait impl, not an
/// associated const: cbindgen would declare the types of a public const.)
impl Default for Head {
    fn default() -> Head {
        Head {
            len: 0,
            method: Span { start: 0, len: 0 },
            path: Span { start: 0, len: 0 },
            query: Span { start: 0, len: 0 },
            query_mark: None,
            minor_version: 1,
            framing: Framing::None,
            keep_alive: true,
            expect_continue: false,
            is_head_method: false,
        }
    }
}

/// What `parse_head_into` found; a complete head is in the caller's `Head`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadStatus {
    Partial,
    Complete,
    Error(u16),
}

#[derive(Debug)]
pub enum Parsed {
    /// More bytes are needed; the prefix seen so far is within limits.
    Partial,
    Complete(Head),
    /// The request is refused with this status; the connection closes after it.
    Error(u16),
}

/// The methods this server knows (anything else is a 501). A `match`
/// rather than a list search: the compiler switches on the length first,
/// then compares once (this runs on every request).
pub(super) fn known_method(method: &[u8]) -> bool {
    matches!(
        method,
        b"GET" | b"HEAD" | b"POST" | b"PUT" | b"DELETE" | b"OPTIONS" | b"TRACE" | b"PATCH"
    )
}
