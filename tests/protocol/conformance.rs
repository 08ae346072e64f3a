//! RFC 9112 conformance, one table row per rule (tests/protocol/conformance/cases.rs):
//! the exact bytes sent, the status of every response and whether the
//! connection closes. Each row runs the real state machine from memory
//! (`harness::run_exchange`) and its output is read twice: by our own strict
//! response parser and by h11 (python3-h11, an independent strict HTTP/1.1
//! implementation). Every error status must come with `Connection: close`
//! and a close (or lingering half-close); with the client's FIN, the close
//! is counted as a protocol close.
//!
//! All failing rows are reported together, each with the bytes sent, the
//! bytes received and what was expected.

#[path = "conformance/cases.rs"]
mod cases;
#[path = "conformance/wire.rs"]
mod wire;

use cases::*;
use wire::*;

const DATE: &str = "Date: Thu, 01 Jan 1970 00:00:00 GMT";

/// A status the library itself produces for a refused request.
fn library_error(status: u16) -> bool {
    status >= 400 && status != 404
}

/// Checks one row against our own parse; returns the parse (if any) and
/// the problems found.
fn check_case(case: &Case) -> (Option<Vec<Response>>, Vec<String>, Vec<u8>) {
    let mut problems = Vec::new();
    let out = case.run(0);
    let sent = out.sent.clone();
    let parsed = match parse_responses(&sent, &case.methods) {
        Ok(p) => Some(p),
        Err(e) => {
            problems.push(format!("response stream does not parse: {e}"));
            None
        }
    };
    if let Some(resps) = &parsed {
        let got: Vec<(Vec<u16>, u16)> = resps.iter().map(|r| (r.info.clone(), r.status)).collect();
        let want: Vec<(Vec<u16>, u16)> = case
            .responses
            .iter()
            .map(|r| (r.info.clone(), r.status))
            .collect();
        if got != want {
            problems.push(format!(
                "responses (interim, status): got {got:?}, want {want:?}"
            ));
        }
        for (i, (r, w)) in resps.iter().zip(&case.responses).enumerate() {
            if let Some(body) = &w.body {
                if &r.body != body {
                    problems.push(format!(
                        "response {i}: body {:?}, want {:?}",
                        show(&r.body),
                        show(body)
                    ));
                }
            }
            if let Some(len) = w.len {
                if r.body.len() != len {
                    problems.push(format!(
                        "response {i}: body length {}, want {len}",
                        r.body.len()
                    ));
                }
            }
            for h in &w.has {
                if !r.has_field(h) {
                    problems.push(format!("response {i}: no field {h:?} in {:?}", r.fields));
                }
            }
            for name in &w.lacks {
                if r.header(name).is_some() {
                    problems.push(format!(
                        "response {i}: unexpected field {name} in {:?}",
                        r.fields
                    ));
                }
            }
            if !r.has_field(DATE) {
                problems.push(format!("response {i}: no {DATE:?} in {:?}", r.fields));
            }
            if library_error(r.status) && !r.has_field("Connection: close") {
                problems.push(format!(
                    "response {i}: error {} without Connection: close",
                    r.status
                ));
            }
            let last = i + 1 == case.responses.len();
            if last && case.close && !r.has_field("Connection: close") {
                problems.push(format!(
                    "last response lacks Connection: close: {:?}",
                    r.fields
                ));
            }
        }
    }
    let closing = out.closed || out.shut_write;
    if case.close && !closing {
        problems.push("connection left open; it must be closed (or half-closed)".into());
    }
    if !case.close && closing {
        problems.push(format!(
            "connection closed (closed={}, shut_write={}); it must stay open",
            out.closed, out.shut_write
        ));
    }
    if out.stats.responses != case.responses.len() as u64 {
        problems.push(format!(
            "stats.responses {} != {} responses expected",
            out.stats.responses,
            case.responses.len()
        ));
    }
    // A refused request: with the client's FIN after it, the lingering
    // close ends as a protocol close, and the bytes are the same.
    if case
        .responses
        .last()
        .is_some_and(|r| library_error(r.status))
    {
        let fin = case.run_pieces(&case.pieces(), true, 0);
        if !fin.closed || fin.stats.closed_protocol != 1 || fin.stats.active_connections != 0 {
            problems.push(format!(
                "with FIN: closed={} closed_protocol={} active={} (want closed, 1, 0)",
                fin.closed, fin.stats.closed_protocol, fin.stats.active_connections
            ));
        }
        if fin.sent != sent {
            problems.push("with FIN the output differs".into());
        }
    }
    // 100 Continue comes before the body is read: with only the head sent,
    // it is all the client has.
    let pieces = case.pieces();
    if case.expects_continue() {
        let head_only = case.run_pieces(&pieces[..1], false, 0);
        if head_only.sent != b"HTTP/1.1 100 Continue\r\n\r\n" {
            problems.push(format!(
                "with only the head sent, got {:?}, want exactly the 100 Continue line",
                show(&head_only.sent)
            ));
        }
    }
    if case
        .request
        .windows(12)
        .any(|w| w.eq_ignore_ascii_case(b"100-continue"))
        && !case.expects_continue()
        && find(&sent, b" 100 ").is_some()
    {
        problems.push("a 100 Continue was sent where none may be".into());
    }
    (parsed, problems, sent)
}

