"""scenarios.py - what is measured, one function per scenario.

Each scenario gets a server that run.py has just started (pinned to
SERVER_CPU) and records its figures under the metric keys table.py knows.
The keys keep the old scenario letters (a_rps, f_us, ...) so reports stay
comparable with bench/RESULTS.md.

    name                   old  records
    keepalive              a    a_rps; f_us f_user_us f_sys_us (old f); g_p50 g_p99 (old g)
    pipelined              b    b_rps b_cpu_us
    large_body             c    c_mbps
    connection_churn       d    d_rps d_cpu_us
    idle_connections       e    e_kib e_rps
    instructions_syscalls  i    i_instr i_syscalls
    worker_post            w    w_rps w_p50 w_p99 w_cpu_us (ours and mhd only)

SCENARIOS accepts the names and the old letters (f and g mean keepalive).
"""

import glob
import os
import signal
import sys
import time

import procs
from procs import CLK_TCK, log
from servers import http_get
from settings import HOST
from wrk import parse, tail


class Context:
    """What a scenario works with: settings, temp dir, results, the wrk
    runner, the servers, and `label` ("round 1, ours, keepalive (a)")
    for notes."""

    def __init__(self, cfg, tmp, bench_dir, results, wrk_runner, servers):
        self.cfg = cfg
        self.tmp = tmp
        self.bench_dir = bench_dir
        self.results = results
        self.wrk = wrk_runner
        self.servers = servers
        self.label = ""
        self.report_lua = os.path.join(tmp, "report.lua")
        self.pipeline_lua = os.path.join(tmp, "pipeline.lua")

    def url(self, srv, path="/"):
        return "http://%s:%d%s" % (HOST, srv.port, path)

    def out(self, srv, tag, rnd):
        return os.path.join(self.tmp, "wrk.%s.%s.%d.out" % (srv.name, tag, rnd))

    def record(self, srv, metric, rnd, value, suspect):
        self.results.record(srv.name, metric, rnd, value, suspect)


def write_wrk_scripts(bench_dir, tmp):
    """report.lua prints the exact totals; it is appended to pipeline.lua."""
    with open(os.path.join(bench_dir, "report.lua")) as f:
        report = f.read()
    with open(os.path.join(bench_dir, "pipeline.lua")) as f:
        pipeline = f.read()
    with open(os.path.join(tmp, "report.lua"), "w") as f:
        f.write(report)
    with open(os.path.join(tmp, "pipeline.lua"), "w") as f:
        f.write(pipeline + report)


def us_per(ticks, count):
    """Clock ticks of CPU per item, in µs."""
    return "%.3f" % (ticks / CLK_TCK * 1e6 / count)


def per_sec(count, duration_us):
    return "%.1f" % (count * 1e6 / duration_us)


def measure(ctx, srv, out, secs, args, pin=True):
    """A measured wrk run plus its BENCH line: (figures, suspect) or
    (None, None) if it failed (noted)."""
    suspect = ctx.wrk.run(out, secs, args, server_pid=srv.mpid, label=ctx.label, pin=pin)
    if suspect is None:
        return None, None
    return parse(out, ctx.label, ctx.results), suspect


# ---- the scenarios ---------------------------------------------------------

def keepalive(ctx, srv, rnd):
    """(a) GET /, keep-alive, CONNS connections -> req/s; from the same run
    (f) the server's CPU per request (utime+stime from /proc/PID/stat, all
    threads, over the requests wrk completed), split into user and kernel
    time, and (g) wrk's p50 / p99 latency."""
    url = ctx.url(srv)
    ctx.wrk.warmup(["-c%d" % ctx.cfg.conns, url])
    t0 = procs.cpu_split(srv.mpid)
    w, suspect = measure(ctx, srv, ctx.out(srv, "a", rnd), ctx.cfg.duration,
                         ["-c%d" % ctx.cfg.conns, "-s", ctx.report_lua, url])
    t1 = procs.cpu_split(srv.mpid)
    if w is None:
        return
    ctx.record(srv, "a_rps", rnd, per_sec(w["requests"], w["duration_us"]), suspect)
    if t0 and t1:
        # The user part is the server's own code; the kernel part is mostly loopback TCP.
        user, system = t1[0] - t0[0], t1[1] - t0[1]
        ctx.record(srv, "f_us", rnd, us_per(user + system, w["requests"]), suspect)
        ctx.record(srv, "f_user_us", rnd, us_per(user, w["requests"]), suspect)
        ctx.record(srv, "f_sys_us", rnd, us_per(system, w["requests"]), suspect)
    ctx.record(srv, "g_p50", rnd, w["p50_us"], suspect)
    ctx.record(srv, "g_p99", rnd, w["p99_us"], suspect)


