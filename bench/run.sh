#!/usr/bin/env bash
# bench/run.sh - connection-core against nginx, libmicrohttpd and a raw epoll
# loop, side by side, in one run.  See bench/README.md.
#
#   bench/run.sh                 5 rounds x 5 s per measurement
#   QUICK=1 bench/run.sh         1 round x 2 s, no warm-up (smoke test)
#
# Every server runs pinned to CPU $SERVER_CPU (1), wrk -t1 pinned to CPU
# $CLIENT_CPU (0).  Within a round each scenario runs against every server
# in turn (a fresh server process per scenario, killed afterwards); the
# order of the servers rotates from round to round.  The table on stdout has
# the median over the rounds and the ratio to nginx.  Progress goes to
# stderr.  Traffic goes to 127.0.0.1 only.
#
# Settings (environment):
#   ROUNDS=5  DURATION=5 (seconds, "5s" accepted)  WARMUP=1 (seconds, 0 = none)
#   QUICK=1   -> ROUNDS=1 DURATION=2 WARMUP=0 unless set explicitly
#   PORT_OURS=18080 PORT_NGINX=18081 PORT_MHD=18082 PORT_RAW=18083 PORT_MULTI=18084
#   CONNS=64 PIPELINE=16 BIG_CONNS=16 CLOSE_CONNS=64 IDLE_CONNS=10000
#   SERVER_CPU=1 CLIENT_CPU=0
#   SERVERS="ours nginx mhd raw"   SCENARIOS="a b c d e i"   (f, g come from a)
#             i = instructions (callgrind) and system calls (strace -c) per
#             request in (a): deterministic, so measured in round 1 only;
#             skipped with a note if valgrind or strace is missing.
#   I_DURATION=3 seconds of load for (i) (the server runs ~50x slower)
#   OURS_ARGS="--max-connections 20000 --idle-timeout-ms 600000"
#   NOFILE=65536 (ulimit -n wanted; falls back to the hard limit)
#   KEEP_TMP=1 keeps the temp dir (server logs, wrk outputs) and prints it.
#   NICE=-10  nice value for this script and all it starts, if permitted
#             (root); 0 leaves it alone.  Fair to all servers; it only keeps
#             other work on a shared machine from skewing single rounds.
#             With autogroup scheduling nice only counts within a session:
#             `setsid -w bench/run.sh` runs it as its own session, whose
#             group then gets this nice too.
#   FOREIGN_LIMIT=10  a measurement during which other processes used more
#             than this % of a CPU is flagged in the notes.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
COMMAND_LINE="$0${*:+ $*}"

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    ROUNDS=${ROUNDS:-1}
    DURATION=${DURATION:-2}
    WARMUP=${WARMUP:-0}
fi
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
DURATION=${DURATION%s}
WARMUP=${WARMUP:-1}
WARMUP=${WARMUP%s}
PORT_OURS=${PORT_OURS:-18080}
PORT_NGINX=${PORT_NGINX:-18081}
PORT_MHD=${PORT_MHD:-18082}
PORT_RAW=${PORT_RAW:-18083}
PORT_MULTI=${PORT_MULTI:-18084}
CONNS=${CONNS:-64}
PIPELINE=${PIPELINE:-16}
BIG_CONNS=${BIG_CONNS:-16}
CLOSE_CONNS=${CLOSE_CONNS:-64}
IDLE_CONNS=${IDLE_CONNS:-10000}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
SERVERS=${SERVERS:-"ours nginx mhd raw"}
SCENARIOS=${SCENARIOS:-"a b c d e i"}
I_DURATION=${I_DURATION:-3}
OURS_ARGS=${OURS_ARGS:-"--max-connections 20000 --idle-timeout-ms 600000"}
NOFILE=${NOFILE:-65536}
KEEP_TMP=${KEEP_TMP:-0}
FOREIGN_LIMIT=${FOREIGN_LIMIT:-10}
NICE=${NICE:--10}
CC=${CC:-cc}
READY_TIMEOUT=10 # seconds for a server to accept connections
HOST=127.0.0.1

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for v in FOREIGN_LIMIT ROUNDS DURATION WARMUP CONNS PIPELINE BIG_CONNS CLOSE_CONNS IDLE_CONNS \
    PORT_OURS PORT_NGINX PORT_MHD PORT_RAW PORT_MULTI SERVER_CPU CLIENT_CPU I_DURATION; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
((ROUNDS >= 1 && DURATION >= 1)) || die "ROUNDS and DURATION must be >= 1"

# ---- prerequisites ------------------------------------------------------

for cmd in wrk nginx taskset python3 "$CC" cargo make getconf timeout; do
    command -v "$cmd" >/dev/null 2>&1 ||
        die "'$cmd' not found (Debian: apt-get install wrk nginx-light libmicrohttpd-dev build-essential python3; Rust via rustup)"