#[test]
fn conformance_table() {
    let cases = all_cases();
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names must be unique");

    let mut results = Vec::new();
    let mut records = Vec::new();
    for case in &cases {
        let (parsed, problems, sent) = check_case(case);
        records.push(Record {
            name: case.name.to_string(),
            methods: case.methods.clone(),
            bytes: sent.clone(),
        });
        results.push((parsed, problems, sent));
    }

    // The independent parser: h11 must read the same responses, with no
    // protocol error, and agree on the close.
    let lines = h11_check(&records);
    for ((case, line), (parsed, problems, _)) in cases.iter().zip(&lines).zip(results.iter_mut()) {
        // What h11 should print: the expected statuses with the body lengths
        // our parser read (or the pinned ones).
        let want_resps: Vec<Response> = case
            .responses
            .iter()
            .enumerate()
            .map(|(i, w)| Response {
                info: w.info.clone(),
                status: w.status,
                fields: vec![],
                body: vec![
                    0;
                    w.body
                        .as_ref()
                        .map(Vec::len)
                        .or(w.len)
                        .or_else(|| parsed.as_ref().and_then(|p| p.get(i)).map(|r| r.body.len()))
                        .unwrap_or(0)
                ],
            })
            .collect();
        let want = h11_line(case.name, &want_resps, case.close);
        if line != &want {
            problems.push(format!(
                "h11 disagrees:\n      h11:  {line}\n      want: {want}"
            ));
        }
    }

    let mut report = String::new();
    let mut passed = 0;
    for (case, (_, problems, sent)) in cases.iter().zip(&results) {
        if problems.is_empty() {
            passed += 1;
            continue;
        }
        report.push_str(&format!(
            "\n[{}] {}\n  sent:     {}\n  received: {}\n  expected: {}{}\n",
            case.name,
            case.rule,
            show(&case.request),
            show(sent),
            case.responses
                .iter()
                .map(|r| format!("{:?}{}", r.info, r.status))
                .collect::<Vec<_>>()
                .join(" "),
            if case.close {
                ", then close"
            } else {
                ", connection kept open"
            },
        ));
        for p in problems {
            report.push_str(&format!("  - {p}\n"));
        }
    }
    let valid = cases.iter().filter(|c| c.is_valid()).count();
    eprintln!(
        "conformance: {passed}/{} cases pass ({valid} valid requests, {} refused)",
        cases.len(),
        cases.len() - valid
    );
    assert!(
        report.is_empty(),
        "{} of {} conformance cases fail:{report}",
        cases.len() - passed,
        cases.len()
    );
}

/// The h11 checker itself must catch a broken stream (so a passing table
/// means something): two bodies for one Content-Length, a bare LF, a
/// truncated body.
#[test]
fn h11_checker_rejects_broken_streams() {
    let records = [
        Record {
            name: "extra_bytes".into(),
            methods: vec!["GET"],
            bytes: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhiXX".to_vec(),
        },
        Record {
            name: "truncated".into(),
            methods: vec!["GET"],
            bytes: b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhi".to_vec(),
        },
        Record {
            name: "head_ok".into(),
            methods: vec!["HEAD", "GET"],
            bytes: b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nx".to_vec(),
        },
    ];
    let lines = h11_check(&records);
    assert!(!lines[0].contains("\"error\":null"), "{}", lines[0]);
    assert!(!lines[1].contains("\"error\":null"), "{}", lines[1]);
    assert_eq!(
        lines[2],
        "{\"error\":null,\"name\":\"head_ok\",\"responses\":[{\"body\":0,\"info\":[],\"status\":200},{\"body\":1,\"info\":[100],\"status\":404}],\"server_close\":false}"
    );
    let own = parse_responses(&records[2].bytes, &records[2].methods).unwrap();
    assert_eq!(h11_line("head_ok", &own, false), lines[2]);
    assert!(parse_responses(&records[0].bytes, &["GET"]).is_err());
    assert!(parse_responses(&records[1].bytes, &["GET"]).is_err());
}

