#!/usr/bin/env bash
# Helpers shared by deploy/kind/*.sh. Source it; it defines functions and variables only.
# shellcheck disable=SC2034  # variables are used by the scripts that source this file

ORDERMESH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# The pinned versions (deploy/versions.env, KEY=value lines); a variable already set in the
# environment (e.g. `make kind-up ISTIO_VERSION=...`) wins.
while IFS='=' read -r key value; do
  [[ "${key}" =~ ^[A-Z_][A-Z0-9_]*$ ]] || continue
  [[ -n "${!key:-}" ]] || printf -v "${key}" '%s' "${value}"
done <"${ORDERMESH_ROOT}/deploy/versions.env"

KIND_CLUSTER="${KIND_CLUSTER:-ordermesh}"
KCTX="kind-${KIND_CLUSTER}"
# KIND_DRY_RUN=1: print every command that changes something instead of running it.
KIND_DRY_RUN="${KIND_DRY_RUN:-0}"
TOOLS_DIR="${ORDERMESH_ROOT}/.local/kind"
SERVICES=(order-service payment-service inventory-service notify-service)
PROBE_IMAGE="${PROBE_IMAGE:-curlimages/curl:8.11.1}"
# kind_load's export: `docker save --platform` (1) or a plain `docker save` (0, only for the
# classic image store on Docker Engine < 28; up.sh's Docker preflight decides, see preflight.sh).
DOCKER_SAVE_PLATFORM="${DOCKER_SAVE_PLATFORM:-1}"

# ROUTING: which API routes the traffic (deploy/README.md, "Two routing variants"): istio
# (VirtualServices + the Istio Gateway) or gateway-api (HTTPRoutes + a Gateway API Gateway).
ROUTING="${ROUTING:-istio}"

# step / info / die: a section header, an indented line, an error that stops the script.
step() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# dry_run: true under KIND_DRY_RUN=1.
dry_run() { [[ "${KIND_DRY_RUN}" == 1 ]]; }

