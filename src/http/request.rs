//! Request heads: httparse does the tokenising; this file adds the RFC 9112
//! framing rules httparse leaves to its caller and maps every failure to
//! the status code the client gets. `parse_head` first tries the one-pass
//! fast path (fast_head.rs), which answers only for heads it is sure of,
//! exactly as this full parser would.
//!
//! Results are offsets into the caller's buffer, not borrowed slices, so
//! the connection can keep its buffer and re-use the parse later.

use super::fast_head;
use super::head::known_method;
pub use super::head::{Framing, Head, HeadStatus, HeaderSpan, Parsed, Span};
use super::uri::{classify_target, valid_host, Scheme};
use super::{ParseLimits, MAX_HEADERS_CAP};

/// Parses the head at the start of `buf`, filling `headers` with spans.
/// Inlined into its caller (hot path): the result, a large value, is then
/// built in place instead of copied once more on the way out.
#[inline]
pub fn parse_head(buf: &[u8], limits: &ParseLimits, headers: &mut Vec<HeaderSpan>) -> Parsed {
    // The common shape in one pass (fast_head.rs); when it is not sure,
    // the full parser below decides.
    if let Some(head) = fast_head::parse(buf, limits, headers) {
        return Parsed::Complete(head);
    }
    parse_head_full(buf, limits, headers)
}

/// `parse_head` writing a complete head into `head`: the fast path fills
/// the caller's `Head` in place (no copy of it on the hot path); the full
/// parser's result is copied in.
#[inline]
pub fn parse_head_into(
    buf: &[u8],
    limits: &ParseLimits,
    headers: &mut Vec<HeaderSpan>,
    head: &mut Head,
) -> HeadStatus {
    if fast_head::parse_into(buf, limits, headers, head) {
        return HeadStatus::Complete;
    }
    match parse_head_full(buf, limits, headers) {
        Parsed::Complete(h) => {
            *head = h;
            HeadStatus::Complete
        }
        Parsed::Partial => HeadStatus::Partial,
        Parsed::Error(status) => HeadStatus::Error(status),
    }
}

/// The full parser alone: httparse, then every rule below (`parse_head`
/// without the fast path; the tests and the fuzz target compare the two).
#[inline]
pub fn parse_head_full(buf: &[u8], limits: &ParseLimits, headers: &mut Vec<HeaderSpan>) -> Parsed {
    match parse_head_inner(buf, limits, headers) {
        Inner::Done(parsed) => parsed,
        Inner::HigherMinor { digit_at } => {
            // "HTTP/1.x" with x > 1: RFC 9110 2.5 says to process it as the
            // highest 1.x we implement, 1.1. httparse knows only 1.0 and
            // 1.1, so a copy of the head with the digit set to 1 is parsed
            // instead (at most one byte past max_header_bytes: enough to
            // tell a complete head from an oversized one). The results are
            // offsets, as valid in `buf` as in the copy. A rare request, so
            // the copy costs the common path nothing.
            let mut copy = buf[..buf.len().min(limits.max_header_bytes + 1)].to_vec();
            // Leading empty lines (whose length the 414 check measured)
            // can put the version past the copy: the head is then over
            // max_header_bytes.
            let Some(digit) = copy.get_mut(digit_at) else {
                return Parsed::Error(431);
            };
            *digit = b'1';
            match parse_head_inner(&copy, limits, headers) {
                Inner::Done(parsed) => parsed,
                Inner::HigherMinor { .. } => Parsed::Error(400),
            }
        }
    }
}

enum Inner {
    Done(Parsed),
    /// A complete request line whose version is `HTTP/1.x` with x > 1;
    /// the digit x is at `digit_at`.
    HigherMinor {
        digit_at: usize,
    },
}

impl From<Parsed> for Inner {
    fn from(p: Parsed) -> Inner {
        Inner::Done(p)
    }
}

