"""servers.py - the servers under test: building, configuring, starting,
checking and stopping them.

    ours   c-examples/server (this library), with OURS_ARGS
    nginx  the installed nginx, 1 worker, with a config written to the temp dir
    mhd    bench/mhd_server.c (libmicrohttpd, one internal epoll thread)
    raw    bench/raw_epoll.c (a parse-nothing epoll loop: the ceiling)
    multi  c-examples/multicore, if built (the pipelined scenario only, unpinned)

The "workers" variant (scenario worker_post) starts c-examples/workers
--threads WORKERS as ours and mhd_server --workers WORKERS as mhd.

`Servers.start(name)` starts one as a fresh process (pinned to SERVER_CPU
with taskset, optionally under a wrapper such as valgrind) and waits until
its port accepts; the returned `Server` knows the pid to measure (`mpid`:
nginx's worker, else the process started) and stops itself, noting an odd
exit status or trouble in its log.
"""

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request

import procs
from procs import log
from settings import HOST, READY_TIMEOUT
from wrk import tail

# The bytes of GET /big everywhere: c-examples/server.c's 64-byte pattern, 1 MiB.
BIG_PATTERN = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+\n"

NGINX_CONF = """\
# written by bench/run.py
worker_processes 1;
daemon off;
master_process {master};
pid {ngx}/nginx.pid;
error_log {ngx}/error.log warn;
worker_rlimit_nofile {nofile};
events {{
    worker_connections {max_conns};
    use epoll;
}}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    keepalive_timeout 600s;
    client_body_temp_path {ngx}/body;
    server {{
        listen {host}:{port} backlog=4096;
        location = / {{
            default_type text/plain;
            return 200 "Hello, World!";
        }}
        location = /big {{
            root {ngx}/www;
            default_type application/octet-stream;
        }}
    }}
}}
"""

# Words in /stats counter names that should stay 0 under a clean load.
BAD_STATS = ("error", "protocol", "limit", "timeout", "fd_exhausted", "accept_paused", "truncated", "unknown")

# No proxy from the environment: every request goes to 127.0.0.1.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def build(root, bench_dir, cc):
    """make -C c-examples (the release library and c-examples/server), then
    bench/mhd_server and bench/raw_epoll.  Raises RuntimeError on failure."""
    log("building the release library and c-examples/server (make -C c-examples)")
    if procs.run(["make", "-C", os.path.join(root, "c-examples")], timeout=3600, out=sys.stderr)[0] != 0:
        raise RuntimeError("make -C c-examples failed")
    for prog in ("server", "workers"):
        if not os.access(os.path.join(root, "c-examples", prog), os.X_OK):
            raise RuntimeError("c-examples/%s was not built" % prog)
    log("building bench/mhd_server and bench/raw_epoll")
    flags = [cc, "-O2", "-g", "-std=c11", "-Wall", "-Wextra"]
    mhd, raw = os.path.join(bench_dir, "mhd_server"), os.path.join(bench_dir, "raw_epoll")
    if procs.run(flags + ["-pthread", "-o", mhd, mhd + ".c", "-lmicrohttpd"], timeout=300, out=sys.stderr)[0] != 0:
        raise RuntimeError("cannot build mhd_server (apt-get install libmicrohttpd-dev)")
    if procs.run(flags + ["-o", raw, raw + ".c"], timeout=300, out=sys.stderr)[0] != 0:
        raise RuntimeError("cannot build raw_epoll")