# cluster_gateway_address: "<listenAddress>:<hostPort>" that deploy/kind/cluster.yaml publishes
# the ingress gateway's NodePort 30080 on (the one place that port is chosen).
cluster_gateway_address() {
  awk '
    /containerPort:[[:space:]]*30080([[:space:]]|$)/ { inmap = 1; next }
    inmap && /^[[:space:]]*-[[:space:]]/ { inmap = 0 }
    inmap && $1 == "hostPort:" { port = $2 }
    inmap && $1 == "listenAddress:" { addr = $2; gsub(/"/, "", addr) }
    END { if (port != "") print (addr == "" ? "0.0.0.0" : addr) ":" port }
  ' "${ORDERMESH_ROOT}/deploy/kind/cluster.yaml"
}
GATEWAY_URL="${GATEWAY_URL:-http://$(cluster_gateway_address)}"

# on_wsl: true under WSL (the kernel names Microsoft/WSL), or when up.sh found that the Docker
# engine's kernel is WSL's (KIND_ON_WSL=1): kindnet cannot enforce NetworkPolicy there.
on_wsl() {
  [[ "${KIND_ON_WSL:-0}" == 1 ]] && return 0
  local f
  for f in /proc/sys/kernel/osrelease /proc/version; do
    [[ -r "${f}" ]] && grep -qiE 'microsoft|wsl' "${f}" && return 0
  done
  return 1
}

# version_at_least HAVE WANT: true when dotted version HAVE >= WANT (numeric fields compared
# left to right; a leading "v" and anything after the numbers, like "-rc.1", are ignored).
version_at_least() {
  local have="${1#v}" want="${2#v}" i h w
  local -a hs ws
  IFS=. read -r -a hs <<<"${have%%[!0-9.]*}"
  IFS=. read -r -a ws <<<"${want%%[!0-9.]*}"
  for ((i = 0; i < ${#ws[@]}; i++)); do
    h="${hs[i]:-0}" w="${ws[i]:-0}"
    ((10#${h} > 10#${w})) && return 0
    ((10#${h} < 10#${w})) && return 1
  done
  return 0
}

# hub_lacks_release HUB VERSION: true when HUB is a registry known not to carry Istio VERSION:
# gcr.io/istio-release stopped at 1.30 (Istio 1.31+ is published only to docker.io/istio).
hub_lacks_release() {
  local hub="${1%/}" version="$2"
  [[ "${hub}" == gcr.io/istio-release ]] && version_at_least "${version}" 1.31
}

# run CMD...: run it, or print it under KIND_DRY_RUN=1.
run() {
  if dry_run; then
    printf '+ %s\n' "$*" >&2
  else
    "$@"
  fi
}

# k ARGS...: kubectl against the kind cluster's context (through run).
k() { run kubectl --context "${KCTX}" "$@"; }

# platform: the node's OS/architecture (kind nodes run the host's architecture).
platform() {
  case "$(uname -m)" in
    x86_64 | amd64) printf 'linux/amd64\n' ;;
    arm64 | aarch64) printf 'linux/arm64\n' ;;
    *) die "unsupported architecture $(uname -m)" ;;
  esac
}

# kind_load IMAGE: put a local image into every kind node as a single-platform archive.
# `kind load docker-image` runs a plain `docker save`, which fails on Docker's containerd image
# store ("ctr: content digest ... not found", kind #3795) whenever the image is an index with
# content for other platforms or attestation manifests (pulled multi-arch images; BuildKit
# builds with provenance). `docker save --platform` (Docker >= 28, API 1.48) exports exactly one
# platform. The classic image store holds one platform per image, so on Engine < 28 with that
# store (the only older setup up.sh lets through) a plain save is right. No fallback from one
# to the other: a failing save stops here with Docker's own error.
kind_load() {
  local image="$1" archive
  archive="${TOOLS_DIR}/images/$(printf '%s' "${image}" | tr '/:@' '___').tar"
  run mkdir -p "${TOOLS_DIR}/images"
  if [[ "${DOCKER_SAVE_PLATFORM}" == 1 ]]; then
    run docker save --platform "$(platform)" -o "${archive}" "${image}"
  else
    run docker save -o "${archive}" "${image}"
  fi
  run kind load image-archive --name "${KIND_CLUSTER}" "${archive}"
  run rm -f "${archive}"
}

# have_image_for PLATFORM IMAGE: true when the local Docker store holds IMAGE for PLATFORM
# (os/arch). An image present only for another platform does not count.
have_image_for() {
  local plat="$1" image="$2" have
  have="$(docker image inspect --format '{{.Os}}/{{.Architecture}}' "${image}" 2>/dev/null)" || return 1
  [[ "${have}" == "${plat}" ]]
}

# prepull IMAGE: pull a public image on the host for the nodes' platform (skipped only when it
# is already there for exactly that platform) and kind_load it, so that kind nodes never pull
# from a public registry themselves (Docker Hub's anonymous limit; ImagePullBackOff).
prepull() {
  local image="$1" plat
  plat="$(platform)"
  if dry_run || ! have_image_for "${plat}" "${image}"; then
    run docker pull --platform "${plat}" "${image}"
  else
    info "${image}: present for ${plat}, not pulled again"
  fi
  kind_load "${image}"
}

# need TOOL...: stop unless every TOOL is on the PATH.
# cluster_exists: whether kind has a cluster named KIND_CLUSTER. The list is read whole, then
# matched: piping kind into an early-exiting grep fails at random under pipefail (SIGPIPE).
cluster_exists() {
  local clusters
  clusters="$(kind get clusters 2>/dev/null || true)"
  grep -qx "${KIND_CLUSTER}" <<<"${clusters}"
}

need() {
  local tool
  for tool in "$@"; do
    command -v "${tool}" >/dev/null 2>&1 || die "'${tool}' is required (see deploy/README.md, 'Deploy to kind')"
  done
}

# istio_dir: download the pinned Istio release (istioctl + samples/addons) into
# .local/kind/istio-<version> once, verifying its published SHA-256, and print the directory.
istio_dir() {
  local dir="${TOOLS_DIR}/istio-${ISTIO_VERSION}"
  if [[ -x "${dir}/bin/istioctl" ]]; then
    printf '%s\n' "${dir}"
    return 0
  fi
  local os arch
  case "$(uname -s)" in
    Linux) os=linux ;;
    Darwin) os=osx ;;
    *) die "unsupported OS $(uname -s)" ;;
  esac
  case "$(uname -m)" in
    x86_64 | amd64) arch=amd64 ;;
    arm64 | aarch64) arch=arm64 ;;
    *) die "unsupported architecture $(uname -m)" ;;
  esac
  local name="istio-${ISTIO_VERSION}-${os}-${arch}.tar.gz"
  [[ "${os}" == osx && "${arch}" == amd64 ]] && name="istio-${ISTIO_VERSION}-osx.tar.gz"
  local url="https://github.com/istio/istio/releases/download/${ISTIO_VERSION}/${name}"
  if dry_run; then
    {
      printf '+ curl -fsSL -o %s %s\n' "${TOOLS_DIR}/${name}" "${url}"
      printf '+ curl -fsSL -o %s %s\n' "${TOOLS_DIR}/${name}.sha256" "${url}.sha256"
      printf '+ sha256sum -c %s\n' "${name}.sha256"
      printf '+ tar -xzf %s -C %s\n' "${TOOLS_DIR}/${name}" "${TOOLS_DIR}"
    } >&2
    printf '%s\n' "${dir}"
    return 0
  fi
  mkdir -p "${TOOLS_DIR}"
  info "downloading ${url}" >&2
  curl -fsSL -o "${TOOLS_DIR}/${name}" "${url}"
  curl -fsSL -o "${TOOLS_DIR}/${name}.sha256" "${url}.sha256"
  (cd "${TOOLS_DIR}" && sha256sum -c "${name}.sha256" >&2 2>/dev/null || shasum -a 256 -c "${name}.sha256" >&2) \
    || die "checksum mismatch for ${name}"
  tar -xzf "${TOOLS_DIR}/${name}" -C "${TOOLS_DIR}"
  rm -f "${TOOLS_DIR}/${name}" "${TOOLS_DIR}/${name}.sha256"
  [[ -x "${dir}/bin/istioctl" ]] || die "istioctl not found in ${name}"
  printf '%s\n' "${dir}"
}

