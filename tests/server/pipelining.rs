//! 100 pipelined requests written in a single write on one
//! connection are all answered, in order.

#[path = "../common/mod.rs"]
mod common;

use common::*;
use std::time::{Duration, Instant};

const COUNT: usize = 100;

enum Expect {
    Echo(String),
    Hello,
    NotFound,
}

/// Writes all requests in one write, then checks every response in order and
/// that the server closes after the last one (which says `Connection: close`).
fn pipeline(requests: &[(String, Expect)]) {
    let mut server = Server::start(&[]);
    let port = server.port;

    let mut wire = Vec::new();
    for (raw, _) in requests {
        wire.extend_from_slice(raw.as_bytes());
    }
    let mut c = Conn::open(port);
    c.send(&wire).expect("write the pipelined requests");

    let deadline = Instant::now() + Duration::from_secs(5);
    for (i, (_, expect)) in requests.iter().enumerate() {
        let (status, headers, body) = c.read_response(deadline).unwrap_or_else(|e| {
            panic!(
                "pipelined response {i} of {}: not received: {e}",
                requests.len()
            )
        });
        let text = String::from_utf8_lossy(&body);
        match expect {
            Expect::Echo(want) => {
                assert_eq!(
                    status, 200,
                    "response {i}: status {status}, body {text:?}, headers {headers:?}"
                );
                assert_eq!(text, want.as_str(), "response {i} out of order or wrong");
            }
            Expect::Hello => {
                assert_eq!(status, 200, "response {i}: status {status}, body {text:?}");
                assert_eq!(body, HELLO, "response {i}: body {text:?}");
            }
            Expect::NotFound => {
                assert_eq!(status, 404, "response {i}: status {status}, body {text:?}");
            }
        }
    }
    c.expect_eof(Instant::now() + Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("after the last (Connection: close) response: {e}"));
    drop(c);

    probe(port);
    server.assert_settled("after the pipelined requests");
}

fn echo(port_host: &str, i: usize, last: bool) -> (String, Expect) {
    let body = format!("req-{i}");
    let close = if last { "Connection: close\r\n" } else { "" };
    (
        format!(
            "POST /echo HTTP/1.1\r\nHost: {port_host}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{close}\r\n{body}",
            body.len()
        ),
        Expect::Echo(body),
    )
}

#[test]
fn pipelined_echo_answered_in_order() {
    let host = "127.0.0.1";
    let requests: Vec<(String, Expect)> =
        (0..COUNT).map(|i| echo(host, i, i + 1 == COUNT)).collect();
    pipeline(&requests);
}

#[test]
fn pipelined_mixed_answered_in_order() {
    let host = "127.0.0.1";
    let requests: Vec<(String, Expect)> = (0..COUNT)
        .map(|i| {
            let last = i + 1 == COUNT;
            let close = if last { "Connection: close\r\n" } else { "" };
            match i % 3 {
                0 => echo(host, i, last),
                1 => (
                    format!("GET /?i={i} HTTP/1.1\r\nHost: {host}\r\n{close}\r\n"),
                    Expect::Hello,
                ),
                _ => (
                    format!("GET /nope/{i} HTTP/1.1\r\nHost: {host}\r\n{close}\r\n"),
                    Expect::NotFound,
                ),
            }
        })
        .collect();
    pipeline(&requests);
}
