#!/usr/bin/env bash
# check.sh valgrind|strace - the dynamic checks behind `make valgrind` and
# `make strace` (kept out of the Makefile so they read as plain shell).
#
# Both start a server with --port 0 on 127.0.0.1 under a tool, wait for its
# "listening on HOST:PORT" line, drive clients with load.py, stop it with
# SIGINT (the graceful path: drain, Connection_Destroy, exit 0) and judge
# the tool's log.  Every wait is bounded; on any failure the server is
# killed and the script exits non-zero with a message saying why.
#
# valgrind runs ./test_server (tests/fixtures/test_server.c): the example's
# routes plus the stub_status form and stream counters that load.py checks
# too.  strace runs the example itself, ./server.
#
# Environment: PYTHON (python3), VALGRIND (valgrind), STRACE (strace),
# START_TIMEOUT (30 s), STOP_TIMEOUT (60 s), LOAD_DEADLINE (300 s for the
# whole load), LOAD_TIMEOUT (per-socket-operation timeout inside load.py).
set -u
cd "$(dirname "$0")" || exit 1

PYTHON=${PYTHON:-python3}
VALGRIND=${VALGRIND:-valgrind}
STRACE=${STRACE:-strace}
START_TIMEOUT=${START_TIMEOUT:-30}
STOP_TIMEOUT=${STOP_TIMEOUT:-60}
LOAD_DEADLINE=${LOAD_DEADLINE:-300} # whole load.py run, on top of its socket timeouts

tool_pid=""   # what we started (valgrind's process is the server itself; strace is the server's parent)
server_pid="" # the process that gets SIGINT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# Never leave a server behind, whatever path we leave by.
on_exit() {
    if [ -n "$tool_pid" ] && kill -0 "$tool_pid" 2>/dev/null; then
        kill -KILL "$tool_pid" 2>/dev/null
        [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null
        wait "$tool_pid" 2>/dev/null
    fi
}
trap on_exit EXIT

# wait_listening OUTFILE -> prints the port; fails after START_TIMEOUT s.
wait_listening() {
    local out=$1 i line
    for ((i = 0; i < START_TIMEOUT * 10; i++)); do
        line=$(grep -m1 '^listening on ' "$out" 2>/dev/null)
        if [ -n "$line" ]; then
            echo "${line##*:}"
            return 0
        fi
        kill -0 "$tool_pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$out" >&2
    return 1
}

# stop_server -> SIGINT, bounded wait; sets $status to the tool's exit code.
stop_server() {
    local i
    kill -INT "$server_pid" 2>/dev/null || fail "server (pid $server_pid) already gone before SIGINT"
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
        kill -0 "$tool_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$tool_pid" 2>/dev/null; then
        fail "server did not exit within ${STOP_TIMEOUT}s of SIGINT"
    fi
    wait "$tool_pid"
    status=$?
    tool_pid=""
}

check_valgrind() {
    local log=valgrind.log out=valgrind-server.out port load_rc summary lost ok=1

    rm -f "$log" "$out"
    # The guest runs in valgrind's own process, so this pid is the server.
    "$VALGRIND" --error-exitcode=99 --leak-check=full \
        --errors-for-leak-kinds=definite --track-fds=no --log-file="$log" \
        ./test_server --port 0 >"$out" 2>&1 &
    tool_pid=$!
    server_pid=$tool_pid

    port=$(wait_listening "$out") || fail "no 'listening on' line within ${START_TIMEOUT}s (see $log)"
    echo "valgrind: server listening on 127.0.0.1:$port"

    timeout "$LOAD_DEADLINE" "$PYTHON" load.py load "$port"
    load_rc=$?

    stop_server
    echo "valgrind: server exit status $status"
    summary=$(grep 'ERROR SUMMARY' "$log" | tail -n1)
    lost=$(grep 'definitely lost:' "$log" | tail -n1)
    echo "${summary:-no ERROR SUMMARY line in $log}"
    if [ -n "$lost" ]; then
        echo "$lost"
    else
        grep 'no leaks are possible' "$log" | tail -n1
    fi

    [ "$load_rc" -eq 0 ] || { echo "FAIL: load.py reported failures" >&2; ok=0; }
    [ "$status" -eq 0 ] || { echo "FAIL: server exited $status, not 0 (99 = valgrind found errors; see $log)" >&2; ok=0; }
    case $summary in
    *"ERROR SUMMARY: 0 errors"*) ;;
    *) echo "FAIL: valgrind reported errors (see $log)" >&2; ok=0 ;;
    esac
    if [ -n "$lost" ]; then
        case $lost in
        *"definitely lost: 0 bytes"*) ;;
        *) echo "FAIL: memory definitely lost (see $log)" >&2; ok=0 ;;
        esac
    elif ! grep -q 'no leaks are possible' "$log"; then
        echo "FAIL: no leak summary in $log" >&2
        ok=0
    fi
    [ "$ok" -eq 1 ] || exit 1
    echo "valgrind: PASS"
}

