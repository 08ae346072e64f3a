//! Request smuggling: request pairs ported from the smuggling suites of
//! well-known HTTP implementations, each run through the real state machine
//! from memory (`harness::run_exchange`).
//!
//! A smuggling attack needs the server to see a different number of
//! requests than a strict front end does. So every case states the exact
//! status sequence a strict server answers with (and, where the reference
//! suites themselves disagree, the other acceptable sequence), and asserts:
//! * the server answers at most that many responses — never a response to
//!   the smuggled request where a strict server gives none;
//! * a refusal is an error status with `Connection: close`, then a close
//!   (or a lingering half-close);
//! * the stream reads cleanly with h11 too (python3-h11, independent);
//! * the same bytes delivered one byte per recv give identical output
//!   (framing decisions must not depend on how the bytes arrive).
//!
//! Sources (cited per group below):
//! * nodejs/node  test/parallel/test-http-*.js (regression tests for
//!   HackerOne 735748 and CVE-2020-8287 / CVE-2022-32215 / CVE-2023-30589)
//! * nodejs/llhttp  test/request/transfer-encoding.md, content-length.md
//! * MDA2AV/Http11Probe  src/Http11Probe/TestCases/Suites/SmugglingSuite.cs
//!   (SMUG-* test ids)
//! * python-hyper/h11  h11/tests/test_io.py (test_ChunkedReader), as shipped
//!   in Debian's python3-h11 0.14
//!
//! Payloads are re-typed for this server (Host "a", the reference handler's
//! routes: `/` answers "Hello, World!", `/echo` echoes the body, anything
//! else 404), keeping each suite's framing bytes exactly.

#[path = "conformance/wire.rs"]
mod wire;

use connection_core::config::Limits;
use connection_core::harness::run_exchange;
use wire::*;

struct Case {
    name: &'static str,
    /// Where it comes from (suite and test id).
    source: &'static str,
    bytes: Vec<u8>,
    /// The method of each request, for framing HEAD responses.
    methods: Vec<&'static str>,
    /// Acceptable status sequences; the first is the strict answer.
    accept: Vec<Vec<u16>>,
}

fn c(name: &'static str, source: &'static str, bytes: impl AsRef<[u8]>, strict: &[u16]) -> Case {
    Case {
        name,
        source,
        bytes: bytes.as_ref().to_vec(),
        methods: vec![],
        accept: vec![strict.to_vec()],
    }
}

