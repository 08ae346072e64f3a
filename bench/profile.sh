#!/usr/bin/env bash
# bench/profile.sh - where c-examples/server spends its time under scenario
# (a) of bench/run.sh: `GET /` keep-alive, 64 connections, wrk -t1 on CPU 0,
# the server on CPU 1, `perf record -g` of the server for DURATION seconds.
#
#   bench/profile.sh                    DURATION=5, prints two reports
#   PERF_OUT=/some/dir bench/profile.sh keeps perf.data there
#
# Needs perf (Debian: apt-get install linux-perf) and the rights to use it
# (root, or kernel.perf_event_paranoid <= 1).  Without hardware counters
# (VMs often have none: `perf stat -e instructions true` says
# "<not supported>") it samples the cpu-clock software event instead.
#
# Settings: DURATION=5 CONNS=64 PORT=18090 SERVER_CPU=1 CLIENT_CPU=0
#           SCENARIO=a (or b: the same, pipelined PIPELINE=16 deep)
#           OURS_ARGS="--max-connections 20000 --idle-timeout-ms 600000"
#           CALL_GRAPH=fp (or dwarf; the Rust code is built without frame
#           pointers, so fp chains through it are short - self time, the
#           --no-children figure, is exact either way)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
DURATION=${DURATION:-5}
DURATION=${DURATION%s}
CONNS=${CONNS:-64}
PORT=${PORT:-18090}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
OURS_ARGS=${OURS_ARGS:-"--max-connections 20000 --idle-timeout-ms 600000"}
CALL_GRAPH=${CALL_GRAPH:-fp}
SCENARIO=${SCENARIO:-a}
PIPELINE=${PIPELINE:-16}
HOST=127.0.0.1

log() { printf '[profile %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for cmd in perf wrk taskset make timeout; do
    command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' not found (Debian: apt-get install linux-perf wrk)"
done

OUT=${PERF_OUT:-}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/profile.XXXXXX")
[[ -n $OUT ]] || OUT=$TMP
mkdir -p "$OUT"
SRV_PID=
WRK_PID=
cleanup() {
    trap - EXIT INT TERM
    [[ -n $WRK_PID ]] && kill -TERM "$WRK_PID" 2>/dev/null || true
    [[ -n $SRV_PID ]] && kill -INT "$SRV_PID" 2>/dev/null || true
    sleep 0.2
    [[ -n $SRV_PID ]] && kill -KILL "$SRV_PID" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

make -C "$ROOT/c-examples" >&2

EVENT=cycles
if perf stat -e instructions true 2>&1 | grep -q 'not supported'; then
    EVENT=cpu-clock
    log "no hardware counters here; sampling $EVENT"
fi

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
port_open "$PORT" && die "port $PORT is already in use (set PORT)"

# shellcheck disable=SC2086 # OURS_ARGS is a word list
taskset -c "$SERVER_CPU" "$ROOT/c-examples/server" --host "$HOST" --port "$PORT" $OURS_ARGS \
    >"$TMP/server.log" 2>&1 &
SRV_PID=$!
for ((i = 0; i < 200; i++)); do
    port_open "$PORT" && break
    sleep 0.05
done
port_open "$PORT" || die "server not accepting on $PORT: $(cat "$TMP/server.log")"

case $SCENARIO in
a) WRK_SCRIPT=() ;;
b) WRK_SCRIPT=(-s "$BENCH_DIR/pipeline.lua") ;;
*) die "SCENARIO must be a or b" ;;
esac
WRK_ARGS=(-t1 -c"$CONNS" -d$((DURATION + 3))s --latency "${WRK_SCRIPT[@]}" "http://$HOST:$PORT/")
[[ $SCENARIO == b ]] && WRK_ARGS+=(-- "$PIPELINE")
timeout -k 5 $((DURATION + 40)) taskset -c "$CLIENT_CPU" wrk "${WRK_ARGS[@]}" >"$TMP/wrk.out" 2>&1 &
WRK_PID=$!
sleep 1
log "perf record -e $EVENT --call-graph $CALL_GRAPH -p $SRV_PID for ${DURATION}s"
perf record -e "$EVENT" --call-graph "$CALL_GRAPH" -p "$SRV_PID" -o "$OUT/perf.data" \
    -- sleep "$DURATION" 2>"$TMP/perf-record.log" ||
    die "perf record failed: $(cat "$TMP/perf-record.log")"
wait "$WRK_PID" || true
WRK_PID=
kill -INT "$SRV_PID"
wait "$SRV_PID" || log "server exited with status $?"
SRV_PID=

perf report -i "$OUT/perf.data" --stdio --no-children --sort dso -g none >"$TMP/dso.txt" 2>/dev/null
perf report -i "$OUT/perf.data" --stdio --no-children --sort dso,sym -g none \
    --percent-limit 0.7 >"$TMP/sym.txt" 2>/dev/null
perf report -i "$OUT/perf.data" --stdio --no-children >"$TMP/graph.txt" 2>/dev/null

echo "## wrk during the profile (scenario $SCENARIO)"
echo
sed 's/^/    /' "$TMP/wrk.out"
echo
echo "## Self time by object (perf report --no-children --sort dso -g none)"
echo
grep -v -e '^#' -e '^$' "$TMP/dso.txt" | head -n 12
echo
echo "## Top symbols by self time (perf report --no-children --sort dso,sym -g none)"
echo
grep -v -e '^#' -e '^$' "$TMP/sym.txt" | head -n 40
echo
echo "## perf report --stdio --no-children | head -60"
echo
head -n 60 "$TMP/graph.txt"
[[ $OUT != "$TMP" ]] && log "perf.data kept in $OUT"
exit 0
