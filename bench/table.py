#!/usr/bin/env python3
"""table.py [--multicore] RESULTS.tsv - the table in bench/run.sh's report.

run.py calls print_table() and print_multicore(); on the command line it
reads a results.tsv kept with KEEP_TMP=1.  Input lines: server<TAB>metric<TAB>round<TAB>value[<TAB>suspect], where
suspect is 1 when other processes competed for the CPUs during that
measurement.  For each metric and server the table shows the median over
the clean rounds (over all rounds, marked †, if none was clean) and its
ratio to nginx's median, then every round's value (suspect ones marked *).

With --multicore it prints only the line for c-examples/multicore.

The metric keys keep the old scenario letters (a_rps is keepalive's req/s,
f_us its CPU per request, ...), so tables compare with bench/RESULTS.md.
"""

import statistics
import sys

SERVERS = [
    ("ours", "connection-core"),
    ("nginx", "nginx (1 worker)"),
    ("mhd", "libmicrohttpd"),
    ("raw", "raw epoll (ceiling)"),
    ("base", "connection-core, BASE_BIN"),
]

# metric key, label, format, better ("high" or "low")
METRICS = [
    ("a_rps", "(a) keepalive: `GET /` keep-alive, 64 conns: req/s", "{:,.0f}", "high"),
    ("b_rps", "(b) pipelined: (a), 16 requests per write: req/s", "{:,.0f}", "high"),
    ("c_mbps", "(c) large_body: `GET /big` 1 MiB, 16 conns: MB/s", "{:,.0f}", "high"),
    ("d_rps", "(d) connection_churn: `Connection: close`, 64 conns: req/s", "{:,.0f}", "high"),
    ("e_kib", "(e) idle_connections: RSS per idle keep-alive conn (10,000 held): KiB", "{:,.2f}", "low"),
    ("e_rps", "(e) idle_connections: (a) beside 10,000 idle conns: req/s", "{:,.0f}", "high"),
    ("d_cpu_us", "(d) connection_churn: server CPU per connection: µs", "{:,.2f}", "low"),
    ("b_cpu_us", "(b) pipelined: server CPU per request: µs", "{:,.3f}", "low"),
    ("f_us", "(f) keepalive: server CPU per request in (a): µs", "{:,.2f}", "low"),
    ("f_user_us", "(f) of which user time: µs", "{:,.2f}", "low"),
    ("f_sys_us", "(f) of which kernel time: µs", "{:,.2f}", "low"),
    ("g_p50", "(g) keepalive: latency p50 in (a): µs", "{:,.0f}", "low"),
    ("g_p99", "(g) keepalive: latency p99 in (a): µs", "{:,.0f}", "low"),
    ("i_instr", "(i) instructions_syscalls: user-space instructions per request in (a) (callgrind)", "{:,.0f}", "low"),
    ("i_syscalls", "(i) instructions_syscalls: system calls per request in (a) (strace -c)", "{:,.3f}", "low"),
    ("w_rps", "(w) worker_post: each answer from a worker thread, keep-alive, 64 conns: req/s", "{:,.0f}", "high"),
    ("w_p50", "(w) worker_post: latency p50: µs", "{:,.0f}", "low"),
    ("w_p99", "(w) worker_post: latency p99: µs", "{:,.0f}", "low"),
    ("w_cpu_us", "(w) worker_post: server CPU per request (all threads): µs", "{:,.2f}", "low"),
]


def load(path):
    data = {}
    for line in open(path):
        parts = line.rstrip("\n").split("\t")
        if len(parts) not in (4, 5):
            continue
        server, metric, rnd, value = parts[:4]
        suspect = len(parts) == 5 and parts[4] == "1"
        try:
            v = float(value)
        except ValueError:
            continue
        data.setdefault((server, metric), []).append((int(rnd), v, suspect))
    return data


def median(vals):
    """(median, all_suspect): clean rounds if there are any."""
    clean = [v for _, v, s in vals if not s]
    if clean:
        return statistics.median(clean), False
    return statistics.median(v for _, v, _ in vals), True