fn parse_head_inner(buf: &[u8], limits: &ParseLimits, headers: &mut Vec<HeaderSpan>) -> Inner {
    headers.clear();
    // Leading empty lines before a request line are ignored (RFC 9112 2.2),
    // but only a few, so they cannot be used to stall the parser.
    // The limit counts the request line without its CRLF.
    // Hot path: the line is no longer than the buffer, so a buffer within
    // the limit needs no scan for the line's end.
    if buf.len() > limits.max_request_line {
        let line_end = buf.iter().position(|&b| b == b'\n');
        let line_len = match line_end {
            Some(end) => end - usize::from(end > 0 && buf[end - 1] == b'\r'),
            None => buf.len() - usize::from(buf.last() == Some(&b'\r')),
        };
        if line_len > limits.max_request_line {
            return Parsed::Error(414).into();
        }
    }
    // Uninitialised: filling 256 empty headers per request would cost more
    // than parsing a typical request.
    let mut raw =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
    let mut req = httparse::Request::new(&mut []);
    let status = match req.parse_with_uninit_headers(buf, &mut raw[..limits.max_headers]) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Error(431).into(),
        // httparse rejects a version as soon as it sees a byte that cannot
        // be "HTTP/1.x", even before the line is complete: decide only on
        // a complete request line, so the answer never depends on how the
        // bytes were split (the line-length limit bounds the wait).
        Err(httparse::Error::Version) => {
            return match version_error(buf) {
                VersionError::HigherMinor(digit_at) => Inner::HigherMinor { digit_at },
                VersionError::Status(s) => Parsed::Error(s).into(),
                VersionError::Incomplete => Parsed::Partial.into(),
            }
        }
        Err(_) => return Parsed::Error(400).into(),
    };
    let head_len = match status {
        httparse::Status::Partial => {
            if buf.len() > limits.max_header_bytes {
                return Parsed::Error(431).into();
            }
            return Parsed::Partial.into();
        }
        httparse::Status::Complete(n) => n,
    };
    if head_len > limits.max_header_bytes {
        return Parsed::Error(431).into();
    }
    if !strict_line_endings(&buf[..head_len]) {
        return Parsed::Error(400).into();
    }
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("");
    let minor_version = req.version.unwrap_or(1);
    if minor_version > 1 {
        return Parsed::Error(505).into();
    }
    if !known_method(method.as_bytes()) {
        return Parsed::Error(501).into();
    }

    // The request-target (RFC 9112 3.2): its form, its syntax, and the
    // path and query the application sees.
    let target = match classify_target(method, target.as_bytes()) {
        Ok(t) => t,
        Err(status) => return Parsed::Error(status).into(),
    };
    let path_bytes = target.path_and_query;
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
    let mut host_value: &[u8] = b"";
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
        // Hot path: only names of these five lengths can be one of the
        // headers checked below, so any other name costs one comparison
        // (the chain of case-insensitive comparisons is unchanged).
        if !matches!(name.len(), 4 | 6 | 10 | 14 | 17) {
            continue;
        }
        if name.eq_ignore_ascii_case("content-length") {
            let Some(n) = parse_content_length(value) else {
                return Parsed::Error(400).into();
            };
            if content_length.is_some_and(|prev| prev != n) {
                return Parsed::Error(400).into();
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
                        return Parsed::Error(400).into();
                    }
                    chunked_last = true;
                } else {
                    chunked_last = false;
                    unknown_coding = true;
                }
            }
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            host_value = value;
            if !valid_host(value) {
                return Parsed::Error(400).into();
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
                return Parsed::Error(417).into();
            }
        }
    }
    if (minor_version == 1 && hosts != 1) || hosts > 1 {
        return Parsed::Error(400).into();
    }
    // absolute-form: the target's authority is the one that counts (RFC
    // 9112 3.2.2) and the client must have sent it as Host too (RFC 9112
    // 3.2). The application reads Host, so a Host that names another
    // authority is refused rather than silently overruled.
    if let Some(authority) = target.authority {
        if hosts == 1 && !host_value.eq_ignore_ascii_case(authority) {
            return Parsed::Error(400).into();
        }
    }
    let framing = if transfer_encoding {
        if content_length.is_some() || minor_version == 0 {
            // Both framings at once is the classic smuggling vector.
            return Parsed::Error(400).into();
        }
        if !chunked_last {
            // RFC 9112 6.3 (4): the body length cannot be determined; a
            // MUST, so it wins over 6.1's SHOULD (501 for an unknown coding).
            return Parsed::Error(400).into();
        }
        if unknown_coding {
            return Parsed::Error(501).into();
        }
        Framing::Chunked
    } else {
        match content_length {
            Some(0) | None => Framing::None,
            Some(n) => Framing::Length(n),
        }
    };
    // A target this server is not the origin for (RFC 9110 7.4): another
    // scheme, or https over a connection the core did not see secured.
    if target.scheme == Scheme::Other || (target.scheme == Scheme::Https && !limits.trusted_gateway)
    {
        return Parsed::Error(421).into();
    }
    if let Framing::Length(n) = framing {
        if n > limits.max_body_bytes as u64 {
            return Parsed::Error(413).into();
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
    .into()
}

enum VersionError {
    /// The request line is not complete yet: httparse rejects a version as
    /// soon as it sees a byte that cannot be "HTTP/1.x", but the answer is
    /// decided only on a complete line, so that it never depends on how the
    /// bytes were split (the line-length limit bounds the wait).
    Incomplete,
    Status(u16),
    /// `HTTP/1.x`, x > 1, at this offset.
    HigherMinor(usize),
}

/// httparse reports any malformed request line whose third part is not
/// HTTP/1.x as a version error. Only a well-formed line asking for another
/// version (`HTTP/d.d`) is a 505, or, for 1.2 to 1.9, a 1.1 request;
/// anything else (a space inside the target, garbage) is a 400.
fn version_error(buf: &[u8]) -> VersionError {
    // The empty lines httparse skips before the request line (RFC 9112 2.2).
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let Some(end) = buf[start..]
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .map(|e| start + e)
    else {
        return VersionError::Incomplete;
    };
    let parts: Vec<&[u8]> = buf[start..end].split(|&b| b == b' ').collect();
    match parts.as_slice() {
        [_, _, v]
            if v.len() == 8
                && v.starts_with(b"HTTP/")
                && v[5].is_ascii_digit()
                && v[6] == b'.'
                && v[7].is_ascii_digit() =>
        {
            if v[5] == b'1' {
                VersionError::HigherMinor(end - 1)
            } else {
                VersionError::Status(505)
            }
        }
        _ => VersionError::Status(400),
    }
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

/// Content-Length = 1*DIGIT, no sign and no spaces. Any such value is valid
/// (RFC 9110 8.6), however large: one past u64 saturates, and is then
/// refused by the body limit (413), not as malformed.
fn parse_content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in value {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.saturating_mul(10).saturating_add((b - b'0') as u64);
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
            400,
            "chunked not final"
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            501
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n"),
            400
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
        assert_eq!(status(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 200);
        assert_eq!(status(b"GET / HTTP/1.2\r\nHost: a\r\n"), 0);
        assert_eq!(status(b"\r\nGET / HTTP/1.2\r\nHost: a\r\n\r\n"), 200);
        assert_eq!(status(b"\r\nGET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
        assert_eq!(status(b"\nGET / HTTP/1.2\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status(b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), 421);
        assert_eq!(status(b"GET /#f HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a:b:c\r\n\r\n"), 400);
        assert_eq!(status(b"GET https://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), 421);
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
    fn host_syntax() {
        for ok in [
            &b""[..],
            b"a",
            b"a:",
            b"a:80",
            b":80",
            b"1.2.3.4:8",
            b"[::1]",
            b"[::1]:80",
            b"[v7.a:b]",
            b"a%20b",
            b"a,b;c=d",
        ] {
            assert!(valid_host(ok), "{}", ok.escape_ascii());
        }
        for bad in [
            &b"a:b"[..],
            b"a:1:2",
            b"[::1",
            b"::1",
            b"[::1]x",
            b"[x]",
            b"[v.a]",
            b"a]",
            b"a%2",
            b"a%zz",
            b"u@a",
            b"a/b",
            b"a b",
            b"a\xff",
        ] {
            assert!(!valid_host(bad), "{}", bad.escape_ascii());
        }
    }

    #[test]
    fn higher_minor_spans() {
        let raw = b"GET /x?q HTTP/1.7\r\nHost: h\r\n\r\n";
        let Parsed::Complete(head) = parse(raw) else {
            panic!("expected complete")
        };
        assert_eq!(head.minor_version, 1);
        assert!(head.keep_alive);
        assert_eq!(head.path.slice(raw), b"/x");
        assert_eq!(head.query.slice(raw), b"q");
        assert_eq!(head.len, raw.len());
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
