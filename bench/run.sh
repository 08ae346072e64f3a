#!/bin/sh
# bench/run.sh - the benchmark's documented entry: connection-core against
# nginx, libmicrohttpd and a raw epoll loop (bench/run.py does the work; see
# bench/README.md).  Settings come from the environment, e.g.
#   QUICK=1 SCENARIOS="keepalive pipelined" SERVERS="ours raw" bench/run.sh
exec python3 "$(dirname "$0")/run.py" "$@"