def multicore(data):
    med = {s: median(v)[0] for (s, m), v in data.items() if m == "b_rps"}
    if "multi" not in med:
        print("multicore: built, but no result (see the notes)")
        return
    line = ("multicore: (b) pipelined against c-examples/multicore, server and "
            "wrk -t1 both unpinned: {:,.0f} req/s".format(med["multi"]))
    for s, label in (("ours", "single-threaded connection-core"), ("nginx", "nginx")):
        if s in med:
            line += ", {:.2f}× {}".format(med["multi"] / med[s], label)
    print(line)


def print_multicore(path):
    multicore(load(path))


def print_table(path):
    data = load(path)
    med = {k: median(v) for k, v in data.items()}

    # The base column (BASE_BIN) only when it was run.
    servers = [x for x in SERVERS if x[0] != "base" or any(s == "base" for s, _ in data)]
    out = []
    out.append("| Scenario | " + " | ".join(label for _, label in servers) + " |")
    out.append("|---|" + "---:|" * len(servers))
    any_dagger = False
    for key, label, fmt, better in METRICS:
        cells = []
        base = med.get(("nginx", key), (None, False))[0]
        for s, _ in servers:
            m, dirty = med.get((s, key), (None, False))
            if m is None:
                cells.append("—")
                continue
            cell = fmt.format(m)
            if base:
                cell += " ({:.2f}×)".format(m / base)
            if dirty:
                cell += " †"
                any_dagger = True
            cells.append(cell)
        arrow = "higher is better" if better == "high" else "lower is better"
        out.append("| {} <sub>{}</sub> | {} |".format(label, arrow, " | ".join(cells)))
    print("\n".join(out))
    print()
    print("Medians over the rounds in which nothing else competed for the CPUs; "
          "(×) is the ratio to nginx's median." +
          (" † = every round of this cell was contended (see the notes)." if any_dagger else ""))

    print()
    print("Per-round values (round:value, * = other processes competed for the CPUs):")
    print()
    for key, label, fmt, _ in METRICS:
        parts = []
        for s, name in SERVERS:
            vals = sorted(data.get((s, key), []))
            if vals:
                parts.append("{} {}".format(s, " ".join(
                    "{}:{}{}".format(r, fmt.format(v), "*" if sus else "") for r, v, sus in vals)))
        if parts:
            print("- {} — {}".format(key, "; ".join(parts)))
    paired(data)


def paired(data):
    """Ours over each other server, round by round. Within a round the
    servers run one after the other, so a ratio taken there cancels most of
    the drift between rounds; the median of these ratios is steadier than
    the ratio of two medians."""
    lines = []
    for key, _, _, _ in METRICS:
        for s, _ in SERVERS[1:]:
            # Clean rounds only; when fewer than two are clean, every round,
            # marked (on a shared machine both servers of a round usually
            # share the contention, which the ratio then still cancels).
            for clean in (True, False):
                ours = {r: v for r, v, sus in data.get(("ours", key), []) if not (clean and sus)}
                theirs = {r: v for r, v, sus in data.get((s, key), []) if not (clean and sus)}
                rounds = sorted(r for r in ours if r in theirs and theirs[r])
                if len(rounds) >= 2:
                    break
            if len(rounds) < 2:
                continue
            ratios = [ours[r] / theirs[r] for r in rounds]
            lines.append("- {} ours ÷ {} — {}; median {:.2f}×{}".format(
                key, s, " ".join("{}:{:.2f}".format(r, q) for r, q in zip(rounds, ratios)),
                statistics.median(ratios), "" if clean else " (all rounds contended)"))
    if lines:
        print()
        print("Paired ratios (ours ÷ another server in the same round, clean rounds only unless marked):")
        print()
        print("\n".join(lines))


def main():
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "--multicore":
        print_multicore(args[1])
    elif len(args) == 1:
        print_table(args[0])
    else:
        print("usage: table.py [--multicore] RESULTS.tsv", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