# check_routing: ROUTING must name a variant deploy/ has, and GATEWAY_API_CHANNEL a channel.
check_routing() {
  case "${ROUTING}" in
    istio | gateway-api) ;;
    *) die "ROUTING=${ROUTING} is not a routing variant: use ROUTING=istio (VirtualServices and the Istio Gateway; the default) or ROUTING=gateway-api (HTTPRoutes and a Gateway API Gateway); see deploy/README.md, 'Two routing variants'" ;;
  esac
  case "${GATEWAY_API_CHANNEL}" in
    standard | experimental) ;;
    *) die "GATEWAY_API_CHANNEL=${GATEWAY_API_CHANNEL}: the Gateway API publishes the channels standard and experimental (deploy/versions.env)" ;;
  esac
}

# mesh_dir / overlay_dir TENANT: the kustomizations the ROUTING variant applies.
mesh_dir() {
  if [[ "${ROUTING}" == gateway-api ]]; then printf 'deploy/mesh-gateway-api\n'; else printf 'deploy/mesh\n'; fi
}
overlay_dir() {
  if [[ "${ROUTING}" == gateway-api ]]; then printf 'deploy/overlays/%s/gateway-api\n' "$1"; else printf 'deploy/overlays/%s\n' "$1"; fi
}

# gateway_api_crds_url: the Gateway API release's bundle of CRDs for GATEWAY_API_VERSION and
# GATEWAY_API_CHANNEL (<channel>-install.yaml: the CRDs and the safe-upgrades admission policy).
gateway_api_crds_url() {
  printf 'https://github.com/kubernetes-sigs/gateway-api/releases/download/%s/%s-install.yaml\n' \
    "${GATEWAY_API_VERSION}" "${GATEWAY_API_CHANNEL}"
}