def pipelined(ctx, srv, rnd, pin=True):
    """(b) keepalive with PIPELINE requests per write (pipeline.lua) -> req/s.
    pin=False for c-examples/multicore: server and wrk both unpinned."""
    args = ["-c%d" % ctx.cfg.conns, "-s", ctx.pipeline_lua, ctx.url(srv), "--", str(ctx.cfg.pipeline)]
    ctx.wrk.warmup(args, pin=pin)
    t0 = procs.cpu_split(srv.mpid)
    w, suspect = measure(ctx, srv, ctx.out(srv, "b", rnd), ctx.cfg.duration, args, pin=pin)
    t1 = procs.cpu_split(srv.mpid)
    if w:
        ctx.record(srv, "b_rps", rnd, per_sec(w["requests"], w["duration_us"]), suspect)
        if t0 and t1 and pin:
            # The server's CPU per request (issue 13: <= 1.2x the raw loop's).
            ctx.record(srv, "b_cpu_us", rnd, us_per(sum(t1) - sum(t0), w["requests"]), suspect)


def large_body(ctx, srv, rnd):
    """(c) GET /big (1 MiB), BIG_CONNS connections -> MB/s (10^6 bytes read,
    headers included)."""
    url = ctx.url(srv, "/big")
    ctx.wrk.warmup(["-c%d" % ctx.cfg.big_conns, url])
    w, suspect = measure(ctx, srv, ctx.out(srv, "c", rnd), ctx.cfg.duration,
                         ["-c%d" % ctx.cfg.big_conns, "-s", ctx.report_lua, url])
    if w:
        ctx.record(srv, "c_mbps", rnd, "%.1f" % (w["bytes"] / w["duration_us"]), suspect)


def connection_churn(ctx, srv, rnd):
    """(d) Connection: close, a new TCP connection per request (the accept
    path), CLOSE_CONNS connections -> req/s, and, since wrk's connect() is
    the bottleneck, the server's CPU per connection (utime+stime over the
    requests) -> µs."""
    args = ["-c%d" % ctx.cfg.close_conns, "-H", "Connection: close"]
    ctx.wrk.warmup(args + [ctx.url(srv)])
    t0 = procs.cpu_split(srv.mpid)
    w, suspect = measure(ctx, srv, ctx.out(srv, "d", rnd), ctx.cfg.duration,
                         args + ["-s", ctx.report_lua, ctx.url(srv)])
    t1 = procs.cpu_split(srv.mpid)
    if w is None:
        return
    ctx.record(srv, "d_rps", rnd, per_sec(w["requests"], w["duration_us"]), suspect)
    if t0 and t1:
        ctx.record(srv, "d_cpu_us", rnd, us_per(sum(t1) - sum(t0), w["requests"]), suspect)


def idle_connections(ctx, srv, rnd):
    """(e) IDLE_CONNS idle keep-alive connections held by idle_conns.py
    (each has served one GET /): the server's VmRSS growth divided by the
    connections opened -> KiB each; then keepalive beside them -> req/s."""
    cfg = ctx.cfg
    hold_log = os.path.join(ctx.tmp, "idle.%s.%d.log" % (srv.name, rnd))
    time.sleep(0.2)
    rss0 = procs.rss_kib(srv.mpid)
    holder = procs.Child(["taskset", "-c", str(cfg.client_cpu), sys.executable,
                          os.path.join(ctx.bench_dir, "idle_conns.py"), "--host", HOST, "--port", str(srv.port),
                          "--count", str(cfg.idle_conns), "--hold-max", str(2 * (cfg.duration + cfg.warmup) + 120)],
                         out=hold_log)
    procs.wait_until(lambda: log_line(hold_log, "ready") or not holder.alive(), 120, step=0.1)
    ready = log_line(hold_log, "ready")
    opened = int(field(ready, "opened") or 0)
    if not ready or int(field(ready, "failed") or 0) > 0:
        ctx.results.note("%s: idle holder: %s" % (ctx.label, ready or tail(hold_log, 2)))
    if opened > 0:
        time.sleep(1)  # let the server settle (lazy frees, timers)
        rss1 = procs.rss_kib(srv.mpid)
        if rss0 is not None and rss1 is not None:
            ctx.record(srv, "e_kib", rnd, "%.3f" % ((rss1 - rss0) / opened), False)
        log("  %s: RSS %s KiB -> %s KiB with %d idle connections" % (srv.name, rss0, rss1, opened))
        url = ctx.url(srv)
        ctx.wrk.warmup(["-c%d" % cfg.conns, url])
        w, suspect = measure(ctx, srv, ctx.out(srv, "e", rnd), cfg.duration,
                             ["-c%d" % cfg.conns, "-s", ctx.report_lua, url])
        if w:
            ctx.record(srv, "e_rps", rnd, per_sec(w["requests"], w["duration_us"]), suspect)
    holder.stop(signal.SIGTERM, timeout=30)
    done = log_line(hold_log, "done")
    if opened > 0 and field(done, "closed_by_server") != "0":
        ctx.results.note("%s: of %d idle connections, %s" % (ctx.label, opened, done or "no report from the holder"))


