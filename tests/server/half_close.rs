//! A client that sends its request and then shuts down its
//! writing side (SHUT_WR) still receives the whole response, byte for byte,
//! and the server then closes the connection.

#[path = "../common/mod.rs"]
mod common;

use common::*;
use std::net::Shutdown;
use std::thread;
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;
/// Every body the example generates repeats this 64-byte pattern from offset 0.
const PATTERN: &[u8; 64] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+\n";

/// `path` is expected to answer 200 with exactly `len` body bytes, chunked or
/// not. With `late`, the client waits a little after its FIN before reading,
/// so the server sees the FIN well before it has sent the response.
fn half_closed_fetch(path: &str, len: usize, chunked: bool, late: bool) {
    let mut server = Server::start(&[]);
    let port = server.port;

    let mut c = Conn::open(port);
    // A keep-alive request: the FIN is the only sign the client is done.
    c.send(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
        .expect("send request");
    c.stream
        .shutdown(Shutdown::Write)
        .expect("shutdown(SHUT_WR)");
    if late {
        thread::sleep(Duration::from_millis(300));
    }

    let (status, headers, body) = c
        .read_response(Instant::now() + Duration::from_secs(10))
        .unwrap_or_else(|e| {
            panic!(
                "GET {path} then SHUT_WR: the response did not arrive in full ({} bytes received): {e}",
                c.received
            )
        });
    assert_eq!(
        status, 200,
        "GET {path}: status {status}, headers {headers:?}"
    );
    let is_chunked =
        header(&headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    assert_eq!(is_chunked, chunked, "GET {path}: headers {headers:?}");
    if !chunked {
        assert_eq!(
            header(&headers, "content-length"),
            Some(len.to_string().as_str()),
            "GET {path}: headers {headers:?}"
        );
    }
    assert_eq!(body.len(), len, "GET {path} after SHUT_WR: body length");
    if let Some(i) = body
        .iter()
        .enumerate()
        .position(|(i, b)| *b != PATTERN[i % PATTERN.len()])
    {
        panic!(
            "GET {path} after SHUT_WR: body byte {i} is {:#04x}, expected {:#04x}",
            body[i],
            PATTERN[i % 64]
        );
    }

    // Nothing else follows, and the server closes the half-closed connection.
    c.expect_eof(Instant::now() + Duration::from_secs(2)).unwrap_or_else(|e| {
        panic!("GET {path} after SHUT_WR: the server did not close the connection after the response: {e}")
    });
    drop(c);

    probe(port);
    server.assert_settled(&format!("after half-closed GET {path}"));
}

#[test]
fn half_close_big() {
    half_closed_fetch("/big", MIB, false, false);
}

#[test]
fn half_close_big_late_reader() {
    half_closed_fetch("/big", MIB, false, true);
}

#[test]
fn half_close_chunked() {
    half_closed_fetch("/chunked?size=1048576", MIB, true, false);
}

#[test]
fn half_close_chunked_late_reader() {
    half_closed_fetch("/chunked?size=1048576", MIB, true, true);
}