impl Case {
    /// Another outcome the reference suites accept (they disagree here).
    fn or(mut self, alt: &[u16]) -> Case {
        self.accept.push(alt.to_vec());
        self
    }
    fn methods(mut self, m: &[&'static str]) -> Case {
        self.methods = m.to_vec();
        self
    }
}

const GET: &str = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";

/// `POST / HTTP/1.1`, Host a, then `fields` (each ending CRLF), blank line, `body`.
fn post(fields: &str, body: &str) -> Vec<u8> {
    format!("POST /echo HTTP/1.1\r\nHost: a\r\n{fields}\r\n{body}").into_bytes()
}

fn bytes(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[allow(clippy::vec_init_then_push)] // one push per case, each with its source
fn cases() -> Vec<Case> {
    let mut v = Vec::new();

    // ---- nodejs/node test/parallel ---------------------------------------
    // test-http-invalid-te.js (HackerOne 735748): CL and an obfuscated TE.
    v.push(c(
        "node_invalid_te",
        "nodejs/node test/parallel/test-http-invalid-te.js",
        "POST / HTTP/1.1\r\nContent-Type: text/plain; charset=utf-8\r\nHost: a\r\nConnection: keep-alive\r\nContent-Length: 10\r\nTransfer-Encoding: eee, chunked\r\n\r\nHELLOWORLDPOST / HTTP/1.1\r\nContent-Type: text/plain; charset=utf-8\r\nHost: a\r\nConnection: keep-alive\r\nContent-Length: 28\r\n\r\nI AM A SMUGGLED REQUEST!!!\r\n",
        &[400],
    ));
    // test-http-transfer-encoding-smuggling.js, first block.
    v.push(
        c(
            "node_te_chunked_false",
            "nodejs/node test/parallel/test-http-transfer-encoding-smuggling.js",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked-false\r\nConnection: upgrade\r\n\r\n1\r\nA\r\n0\r\n\r\nGET /flag HTTP/1.1\r\nHost: a\r\n\r\n",
            &[400],
        )
        .or(&[501]),
    );
    // Same file, second block: the bad coding on an obs-folded line.
    v.push(c(
        "node_te_folded_chunked_false",
        "nodejs/node test/parallel/test-http-transfer-encoding-smuggling.js",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n , chunked-false\r\nConnection: upgrade\r\n\r\n1\r\nA\r\n0\r\n\r\nGET /flag HTTP/1.1\r\nHost: a\r\n\r\n",
        &[400],
    ));
    // test-http-chunked-smuggling.js (CVE-2021-22959 family): bare LF in a
    // chunk extension hiding a second request.
    v.push(c(
        "node_chunk_ext_lf",
        "nodejs/node test/parallel/test-http-chunked-smuggling.js",
        "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2;\nxx\r\n4c\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        &[400],
    ));
    // test-http-transfer-encoding-repeated-chunked.js
    v.push(
        c(
            "node_chunkedchunked",
            "nodejs/node test/parallel/test-http-transfer-encoding-repeated-chunked.js",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedchunked\r\n\r\n1\r\nA\r\n0\r\n\r\n",
            &[400],
        )
        .or(&[501]),
    );
    // test-http-server-reject-chunked-with-content-length.js
    v.push(c(
        "node_chunked_with_cl",
        "nodejs/node test/parallel/test-http-server-reject-chunked-with-content-length.js",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        &[400],
    ));

    // ---- nodejs/llhttp test/request/transfer-encoding.md -------------------
    let llhttp_te = "nodejs/llhttp test/request/transfer-encoding.md";
    v.push(c(
        "llhttp_empty_te_with_cl",
        llhttp_te,
        "POST /first HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\nContent-Length: 5\r\n\r\nhello",
        &[400],
    ));
    v.push(c("llhttp_identity_with_cl", llhttp_te,
        "POST /post_identity_body_world?q=search#hey HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nWorld", &[400]));
    v.push(c("llhttp_empty_te_fields_with_cl", llhttp_te,
        "POST / HTTP/1.1\r\nHost: foo\r\nContent-Length: 10\r\nTransfer-Encoding:\r\nTransfer-Encoding:\r\nTransfer-Encoding:\r\n\r\n2\r\nAA\r\n0\r\n", &[400]));
    v.push(c("llhttp_chunked_then_deflate", llhttp_te,
        "POST /post_identity_body_world?q=search#hey HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nTransfer-Encoding: chunked, deflate\r\n\r\nWorld", &[400]).or(&[501]));
    v.push(c("llhttp_chunked_then_deflate_fields", llhttp_te,
        "POST /post_identity_body_world?q=search#hey HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: deflate\r\n\r\nWorld", &[400]).or(&[501]));
    v.push(
        c(
            "llhttp_pigeons",
            llhttp_te,
            "PUT /url HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: pigeons\r\n\r\n",
            &[400],
        )
        .or(&[501]),
    );
    v.push(c(
        "llhttp_missing_last_chunk",
        llhttp_te,
        "PUT /url HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nfoo\r\n\r\n",
        &[400],
    ));
    v.push(c(
        "llhttp_chunk_params_lf",
        llhttp_te,
        "PUT /url HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3 \n  \r\nfoo\r\n\r\n",
        &[400],
    ));
    v.push(c("llhttp_obs_fold_after_chunked", llhttp_te,
        "PUT /url HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n  abc\r\n\r\n5\r\nWorld\r\n0\r\n\r\n", &[400]));
    v.push(c("llhttp_chunk_size_cr_cr", llhttp_te,
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: close \r\nTransfer-Encoding: chunked \r\n\r\n5\r\r;ABCD\r\n34\r\nE\r\n0\r\n\r\nGET / HTTP/1.1 \r\nHost: a\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", &[400]));
    v.push(c("llhttp_chunk_data_no_crlf", llhttp_te,
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: close \r\nTransfer-Encoding: chunked \r\n\r\n5\r\nABCDE0\r\n\r\n", &[400]));
    // llhttp and hyper (src/proto/h1/decode.rs, read_size_lws: after the
    // size only SP/HTAB, ";" or CR) reject a chunk size followed by a
    // space and a word that is not an extension.
    v.push(c("llhttp_no_semicolon_before_ext", llhttp_te,
        "POST /chunked_w_unicorns_after_length HTTP/1.1\r\nHost: localhost\r\nTransfer-encoding: chunked\r\n\r\n2 erfrferferf\r\naa\r\n0 rrrr\r\n\r\n", &[400]));
    // Whitespace after the size: llhttp rejects, h11 and hyper accept.
    v.push(c("llhttp_space_after_chunk_size", llhttp_te,
        "PUT /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\na \r\n0123456789\r\n0\r\n\r\n", &[400]).or(&[200]));

    // ---- nodejs/llhttp test/request/content-length.md ----------------------
    let llhttp_cl = "nodejs/llhttp test/request/content-length.md";
    v.push(
        c(
            "llhttp_cl_overflow",
            llhttp_cl,
            "PUT /url HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000000000000000\r\n\r\n",
            // A valid (RFC 9110 8.6), if huge, length: over the body limit.
            &[413],
        )
        .or(&[400]),
    );
    v.push(c(
        "llhttp_duplicate_cl",
        llhttp_cl,
        "PUT /url HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        &[400],
    ));
    v.push(c("llhttp_cl_with_identity", llhttp_cl,
        "PUT /url HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: identity\r\n\r\n\r\n", &[400]));
    v.push(c(
        "llhttp_funky_cl",
        llhttp_cl,
        "POST /echo HTTP/1.0\r\nconTENT-Length: 5\r\n\r\nHELLO",
        &[200],
    ));
    v.push(c(
        "llhttp_cl_spaces_2",
        llhttp_cl,
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4 2\r\n\r\n",
        &[400],
    ));
    v.push(c(
        "llhttp_cl_spaces_3",
        llhttp_cl,
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 13 37\r\n\r\n",
        &[400],
    ));
    v.push(c(
        "llhttp_cl_empty",
        llhttp_cl,
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
        &[400],
    ));
    v.push(c(
        "llhttp_cl_cr_for_dash",
        llhttp_cl,
        "PUT /url HTTP/1.1\r\nHost: a\r\nContent\rLength: 003\r\n\r\nabc",
        &[400],
    ));

    // ---- MDA2AV/Http11Probe SmugglingSuite.cs -------------------------------
    let probe = "MDA2AV/Http11Probe src/Http11Probe/TestCases/Suites/SmugglingSuite.cs";
    v.push(c(
        "SMUG-CL-TE-BOTH",
        probe,
        post(
            "Content-Length: 23\r\nTransfer-Encoding: chunked\r\n",
            "D\r\nhello-bananas\r\n0\r\n\r\n",
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-DUPLICATE-CL",
        probe,
        post("Content-Length: 5\r\nContent-Length: 10\r\n", "helloworld"),
        &[400],
    ));
    v.push(c(
        "SMUG-CL-LEADING-ZEROS",
        probe,
        post("Content-Length: 005\r\n", "hello"),
        &[200],
    ));
    v.push(
        c(
            "SMUG-TE-XCHUNKED",
            probe,
            post(
                "Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n",
                "hello",
            ),
            &[400],
        )
        .or(&[501]),
    );
    v.push(c(
        "SMUG-TE-TRAILING-SPACE",
        probe,
        post(
            "Transfer-Encoding: chunked \r\nContent-Length: 5\r\n",
            "hello",
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-TE-SP-BEFORE-COLON",
        probe,
        post(
            "Transfer-Encoding : chunked\r\nContent-Length: 5\r\n",
            "hello",
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-CL-NEGATIVE",
        probe,
        post("Content-Length: -1\r\n", ""),
        &[400],
    ));
    v.push(c(
        "SMUG-CLTE-PIPELINE",
        probe,
        bytes(&[
            &post(
                "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
            GET.as_bytes(),
        ]),
        &[400],
    ));
    v.push(c(
        "SMUG-TECL-PIPELINE",
        probe,
        bytes(&[
            &post(
                "Transfer-Encoding: chunked\r\nContent-Length: 30\r\n",
                "0\r\n\r\n",
            ),
            GET.as_bytes(),
        ]),
        &[400],
    ));
    v.push(c(
        "SMUG-CL-TRAILING-SPACE",
        probe,
        post("Content-Length: 5 \r\n", "hello"),
        &[200],
    ));
    v.push(c(
        "SMUG-TE-DOUBLE-CHUNKED",
        probe,
        post(
            "Transfer-Encoding: chunked, chunked\r\nContent-Length: 5\r\n",
            "hello",
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-CL-EXTRA-LEADING-SP",
        probe,
        post("Content-Length:  5\r\n", "hello"),
        &[200],
    ));
    v.push(c(
        "SMUG-TE-CASE-MISMATCH",
        probe,
        post(
            "Transfer-Encoding: Chunked\r\nContent-Length: 5\r\n",
            "hello",
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-CL-COMMA-DIFFERENT",
        probe,
        post("Content-Length: 5, 10\r\n", "hello"),
        &[400],
    ));
    // RFC 9112 6.3 says 400 (MUST); RFC 9112 6.1 says 501 for an unknown
    // coding (SHOULD): either refuses the request and closes.
    v.push(
        c(
            "SMUG-TE-NOT-FINAL-CHUNKED",
            probe,
            post("Transfer-Encoding: chunked, gzip\r\n", "0\r\n\r\n"),
            &[400],
        )
        .or(&[501]),
    );
    v.push(c("SMUG-TE-HTTP10", probe, "POST /echo HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello", &[400]));
    // Chunk-extension grammar violations: Http11Probe wants 400, hyper and
    // h11 skip extensions unparsed. One request either way.
    v.push(
        c(
            "SMUG-CHUNK-BARE-SEMICOLON",
            probe,
            post("Transfer-Encoding: chunked\r\n", "5;\r\nhello\r\n0\r\n\r\n"),
            &[400],
        )
        .or(&[200]),
    );
    v.push(
        c(
            "SMUG-CHUNK-EXT-INVALID-TOKEN",
            probe,
            post(
                "Transfer-Encoding: chunked\r\n",
                "5;bad[=x\r\nhello\r\n0\r\n\r\n",
            ),
            &[400],
        )
        .or(&[200]),
    );
    v.push(c(
        "SMUG-BARE-CR-HEADER-VALUE",
        probe,
        post("Content-Length: 5\r\nX-Test: val\rue\r\n", "hello"),
        &[400],
    ));
    v.push(c(
        "SMUG-CL-OCTAL",
        probe,
        post("Content-Length: 0o5\r\n", "hello"),
        &[400],
    ));
    v.push(c(
        "SMUG-CHUNK-UNDERSCORE",
        probe,
        post(
            "Transfer-Encoding: chunked\r\n",
            "1_0\r\nhello world!!!!!\r\n0\r\n\r\n",
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-TE-EMPTY-VALUE",
        probe,
        post("Transfer-Encoding: \r\nContent-Length: 5\r\n", "hello"),
        &[400],
    ));
    v.push(c(
        "SMUG-TE-LEADING-COMMA",
        probe,
        post(
            "Transfer-Encoding: , chunked\r\nContent-Length: 5\r\n",
            "hello",
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-TE-DUPLICATE-HEADERS",
        probe,
        post(
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n",
            "hello",
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-CHUNK-HEX-PREFIX",
        probe,
        post(
            "Transfer-Encoding: chunked\r\n",
            "0x5\r\nhello\r\n0\r\n\r\n",
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-CHUNK-SIZE-PLUS",
        probe,
        post("Transfer-Encoding: chunked\r\n", "+5\r\nhello\r\n0\r\n\r\n"),
        &[400],
    ));
    // Whitespace after the size: Http11Probe and llhttp reject, h11 and hyper accept.
    v.push(
        c(
            "SMUG-CHUNK-SIZE-TRAILING-OWS",
            probe,
            post("Transfer-Encoding: chunked\r\n", "5 \r\nhello\r\n0\r\n\r\n"),
            &[400],
        )
        .or(&[200]),
    );
    v.push(c(
        "SMUG-CL-HEX-PREFIX",
        probe,
        post("Content-Length: 0x5\r\n", "hello"),
        &[400],
    ));
    v.push(c(
        "SMUG-CL-INTERNAL-SPACE",
        probe,
        post("Content-Length: 1 0\r\n", "hello12345"),
        &[400],
    ));
    v.push(c(
        "SMUG-CHUNK-LEADING-SP",
        probe,
        post("Transfer-Encoding: chunked\r\n", " 5\r\nhello\r\n0\r\n\r\n"),
        &[400],
    ));
    v.push(c(
        "SMUG-CHUNK-MISSING-TRAILING-CRLF",
        probe,
        post("Transfer-Encoding: chunked\r\n", "5\r\nhello0\r\n\r\n"),
        &[400],
    ));
    v.push(c(
        "SMUG-CHUNK-EXT-LF",
        probe,
        post("Transfer-Encoding: chunked\r\n", "5;\nhello\r\n0\r\n\r\n"),
        &[400],
    ));
    v.push(c(
        "SMUG-CHUNK-SPILL",
        probe,
        post(
            "Transfer-Encoding: chunked\r\n",
            "5\r\nhello!!\r\n0\r\n\r\n",
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-CHUNK-LF-TERM",
        probe,
        post("Transfer-Encoding: chunked\r\n", "5\r\nhello\n0\r\n\r\n"),
        &[400],
    ));
    v.push(c(
        "SMUG-CHUNK-EXT-CTRL",
        probe,
        post(
            "Transfer-Encoding: chunked\r\n",
            "5;\0ext\r\nhello\r\n0\r\n\r\n",
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-CHUNK-EXT-CR",
        probe,
        post(
            "Transfer-Encoding: chunked\r\n",
            "5;a\rX\r\nhello\r\n0\r\n\r\n",
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-TE-VTAB",
        probe,
        post(
            "Transfer-Encoding: \x0bchunked\r\nContent-Length: 5\r\n",
            "hello",
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-TE-FORMFEED",
        probe,
        post(
            "Transfer-Encoding: \x0cchunked\r\nContent-Length: 5\r\n",
            "hello",
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-TE-NULL",
        probe,
        post(
            "Transfer-Encoding: chunked\0\r\nContent-Length: 5\r\n",
            "hello",
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-CHUNK-LF-TRAILER",
        probe,
        post("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\n"),
        &[400],
    ));
    v.push(c(
        "SMUG-TE-IDENTITY",
        probe,
        post(
            "Transfer-Encoding: identity\r\nContent-Length: 5\r\n",
            "hello",
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-CHUNK-NEGATIVE",
        probe,
        post("Transfer-Encoding: chunked\r\n", "-1\r\nhello\r\n0\r\n\r\n"),
        &[400],
    ));
    // An underscore makes it another field: framing by Content-Length.
    v.push(c(
        "SMUG-TRANSFER_ENCODING",
        probe,
        post(
            "Transfer_Encoding: chunked\r\nContent-Length: 5\r\n",
            "hello",
        ),
        &[200],
    ));
    // RFC 9110 8.6 lets a recipient accept an identical list or reject it.
    v.push(
        c(
            "SMUG-CL-COMMA-SAME",
            probe,
            post("Content-Length: 5, 5\r\n", "hello"),
            &[400],
        )
        .or(&[200]),
    );
    v.push(
        c(
            "SMUG-CL-COMMA-TRIPLE",
            probe,
            post("Content-Length: 5, 5, 5\r\n", "hello"),
            &[400],
        )
        .or(&[200]),
    );
    v.push(c(
        "SMUG-CHUNKED-WITH-PARAMS",
        probe,
        post(
            "Transfer-Encoding: chunked;ext=val\r\nContent-Length: 5\r\n",
            "hello",
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-EXPECT-100-CL",
        probe,
        post("Content-Length: 5\r\nExpect: 100-continue\r\n", "hello"),
        &[200],
    ));
    // Framing fields in a trailer are ignored (RFC 9110 6.5.1): one request,
    // and the next one is read normally.
    v.push(c(
        "SMUG-TRAILER-CL",
        probe,
        bytes(&[
            &post(
                "Transfer-Encoding: chunked\r\n",
                "5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n",
            ),
            GET.as_bytes(),
        ]),
        &[200, 200],
    ));
    v.push(c(
        "SMUG-TRAILER-TE",
        probe,
        bytes(&[
            &post(
                "Transfer-Encoding: chunked\r\n",
                "5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n",
            ),
            GET.as_bytes(),
        ]),
        &[200, 200],
    ));
    v.push(c(
        "SMUG-TRAILER-HOST",
        probe,
        post(
            "Transfer-Encoding: chunked\r\n",
            "5\r\nhello\r\n0\r\nHost: evil.example.com\r\n\r\n",
        ),
        &[200],
    ));
    v.push(c(
        "SMUG-TRAILER-AUTH",
        probe,
        post(
            "Transfer-Encoding: chunked\r\n",
            "5\r\nhello\r\n0\r\nAuthorization: Bearer evil\r\n\r\n",
        ),
        &[200],
    ));
    v.push(c(
        "SMUG-TRAILER-CONTENT-TYPE",
        probe,
        post(
            "Transfer-Encoding: chunked\r\n",
            "5\r\nhello\r\n0\r\nContent-Type: text/evil\r\n\r\n",
        ),
        &[200],
    ));
    v.push(
        c(
            "SMUG-HEAD-CL-BODY",
            probe,
            format!("HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello{GET}"),
            &[200, 200],
        )
        .methods(&["HEAD", "GET"]),
    );
    v.push(c(
        "SMUG-OPTIONS-CL-BODY",
        probe,
        format!("OPTIONS / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello{GET}"),
        &[200, 200],
    ));
    v.push(c(
        "SMUG-CL-UNDERSCORE",
        probe,
        post("Content-Length: 1_0\r\n", "helloworld"),
        &[400],
    ));
    v.push(c(
        "SMUG-CL-NEGATIVE-ZERO",
        probe,
        post("Content-Length: -0\r\n", ""),
        &[400],
    ));
    v.push(c(
        "SMUG-CL-DOUBLE-ZERO",
        probe,
        bytes(&[&post("Content-Length: 00\r\n", ""), GET.as_bytes()]),
        &[200, 200],
    ));
    v.push(c(
        "SMUG-CL-LEADING-ZEROS-OCTAL",
        probe,
        bytes(&[
            &post("Content-Length: 0200\r\n", &"A".repeat(200)),
            GET.as_bytes(),
        ]),
        &[200, 200],
    ));
    v.push(c(
        "SMUG-TE-OBS-FOLD",
        probe,
        post(
            "Transfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n",
            "hello",
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-TE-TRAILING-COMMA",
        probe,
        post(
            "Transfer-Encoding: chunked,\r\nContent-Length: 5\r\n",
            "hello",
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-TE-TAB-BEFORE-VALUE",
        probe,
        post(
            "Transfer-Encoding:\tchunked\r\nContent-Length: 5\r\n",
            "hello",
        ),
        &[400],
    ));
    v.push(
        c(
            "SMUG-ABSOLUTE-URI-HOST-MISMATCH",
            probe,
            "GET http://other.example.com/ HTTP/1.1\r\nHost: a\r\n\r\n",
            // The RFC has the origin server use the target's authority; the
            // application reads Host, so the mismatch is refused instead
            // (docs/RFC9112.md, RFC 9112 3.2.2).
            &[400],
        )
        .or(&[200]),
    );
    // RFC 9112 3.2: a Host field with an invalid value MUST get a 400.
    v.push(c(
        "SMUG-MULTIPLE-HOST-COMMA",
        probe,
        "GET / HTTP/1.1\r\nHost: a, other.example.com\r\n\r\n",
        &[400],
    ));
    v.push(c(
        "SMUG-CHUNK-BARE-CR-TERM",
        probe,
        post("Transfer-Encoding: chunked\r\n", "5\rhello\r\n0\r\n\r\n"),
        &[400],
    ));
    v.push(c(
        "SMUG-CLTE-CONN-CLOSE",
        probe,
        bytes(&[
            &post(
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
            GET.as_bytes(),
        ]),
        &[400],
    ));
    v.push(c(
        "SMUG-TECL-CONN-CLOSE",
        probe,
        bytes(&[
            &post(
                "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                "0\r\n\r\n",
            ),
            GET.as_bytes(),
        ]),
        &[400],
    ));
    v.push(c(
        "SMUG-CLTE-DESYNC",
        probe,
        bytes(&[
            &post(
                "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\nX",
            ),
            GET.as_bytes(),
        ]),
        &[400],
    ));
    let smuggled_get = format!("0\r\n\r\n{GET}");
    let smuggled_head = "0\r\n\r\nHEAD / HTTP/1.1\r\nHost: a\r\n\r\n";
    v.push(c(
        "SMUG-CLTE-SMUGGLED-GET",
        probe,
        post(
            &format!(
                "Content-Length: {}\r\nTransfer-Encoding: chunked\r\n",
                smuggled_get.len()
            ),
            &smuggled_get,
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-CLTE-SMUGGLED-GET-CL-PLUS",
        probe,
        post(
            &format!(
                "Content-Length: +{}\r\nTransfer-Encoding: chunked\r\n",
                smuggled_get.len()
            ),
            &smuggled_get,
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-CLTE-SMUGGLED-GET-CL-NON-NUMERIC",
        probe,
        post(
            &format!(
                "Content-Length: {}x\r\nTransfer-Encoding: chunked\r\n",
                smuggled_get.len()
            ),
            &smuggled_get,
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-CLTE-SMUGGLED-GET-TE-OBS-FOLD",
        probe,
        post(
            &format!(
                "Transfer-Encoding:\r\n chunked\r\nContent-Length: {}\r\n",
                smuggled_get.len()
            ),
            &smuggled_get,
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-CLTE-SMUGGLED-HEAD",
        probe,
        post(
            &format!(
                "Content-Length: {}\r\nTransfer-Encoding: chunked\r\n",
                smuggled_head.len()
            ),
            smuggled_head,
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-CLTE-SMUGGLED-GET-TE-TRAILING-SPACE",
        probe,
        post(
            &format!(
                "Content-Length: {}\r\nTransfer-Encoding: chunked \r\n",
                smuggled_get.len()
            ),
            &smuggled_get,
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-CLTE-SMUGGLED-GET-TE-LEADING-COMMA",
        probe,
        post(
            &format!(
                "Content-Length: {}\r\nTransfer-Encoding: , chunked\r\n",
                smuggled_get.len()
            ),
            &smuggled_get,
        ),
        &[400],
    ));
    v.push(c(
        "SMUG-CLTE-SMUGGLED-GET-TE-CASE-MISMATCH",
        probe,
        post(
            &format!(
                "Content-Length: {}\r\nTransfer-Encoding: Chunked\r\n",
                smuggled_get.len()
            ),
            &smuggled_get,
        ),
        &[400],
    ));
    v.push(c("SMUG-TE-DUPLICATE-HEADERS-SMUGGLED-GET", probe, post(&format!("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nContent-Length: {}\r\n", smuggled_get.len()), &smuggled_get), &[400]));
    let inner = "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\n";
    let tecl_body = format!("{:x}\r\n{inner}\r\n0\r\n\r\n", inner.len());
    v.push(c(
        "SMUG-TECL-SMUGGLED-GET",
        probe,
        post(
            "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
            &tecl_body,
        ),
        &[400],
    ));
    let ping_get = format!("PING{GET}");
    v.push(c(
        "SMUG-DUPLICATE-CL-SMUGGLED-GET",
        probe,
        post(
            &format!(
                "Content-Length: 4\r\nContent-Length: {}\r\n",
                ping_get.len()
            ),
            &ping_get,
        ),
        &[400],
    ));
    // A GET whose body is the prefix of a request; the rest follows. The
    // prefix is body, the blank line that follows is ignored (RFC 9112
    // 2.2), and the next GET is read: two responses.
    let prefix = "GET / HTTP/1.1\r\nHost: a\r\n";
    v.push(c(
        "SMUG-GET-CL-PREFIX-DESYNC",
        probe,
        format!(
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{prefix}\r\n{GET}",
            prefix.len()
        ),
        &[200, 200],
    ));
    v.push(c(
        "SMUG-TECL-DESYNC",
        probe,
        bytes(&[
            &post(
                "Transfer-Encoding: chunked\r\nContent-Length: 30\r\n",
                "0\r\n\r\nX",
            ),
            GET.as_bytes(),
        ]),
        &[400],
    ));
    // "X" + "GET" is a request for the unknown method XGET.
    v.push(c(
        "SMUG-CL0-BODY-POISON",
        probe,
        bytes(&[&post("Content-Length: 0\r\n", "X"), GET.as_bytes()]),
        &[200, 501],
    ));
    v.push(c(
        "SMUG-GET-CL-BODY-DESYNC",
        probe,
        format!("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello{GET}"),
        &[200, 200],
    ));
    v.push(c(
        "SMUG-OPTIONS-CL-BODY-DESYNC",
        probe,
        format!("OPTIONS / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello{GET}"),
        &[200, 200],
    ));
    v.push(c(
        "SMUG-EXPECT-100-CL-DESYNC",
        probe,
        bytes(&[
            &post("Content-Length: 5\r\nExpect: 100-continue\r\n", "hello"),
            GET.as_bytes(),
        ]),
        &[200, 200],
    ));
    v.push(c("SMUG-OPTIONS-TE-OBS-FOLD", probe, format!("OPTIONS / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\nhello{GET}"), &[400]));
    v.push(c(
        "SMUG-CHUNK-INVALID-SIZE-DESYNC",
        probe,
        bytes(&[
            &post("Transfer-Encoding: chunked\r\n", "+0\r\n\r\nX"),
            GET.as_bytes(),
        ]),
        &[400],
    ));
    v.push(c(
        "SMUG-PIPELINE-SAFE",
        probe,
        format!("{GET}{GET}"),
        &[200, 200],
    ));

    // ---- RFC 9112 9.6 (docs/RFC9112.md) --------------------------------------
    // Not in the conformance table: whether the server closes at once or
    // lingers depends on whether the second request had arrived when the
    // first response went out; the bytes sent do not.
    v.push(c(
        "close_stops_pipeline",
        "RFC 9112 9.6: after a request with close, MUST NOT process further requests",
        format!("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n{GET}"),
        &[200],
    ));

    // ---- python-hyper/h11 h11/tests/test_io.py (test_ChunkedReader) ---------
    let h11 = "python-hyper/h11 h11/tests/test_io.py";
    v.push(c(
        "h11_chunk_term_underscores",
        h11,
        post("Transfer-Encoding: chunked\r\n", "3\r\nxxx__1a\r\n"),
        &[400],
    ));
    v.push(c(
        "h11_chunk_term_cr_underscore",
        h11,
        post("Transfer-Encoding: chunked\r\n", "3\r\nxxx\r_1a\r\n"),
        &[400],
    ));
    v.push(c(
        "h11_chunk_term_underscore_lf",
        h11,
        post("Transfer-Encoding: chunked\r\n", "3\r\nxxx_\n1a\r\n"),
        &[400],
    ));
    v.push(
        c(
            "h11_chunk_size_100_digits",
            h11,
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("{}\r\nxxx", "9".repeat(100)),
            ),
            // A valid (RFC 9112 7.1), if huge, size: over the body limit.
            &[413],
        )
        .or(&[400]),
    );
    v.push(c(
        "h11_chunk_size_nul",
        h11,
        post("Transfer-Encoding: chunked\r\n", "10\0\r\nxxx"),
        &[400],
    ));
    v.push(c(
        "h11_chunk_ext_accepted",
        h11,
        post(
            "Transfer-Encoding: chunked\r\n",
            "5; hello=there\r\nxxxxx\r\n0; random=\"junk\"; some=more; canbe=lonnnnngg\r\n\r\n",
        ),
        &[200],
    ));
    v
}

fn is_error(status: u16) -> bool {
    status >= 400 && status != 404
}

#[test]
fn smuggling_corpus() {
    let cases = cases();
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names must be unique");

    let mut failures = String::new();
    let mut lenient = Vec::new();
    let mut records = Vec::new();
    let mut outcomes = Vec::new();
    for case in &cases {
        let mut problems: Vec<String> = Vec::new();
        let out = run_exchange(Limits::default(), &[&case.bytes], false, 0);
        let bytewise: Vec<&[u8]> = case.bytes.chunks(1).collect();
        let split = run_exchange(Limits::default(), &bytewise, false, 0);
        // One byte per recv, a head with `Expect: 100-continue` is complete
        // before its body: a 100 Continue first is then right, and the only
        // difference allowed.
        let mut split_sent = split.sent.clone();
        let cont = b"HTTP/1.1 100 Continue\r\n\r\n";
        let expects = case
            .bytes
            .windows(12)
            .any(|w| w.eq_ignore_ascii_case(b"100-continue"));
        if expects && split_sent.starts_with(cont) && !out.sent.starts_with(cont) {
            split_sent.drain(..cont.len());
        }
        if split_sent != out.sent {
            problems.push(format!(
                "one byte per recv gives different output: {}",
                show(&split.sent)
            ));
        }
        let statuses: Vec<u16> = match parse_responses(&out.sent, &case.methods) {
            Ok(r) => {
                for (i, resp) in r.iter().enumerate() {
                    if is_error(resp.status) && !resp.has_field("Connection: close") {
                        problems.push(format!(
                            "response {i}: error {} without Connection: close",
                            resp.status
                        ));
                    }
                    if is_error(resp.status) && i + 1 != r.len() {
                        problems.push(format!(
                            "response {i}: error {} is followed by more responses",
                            resp.status
                        ));
                    }
                }
                r.iter().map(|r| r.status).collect()
            }
            Err(e) => {
                problems.push(format!("response stream does not parse: {e}"));
                vec![]
            }
        };
        let most = case.accept.iter().map(Vec::len).max().unwrap();
        if statuses.len() > most {
            problems.push(format!(
                "SMUGGLED: {} responses where a strict server gives at most {most}",
                statuses.len()
            ));
        }
        match case.accept.iter().position(|a| a == &statuses) {
            Some(0) => {}
            Some(_) => lenient.push(format!("{} ({:?})", case.name, statuses)),
            None => problems.push(format!(
                "statuses {statuses:?}, want one of {:?}",
                case.accept
            )),
        }
        let refused = statuses.last().is_some_and(|&s| is_error(s));
        if refused && !(out.closed || out.shut_write) {
            problems.push("refused, but the connection stays open".into());
        }
        records.push(Record {
            name: case.name.replace(' ', "_"),
            methods: case.methods.clone(),
            bytes: out.sent.clone(),
        });
        outcomes.push((problems, out.sent, statuses));
    }

    let lines = h11_check(&records);
    for ((case, line), (problems, _, statuses)) in cases.iter().zip(&lines).zip(outcomes.iter_mut())
    {
        if !line.contains("\"error\":null") {
            problems.push(format!("h11 rejects the response stream: {line}"));
        }
        let h11_count = line.matches("\"status\":").count();
        if h11_count != statuses.len() {
            problems.push(format!(
                "h11 reads {h11_count} responses, we read {}: {line}",
                statuses.len()
            ));
        }
        if problems.is_empty() {
            continue;
        }
        failures.push_str(&format!(
            "\n[{}] from {}\n  sent:     {}\n  received: {}\n  expected: one of {:?} (first = strict)\n",
            case.name,
            case.source,
            show(&case.bytes),
            show(&outcomes_sent(&records, case.name)),
            case.accept
        ));
        for p in problems.iter() {
            failures.push_str(&format!("  - {p}\n"));
        }
    }
    let failed = outcomes.iter().filter(|o| !o.0.is_empty()).count();
    eprintln!(
        "smuggling: {}/{} cases pass; answered with a lenient (still single-request) alternative: {}",
        cases.len() - failed,
        cases.len(),
        if lenient.is_empty() { "none".to_string() } else { lenient.join(", ") }
    );
    assert!(
        failures.is_empty(),
        "{failed} of {} smuggling cases fail:{failures}",
        cases.len()
    );
}

fn outcomes_sent(records: &[Record], name: &str) -> Vec<u8> {
    records
        .iter()
        .find(|r| r.name == name)
        .map(|r| r.bytes.clone())
        .unwrap_or_default()
}