/// Every disagreement between our accept/reject decision and llhttp's,
/// decided in docs/RFC9112.md ("The second oracle"): the case, and why.
/// A new disagreement, or one listed here that went away, fails
/// `llhttp_agrees_on_accept_reject` until this list and the matrix say so.
const LLHTTP_DISAGREEMENTS: &[(&str, &str)] = &[
    // O1 llhttp 8.1 refuses RFC-valid chunk extensions (BWS, a token value followed by ';', quoted-pair)
    ("post_chunked_ext_trailers", "O1"),
    ("pipelined_chunked_then_get", "O1"),
    ("chunk_ext_bws_quoted", "O1"),
    // O2 identical repeated Content-Length lines: RFC 9110 8.6 lets us accept them as one
    ("same_content_lengths", "O2"),
    // O3 HTTP/1.2..1.9: RFC 9110 2.5 says process as 1.1; llhttp 8.1 refuses
    ("http12_as_11", "O3"),
    ("http19_chunked_post", "O3"),
    ("http12_after_empty_line", "O3"),
    ("http20", "O3"),
    ("http20_after_empty_line", "O3"),
    ("http09_version", "O3"),
    // O4 trailer fields are discarded (RFC 9112 7.1.2); llhttp parses a trailer Transfer-Encoding as if it were a header
    ("trailer_framing_fields_ignored", "O4"),
    // O5 server rules a parser does not check: Host, target syntax and form, schemes, versions, methods, codings, Expect
    ("te_gzip_chunked", "O5"),
    ("te_empty", "O5"),
    ("te_http10", "O5"),
    ("missing_host", "O5"),
    ("two_hosts", "O5"),
    ("two_same_hosts", "O5"),
    ("asterisk_get", "O5"),
    ("expect_unknown", "O5"),
    ("target_fragment", "O5"),
    ("query_fragment", "O5"),
    ("target_dquote", "O5"),
    ("target_braces", "O5"),
    ("target_angle_brackets", "O5"),
    ("target_backslash", "O5"),
    ("target_pipe_caret_backtick", "O5"),
    ("target_non_ascii", "O5"),
    ("target_bad_pct", "O5"),
    ("target_short_pct", "O5"),
    ("absolute_form_https_untrusted", "O5"),
    ("absolute_form_other_scheme", "O5"),
    ("authority_form_connect", "O5"),
    ("absolute_form_empty_host", "O5"),
    ("absolute_form_port_only", "O5"),
    ("absolute_form_userinfo", "O5"),
    ("absolute_form_bad_port", "O5"),
    ("absolute_form_fragment", "O5"),
    ("absolute_form_host_mismatch", "O5"),
    ("host_two_colons", "O5"),
    ("host_bad_port", "O5"),
    ("host_unclosed_ipv6", "O5"),
    ("host_bad_ipv6", "O5"),
    ("host_stray_bracket", "O5"),
    ("host_bad_pct", "O5"),
    ("host_userinfo", "O5"),
    ("host_with_path", "O5"),
    ("host_list", "O5"),
    ("host_invalid_http10", "O5"),
    ("two_hosts_http10", "O5"),
    ("error_after_good", "O5"),
    // O6 llhttp 8.1 is lenient where RFC 9112 lets or makes us refuse (bare LF, obs-fold, whitespace before a colon, empty names, request-line spacing, HTTP/0.9 lines, trailer and extension syntax)
    ("space_before_colon", "O6"),
    ("obs_fold", "O6"),
    ("empty_header_name", "O6"),
    ("bare_lf_request_line", "O6"),
    ("bare_lf_end", "O6"),
    ("double_space_request_line", "O6"),
    ("leading_bare_lf", "O6"),
    ("no_version", "O6"),
    ("trailer_space_before_colon", "O6"),
    ("trailer_empty_name", "O6"),
    ("trailer_obs_fold", "O6"),
    ("chunk_ext_empty_value", "O6"),
    // O7 size limits (413/414/431): llhttp has none
    ("request_line_too_long", "O7"),
    ("request_line_over_limit_by_one", "O7"),
    ("request_line_endless", "O7"),
    ("header_section_too_large", "O7"),
    ("header_section_over_limit_by_one", "O7"),
    ("header_section_endless", "O7"),
    ("too_many_headers", "O7"),
    ("too_many_headers_default", "O7"),
    ("body_too_large_default", "O7"),
    ("body_over_limit_length", "O7"),
    ("body_over_limit_chunked", "O7"),
    ("trailers_too_large", "O7"),
    ("expect_over_limit", "O7"),
];

