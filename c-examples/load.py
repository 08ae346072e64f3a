#!/usr/bin/env python3
"""Bounded client load for c-examples/server and test_server (python3
stdlib only).

Used by `make valgrind` and `make strace`; it only ever talks to 127.0.0.1.

  load.py load PORT         the mixed load: normal, aborted and pipelined
                            clients, echo/big/misc/HEAD checks, the
                            stub_status form, then /stats (needs test_server,
                            tests/fixtures/test_server.c, for stub_status)
  load.py abort PORT PATH   one client that reads a little of PATH and then
                            resets the connection (SO_LINGER 0); prints
                            "local_port N" first so a trace can be matched
  load.py get PORT PATH     one GET that must answer 200 (and the right body
                            for / and the generated routes)

Every socket has a timeout (LOAD_TIMEOUT seconds, default 30), so nothing
waits forever even when the server hangs - which is exactly the failure the
original epoll server had.  Exit status 0 = every check passed.
"""

import concurrent.futures
import json
import os
import random
import socket
import struct
import sys
import time

HOST = "127.0.0.1"
TIMEOUT = float(os.environ.get("LOAD_TIMEOUT", "30"))

# Must match PATTERN in server.c and test_server.c: byte i of every
# generated body is PATTERN[i % 64].
PATTERN = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+\n"
assert len(PATTERN) == 64

N_NORMAL = 200       # plain GET / on fresh connections
N_ABORT_RST = 50     # read a little, then close with SO_LINGER 0 (RST)
N_ABORT_FIN = 50     # half-close, then close with the response unread
N_PIPELINED = 20     # keep-alive connections with a batch of pipelined requests
WORKERS = 8
STORM_CLIENTS = 64   # clients per reset storm (all RST at once)
STORM_ROUNDS = 5


class CheckError(Exception):
    pass


def pattern(n):
    reps = n // len(PATTERN) + 1
    return (PATTERN * reps)[:n]


def connect(port):
    s = socket.create_connection((HOST, port), timeout=TIMEOUT)
    s.settimeout(TIMEOUT)
    return s


def build_request(method, path, body=None, close=False):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % HOST]
    if body is not None:
        lines.append("Content-Length: %d" % len(body))
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


class Reader:
    """Minimal HTTP/1.1 response reader over a blocking socket with timeout."""

    def __init__(self, sock):
        self.f = sock.makefile("rb")

    def line(self):
        data = self.f.readline(65537)
        if not data.endswith(b"\r\n"):
            raise CheckError("truncated line: %r" % data[:80])
        return data[:-2]

    def exact(self, n):
        data = self.f.read(n)
        if len(data) != n:
            raise CheckError("short body: wanted %d, got %d" % (n, len(data)))
        return data

    def response(self, head=False):
        """One response; head=True for the answer to a HEAD request (a
        head only, whatever Content-Length or Transfer-Encoding say)."""
        status_line = self.line().decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise CheckError("bad status line %r" % status_line)
        status = int(parts[1])
        headers = {}
        while True:
            h = self.line().decode("latin-1")
            if h == "":
                break
            name, _, value = h.partition(":")
            headers[name.strip().lower()] = value.strip()
        if head:
            body = b""
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.line().split(b";")[0], 16)
                if size == 0:
                    while self.line() != b"":  # trailers
                        pass
                    break
                chunks.append(self.exact(size))
                if self.line() != b"":
                    raise CheckError("chunk not followed by CRLF")
            body = b"".join(chunks)
        elif "content-length" in headers:
            body = self.exact(int(headers["content-length"]))
        else:
            body = self.f.read()
        return status, headers, body

    def at_eof(self):
        return self.f.read(1) == b""


def expect(cond, what):
    if not cond:
        raise CheckError(what)


def check_body(path, status, body, sent_body=None):
    """Check the status and body a given request must produce."""
    route = path.split("?", 1)[0]
    if route == "/":
        expect(status == 200 and body == b"Hello, World!", "GET / -> %d %r" % (status, body[:40]))
    elif route == "/user/register":
        expect(status == 200 and body == pattern(16 * 4096),
               "GET /user/register -> %d, %d bytes" % (status, len(body)))
    elif route == "/chunked":
        size = int(path.split("size=", 1)[1]) if "size=" in path else 65536
        expect(status == 200 and body == pattern(size),
               "GET %s -> %d, %d bytes (want %d)" % (path, status, len(body), size))
    elif route == "/big":
        expect(status == 200 and body == pattern(1 << 20), "GET /big -> %d, %d bytes" % (status, len(body)))
    elif route == "/echo":
        expect(status == 200 and body == sent_body,
               "POST /echo -> %d, %d bytes (sent %d)" % (status, len(body), len(sent_body or b"")))
    elif route == "/stats":
        expect(status == 200, "GET /stats -> %d" % status)
        json.loads(body)
    else:
        expect(status == 404 and body == b"Not Found", "GET %s -> %d %r" % (path, status, body[:40]))