# gateway_api_crds: download that bundle into .local/kind once and print its path. Pinned by
# version only: the release publishes no checksum file (istioctl's .sha256 has no counterpart),
# and the asset's SHA-256 could not be read here (no network where this was written). What is
# checked instead: every CRD in the file carries the bundle-version and channel annotations of
# the pin, so a wrong or truncated download stops here, before anything is applied.
gateway_api_crds() {
  local file="${TOOLS_DIR}/gateway-api-${GATEWAY_API_VERSION}-${GATEWAY_API_CHANNEL}-install.yaml"
  local url
  url="$(gateway_api_crds_url)"
  if dry_run; then
    [[ -s "${file}" ]] || printf '+ curl -fsSL -o %s %s\n' "${file}" "${url}" >&2
    printf '%s\n' "${file}"
    return 0
  fi
  if [[ ! -s "${file}" ]]; then
    mkdir -p "${TOOLS_DIR}"
    info "downloading ${url}" >&2
    curl -fsSL -o "${file}.part" "${url}" || { rm -f "${file}.part"; die "could not download ${url}"; }
    mv "${file}.part" "${file}"
  fi
  local counts crds pinned
  counts="$(bundle_crds "${file}" "${GATEWAY_API_VERSION}" "${GATEWAY_API_CHANNEL}")"
  read -r crds pinned <<<"${counts}"
  if ((crds == 0 || pinned != crds)); then
    rm -f "${file}"
    die "${url} gave ${crds} CRDs, ${pinned} of them annotated bundle-version ${GATEWAY_API_VERSION} and channel ${GATEWAY_API_CHANNEL}: not the pinned bundle (removed; re-run to download it again)"
  fi
  info "${file##*/}: ${crds} CRDs, bundle-version ${GATEWAY_API_VERSION}, channel ${GATEWAY_API_CHANNEL}" >&2
  printf '%s\n' "${file}"
}

# bundle_crds FILE VERSION CHANNEL: "<CRDs in FILE> <of them annotated with Gateway API
# bundle-version VERSION and channel CHANNEL>".
bundle_crds() {
  awk -v v="$2" -v c="$3" '
    function count() { if (crd) { n++; if (ver && chan) ok++ } crd = ver = chan = 0 }
    /^---/ { count() }
    /^kind:[[:space:]]*CustomResourceDefinition[[:space:]]*$/ { crd = 1 }
    $1 == "gateway.networking.k8s.io/bundle-version:" && $2 == v { ver = 1 }
    $1 == "gateway.networking.k8s.io/channel:" && $2 == c { chan = 1 }
    END { count(); print n + 0, ok + 0 }' "$1"
}

# other_routing: the variant ROUTING is not. routing_kinds_of VARIANT: its routing objects' kinds.
other_routing() { if [[ "${ROUTING}" == istio ]]; then printf 'gateway-api\n'; else printf 'istio\n'; fi; }
routing_kinds_of() {
  if [[ "$1" == istio ]]; then printf 'Istio Gateways, VirtualServices\n'; else printf 'Gateway API Gateways, HTTPRoutes\n'; fi
}

