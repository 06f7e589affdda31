#!/usr/bin/env bash
# `make mesh-breaks`: shows that each live promise test of the local mesh fails when deploy/
# breaks that promise. For every file in tools/internal/meshtest/testdata/breaks (an Istio object
# that replaces one of deploy/'s, as a `kubectl apply` would), it applies the file to the running
# mesh (.local/mesh/extra + mesh up), runs the matching test, expects it to FAIL, and restores.
# Exits non-zero if a broken promise goes unnoticed. Brings the mesh up and takes it down.
# ROUTING=gateway-api runs them on that routing variant: a break of a routing object the variant
# names differently (HTTPRoutes, the per-version Services' DestinationRules) comes from
# testdata/breaks-gateway-api, the others from testdata/breaks.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
mesh=.local/bin/mesh
breaks=tools/internal/meshtest/testdata/breaks
extra=.local/mesh/extra/break.yaml
routing=${ROUTING:-istio}
declare -A tests=(
  [permissive]='TestPlaintextToPodRefused'
  [allow-all]='TestDefaultDenyIsTheCallGraph'
  [cross-tenant-allow]='TestTenantIsolation|TestDefaultDenyIsTheCallGraph'
  [retry-5xx-post]='TestRetriesAndTimeouts'
  [no-outlier]='TestCircuitBreaker'
  [weights-50]='TestCanarySplit'
  [round-robin]='TestLeastRequest'
  [sampling-100]='TestTracingSampling'
)

if [ "$(cat .local/mesh/routing 2>/dev/null || echo istio)" != "$routing" ]; then
  "$mesh" down -root "$root" >/dev/null || exit 1 # a mesh up in the other variant cannot switch
fi
"$mesh" up -root "$root" -routing "$routing" >/dev/null || exit 1
mkdir -p "$(dirname "$extra")"
unnoticed=()
for name in "${!tests[@]}"; do
  src="$breaks/$name.yaml"
  if [ "$routing" = gateway-api ] && [ -f "$breaks-gateway-api/$name.yaml" ]; then
    src="$breaks-gateway-api/$name.yaml"
  fi
  cp "$src" "$extra"
  "$mesh" up -root "$root" | grep 'reload:'
  echo "=== $name ($routing, $(basename "$(dirname "$src")")): go test -run '${tests[$name]}' (must fail)"
  if MESH_KEEP=1 MESHTEST_PASSES=1 MESHTEST_ROUTING="$routing" MESH_BIN="$root/$mesh" MESH_ROOT="$root" go -C tools test -tags mesh -count=1 -v \
       -run "${tests[$name]}" ./internal/meshtest/ >".local/mesh/break-$name.log" 2>&1; then
    unnoticed+=("$name")
    echo "    NOT NOTICED: the test passed with the promise broken"
  else
    grep -E '_test.go:[0-9]+:' ".local/mesh/break-$name.log" | grep -v 'allowed live' | head -3 | cut -c1-200
  fi
  rm -f "$extra"
done
"$mesh" up -root "$root" >/dev/null
"$mesh" down -root "$root"
if [ ${#unnoticed[@]} -gt 0 ]; then
  echo "broken promises the live tests did not notice: ${unnoticed[*]}"
  exit 1
fi
echo "every broken promise made its live test fail"
