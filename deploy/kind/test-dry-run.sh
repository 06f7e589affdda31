#!/usr/bin/env bash
# make test-kind-dry-run: runs `make kind-up`'s script with KIND_DRY_RUN=1 (no Docker, no kind)
# and checks the commands it prints against deploy/versions.env: the preflight (Istio hub, kind
# version, gateway port, Docker engine and image store, inotify limits, WSL, the Docker Hub
# note), the kind node image by digest, the Istio release and its checksum, Istio's images
# pre-pulled from its hub and kind-loaded, attestation-free builds loaded as single-platform
# archives, content tags, no public pull left to the nodes; the addons (Jaeger, Prometheus with
# deploy/observability's rules, Grafana with its three dashboards, Kiali) from the pinned release;
# that the pin is the same everywhere
# it is read or stated (tools/go.mod, the operator file, READMEs); and that up.sh refuses what
# cannot work (a hub without the release, a node image without a digest, a GATEWAY_URL that is
# not the cluster's port).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${ORDERMESH_ROOT}"

failures=0
# check DESCRIPTION COMMAND...: COMMAND must succeed.
check() {
  local what="$1"; shift
  if "$@"; then printf '    ok   %s\n' "${what}"; else printf '    FAIL %s\n' "${what}" >&2; failures=$((failures + 1)); fi
}
# has TEXT / lacks REGEX: the dry run's output contains TEXT / no line matches REGEX.
has() { grep -qF -- "$1" <<<"${out}"; }
lacks() { ! grep -qE -- "$1" <<<"${out}"; }
# has_all TEXT...: the output contains every TEXT.
has_all() {
  local text
  for text in "$@"; do has "${text}" || return 1; done
}
# line_of TEXT: the number of the first output line containing TEXT (0 if none).
line_of() { { grep -nF -- "$1" <<<"${out}" || echo 0:; } | head -n 1 | cut -d: -f1; }
# before TEXT1 TEXT2: both are printed, TEXT1 first.
before() {
  local a b
  a="$(line_of "$1")" b="$(line_of "$2")"
  ((a > 0 && b > 0 && a < b))
}
# hub_carries HUB VERSION: HUB is not a registry known to lack Istio VERSION.
hub_carries() { ! hub_lacks_release "$1" "$2"; }
# archive_of IMAGE: the archive kind_load writes IMAGE to.
archive_of() { printf '%s/images/%s.tar' "${TOOLS_DIR}" "$(printf '%s' "$1" | tr '/:@' '___')"; }

step "KIND_DRY_RUN=1 deploy/kind/up.sh (tenants tenant-a tenant-b)"
dry_env=(env -u ISTIO_VERSION -u ISTIO_HUB -u KIND_NODE_IMAGE -u KIND_VERSION -u GATEWAY_URL
  -u SKIP_BUILD -u DOCKER_SAVE_PLATFORM -u KIND_ON_WSL KIND_DRY_RUN=1 TENANTS="tenant-a tenant-b")
out="$("${dry_env[@]}" bash deploy/kind/up.sh 2>&1)" || { printf '%s\n' "${out}" >&2; die "the dry run failed"; }
arch="$(platform)"
tarball="istio-${ISTIO_VERSION}-linux-${arch#linux/}.tar.gz"
if [[ "$(uname -s)" == Darwin ]]; then
  tarball="istio-${ISTIO_VERSION}-osx-${arch#linux/}.tar.gz"
  [[ "${arch}" == linux/amd64 ]] && tarball="istio-${ISTIO_VERSION}-osx.tar.gz"
fi
file_hub="$(sed -n 's/^ISTIO_HUB=//p' deploy/versions.env)"
install_line="install -y -f deploy/mesh/istio-operator.yaml --set hub=${file_hub} --set tag=${ISTIO_VERSION}"

step "preflight"
check "Istio hub checked: ${file_hub} carries ${ISTIO_VERSION}, same as the operator file" \
  has "check Istio hub: ${file_hub} (versions.env = istio-operator.yaml spec.hub; carries ${ISTIO_VERSION})"
check "kind version checked against ${KIND_VERSION} (a mismatch stops unless KIND_VERSION_MISMATCH_OK=1)" \
  has "check kind version: must be ${KIND_VERSION} (${KIND_NODE_IMAGE%%@*} is published for kind ${KIND_VERSION}); otherwise stop unless KIND_VERSION_MISMATCH_OK=1"
check "... by running 'kind version'" has "+ kind version"
check "gateway URL checked against deploy/kind/cluster.yaml (${GATEWAY_URL})" \
  has "check gateway: ${GATEWAY_URL} = deploy/kind/cluster.yaml's $(cluster_gateway_address) -> NodePort 30080"
check "Docker engine version and API read" \
  has "+ docker version --format '{{.Client.Version}} {{.Server.Version}} {{.Server.APIVersion}}'"