def instructions_syscalls(ctx, srv, rnd):
    """(i) What keepalive costs each server besides the kernel's TCP work,
    counted rather than timed: user-space instructions per request (the
    server runs under callgrind, see valgrind_wrapper; counters zeroed after
    a 1 s warm-up, dumped after I_DURATION s of load) and system calls per
    request (strace -c -f on a normal run: srv is restarted for it)."""
    cfg = ctx.cfg
    url = ctx.url(srv)
    load = ["-c%d" % cfg.conns, "-s", ctx.report_lua, url]
    ctx.wrk.run(os.path.join(ctx.tmp, "warmup.out"), 1, ["-c%d" % cfg.conns, url])
    # callgrind_control exits 0 even when it finds no such process; bounded
    # because vgdb has to reach a process asleep in epoll_wait.
    _, answer = procs.run(["callgrind_control", "-z", str(srv.mpid)], timeout=30, capture=True)
    if "OK" not in answer:
        ctx.results.note("(i) %s: callgrind_control -z %d failed" % (srv.name, srv.mpid))
        return
    out = ctx.out(srv, "i", rnd) + ".callgrind"
    ctx.wrk.run(out, cfg.i_duration, load)
    procs.run(["callgrind_control", "-d", str(srv.mpid)], timeout=30)
    dumps = glob.glob(os.path.join(ctx.tmp, "cg", "%s.%d.[0-9]*" % (srv.name, srv.mpid)))
    w = parse(out, "(i) %s, callgrind" % srv.name, ctx.results)
    instructions = summary_of(max(dumps, key=os.path.getmtime)) if dumps else None
    if w and instructions is not None:
        ctx.record(srv, "i_instr", rnd, "%.0f" % (instructions / w["requests"]), False)
    else:
        ctx.results.note("(i) %s: no callgrind dump" % srv.name)

    if not ctx.servers.restart(srv):
        return
    ctx.wrk.run(os.path.join(ctx.tmp, "warmup.out"), 1, ["-c%d" % cfg.conns, url])
    summary = os.path.join(ctx.tmp, "strace.%s" % srv.name)
    tracer = procs.Child(["strace", "-c", "-f", "-o", summary, "-p", str(srv.mpid)])
    time.sleep(1)  # attach (-f: every thread)
    out = ctx.out(srv, "i", rnd) + ".strace"
    ctx.wrk.run(out, cfg.i_duration, load)
    tracer.stop(signal.SIGINT, timeout=10)
    calls, per_call = strace_totals(summary)
    w = parse(out, "(i) %s, strace" % srv.name, ctx.results)
    if w and calls is not None:
        ctx.record(srv, "i_syscalls", rnd, "%.3f" % (calls / w["requests"]), False)
        # The strace summary, kept for the curious (KEEP_TMP=1).
        log("  %s: %s" % (srv.name, "  ".join("%s %.3f/req" % (name, n / w["requests"]) for name, n in per_call)))
    else:
        ctx.results.note("(i) %s: no strace summary" % srv.name)


