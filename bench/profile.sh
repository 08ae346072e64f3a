#!/bin/sh
# bench/profile.sh - the documented entry for a perf profile of
# c-examples/server under the keepalive (or pipelined) load (bench/profile.py
# does the work; see bench/README.md "Profiling").  E.g.
#   SCENARIO=pipelined DURATION=5 bench/profile.sh
exec python3 "$(dirname "$0")/profile.py" "$@"
