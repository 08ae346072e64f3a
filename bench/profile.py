#!/usr/bin/env python3
"""profile.py - where c-examples/server spends its time under the keepalive
scenario of bench/run.py (`GET /` keep-alive, 64 connections, wrk -t1 on
CPU 0, the server on CPU 1): `perf record -g` of the server for DURATION
seconds, then self time per object, the top symbols and the call graph.
bench/profile.sh runs this.

    bench/profile.sh                       DURATION=5, prints the reports
    SCENARIO=pipelined bench/profile.sh    the same, PIPELINE=16 requests per write
    PERF_OUT=/some/dir bench/profile.sh    keeps perf.data there

Needs perf (Debian: apt-get install linux-perf) and the rights to use it
(root, or kernel.perf_event_paranoid <= 1).  Without hardware counters (VMs
often have none: `perf stat -e instructions true` says "<not supported>")
it samples the cpu-clock software event instead.

Settings: DURATION=5 CONNS=64 PORT=18090 SERVER_CPU=1 CLIENT_CPU=0
          SCENARIO=keepalive (or a; pipelined or b)  PIPELINE=16
          OURS_ARGS="--max-connections 20000 --idle-timeout-ms 600000"
          CALL_GRAPH=fp (or dwarf; the Rust code is built without frame
          pointers, so fp chains through it are short - self time, the
          --no-children figure, is exact either way)
"""

import os
import shutil
import signal
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in bench/

import procs  # noqa: E402 (the imports of bench/ modules come after that line)
from procs import log
from settings import HOST, READY_TIMEOUT

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)


def setting(name, default, whole=True):
    value = os.environ.get(name) or str(default)
    if name == "DURATION" and value.endswith("s"):
        value = value[:-1]
    if whole and not value.isdigit():
        raise RuntimeError("%s must be a whole number, got '%s'" % (name, value))
    return int(value) if whole else value


def perf_report(data, args, path):
    procs.run(["perf", "report", "-i", data, "--stdio", "--no-children"] + args, timeout=600, out=path)
    with open(path, errors="replace") as f:
        return f.read().splitlines()


def profile(tmp):
    duration = setting("DURATION", 5)
    conns = setting("CONNS", 64)
    port = setting("PORT", 18090)
    server_cpu = setting("SERVER_CPU", 1)
    client_cpu = setting("CLIENT_CPU", 0)
    pipeline = setting("PIPELINE", 16)
    ours_args = setting("OURS_ARGS", "--max-connections 20000 --idle-timeout-ms 600000", whole=False).split()
    call_graph = setting("CALL_GRAPH", "fp", whole=False)
    scenario = os.environ.get("SCENARIO") or "keepalive"
    scenario = {"a": "keepalive", "b": "pipelined"}.get(scenario, scenario)  # the old letters
    if scenario not in ("keepalive", "pipelined"):
        raise RuntimeError("SCENARIO must be keepalive (a) or pipelined (b)")
    for cmd in ("perf", "wrk", "taskset", "make"):
        if not shutil.which(cmd):
            raise RuntimeError("'%s' not found (Debian: apt-get install linux-perf wrk)" % cmd)
    out_dir = os.environ.get("PERF_OUT") or tmp
    os.makedirs(out_dir, exist_ok=True)

    if procs.run(["make", "-C", os.path.join(ROOT, "c-examples")], timeout=3600, out=sys.stderr)[0] != 0:
        raise RuntimeError("make -C c-examples failed")
    event = "cycles"
    if "not supported" in procs.run(["perf", "stat", "-e", "instructions", "true"], timeout=30, capture=True)[1]:
        event = "cpu-clock"
        log("no hardware counters here; sampling " + event)
    if procs.port_open(HOST, port):
        raise RuntimeError("port %d is already in use (set PORT)" % port)

    server_log = os.path.join(tmp, "server.log")
    server = procs.Child(["taskset", "-c", str(server_cpu), os.path.join(ROOT, "c-examples", "server"),
                          "--host", HOST, "--port", str(port)] + ours_args, out=server_log)
    if not procs.wait_until(lambda: procs.port_open(HOST, port), READY_TIMEOUT):
        with open(server_log, errors="replace") as f:
            raise RuntimeError("server not accepting on %d: %s" % (port, f.read()))

    wrk_args = ["-t1", "-c%d" % conns, "-d%ds" % (duration + 3), "--latency"]
    if scenario == "pipelined":
        wrk_args += ["-s", os.path.join(BENCH_DIR, "pipeline.lua"), "http://%s:%d/" % (HOST, port), "--", str(pipeline)]
    else:
        wrk_args += ["http://%s:%d/" % (HOST, port)]
    wrk_out = os.path.join(tmp, "wrk.out")
    wrk = procs.Child(["taskset", "-c", str(client_cpu), "wrk"] + wrk_args, out=wrk_out)
    time.sleep(1)
    data = os.path.join(out_dir, "perf.data")
    log("perf record -e %s --call-graph %s -p %d for %ds" % (event, call_graph, server.pid, duration))
    record_log = os.path.join(tmp, "perf-record.log")
    status, _ = procs.run(["perf", "record", "-e", event, "--call-graph", call_graph, "-p", str(server.pid),
                           "-o", data, "--", "sleep", str(duration)], timeout=duration + 60, out=record_log)
    if status != 0:
        with open(record_log, errors="replace") as f:
            raise RuntimeError("perf record failed: " + f.read())
    wrk.wait(timeout=40)
    status, _ = server.stop(signal.SIGINT, timeout=10)
    if status != 0:
        log("server exited with status %d" % status)

    dso = perf_report(data, ["--sort", "dso", "-g", "none"], os.path.join(tmp, "dso.txt"))
    sym = perf_report(data, ["--sort", "dso,sym", "-g", "none", "--percent-limit", "0.7"], os.path.join(tmp, "sym.txt"))
    graph = perf_report(data, [], os.path.join(tmp, "graph.txt"))
    with open(wrk_out, errors="replace") as f:
        wrk_lines = f.read().splitlines()
    print("## wrk during the profile (scenario %s)" % scenario)
    print()
    print("\n".join("    " + l for l in wrk_lines))
    print()
    print("## Self time by object (perf report --no-children --sort dso -g none)")
    print()
    print("\n".join([l for l in dso if l and not l.startswith("#")][:12]))
    print()
    print("## Top symbols by self time (perf report --no-children --sort dso,sym -g none)")
    print()
    print("\n".join([l for l in sym if l and not l.startswith("#")][:40]))
    print()
    print("## perf report --stdio --no-children | head -60")
    print()
    print("\n".join(graph[:60]))
    if out_dir != tmp:
        log("perf.data kept in " + out_dir)


def main():
    procs.set_log_prefix("profile")
    procs.catch_signals()
    tmp = tempfile.mkdtemp(prefix="profile.", dir=os.environ.get("TMPDIR") or "/tmp")
    try:
        profile(tmp)
        return 0
    except procs.Interrupted as e:
        log("interrupted (%s)" % e)
        return 130
    except RuntimeError as e:
        log("error: %s" % e)
        return 1
    finally:
        procs.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
