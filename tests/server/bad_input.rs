//! Malformed requests, each on a fresh connection, get an error
//! status line (garbage 400, huge header 431, NUL 400, unknown method 501,
//! HTTP/9.9 505); the server then closes the connection (read returns 0
//! within 2 s) and keeps answering GET /.

#[path = "../common/mod.rs"]
mod common;

use common::*;
use std::io::{self, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

fn bad_request(name: &str, input: Vec<u8>, expected: u16) {
    let mut server = Server::start(&[]);
    let port = server.port;

    let mut c = Conn::open(port);
    // Write from another thread: the server may answer (and stop reading)
    // before a large input is all sent. Write errors are expected then.
    let mut writer: TcpStream = c.stream.try_clone().expect("clone stream");
    writer
        .set_write_timeout(Some(Duration::from_secs(5)))
        .expect("set_write_timeout");
    let input_len = input.len();
    let sender = thread::spawn(move || writer.write_all(&input).map(|()| input_len));

    let deadline = Instant::now() + Duration::from_secs(2);
    let (status, headers, body) = c.read_response(deadline).unwrap_or_else(|e| {
        panic!(
            "{name}: no complete error response within 2 s ({} bytes received: {:?}): {e}",
            c.received,
            String::from_utf8_lossy(c.buffered())
        )
    });
    assert!(
        (400..=599).contains(&status),
        "{name}: status {status} is not an error; body {:?}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(
        status, expected,
        "{name}: expected status {expected}, got {status}; headers {headers:?}"
    );

    // The server closes the connection after the error response.
    let delimited = header(&headers, "content-length").is_some()
        || header(&headers, "transfer-encoding").is_some();
    if delimited {
        match c.expect_eof(Instant::now() + Duration::from_secs(2)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => panic!(
                "{name}: the server reset the connection after its {status} instead of closing it (FIN)"
            ),
            Err(e) => panic!("{name}: the connection was not closed by the server within 2 s: {e}"),
        }
    }
    match sender.join() {
        Ok(Ok(n)) => eprintln!("{name}: all {n} input bytes were sent; answered {status}"),
        Ok(Err(e)) => eprintln!("{name}: answered {status}; writing the input stopped early: {e}"),
        Err(_) => panic!("{name}: the writer thread panicked"),
    }
    drop(c);

    probe(port);
    server.assert_settled(&format!("after {name}"));
}

#[test]
fn garbage_bytes_get_400() {
    let mut input = vec![
        0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03,
    ];
    input.extend_from_slice(b"\xff\xfe\x00garbage{}<>\x7f");
    input.extend_from_slice(b"\r\n\r\n");
    bad_request("garbage bytes", input, 400);
}

#[test]
fn huge_header_gets_431() {
    let mut input = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Huge: ".to_vec();
    input.resize(input.len() + 1024 * 1024, b'a');
    input.extend_from_slice(b"\r\n\r\n");
    bad_request("1 MiB header", input, 431);
}

#[test]
fn nul_in_request_line_gets_400() {
    bad_request(
        "NUL in the request line",
        b"GET /a\0b HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec(),
        400,
    );
}

#[test]
fn unknown_method_gets_501() {
    bad_request(
        "unknown method BREW",
        b"BREW / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec(),
        501,
    );
}

#[test]
fn http_9_9_gets_505() {
    bad_request(
        "GET / HTTP/9.9",
        b"GET / HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n".to_vec(),
        505,
    );
}
