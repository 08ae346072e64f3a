//! Bodies of the fuzz targets. Used by fuzz/fuzz_targets/*.rs (through
//! fuzz/src/lib.rs) and by tests/protocol/fuzz_replay.rs (included by path), so the
//! committed seeds and regressions are replayed by `cargo test` through the
//! very code the fuzzers run. Depends on connection_core only.
//!
//! The invariants are kept simple and true: no panic anywhere, and
//! * parse_head: results within bounds (spans inside the head, known error
//!   statuses, limits respected), the same answer whatever prefix of the
//!   input arrived first (a prefix is Partial or gives the same result:
//!   the status must not depend on how the bytes were split, except that a
//!   size limit and a syntax error may be noticed in either order), and
//!   the chunked decoder giving the same result fed at once or byte by byte;
//! * fast_head: the single-pass fast path (`http::fast_head`) answers only
//!   with exactly what the full parser gives (the same head and header
//!   spans), under several limits, some set right at the input's own sizes;
//! * state_machine: the output is empty or starts with an HTTP/1.1 status
//!   line, no more responses than requests (+1 refusal), and the stats
//!   account for the one connection exactly (open, or closed once).

use connection_core::config::Limits;
use connection_core::harness::{run_exchange_with, Outcome};
use connection_core::http::chunked::{ChunkedDecoder, Progress};
use connection_core::http::fast_head;
use connection_core::http::request::{parse_head, parse_head_full, Framing, Head, Parsed};
use connection_core::http::ParseLimits;

/// Statuses `parse_head` may refuse a request with.
const HEAD_ERRORS: [u16; 8] = [400, 413, 414, 417, 421, 431, 501, 505];

#[derive(Debug, PartialEq, Eq)]
enum Summary {
    Partial,
    Complete { len: usize, framing: Framing },
    Error(u16),
}

fn summarize(p: &Parsed) -> Summary {
    match p {
        Parsed::Partial => Summary::Partial,
        Parsed::Complete(h) => Summary::Complete {
            len: h.len,
            framing: h.framing,
        },
        Parsed::Error(s) => Summary::Error(*s),
    }
}

fn check_head(data: &[u8], head: &Head, headers_len: usize, limits: &Limits) {
    assert!(head.len <= data.len(), "head longer than the input");
    assert!(
        head.len <= limits.max_header_bytes,
        "head over max_header_bytes"
    );
    assert!(
        headers_len <= limits.max_headers,
        "more headers than max_headers"
    );
    for span in [head.method, head.path, head.query] {
        assert!(span.end() <= head.len, "span {span:?} past the head");
    }
    if let Some(mark) = head.query_mark {
        assert_eq!(data[mark as usize], b'?');
    }
    assert!(head.minor_version <= 1);
    match head.framing {
        Framing::Length(n) => assert!(n > 0 && n <= limits.max_body_bytes as u64),
        Framing::Chunked => assert_eq!(head.minor_version, 1, "chunked in HTTP/1.0"),
        Framing::None => {}
    }
    let method = &data[head.method.start as usize..head.method.end()];
    assert_eq!(head.is_head_method, method == b"HEAD");
}

/// Size limits (413/414/431).
const LIMIT_STATUSES: [u16; 3] = [413, 414, 431];

/// Whether a refusal of a prefix (`prefix`) and of the whole input
/// (`full`) agree. They must be equal, except that a size limit and a
/// syntax error may be noticed in either order (how much was buffered when
/// the junk arrived decides). With FUZZ_RELAX_SPLIT_STATUS set, any two
/// refusals agree: for fuzzing past a known split-dependent status (see
/// fuzz/regressions/) until it is fixed.
fn split_statuses_agree(prefix: u16, full: u16) -> bool {
    static RELAX: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    prefix == full
        || LIMIT_STATUSES.contains(&prefix)
        || LIMIT_STATUSES.contains(&full)
        || *RELAX.get_or_init(|| std::env::var_os("FUZZ_RELAX_SPLIT_STATUS").is_some())
}

/// Offsets of the prefixes to re-parse: all of them for short inputs, a
/// sample for long ones.
fn prefix_lengths(len: usize) -> Vec<usize> {
    if len <= 300 {
        return (1..len).collect();
    }
    let mut v: Vec<usize> = (1..32).map(|i| i * len / 32).collect();
    v.extend(len.saturating_sub(8)..len);
    v.sort_unstable();
    v.dedup();
    v.retain(|&k| k > 0 && k < len);
    v
}

/// Chunked decoding of `raw`, the whole at once or one byte per call.
#[derive(Debug, PartialEq, Eq)]
enum Decoded {
    Done { body: Vec<u8>, consumed: usize },
    NeedMore { body: Vec<u8> },
    Error(u16),
}

