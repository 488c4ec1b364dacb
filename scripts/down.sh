#!/usr/bin/env bash
# Stops what scripts/up.sh started (and nothing else): SIGTERM, wait for the drain.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
for pidfile in "$RUN_DIR"/*.pid; do
  [ -e "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  name=$(basename "$pidfile" .pid)
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && { warn "$name did not stop in 30 s; killing"; kill -KILL "$pid"; }
    say "stopped $name"
  fi
  rm -f "$pidfile"
done
