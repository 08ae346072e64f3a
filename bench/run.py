#!/usr/bin/env python3
"""run.py - connection-core against nginx, libmicrohttpd and a raw epoll
loop, side by side, in one run (bench/run.sh runs this; see bench/README.md).

    bench/run.sh                                  5 rounds x 5 s per measurement
    QUICK=1 bench/run.sh                          1 round x 2 s, no warm-up
    SCENARIOS="keepalive pipelined" SERVERS="ours raw" bench/run.sh

Every server runs pinned to CPU SERVER_CPU (1), wrk -t1 pinned to CPU
CLIENT_CPU (0).  Within a round each scenario runs against every server in
turn (a fresh server process per scenario, stopped afterwards); the order
of the servers rotates from round to round.  The report on stdout has the
median over the rounds and the ratio to nginx; progress goes to stderr.
Traffic goes to 127.0.0.1 only.

Scenarios (SCENARIOS takes these names or the old letters):
    keepalive (a, with f and g)  pipelined (b)  large_body (c)
    connection_churn (d)  idle_connections (e)  instructions_syscalls (i)

Settings (environment; bench/README.md explains each):
    ROUNDS=5 DURATION=5 WARMUP=1 QUICK=0 (1 -> ROUNDS=1 DURATION=2 WARMUP=0)
    PORT_OURS=18080 PORT_NGINX=18081 PORT_MHD=18082 PORT_RAW=18083 PORT_MULTI=18084
    CONNS=64 PIPELINE=16 BIG_CONNS=16 CLOSE_CONNS=64 IDLE_CONNS=10000
    SERVER_CPU=1 CLIENT_CPU=0 SERVERS="ours nginx mhd raw" SCENARIOS=(all)
    I_DURATION=3 WORKERS=2 OURS_ARGS="--max-connections 20000 --idle-timeout-ms 600000"
    NOFILE=65536 KEEP_TMP=0 NICE=-10 FOREIGN_LIMIT=10 CC=cc
"""

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in bench/

import procs  # noqa: E402 (the imports of bench/ modules come after that line)
import scenarios
import servers
import table
from procs import CLK_TCK, log
from results import Results
from settings import Settings, SettingsError
from wrk import Wrk

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)


def check_prerequisites(cfg):
    for cmd in ("wrk", "nginx", "taskset", "python3", cfg.cc, "cargo", "make"):
        if not shutil.which(cmd):
            raise RuntimeError("'%s' not found (Debian: apt-get install wrk nginx-light libmicrohttpd-dev "
                               "build-essential python3; Rust via rustup)" % cmd)
    for cpu in (cfg.server_cpu, cfg.client_cpu):
        if subprocess.run(["taskset", "-c", str(cpu), "true"], capture_output=True, timeout=10).returncode != 0:
            raise RuntimeError("cannot pin to CPUs %d and %d (nproc=%d); set SERVER_CPU/CLIENT_CPU"
                               % (cfg.server_cpu, cfg.client_cpu, os.cpu_count()))


def set_priority(cfg):
    """Renice this process (and so all it starts) to NICE, from nice 0 only.
    With autogroup scheduling (Debian's default) nice only ranks processes
    within one session: started as its own session (`setsid -w
    bench/run.sh`), the run also gives its session's group that nice.
    Returns the autogroup state for the report."""
    fields = procs.stat_fields(os.getpid())
    if cfg.nice != 0:
        if fields[16] != "0":
            log("note: already at nice %s; not renicing" % fields[16])
            cfg.nice = int(fields[16])
        else:
            try:
                os.setpriority(os.PRIO_PROCESS, 0, cfg.nice)
            except OSError:
                log("note: cannot renice to %d (not root?); running at nice 0" % cfg.nice)
                cfg.nice = 0
    autogroup = "off"
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as f:
            enabled = f.read().strip() == "1"
    except OSError:
        enabled = False
    if enabled:
        autogroup = "on, session not raised (run as setsid -w bench/run.sh to raise it)"
        if cfg.nice != 0 and fields[3] == str(os.getpid()):
            try:
                with open("/proc/self/autogroup", "w") as f:
                    f.write(str(cfg.nice))
                autogroup = "on, this session's group at nice %d" % cfg.nice
            except OSError:
                pass
    return autogroup


