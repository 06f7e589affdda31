#!/usr/bin/env bash
# make test-kind-dry-run: runs `make kind-up`'s script with KIND_DRY_RUN=1 (no Docker, no kind)
# and checks the commands it prints against deploy/versions.env: the preflight (Istio hub, kind
# version, gateway port, Docker engine and image store, inotify limits, WSL, the Docker Hub
# note), the kind node image by digest, the Istio release and its checksum, Istio's images
# pre-pulled from its hub and kind-loaded, attestation-free builds loaded as single-platform
# archives, content tags, no public pull left to the nodes; the addons (Jaeger, Prometheus with
# deploy/observability's rules, Grafana with its three dashboards, Kiali) from the pinned release;
# that the pin is the same everywhere
# it is read or stated (tools/go.mod, the operator file, READMEs); both routing variants' plans
# (ROUTING=istio and ROUTING=gateway-api: the Gateway API CRDs, istioctl's flags, the
# kustomizations applied, the gateway waits; every rendered object applied once); and that
# up.sh refuses what cannot work (a hub without the release, a node image without a digest, a
# GATEWAY_URL that is not the cluster's port, an unknown ROUTING, the standard Gateway API
# channel under routes that use `retry`, a reused cluster of the other variant).
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
# has_lines FILE LINE...: FILE has every LINE, whole.
has_lines() {
  local file="$1" line; shift
  for line in "$@"; do grep -qxF -- "${line}" "${file}" || return 1; done
}
# has_all_in TEXT NEEDLE...: TEXT contains every NEEDLE.
has_all_in() {
  local text="$1" needle; shift
  for needle in "$@"; do grep -qF -- "${needle}" <<<"${text}" || return 1; done
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

step "KIND_DRY_RUN=1 deploy/kind/up.sh (tenants tenant-a tenant-b; ROUTING=istio, then gateway-api)"
dry_env=(env -u ISTIO_VERSION -u ISTIO_HUB -u KIND_NODE_IMAGE -u KIND_VERSION -u GATEWAY_URL
  -u SKIP_BUILD -u DOCKER_SAVE_PLATFORM -u KIND_ON_WSL -u ROUTING -u GATEWAY_API_VERSION
  -u GATEWAY_API_CHANNEL KIND_DRY_RUN=1 TENANTS="tenant-a tenant-b")
# out: the default plan (no ROUTING: istio), which most checks read; out_gateway_api: ROUTING=gateway-api.
out="$("${dry_env[@]}" bash deploy/kind/up.sh 2>&1)" || { printf '%s\n' "${out}" >&2; die "the dry run failed"; }
out_istio="${out}"
out_gateway_api="$("${dry_env[@]}" ROUTING=gateway-api bash deploy/kind/up.sh 2>&1)" \
  || { printf '%s\n' "${out_gateway_api}" >&2; die "the dry run with ROUTING=gateway-api failed"; }
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
check "mk/deploy.mk pins no version itself" bash -c '! grep -nE "^(ISTIO_VERSION|ISTIO_HUB|KIND_NODE_IMAGE|KIND_VERSION|GATEWAY_API_VERSION|GATEWAY_API_CHANNEL)[[:space:]]*[?:]?=" mk/deploy.mk'
go_mod_gateway_api="$(awk '$1 == "sigs.k8s.io/gateway-api" {print $2}' tools/go.mod)"
check "deploy/versions.env GATEWAY_API_VERSION (${GATEWAY_API_VERSION}) = sigs.k8s.io/gateway-api in tools/go.mod (${go_mod_gateway_api:-none})" \
  test "${GATEWAY_API_VERSION}" = "${go_mod_gateway_api}"
# The version Istio itself builds against, from its go.mod at the pinned commit when the Go
# module cache holds it (it does wherever tools/ has been built).
istio_mod="$(go env GOMODCACHE 2>/dev/null || true)/cache/download/istio.io/istio/@v/${go_mod_istio}.mod"
if [[ -f "${istio_mod}" ]]; then
  istio_gateway_api="$(awk '$1 == "sigs.k8s.io/gateway-api" {print $2}' "${istio_mod}")"
  check "istio.io/istio ${go_mod_istio}'s go.mod requires sigs.k8s.io/gateway-api ${istio_gateway_api:-?} = GATEWAY_API_VERSION" \
    test "${istio_gateway_api}" = "${GATEWAY_API_VERSION}"
else
  info "(istio.io/istio's go.mod is not in the Go module cache: its gateway-api version not compared)"
fi
# has_only_pinned_gateway_api DOC: every "Gateway API v<x.y.z>" in DOC is GATEWAY_API_VERSION, and
# a DOC that mentions the Gateway API names that version at least once.
has_only_pinned_gateway_api() {
  local named
  grep -q 'Gateway API' "$1" || return 0
  named="$(grep -oE 'Gateway API v[0-9]+(\.[0-9]+)*' "$1" | sort -u)"
  [[ "${named}" == "Gateway API ${GATEWAY_API_VERSION}" ]]
}
for doc in README.md deploy/README.md; do
  check "${doc} states Istio ${ISTIO_VERSION}" grep -qF "Istio ${ISTIO_VERSION}" "${doc}"
  check "${doc} states kind ${KIND_VERSION}" grep -qF "kind ${KIND_VERSION}" "${doc}"
  check "${doc} names the hub ${file_hub}" grep -qF "${file_hub}" "${doc}"
  check "${doc}: the Gateway API version it names is the pinned Gateway API ${GATEWAY_API_VERSION}" \
    has_only_pinned_gateway_api "${doc}"
done

step "routing variants: ROUTING=istio (default) and ROUTING=gateway-api"
crds_url="https://github.com/kubernetes-sigs/gateway-api/releases/download/${GATEWAY_API_VERSION}/${GATEWAY_API_CHANNEL}-install.yaml"
crds_apply="apply --server-side -f ${TOOLS_DIR}/gateway-api-${GATEWAY_API_VERSION}-${GATEWAY_API_CHANNEL}-install.yaml"
no_ingressgateway="--set components.ingressGateways[name:istio-ingressgateway].enabled=false"
gateway_wait="-n istio-system wait --for=condition=Programmed gateways.gateway.networking.k8s.io/ordermesh-gateway"
# rendered_count DIR... KINDS: how many objects of KINDS (space-separated) the kustomizations render.
rendered_count() {
  local kinds="${*: -1}" dir n=0
  for dir in "${@:1:$#-1}"; do
    n=$((n + $(kubectl kustomize "${dir}" | awk -v k=" ${kinds} " '/^kind:/ && index(k, " " $2 " ") {c++} END {print c + 0}')))
  done
  printf '%s\n' "${n}"
}
# has_line TEXT: some output line is exactly TEXT.
has_line() { grep -qxF -- "$1" <<<"${out}"; }
for variant in istio gateway-api; do
  if [[ "${variant}" == istio ]]; then out="${out_istio}"; else out="${out_gateway_api}"; fi
  check "[${variant}] the variant is printed" has "check routing: ROUTING=${variant}:"
  check "[${variant}] Gateway API CRDs from the release, ${GATEWAY_API_VERSION}, ${GATEWAY_API_CHANNEL} channel: ${crds_url}" has "${crds_url}"
  check "[${variant}] ... applied server-side" has "+ kubectl --context kind-ordermesh ${crds_apply}"
  check "[${variant}] ... and awaited (Established) before istioctl install" \
    before "wait --for=condition=Established --timeout=60s crd/gatewayclasses.gateway.networking.k8s.io" "${install_line}"
  check "[${variant}] a reused cluster of the other variant is refused" has "check routing: a reused cluster that holds"
  check "[${variant}] the admission EnvoyFilter (deploy/mesh) is applied" has "gateway admission EnvoyFilter: 1 objects"
  check "[${variant}] every rendered object is applied by exactly one phase" has "rendered objects applied by exactly one phase"
done

out="${out_istio}"
routes="$(rendered_count deploy/mesh deploy/overlays/tenant-a deploy/overlays/tenant-b "VirtualService Gateway")"
check "[istio] istioctl installs the istio-ingressgateway (no --set disabling it)" lacks "ingressGateways"
check "[istio] ... and its rollout is awaited" has "-n istio-system rollout status deploy/istio-ingressgateway --timeout=300s"
check "[istio] renders deploy/mesh and deploy/overlays/<tenant>" \
  has_all "==> render (ROUTING=istio): deploy/mesh and deploy/overlays/<tenant>" "    kubectl kustomize deploy/overlays/tenant-b"
check "[istio] ... only those" lacks "mesh-gateway-api|/gateway-api\$"
check "[istio] applies the VirtualServices and the Istio Gateway (${routes} objects)" has_line "    virtual services + Istio Gateway: ${routes} objects"
check "[istio] no Gateway API object applied or awaited (the CRDs only)" \
  lacks "HTTPRoutes:|httproutes.gateway.networking.k8s.io --all|gatewayclass/istio|ordermesh-gateway-istio"

out="${out_gateway_api}"
routes="$(rendered_count deploy/mesh-gateway-api deploy/overlays/tenant-a/gateway-api deploy/overlays/tenant-b/gateway-api "Gateway HTTPRoute")"
check "[gateway-api] istioctl install without the istio-ingressgateway" has "${install_line} ${no_ingressgateway}"
check "[gateway-api] ... which the operator file names so (the --set selects it by name)" \
  grep -qE '^      - name: istio-ingressgateway$' deploy/mesh/istio-operator.yaml
check "[gateway-api] ... and its rollout is not awaited" lacks "rollout status deploy/istio-ingressgateway"
check "[gateway-api] istiod's GatewayClass istio is awaited (created, Accepted)" \
  has_all "wait --for=create gatewayclass/istio" "wait --for=condition=Accepted gatewayclass/istio"
check "[gateway-api] renders deploy/mesh-gateway-api and deploy/overlays/<tenant>/gateway-api" \
  has_all "==> render (ROUTING=gateway-api): deploy/mesh-gateway-api and deploy/overlays/<tenant>/gateway-api" \
  "    kubectl kustomize deploy/mesh-gateway-api" "    kubectl kustomize deploy/overlays/tenant-a/gateway-api" \
  "    kubectl kustomize deploy/overlays/tenant-b/gateway-api"
check "[gateway-api] ... only those" lacks "^    kubectl kustomize deploy/(mesh|overlays/tenant-[ab])\$"
check "[gateway-api] applies the Gateway and the HTTPRoutes (${routes} objects)" has_line "    Gateway API Gateway + HTTPRoutes: ${routes} objects"
check "[gateway-api] no VirtualService applied" lacks "virtual services"
check "[gateway-api] the Gateway is awaited until Programmed" has "${gateway_wait}"
check "[gateway-api] ... then its Deployment's rollout (<gateway>-<class>: ordermesh-gateway-istio)" \
  before "${gateway_wait}" "-n istio-system rollout status deploy/ordermesh-gateway-istio"
check "[gateway-api] ... named so by deploy/mesh-gateway-api (Gateway istio-system/ordermesh-gateway, class istio)" \
  has_lines deploy/mesh-gateway-api/gateway.yaml "  name: ordermesh-gateway" "  namespace: istio-system" "  gatewayClassName: istio"
for ns in tenant-a-orders tenant-a-payments tenant-b-orders tenant-b-payments; do
  for condition in Accepted ResolvedRefs; do
    check "[gateway-api] ${ns}: every HTTPRoute awaited until ${condition} on its parent" \
      has "-n ${ns} wait --timeout=120s httproutes.gateway.networking.k8s.io --all --for=jsonpath={.status.parents[*].conditions[?(@.type==\"${condition}\")].status}=True"
  done
done
check "[gateway-api] the HTTPRoutes are awaited before the smoke test" \
  before "httproutes.gateway.networking.k8s.io --all" "bash deploy/kind/smoke.sh tenant-a tenant-b"
check "[gateway-api] its gateway takes the same NodePort 30080 (deploy/mesh-gateway-api/gateway-options.yaml)" \
  grep -qE '^[[:space:]]+nodePort: 30080$' deploy/mesh-gateway-api/gateway-options.yaml
check "[gateway-api] the smoke test goes through the same ${GATEWAY_URL}" has "Ingress gateway: ${GATEWAY_URL}  (Host header <tenant>.ordermesh.local; ROUTING=gateway-api)"
out="${out_istio}"

# The downloaded bundle is checked by its annotations (lib.sh, gateway_api_crds). The release
# builds <channel>-install.yaml from config/crd/<channel>/gateway*.yaml of its tag
# (hack/build-install-yaml.sh), so those files, when the Go module cache holds the pinned
# module, show that check accepting the pinned bundle and refusing another channel or version.
gateway_api_dir="$(go env GOMODCACHE 2>/dev/null || true)/sigs.k8s.io/gateway-api@${GATEWAY_API_VERSION}"
if [[ -d "${gateway_api_dir}/config/crd/${GATEWAY_API_CHANNEL}" ]]; then
  bundle="$(mktemp)"
  for f in "${gateway_api_dir}/config/crd/${GATEWAY_API_CHANNEL}"/gateway*.yaml; do printf -- '---\n'; cat "${f}"; done >"${bundle}"
  read -r crds pinned <<<"$(bundle_crds "${bundle}" "${GATEWAY_API_VERSION}" "${GATEWAY_API_CHANNEL}")"
  check "the bundle check accepts sigs.k8s.io/gateway-api@${GATEWAY_API_VERSION}'s ${GATEWAY_API_CHANNEL} CRDs (${pinned} of ${crds})" \
    test "${crds}" -gt 0 -a "${pinned}" = "${crds}"
  other_channel=standard
  [[ "${GATEWAY_API_CHANNEL}" == standard ]] && other_channel=experimental
  check "... and refuses them as the ${other_channel} channel" \
    test "$(bundle_crds "${bundle}" "${GATEWAY_API_VERSION}" "${other_channel}")" = "${crds} 0"
  check "... or as another version" test "$(bundle_crds "${bundle}" v0.0.1 "${GATEWAY_API_CHANNEL}")" = "${crds} 0"
  check "HTTPRoute retry (used by deploy/components/gateway-api-routing) is in the experimental CRDs of ${GATEWAY_API_VERSION}, not the standard ones" \
    bash -c "grep -qE '^ +retry:\$' '${gateway_api_dir}/config/crd/experimental/gateway.networking.k8s.io_httproutes.yaml' && ! grep -qE '^ +retry:\$' '${gateway_api_dir}/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml'"
  rm -f "${bundle}"
else
  info "(sigs.k8s.io/gateway-api@${GATEWAY_API_VERSION} is not in the Go module cache: the bundle check not exercised)"
fi

# A reused cluster: refuse_other_routing against a stand-in kubectl (no cluster here) that
# reports the Istio variant's objects, or none.
# kubectl, in cluster_says' subshell only: knows every CRD and lists FAKE_CLUSTER_RUNS's objects.
fake_kubectl() {
  case "$*" in
    *" get crd "*) printf 'customresourcedefinition.apiextensions.k8s.io/x\n' ;;
    *" get gateways.networking.istio.io,"*) [[ "${FAKE_CLUSTER_RUNS}" != istio ]] ||
      printf 'Gateway          ordermesh-gateway   istio-system\nVirtualService   payment-service     tenant-a-payments\n' ;;
    *" get gateways.gateway.networking.k8s.io,"*) [[ "${FAKE_CLUSTER_RUNS}" != gateway-api ]] ||
      printf 'Gateway     ordermesh-gateway   istio-system\nHTTPRoute   payment-service     tenant-a-payments\n' ;;
    *) return 1 ;;
  esac
}
# cluster_says VARIANT ROUTING: what refuse_other_routing prints (and its status) on a cluster
# running VARIANT (none: no routing objects) when asked for ROUTING.
cluster_says() {
  (
    FAKE_CLUSTER_RUNS="$1" ROUTING="$2"
    kubectl() { fake_kubectl "$@"; }
    refuse_other_routing
  ) 2>&1
}
# reused VARIANT ROUTING: refuse_other_routing lets ROUTING reuse a cluster running VARIANT.
reused() { cluster_says "$1" "$2" >/dev/null; }
if said="$(cluster_says istio gateway-api)"; then
  check "a cluster running the istio variant refuses ROUTING=gateway-api" false