/// The second, independent oracle (besides h11, which reads our
/// responses): llhttp, the parser of Node.js, from Debian's node-llhttp, in
/// its default strict mode, reads every request of the table. Where we
/// answer every request, llhttp must parse them all and stop cleanly;
/// where we refuse the k+1-th, llhttp must fail after k. Each disagreement
/// must be listed in LLHTTP_DISAGREEMENTS, and so in docs/RFC9112.md.
#[test]
fn llhttp_agrees_on_accept_reject() {
    let cases = all_cases();
    let records: Vec<(&str, &[u8])> = cases
        .iter()
        .map(|c| (c.name, c.request.as_slice()))
        .collect();
    let (version, verdicts) = llhttp_check(&records);
    let mut disagree = Vec::new();
    for (case, verdict) in cases.iter().zip(&verdicts) {
        let answered = case
            .responses
            .iter()
            .filter(|r| !library_error(r.status))
            .count();
        let refused = case
            .responses
            .last()
            .is_some_and(|r| library_error(r.status));
        let agrees = match verdict {
            Llhttp::Ok(n) => !refused && *n == answered,
            Llhttp::Error(n, _) => refused && *n == answered,
            Llhttp::Partial(_) => false,
        };
        if !agrees {
            let ours = if refused {
                format!(
                    "{answered} answered, then {}",
                    case.responses.last().unwrap().status
                )
            } else {
                format!("{answered} answered")
            };
            disagree.push((case.name, ours, verdict.clone()));
        }
    }
    let listed: Vec<&str> = LLHTTP_DISAGREEMENTS.iter().map(|(n, _)| *n).collect();
    let found: Vec<&str> = disagree.iter().map(|(n, _, _)| *n).collect();
    let unlisted: Vec<String> = disagree
        .iter()
        .filter(|(n, _, _)| !listed.contains(n))
        .map(|(n, ours, l)| format!("  {n}: we {ours}; llhttp {l:?}"))
        .collect();
    let gone: Vec<&&str> = listed.iter().filter(|n| !found.contains(n)).collect();
    eprintln!(
        "llhttp {version}: {} cases, {} agree, {} disagree (all decided in docs/RFC9112.md)",
        cases.len(),
        cases.len() - disagree.len(),
        disagree.len()
    );
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/RFC9112.md"))
        .expect("docs/RFC9112.md");
    let undocumented: Vec<&&str> = listed
        .iter()
        .filter(|n| !doc.contains(&format!("`{n}`")))
        .collect();
    assert!(
        unlisted.is_empty() && gone.is_empty() && undocumented.is_empty(),
        "llhttp {version} disagreements not decided:\n{}\nlisted but agreeing now: {gone:?}\nlisted but not in docs/RFC9112.md: {undocumented:?}",
        unlisted.join("\n")
    );
}

/// docs/RFC9112.md names its tests as `c/NAME` (a case of this table) and
/// `s/NAME` (a case of tests/protocol/smuggling.rs): each must exist, and every
/// matrix row must name a test or say why none.
#[test]
fn matrix_cites_existing_cases() {
    let root = env!("CARGO_MANIFEST_DIR");
    let doc = std::fs::read_to_string(format!("{root}/docs/RFC9112.md")).expect("docs/RFC9112.md");
    let smuggling = std::fs::read_to_string(format!("{root}/tests/protocol/smuggling.rs"))
        .expect("tests/protocol/smuggling.rs");
    let names: Vec<&str> = all_cases().iter().map(|c| c.name).collect();
    let mut missing = Vec::new();
    let mut cited = 0;
    for piece in doc.split('`').skip(1).step_by(2) {
        if let Some(name) = piece.strip_prefix("c/").filter(|n| !n.is_empty()) {
            cited += 1;
            if !names.contains(&name) {
                missing.push(piece.to_string());
            }
        } else if let Some(name) = piece.strip_prefix("s/").filter(|n| !n.is_empty()) {
            cited += 1;
            if !smuggling.contains(&format!("\"{name}\"")) {
                missing.push(piece.to_string());
            }
        }
    }
    let mut rows = 0;
    let mut untested = Vec::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | # | § | Level | Requirement | We do | Test |
        if cells.len() == 8 && cells[1].parse::<u32>().is_ok() {
            rows += 1;
            if cells[6].is_empty() || (cells[6] == "—" && !cells[5].contains("application")) {
                untested.push(cells[1].to_string());
            }
        }
    }
    eprintln!("docs/RFC9112.md: {rows} rows, {cited} test citations");
    assert!(
        missing.is_empty(),
        "docs/RFC9112.md cites unknown cases: {missing:?}"
    );
    assert!(
        untested.is_empty(),
        "matrix rows without a test: {untested:?}"
    );
    assert!(rows >= 80, "only {rows} matrix rows found");
}

