#!/usr/bin/env bash
# Builds Jaeger (all-in-one, v2) from its Go module at the version pinned in tools/jaeger/go.mod,
# into .local/bin/jaeger. A no-op when that binary is already built from the pinned version.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$root/.local/bin/jaeger"
stamp="$root/.local/bin/jaeger.version"
version=$(awk '$1 == "github.com/jaegertracing/jaeger" { print $2 }' "$root/tools/jaeger/go.mod" | head -n 1)
if [ -x "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
  exit 0
fi
mkdir -p "$(dirname "$out")"
pkg=github.com/jaegertracing/jaeger/cmd/jaeger
cd "$root/tools/jaeger"
# Progress, since a first build takes minutes: modules, then packages compiled out of the total
# (go build -v names each package it compiles; cached ones are not compiled again).
echo "jaeger $version: [1/2] downloading its Go modules (first time only)" >&2
go mod download
total=$(go list -deps "$pkg" | wc -l)
echo "jaeger $version: [2/2] compiling up to $total packages" >&2
go build -v -o "$out" "$pkg" 2>&1 | awk -v total="$total" '
  { n++; if (n % 100 == 0) printf "jaeger: %d/%d packages compiled\n", n, total > "/dev/stderr"; else if ($0 !~ /^[a-z0-9.]+(\/[A-Za-z0-9._~-]+)*$/) print > "/dev/stderr" }
  END { printf "jaeger: %d packages compiled\n", n > "/dev/stderr" }'
echo "$version" >"$stamp"