def one_request(port, method, path, body=None, head=False):
    with connect(port) as s:
        s.sendall(build_request(method, path, body, close=True))
        status, headers, got = Reader(s).response(head=head)
    return status, headers, got


def task_normal(port):
    status, headers, body = one_request(port, "GET", "/")
    check_body("/", status, body)
    expect(headers.get("content-type", "").startswith("text/plain"), "GET / content-type %r" % headers)


def task_abort(port, path, how):
    """A client that goes away mid-response: the server must not care."""
    with connect(port) as s:
        try:
            s.sendall(build_request("GET", path))
            if how == "rst":
                s.recv(256)  # wait until the response has started, read a little
                # l_onoff=1, l_linger=0: close() sends RST instead of FIN.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                # FIN while the server still has the whole response to
                # write; the close() below leaves whatever arrived unread.
                s.shutdown(socket.SHUT_WR)
                s.recv(16)
        except ConnectionError:
            pass  # the server may already have reset us; a timeout still fails


def task_pipelined(port, rng):
    """Several requests in one write on one keep-alive connection."""
    echo_body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000)))
    batch = [
        ("GET", "/", None),
        ("GET", "/chunked?size=%d" % rng.randrange(0, 20000), None),
        ("POST", "/echo", echo_body),
        ("GET", "/user/register", None),
        ("GET", "/no/such/page", None),
        ("GET", "/stats", None),
    ]
    with connect(port) as s:
        wire = b"".join(build_request(m, p, b) for m, p, b in batch)
        wire += build_request("GET", "/", close=True)
        s.sendall(wire)
        r = Reader(s)
        for m, p, b in batch + [("GET", "/", None)]:
            status, _, body = r.response()
            check_body(p, status, body, b)
        expect(r.at_eof(), "pipelined: connection not closed after Connection: close")


def check_head_and_stub_status(port):
    """HEAD wherever GET is: the same head without the body, on a
    keep-alive connection that then answers a GET normally; and the
    nginx stub_status form of /stats."""
    with connect(port) as s:
        wire = b"".join(build_request("HEAD", p) for p in ("/", "/big", "/chunked?size=5000", "/user/register"))
        wire += build_request("GET", "/", close=True)
        s.sendall(wire)
        r = Reader(s)
        status, headers, _ = r.response(head=True)
        expect(status == 200 and headers.get("content-length") == "13", "HEAD / -> %d %r" % (status, headers))
        status, headers, _ = r.response(head=True)
        expect(status == 200 and headers.get("content-length") == str(1 << 20), "HEAD /big -> %d %r" % (status, headers))
        for path in ("/chunked", "/user/register"):
            status, headers, _ = r.response(head=True)
            expect(status == 200, "HEAD %s -> %d" % (path, status))
        status, _, body = r.response()
        check_body("/", status, body)
        expect(r.at_eof(), "HEAD pipeline: connection not closed after Connection: close")
    status, headers, _ = one_request(port, "HEAD", "/echo", head=True)
    expect(status == 405 and headers.get("allow") == "POST", "HEAD /echo -> %d %r" % (status, headers))
    status, headers, body = one_request(port, "GET", "/stats?format=text")
    lines = body.decode("latin-1").split("\n")
    expect(status == 200 and len(lines) == 5 and lines[4] == ""
           and lines[0].startswith("Active connections: ")
           and lines[1] == "server accepts handled requests"
           and len(lines[2].split()) == 3 and all(x.isdigit() for x in lines[2].split())
           and lines[3].startswith("Reading: 0 Writing: ") and " Waiting: " in lines[3],
           "GET /stats?format=text -> %d %r" % (status, body[:300]))
    status, _, body = one_request(port, "GET", "/stats?format=json")
    check_body("/stats", status, body)


