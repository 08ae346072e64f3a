//! The example server's `--access-log FILE`: one line per request, in
//! nginx's `combined` format (checked with a regular expression), with
//! the status and `$body_bytes_sent` the client saw, the Referer and
//! User-Agent it sent ("-" for a request the library refused), pipelined
//! and refused requests included, the last ones written by the time the
//! server exits.

#[path = "../common/mod.rs"]
mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Conn, Server};

/// nginx's combined format, as Python's `re` reads it; prints each line's
/// fields tab-separated, or "BAD <line>" for a line that does not match.
const PARSE: &str = r#"
import re, sys
field = r'(?:[^"\\]|\\x[0-9A-F]{2})*'
combined = re.compile(
    r'^(\S+) - - \[(\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] '
    r'"(' + field + r')" (\d{3}) (\d+) "(' + field + r')" "(' + field + r')"$')
for line in open(sys.argv[1], encoding='ascii').read().split('\n')[:-1]:
    m = combined.match(line)
    print('\t'.join(m.groups()) if m else 'BAD ' + line)
"#;

/// Sends `raw` on a new connection and returns everything until the
/// server closes, and the length of the first response's head.
fn exchange(port: u16, raw: &[u8]) -> (Vec<u8>, usize) {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut conn = Conn::new(stream);
    conn.stream.write_all(raw).expect("send");
    let all = conn
        .read_to_eof(Instant::now() + Duration::from_secs(10))
        .expect("read");
    let head = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    (all, head)
}

#[test]
fn access_log_lines_are_nginx_combined() {
    let log = std::env::temp_dir().join(format!("cc-access-log-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let server = Server::start(&["--access-log", log.to_str().unwrap()]);
    let port = server.port;

    // (request, expected "$request", status, referer, user agent)
    let close = "Connection: close\r\n";
    let cases: Vec<(String, &str, u16, &str, &str)> = vec![
        (
            format!("GET /?t=1 HTTP/1.1\r\nHost: a\r\nReferer: http://r/\"q\r\nUser-Agent: al-test/1\r\n{close}\r\n"),
            "GET /?t=1 HTTP/1.1", 200, "http://r/\\x22q", "al-test/1",
        ),
        (
            format!("GET /chunked?size=1000&t=2 HTTP/1.1\r\nHost: a\r\nUser-Agent: al-test/2\r\n{close}\r\n"),
            "GET /chunked?size=1000&t=2 HTTP/1.1", 200, "-", "al-test/2",
        ),
        (
            format!("GET /nope?t=3 HTTP/1.1\r\nHost: a\r\n{close}\r\n"),
            "GET /nope?t=3 HTTP/1.1", 404, "-", "-",
        ),
        (
            format!("POST /echo?t=4 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n{close}\r\nhello"),
            "POST /echo?t=4 HTTP/1.1", 200, "-", "-",
        ),
        (
            // Refused by the library: no Host.
            "GET /?t=5 HTTP/1.1\r\nUser-Agent: al-test/5\r\n\r\n".to_string(),
            "GET /?t=5 HTTP/1.1", 400, "-", "-",
        ),
        (
            format!("HEAD /?t=6 HTTP/1.1\r\nHost: a\r\n{close}\r\n"),
            "HEAD /?t=6 HTTP/1.1", 200, "-", "-",
        ),
    ];
    let mut expected = Vec::new();
    for (raw, request, status, referer, agent) in &cases {
        let (all, head) = exchange(port, raw.as_bytes());
        assert!(all.starts_with(format!("HTTP/1.1 {status}").as_bytes()));
        let body = all.len() - head;
        expected.push((request.to_string(), *status, body, *referer, *agent));
    }
    // Two pipelined requests on one connection.
    let (all, _) = exchange(
        port,
        format!(
            "GET /?t=7 HTTP/1.1\r\nHost: a\r\n\r\nGET /?t=8 HTTP/1.1\r\nHost: a\r\n{close}\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(all.windows(13).filter(|w| w == b"Hello, World!").count(), 2);
    expected.push(("GET /?t=7 HTTP/1.1".into(), 200, 13, "-", "-"));
    expected.push(("GET /?t=8 HTTP/1.1".into(), 200, 13, "-", "-"));
    server.stop_cleanly("server --access-log");

    let out = Command::new("python3")
        .arg("-c")
        .arg(PARSE)
        .arg(&log)
        .output()
        .expect("python3 (Debian package python3) runs the format check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert!(!lines.is_empty(), "empty access log");
    for l in &lines {
        assert_eq!(l.len(), 7, "not nginx combined: {l:?}");
        assert_eq!(l[0], "127.0.0.1");
    }
    // Ours carry "t=N"; the rest are the start-up probes (GET / and /stats).
    let ours: Vec<&Vec<&str>> = lines.iter().filter(|l| l[2].contains("t=")).collect();
    assert_eq!(ours.len(), expected.len(), "lines: {text}");
    for (line, (request, status, body, referer, agent)) in ours.iter().zip(&expected) {
        assert_eq!(line[2], request, "{line:?}");
        assert_eq!(line[3], status.to_string(), "{line:?}");
        assert_eq!(line[4], body.to_string(), "{line:?}");
        assert_eq!(line[5], *referer, "{line:?}");
        assert_eq!(line[6], *agent, "{line:?}");
    }
    let probes = lines.len() - ours.len();
    assert!(
        (1..=4).contains(&probes),
        "{probes} lines besides ours: {text}"
    );
    let _ = std::fs::remove_file(&log);
}
