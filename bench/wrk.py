"""wrk.py - one run of `wrk -t1`, and the figures it reports.

`Wrk.run()` runs wrk (pinned to CLIENT_CPU unless told otherwise) for a
given number of seconds, bounded at that plus 30 s.  For a measured run it
also checks that nothing else used the CPUs meanwhile: the machine's
user+nice time from /proc/stat, minus wrk's user time (our reaped
children's, from os.times()) and the server's utime, is what other
processes used.  Above FOREIGN_LIMIT % of a CPU the run is "suspect".

`parse()` reads the `BENCH requests=... p99_us=...` line that report.lua
(appended to every measured wrk script) prints, and notes wrk's errors.
"""

import os

import procs
from procs import CLK_TCK


def tail(path, lines):
    """The last lines of a file, joined into one line, for a note."""
    try:
        with open(path, errors="replace") as f:
            return " ".join(f.read().splitlines()[-lines:])
    except OSError:
        return ""


class Wrk:
    def __init__(self, cfg, tmp, results):
        self.cfg = cfg
        self.tmp = tmp
        self.results = results

    def run(self, out, secs, args, server_pid=None, label="", pin=True):
        """Run wrk -t1 for secs seconds with args, output to the file out.
        Returns None if wrk failed (noted), else whether the run is
        suspect: with a server_pid (a measured run) True when other
        processes used more than FOREIGN_LIMIT % of a CPU, else False."""
        cmd = ["taskset", "-c", str(self.cfg.client_cpu)] if pin else []
        cmd += ["wrk", "-t1", "-d%ds" % secs, "--timeout", "5s", "--latency"] + args
        c0 = os.times().children_user
        m0 = procs.machine_ticks(2)
        s0 = procs.cpu_split(server_pid) if server_pid else None
        status, _ = procs.run(cmd, timeout=secs + 30, out=out)
        c1 = os.times().children_user
        m1 = procs.machine_ticks(2)
        s1 = procs.cpu_split(server_pid) if server_pid else None
        if status != 0:
            self.results.note("wrk failed with status %d (%s): %s" % (status, " ".join(args), tail(out, 2)))
            return None
        if s0 is None or s1 is None:
            return False
        foreign = ((m1 - m0) - (s1[0] - s0[0])) / CLK_TCK - (c1 - c0)
        pct = int("%.0f" % max(0.0, foreign / secs * 100))
        if pct > self.cfg.foreign_limit:
            self.results.note("%s: other processes used ~%d%% of a CPU (user time) during the measurement; "
                              "marked suspect" % (label, pct))
            return True
        return False

    def warmup(self, args, pin=True):
        """WARMUP seconds of load before a measurement (nothing if 0)."""
        if self.cfg.warmup > 0:
            self.run(os.path.join(self.tmp, "warmup.out"), self.cfg.warmup, args, pin=pin)


def parse(out, label, results):
    """The BENCH line of a wrk output file as a dict of ints (requests,
    bytes, duration_us, connect, read, write, status, timeout, p50_us,
    p99_us), or None (noted) if there is none or no responses."""
    line = None
    try:
        with open(out, errors="replace") as f:
            for text in f:
                if text.startswith("BENCH "):
                    line = text
    except OSError:
        pass
    if line is None:
        results.note("%s: no result from wrk: %s" % (label, tail(out, 2)))
        return None
    w = {"requests": 0, "bytes": 0, "duration_us": 0, "connect": 0, "read": 0, "write": 0,
         "status": 0, "timeout": 0, "p50_us": 0, "p99_us": 0}
    for kv in line.split()[1:]:
        key, _, value = kv.partition("=")
        if key in w:
            w[key] = int(value)
    errors = w["connect"] + w["read"] + w["write"] + w["timeout"]
    if w["status"] > 0 or errors > 0:
        results.note("%s: wrk counted non-2xx/3xx=%d, socket errors connect=%d read=%d write=%d timeout=%d "
                     "(of %d responses)" % (label, w["status"], w["connect"], w["read"], w["write"],
                                            w["timeout"], w["requests"]))
    if w["requests"] <= 0 or w["duration_us"] <= 0:
        results.note("%s: no responses" % label)
        return None
    return w
