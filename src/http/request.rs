//! Request heads: httparse does the tokenising; this file adds the RFC 9112
//! framing rules httparse leaves to its caller and maps every failure to
//! the status code the client gets.
//!
//! Results are offsets into the caller's buffer, not borrowed slices, so
//! the connection can keep its buffer and re-use the parse later.

use super::{ParseLimits, MAX_HEADERS_CAP};

/// A byte range `start..start+len` in the request buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub len: u32,
}

impl Span {
    fn of(base: &[u8], part: &[u8]) -> Span {
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

#[derive(Debug)]
pub enum Parsed {
    /// More bytes are needed; the prefix seen so far is within limits.
    Partial,
    Complete(Head),
    /// The request is refused with this status; the connection closes after it.
    Error(u16),
}

const KNOWN_METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH",
];

/// Parses the head at the start of `buf`, filling `headers` with spans.
pub fn parse_head(buf: &[u8], limits: &ParseLimits, headers: &mut Vec<HeaderSpan>) -> Parsed {
    headers.clear();
    // Leading empty lines before a request line are ignored (RFC 9112 2.2),
    // but only a few, so they cannot be used to stall the parser.
    // The limit counts the request line without its CRLF.
    let line_end = buf.iter().position(|&b| b == b'\n');
    let line_len = match line_end {
        Some(end) => end - usize::from(end > 0 && buf[end - 1] == b'\r'),
        None => buf.len() - usize::from(buf.last() == Some(&b'\r')),
    };
    if line_len > limits.max_request_line {
        return Parsed::Error(414);
    }
    // Uninitialised: filling 128 empty headers per request would cost more
    // than parsing a typical request.
    let mut raw =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
    let mut req = httparse::Request::new(&mut []);
    let status = match req.parse_with_uninit_headers(buf, &mut raw[..limits.max_headers]) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Error(431),
        // httparse rejects a version as soon as it sees a byte that cannot
        // be "HTTP/1.x", even before the line is complete: decide only on
        // a complete request line, so the answer never depends on how the
        // bytes were split (the line-length limit bounds the wait).
        Err(httparse::Error::Version) if line_end.is_none() => return Parsed::Partial,
        Err(httparse::Error::Version) => return Parsed::Error(version_error_status(buf)),
        Err(_) => return Parsed::Error(400),
    };
    let head_len = match status {
        httparse::Status::Partial => {
            if buf.len() > limits.max_header_bytes {
                return Parsed::Error(431);
            }
            return Parsed::Partial;
        }
        httparse::Status::Complete(n) => n,
    };
    if head_len > limits.max_header_bytes {
        return Parsed::Error(431);
    }
    if !strict_line_endings(&buf[..head_len]) {
        return Parsed::Error(400);
    }
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("");
    let minor_version = req.version.unwrap_or(1);
    if minor_version > 1 {
        return Parsed::Error(505);
    }
    if !KNOWN_METHODS.contains(&method) {
        return Parsed::Error(501);
    }