else
  check "a cluster running the istio variant refuses ROUTING=gateway-api, naming what it found and what to do" \
    has_all_in "${said}" "runs the istio routing variant (2 routing objects, e.g. Gateway istio-system/ordermesh-gateway" \
    "ROUTING=istio make kind-up" "make kind-down && ROUTING=gateway-api make kind-up"
fi
if said="$(cluster_says gateway-api istio)"; then
  check "a cluster running the gateway-api variant refuses ROUTING=istio" false
else
  check "a cluster running the gateway-api variant refuses ROUTING=istio" \
    has_all_in "${said}" "runs the gateway-api routing variant" "make kind-down && ROUTING=istio make kind-up"
fi
check "a cluster running the same variant is reused (istio)" reused istio istio
check "a cluster running the same variant is reused (gateway-api)" reused gateway-api gateway-api
check "a cluster without routing objects takes ROUTING=istio" reused none istio
check "a cluster without routing objects takes ROUTING=gateway-api" reused none gateway-api

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
refused "an unknown ROUTING is refused, naming both variants" \
  "ROUTING=gateway is not a routing variant: use ROUTING=istio (VirtualServices and the Istio Gateway; the default) or ROUTING=gateway-api" \
  ROUTING=gateway
if got="$(make --no-print-directory -n kind-up ROUTING=gateway 2>&1)"; then
  check "make kind-up refuses an unknown ROUTING too (mk/deploy.mk)" false
else
  check "make kind-up refuses an unknown ROUTING too (mk/deploy.mk)" \
    grep -qF "ROUTING must be istio or gateway-api, not 'gateway'" <<<"${got}"
fi
refused "ROUTING=gateway-api with the standard Gateway API channel is refused (its CRDs drop HTTPRoute retry)" \
  "which Gateway API ${GATEWAY_API_VERSION} has only in its experimental channel" ROUTING=gateway-api GATEWAY_API_CHANNEL=standard
refused "an unknown Gateway API channel is refused" "the Gateway API publishes the channels standard and experimental" \
  GATEWAY_API_CHANNEL=beta

((failures == 0)) || die "${failures} check(s) failed"
info "kind dry run: all checks passed"