# Print the strace lines of one fd's life, from accept to close.
excerpt() {
    local log=$1 acc=$2 fd=$3
    awk -v acc="$acc" -v fd="$fd" '
        NR < acc { next }
        NR == acc || index($0, "(" fd ",") || index($0, "(" fd ")") || index($0, ", " fd ",") { print NR ": " $0; n++ }
        n >= 25 { print "   ..."; exit }
        (index($0, " close(" fd ")") || index($0, " close(" fd " ")) { exit }
    ' "$log"
}

check_strace() {
    local log=strace.log out=strace-server.out port peer ok=1

    rm -f "$log" "$out"
    "$STRACE" -f -e trace=network,epoll_ctl,close,write,writev -o "$log" \
        ./server --port 0 >"$out" 2>&1 &
    tool_pid=$!
    port=$(wait_listening "$out") || fail "no 'listening on' line within ${START_TIMEOUT}s"
    # strace's own pid is not the server; SIGINT must reach the tracee.
    server_pid=$(pgrep -P "$tool_pid" | head -n1)
    [ -n "$server_pid" ] || fail "cannot find the server process under strace (pid $tool_pid)"
    echo "strace: server pid $server_pid listening on 127.0.0.1:$port"

    peer=$(timeout 60 "$PYTHON" load.py abort "$port" "/chunked?size=16777216" | sed -n 's/^local_port //p')
    [ -n "$peer" ] || fail "aborted client did not run"
    echo "strace: aborted client from port $peer"
    sleep 0.5 # let the server notice the reset before the next client
    timeout 60 "$PYTHON" load.py get "$port" / || ok=0
    stop_server
    echo "strace: server exit status $status"
    [ "$status" -eq 0 ] || { echo "FAIL: server exited $status, not 0" >&2; ok=0; }

    judge_strace_log "$log" "$peer" || ok=0
    [ "$ok" -eq 1 ] || exit 1
    echo "strace: PASS"
}