    // Split the target into path and query.
    let target_bytes = target.as_bytes();
    let path_bytes =
        if target_bytes.first() == Some(&b'/') || (method == "OPTIONS" && target_bytes == b"*") {
            target_bytes
        } else if let Some(after_scheme) = strip_scheme(target_bytes) {
            // absolute-form: the path starts at the first '/' after the authority.
            match after_scheme.iter().position(|&b| b == b'/' || b == b'?') {
                Some(p) => &after_scheme[p..],
                // "http://host" means "/" (RFC 9110 4.2.3): an empty path,
                // which Request_Path reports as "/".
                None => &after_scheme[after_scheme.len()..],
            }
        } else {
            return Parsed::Error(400);
        };
    let (path, query, query_mark) = match path_bytes.iter().position(|&b| b == b'?') {
        Some(q) => (
            Span::of(buf, &path_bytes[..q]),
            Span::of(buf, &path_bytes[q + 1..]),
            Some(Span::of(buf, &path_bytes[q..q + 1]).start),
        ),
        None => (Span::of(buf, path_bytes), Span::default(), None),
    };

    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked_last = false;
    let mut unknown_coding = false;
    let mut hosts = 0;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        headers.push(HeaderSpan {
            name: Span::of(buf, h.name.as_bytes()),
            value: Span::of(buf, h.value),
        });
        let name = h.name;
        let value = h.value;
        if name.eq_ignore_ascii_case("content-length") {
            let Some(n) = parse_content_length(value) else {
                return Parsed::Error(400);
            };
            if content_length.is_some_and(|prev| prev != n) {
                return Parsed::Error(400);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            for coding in value.split(|&b| b == b',') {
                let coding = trim_ows(coding);
                if coding.is_empty() {
                    continue;
                }
                if coding.eq_ignore_ascii_case(b"chunked") {
                    if chunked_last {
                        // chunked applied twice
                        return Parsed::Error(400);
                    }
                    chunked_last = true;
                } else {
                    chunked_last = false;
                    unknown_coding = true;
                }
            }
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            if !valid_host(value) {
                return Parsed::Error(400);
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',') {
                let token = trim_ows(token);
                if token.eq_ignore_ascii_case(b"close") {
                    conn_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    conn_keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if trim_ows(value).eq_ignore_ascii_case(b"100-continue") {
                expect_continue = true;
            } else {
                return Parsed::Error(417);
            }
        }
    }
    if (minor_version == 1 && hosts != 1) || hosts > 1 {
        return Parsed::Error(400);
    }
    let framing = if transfer_encoding {
        if content_length.is_some() || minor_version == 0 {
            // Both framings at once is the classic smuggling vector.
            return Parsed::Error(400);
        }
        if unknown_coding {
            return Parsed::Error(501);
        }
        if !chunked_last {
            return Parsed::Error(400);
        }
        Framing::Chunked
    } else {
        match content_length {
            Some(0) | None => Framing::None,
            Some(n) => Framing::Length(n),
        }
    };
    if let Framing::Length(n) = framing {
        if n > limits.max_body_bytes as u64 {
            return Parsed::Error(413);
        }
    }
    let keep_alive = if minor_version == 1 {
        !conn_close
    } else {
        conn_keep_alive && !conn_close
    };
    Parsed::Complete(Head {
        len: head_len,
        method: Span::of(buf, method.as_bytes()),
        path,
        query,
        query_mark,
        minor_version,
        framing,
        keep_alive,
        expect_continue: expect_continue && minor_version == 1,
        is_head_method: method == "HEAD",
    })
}

/// httparse reports any malformed request line whose third part is not
/// HTTP/1.x as a version error. Only a well-formed line asking for another
/// version (`HTTP/d.d`) is a 505; anything else (a space inside the target,
/// garbage) is a 400.
fn version_error_status(buf: &[u8]) -> u16 {
    let end = buf
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(buf.len());
    let parts: Vec<&[u8]> = buf[..end].split(|&b| b == b' ').collect();
    match parts.as_slice() {
        [_, _, v]
            if v.len() == 8
                && v.starts_with(b"HTTP/")
                && v[5].is_ascii_digit()
                && v[6] == b'.'
                && v[7].is_ascii_digit() =>
        {
            505
        }
        _ => 400,
    }
}

/// A Host value is `uri-host [ ":" port ]` (RFC 9112 3.2): no spaces, no
/// list of hosts, only the characters a reg-name, an IP literal or a port
/// can hold. (A table: this runs for every request.)
fn valid_host(value: &[u8]) -> bool {
    static HOST_CHARS: [bool; 256] = super::alnum_and(b"-._~!$&'()*+;=:[]%");
    value.iter().all(|&b| HOST_CHARS[b as usize])
}

fn strip_scheme(target: &[u8]) -> Option<&[u8]> {
    for scheme in [&b"http://"[..], &b"https://"[..]] {
        if target.len() > scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(&target[scheme.len()..]);
        }
    }
    None
}

/// Every LF must follow a CR and every CR must precede an LF: httparse
/// tolerates bare LF, which lets a front proxy and this server disagree on
/// where a header ends.
fn strict_line_endings(head: &[u8]) -> bool {
    // Every CR is followed by LF and every LF follows a CR: compare each
    // byte with the next one. Written as a fold with no early exit so the
    // compiler vectorises it (this runs on every request).
    let (Some(&first), Some(&last)) = (head.first(), head.last()) else {
        return true;
    };
    let mismatches = head.iter().zip(&head[1..]).fold(0u8, |acc, (&a, &b)| {
        acc | u8::from((a == b'\r') != (b == b'\n'))
    });
    mismatches == 0 && first != b'\n' && last != b'\r'
}

/// 1*DIGIT with no sign, no spaces and no overflow.
fn parse_content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in value {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + (b - b'0') as u64;
    }
    Some(n)
}

fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ' && b != b'\t');
    let Some(start) = start else {
        return &s[s.len()..];
    };
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .unwrap_or(start);
    &s[start..=end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Parsed {
        let limits = ParseLimits::default();
        let mut headers = Vec::new();
        parse_head(raw, &limits, &mut headers)
    }

    fn status(raw: &[u8]) -> u16 {
        match parse(raw) {
            Parsed::Error(s) => s,
            Parsed::Complete(_) => 200,
            Parsed::Partial => 0,
        }
    }

    #[test]
    fn framing_rules() {
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), 400, "missing Host");
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.0\r\n\r\n"), 200);
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"),
            501
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n"),
            501
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"),
            400
        );
        assert_eq!(status(b"GET / HTTP/1.1\nHost: a\r\n\r\n"), 400, "bare LF");
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: a\r\nX-Long-Header-Name: a\rb\r\n\r\n"),
            400,
            "bare CR"
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: a\r\nX-Long-Header-Name: abcdefgh\r\n\n"),
            400,
            "bare LF at the end"
        );
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/9.9\r\nHost: a\r\n\r\n"), 505);
        assert_eq!(status(b"BREW / HTTP/1.1\r\nHost: a\r\n\r\n"), 501);
        assert_eq!(status(b"GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: x\r\n\r\n"),
            417
        );
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\n"), 0);
        let mut long = b"GET /".to_vec();
        long.extend(std::iter::repeat_n(b'a', 9000));
        assert_eq!(status(&long), 414);
    }

    #[test]
    fn splits_path_and_query() {
        let raw = b"GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
        let Parsed::Complete(head) = parse(raw) else {
            panic!("expected complete")
        };
        assert_eq!(head.path.slice(raw), b"/a/b");
        assert_eq!(head.query.slice(raw), b"x=1");
        assert!(!head.keep_alive);
        assert_eq!(head.len, raw.len());
    }
}
