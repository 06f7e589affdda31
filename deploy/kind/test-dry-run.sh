#!/usr/bin/env bash
# make test-kind-dry-run: runs `make kind-up`'s script with KIND_DRY_RUN=1 (no Docker, no kind)
# and checks the commands it prints against deploy/versions.env: the kind node image by digest,
# the Istio release and its checksum, Istio's own registry, attestation-free builds loaded as
# single-platform archives, content tags, no Docker Hub pull left to the nodes; and that the
# pin is the same everywhere it is read or stated (tools/go.mod, the operator file, READMEs).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${ORDERMESH_ROOT}"

failures=0
check() { # check DESCRIPTION COMMAND...: COMMAND must succeed
  local what="$1"; shift
  if "$@"; then printf '    ok   %s\n' "${what}"; else printf '    FAIL %s\n' "${what}" >&2; failures=$((failures + 1)); fi
}
has() { grep -qF -- "$1" <<<"${out}"; }
lacks() { ! grep -qE -- "$1" <<<"${out}"; }

step "KIND_DRY_RUN=1 deploy/kind/up.sh (tenants tenant-a tenant-b)"
out="$(env -u ISTIO_VERSION -u ISTIO_HUB -u KIND_NODE_IMAGE -u KIND_VERSION KIND_DRY_RUN=1 \
  TENANTS="tenant-a tenant-b" bash deploy/kind/up.sh 2>&1)" || { printf '%s\n' "${out}" >&2; die "the dry run failed"; }
arch="$(platform)"
tarball="istio-${ISTIO_VERSION}-linux-${arch#linux/}.tar.gz"
if [[ "$(uname -s)" == Darwin ]]; then
  tarball="istio-${ISTIO_VERSION}-osx-${arch#linux/}.tar.gz"
  [[ "${arch}" == linux/amd64 ]] && tarball="istio-${ISTIO_VERSION}-osx.tar.gz"
fi

check "kind node image pinned by digest: ${KIND_NODE_IMAGE}" \
  has "kind create cluster --name ordermesh --image ${KIND_NODE_IMAGE} "
check "the node image carries a sha256 digest" grep -qE '^kindest/node:v[0-9.]+@sha256:[0-9a-f]{64}$' <<<"${KIND_NODE_IMAGE}"
check "istioctl ${ISTIO_VERSION} downloaded from the release" \
  has "https://github.com/istio/istio/releases/download/${ISTIO_VERSION}/${tarball}"
check "... and its published checksum verified" has "sha256sum -c ${tarball}"
check "istioctl install pins hub ${ISTIO_HUB} and tag ${ISTIO_VERSION}" \
  has "install -y -f deploy/mesh/istio-operator.yaml --set hub=${ISTIO_HUB} --set tag=${ISTIO_VERSION}"
for svc in "${SERVICES[@]}"; do
  check "${svc}: built without attestations" \
    has "docker build --provenance=false --sbom=false --load --progress=plain --build-arg SERVICE=${svc} -t ordermesh/${svc}:dev ."
  check "${svc}: loaded as a single-platform archive under its content tag" \
    has "docker save --platform ${arch} -o ${TOOLS_DIR}/images/ordermesh_${svc}_dev-<content-id>.tar ordermesh/${svc}:dev-<content-id>"
  check "${svc}: the rendered Deployments run the content tag" \
    has "set image ordermesh/${svc}:dev -> ordermesh/${svc}:dev-<content-id>"
done
postgres_image="$(sed -n 's/^[[:space:]]*image:[[:space:]]*\([^[:space:]]*\).*/\1/p' deploy/base/postgres/statefulset.yaml)"
for image in "${PROBE_IMAGE}" "${postgres_image}"; do
  check "${image}: pulled once on the host and kind-loaded (no Docker Hub pull in the nodes)" \
    has "docker pull --platform ${arch} ${image}"
done
check "no plain 'kind load docker-image' (fails on the containerd image store)" lacks 'kind load docker-image'
check "every kind load is an archive load" lacks 'kind load [^i]'

step "the pin is the same everywhere"
go_mod_istio="$(awk '$1 == "istio.io/istio" {print $2}' tools/go.mod)"
check "tools/go.mod pins istio.io/istio at commit ${ISTIO_COMMIT} (${go_mod_istio})" \
  test "${go_mod_istio##*-}" = "${ISTIO_COMMIT}"
check "tools/internal/istioadapter/xds IstioVersion = ${ISTIO_VERSION}" \
  grep -q "^const IstioVersion = \"${ISTIO_VERSION}\"$" tools/internal/istioadapter/xds/proxy.go
check "deploy/mesh/istio-operator.yaml spec.hub = ${ISTIO_HUB}" \
  grep -qE "^  hub: ${ISTIO_HUB}([[:space:]]|$)" deploy/mesh/istio-operator.yaml
check "mk/deploy.mk pins no version itself" bash -c '! grep -nE "^(ISTIO_VERSION|KIND_NODE_IMAGE|KIND_VERSION)[[:space:]]*[?:]?=" mk/deploy.mk'
for doc in README.md deploy/README.md; do
  check "${doc} states Istio ${ISTIO_VERSION}" grep -qF "Istio ${ISTIO_VERSION}" "${doc}"
  check "${doc} states kind ${KIND_VERSION}" grep -qF "kind ${KIND_VERSION}" "${doc}"
done

step "refusals"
if env KIND_DRY_RUN=1 KIND_NODE_IMAGE=kindest/node:v1.36.4 bash deploy/kind/up.sh >/dev/null 2>&1; then
  check "a node image without a digest is refused" false
else
  check "a node image without a digest is refused" true
fi

((failures == 0)) || die "${failures} check(s) failed"
info "kind dry run: all checks passed"