class Servers:
    """What it takes to start each server: paths, ports, nginx's config."""

    def __init__(self, cfg, root, bench_dir, tmp, results):
        self.cfg = cfg
        self.root = root
        self.bench_dir = bench_dir
        self.tmp = tmp
        self.results = results
        self.multi_bin = os.path.join(root, "c-examples", "multicore")
        self.have_multi = os.access(self.multi_bin, os.X_OK)
        self.ngx = os.path.join(tmp, "nginx")
        self.big_file = os.path.join(self.ngx, "www", "big")
        self.max_conns = cfg.idle_conns + 4 * cfg.conns + 1024
        self.seq = 0  # numbers the log files
        self.nginx_has_e = False  # nginx -e (error log path) exists: 1.19.5 on
        self.checked = set()  # servers whose answers were checked

    def write_nginx_config(self):
        """The nginx config (master_process on) and the one-process variant
        used under valgrind, plus the 1 MiB file; checked with nginx -t."""
        os.makedirs(os.path.join(self.ngx, "www"))
        os.makedirs(os.path.join(self.ngx, "body"))
        with open(self.big_file, "wb") as f:
            f.write(BIG_PATTERN * (1048576 // len(BIG_PATTERN)))
        for path in (self.ngx, os.path.dirname(self.big_file)):
            os.chmod(path, 0o755)  # nginx's worker (user nobody) reads /big
        os.chmod(self.big_file, 0o644)
        os.chmod(os.path.join(self.ngx, "body"), 0o755)
        usage = subprocess.run(["nginx", "-h"], capture_output=True, text=True, timeout=10)
        self.nginx_has_e = "-e filename" in usage.stdout + usage.stderr
        # Under valgrind, one process: valgrind cannot be reached in a forked
        # worker that has changed its user, and with master_process off nginx
        # runs the same event loop in the process it started as.
        for conf, master in (("nginx.conf", "on"), ("nginx-single.conf", "off")):
            with open(os.path.join(self.ngx, conf), "w") as f:
                f.write(NGINX_CONF.format(master=master, ngx=self.ngx, nofile=self.cfg.nofile,
                                          max_conns=self.max_conns, host=HOST, port=self.cfg.port("nginx")))
        status, out = procs.run(self.nginx_cmd(single=False) + ["-t"], timeout=30, capture=True)
        if status != 0:
            raise RuntimeError("nginx rejected the generated config:\n" + out)

    def nginx_cmd(self, single):
        conf = "nginx-single.conf" if single else "nginx.conf"
        cmd = ["nginx", "-p", self.ngx, "-c", os.path.join(self.ngx, conf)]
        if self.nginx_has_e:
            cmd += ["-e", os.path.join(self.ngx, "error.log")]
        return cmd

    def command(self, name, wrapped, variant=None):
        port = str(self.cfg.port(name))
        if variant == "workers":
            if name == "ours":
                return [os.path.join(self.root, "c-examples", "workers"), "--host", HOST, "--port", port,
                        "--threads", str(self.cfg.workers), "--max-pending", str(self.max_conns)]
            if name == "mhd":
                return [os.path.join(self.bench_dir, "mhd_server"), "--host", HOST, "--port", port,
                        "--max-connections", str(self.max_conns), "--workers", str(self.cfg.workers)]
            raise ValueError(name)
        if name == "ours":
            return [os.path.join(self.root, "c-examples", "server"), "--host", HOST, "--port", port] + self.cfg.ours_args
        if name == "base":
            return [self.cfg.base_bin, "--host", HOST, "--port", port] + self.cfg.ours_args
        if name == "nginx":
            return self.nginx_cmd(single=wrapped)
        if name == "mhd":
            return [os.path.join(self.bench_dir, "mhd_server"), "--host", HOST, "--port", port,
                    "--max-connections", str(self.max_conns)]
        if name == "raw":
            return [os.path.join(self.bench_dir, "raw_epoll"), "--host", HOST, "--port", port]
        if name == "multi":
            return [self.multi_bin, "--host", HOST, "--port", port]
        raise ValueError(name)

    def start(self, name, pin=True, wrap=(), variant=None):
        """Start a fresh server (variant: see the module's doc) and wait
        for its port; a Server, or None (noted) if it could not be started."""
        port = self.cfg.port(name)
        if procs.port_open(HOST, port):
            self.results.note("port %d is already in use; %s skipped (set PORT_* to free ports)" % (port, name))
            return None
        self.seq += 1
        log_path = os.path.join(self.tmp, "%s.%d.log" % (name, self.seq))
        cmd = list(wrap) + self.command(name, wrapped=bool(wrap), variant=variant)
        if pin:
            cmd = ["taskset", "-c", str(self.cfg.server_cpu)] + cmd
        srv = Server(name, port, procs.Child(cmd, out=log_path), log_path, self.results)
        up = procs.wait_until(lambda: procs.port_open(HOST, port) or not srv.child.alive(), READY_TIMEOUT)
        if not srv.child.alive():
            self.results.note("%s exited before accepting connections: %s" % (name, tail(log_path, 3)))
            srv.stop()
            return None
        if not up:
            self.results.note("%s not accepting on %d after %ds" % (name, port, READY_TIMEOUT))
            srv.stop()
            return None
        if name == "nginx" and not wrap:
            # The worker does the work; it is the master's first child.
            procs.wait_until(lambda: procs.children_of(srv.child.pid), 5)
            workers = procs.children_of(srv.child.pid)
            if not workers:
                self.results.note("nginx worker process not found")
                srv.stop()
                return None
            srv.mpid = workers[0]
        return srv

    def restart(self, srv):
        """Stop srv and start the same server afresh (pinned, unwrapped);
        srv then stands for the new process.  False (and srv.child None)
        if it could not be started."""
        srv.stop()
        fresh = self.start(srv.name)
        if fresh is None:
            srv.child = None
            return False
        srv.child, srv.mpid, srv.log_path = fresh.child, fresh.mpid, fresh.log_path
        return True

    def preflight(self, name):
        """Once per server: GET / answers `Hello, World!` as text/plain, and
        GET /big the same 1 MiB as nginx's file (not for raw and multi)."""
        if name in self.checked:
            return
        self.checked.add(name)
        base = "http://%s:%d" % (HOST, self.cfg.port(name))
        body, ctype = http_get(base + "/", 5)
        body = body.decode(errors="replace")
        if body != "Hello, World!" or not ctype.startswith("text/plain"):
            self.results.note("%s: GET / returned '%s' (%s), expected 'Hello, World!' (text/plain)" % (name, body, ctype))
        if name in ("raw", "multi"):
            return
        big, _ = http_get(base + "/big", 10)
        with open(self.big_file, "rb") as f:
            if big != f.read():
                self.results.note("%s: GET /big body differs from the 1 MiB pattern (%d bytes)" % (name, len(big)))

    def check_stats(self, srv, label):
        """Our server's /stats (JSON counters): saved, and any non-zero
        error, limit or timeout counter noted."""
        self.seq += 1
        raw, _ = http_get("http://%s:%d/stats" % (HOST, srv.port), 5)
        if not raw:
            return
        with open(os.path.join(self.tmp, "stats.%d.json" % self.seq), "wb") as f:
            f.write(raw)
        try:
            stats = json.loads(raw)
        except ValueError as e:
            stats = "%s" % e
        if not isinstance(stats, dict):
            self.results.note("%s: /stats unreadable (%s)" % (label, stats))
            return
        bad = {k: v for k, v in flatten(stats)
               if any(w in k for w in BAD_STATS) and isinstance(v, (int, float)) and v}
        if bad:
            self.results.note("%s: /stats counters: %s" % (label, ", ".join("%s=%s" % kv for kv in sorted(bad.items()))))


class Server:
    """One running server.  pid: the process started; mpid: the one to
    measure (nginx's worker, else the same)."""

    def __init__(self, name, port, child, log_path, results):
        self.name = name
        self.port = port
        self.child = child
        self.mpid = child.pid
        self.log_path = log_path
        self.results = results

    def alive(self):
        return self.child is not None and self.child.alive()

    def stop(self):
        """SIGINT (ours, multi) or SIGTERM (the others); SIGKILL after 10 s.
        Notes a kill, a non-zero exit status, and (ours, multi) any panic,
        abort or error in the log.  The other servers' logs are kept
        (KEEP_TMP=1) but not scanned: libmicrohttpd logs every peer reset."""
        ours = self.name in ("ours", "multi", "base")
        sig = signal.SIGINT if ours else signal.SIGTERM
        status, killed = self.child.stop(sig, timeout=10)
        if killed:
            self.results.note("%s did not exit within 10 s of %s; killed" % (self.name, sig.name))
        if status != 0:
            self.results.note("%s exited with status %d after %s (%s)" % (self.name, status, sig.name, tail(self.log_path, 3)))
        if ours:
            with open(self.log_path, errors="replace") as f:
                trouble = [l.strip() for l in f if re.search(r"panic|segfault|abort|assert|error", l, re.I)]
            if trouble:
                self.results.note("%s log: %s" % (self.name, " ".join(trouble[:3])))


def http_get(url, timeout):
    """(body, content type) of a GET, or (b"", "") if it failed."""
    try:
        with _http.open(url, timeout=timeout) as r:
            return r.read(), r.headers.get("Content-Type", "")
    except (OSError, ValueError):
        return b"", ""


def flatten(d, prefix=""):
    """("a.b.c", value) for every leaf of nested dicts."""
    for k, v in d.items():
        if isinstance(v, dict):
            yield from flatten(v, prefix + k + ".")
        else:
            yield prefix + k, v