done
taskset -c "$SERVER_CPU" true 2>/dev/null && taskset -c "$CLIENT_CPU" true 2>/dev/null ||
    die "cannot pin to CPUs $SERVER_CPU and $CLIENT_CPU (nproc=$(nproc)); set SERVER_CPU/CLIENT_CPU"
CLK_TCK=$(getconf CLK_TCK)
[[ $NICE =~ ^-?[0-9]+$ ]] || die "NICE must be a whole number, got '$NICE'"
# Only from nice 0, where renice's absolute and relative readings agree.
stat_now=$(cat /proc/$$/stat)
stat_now=${stat_now##*) }
read -ra stat_fields <<<"$stat_now"
if [[ $NICE != 0 ]]; then
    if [[ ${stat_fields[16]} != 0 ]]; then
        log "note: already at nice ${stat_fields[16]}; not renicing"
        NICE=${stat_fields[16]}
    elif ! renice -n "$NICE" -p $$ >/dev/null 2>&1; then
        log "note: cannot renice to $NICE (not root?); running at nice 0"
        NICE=0
    fi
fi
# With autogroup scheduling (Debian's default) nice only ranks processes
# within one session; other sessions get an equal share whatever their
# nice.  Started as its own session (`setsid -w bench/run.sh`), the script
# also gives its session's group the same nice; otherwise it leaves the
# caller's session alone.
AUTOGROUP=off
if [[ -r /proc/sys/kernel/sched_autogroup_enabled && $(cat /proc/sys/kernel/sched_autogroup_enabled) == 1 ]]; then
    AUTOGROUP="on, session not raised (run as setsid -w bench/run.sh to raise it)"
    if [[ $NICE != 0 && ${stat_fields[3]} == "$$" ]] && echo "$NICE" >/proc/$$/autogroup 2>/dev/null; then
        AUTOGROUP="on, this session's group at nice $NICE"
    fi
fi

# One limit for this shell and everything it starts (servers, holder, wrk).
if ! ulimit -n "$NOFILE" 2>/dev/null; then
    hard=$(ulimit -Hn)
    [[ $hard == unlimited ]] && hard=1048576
    ulimit -n "$hard"
    log "warning: cannot raise ulimit -n to $NOFILE; using the hard limit $hard"
fi
NOFILE=$(ulimit -n)
((NOFILE > IDLE_CONNS + 2 * CONNS + 64)) ||
    log "warning: ulimit -n $NOFILE is too low for $IDLE_CONNS idle connections; (e) will be short"

# ---- temp dir, process bookkeeping, cleanup ------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench.XXXXXX")
chmod 755 "$TMP" # nginx's worker (user nobody) reads /big from here
PIDS=()          # every background process we started and not yet reaped

alive() { # pid -> true while running (a zombie counts as gone)
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    [[ ${s:0:1} != Z ]]
}

forget_pid() {
    local p keep=()
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=(${keep[@]+"${keep[@]}"})
}

cleanup() {
    local p
    trap - EXIT INT TERM
    for p in ${PIDS[@]+"${PIDS[@]}"}; do kill -TERM "$p" 2>/dev/null || true; done
    for p in ${PIDS[@]+"${PIDS[@]}"}; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do alive "$p" || break; sleep 0.2; done
        kill -KILL "$p" 2>/dev/null || true
    done
    if [[ $KEEP_TMP == 1 ]]; then
        log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

RESULTS=$TMP/results.tsv
NOTES=$TMP/notes.txt
: >"$RESULTS"
: >"$NOTES"
# record SERVER METRIC ROUND VALUE [SUSPECT]: SUSPECT=1 when other processes
# competed for the CPUs during the measurement (table.py then prefers the
# clean rounds); it defaults to the verdict on the last measured wrk run.
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-$RUN_SUSPECT}" >>"$RESULTS"; }
note() {
    log "note: $*"
    printf -- '- %s\n' "$*" >>"$NOTES"
}

# ---- build -------------------------------------------------------------

log "building the release library and c-examples/server (make -C c-examples)"
make -C "$ROOT/c-examples" >&2
[[ -x $ROOT/c-examples/server ]] || die "c-examples/server was not built"
log "building bench/mhd_server and bench/raw_epoll"
"$CC" -O2 -g -std=c11 -Wall -Wextra -pthread -o "$BENCH_DIR/mhd_server" \
    "$BENCH_DIR/mhd_server.c" -lmicrohttpd ||
    die "cannot build mhd_server (apt-get install libmicrohttpd-dev)"
"$CC" -O2 -g -std=c11 -Wall -Wextra -o "$BENCH_DIR/raw_epoll" "$BENCH_DIR/raw_epoll.c"

MULTI_BIN=$ROOT/c-examples/multicore
HAVE_MULTI=0
[[ -x $MULTI_BIN ]] && HAVE_MULTI=1

# wrk scripts: report.lua prints exact totals; appended to the pipeline one.
cp "$BENCH_DIR/report.lua" "$TMP/report.lua"
cat "$BENCH_DIR/pipeline.lua" "$BENCH_DIR/report.lua" >"$TMP/pipeline.lua"

# ---- nginx config ------------------------------------------------------

NGX=$TMP/nginx
mkdir -p "$NGX/www" "$NGX/body"
python3 - "$NGX/www/big" <<'EOF'
import sys
pattern = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+\n"
with open(sys.argv[1], "wb") as f:
    f.write(pattern * (1048576 // len(pattern)))  # the bytes of server.c's /big
EOF
chmod -R a+rX "$NGX"
cat >"$NGX/nginx.conf" <<EOF
# written by bench/run.sh
worker_processes 1;
daemon off;
master_process on;
pid $NGX/nginx.pid;
error_log $NGX/error.log warn;
worker_rlimit_nofile $NOFILE;
events {
    worker_connections $((IDLE_CONNS + 4 * CONNS + 1024));
    use epoll;
}
http {
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    keepalive_timeout 600s;
    client_body_temp_path $NGX/body;
    server {
        listen $HOST:$PORT_NGINX backlog=4096;
        location = / {
            default_type text/plain;
            return 200 "Hello, World!";
        }
        location = /big {
            root $NGX/www;
            default_type application/octet-stream;
        }
    }
}
EOF
# For (i), one process: valgrind cannot be reached in a forked worker that
# has changed its user, and with master_process off nginx runs the same
# event loop in the process it started as.
sed 's/^master_process on;/master_process off;/' "$NGX/nginx.conf" >"$NGX/nginx-single.conf"
NGINX_CMD=(nginx -p "$NGX" -c "$NGX/nginx.conf")
NGINX_SINGLE_CMD=(nginx -p "$NGX" -c "$NGX/nginx-single.conf")
if nginx -h 2>&1 | grep -q -- '-e filename'; then
    NGINX_CMD+=(-e "$NGX/error.log")
    NGINX_SINGLE_CMD+=(-e "$NGX/error.log")
fi
"${NGINX_CMD[@]}" -t >"$NGX/test.log" 2>&1 || {
    cat "$NGX/test.log" >&2
    die "nginx rejected the generated config"
}

# ---- helpers: servers --------------------------------------------------

port_of() {
    case $1 in
    ours) echo "$PORT_OURS" ;;
    nginx) echo "$PORT_NGINX" ;;
    mhd) echo "$PORT_MHD" ;;
    raw) echo "$PORT_RAW" ;;
    multi) echo "$PORT_MULTI" ;;
    esac
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

