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
echo "building Jaeger $version from its Go module (first time only)" >&2
(cd "$root/tools/jaeger" && go build -o "$out" github.com/jaegertracing/jaeger/cmd/jaeger)
echo "$version" >"$stamp"
