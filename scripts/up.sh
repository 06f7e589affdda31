#!/usr/bin/env bash
# `make up`: runs the whole platform on this machine without a mesh — PostgreSQL, Jaeger, and two
# tenants × four services on fixed loopback ports — seeds stock, waits until every service is
# ready, and prints where to look. Safe to run again: what already runs is left alone.
# Everything it starts is recorded under .local/run so `make down` stops exactly that.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
run="$root/.local/run"
logs="$root/.local/logs"
mkdir -p "$run" "$logs"
profile=${PROFILE:-debug}
pg_url=postgres://postgres@127.0.0.1:55432

# tenant, then service=port for order payment inventory notify
tenants=(tenant-a tenant-b)
declare -A base_port=([tenant-a]=8081 [tenant-b]=8091)
services=(order payment inventory notify)

port_of() { # tenant service
  local i
  for i in "${!services[@]}"; do
    if [ "${services[$i]}" = "$2" ]; then echo $((base_port[$1] + i)); return; fi
  done
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_postgres() {
  if ! scripts/pg.sh status 2>/dev/null; then
    scripts/pg.sh start
    touch "$run/postgres.started"
  fi
}

start_jaeger() {
  local pidfile="$run/jaeger.pid"
  alive "$pidfile" && return 0
  scripts/build-jaeger.sh
  nohup .local/bin/jaeger --config scripts/jaeger.yaml >"$logs/jaeger.log" 2>&1 &
  echo $! >"$pidfile"
}

create_database() { # name
  local exists
  exists=$(psql "$pg_url/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$1'")
  [ "$exists" = 1 ] || psql "$pg_url/postgres" -qc "CREATE DATABASE \"$1\"" >/dev/null
}

# REQUIRE_PEER_IDENTITY is off unless the caller's environment turns it on: no sidecar writes
# x-forwarded-client-cert here (README, "Configuration": the one setting dev and cluster differ in).
start_service() { # tenant service
  local tenant=$1 svc=$2 pidfile="$run/$1-$2.pid" db="${1//-/_}_$2"
  alive "$pidfile" && return 0
  create_database "$db"
  env TENANT_ID="$tenant" \
    LISTEN_ADDR="127.0.0.1:$(port_of "$tenant" "$svc")" \
    DATABASE_URL="$pg_url/$db" \
    PAYMENT_SERVICE_URL="http://127.0.0.1:$(port_of "$tenant" payment)" \
    NOTIFY_SERVICE_URL="http://127.0.0.1:$(port_of "$tenant" notify)" \
    INVENTORY_SERVICE_URL="http://127.0.0.1:$(port_of "$tenant" inventory)" \
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 \
    OTEL_SERVICE_NAME="$svc-service" \
    REQUIRE_PEER_IDENTITY="${REQUIRE_PEER_IDENTITY:-false}" \
    LOG_FORMAT=json RUST_LOG="${RUST_LOG:-info,sqlx=warn}" \
    nohup "target/$profile/$svc-service" >"$logs/$tenant-$svc.log" 2>&1 &
  echo $! >"$pidfile"
}

wait_ready() { # url
  local deadline=$((SECONDS + 60))
  until curl -fsS -o /dev/null "$1/readyz"; do
    if [ $SECONDS -ge $deadline ]; then
      echo "not ready after 60 s: $1 (see .local/logs/)" >&2
      return 1
    fi
    sleep 0.2
  done
}

# The catalog each tenant starts with: SKU and unit price in euro cents.
mapfile -t catalog < <(awk '!/^#/ && NF == 2 { print $1 "=" $2 }' scripts/demo-catalog.txt)

seed_stock() { # tenant
  local url entry sku price item available
  url="http://127.0.0.1:$(port_of "$1" inventory)/api/v1/items"
  for entry in "${catalog[@]}"; do
    sku="${entry%%=*}" price="${entry#*=}"
    # New SKUs get 1000 units; existing ones keep the stock orders have left (running `make up`
    # again must not reset it) and get their catalog price back.
    if item=$(curl -fsS -H "x-tenant-id: $1" "$url/$sku" 2>/dev/null); then
      available=$(printf '%s' "$item" | grep -o '"available":[0-9]*' | cut -d: -f2)
    else
      available=1000
    fi
    curl -fsS -o /dev/null -X PUT -H "x-tenant-id: $1" -H 'content-type: application/json' \
      -d "{\"available\": ${available}, \"unit_price\": ${price}, \"currency\": \"EUR\"}" "$url/$sku"
  done
}

# The two slow first-run builds run side by side (Jaeger's module downloads overlap the Rust
# compile), each printing what it builds and how far along it is.
jaeger_build=""
if ! alive "$run/jaeger.pid"; then
  echo "==> [1/4] Jaeger (Go, in the background; its progress lines start with 'jaeger')" >&2
  scripts/build-jaeger.sh &
  jaeger_build=$!
fi
echo "==> [2/4] the services (cargo build --bins, $profile): cargo lists each crate it compiles" >&2
if [ "$profile" = release ]; then cargo build --release --bins; else cargo build --bins; fi
if [ -n "$jaeger_build" ]; then
  wait "$jaeger_build" || { echo "building Jaeger failed" >&2; exit 1; }
fi
echo "==> [3/4] PostgreSQL, Jaeger, 2 tenants x 4 services" >&2
start_postgres
start_jaeger
for tenant in "${tenants[@]}"; do
  for svc in inventory notify payment order; do start_service "$tenant" "$svc"; done
done
echo "==> [4/4] waiting until every service is ready, seeding stock" >&2
for tenant in "${tenants[@]}"; do
  for svc in "${services[@]}"; do wait_ready "http://127.0.0.1:$(port_of "$tenant" "$svc")"; done
  seed_stock "$tenant"
done

echo
for tenant in "${tenants[@]}"; do
  for svc in "${services[@]}"; do
    echo "$tenant $svc-service http://127.0.0.1:$(port_of "$tenant" "$svc")"
  done
done
echo "jaeger query-api http://127.0.0.1:16686/api/services (OTLP in on 127.0.0.1:4317 and :4318)"
echo "postgres postgres://postgres@127.0.0.1:55432/postgres"
echo "logs .local/logs/"
cat <<'EOF2'

Place an order (tenant-a):
  curl -s -X POST http://127.0.0.1:8081/api/v1/orders \
    -H 'content-type: application/json' -H 'x-tenant-id: tenant-a' \
    -H "Idempotency-Key: $(cat /proc/sys/kernel/random/uuid)" \
    -d '{"customer_id":"c-1","currency":"EUR","items":[{"sku":"SKU-001","quantity":2}]}'
  (charged at the catalog's price; add "unit_price": 1999 to a line to refuse any other price)
Cancel it (money and stock back): curl -s -X POST -H 'x-tenant-id: tenant-a' \
    http://127.0.0.1:8081/api/v1/orders/<id>/cancel
Then look at its trace: make trace ID=<trace_id from the answer>
  (or the raw JSON: http://127.0.0.1:16686/api/traces/<trace_id>)
Stop everything: make down
EOF2
