"""The WebSocket echo example (c-examples/websocket.c) against the
`websockets` client library (Debian python3-websockets) and a raw socket.

usage: websocket_check.py PORT [--stats]

Prints "ok NAME" for each check and exits 0; on the first failure prints
"FAIL NAME: why" and exits 1. --stats (direct connections only) also reads
GET /stats while WebSockets are open: they must not count as the library's
connections. Run by tests/server/websocket.rs, directly and through nginx.
"""

import asyncio
import base64
import os
import socket
import struct
import sys

import websockets

TIMEOUT = 10
MAX_MESSAGE = 1024 * 1024


def fail(name, why):
    print(f"FAIL {name}: {why}", flush=True)
    sys.exit(1)


def ok(name):
    print(f"ok {name}", flush=True)


def connect(port, **kw):
    return websockets.connect(
        f"ws://127.0.0.1:{port}/", max_size=None, open_timeout=TIMEOUT,
        close_timeout=TIMEOUT, compression=None, **kw)


async def echo(port):
    async with connect(port) as ws:
        for msg in ["hello", "h\u00e9llo \u2603 \U0001F600", "", "x" * 70000]:
            await ws.send(msg)
            got = await asyncio.wait_for(ws.recv(), TIMEOUT)
            if got != msg:
                fail("text echo", f"sent {msg[:40]!r} got {got[:40]!r}")
        ok("text echo")
        for msg in [b"\x00\xff\x80binary", bytes(range(256)) * 300, os.urandom(MAX_MESSAGE)]:
            await ws.send(msg)
            got = await asyncio.wait_for(ws.recv(), TIMEOUT)
            if got != msg:
                fail("binary echo", f"{len(msg)} bytes sent, {len(got)} back, differing")
        ok("binary echo (up to the 1 MiB limit)")
        await ws.send(["frag-one ", "frag-two ", "frag-three"])
        got = await asyncio.wait_for(ws.recv(), TIMEOUT)
        if got != "frag-one frag-two frag-three":
            fail("fragmented message", repr(got))
        await ws.send([b"a" * 1000, b"b" * 100000, b"c"])
        got = await asyncio.wait_for(ws.recv(), TIMEOUT)
        if got != b"a" * 1000 + b"b" * 100000 + b"c":
            fail("fragmented message", f"binary: {len(got)} bytes back")
        ok("fragmented message")
        waiter = await ws.ping(b"are you there")
        await asyncio.wait_for(waiter, TIMEOUT)
        ok("ping/pong")
        await ws.close(code=4001, reason="bye")
        if ws.close_code != 4001 or ws.close_rcvd is None or ws.close_rcvd.code != 4001:
            fail("close handshake", f"close code {ws.close_code}, rcvd {ws.close_rcvd}")
        ok("close handshake (code echoed)")