children_of() {
    cat /proc/"$1"/task/*/children 2>/dev/null || true
}

# /proc/PID/stat fields after "comm)": f[11] utime, f[12] stime (clock
# ticks, all threads).  These print nothing if the process is gone.
cpu_split() { # "utime stime"
    local s f
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    s=${s##*) }
    read -ra f <<<"$s"
    echo "${f[11]} ${f[12]}"
}

cpu_ticks() { # utime + stime
    local t
    t=$(cpu_split "$1")
    if [[ -n $t ]]; then echo $((${t% *} + ${t#* })); fi
}

utime_ticks() {
    local t
    t=$(cpu_split "$1")
    if [[ -n $t ]]; then echo "${t% *}"; fi
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true; }

# user + nice time of the whole machine, clock ticks
machine_user_ticks() { awk '/^cpu / { print $2 + $3; exit }' /proc/stat; }

# start_server NAME PIN(1/0): sets SRV_NAME SRV_PID (the process we started)
# and SRV_MPID (the one doing the work: nginx's worker, else SRV_PID).
start_server() {
    local name=$1 pin=$2 port cmd i w
    port=$(port_of "$name")
    SRV_NAME=$name
    SRV_LOG=$TMP/$name.$((++SRV_SEQ)).log
    case $name in
    ours) cmd=("$ROOT/c-examples/server" --host "$HOST" --port "$port")
        # shellcheck disable=SC2206 # word splitting intended
        cmd+=($OURS_ARGS) ;;
    nginx) cmd=("${NGINX_CMD[@]}")
        [[ ${#SRV_WRAP[@]} -gt 0 ]] && cmd=("${NGINX_SINGLE_CMD[@]}") ;;
    mhd) cmd=("$BENCH_DIR/mhd_server" --host "$HOST" --port "$port"
        --max-connections $((IDLE_CONNS + 4 * CONNS + 1024))) ;;
    raw) cmd=("$BENCH_DIR/raw_epoll" --host "$HOST" --port "$port") ;;
    multi) cmd=("$MULTI_BIN" --host "$HOST" --port "$port") ;;
    esac
    if port_open "$port"; then
        note "port $port is already in use; $name skipped (set PORT_* to free ports)"
        return 1
    fi
    # SRV_WRAP: a command to run the server under (valgrind for (i)).
    cmd=(${SRV_WRAP[@]+"${SRV_WRAP[@]}"} "${cmd[@]}")
    if [[ $pin == 1 ]]; then
        taskset -c "$SERVER_CPU" "${cmd[@]}" >"$SRV_LOG" 2>&1 &
    else
        "${cmd[@]}" >"$SRV_LOG" 2>&1 &
    fi
    SRV_PID=$!
    PIDS+=("$SRV_PID")
    for ((i = 0; i < READY_TIMEOUT * 20; i++)); do
        port_open "$port" && break
        if ! alive "$SRV_PID"; then
            note "$name exited before accepting connections: $(tail -n 3 "$SRV_LOG" | tr '\n' ' ')"
            stop_server
            return 1
        fi
        sleep 0.05
    done
    if ! port_open "$port"; then
        note "$name not accepting on $port after ${READY_TIMEOUT}s"
        stop_server
        return 1
    fi
    SRV_MPID=$SRV_PID
    if [[ $name == nginx && ${#SRV_WRAP[@]} -eq 0 ]]; then
        SRV_MPID=
        for ((i = 0; i < 100; i++)); do
            w=$(children_of "$SRV_PID")
            if [[ -n $w ]]; then
                SRV_MPID=${w%% *}
                break
            fi
            sleep 0.05
        done
        if [[ -z $SRV_MPID ]]; then
            note "nginx worker process not found"
            stop_server
            return 1
        fi
    fi
    return 0
}

stop_server() {
    local sig=TERM rc=0 i
    [[ $SRV_NAME == ours || $SRV_NAME == multi ]] && sig=INT
    kill -s "$sig" "$SRV_PID" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        alive "$SRV_PID" || break
        sleep 0.1
    done
    if alive "$SRV_PID"; then
        note "$SRV_NAME did not exit within 10 s of SIG$sig; killed"
        kill -KILL "$SRV_PID" 2>/dev/null || true
    fi
    wait "$SRV_PID" 2>/dev/null || rc=$?
    forget_pid "$SRV_PID"
    if ((rc != 0)); then
        note "$SRV_NAME exited with status $rc after SIG$sig ($(tail -n 3 "$SRV_LOG" | tr '\n' ' '))"
    fi
    # Our server's output is scanned for trouble; the others' logs are kept
    # (KEEP_TMP=1) but not scanned (libmicrohttpd logs every peer reset).
    if [[ $SRV_NAME == ours || $SRV_NAME == multi ]] &&
        grep -qiE 'panic|segfault|abort|assert|error' "$SRV_LOG" 2>/dev/null; then
        note "$SRV_NAME log: $(grep -iE 'panic|segfault|abort|assert|error' "$SRV_LOG" | head -n 3 | tr '\n' ' ')"
    fi
    return 0
}

# Our server's /stats (JSON counters), saved and scanned for bad closes.
ours_stats() { # label
    local f=$TMP/stats.$((++SRV_SEQ)).json
    if command -v curl >/dev/null 2>&1; then
        curl -s -m 5 "http://$HOST:$(port_of "$SRV_NAME")/stats" >"$f" 2>/dev/null || true
    fi
    [[ -s $f ]] || return 0
    python3 - "$f" "$1" >>"$NOTES" <<'EOF' || true
import json, sys
try:
    st = json.load(open(sys.argv[1]))
except Exception as e:
    print("- %s: /stats unreadable (%s)" % (sys.argv[2], e)); sys.exit()
def walk(d, pre=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from walk(v, pre + k + ".")
        else:
            yield pre + k, v
bad = {k: v for k, v in walk(st)
       if any(w in k for w in ("error", "protocol", "limit", "timeout", "fd_exhausted", "accept_paused", "truncated", "unknown"))
       and isinstance(v, (int, float)) and v}
if bad:
    print("- %s: /stats counters: %s" % (sys.argv[2], ", ".join("%s=%s" % kv for kv in sorted(bad.items()))))
EOF
}

# Sanity check once per server: same status, type and bytes as the others.
preflight() {
    local name=$1 port body ctype
    command -v curl >/dev/null 2>&1 || return 0
    port=$(port_of "$name")
    body=$(curl -s -m 5 "http://$HOST:$port/" || true)
    ctype=$(curl -s -m 5 -o /dev/null -w '%{content_type}' "http://$HOST:$port/" || true)
    [[ $body == "Hello, World!" && $ctype == text/plain* ]] ||
        note "$name: GET / returned '$body' ($ctype), expected 'Hello, World!' (text/plain)"
    [[ $name == raw || $name == multi ]] && return 0
    curl -s -m 10 "http://$HOST:$port/big" -o "$TMP/big.$name" || true
    cmp -s "$TMP/big.$name" "$NGX/www/big" ||
        note "$name: GET /big body differs from the 1 MiB pattern ($(stat -c %s "$TMP/big.$name" 2>/dev/null || echo 0) bytes)"
}

# ---- helpers: wrk ------------------------------------------------------

# run_wrk OUT PIN SECONDS WRK-ARGS... ; wrk -t1, bounded by timeout.
# A measured run (MEASURED=1) also checks that nothing else used the CPUs:
# user+nice time of the machine minus wrk's (this shell's reaped children,
# via `times`) and the server's user time = other processes' user time.
run_wrk() {
    local out=$1 pin=$2 secs=$3 pre=() m0 m1 c0 c1 s0 s1 rc=0
    shift 3
    [[ $pin == 1 ]] && pre=(taskset -c "$CLIENT_CPU")
    times >"$TMP/times.0"
    m0=$(machine_user_ticks)
    s0=$(utime_ticks "$SRV_MPID")
    timeout -k 5 $((secs + 30)) ${pre[@]+"${pre[@]}"} \
        wrk -t1 -d"${secs}s" --timeout 5s --latency "$@" >"$out" 2>&1 || rc=$?
    times >"$TMP/times.1"
    m1=$(machine_user_ticks)
    s1=$(utime_ticks "$SRV_MPID")
    if ((rc != 0)); then
        note "wrk failed with status $rc ($*): $(tail -n 2 "$out" | tr '\n' ' ')"
        return 1
    fi
    [[ $MEASURED == 1 && -n $s0 && -n $s1 ]] || return 0
    RUN_SUSPECT=0
    c0=$(awk 'NR == 2 { split($1, t, /[ms]/); print t[1] * 60 + t[2] }' "$TMP/times.0")
    c1=$(awk 'NR == 2 { split($1, t, /[ms]/); print t[1] * 60 + t[2] }' "$TMP/times.1")
    FOREIGN_PCT=$(awk -v m=$((m1 - m0)) -v s=$((s1 - s0)) -v c="$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }')" \
        -v hz="$CLK_TCK" -v secs="$secs" 'BEGIN { v = ((m - s) / hz - c) / secs * 100; printf "%.0f", v < 0 ? 0 : v }')
    if ((FOREIGN_PCT > FOREIGN_LIMIT)); then
        RUN_SUSPECT=1
        note "$RUN_LABEL: other processes used ~${FOREIGN_PCT}% of a CPU (user time) during the measurement; marked suspect"
    fi
}

# parse_wrk OUT LABEL: sets W_REQ W_BYTES W_DUR W_P50 W_P99, notes errors.
parse_wrk() {
    local line kv k v errs
    line=$(grep '^BENCH ' "$1" | tail -n 1) || {
        note "$2: no result from wrk: $(tail -n 2 "$1" | tr '\n' ' ')"
        return 1
    }
    for kv in ${line#BENCH }; do
        k=${kv%%=*}
        v=${kv#*=}
        case $k in
        requests) W_REQ=$v ;; bytes) W_BYTES=$v ;; duration_us) W_DUR=$v ;;
        connect) W_ECONN=$v ;; read) W_EREAD=$v ;; write) W_EWRITE=$v ;;
        status) W_ESTATUS=$v ;; timeout) W_ETIME=$v ;;
        p50_us) W_P50=$v ;; p99_us) W_P99=$v ;;
        esac
    done
    errs=$((W_ECONN + W_EREAD + W_EWRITE + W_ETIME))
    if ((W_ESTATUS > 0 || errs > 0)); then
        note "$2: wrk counted non-2xx/3xx=$W_ESTATUS, socket errors connect=$W_ECONN read=$W_EREAD write=$W_EWRITE timeout=$W_ETIME (of $W_REQ responses)"
    fi
    ((W_REQ > 0 && W_DUR > 0)) || {
        note "$2: no responses"
        return 1
    }
}

us_per() { # TICKS COUNT -> µs of CPU per item
    awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN { printf "%.3f", t / hz * 1e6 / n }'
}

per_sec() { awk -v n="$1" -v us="$2" 'BEGIN { printf "%.1f", n * 1e6 / us }'; }

warmup() { # PIN WRK-ARGS...
    local pin=$1
    shift
    ((WARMUP > 0)) || return 0
    MEASURED=0
    run_wrk "$TMP/warmup.out" "$pin" "$WARMUP" "$@" || true
    MEASURED=1
}

# ---- scenarios ---------------------------------------------------------

# (a) plus (f) CPU per request and (g) latency, from the same run.
scenario_a() { # server round
    local s=$1 r=$2 url out t0 t1
    url="http://$HOST:$(port_of "$s")/"
    out=$TMP/wrk.$s.a.$r.out
    warmup 1 -c"$CONNS" "$url"
    t0=$(cpu_split "$SRV_MPID")
    run_wrk "$out" 1 "$DURATION" -c"$CONNS" -s "$TMP/report.lua" "$url" || return 0
    t1=$(cpu_split "$SRV_MPID")
    parse_wrk "$out" "round $r, $s, (a)" || return 0
    record "$s" a_rps "$r" "$(per_sec "$W_REQ" "$W_DUR")"
    if [[ -n $t0 && -n $t1 ]]; then
        # (f) in full, and split into user and kernel time: the user part
        # is the server's own code; the kernel part is mostly loopback TCP.
        record "$s" f_us "$r" "$(us_per "$((${t1% *} + ${t1#* } - ${t0% *} - ${t0#* }))" "$W_REQ")"
        record "$s" f_user_us "$r" "$(us_per "$((${t1% *} - ${t0% *}))" "$W_REQ")"
        record "$s" f_sys_us "$r" "$(us_per "$((${t1#* } - ${t0#* }))" "$W_REQ")"
    fi
    record "$s" g_p50 "$r" "$W_P50"
    record "$s" g_p99 "$r" "$W_P99"
}

scenario_b() { # server round [pin]
    local s=$1 r=$2 pin=${3:-1} url out
    url="http://$HOST:$(port_of "$s")/"
    out=$TMP/wrk.$s.b.$r.out
    warmup "$pin" -c"$CONNS" -s "$TMP/pipeline.lua" "$url" -- "$PIPELINE"
    run_wrk "$out" "$pin" "$DURATION" -c"$CONNS" -s "$TMP/pipeline.lua" "$url" -- "$PIPELINE" || return 0
    parse_wrk "$out" "round $r, $s, (b)" || return 0
    record "$s" b_rps "$r" "$(per_sec "$W_REQ" "$W_DUR")"
}

scenario_c() {
    local s=$1 r=$2 url out
    url="http://$HOST:$(port_of "$s")/big"
    out=$TMP/wrk.$s.c.$r.out
    warmup 1 -c"$BIG_CONNS" "$url"
    run_wrk "$out" 1 "$DURATION" -c"$BIG_CONNS" -s "$TMP/report.lua" "$url" || return 0
    parse_wrk "$out" "round $r, $s, (c)" || return 0
    record "$s" c_mbps "$r" "$(awk -v b="$W_BYTES" -v us="$W_DUR" 'BEGIN { printf "%.1f", b / us }')"
}

scenario_d() {
    local s=$1 r=$2 url out
    url="http://$HOST:$(port_of "$s")/"
    out=$TMP/wrk.$s.d.$r.out
    warmup 1 -c"$CLOSE_CONNS" -H 'Connection: close' "$url"
    t0=$(cpu_ticks "$SRV_MPID")
    run_wrk "$out" 1 "$DURATION" -c"$CLOSE_CONNS" -H 'Connection: close' \
        -s "$TMP/report.lua" "$url" || return 0
    t1=$(cpu_ticks "$SRV_MPID")
    parse_wrk "$out" "round $r, $s, (d)" || return 0
    record "$s" d_rps "$r" "$(per_sec "$W_REQ" "$W_DUR")"
    # wrk's connect() is the bottleneck here, so also the server's side:
    # CPU per connection (accept, read, answer, close).
    if [[ -n $t0 && -n $t1 ]]; then
        record "$s" d_cpu_us "$r" "$(us_per $((t1 - t0)) "$W_REQ")"
    fi
}

# (e) RSS growth per idle keep-alive connection, then (a) beside them.
scenario_e() {
    local s=$1 r=$2 port url out hlog hpid rss0 rss1 opened i line
    port=$(port_of "$s")
    url="http://$HOST:$port/"
    out=$TMP/wrk.$s.e.$r.out
    hlog=$TMP/idle.$s.$r.log
    sleep 0.2
    rss0=$(rss_kib "$SRV_MPID")
    taskset -c "$CLIENT_CPU" python3 "$BENCH_DIR/idle_conns.py" --host "$HOST" --port "$port" \
        --count "$IDLE_CONNS" --hold-max $((2 * (DURATION + WARMUP) + 120)) >"$hlog" 2>&1 &
    hpid=$!
    PIDS+=("$hpid")
    for ((i = 0; i < 1200; i++)); do # 120 s at most
        grep -q '^ready' "$hlog" && break
        alive "$hpid" || break
        sleep 0.1
    done
    line=$(grep '^ready' "$hlog" || true)
    opened=0
    [[ $line =~ opened=([0-9]+) ]] && opened=${BASH_REMATCH[1]}
    if [[ -z $line || $line == *failed=[1-9]* ]]; then
        note "round $r, $s, (e): idle holder: ${line:-$(tail -n 2 "$hlog" | tr '\n' ' ')}"
    fi
    if ((opened > 0)); then
        sleep 1 # let the server settle (lazy frees, timers)
        rss1=$(rss_kib "$SRV_MPID")
        [[ -n $rss0 && -n $rss1 ]] && record "$s" e_kib "$r" "$(awk -v a="$rss0" -v b="$rss1" -v n="$opened" \
            'BEGIN { printf "%.3f", (b - a) / n }')" 0
        log "  $s: RSS ${rss0} KiB -> ${rss1} KiB with $opened idle connections"
        warmup 1 -c"$CONNS" "$url"
        if run_wrk "$out" 1 "$DURATION" -c"$CONNS" -s "$TMP/report.lua" "$url" &&
            parse_wrk "$out" "round $r, $s, (e)"; then
            record "$s" e_rps "$r" "$(per_sec "$W_REQ" "$W_DUR")"
        fi
    fi
    kill -TERM "$hpid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        alive "$hpid" || break
        sleep 0.1
    done
    kill -KILL "$hpid" 2>/dev/null || true
    wait "$hpid" 2>/dev/null || true
    forget_pid "$hpid"
    line=$(grep '^done' "$hlog" || true)
    if ((opened > 0)) && [[ ! $line =~ closed_by_server=0 ]]; then
        note "round $r, $s, (e): of $opened idle connections, ${line:-no report from the holder}"
    fi
}

# (i) What (a) costs each server apart from the kernel's TCP work, counted
# rather than timed, so the figures do not move with the machine's load:
# user-space instructions per request (callgrind, counters zeroed after a
# warm-up and dumped after the load) and system calls per request (strace
# -c on a normal run).  The loop starts the server under callgrind.
scenario_i() {
    local s=$1 r=$2 url out dump n calls
    url="http://$HOST:$(port_of "$s")/"
    out=$TMP/wrk.$s.i.$r.callgrind.out
    MEASURED=0
    run_wrk "$TMP/warmup.out" 1 1 -c"$CONNS" "$url" || true
    # callgrind_control exits 0 even when it finds no such process.
    # Bounded: vgdb has to reach a process asleep in epoll_wait.
    if ! timeout 30 callgrind_control -z "$SRV_MPID" 2>&1 | grep -q 'OK'; then
        note "(i) $s: callgrind_control -z $SRV_MPID failed"
        MEASURED=1
        return 0
    fi
    run_wrk "$out" 1 "$I_DURATION" -c"$CONNS" -s "$TMP/report.lua" "$url" || true
    MEASURED=1
    timeout 30 callgrind_control -d "$SRV_MPID" >/dev/null 2>&1 || true
    dump=$(ls -t "$TMP/cg/$s.$SRV_MPID".[0-9]* 2>/dev/null | head -n 1 || true)
    if parse_wrk "$out" "(i) $s, callgrind" && [[ -n $dump ]]; then
        n=$(awk '/^summary:/ { print $2 }' "$dump")
        [[ -n $n ]] && record "$s" i_instr "$r" "$(awk -v i="$n" -v q="$W_REQ" 'BEGIN { printf "%.0f", i / q }')" 0
    else
        note "(i) $s: no callgrind dump"
    fi
    stop_server
    SRV_WRAP=()
    if ! start_server "$s" 1; then
        SRV_PID= # nothing left for the main loop to check or stop
        return 0
    fi
    out=$TMP/wrk.$s.i.$r.strace.out
    run_wrk "$TMP/warmup.out" 1 1 -c"$CONNS" "$url" || true
    strace -c -f -o "$TMP/strace.$s" -p "$SRV_MPID" 2>/dev/null &
    local spid=$!
    PIDS+=("$spid")
    sleep 1 # attach (-f: every thread)
    run_wrk "$out" 1 "$I_DURATION" -c"$CONNS" -s "$TMP/report.lua" "$url" || true
    kill -INT "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    forget_pid "$spid"
    # columns: % time, seconds, usecs/call, calls, [errors,] syscall
    calls=$(awk '$NF == "total" { print $4 }' "$TMP/strace.$s" 2>/dev/null || true)
    if parse_wrk "$out" "(i) $s, strace" && [[ -n $calls ]]; then
        record "$s" i_syscalls "$r" "$(awk -v c="$calls" -v q="$W_REQ" 'BEGIN { printf "%.3f", c / q }')" 0
        # The strace summary, kept for the curious (KEEP_TMP=1).
        log "  $s: $(awk -v q="$W_REQ" '$1 ~ /^[0-9.]+$/ && $NF != "total" { printf "%s %.3f/req  ", $NF, $4 / q }' "$TMP/strace.$s")"
    else
        note "(i) $s: no strace summary"
    fi
}

# ---- main loop ---------------------------------------------------------

# Is anything else running?  (Everything we started has exited by now.)
busy0=$(awk '/^cpu / { print $2 + $3 + $4; exit }' /proc/stat)
sleep 2
busy1=$(awk '/^cpu / { print $2 + $3 + $4; exit }' /proc/stat)
IDLE_BUSY_PCT=$(((busy1 - busy0) * 100 / CLK_TCK / 2))
if ((IDLE_BUSY_PCT > FOREIGN_LIMIT)); then
    log "warning: before the run other processes used ${IDLE_BUSY_PCT}% of a CPU; expect noisy results"
    note "before the run other processes used ${IDLE_BUSY_PCT}% of a CPU (autogroup $AUTOGROUP)"
fi

HAVE_I=1
for cmd in valgrind callgrind_control strace; do
    command -v "$cmd" >/dev/null 2>&1 || HAVE_I=0
done
SRV_WRAP=()
SRV_SEQ=0
SRV_MPID=
MEASURED=1
RUN_LABEL=
FOREIGN_PCT=0
RUN_SUSPECT=0
read -ra SERVER_LIST <<<"$SERVERS"
read -ra SCENARIO_LIST <<<"$SCENARIOS"
log "$ROUNDS round(s) x ${DURATION}s (warm-up ${WARMUP}s); servers: $SERVERS; scenarios: $SCENARIOS; ulimit -n $NOFILE"
START=$SECONDS
CHECKED=" "

for ((r = 1; r <= ROUNDS; r++)); do
    # rotate the server order each round
    n=${#SERVER_LIST[@]}
    order=()
    for ((i = 0; i < n; i++)); do order+=("${SERVER_LIST[$(((i + r - 1) % n))]}"); done
    for sc in "${SCENARIO_LIST[@]}"; do
        for s in "${order[@]}"; do
            if [[ $s == raw && ($sc == c || $sc == d) ]]; then
                continue # the raw loop only serves keep-alive GET /
            fi
            SRV_WRAP=()
            if [[ $sc == i ]]; then
                ((r == 1)) || continue # counts, not timings: one round is enough
                if [[ $HAVE_I == 0 ]]; then
                    [[ $s == "${order[0]}" ]] && note "(i) skipped: valgrind, callgrind_control or strace not found (apt-get install valgrind strace)"
                    continue
                fi
                # nginx's worker runs as nobody: the dumps need a dir it can write
                mkdir -p "$TMP/cg" && chmod 1777 "$TMP/cg"
                SRV_WRAP=(valgrind --tool=callgrind -q "--callgrind-out-file=$TMP/cg/$s.%p")
            fi
            log "round $r/$ROUNDS: ($sc) $s"
            start_server "$s" 1 || continue
            if [[ $CHECKED != *" $s "* ]]; then
                preflight "$s"
                CHECKED+="$s "
            fi
            RUN_LABEL="round $r, $s, ($sc)"
            "scenario_$sc" "$s" "$r"
            [[ -n $SRV_PID ]] || continue # (i) could not restart it
            if ! alive "$SRV_PID"; then
                note "round $r, $s, ($sc): the server died during the run"
            elif [[ $s == ours ]]; then
                ours_stats "round $r, ours, ($sc)"
            fi
            stop_server
        done
    done
    if [[ $HAVE_MULTI == 1 && " $SCENARIOS " == *" b "* ]]; then
        log "round $r/$ROUNDS: (b) multicore, unpinned"
        if start_server multi 0; then
            RUN_LABEL="round $r, multicore, (b)"
            scenario_b multi "$r" 0
            alive "$SRV_PID" || note "round $r, multicore, (b): the server died during the run"
            stop_server
        fi
    fi
done

# ---- report ------------------------------------------------------------

cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "## connection-core benchmark"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "- machine: nproc=$(nproc), ${cpu_model:-unknown CPU}, kernel $(uname -r)"
echo "- command: \`QUICK=$QUICK ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP SERVERS=\"$SERVERS\" SCENARIOS=\"$SCENARIOS\" $COMMAND_LINE\`"
echo "- servers pinned to CPU $SERVER_CPU, wrk -t1 to CPU $CLIENT_CPU; ${DURATION}s per measurement after ${WARMUP}s warm-up, median of $ROUNDS round(s); ulimit -n $NOFILE; nice $NICE; autogroup $AUTOGROUP"
echo "- code: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$([[ -z $(git -C "$ROOT" status --porcelain -- src include c-examples Cargo.toml 2>/dev/null) ]] || echo ' + uncommitted changes in src/, include/, c-examples/ or Cargo.toml')"
echo "- $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2); $(nginx -v 2>&1 | sed 's/^nginx version: //'); $("$BENCH_DIR/mhd_server" --version); $(rustc --version 2>/dev/null || true)"
echo
python3 "$BENCH_DIR/table.py" "$RESULTS"
echo
if [[ $HAVE_MULTI == 1 ]]; then
    python3 "$BENCH_DIR/table.py" --multicore "$RESULTS"
else
    echo "multicore: not built"
fi
echo
echo "Notes (errors, non-2xx responses, crashes, closed idle connections):"
echo
if [[ -s $NOTES ]]; then
    cat "$NOTES"
else
    echo "- none"
fi
log "done in $((SECONDS - START)) s"
