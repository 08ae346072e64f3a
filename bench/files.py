#!/usr/bin/env python3
"""files.py - file responses side by side: c-examples/static (this library,
Response_SendFileRanged: sendfile, small files read and sent with the head)
against nginx (`sendfile on`) serving the same directory, in one run.

    python3 bench/files.py [--rounds N] [--seconds S] [--conns C]
                           [--ours NAME=PATH ...] [--sizes 4k,16k,64k,1m]
                           [--slow-reader [--slow-rate MIB_PER_S]]

For every round, every file size and every server (order rotated per
round): a fresh server pinned to CPU 1, `wrk -t1 -cC -dS` pinned to CPU 0
on GET /<size>.bin (keep-alive, files in the page cache), requests/s,
MB/s and the server's CPU time per request (utime + stime of the process,
nginx's worker) recorded. Prints medians and each server's ratio to nginx.
Several `--ours` binaries (e.g. built with different small-file limits)
can be compared in the same run.

--slow-reader: one client with a 4 KiB receive buffer reads a whole 1 GiB
(sparse) file at about --slow-rate MiB/s (default 48: about 22 s a
server; stops after twice that) from each server; prints the server's RSS
before and its peak during (VmRSS of nginx's worker) and the bytes read.

Needs wrk, nginx (nginx-light), taskset; builds nothing (make -C c-examples
first).
"""

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = {"4k": 4096, "8k": 8192, "16k": 16384, "64k": 65536, "1m": 1 << 20}
HUGE = 1 << 30  # the slow reader's file

NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
{user}
events {{ worker_connections 1024; use epoll; }}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("port %d never accepted" % port)


def children(pid):
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/stat" % p) as f:
                    st = f.read()
                if int(st[st.rfind(")") + 2:].split()[1]) == pid:
                    out.append(int(p))
            except OSError:
                pass
    return out


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Server:
    def __init__(self, name, tmp, www):
        self.name = name
        self.port = free_port()
        if name == "nginx":
            d = tempfile.mkdtemp(dir=tmp)
            conf = os.path.join(d, "nginx.conf")
            with open(conf, "w") as f:
                f.write(NGINX_CONF.format(d=d, port=self.port, root=www,
                                          user="user root;" if os.geteuid() == 0 else ""))
            cmd = ["nginx", "-p", d + "/", "-c", conf]
        else:
            cmd = [name.split("=", 1)[1], "--root", www, "--port", str(self.port)]
        self.proc = subprocess.Popen(["taskset", "-c", "1"] + cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        wait_port(self.port)
        self.pid = self.proc.pid
        if name == "nginx":
            for _ in range(100):
                kids = children(self.proc.pid)
                if kids:
                    self.pid = kids[0]
                    break
                time.sleep(0.02)

    def stop(self):
        self.proc.send_signal(signal.SIGQUIT if self.name == "nginx" else signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    fields = st[st.rfind(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def wrk(port, path, seconds, conns):
    out = subprocess.run(["taskset", "-c", "0", "wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds,
                          "http://127.0.0.1:%d%s" % (port, path)],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"(Non-2xx|Socket errors)[^\n]*", out)
    return rps, errors.group(0) if errors else ""


def slow_reader(port, rate, limit):
    """Reads GET /huge.bin to its end (or for `limit` seconds) at about
    `rate` bytes/s through a 4 KiB receive buffer; yields the bytes read."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: b\r\n\r\n")
    got, start = 0, time.time()
    while time.time() - start < limit:
        n = len(s.recv(65536))
        if n == 0:
            break
        got += n
        ahead = got / rate - (time.time() - start)
        if ahead > 0:
            time.sleep(ahead)
        yield got
        if got >= HUGE:
            break
    s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--sizes", default="4k,16k,64k,1m")
    ap.add_argument("--ours", action="append", default=[],
                    help="NAME=PATH of a static binary (default ours=c-examples/static)")
    ap.add_argument("--slow-reader", action="store_true")
    ap.add_argument("--slow-rate", type=float, default=48, help="MiB/s")
    a = ap.parse_args()
    ours = a.ours or ["ours=" + os.path.join(ROOT, "c-examples", "static")]
    servers = ours + ["nginx"]
    tmp = tempfile.mkdtemp(prefix="bench-files-")
    www = os.path.join(tmp, "www")
    os.mkdir(www)
    os.chmod(tmp, 0o755)
    sizes = a.sizes.split(",")
    for name in sizes:
        with open(os.path.join(www, name + ".bin"), "wb") as f:
            f.write(os.urandom(SIZES[name]))
    results = {}
    cpu = {}
    notes = []
    for rnd in range(a.rounds):
        for size in sizes:
            order = servers[rnd % len(servers):] + servers[:rnd % len(servers)]
            for name in order:
                srv = Server(name, tmp, www)
                try:
                    wrk(srv.port, "/%s.bin" % size, 1, a.conns)  # warm-up
                    t0 = cpu_ticks(srv.pid)
                    rps, err = wrk(srv.port, "/%s.bin" % size, a.seconds, a.conns)
                    cpu_us = (cpu_ticks(srv.pid) - t0) * 1e6 / os.sysconf("SC_CLK_TCK") / (rps * a.seconds)
                finally:
                    srv.stop()
                if err:
                    notes.append("round %d %s %s: %s" % (rnd + 1, name, size, err))
                results.setdefault((size, name.split("=")[0]), []).append(rps)
                cpu.setdefault((size, name.split("=")[0]), []).append(cpu_us)
                print("round %d %-6s %-8s %10.0f req/s %6.1f us CPU/req" % (rnd + 1, size, name.split("=")[0],
                                                                        rps, cpu_us), file=sys.stderr)
    print("| file | server | req/s (median of %d) | MB/s | vs nginx | server CPU us/req | vs nginx |"
          % a.rounds)
    print("|---|---|---|---|---|---|---|")
    for size in sizes:
        base = statistics.median(results[(size, "nginx")])
        cbase = statistics.median(cpu[(size, "nginx")])
        for name in [s.split("=")[0] for s in servers]:
            med = statistics.median(results[(size, name)])
            c = statistics.median(cpu[(size, name)])
            print("| %s | %s | %.0f | %.0f | %.2f | %.1f | %.2f |" % (
                size, name, med, med * SIZES[size] / 1e6, med / base, c, c / cbase))
    for n in notes:
        print("note: " + n)
    if a.slow_reader:
        with open(os.path.join(www, "huge.bin"), "wb") as f:
            f.truncate(HUGE)
        print("\n| server | RSS before (KiB) | peak RSS while a slow reader takes 1 GiB (KiB) | growth | bytes read (head + body) |")
        print("|---|---|---|---|---|")
        for name in servers:
            srv = Server(name, tmp, www)
            try:
                wrk(srv.port, "/%s.bin" % sizes[0], 1, 4)
                before = rss_kib(srv.pid)
                peak, got = before, 0
                rate = a.slow_rate * (1 << 20)
                for got in slow_reader(srv.port, rate, 2 * HUGE / rate):
                    peak = max(peak, rss_kib(srv.pid))
            finally:
                srv.stop()
            print("| %s | %d | %d | %d | %d |" % (name.split("=")[0], before, peak, peak - before, got))
    subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
