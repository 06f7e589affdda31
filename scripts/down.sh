#!/usr/bin/env bash
# `make down`: stops exactly what `make up` started, by the process ids it recorded: SIGTERM
# (services drain and exit), then SIGKILL for anything still running after 20 s.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
run="$root/.local/run"
[ -d "$run" ] || exit 0

pids=()
for pidfile in "$run"/*.pid; do
  [ -e "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    pids+=("$pid")
  fi
  rm -f "$pidfile"
done
deadline=$((SECONDS + 20))
for pid in "${pids[@]}"; do
  while kill -0 "$pid" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then kill -KILL "$pid" 2>/dev/null || true; break; fi
    sleep 0.1
  done
done
if [ -e "$run/postgres.started" ]; then
  "$root/scripts/pg.sh" stop
  rm -f "$run/postgres.started"
fi
echo "stopped ${#pids[@]} processes"