# routing_objects_of VARIANT: "<kind> <namespace>/<name>" of the cluster's routing objects of
# VARIANT (routing_kinds_of), one a line; nothing when it has none or not even their CRDs.
routing_objects_of() {
  local crd resources
  if [[ "$1" == istio ]]; then
    crd=virtualservices.networking.istio.io resources=gateways.networking.istio.io,virtualservices.networking.istio.io
  else
    crd=httproutes.gateway.networking.k8s.io resources=gateways.gateway.networking.k8s.io,httproutes.gateway.networking.k8s.io
  fi
  [[ -n "$(kubectl --context "${KCTX}" get crd "${crd}" --ignore-not-found -o name)" ]] || return 0
  kubectl --context "${KCTX}" get "${resources}" -A --no-headers \
    -o custom-columns='KIND:.kind,NAME:.metadata.name,NAMESPACE:.metadata.namespace' \
    | awk '{print $1 " " $3 "/" $2}'
}

# refuse_other_routing: stop when the (reused) cluster holds the other variant's routing objects.
# Switching in place is not supported: both APIs would bind the tenants' hosts, and the other
# variant's gateway keeps NodePort 30080, so this variant's gateway Service could not be created.
refuse_other_routing() {
  local other found
  other="$(other_routing)"
  found="$(routing_objects_of "${other}")" || die "could not list the cluster's ${other} routing objects (kubectl's error above)"
  if [[ -n "${found}" ]]; then
    die "cluster '${KIND_CLUSTER}' runs the ${other} routing variant ($(wc -l <<<"${found}" | tr -d ' ') routing objects, e.g. $(head -n 2 <<<"${found}" | paste -sd ';' - | sed 's/;/; /')), not ROUTING=${ROUTING}; switching a cluster in place is not supported. Keep it: ROUTING=${other} make kind-up; or start over: make kind-down && ROUTING=${ROUTING} make kind-up"
  fi
  info "check routing: the cluster holds no ${other} routing objects"
}

# select_docs FILE KINDS [INCLUDE_REGEX [EXCLUDE_REGEX]]
# Prints the YAML documents of a rendered multi-document FILE whose top-level kind is one of
# the space-separated KINDS and whose text matches INCLUDE_REGEX (and not EXCLUDE_REGEX).
select_docs() {
  local file="$1" kinds="$2" include="${3:-}" exclude="${4:-}"
  awk -v kinds=" ${kinds} " -v inc="${include}" -v exc="${exclude}" '
    function flush() {
      if (doc != "" && index(kinds, " " kind " ") > 0 && (inc == "" || doc ~ inc) && (exc == "" || doc !~ exc))
        printf "---\n%s", doc
      doc = ""; kind = ""
    }
    /^---[[:space:]]*$/ { flush(); next }
    { doc = doc $0 "\n"; if ($0 ~ /^kind:[[:space:]]/) kind = $2 }
    END { flush() }
  ' "${file}"
}

# apply_phase LABEL FILE KINDS [INCLUDE_REGEX [EXCLUDE_REGEX]]: kubectl apply the selected docs
# (and add their number to APPLIED_OBJECTS).
apply_phase() {
  local label="$1"; shift
  local docs
  docs="$(select_docs "$@")"
  if [[ -z "${docs}" ]]; then
    info "${label}: nothing to apply"
    return 0
  fi
  local n
  n="$(grep -c '^kind:' <<<"${docs}")"
  APPLIED_OBJECTS=$((${APPLIED_OBJECTS:-0} + n))
  info "${label}: ${n} objects"
  k apply -f - <<<"${docs}" >/dev/null
}

# retry N SECONDS CMD...: run CMD until it succeeds, at most N times, SECONDS apart.
retry() {
  local n="$1" pause="$2"; shift 2
  local i
  for ((i = 1; i <= n; i++)); do
    if "$@"; then return 0; fi
    sleep "${pause}"
  done
  return 1
}

# json_field NAME: first string value of "NAME" in the JSON on stdin (no jq needed).
json_field() {
  { grep -o "\"$1\"[[:space:]]*:[[:space:]]*\"[^\"]*\"" || true; } | head -n 1 | sed 's/.*:[[:space:]]*"\(.*\)"$/\1/'
}
