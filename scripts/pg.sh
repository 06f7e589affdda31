#!/usr/bin/env bash
# The local PostgreSQL that `make up` and `make test` use: Debian's postgresql package, a cluster
# of our own under .local/pg (never the system cluster), listening on 127.0.0.1:$PGPORT only,
# trust authentication for local development. Every command is safe to repeat.
#
#   scripts/pg.sh start    install PostgreSQL if missing, initialise the cluster once, start it
#   scripts/pg.sh stop     stop it
#   scripts/pg.sh status   exit 0 when it accepts connections
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
port=${PGPORT:-55432}
data="$root/.local/pg/data"
run="$root/.local/pg/run"
log="$root/.local/pg/postgres.log"

bindir() {
  local dir
  dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] && echo "$dir"
}

install_if_missing() {
  if [ -z "$(bindir)" ]; then
    echo "installing PostgreSQL from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
  fi
}

as_postgres() {
  # initdb and postgres refuse to run as root.
  if [ "$(id -u)" = 0 ]; then
    setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
  else
    "$@"
  fi
}

ready() {
  "$(bindir)/pg_isready" -q -h 127.0.0.1 -p "$port"
}

start() {
  install_if_missing
  local bin
  bin=$(bindir)
  mkdir -p "$data" "$run"
  if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$root/.local/pg"; fi
  if [ ! -f "$data/PG_VERSION" ]; then
    as_postgres "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  fi
  if ready; then return 0; fi
  as_postgres "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 \
    -o "-h 127.0.0.1 -p $port -k $run -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_preload_libraries=pg_stat_statements" \
    start >/dev/null
  ready
}

stop() {
  local bin
  bin=$(bindir) || return 0
  if [ -f "$data/postmaster.pid" ]; then
    as_postgres "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) ready ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