def valgrind_wrapper(ctx, name):
    """The command instructions_syscalls runs its server under.  nginx's
    worker runs as nobody: the dumps need a directory it can write."""
    cg = os.path.join(ctx.tmp, "cg")
    os.makedirs(cg, exist_ok=True)
    os.chmod(cg, 0o1777)
    return ["valgrind", "--tool=callgrind", "-q", "--callgrind-out-file=%s/%s.%%p" % (cg, name)]


# ---- helpers -----------------------------------------------------------------

def log_line(path, word):
    """The first line of the file that starts with word, or ""."""
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if line.startswith(word):
                    return line.strip()
    except OSError:
        pass
    return ""


def field(line, key):
    """The value of key=value in a line, or None."""
    for kv in line.split():
        if kv.startswith(key + "="):
            return kv[len(key) + 1:]
    return None


def summary_of(dump):
    """Instructions counted in a callgrind dump: its `summary:` line."""
    with open(dump, errors="replace") as f:
        for line in f:
            if line.startswith("summary:"):
                return int(line.split()[1])
    return None


def strace_totals(path):
    """(total calls, [(syscall, calls)]) from a strace -c summary, whose
    columns are % time, seconds, usecs/call, calls, [errors,] syscall."""
    total, per_call = None, []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                cols = line.split()
                if len(cols) < 5:
                    continue
                if cols[-1] == "total":
                    total = int(cols[3])
                elif cols[0].replace(".", "").isdigit():
                    per_call.append((cols[-1], int(cols[3])))
    except OSError:
        pass
    return total, per_call


def worker_post(ctx, srv, rnd):
    """(w) every request answered by a worker thread, keep-alive, CONNS
    connections -> req/s, p50 / p99 latency, the server's CPU per request.
    ours: c-examples/workers (Response_Defer, a pool of WORKERS threads,
    the answer posted back with Connection_Post), GET /; mhd: mhd_server
    --workers WORKERS (MHD_suspend_connection, a worker thread,
    MHD_resume_connection), GET /work."""
    url = ctx.url(srv, "/" if srv.name == "ours" else "/work")
    body, _ = http_get(url, 5)
    if body != b"Hello, World!":
        ctx.results.note("%s: GET %s returned %r, expected 'Hello, World!'" % (ctx.label, url, body[:80]))
    ctx.wrk.warmup(["-c%d" % ctx.cfg.conns, url])
    t0 = procs.cpu_split(srv.mpid)
    w, suspect = measure(ctx, srv, ctx.out(srv, "w", rnd), ctx.cfg.duration,
                         ["-c%d" % ctx.cfg.conns, "-s", ctx.report_lua, url])
    t1 = procs.cpu_split(srv.mpid)
    if w is None:
        return
    ctx.record(srv, "w_rps", rnd, per_sec(w["requests"], w["duration_us"]), suspect)
    ctx.record(srv, "w_p50", rnd, w["p50_us"], suspect)
    ctx.record(srv, "w_p99", rnd, w["p99_us"], suspect)
    if t0 and t1:
        ctx.record(srv, "w_cpu_us", rnd, us_per(sum(t1) - sum(t0), w["requests"]), suspect)


class Scenario:
    def __init__(self, name, letter, run, raw_too=True, once=False, under_valgrind=False,
                 only=(), variant=None):
        self.name = name
        self.letter = letter
        self.run = run
        self.raw_too = raw_too  # the raw loop serves only keep-alive GET /
        self.once = once  # counts, not timings: round 1 only
        self.under_valgrind = under_valgrind
        self.only = only  # run against these servers only (empty: all)
        self.variant = variant  # Servers.start's variant of the servers


SCENARIOS = [
    Scenario("keepalive", "a", keepalive),
    Scenario("pipelined", "b", pipelined),
    Scenario("large_body", "c", large_body, raw_too=False),
    Scenario("connection_churn", "d", connection_churn, raw_too=False),
    Scenario("idle_connections", "e", idle_connections),
    Scenario("instructions_syscalls", "i", instructions_syscalls, once=True, under_valgrind=True),
    Scenario("worker_post", "w", worker_post, raw_too=False, only=("ours", "mhd"), variant="workers"),
]
BY_NAME = {s.name: s for s in SCENARIOS}

# Every word SCENARIOS accepts -> scenario name.  f and g were never runs
# of their own: they are figures of the keepalive run.
ALIASES = dict({s.name: s.name for s in SCENARIOS}, **{s.letter: s.name for s in SCENARIOS},
               f="keepalive", g="keepalive")