check "Docker image store read" has "+ docker info --format '{{json .DriverStatus}}|{{.OperatingSystem}}|{{.KernelVersion}}'"
check "Engine 27 + containerd image store stops (needs Engine >= 28 / API 1.48 for docker save --platform)" \
  has "check Docker engine/image store: containerd image store: needs Docker client and Engine >= 28 (API >= 1.48) for 'docker save --platform', else stop"
check "docker buildx is a prerequisite" has "+ docker buildx version"
if [[ "$(uname -s)" == Linux ]]; then
  watches="$(cat /proc/sys/fs/inotify/max_user_watches)"
  instances="$(cat /proc/sys/fs/inotify/max_user_instances)"
  check "inotify limits read (${watches} watches, ${instances} instances)" \
    has "check inotify: fs.inotify.max_user_watches=${watches} (kind recommends >= 524288), fs.inotify.max_user_instances=${instances} (>= 512)"
  if ((watches < 524288 || instances < 512)); then
    check "... below kind's recommendation: a real run stops" has "a real run stops here"
    check "... with the exact sysctl lines" \
      has_all "sudo sysctl fs.inotify.max_user_watches=524288" "sudo sysctl fs.inotify.max_user_instances=512"
    check "... and how to persist them" has_all "/etc/sysctl.d/99-kind-inotify.conf" "sudo sysctl --system"
  else
    check "... at or above kind's recommendation: no stop" lacks "a real run stops here"
  fi
else
  check "inotify: not Linux, not checked" has "check inotify: not Linux"
fi
if on_wsl; then
  check "WSL2 detected: the NetworkPolicy check is announced as unsupported" has "warning: WSL2 detected"
else
  check "WSL checked (not WSL)" has "check WSL: not WSL"
fi
check "Docker Hub's anonymous limit: docker login suggested" has "Shared IP or many re-runs: 'docker login' first."
check "the preflight runs before the cluster is created" before "check Docker engine/image store:" "+ kind create cluster"

step "images, Istio, builds"
check "kind node image pinned by digest: ${KIND_NODE_IMAGE}" \
  has "kind create cluster --name ordermesh --image ${KIND_NODE_IMAGE} "
check "the node image carries a sha256 digest" grep -qE '^kindest/node:v[0-9.]+@sha256:[0-9a-f]{64}$' <<<"${KIND_NODE_IMAGE}"
check "istioctl ${ISTIO_VERSION} downloaded from the release" \
  has "https://github.com/istio/istio/releases/download/${ISTIO_VERSION}/${tarball}"
check "... and its published checksum verified" has "sha256sum -c ${tarball}"
check "istioctl install pins hub ${file_hub} and tag ${ISTIO_VERSION}" has "${install_line}"
for image in "${file_hub}/pilot:${ISTIO_VERSION}" "${file_hub}/proxyv2:${ISTIO_VERSION}"; do
  check "${image}: pulled on the host for ${arch}" has "docker pull --platform ${arch} ${image}"
  check "${image}: exported for ${arch} and kind-loaded" \
    has "docker save --platform ${arch} -o $(archive_of "${image}") ${image}"
  check "${image}: loaded before istioctl install" \
    before "kind load image-archive --name ordermesh $(archive_of "${image}")" "${install_line}"
done
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
check "kind_load has no silent fallback (no docker save ... 2>/dev/null)" \
  bash -c '! grep -nE "docker save.*2>/dev/null" deploy/kind/lib.sh'
check "istioctl analyze fails on errors only (warnings printed)" \
  has "analyze -n tenant-a-orders --failure-threshold Error --output-threshold Warning"
check "the Jaeger port-forward does not take docker-compose's 16686" has "port-forward svc/tracing 16687:80"

step "addons: Grafana with ordermesh's dashboards, Kiali, Prometheus with ordermesh's rules"
addon_dir=".local/kind/istio-${ISTIO_VERSION}/samples/addons"
for addon in jaeger prometheus grafana kiali; do
  check "${addon} installed from the pinned release's samples/addons (${addon_dir}/${addon}.yaml)" \
    grep -qE -- "^\+ kubectl --context kind-ordermesh apply( -f [^ ]+)* -f [^ ]*/${addon_dir}/${addon}\.yaml( |\$)" <<<"${out}"
  check "... and its rollout waited for" has "-n istio-system rollout status deploy/${addon} --timeout=300s"
done
# The dashboards are the files of deploy/observability/grafana, rendered by its kustomization.
want_dashboards="$(cd deploy/observability/grafana && printf '%s ' *.json)"
check "the three dashboards (saga, SLO, mesh) are in deploy/observability/grafana: ${want_dashboards}" \
  test "${want_dashboards}" = "mesh.json saga.json slo.json "
