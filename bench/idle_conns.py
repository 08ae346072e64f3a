#!/usr/bin/env python3
"""idle_conns.py - hold N idle HTTP/1.1 keep-alive connections open.

Opens --count sockets to --host:--port, sends one `GET /` on each and reads
the complete response (so each connection has served one request and is now
idle between requests, as a browser's or a proxy's would be), then prints

    ready opened=N failed=F

and holds them until SIGTERM/SIGINT or --hold-max seconds.  On the way out
it prints how many of the opened connections the server still had open

    done still_open=M closed_by_server=K

and closes them all with an RST (SO_LINGER 0), so no TIME_WAIT state is
left behind to exhaust ephemeral ports in the next round.

Python 3 standard library only.  Needs `ulimit -n` above --count.
"""

import argparse
import errno
import select
import signal
import socket
import struct
import sys
import time

BATCH = 256  # connections set up concurrently


def read_response(sock, deadline):
    """Read one response with a Content-Length body; True if complete."""
    buf = b""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].decode("latin-1").lower()
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip() == "content-length":
                    length = int(value.strip())
            if len(buf) >= end + 4 + length:
                return head.startswith("http/1.1 200") or head.startswith("http/1.0 200")
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            return False
        buf += chunk


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--hold-max", type=float, default=600.0,
                    help="give up holding after this many seconds")
    ap.add_argument("--timeout", type=float, default=10.0,
                    help="per-connection setup timeout, seconds")
    args = ap.parse_args()

    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    request = ("GET / HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (args.host, args.port)).encode()
    socks, failed, errors = [], 0, {}
    remaining = args.count
    while remaining > 0 and not stop["flag"]:
        batch = []
        for _ in range(min(BATCH, remaining)):
            remaining -= 1
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(args.timeout)
            try:
                s.connect((args.host, args.port))
                s.sendall(request)
                batch.append(s)
            except OSError as e:
                failed += 1
                errors[e.errno] = errors.get(e.errno, 0) + 1
                s.close()
        for s in batch:
            try:
                ok = read_response(s, time.monotonic() + args.timeout)
            except OSError as e:
                ok = False
                errors[e.errno] = errors.get(e.errno, 0) + 1
            if ok:
                s.setblocking(False)
                socks.append(s)
            else:
                failed += 1
                s.close()

    msg = "ready opened=%d failed=%d" % (len(socks), failed)
    if errors:
        msg += " errors=" + ",".join(
            "%s:%d" % (errno.errorcode.get(k, str(k)), v) for k, v in sorted(errors.items(), key=str))
    print(msg, flush=True)

    deadline = time.monotonic() + args.hold_max
    while not stop["flag"] and time.monotonic() < deadline:
        time.sleep(0.1)

    # Which ones did the server close meanwhile?  A closed one is readable
    # (EOF or RST); an open idle one is not.
    closed = 0
    for i in range(0, len(socks), 1000):
        part = socks[i:i + 1000]
        poller = select.poll()
        for s in part:
            poller.register(s.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
        closed += len(poller.poll(0))
    print("done still_open=%d closed_by_server=%d" % (len(socks) - closed, closed), flush=True)

    linger = struct.pack("ii", 1, 0)
    for s in socks:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        except OSError:
            pass
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