async def oversized(port):
    async with connect(port) as ws:
        try:
            await ws.send(b"z" * (MAX_MESSAGE + 1))
            got = await asyncio.wait_for(ws.recv(), TIMEOUT)
            fail("oversized frame", f"echoed {len(got)} bytes")
        except websockets.ConnectionClosed as e:
            if e.rcvd is None or e.rcvd.code != 1009:
                fail("oversized frame", f"closed with {e.rcvd}, not 1009")
    ok("oversized frame refused with 1009")
    async with connect(port) as ws:
        try:
            await ws.send(["y" * (MAX_MESSAGE // 2), "y" * (MAX_MESSAGE // 2 + 1)])
            got = await asyncio.wait_for(ws.recv(), TIMEOUT)
            fail("oversized message", f"echoed {len(got)} bytes")
        except websockets.ConnectionClosed as e:
            if e.rcvd is None or e.rcvd.code != 1009:
                fail("oversized message", f"closed with {e.rcvd}, not 1009")
    ok("oversized fragmented message refused with 1009")


# ---- raw sockets: what a well-behaved client library never sends ----

def handshake(port, extra=""):
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /chat HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n{extra}\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            break
        head += chunk
    return s, head.decode("latin-1")


def frame(op, payload, fin=True, mask=True):
    b0 = (0x80 if fin else 0) | op
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        head = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_frame(s):
    def exact(n):
        data = b""
        while len(data) < n:
            chunk = s.recv(n - len(data))
            if not chunk:
                raise EOFError(f"EOF after {len(data)} of {n} bytes")
            data += chunk
        return data
    b0, b1 = exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", exact(8))[0]
    return b0 & 0x0F, exact(n)


def expect_close(name, s, code):
    op, payload = read_frame(s)
    if op != 8 or len(payload) < 2 or struct.unpack("!H", payload[:2])[0] != code:
        fail(name, f"got opcode {op} payload {payload[:20]!r}, not close {code}")
    s.close()
    ok(name)


def raw_checks(port):
    s, head = handshake(port, "Sec-WebSocket-Version: 12\r\n")
    if not head.startswith("HTTP/1.1 426") or "Sec-WebSocket-Version: 13" not in head:
        fail("version 12 refused", head)
    s.close()
    ok("version 12 refused with 426 and Sec-WebSocket-Version: 13")
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dG9vc2hvcnQ=\r\n\r\n")
    head = s.recv(4096).decode("latin-1")
    if not head.startswith("HTTP/1.1 400"):
        fail("bad key refused", head)
    s.close()
    ok("a key that is not 16 bytes refused with 400")

    s, head = handshake(port, "Sec-WebSocket-Version: 13\r\n")
    if not head.startswith("HTTP/1.1 101"):
        fail("handshake", head)
    s.sendall(frame(1, b"unmasked", mask=False))
    expect_close("unmasked frame closed with 1002", s, 1002)

    s, _ = handshake(port, "Sec-WebSocket-Version: 13\r\n")
    s.sendall(frame(1, b"\xc3\x28 bad utf-8"))
    expect_close("invalid UTF-8 closed with 1007", s, 1007)

    s, _ = handshake(port, "Sec-WebSocket-Version: 13\r\n")
    s.sendall(frame(9, b"p" * 126))
    expect_close("control frame over 125 bytes closed with 1002", s, 1002)

    s, _ = handshake(port, "Sec-WebSocket-Version: 13\r\n")
    s.sendall(frame(2, bytes(MAX_MESSAGE + 1)))
    expect_close("oversized frame closed with 1009 (raw)", s, 1009)

    # Vanishing in the middle of a frame: half a header, half a payload;
    # then a reset (RST) or a plain close (FIN).
    for how in ["rst", "fin"]:
        for cut in [1, 7, 300]:
            s, _ = handshake(port, "Sec-WebSocket-Version: 13\r\n")
            s.sendall(frame(2, b"q" * 1000)[:cut])
            if how == "rst":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
    ok("clients vanishing mid-frame (RST and FIN)")


async def stats_while_open(port):
    clients = [await connect(port) for _ in range(3)]
    for c in clients:
        await c.send("ping")
        await asyncio.wait_for(c.recv(), TIMEOUT)
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.sendall(b"GET /stats HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    body = data.split(b"\r\n\r\n", 1)[1].decode()
    stats = {k: int(v) for k, v in (line.split() for line in body.splitlines())}
    # Only the /stats request's own connection is the library's.
    if stats["active_connections"] != 1 or stats["websockets"] != 3 or stats["upgraded"] < 3:
        fail("stats", f"with 3 WebSockets open: {stats}")
    for c in clients:
        await c.close()
    ok(f"upgraded connections not counted as the library's: {stats}")


async def main():
    port = int(sys.argv[1])
    await echo(port)
    await oversized(port)
    raw_checks(port)
    # Still serving after all that.
    async with connect(port) as ws:
        await ws.send("still here")
        if await asyncio.wait_for(ws.recv(), TIMEOUT) != "still here":
            fail("still serving", "no echo")
    ok("still serving")
    if "--stats" in sys.argv[2:]:
        await stats_while_open(port)


if __name__ == "__main__":
    asyncio.run(main())
