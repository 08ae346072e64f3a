//! The conformance table, shared by tests/protocol/conformance.rs (status, close and
//! an h11 check per case), tests/protocol/split_anywhere.rs (every valid case split
//! at every byte and at random) and tests/protocol/fuzz_replay.rs / fuzz/seeds/ (the
//! valid requests seed the fuzzers).
//!
//! Each case is the exact bytes a client sends, optionally cut into the
//! recv-sized pieces it arrives in (an `Expect: 100-continue` head and its
//! body), the limits the server runs with, and what a strict RFC 9112
//! server answers: the status of every response in order (with its 1xx
//! responses and, where it matters, its body) and whether the connection
//! must be closed afterwards. Error statuses are always followed by a close.
#![allow(dead_code)]

use connection_core::config::Limits;
use connection_core::harness::{run_exchange, Outcome};

/// One response the server must send.
#[derive(Clone, Debug)]
pub struct Resp {
    pub status: u16,
    /// Interim responses sent before this one (e.g. [100]).
    pub info: Vec<u16>,
    /// The exact body, when the case pins it.
    pub body: Option<Vec<u8>>,
    /// The body length, when only that is pinned.
    pub len: Option<usize>,
    /// Header lines ("Name: value") the head must contain.
    pub has: Vec<&'static str>,
    /// Header names the head must not contain.
    pub lacks: Vec<&'static str>,
}

#[derive(Clone, Debug)]
pub struct Case {
    /// Unique, no spaces (used as a file name and in the h11 records).
    pub name: &'static str,
    /// What the rule is and where it comes from.
    pub rule: &'static str,
    pub request: Vec<u8>,
    /// Offsets where the request is cut into separate recv pieces
    /// (empty = one piece).
    pub cuts: Vec<usize>,
    pub limits: Limits,
    /// Request method of each response, in order (HEAD frames differently).
    pub methods: Vec<&'static str>,
    pub responses: Vec<Resp>,
    /// The server must close (or half-close) after the last response.
    pub close: bool,
}

impl Case {
    /// Whether every response is one the application (not the library's
    /// error path) produced: such cases are "valid requests".
    pub fn is_valid(&self) -> bool {
        self.responses
            .iter()
            .all(|r| r.status < 400 || r.status == 404)
    }

    /// The request cut at `cuts`.
    pub fn pieces(&self) -> Vec<&[u8]> {
        split_at_offsets(&self.request, &self.cuts)
    }

    pub fn expects_continue(&self) -> bool {
        self.responses.iter().any(|r| r.info.contains(&100))
    }

    pub fn run(&self, send_cap: usize) -> Outcome {
        run_exchange(self.limits.clone(), &self.pieces(), false, send_cap)
    }

    pub fn run_pieces(&self, pieces: &[&[u8]], fin: bool, send_cap: usize) -> Outcome {
        run_exchange(self.limits.clone(), pieces, fin, send_cap)
    }
}

pub fn split_at_offsets<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut at = 0;
    for &cut in cuts {
        if cut > at && cut < bytes.len() {
            pieces.push(&bytes[at..cut]);
            at = cut;
        }
    }
    pieces.push(&bytes[at..]);
    pieces
}

// ----- builders ------------------------------------------------------------

pub fn ok(body: &[u8]) -> Resp {
    Resp {
        status: 200,
        info: vec![],
        body: Some(body.to_vec()),
        len: None,
        has: vec![],
        lacks: vec![],
    }
}

pub fn status(status: u16) -> Resp {
    Resp {
        status,
        info: vec![],
        body: None,
        len: None,
        has: vec![],
        lacks: vec![],
    }
}

impl Resp {
    pub fn with(mut self, header: &'static str) -> Resp {
        self.has.push(header);
        self
    }
    pub fn without(mut self, name: &'static str) -> Resp {
        self.lacks.push(name);
        self
    }
    pub fn after_continue(mut self) -> Resp {
        self.info.push(100);
        self
    }
    pub fn body_len(mut self, n: usize) -> Resp {
        self.body = None;
        self.len = Some(n);
        self
    }
}

const HELLO: &[u8] = b"Hello, World!";
const NOT_FOUND: &[u8] = b"Not Found";

fn limits(edit: impl FnOnce(&mut Limits)) -> Limits {
    let mut l = Limits::default();
    edit(&mut l);
    l
}

struct B {
    case: Case,
}

fn case(name: &'static str, rule: &'static str, request: impl AsRef<[u8]>) -> B {
    B {
        case: Case {
            name,
            rule,
            request: request.as_ref().to_vec(),
            cuts: vec![],
            limits: Limits::default(),
            methods: vec![],
            responses: vec![],
            close: false,
        },
    }
}