def reset_storm(port, n=STORM_CLIENTS):
    """n clients start large responses, then all reset within a moment, so
    one epoll_wait batch holds several events for connections that an
    earlier event in the same batch already closed (test 9)."""
    socks = []
    try:
        for i in range(n):
            s = connect(port)
            s.sendall(build_request("GET", "/chunked?size=1048576&storm=%d" % i))
            socks.append(s)
        for s in socks:
            s.recv(64)  # the response has started
        for s in socks:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        for s in socks:
            s.close()


def run_pool(tasks):
    failures = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = [pool.submit(fn, *args) for fn, args in tasks]
        for fut in concurrent.futures.as_completed(futures):
            try:
                fut.result()
            except (OSError, CheckError, ValueError) as e:
                failures.append("%s: %s" % (type(e).__name__, e))
    return failures


def cmd_load(port):
    rng = random.Random(1)  # deterministic mix
    t0 = time.monotonic()
    tasks = [(task_normal, (port,)) for _ in range(N_NORMAL)]
    abort_paths = ["/chunked?size=1048576", "/user/register", "/big?copy=malloc", "/big?copy=file"]
    tasks += [(task_abort, (port, abort_paths[i % 4], "rst")) for i in range(N_ABORT_RST)]
    tasks += [(task_abort, (port, abort_paths[i % 4], "fin")) for i in range(N_ABORT_FIN)]
    tasks += [(task_pipelined, (port, random.Random(i))) for i in range(N_PIPELINED)]
    rng.shuffle(tasks)
    failures = run_pool(tasks)
    print("load: %d mixed clients in %.1fs, %d failures" % (len(tasks), time.monotonic() - t0, len(failures)))

    # Sequential checks whose answers are exact.
    try:
        for _ in range(STORM_ROUNDS):
            reset_storm(port)
        for size in (0, 1, 1000, 100000):
            body = bytes(rng.randrange(256) for _ in range(size))
            status, _, got = one_request(port, "POST", "/echo", body)
            check_body("/echo", status, got, body)
        for path in ("/big", "/big?copy=malloc", "/big?copy=file", "/chunked?size=1048576", "/chunked",
                     "/user/register", "/nope"):
            status, _, got = one_request(port, "GET", path)
            check_body(path, status, got)
        status, _, got = one_request(port, "GET", "/chunked?size=abc")
        expect(status == 400, "GET /chunked?size=abc -> %d" % status)
        status, headers, got = one_request(port, "PUT", "/")
        expect(status == 405, "PUT / -> %d" % status)
        status, _, got = one_request(port, "GET", "/echo")
        expect(status == 405, "GET /echo -> %d" % status)
        check_head_and_stub_status(port)
        # The server still answers after all the aborted clients.
        task_normal(port)
        status, _, got = one_request(port, "GET", "/stats")
        check_body("/stats", status, got)
        print("stats: " + json.dumps(json.loads(got), sort_keys=True))
    except (OSError, CheckError, ValueError) as e:
        failures.append("%s: %s" % (type(e).__name__, e))

    for f in failures[:20]:
        print("FAIL " + f, file=sys.stderr)
    if failures:
        print("load: %d check(s) failed" % len(failures), file=sys.stderr)
        return 1
    print("load: all checks passed in %.1fs" % (time.monotonic() - t0))
    return 0


def cmd_abort(port, path):
    s = connect(port)
    # Printed before anything else so the strace check can find this
    # connection's accept() line by its peer port.
    print("local_port %d" % s.getsockname()[1], flush=True)
    s.sendall(build_request("GET", path))
    got = s.recv(64)
    # Stop reading for a moment: the server fills the socket buffers, gets
    # EAGAIN and has to wait in epoll -- the original server's situation
    # when the client vanished mid-response.
    time.sleep(0.3)
    print("read %d bytes, resetting" % len(got), flush=True)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    return 0


def cmd_get(port, path):
    try:
        status, _, body = one_request(port, "GET", path)
        check_body(path, status, body)
    except (OSError, CheckError, ValueError) as e:
        print("FAIL GET %s: %s: %s" % (path, type(e).__name__, e), file=sys.stderr)
        return 1
    print("GET %s -> %d, %d bytes, ok" % (path, status, len(body)))
    return 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "load":
        return cmd_load(int(argv[2]))
    if len(argv) == 4 and argv[1] == "abort":
        return cmd_abort(int(argv[2]), argv[3])
    if len(argv) == 4 and argv[1] == "get":
        return cmd_get(int(argv[2]), argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