check "Grafana gets every dashboard of deploy/observability/grafana (${want_dashboards}) as ConfigMap ordermesh-grafana-dashboards" \
  has "Grafana dashboards: ${want_dashboards}-> ConfigMap istio-system/ordermesh-grafana-dashboards, folder ordermesh"
check "... the dashboards and their provider are applied" has "Grafana dashboards and their provider: 2 objects"
check "... and mounted into the addon's Grafana" \
  has "-n istio-system patch deployment grafana --type strategic --patch-file deploy/observability/grafana/deployment-patch.yaml"
check "... before Grafana's rollout is waited for" \
  before "patch deployment grafana" "rollout status deploy/grafana"
check "Prometheus gets deploy/observability's rules (merged into the addon's ConfigMap, key rules)" \
  has "-n istio-system patch configmap prometheus --type merge --patch-file ${ORDERMESH_ROOT}/.local/kind/rendered/prometheus-rules-patch.yaml"
# holds_whole PATCH FILE: the patch's block scalar (4-space indented) is FILE, blank lines aside.
holds_whole() { diff <(sed -n 's/^    //p' "$1") <(grep -v '^$' "$2") >/dev/null; }
check "... and that patch holds rules.yaml whole" \
  holds_whole "${ORDERMESH_ROOT}/.local/kind/rendered/prometheus-rules-patch.yaml" deploy/observability/prometheus/rules.yaml
check "the addons are applied after Istio is installed" before "${install_line}" "samples/addons/grafana.yaml"
check "how to open Grafana is printed" has_all "port-forward svc/grafana 3000:3000" "http://127.0.0.1:3000/d/ordermesh-saga"
check "how to open Kiali is printed" has_all "port-forward svc/kiali 20001:20001" "http://127.0.0.1:20001/kiali"

step "the pin is the same everywhere"
go_mod_istio="$(awk '$1 == "istio.io/istio" {print $2}' tools/go.mod)"
check "tools/go.mod pins istio.io/istio at commit ${ISTIO_COMMIT} (${go_mod_istio})" \
  test "${go_mod_istio##*-}" = "${ISTIO_COMMIT}"
check "tools/internal/istioadapter/xds IstioVersion = ${ISTIO_VERSION}" \
  grep -q "^const IstioVersion = \"${ISTIO_VERSION}\"$" tools/internal/istioadapter/xds/proxy.go
operator_hub="$(sed -n 's/^  hub:[[:space:]]*\([^[:space:]#]*\).*/\1/p' deploy/mesh/istio-operator.yaml)"
check "deploy/mesh/istio-operator.yaml spec.hub (${operator_hub:-none}) = deploy/versions.env ISTIO_HUB (${file_hub})" \
  test "${operator_hub}" = "${file_hub}"
check "ISTIO_HUB ${file_hub} carries Istio ${ISTIO_VERSION} (not gcr.io/istio-release for 1.31+)" \
  hub_carries "${file_hub}" "${ISTIO_VERSION}"
check "mk/deploy.mk pins no version itself" bash -c '! grep -nE "^(ISTIO_VERSION|ISTIO_HUB|KIND_NODE_IMAGE|KIND_VERSION)[[:space:]]*[?:]?=" mk/deploy.mk'
for doc in README.md deploy/README.md; do
  check "${doc} states Istio ${ISTIO_VERSION}" grep -qF "Istio ${ISTIO_VERSION}" "${doc}"
  check "${doc} states kind ${KIND_VERSION}" grep -qF "kind ${KIND_VERSION}" "${doc}"
  check "${doc} names the hub ${file_hub}" grep -qF "${file_hub}" "${doc}"
done

step "refusals"
# refused DESCRIPTION MESSAGE VAR=value...: the dry run with those variables must stop, saying MESSAGE.
refused() {
  local what="$1" message="$2" got; shift 2
  if got="$("${dry_env[@]}" "$@" bash deploy/kind/up.sh 2>&1)"; then
    check "${what}" false
  else
    check "${what}" grep -qF -- "${message}" <<<"${got}"
  fi
}
refused "ISTIO_HUB=gcr.io/istio-release (no Istio ${ISTIO_VERSION} there) is refused" \
  "ISTIO_HUB=gcr.io/istio-release has no Istio ${ISTIO_VERSION}" ISTIO_HUB=gcr.io/istio-release
refused "a node image without a digest is refused" "is not pinned by digest" KIND_NODE_IMAGE="${KIND_NODE_IMAGE%%@*}"
refused "a GATEWAY_URL on another port than deploy/kind/cluster.yaml's is refused" \
  "deploy/kind/cluster.yaml publishes the gateway on" GATEWAY_URL=http://127.0.0.1:9999

((failures == 0)) || die "${failures} check(s) failed"
info "kind dry run: all checks passed"