# awk helpers for strace -f lines ("PID call(args) = result"), shared by the
# checks below: the fd a call works on, and an accept that returned a client.
STRACE_AWK='
    function fd_of(s) { sub(/^[0-9]+ +[a-z0-9]+\(/, "", s); sub(/[,)].*$/, "", s); return s }
    function accepted(line) { return line ~ /^[0-9]+ +(accept4?\(|<\.\.\. accept4? resumed>)/ && line ~ / = [0-9]+$/ }
'

# judge_strace_log LOG PEER_PORT - the checks on a finished trace (also
# runnable by hand: bash check.sh strace-log strace.log 51916).
judge_strace_log() {
    local log=$1 peer=$2 acc_line fd add_line close_line nsend bad ok=1

    # 1. Every send carries MSG_NOSIGNAL (no SIGPIPE when a peer is gone).
    #    "<... sendto resumed>" continuation lines carry no flags; skip them.
    nsend=$(grep -cE '^[0-9]+ +(send|sendto|sendmsg|sendmmsg)\(' "$log")
    bad=$(grep -E '^[0-9]+ +(send|sendto|sendmsg|sendmmsg)\(' "$log" | grep -v MSG_NOSIGNAL)
    if [ "$nsend" -eq 0 ]; then
        echo "FAIL: no send/sendto/sendmsg calls in $log, cannot check MSG_NOSIGNAL" >&2
        ok=0
    elif [ -n "$bad" ]; then
        echo "FAIL: send calls without MSG_NOSIGNAL:" >&2
        echo "$bad" | head -n5 >&2
        ok=0
    else
        echo "strace: all $nsend send calls use MSG_NOSIGNAL"
    fi

    # 2. No write()/writev() to a client socket: track accepted fds until
    #    their close.  Any other write above fd 2 must be the 8-byte eventfd
    #    wake-up (Connection_Stop).
    bad=$(awk "$STRACE_AWK"'
        accepted($0) { client[$NF] = 1; next }
        /^[0-9]+ +close\(/ { delete client[fd_of($0)]; next }
        /^[0-9]+ +writev?\(/ {
            fd = fd_of($0)
            if (fd in client) { print "write to client fd " fd ": " $0; next }
            if ($2 ~ /^writev/ || fd + 0 <= 2) next
            s = $0; sub(/( <unfinished \.\.\.>|\) += .*)$/, "", s)
            n = split(s, a, ", ")
            if (a[n] != "8") print "write of " a[n] " bytes to fd " fd ": " $0
        }' "$log")
    if [ -n "$bad" ]; then
        echo "FAIL: write()/writev() outside the eventfd wake-up:" >&2
        echo "$bad" | cut -c1-200 | head -n5 >&2
        ok=0
    else
        echo "strace: no write()/writev() to client sockets"
    fi

    # 3. No client fd gets EPOLL_CTL_DEL before its close() (none needed):
    #    the kernel drops a registration with the last descriptor of
    #    the socket, and a registration left by a shared descriptor (fork,
    #    dup) reports under a generation-checked token that matches nothing
    #    (README, "the freed-client bug"; tests/api/stale_events.rs).
    bad=$(awk "$STRACE_AWK"'
        accepted($0) { client[$NF] = 1; next }
        /EPOLL_CTL_DEL, [0-9]+,/ { split($0, p, "EPOLL_CTL_DEL, "); split(p[2], q, ","); if (q[1] in client) print "line " NR ": EPOLL_CTL_DEL of client fd " q[1] " (not needed: one system call per connection)"; next }
        /^[0-9]+ +close\(/ { fd = fd_of($0); delete client[fd] }
    ' "$log")
    if [ -n "$bad" ]; then
        echo "FAIL: EPOLL_CTL_DEL before a client's close():" >&2
        echo "$bad" | head -n5 >&2
        ok=0
    else
        echo "strace: client fds closed without EPOLL_CTL_DEL (one system call fewer per connection)"
    fi

    # 4. The aborted client in particular: it had to wait (so it was in the
    #    epoll set) and was closed.
    acc_line=$(grep -nE "^[0-9]+ +(accept4?\(|<\.\.\. accept4? resumed>).*htons\($peer\).* = [0-9]+$" "$log" | head -n1)
    if [ -z "$acc_line" ]; then
        echo "FAIL: no accept() of the aborted client (peer port $peer) in $log" >&2
        ok=0
    else
        fd=${acc_line##* }
        acc_line=${acc_line%%:*}
        add_line=$(awk -v a="$acc_line" -v fd="$fd" 'NR > a && index($0, "EPOLL_CTL_ADD, " fd ",") { print NR; exit }' "$log")
        close_line=$(awk -v a="$acc_line" -v fd="$fd" 'NR > a && $2 ~ ("^close\\(" fd "\\)") { print NR; exit }' "$log")
        echo "strace: aborted client is fd $fd (accept at line $acc_line, EPOLL_CTL_ADD at ${add_line:-none}, close at ${close_line:-none}):"
        excerpt "$log" "$acc_line" "$fd"
        if [ -z "$close_line" ]; then
            echo "FAIL: the aborted client's fd $fd was never closed" >&2
            ok=0
        elif [ -z "$add_line" ] || [ "$add_line" -gt "$close_line" ]; then
            echo "FAIL: the aborted client's fd $fd was not in the epoll set before its close" >&2
            ok=0
        else
            echo "strace: the aborted client's fd $fd, watched by epoll, closed without EPOLL_CTL_DEL"
        fi
    fi
    [ "$ok" -eq 1 ]
}

case ${1:-} in
valgrind) check_valgrind ;;
strace) check_strace ;;
strace-log) judge_strace_log "${2:?log file}" "${3:?peer port}" ;;
*)
    echo "usage: $0 valgrind | strace | strace-log LOG PEER_PORT" >&2
    exit 2
    ;;
esac
