//! The request-head fast path (`http::fast_head`) answers only with exactly
//! what the full parser (`parse_head_full`) gives: the same head, the same
//! header spans, never a head the full parser refuses or has not finished;
//! and it does answer the usual requests (wrk, curl, browsers).
//!
//! The corpus: every request of the conformance table
//! (tests/protocol/conformance/cases.rs) with its own limits, plus the
//! requests below; each whole, cut at every length, and with every byte
//! replaced by (and, for the requests below, with each of) a set of bytes
//! chosen to break the fast path's assumptions inserted before it. Every
//! input is checked under several limits (fuzz/src/targets.rs
//! `fast_head_limits`: the defaults, small counts, the line and head
//! limits just around the input's own sizes). Deterministic and bounded.

#[path = "conformance/cases.rs"]
mod cases;
#[allow(dead_code)]
#[path = "../../fuzz/src/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "../../fuzz/src/targets.rs"]
mod targets;

use connection_core::http::fast_head;
use connection_core::http::ParseLimits;

/// Requests of the shape the fast path is for, which it must answer.
const USUAL: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:18300\r\n\r\n",
    b"GET /index.html HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
    b"HEAD /a/b?x=1&y=%2F HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
    b"POST /form HTTP/1.1\r\nHost: a.b\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nq=1&r=2",
    b"PUT /x HTTP/1.1\r\nhost: A\r\ncontent-length: 0\r\nCONTENT-LENGTH: 0\r\n\r\n",
    b"GET /search?q=a+b&lang=en HTTP/1.1\r\nHost: www.example.org\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n\
Connection: keep-alive\r\nCookie: a=1; b=2\r\nUpgrade-Insecure-Requests: 1\r\n\
Sec-Fetch-Dest: document\r\nPriority: u=0, i\r\n\r\n",
    b"DELETE /r/1 HTTP/1.1\r\nHost: [::1]x\r\n\r\n",
    b"OPTIONS /? HTTP/1.1\r\nHost: h:\r\nX-Empty-After:   v  \r\nConnection: keep-alive , close\r\n\r\n",
    b"PATCH /%41%6a HTTP/1.1\r\nHost: h\r\nX:y\r\n\r\n",
    b"TRACE /?a?b HTTP/1.1\r\nHost: :80\r\nContent-Length: 18446744073709551616\r\n\r\n",
];

/// Which of `USUAL` the fast path must answer under the default limits
/// (the others hold something it leaves to the full parser on purpose: an
/// IP literal Host, a Content-Length over the body limit).
fn must_answer(raw: &[u8]) -> bool {
    !raw.windows(3).any(|w| w == b"[::") && !raw.ends_with(b"551616\r\n\r\n")
}

/// Bytes put in every position: line ends, spaces, the delimiters of the
/// target and the Host, controls, non-ASCII, a letter and a digit.
const BYTES: &[u8] = &[
    0, b'\r', b'\n', b' ', b'\t', b':', b'%', b'?', b'#', b'/', b'@', b'[', b']', b',', b'"', 0x7f,
    0x80, 0xff, b'A', b'z', b'0', b'9', b'-',
];

fn check(data: &[u8], limits: &[ParseLimits], hits: &mut usize, total: &mut usize) {
    for l in limits {
        *total += 1;
        if targets::fast_head_agrees(data, l) {
            *hits += 1;
        }
    }
}

/// `raw` with each of `BYTES` put in place of, and inserted before, each
/// of its bytes, checked under `limits`.
fn check_mutations(raw: &[u8], limits: &[ParseLimits], hits: &mut usize, total: &mut usize) {
    let mut m = raw.to_vec();
    for i in 0..raw.len() {
        for &b in BYTES {
            m[i] = b;
            check(&m, limits, hits, total);
            let mut ins = raw.to_vec();
            ins.insert(i, b);
            check(&ins, limits, hits, total);
        }
        m[i] = raw[i];
    }
}

#[test]
fn usual_requests_take_the_fast_path() {
    for raw in USUAL.iter().filter(|r| must_answer(r)) {
        let mut headers = Vec::new();
        assert!(
            fast_head::parse(raw, &ParseLimits::default(), &mut headers).is_some(),
            "fast path leaves this to the full parser: {}",
            raw.escape_ascii()
        );
    }
}

#[test]
fn fast_path_agrees_with_the_full_parser() {
    let (mut hits, mut total) = (0, 0);
    let default = [ParseLimits::default()];
    // The usual requests, under every limit set, every cut, every byte
    // replaced and every byte inserted.
    for raw in USUAL {
        check(raw, &targets::fast_head_limits(raw), &mut hits, &mut total);
        for k in 0..raw.len() {
            check(&raw[..k], &default, &mut hits, &mut total);
        }
        check_mutations(raw, &default, &mut hits, &mut total);
    }
    // The conformance table: each request under its own limits and the
    // limit sets; the short ones cut everywhere; those the fast path
    // answers with every byte replaced and every byte inserted.
    for case in cases::all_cases() {
        let raw = &case.request;
        let mut limits = targets::fast_head_limits(raw);
        limits.push(case.limits.parse());
        check(raw, &limits, &mut hits, &mut total);
        if raw.len() > MAX_MUTATED {
            continue;
        }
        for k in 0..raw.len() {
            check(&raw[..k], &default, &mut hits, &mut total);
        }
        if fast_head::parse(raw, &default[0], &mut Vec::new()).is_none() {
            continue;
        }
        check_mutations(raw, &default, &mut hits, &mut total);
    }
    eprintln!("fast head: {total} parses compared, the fast path answered {hits}");
    // The comparison means something only if the fast path answered often.
    assert!(hits > 5000, "the fast path answered only {hits} of {total}");
}

/// Longest conformance request cut and mutated byte by byte (a few are
/// kilobytes long, made to cross a limit: those are checked whole).
const MAX_MUTATED: usize = 300;

/// The limits around the input's own sizes: the fast path must leave the
/// exact-limit heads to the full parser's 414/431 or answer like it.
#[test]
fn limits_at_the_edges() {
    let (mut hits, mut total) = (0, 0);
    for raw in USUAL {
        check(raw, &targets::fast_head_limits(raw), &mut hits, &mut total);
        let mut extra = raw.to_vec();
        // A head right at MAX_HEADERS_CAP-sized header counts.
        let at = extra.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 2;
        for _ in 0..130 {
            extra.splice(at..at, b"X-A: b\r\n".iter().copied());
        }
        check(
            &extra,
            &targets::fast_head_limits(&extra),
            &mut hits,
            &mut total,
        );
        for max_headers in [127, 128, 129, 130, 131, 132, 133, 200] {
            let l = ParseLimits {
                max_headers,
                ..ParseLimits::default()
            };
            check(&extra, &[l], &mut hits, &mut total);
        }
    }
    assert!(hits > 0);
}