def raise_nofile(cfg):
    """One limit for this process and everything it starts."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = hard == resource.RLIM_INFINITY
    try:
        # Raising the hard limit as well needs root (CAP_SYS_RESOURCE).
        resource.setrlimit(resource.RLIMIT_NOFILE, (cfg.nofile, hard if unlimited else max(hard, cfg.nofile)))
    except (ValueError, OSError):
        limit = 1048576 if unlimited else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
        log("warning: cannot raise ulimit -n to %d; using the hard limit %d" % (cfg.nofile, limit))
    cfg.nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if cfg.nofile <= cfg.idle_conns + 2 * cfg.conns + 64:
        log("warning: ulimit -n %d is too low for %d idle connections; idle_connections will be short"
            % (cfg.nofile, cfg.idle_conns))


def check_idle_machine(cfg, results, autogroup):
    """Is anything else running?  Two seconds of /proc/stat."""
    busy0 = procs.machine_ticks(3)
    time.sleep(2)
    busy = (procs.machine_ticks(3) - busy0) * 100 // CLK_TCK // 2
    if busy > cfg.foreign_limit:
        log("warning: before the run other processes used %d%% of a CPU; expect noisy results" % busy)
        results.note("before the run other processes used %d%% of a CPU (autogroup %s)" % (busy, autogroup))


def run_rounds(cfg, ctx):
    have_valgrind = all(shutil.which(t) for t in ("valgrind", "callgrind_control", "strace"))
    for rnd in range(1, cfg.rounds + 1):
        n = len(cfg.servers)
        order = [cfg.servers[(i + rnd - 1) % n] for i in range(n)]  # rotates each round
        for name in cfg.scenarios:
            sc = scenarios.BY_NAME[name]
            for s in order:
                if (s == "raw" and not sc.raw_too) or (sc.once and rnd > 1):
                    continue
                if sc.only and s not in sc.only:
                    continue
                wrap = ()
                if sc.under_valgrind:
                    if not have_valgrind:
                        if s == order[0]:
                            ctx.results.note("instructions_syscalls (i) skipped: valgrind, callgrind_control or strace not found "
                                             "(apt-get install valgrind strace)")
                        continue
                    wrap = scenarios.valgrind_wrapper(ctx, s)
                log("round %d/%d: %s (%s) %s" % (rnd, cfg.rounds, sc.name, sc.letter, s))
                srv = ctx.servers.start(s, wrap=wrap, variant=sc.variant)
                if srv is None:
                    continue
                if not sc.variant:  # a variant checks its own answer
                    ctx.servers.preflight(s)
                ctx.label = "round %d, %s, %s (%s)" % (rnd, s, sc.name, sc.letter)
                sc.run(ctx, srv, rnd)
                if srv.child is None:
                    continue  # instructions_syscalls could not restart it
                if not srv.alive():
                    ctx.results.note("%s: the server died during the run" % ctx.label)
                elif s in ("ours", "base") and not sc.variant:
                    ctx.servers.check_stats(srv, ctx.label)
                srv.stop()
        if ctx.servers.have_multi and "pipelined" in cfg.scenarios:
            log("round %d/%d: pipelined (b) multicore, unpinned" % (rnd, cfg.rounds))
            srv = ctx.servers.start("multi", pin=False)
            if srv is not None:
                ctx.label = "round %d, multicore, pipelined (b)" % rnd
                scenarios.pipelined(ctx, srv, rnd, pin=False)
                if not srv.alive():
                    ctx.results.note("%s: the server died during the run" % ctx.label)
                srv.stop()


def first_line(cmd):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=10)
        return (p.stdout.splitlines() or [""])[0]
    except (OSError, subprocess.TimeoutExpired):
        return ""


def report(cfg, results, have_multi, autogroup, command):
    cpu_model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    commit = first_line(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]) or "?"
    if first_line(["git", "-C", ROOT, "status", "--porcelain", "--", "src", "include", "c-examples", "Cargo.toml"]):
        commit += " + uncommitted changes in src/, include/, c-examples/ or Cargo.toml"
    tools = "; ".join([" ".join(first_line(["wrk", "-v"]).split()[:2]),
                       first_line(["nginx", "-v"]).replace("nginx version: ", ""),
                       first_line([os.path.join(BENCH_DIR, "mhd_server"), "--version"]),
                       first_line(["rustc", "--version"])])
    print("## connection-core benchmark")
    print()
    print("- date: " + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    print("- machine: nproc=%d, %s, kernel %s" % (os.cpu_count(), cpu_model, os.uname().release))
    print('- command: `QUICK=%s ROUNDS=%d DURATION=%d WARMUP=%d SERVERS="%s" SCENARIOS="%s" %s`'
          % (cfg.quick, cfg.rounds, cfg.duration, cfg.warmup, cfg.servers_text, cfg.scenarios_text, command))
    print("- servers pinned to CPU %d, wrk -t1 to CPU %d; %ds per measurement after %ds warm-up, median of %d "
          "round(s); ulimit -n %d; nice %d; autogroup %s" % (cfg.server_cpu, cfg.client_cpu, cfg.duration,
                                                             cfg.warmup, cfg.rounds, cfg.nofile, cfg.nice, autogroup))
    print("- code: " + commit)
    print("- " + tools)
    print()
    sys.stdout.flush()
    table.print_table(results.path)
    print()
    if have_multi:
        table.print_multicore(results.path)
    else:
        print("multicore: not built")
    print()
    print("Notes (errors, non-2xx responses, crashes, closed idle connections):")
    print()
    print("\n".join("- " + n for n in results.notes) if results.notes else "- none")


def main(argv):
    if any(a in ("-h", "--help") for a in argv[1:]):
        print(__doc__)
        return 0
    if len(argv) > 1:
        log("error: no arguments are taken (settings come from the environment; see --help)")
        return 2
    command = " ".join(argv)
    try:
        cfg = Settings.from_env(scenario_aliases=scenarios.ALIASES)
        check_prerequisites(cfg)
    except (SettingsError, RuntimeError) as e:
        log("error: %s" % e)
        return 1
    autogroup = set_priority(cfg)
    raise_nofile(cfg)
    procs.catch_signals()
    tmp = tempfile.mkdtemp(prefix="bench.", dir=os.environ.get("TMPDIR") or "/tmp")
    os.chmod(tmp, 0o755)  # nginx's worker (user nobody) reads /big from here
    status = 0
    try:
        results = Results(tmp)
        servers.build(ROOT, BENCH_DIR, cfg.cc)
        server_set = servers.Servers(cfg, ROOT, BENCH_DIR, tmp, results)
        server_set.write_nginx_config()
        scenarios.write_wrk_scripts(BENCH_DIR, tmp)
        ctx = scenarios.Context(cfg, tmp, BENCH_DIR, results, Wrk(cfg, tmp, results), server_set)
        check_idle_machine(cfg, results, autogroup)
        log("%d round(s) x %ds (warm-up %ds); servers: %s; scenarios: %s; ulimit -n %d"
            % (cfg.rounds, cfg.duration, cfg.warmup, " ".join(cfg.servers), " ".join(cfg.scenarios), cfg.nofile))
        start = time.monotonic()
        run_rounds(cfg, ctx)
        report(cfg, results, server_set.have_multi, autogroup, command)
        log("done in %d s" % (time.monotonic() - start))
    except procs.Interrupted as e:
        log("interrupted (%s)" % e)
        status = 130
    except RuntimeError as e:
        log("error: %s" % e)
        status = 1
    finally:
        procs.cleanup()
        if cfg.keep_tmp:
            log("kept " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
