//! RFC 9112 conformance, one table row per rule (tests/conformance/cases.rs):
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