static BEGIN_CHUNKED_204: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(1);

/// `/204` and `/304`: that status, an attempt at a chunked 204, then a body.
unsafe extern "C" fn no_content_handler(
    req: *const connection_core::ffi::request::Request,
    resp: *mut connection_core::ffi::response::Response,
    _user: *mut std::os::raw::c_void,
) {
    use connection_core::ffi::request::Request_Path;
    use connection_core::ffi::response::*;
    // SAFETY: the library passes live pointers for the duration of the call.
    unsafe {
        let mut len = 0usize;
        let path = Request_Path(req, &mut len);
        let path = std::slice::from_raw_parts(path as *const u8, len);
        let status = if path == b"/204" { 204 } else { 304 };
        Response_SetStatus(resp, status);
        if status == 204 {
            BEGIN_CHUNKED_204.store(
                Response_BeginChunked(resp),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        Response_Send(resp, b"body".as_ptr() as *const std::os::raw::c_void, 4);
    }
}

/// RFC 9112 6.1 and RFC 9110 8.6, 6.4.1 (docs/RFC9112.md row 48): no
/// Transfer-Encoding, no Content-Length and no content in a 204 or 304,
/// whatever the application asks for.
#[test]
fn no_content_statuses_carry_no_framing() {
    use connection_core::config::Limits;
    use connection_core::harness::run_exchange_handled;
    let out = run_exchange_handled(
        Limits::default(),
        Some(no_content_handler),
        &[b"GET /204 HTTP/1.1\r\nHost: a\r\n\r\nGET /304 HTTP/1.1\r\nHost: a\r\n\r\n"],
        false,
        0,
    );
    let sent = out.sent;
    assert_eq!(
        BEGIN_CHUNKED_204.load(std::sync::atomic::Ordering::Relaxed),
        connection_core::CONNECTION_ERR_INVALID,
        "a chunked 204 must be refused"
    );
    let resps = parse_responses(&sent, &["GET", "GET"]).expect("two responses");
    let statuses: Vec<u16> = resps.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [204, 304], "{}", show(&sent));
    for r in &resps {
        assert!(r.header("Content-Length").is_none(), "{:?}", r.fields);
        assert!(r.header("Transfer-Encoding").is_none(), "{:?}", r.fields);
        assert!(r.body.is_empty());
    }
    let lines = h11_check(&[Record {
        name: "no_content".into(),
        methods: vec!["GET", "GET"],
        bytes: sent,
    }]);
    assert_eq!(lines[0], h11_line("no_content", &resps, false));
}

/// Complete responses byte for byte against a model written out with
/// `format!`: 200s with bodies of every length up to 80 (each copy width
/// and the `memcpy` past it; the head composed in one piece), HEAD (no
/// body), 404 and HTTP/1.0 keep-alive (the general head), all pipelined.
#[test]
fn complete_responses_match_the_model_byte_for_byte() {
    use connection_core::config::Limits;
    use connection_core::harness::run_exchange;
    let mut sent = Vec::new();
    let mut want = Vec::new();
    let head = |status: &str, extra: &str, len: usize| {
        format!(
            "HTTP/1.1 {status}\r\n{DATE}\r\nContent-Type: text/plain\r\nContent-Length: {len}\r\n{extra}\r\n"
        )
    };
    for len in 0..=80usize {
        let body: Vec<u8> = (0..len).map(|i| b'a' + (i * 7 % 26) as u8).collect();
        sent.extend_from_slice(
            format!("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: {len}\r\n\r\n").as_bytes(),
        );
        sent.extend_from_slice(&body);
        want.extend_from_slice(head("200 OK", "", len).as_bytes());
        want.extend_from_slice(&body);
    }
    sent.extend_from_slice(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    want.extend_from_slice(head("200 OK", "", 13).as_bytes());
    sent.extend_from_slice(b"GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n");
    want.extend_from_slice(head("404 Not Found", "", 9).as_bytes());
    want.extend_from_slice(b"Not Found");
    sent.extend_from_slice(b"GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n");
    want.extend_from_slice(head("200 OK", "Connection: keep-alive\r\n", 13).as_bytes());
    want.extend_from_slice(b"Hello, World!");
    let out = run_exchange(Limits::default(), &[&sent], false, 0);
    assert_eq!(show(&out.sent), show(&want));
}
