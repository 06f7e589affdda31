#!/usr/bin/env bash
# Helpers shared by deploy/kind/*.sh. Source it; it defines functions and variables only.
# shellcheck disable=SC2034  # variables are used by the scripts that source this file

ORDERMESH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KIND_CLUSTER="${KIND_CLUSTER:-ordermesh}"
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.34.0}"
ISTIO_VERSION="${ISTIO_VERSION:-1.28.0}"
KCTX="kind-${KIND_CLUSTER}"
TOOLS_DIR="${ORDERMESH_ROOT}/.local/kind"
SERVICES=(order-service payment-service inventory-service notify-service)
GATEWAY_URL="${GATEWAY_URL:-http://127.0.0.1:8080}"
PROBE_IMAGE="${PROBE_IMAGE:-curlimages/curl:8.11.1}"

step() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

k() { kubectl --context "${KCTX}" "$@"; }

need() {
  local tool
  for tool in "$@"; do
    command -v "${tool}" >/dev/null 2>&1 || die "'${tool}' is required (see deploy/README.md, 'Deploy to kind')"
  done
}

# istioctl_path: download the pinned Istio release (istioctl + samples/addons) into
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

# apply_phase LABEL FILE KINDS [INCLUDE_REGEX [EXCLUDE_REGEX]]: kubectl apply the selected docs.
apply_phase() {
  local label="$1"; shift
  local docs
  docs="$(select_docs "$@")"
  if [[ -z "${docs}" ]]; then
    info "${label}: nothing to apply"
    return 0
  fi
  info "${label}: $(grep -c '^kind:' <<<"${docs}") objects"
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