fn decode_at_once(raw: &[u8], max_body: usize, max_trailer: usize) -> Decoded {
    let mut dec = ChunkedDecoder::default();
    let mut buf = raw.to_vec();
    match dec.decode(&mut buf, max_body, max_trailer) {
        Ok(Progress::Done { decoded, consumed }) => {
            assert!(decoded <= consumed && consumed <= raw.len());
            Decoded::Done {
                body: buf[..decoded].to_vec(),
                consumed,
            }
        }
        Ok(Progress::NeedMore) => Decoded::NeedMore {
            body: buf[..dec.decoded()].to_vec(),
        },
        Err(s) => Decoded::Error(s),
    }
}

fn decode_bytewise(raw: &[u8], max_body: usize, max_trailer: usize) -> Decoded {
    let mut dec = ChunkedDecoder::default();
    let mut buf: Vec<u8> = Vec::new();
    for (i, &b) in raw.iter().enumerate() {
        buf.push(b);
        match dec.decode(&mut buf, max_body, max_trailer) {
            Ok(Progress::Done { decoded, consumed }) => {
                // `buf` holds the decoded bytes, then the one raw byte of
                // this call: it ends the body, so all of `buf` was read.
                assert_eq!(consumed, buf.len(), "the last byte fed was not used");
                return Decoded::Done {
                    body: buf[..decoded].to_vec(),
                    consumed: i + 1,
                };
            }
            Ok(Progress::NeedMore) => buf.truncate(dec.decoded()),
            Err(s) => return Decoded::Error(s),
        }
    }
    Decoded::NeedMore {
        body: buf[..dec.decoded()].to_vec(),
    }
}

pub fn parse_head_target(data: &[u8]) {
    let limits = Limits::default();
    let mut headers = Vec::new();
    let full = parse_head(data, &limits.parse(), &mut headers);
    match &full {
        Parsed::Partial => assert!(data.len() <= limits.max_header_bytes),
        Parsed::Error(s) => assert!(HEAD_ERRORS.contains(s), "unexpected status {s}"),
        Parsed::Complete(head) => check_head(data, head, headers.len(), &limits),
    }
    let want = summarize(&full);

    // Every prefix is Partial, or says what the whole says.
    if want != Summary::Partial {
        let mut scratch = Vec::new();
        for k in prefix_lengths(data.len()) {
            let got = summarize(&parse_head(&data[..k], &limits.parse(), &mut scratch));
            let consistent = match (&got, &want) {
                (Summary::Partial, _) => true,
                (Summary::Error(p), Summary::Error(f)) => split_statuses_agree(*p, *f),
                (g, w) => g == w,
            };
            assert!(
                consistent,
                "the first {k} bytes give {got:?}, all {} bytes give {want:?}: \
                 the answer depends on how the request is split",
                data.len()
            );
        }
    }

    // Whatever follows the head, through the chunked decoder.
    let rest = match full {
        Parsed::Complete(head) => &data[head.len..],
        _ => data,
    };
    let max_trailer = limits.max_header_bytes;
    for max_body in [limits.max_body_bytes, 64] {
        let once = decode_at_once(rest, max_body, max_trailer);
        if let Decoded::Error(s) = once {
            assert!([400, 413, 431].contains(&s), "chunked decoder status {s}");
        }
        if let Decoded::Done { body, .. } | Decoded::NeedMore { body } = &once {
            assert!(body.len() <= max_body, "decoded past max_body");
        }
        let bytewise = decode_bytewise(rest, max_body, max_trailer);
        assert_eq!(once, bytewise, "chunked decoding depends on the split");
    }
}

/// The fast path against the full parser on `data` under `limits`: when the
/// fast path answers, the full parser must give a complete head with every
/// field and every header span the same; and `parse_head` (fast path, then
/// full parser) must always say what the full parser says. Returns whether
/// the fast path answered.
pub fn fast_head_agrees(data: &[u8], limits: &ParseLimits) -> bool {
    let mut full_headers = Vec::new();
    let full = parse_head_full(data, limits, &mut full_headers);
    let mut fast_headers = Vec::new();
    let fast = fast_head::parse(data, limits, &mut fast_headers);
    if let Some(head) = &fast {
        let Parsed::Complete(want) = &full else {
            panic!(
                "fast path accepts what the full parser answers {full:?} \
                 (limits {limits:?}): {}",
                data.escape_ascii()
            );
        };
        assert_eq!(
            format!("{head:?}"),
            format!("{want:?}"),
            "fast path head differs (limits {limits:?}): {}",
            data.escape_ascii()
        );
        assert_eq!(
            fast_headers,
            full_headers,
            "fast path header spans differ (limits {limits:?}): {}",
            data.escape_ascii()
        );
    }
    let mut both_headers = Vec::new();
    let both = parse_head(data, limits, &mut both_headers);
    let same = match (&both, &full) {
        (Parsed::Partial, Parsed::Partial) => true,
        (Parsed::Error(a), Parsed::Error(b)) => a == b,
        (Parsed::Complete(a), Parsed::Complete(b)) => {
            format!("{a:?}") == format!("{b:?}") && both_headers == full_headers
        }
        _ => false,
    };
    assert!(
        same,
        "parse_head gives {both:?}, the full parser {full:?} (limits {limits:?}): {}",
        data.escape_ascii()
    );
    fast.is_some()
}