impl B {
    fn resp(mut self, method: &'static str, r: Resp) -> B {
        self.case.methods.push(method);
        self.case.responses.push(r);
        self
    }
    fn get(self, r: Resp) -> B {
        self.resp("GET", r)
    }
    /// The library refuses the request with `status` and closes.
    fn reject(self, status: u16) -> Case {
        self.resp("GET", self::status(status).with("Connection: close"))
            .close()
    }
    fn close(mut self) -> Case {
        self.case.close = true;
        self.case
    }
    fn keep(self) -> Case {
        self.case
    }
    fn cut(mut self, at: usize) -> B {
        self.case.cuts.push(at);
        self
    }
    /// Cut right after the head (the first blank line).
    fn cut_after_head(self) -> B {
        let at = find(&self.case.request, b"\r\n\r\n").expect("a head") + 4;
        self.cut(at)
    }
    fn limits(mut self, l: Limits) -> B {
        self.case.limits = l;
        self
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn repeat(b: u8, n: usize) -> Vec<u8> {
    vec![b; n]
}

/// `n` header lines `X-Hn: v`.
fn headers(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| format!("X-H{i}: v\r\n").into_bytes())
        .collect()
}

/// A GET whose head is exactly `total` bytes, padded with one header.
fn get_head_of_len(total: usize) -> Vec<u8> {
    let base = b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: \r\n\r\n".len();
    assert!(total >= base);
    cat(&[
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ",
        &repeat(b'p', total - base),
        b"\r\n\r\n",
    ])
}

/// A request line of exactly `len` bytes (CRLF excluded): GET /aaa... HTTP/1.1
fn request_line_of_len(len: usize) -> Vec<u8> {
    let fixed = b"GET / HTTP/1.1".len();
    cat(&[
        b"GET /",
        &repeat(b'a', len - fixed),
        b" HTTP/1.1\r\nHost: a\r\n\r\n",
    ])
}

const SMALL_BODY: usize = 16;
fn small_body() -> Limits {
    limits(|l| l.max_body_bytes = SMALL_BODY)
}

// ----- the table -------------------------------------------------------------

/// Requests a strict server accepts (the handler answers them).
pub fn valid_cases() -> Vec<Case> {
    let chunked_body = b"4;ext=1\r\nWiki\r\n5;a=b;c=\"d;e\"\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: y\r\nX-Other: z\r\n\r\n";
    vec![
        case("get_root", "GET, HTTP/1.1 keep-alive by default", "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .get(ok(HELLO).with("Content-Length: 13").with("Content-Type: text/plain").without("Connection").without("Server"))
            .keep(),
        case("head_root", "RFC 9110 9.3.2: HEAD gets the GET headers (Content-Length included) and no body", "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
            .resp("HEAD", ok(b"").with("Content-Length: 13"))
            .keep(),
        case("head_chunked", "HEAD of a chunked response: header, no body", "HEAD /chunked HTTP/1.1\r\nHost: a\r\n\r\n")
            .resp("HEAD", ok(b"").with("Transfer-Encoding: chunked"))
            .keep(),
        case("head_stream", "HEAD of a pull stream: no body", "HEAD /stream?size=5000 HTTP/1.1\r\nHost: a\r\n\r\n")
            .resp("HEAD", ok(b""))
            .keep(),
        case("get_chunked", "chunked response", "GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n")
            .get(ok(b"one two three").with("Transfer-Encoding: chunked"))
            .keep(),
        case("get_stream", "pull-stream response", "GET /stream?size=5000 HTTP/1.1\r\nHost: a\r\n\r\n")
            .get(status(200).body_len(5000).with("Transfer-Encoding: chunked"))
            .keep(),
        case("post_content_length", "RFC 9112 6.2: body by Content-Length", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
            .resp("POST", ok(b"hello"))
            .keep(),
        case("post_content_length_zero", "Content-Length: 0 is an empty body", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
            .resp("POST", ok(b""))
            .keep(),
        case("post_chunked_ext_trailers", "RFC 9112 7.1: chunked, extensions skipped, trailers read and dropped",
            cat(&[b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", chunked_body]))
            .resp("POST", ok(b"Wikipedia in\r\n\r\nchunks."))
            .keep(),
        case("post_chunked_hex_forms", "chunk-size = 1*HEXDIG: leading zeros and upper case",
            "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0005\r\nhello\r\nA\r\n0123456789\r\n000\r\n\r\n")
            .resp("POST", ok(b"hello0123456789"))
            .keep(),
        case("post_chunked_empty", "a chunked body with only the last chunk",
            "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            .resp("POST", ok(b""))
            .keep(),
        case("post_chunked_case_ows", "coding names are case-insensitive; OWS around list members",
            "POST /echo HTTP/1.1\r\nHost: a\r\ntransfer-encoding:  Chunked \r\n\r\n2\r\nhi\r\n0\r\n\r\n")
            .resp("POST", ok(b"hi"))
            .keep(),
        case("same_content_lengths", "RFC 9110 8.6: identical repeated Content-Length may be accepted as one",
            "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello")
            .resp("POST", ok(b"hello"))
            .keep(),
        case("get_with_body", "a GET body is framed by Content-Length and never read as a request",
            "GET /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nGET GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .get(ok(b"GET "))
            .get(ok(HELLO))
            .keep(),
        case("http10_closes", "RFC 9112 9.3: HTTP/1.0 without keep-alive closes; answers say HTTP/1.1", "GET / HTTP/1.0\r\n\r\n")
            .get(ok(HELLO).with("Connection: close"))
            .close(),
        case("http10_keep_alive", "HTTP/1.0 with Connection: keep-alive stays open",
            "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .get(ok(HELLO).with("Connection: keep-alive"))
            .keep(),
        case("http10_keep_alive_then_close", "keep-alive 1.0 request, then a plain 1.0 one closes",
            "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n")
            .get(ok(HELLO).with("Connection: keep-alive"))
            .get(ok(HELLO).with("Connection: close"))
            .close(),
        case("http10_post", "HTTP/1.0 body by Content-Length",
            "POST /echo HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi")
            .resp("POST", ok(b"hi").with("Connection: close"))
            .close(),
        case("http10_expect_ignored", "RFC 9110 10.1.1: a 100-continue expectation in HTTP/1.0 is ignored",
            "POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi")
            .cut_after_head()
            .resp("POST", ok(b"hi"))
            .close(),
        case("connection_close", "HTTP/1.1 Connection: close closes after the response",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .get(ok(HELLO).with("Connection: close"))
            .close(),
        case("connection_close_in_list", "close among other connection options",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n")
            .get(ok(HELLO).with("Connection: close"))
            .close(),
        case("expect_continue", "RFC 9110 10.1.1: 100 Continue before reading the body",
            "POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello")
            .cut_after_head()
            .resp("POST", ok(b"hello").after_continue())
            .keep(),
        case("expect_continue_chunked", "100 Continue for a chunked body",
            "POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
            .cut_after_head()
            .resp("POST", ok(b"abc").after_continue())
            .keep(),
        case("expect_continue_body_already_here", "no 100 needed when the body came with the head",
            "POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello")
            .resp("POST", ok(b"hello"))
            .keep(),
        case("pipelined_three", "pipelined requests are answered in order",
            "GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /chunked HTTP/1.1\r\nHost: a\r\n\r\n")
            .get(ok(HELLO))
            .resp("POST", ok(b"abc"))
            .get(ok(b"one two three"))
            .keep(),
        case("pipelined_chunked_then_get", "the request after a chunked body with trailers",
            cat(&[b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", chunked_body, b"HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"]))
            .resp("POST", ok(b"Wikipedia in\r\n\r\nchunks."))
            .resp("HEAD", ok(b"").with("Content-Length: 13").with("Connection: close"))
            .close(),
        case("absolute_form", "RFC 9112 3.2.2: a server MUST accept the absolute-form",
            "GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n")
            .get(ok(HELLO))
            .keep(),
        case("absolute_form_https_query", "RFC 9110 7.4: an https target behind a trusted TLS gateway (Connection_SetTrustedGateway) is served",
            "POST https://a.example/echo?x=1 HTTP/1.1\r\nHost: a.example\r\nContent-Length: 2\r\n\r\nhi")
            .limits(limits(|l| l.trusted_gateway = true))
            .resp("POST", ok(b"hi"))
            .keep(),
        case("absolute_form_empty_path", "RFC 9110 4.2.3: http://host and http://host/ are equivalent (empty path is /)",
            "GET http://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n")
            .get(ok(HELLO))
            .keep(),
        case("options_asterisk", "RFC 9112 3.2.4: asterisk-form for OPTIONS (the handler has no such route: 404)",
            "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")
            .get(ok(NOT_FOUND).without("Connection"))
            .map_status(404)
            .keep(),
        case("not_found", "a route the handler does not know", "GET /nope HTTP/1.1\r\nHost: a\r\n\r\n")
            .get(ok(NOT_FOUND))
            .map_status(404)
            .keep(),
        case("leading_empty_line", "RFC 9112 2.2: a server SHOULD ignore at least one empty line before the request line",
            "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .get(ok(HELLO))
            .keep(),
        case("leading_empty_lines", "several empty lines before the request line are ignored",
            "\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .get(ok(HELLO))
            .keep(),
        case("content_length_ows", "RFC 9110 5.5: OWS around a field value is not part of it",
            "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length:\t5 \r\n\r\nhello")
            .resp("POST", ok(b"hello"))
            .keep(),
        case("content_length_leading_zero", "Content-Length = 1*DIGIT: leading zeros are digits",
            "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 005\r\n\r\nhello")
            .resp("POST", ok(b"hello"))
            .keep(),
        case("te_empty_list_element", "RFC 9110 5.6.1: empty list elements are ignored",
            "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
            .resp("POST", ok(b"hi"))
            .keep(),
        case("empty_host", "RFC 9110 7.2: Host with an empty value is valid",
            "GET / HTTP/1.1\r\nHost:\r\n\r\n")
            .get(ok(HELLO))
            .keep(),
        case("body_at_limit_length", "max_body_bytes is inclusive (Content-Length)",
            cat(&[b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 16\r\n\r\n", &repeat(b'b', SMALL_BODY)]))
            .limits(small_body())
            .resp("POST", ok(&repeat(b'b', SMALL_BODY)))
            .keep(),
        case("body_at_limit_chunked", "max_body_bytes is inclusive (chunked)",
            cat(&[b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n", &repeat(b'c', 8), b"\r\n8\r\n", &repeat(b'c', 8), b"\r\n0\r\n\r\n"]))
            .limits(small_body())
            .resp("POST", ok(&repeat(b'c', SMALL_BODY)))
            .keep(),
        case("request_line_at_limit", "max_request_line_bytes: a request line of exactly the limit (CRLF excluded) is accepted",
            request_line_of_len(64))
            .limits(limits(|l| l.max_request_line = 64))
            .get(ok(NOT_FOUND))
            .map_status(404)
            .keep(),
        case("headers_at_limit", "max_headers fields are accepted",
            cat(&[b"GET / HTTP/1.1\r\nHost: a\r\n", &headers(63), b"\r\n"]))
            .limits(limits(|l| l.max_headers = 64))
            .get(ok(HELLO))
            .keep(),
        case("hundred_headers_by_default", "100 fields (Apache's limit; proxies add many) are accepted by default",
            cat(&[b"GET / HTTP/1.1\r\nHost: a\r\n", &headers(99), b"\r\n"]))
            .get(ok(HELLO))
            .keep(),
        case("default_headers_at_limit", "max_headers (128 by default) fields are accepted",
            cat(&[b"GET / HTTP/1.1\r\nHost: a\r\n", &headers(127), b"\r\n"]))
            .get(ok(HELLO))
            .keep(),
        case("header_bytes_at_limit", "max_header_bytes: a head of exactly the limit is accepted",
            get_head_of_len(256))
            .limits(limits(|l| l.max_header_bytes = 256))
            .get(ok(HELLO))
            .keep(),
        // --- RFC 9112 / RFC 9110 requirements matrix (docs/RFC9112.md) ---
        case("http12_as_11", "RFC 9110 2.5: a higher minor version (HTTP/1.2) is processed as HTTP/1.1; the answer says HTTP/1.1",
            "GET / HTTP/1.2\r\nHost: a\r\n\r\n")
            .get(ok(HELLO).without("Connection"))
            .keep(),
        case("http12_after_empty_line", "RFC 9112 2.2 + RFC 9110 2.5: an empty line, then an HTTP/1.2 request line",
            "\r\nGET / HTTP/1.2\r\nHost: a\r\n\r\n")
            .get(ok(HELLO))
            .keep(),
        case("http19_chunked_post", "RFC 9110 2.5: HTTP/1.9 is HTTP/1.1 to us: chunked allowed, persistent, 100-continue honoured",
            "POST /echo HTTP/1.9\r\nHost: a\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
            .cut_after_head()
            .resp("POST", ok(b"hi").after_continue())
            .keep(),
        case("target_all_pchars", "RFC 9112 3.2.1 / RFC 3986: every pchar, pct-encoding, '/' and '?' in the query are valid in origin-form",
            "GET /a-._~!$&'()*+,;=:@/%2F%c3%A9?q=/?x%20y&z=:@ HTTP/1.1\r\nHost: a\r\n\r\n")
            .get(ok(NOT_FOUND))
            .map_status(404)
            .keep(),
        case("target_empty_segments", "RFC 3986: absolute-path = 1*( \"/\" segment ); segments may be empty",
            "GET //x// HTTP/1.1\r\nHost: a\r\n\r\n")
            .get(ok(NOT_FOUND))
            .map_status(404)
            .keep(),
        case("host_ipv6_port", "RFC 9110 7.2: Host = uri-host [ \":\" port ]; an IPv6 literal with a port",
            "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n")
            .get(ok(HELLO))
            .keep(),
        case("host_ipv4_mapped", "RFC 3986 3.2.2: an IPv6 literal with an embedded IPv4 address",
            "GET / HTTP/1.1\r\nHost: [::ffff:192.0.2.1]\r\n\r\n")
            .get(ok(HELLO))
            .keep(),
        case("host_ipvfuture", "RFC 3986 3.2.2: IPvFuture literal",
            "GET / HTTP/1.1\r\nHost: [v1.fe80::a+en1]\r\n\r\n")
            .get(ok(HELLO))
            .keep(),
        case("host_empty_port", "RFC 3986 3.2.3: port = *DIGIT, so \"a:\" is valid",
            "GET / HTTP/1.1\r\nHost: a:\r\n\r\n")
            .get(ok(HELLO))
            .keep(),
        case("host_pct_encoded", "RFC 3986 3.2.2: reg-name may hold pct-encoded octets and sub-delims",
            "GET / HTTP/1.1\r\nHost: xn--a%41!$&'()*+,;=.example:80\r\n\r\n")
            .get(ok(HELLO))
            .keep(),
        case("absolute_form_host_case", "RFC 9112 3.2.2: the target's authority counts; Host names the same authority (case-insensitively)",
            "GET http://A.Example:8080/ HTTP/1.1\r\nHost: a.example:8080\r\n\r\n")
            .get(ok(HELLO))
            .keep(),
        case("absolute_form_query_no_path", "RFC 9110 4.2.3: http://host?q has an empty path, which is /",
            "GET HTTP://a.example?x=1 HTTP/1.1\r\nHost: a.example\r\n\r\n")
            .get(ok(HELLO))
            .keep(),
        case("absolute_form_ipv6", "absolute-form with an IPv6 literal and a port",
            "GET http://[2001:db8::1]:81/ HTTP/1.1\r\nHost: [2001:db8::1]:81\r\n\r\n")
            .get(ok(HELLO))
            .keep(),
        case("absolute_form_http10_no_host", "RFC 9112 3.2: Host is required in HTTP/1.1 only; an HTTP/1.0 absolute-form request may omit it",
            "GET http://a.example/ HTTP/1.0\r\n\r\n")
            .get(ok(HELLO).with("Connection: close"))
            .close(),
        case("header_obs_text", "RFC 9110 5.5: obs-text in a field value is kept as opaque bytes",
            b"GET /head HTTP/1.1\r\nHost: a\r\nX-A: caf\xe9\r\n\r\n")
            .get(ok(b"Host=a\nX-A=caf\xe9\n"))
            .keep(),
        case("connection_empty_elements", "RFC 9110 5.6.1: empty list elements are ignored (Connection: , close,)",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: , close,\r\n\r\n")
            .get(ok(HELLO).with("Connection: close"))
            .close(),
        case("http10_chunked_response", "RFC 9112 6.1: no Transfer-Encoding in a response to HTTP/1.0; the body ends with the close",
            "GET /chunked HTTP/1.0\r\n\r\n")
            .get(ok(b"one two three").without("Transfer-Encoding").with("Connection: close"))
            .close(),
        case("expect_continue_no_body", "RFC 9110 10.1.1: no content follows, so no 100 Continue (a server MAY omit it)",
            "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n")
            .get(ok(HELLO))
            .keep(),
        case("chunk_ext_bws_quoted", "RFC 9112 7.1.1: BWS around ';' and '=', token and quoted-string values (with quoted-pair) are ignored",
            "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2 ; a = b ;c=\"q\\\"; x\"\t;d\r\nhi\r\n0;e=\"\"\r\n\r\n")
            .resp("POST", ok(b"hi"))
            .keep(),
        case("chunk_size_many_zeros", "RFC 9112 7.1: chunk-size = 1*HEXDIG; leading zeros do not count against any digit limit",
            "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n000000000000000000000002\r\nhi\r\n00000000000000000000\r\n\r\n")
            .resp("POST", ok(b"hi"))
            .keep(),
        case("trailer_framing_fields_ignored", "RFC 9112 7.1.2 / RFC 9110 6.5: trailer fields are discarded; Content-Length, Transfer-Encoding or Host there change nothing",
            "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nHost: evil\r\nX-Empty:\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .resp("POST", ok(b"hi"))
            .get(ok(HELLO))
            .keep(),
        case("head_echoed_headers", "header names and values reach the handler (OWS trimmed)",
            "GET /head HTTP/1.1\r\nHost: a\r\nX-A:  spaced value\t\r\nX-Empty:\r\n\r\n")
            .get(ok(b"Host=a\nX-A=spaced value\nX-Empty=\n"))
            .keep(),
    ]
}

impl B {
    /// The last response's status (for handler answers other than 200).
    fn map_status(mut self, s: u16) -> B {
        if let Some(r) = self.case.responses.last_mut() {
            r.status = s;
        }
        self
    }
}

/// Requests the library must refuse, each with its status and a close.
pub fn error_cases() -> Vec<Case> {
    let post = |extra: &str, body: &str| {
        format!("POST /echo HTTP/1.1\r\nHost: a\r\n{extra}\r\n{body}").into_bytes()
    };
    let huge_line = cat(&[
        b"GET /",
        &repeat(b'a', 9000),
        b" HTTP/1.1\r\nHost: a\r\n\r\n",
    ]);
    let huge_head = cat(&[
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ",
        &repeat(b'x', 20_000),
        b"\r\n\r\n",
    ]);
    let endless_head = cat(&[b"GET / HTTP/1.1\r\nHost: a\r\n", &headers(40).repeat(60)]);
    vec![
        // --- framing (RFC 9112 6.1, 6.3) ---
        case(
            "te_and_cl",
            "RFC 9112 6.1: Transfer-Encoding and Content-Length together: 400 and close",
            post(
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
        )
        .reject(400),
        case(
            "cl_and_te",
            "both framings, TE second",
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                "0\r\n\r\n",
            ),
        )
        .reject(400),
        case(
            "cl_differ",
            "RFC 9112 6.3: differing Content-Lengths",
            post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"),
        )
        .reject(400),
        case(
            "cl_list_differ",
            "a Content-Length list with different values",
            post("Content-Length: 5, 6\r\n", "hello!"),
        )
        .reject(400),
        case(
            "cl_plus",
            "Content-Length = 1*DIGIT: no sign",
            post("Content-Length: +5\r\n", "hello"),
        )
        .reject(400),
        case(
            "cl_negative",
            "negative Content-Length",
            post("Content-Length: -1\r\n", ""),
        )
        .reject(400),
        case(
            "cl_hex",
            "hex Content-Length",
            post("Content-Length: 0x5\r\n", "hello"),
        )
        .reject(400),
        case(
            "cl_overflow",
            "RFC 9110 8.6: any 1*DIGIT Content-Length is valid, however large (no overflow): over max_body_bytes, 413",
            post("Content-Length: 99999999999999999999999\r\n", ""),
        )
        .reject(413),
        case(
            "cl_empty",
            "an empty Content-Length",
            post("Content-Length:\r\n", ""),
        )
        .reject(400),
        case(
            "te_gzip",
            "RFC 9112 6.3 (4): chunked is not the final coding: 400 (a MUST; 6.1's SHOULD 501 applies only when chunked is final)",
            post("Transfer-Encoding: gzip\r\n", ""),
        )
        .reject(400),
        case(
            "te_gzip_chunked",
            "unknown coding before chunked: 501",
            post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"),
        )
        .reject(501),
        case(
            "te_chunked_identity",
            "RFC 9112 6.3 (4): a coding after chunked leaves chunked not final: 400",
            post("Transfer-Encoding: chunked, identity\r\n", "0\r\n\r\n"),
        )
        .reject(400),
        case(
            "te_empty",
            "RFC 9112 6.3: a Transfer-Encoding that does not end in chunked: 400",
            post("Transfer-Encoding:\r\n", ""),
        )
        .reject(400),
        case(
            "te_chunked_twice",
            "RFC 9112 7: chunked applied twice",
            post("Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n"),
        )
        .reject(400),
        case(
            "te_http10",
            "RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing",
            "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        )
        .reject(400),
        // --- field syntax (RFC 9112 5) ---
        case(
            "space_before_colon",
            "RFC 9112 5.1: whitespace between field name and colon: 400",
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        )
        .reject(400),
        case(
            "space_before_colon_cl",
            "the classic CL smuggling variant",
            post("Content-Length : 5\r\n", "hello"),
        )
        .reject(400),
        case(
            "tab_before_colon_te",
            "TAB before the colon of Transfer-Encoding",
            post("Transfer-Encoding\t: chunked\r\n", "0\r\n\r\n"),
        )
        .reject(400),
        case(
            "obs_fold",
            "RFC 9112 5.2: obs-fold in a request: 400",
            "GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n",
        )
        .reject(400),
        case(
            "obs_fold_te",
            "obs-fold continuing Transfer-Encoding",
            post("Transfer-Encoding: gzip,\r\n chunked\r\n", "0\r\n\r\n"),
        )
        .reject(400),
        case(
            "whitespace_first_line",
            "RFC 9112 2.2: whitespace-preceded line after the request line",
            "GET / HTTP/1.1\r\n Host: a\r\n\r\n",
        )
        .reject(400),
        case(
            "empty_header_name",
            "a field line without a name",
            "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n",
        )
        .reject(400),
        case(
            "header_name_delimiter",
            "a field name with a delimiter",
            "GET / HTTP/1.1\r\nHost: a\r\nX@Y: z\r\n\r\n",
        )
        .reject(400),
        case(
            "header_value_nul",
            "NUL in a field value",
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n",
        )
        .reject(400),
        case(
            "header_value_ctl",
            "a control byte in a field value",
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n",
        )
        .reject(400),
        case(
            "header_no_colon",
            "a field line without a colon",
            "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
        )
        .reject(400),
        // --- line endings ---
        case(
            "bare_lf_request_line",
            "RFC 9112 2.2: bare LF ending the request line",
            "GET / HTTP/1.1\nHost: a\r\n\r\n",
        )
        .reject(400),
        case(
            "bare_lf_field",
            "bare LF ending a field line",
            "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n",
        )
        .reject(400),
        case(
            "bare_lf_end",
            "bare LF ending the head",
            "GET / HTTP/1.1\r\nHost: a\r\n\n",
        )
        .reject(400),
        case(
            "bare_cr_field",
            "RFC 9112 2.2: bare CR in a field line: 400",
            "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
        )
        .reject(400),
        case(
            "bare_cr_request_line",
            "bare CR ending the request line",
            "GET / HTTP/1.1\rHost: a\r\n\r\n",
        )
        .reject(400),
        // --- chunked body syntax (RFC 9112 7.1) ---
        case(
            "chunk_size_bad",
            "a chunk size that is not hex",
            post("Transfer-Encoding: chunked\r\n", "zz\r\nhello\r\n0\r\n\r\n"),
        )
        .reject(400),
        case(
            "chunk_size_missing",
            "an empty chunk-size line",
            post("Transfer-Encoding: chunked\r\n", "\r\nhello\r\n0\r\n\r\n"),
        )
        .reject(400),
        case(
            "chunk_size_negative",
            "a signed chunk size",
            post("Transfer-Encoding: chunked\r\n", "-1\r\nh\r\n0\r\n\r\n"),
        )
        .reject(400),
        case(
            "chunk_size_overflow",
            "RFC 9112 7.1: a chunk size past 64 bits is read without overflow: over max_body_bytes, 413",
            post(
                "Transfer-Encoding: chunked\r\n",
                "fffffffffffffffffffff\r\nh\r\n0\r\n\r\n",
            ),
        )
        .reject(413),
        case(
            "chunk_size_0x",
            "0x prefix on a chunk size",
            post("Transfer-Encoding: chunked\r\n", "0x3\r\nabc\r\n0\r\n\r\n"),
        )
        .reject(400),
        case(
            "chunk_size_bare_lf",
            "bare LF after a chunk size",
            post("Transfer-Encoding: chunked\r\n", "3\nabc\r\n0\r\n\r\n"),
        )
        .reject(400),
        case(
            "chunk_ext_bare_lf",
            "bare LF inside a chunk extension",
            post("Transfer-Encoding: chunked\r\n", "3;a\nabc\r\n0\r\n\r\n"),
        )
        .reject(400),
        case(
            "chunk_data_too_long",
            "chunk data longer than its size (no CRLF after it)",
            post("Transfer-Encoding: chunked\r\n", "3\r\nabcX\r\n0\r\n\r\n"),
        )
        .reject(400),
        case(
            "chunk_data_bare_lf",
            "bare LF after chunk data",
            post("Transfer-Encoding: chunked\r\n", "3\r\nabc\n0\r\n\r\n"),
        )
        .reject(400),
        case(
            "trailer_bare_lf",
            "bare LF in the trailer section",
            post("Transfer-Encoding: chunked\r\n", "0\r\nX: y\n\r\n"),
        )
        .reject(400),
        // --- Host (RFC 9112 3.2) ---
        case(
            "missing_host",
            "RFC 9112 3.2: HTTP/1.1 without Host: 400",
            "GET / HTTP/1.1\r\n\r\n",
        )
        .reject(400),
        case(
            "two_hosts",
            "RFC 9112 3.2: more than one Host: 400",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        )
        .reject(400),
        case(
            "two_same_hosts",
            "two Host lines, same value",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        )
        .reject(400),
        // --- request line ---
        case(
            "nul_request_line",
            "NUL in the request target",
            "GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        .reject(400),
        case(
            "space_in_target",
            "a space inside the target",
            "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        .reject(400),
        case(
            "asterisk_get",
            "asterisk-form is only for OPTIONS",
            "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        .reject(400),
        case(
            "relative_target",
            "a target that is no origin-form",
            "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        .reject(400),
        case("lowercase_version", "RFC 9112 2.3: HTTP-name is case-sensitive; http/1.1 is a malformed request line (400), not an unsupported version",
            "GET / http/1.1\r\nHost: a\r\n\r\n").reject(400),
        case("trailing_space_request_line", "a space after the version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n").reject(400),
        case("double_space_request_line", "two spaces between method and target", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n").reject(400),
        case("leading_bare_lf", "a bare LF before the request line", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n").reject(400),
        case("quoted_te", "a quoted coding is not chunked, so chunked is not final: 400 (RFC 9112 6.3 (4))", post("Transfer-Encoding: \"chunked\"\r\n", "0\r\n\r\n")).reject(400),
        case("two_te_chunked_fields", "chunked twice across two fields", post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n")).reject(400),
        case(
            "no_version",
            "a request line without a version (HTTP/0.9)",
            "GET /\r\nHost: a\r\n\r\n",
        )
        .reject(400),
        // --- limits ---
        case(
            "request_line_too_long",
            "max_request_line_bytes (8192 by default): 414",
            huge_line,
        )
        .reject(414),
        case(
            "request_line_over_limit_by_one",
            "a request line one byte over the limit: 414",
            request_line_of_len(65),
        )
        .limits(limits(|l| l.max_request_line = 64))
        .reject(414),
        case(
            "request_line_endless",
            "a request line that never ends: 414 once it passes the limit",
            cat(&[b"GET /", &repeat(b'a', 9000)]),
        )
        .reject(414),
        case(
            "header_section_too_large",
            "max_header_bytes (16384 by default): 431",
            huge_head,
        )
        .reject(431),
        case(
            "header_section_over_limit_by_one",
            "a head one byte over max_header_bytes: 431",
            get_head_of_len(257),
        )
        .limits(limits(|l| l.max_header_bytes = 256))
        .reject(431),
        case(
            "header_section_endless",
            "a head that never ends: 431 once it passes the limit",
            endless_head,
        )
        .reject(431),
        case(
            "too_many_headers",
            "one field over max_headers: 431",
            cat(&[b"GET / HTTP/1.1\r\nHost: a\r\n", &headers(64), b"\r\n"]),
        )
        .limits(limits(|l| l.max_headers = 64))
        .reject(431),
        case(
            "too_many_headers_default",
            "max_headers (128 by default): 431",
            cat(&[b"GET / HTTP/1.1\r\nHost: a\r\n", &headers(128), b"\r\n"]),
        )
        .reject(431),
        case(
            "body_too_large_default",
            "max_body_bytes (1 MiB by default): 413",
            post("Content-Length: 1048577\r\n", ""),
        )
        .reject(413),
        case(
            "body_over_limit_length",
            "Content-Length one over the limit: 413",
            cat(&[
                b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 17\r\n\r\n",
                &repeat(b'b', SMALL_BODY + 1),
            ]),
        )
        .limits(small_body())
        .reject(413),
        case(
            "body_over_limit_chunked",
            "a chunked body one byte over the limit: 413",
            cat(&[
                b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n",
                &repeat(b'c', 8),
                b"\r\n9\r\n",
                &repeat(b'c', 9),
                b"\r\n0\r\n\r\n",
            ]),
        )
        .limits(small_body())
        .reject(413),
        case(
            "trailers_too_large",
            "trailers count against max_header_bytes: 431",
            cat(&[
                b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: ",
                &repeat(b't', 400),
                b"\r\n\r\n",
            ]),
        )
        .limits(limits(|l| l.max_header_bytes = 256))
        .reject(431),
        // --- Expect (RFC 9110 10.1.1) ---
        case(
            "expect_over_limit",
            "issue: a body over the limit gets 413 and no 100 Continue",
            post("Expect: 100-continue\r\nContent-Length: 2000000\r\n", ""),
        )
        .reject(413),
        case(
            "expect_unknown",
            "RFC 9110 10.1.1: an unknown expectation: 417",
            "GET / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n",
        )
        .reject(417),
        // --- method and version ---
        case(
            "unknown_method",
            "RFC 9110 9.1: unknown method: 501",
            "BREW / HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        .reject(501),
        case(
            "lowercase_method",
            "methods are case-sensitive: get is unknown",
            "get / HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        .reject(501),
        case(
            "http20",
            "RFC 9110 6.2: version 2.0 over HTTP/1.1 framing: 505",
            "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        )
        .reject(505),
        case(
            "http99",
            "version 9.9: 505",
            "GET / HTTP/9.9\r\nHost: a\r\n\r\n",
        )
        .reject(505),
        // --- RFC 9112 / RFC 9110 requirements matrix (docs/RFC9112.md) ---
        case("target_fragment", "RFC 9112 3.2.1: origin-form has no fragment: 400 (RFC 9112 3: invalid request-line SHOULD get 400)", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n").reject(400),
        case("query_fragment", "a fragment after the query", "GET /?a=1#b HTTP/1.1\r\nHost: a\r\n\r\n").reject(400),
        case("target_dquote", "RFC 3986: '\"' is not a URI character", "GET /a\"b HTTP/1.1\r\nHost: a\r\n\r\n").reject(400),
        case("target_braces", "RFC 3986: '{' and '}' are not URI characters", "GET /{x} HTTP/1.1\r\nHost: a\r\n\r\n").reject(400),
        case("target_angle_brackets", "RFC 3986: '<' and '>' are not URI characters", "GET /<script> HTTP/1.1\r\nHost: a\r\n\r\n").reject(400),
        case("target_backslash", "RFC 3986: '\\' is not a URI character", "GET /a\\b HTTP/1.1\r\nHost: a\r\n\r\n").reject(400),
        case("target_pipe_caret_backtick", "RFC 3986: '|', '^' and '`' are not URI characters", "GET /a?b|c^d`e HTTP/1.1\r\nHost: a\r\n\r\n").reject(400),
        case("target_non_ascii", "RFC 3986: a byte above 0x7F must be pct-encoded", b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n").reject(400),
        case("target_bad_pct", "RFC 3986 2.1: '%' must be followed by two hex digits", "GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n").reject(400),
        case("target_short_pct", "a '%' cut short at the end of the target", "GET /a%4 HTTP/1.1\r\nHost: a\r\n\r\n").reject(400),
        case("absolute_form_https_untrusted", "RFC 9110 7.4: an https target over a connection the core did not see secured: MUST reject (421)",
            "GET https://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n").reject(421),
        case("absolute_form_other_scheme", "RFC 9110 7.4 / 15.5.20: a target URI of a scheme this server does not serve: 421",
            "GET ftp://a.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n").reject(421),
        case("authority_form_get", "RFC 9112 3.2.3: authority-form is only for CONNECT; a:80 then reads as an absolute-URI of scheme \"a\": 421",
            "GET a:80 HTTP/1.1\r\nHost: a:80\r\n\r\n").reject(421),
        case("authority_form_connect", "RFC 9110 9.1/9.3.6: CONNECT is not implemented: 501",
            "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n").reject(501),
        case("absolute_form_bad_scheme", "RFC 3986 3.1: a scheme starts with a letter", "GET 1http://a/ HTTP/1.1\r\nHost: a\r\n\r\n").reject(400),
        case("absolute_form_no_slashes", "RFC 9110 4.2.1: http-URI = \"http\" \"://\" authority path-abempty [ \"?\" query ]",
            "GET http:a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n").reject(400),
        case("absolute_form_empty_host", "RFC 9110 4.2.1: an http URI with an empty host MUST be rejected as invalid",
            "GET http:///x HTTP/1.1\r\nHost: \r\n\r\n").reject(400),
        case("absolute_form_port_only", "an empty host with a port", "GET http://:80/ HTTP/1.1\r\nHost: :80\r\n\r\n").reject(400),
        case("absolute_form_userinfo", "RFC 9110 4.2.4: userinfo in an http target is treated as an error",
            "GET http://user:pw@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n").reject(400),
        case("absolute_form_bad_port", "RFC 3986 3.2.3: port = *DIGIT", "GET http://a.example:8x/ HTTP/1.1\r\nHost: a.example:8x\r\n\r\n").reject(400),
        case("absolute_form_fragment", "no fragment in an absolute-form target either", "GET http://a.example/#x HTTP/1.1\r\nHost: a.example\r\n\r\n").reject(400),
        case("absolute_form_host_mismatch", "RFC 9112 3.2.2/3.2: the client MUST send Host identical to the target's authority; a Host naming another one is refused (400), never used",
            "GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n").reject(400),
        case("host_two_colons", "RFC 9112 3.2: an invalid Host value: 400 (a MUST); reg-name has no ':'", "GET / HTTP/1.1\r\nHost: a:b:c\r\n\r\n").reject(400),
        case("host_bad_port", "port = *DIGIT", "GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n").reject(400),
        case("host_unclosed_ipv6", "an IP literal without its ']'", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n").reject(400),
        case("host_bad_ipv6", "an IP literal that is no IPv6 address", "GET / HTTP/1.1\r\nHost: [::g]\r\n\r\n").reject(400),
        case("host_stray_bracket", "']' in a reg-name", "GET / HTTP/1.1\r\nHost: a]b\r\n\r\n").reject(400),
        case("host_bad_pct", "'%' not followed by two hex digits", "GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n").reject(400),
        case("host_userinfo", "Host carries no userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n").reject(400),
        case("host_with_path", "Host carries no path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n").reject(400),
        case("host_list", "Host is one authority, not a list", "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n").reject(400),
        case("host_invalid_http10", "RFC 9112 3.2: an invalid Host is a 400 in any request, HTTP/1.0 too", "GET / HTTP/1.0\r\nHost: a:b:c\r\n\r\n").reject(400),
        case("two_hosts_http10", "RFC 9112 3.2: more than one Host line in any request: 400", "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n").reject(400),
        case("http30", "RFC 9110 2.5 / 15.6.6: major version 3 over HTTP/1.1 framing: 505", "GET / HTTP/3.0\r\nHost: a\r\n\r\n").reject(505),
        case("http20_after_empty_line", "an empty line, then HTTP/2.0: still 505", "\r\nGET / HTTP/2.0\r\nHost: a\r\n\r\n").reject(505),
        case("http09_version", "major version 0: 505", "GET / HTTP/0.9\r\nHost: a\r\n\r\n").reject(505),
        case("http_two_digit_minor", "RFC 9112 2.3: HTTP-version = HTTP-name \"/\" DIGIT \".\" DIGIT: HTTP/1.10 is malformed (400)", "GET / HTTP/1.10\r\nHost: a\r\n\r\n").reject(400),
        case("leading_space_request_line", "RFC 9112 3: no whitespace before the method", " GET / HTTP/1.1\r\nHost: a\r\n\r\n").reject(400),
        case("header_value_del", "RFC 9110 5.5: DEL (a CTL) in a field value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n").reject(400),
        case("cl_list_same", "RFC 9110 8.6: a list of identical values MAY be rejected; we do (one value per line only)", post("Content-Length: 5, 5\r\n", "hello")).reject(400),
        case("trailer_no_colon", "RFC 9112 7.1.2 / 5: a trailer line is a field-line: name, colon, value", post("Transfer-Encoding: chunked\r\n", "0\r\nX y\r\n\r\n")).reject(400),
        case("trailer_space_before_colon", "RFC 9112 5.1 applied to trailers: no whitespace before the colon", post("Transfer-Encoding: chunked\r\n", "0\r\nX : y\r\n\r\n")).reject(400),
        case("trailer_empty_name", "a trailer line without a name", post("Transfer-Encoding: chunked\r\n", "0\r\n: y\r\n\r\n")).reject(400),
        case("trailer_obs_fold", "RFC 9112 5.2 applied to trailers: obs-fold is refused", post("Transfer-Encoding: chunked\r\n", "0\r\nX: y\r\n z\r\n\r\n")).reject(400),
        case("trailer_ctl_value", "RFC 9110 5.5: a control byte in a trailer value", post("Transfer-Encoding: chunked\r\n", "0\r\nX: a\x01b\r\n\r\n")).reject(400),
        case("trailer_name_delimiter", "a trailer name that is no token", post("Transfer-Encoding: chunked\r\n", "0\r\nX@Y: z\r\n\r\n")).reject(400),
        case("chunk_size_trailing_ws", "RFC 9112 7.1.1: BWS only before ';': whitespace then CRLF after a chunk size", post("Transfer-Encoding: chunked\r\n", "2 \r\nhi\r\n0\r\n\r\n")).reject(400),
        case("chunk_ext_empty_name", "RFC 9112 7.1.1: chunk-ext-name = token, not empty", post("Transfer-Encoding: chunked\r\n", "2;\r\nhi\r\n0\r\n\r\n")).reject(400),
        case("chunk_ext_bad_name", "a chunk-ext-name that is no token", post("Transfer-Encoding: chunked\r\n", "2;a@b\r\nhi\r\n0\r\n\r\n")).reject(400),
        case("chunk_ext_space_in_name", "two words where one name belongs", post("Transfer-Encoding: chunked\r\n", "2;a b\r\nhi\r\n0\r\n\r\n")).reject(400),
        case("chunk_ext_empty_value", "chunk-ext-val = token / quoted-string, not empty", post("Transfer-Encoding: chunked\r\n", "2;a=\r\nhi\r\n0\r\n\r\n")).reject(400),
        case("chunk_ext_unclosed_quote", "a quoted-string without its closing quote", post("Transfer-Encoding: chunked\r\n", "2;a=\"x\r\nhi\r\n0\r\n\r\n")).reject(400),
        case("chunk_ext_trailing_ws", "whitespace before the CRLF of an extension", post("Transfer-Encoding: chunked\r\n", "2;a=b \r\nhi\r\n0\r\n\r\n")).reject(400),
        // --- errors after a good request ---
        case(
            "error_after_good",
            "a bad request after a good one: 200, then 400 and close",
            "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        )
        .get(ok(HELLO))
        .reject(400),
    ]
}

pub fn all_cases() -> Vec<Case> {
    let mut v = valid_cases();
    v.extend(error_cases());
    v
}