/// The limits `fast_head_target` tries on `data`: the defaults, small
/// counts, and the line and head limits set one below, at and one above
/// the input's own request line and head (where 414/431 start), within
/// what `ConnectionConfig` accepts (a request line of at least 16 bytes,
/// a header section at least as long).
pub fn fast_head_limits(data: &[u8]) -> Vec<ParseLimits> {
    let default = ParseLimits::default();
    let mut v = vec![
        default,
        ParseLimits {
            max_headers: 1,
            max_body_bytes: 9,
            ..default
        },
    ];
    let line = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let head = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(data.len(), |p| p + 4);
    for (size, is_line) in [(line, true), (head, false)] {
        for n in [
            size.saturating_sub(2),
            size.saturating_sub(1),
            size,
            size + 1,
        ] {
            let n = n.max(16);
            v.push(if is_line {
                ParseLimits {
                    max_request_line: n,
                    max_header_bytes: n.max(default.max_header_bytes),
                    ..default
                }
            } else {
                ParseLimits {
                    max_header_bytes: n,
                    max_request_line: n.min(default.max_request_line),
                    ..default
                }
            });
        }
    }
    v
}

pub fn fast_head_target(data: &[u8]) {
    for limits in fast_head_limits(data) {
        fast_head_agrees(data, &limits);
    }
}

/// Input layout: `[send_cap, flags, s0, s1, s2, s3, stream...]`.
/// * send_cap % 8: most bytes one send accepts (0 = unlimited);
/// * flags bit 0: FIN after the last piece; bit 1: small limits; bit 2:
///   stream request bodies over 16 bytes to the body handler;
/// * s0..s3: recv piece sizes, used in turn; 0 = the rest in one piece.
pub const CONTROL_BYTES: usize = 6;

pub fn state_machine_target(data: &[u8]) -> Option<Outcome> {
    if data.len() < CONTROL_BYTES {
        return None;
    }
    let (control, stream) = data.split_at(CONTROL_BYTES);
    let send_cap = (control[0] % 8) as usize;
    let flags = control[1];
    let sizes = &control[2..6];
    let mut limits = Limits::default();
    if flags & 2 != 0 {
        limits.max_body_bytes = 64;
        limits.max_request_line = 64;
        limits.max_header_bytes = 256;
        limits.max_headers = 8;
    }
    let stream_above = (flags & 4 != 0).then_some(16);
    let mut pieces: Vec<&[u8]> = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < stream.len() {
        let n = match sizes[i % 4] {
            0 => stream.len() - at,
            s => (s as usize).min(stream.len() - at),
        };
        pieces.push(&stream[at..at + n]);
        at += n;
        i += 1;
    }
    let out = run_exchange_with(limits, &pieces, flags & 1 != 0, send_cap, stream_above);

    if !out.sent.is_empty() {
        let head = &out.sent[..out.sent.len().min(13)];
        let ok = head.len() == 13
            && head.starts_with(b"HTTP/1.1 ")
            && head[9..12].iter().all(u8::is_ascii_digit)
            && head[12] == b' ';
        assert!(
            ok,
            "output does not start with a status line: {:?}",
            head.escape_ascii().to_string()
        );
    }
    let st = &out.stats;
    assert_eq!(st.accepted, 1);
    let closes = st.closed_completed
        + st.closed_peer
        + st.closed_reset
        + st.closed_timeout
        + st.closed_limit
        + st.closed_protocol
        + st.closed_shutdown
        + st.closed_error;
    if out.closed {
        assert_eq!((st.active_connections, closes), (0, 1), "{st:?}");
    } else {
        assert_eq!((st.active_connections, closes), (1, 0), "{st:?}");
    }
    assert!(
        st.responses <= st.requests + 1,
        "{} responses to {} requests",
        st.responses,
        st.requests
    );
    Some(out)
}
