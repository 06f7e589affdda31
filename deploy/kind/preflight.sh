#!/usr/bin/env bash
# Checks deploy/kind/up.sh makes before it creates anything. Source it after lib.sh; it defines
# functions only. Each check stops with what to do instead of letting the cluster fail later
# (ImagePullBackOff, `content digest ... not found`, crash-looping pods). Under KIND_DRY_RUN=1
# each prints what it checked, or the command it would run to check it.
# shellcheck disable=SC2034  # DOCKER_SAVE_PLATFORM and DOCKER_OS are read by lib.sh's kind_load and up.sh

# preflight_routing: ROUTING names a variant; in the gateway-api variant the Gateway API channel
# keeps every field the HTTPRoutes use: the standard channel's CRDs prune HTTPRoute `retry`
# (experimental in v1.6), and a route without it gets Istio's default retries, which retry a
# POST on 503.
preflight_routing() {
  check_routing
  local routes=deploy/components/gateway-api-routing/httproute-retry-timeout.yaml
  if [[ "${ROUTING}" == gateway-api && "${GATEWAY_API_CHANNEL}" != experimental ]] \
    && grep -qE '^[[:space:]]+retry:' "${routes}"; then
    die "GATEWAY_API_CHANNEL=${GATEWAY_API_CHANNEL}: ${routes} sets HTTPRoute 'retry', which Gateway API ${GATEWAY_API_VERSION} has only in its experimental channel; the ${GATEWAY_API_CHANNEL} CRDs would drop it and POSTs would get Istio's default retries (503 included). Use GATEWAY_API_CHANNEL=experimental (deploy/versions.env)"
  fi
  if [[ "${ROUTING}" == gateway-api ]]; then
    info "check routing: ROUTING=gateway-api: $(mesh_dir) + $(overlay_dir '<tenant>'), Gateway API ${GATEWAY_API_VERSION} ${GATEWAY_API_CHANNEL} CRDs, no istio-ingressgateway"
  else
    info "check routing: ROUTING=istio: $(mesh_dir) + $(overlay_dir '<tenant>'), istio-ingressgateway (Gateway API ${GATEWAY_API_VERSION} ${GATEWAY_API_CHANNEL} CRDs installed too, unused)"
  fi
}

# preflight_istio_hub: ISTIO_HUB must be a registry that carries ISTIO_VERSION, and
# deploy/versions.env and deploy/mesh/istio-operator.yaml (spec.hub) must name the same one.
preflight_istio_hub() {
  local file_hub operator_hub
  file_hub="$(sed -n 's/^ISTIO_HUB=//p' deploy/versions.env)"
  operator_hub="$(sed -n 's/^  hub:[[:space:]]*\([^[:space:]#]*\).*/\1/p' deploy/mesh/istio-operator.yaml)"
  [[ -n "${operator_hub}" && "${file_hub}" == "${operator_hub}" ]] \
    || die "deploy/versions.env says ISTIO_HUB=${file_hub:-?} but deploy/mesh/istio-operator.yaml says spec.hub: ${operator_hub:-?}; make them the same"
  if hub_lacks_release "${ISTIO_HUB}" "${ISTIO_VERSION}"; then
    die "ISTIO_HUB=${ISTIO_HUB} has no Istio ${ISTIO_VERSION}: from 1.31 Istio publishes its images only to docker.io/istio (gcr.io/istio-release is decommissioned in December 2026); istiod and the gateway would sit in ImagePullBackOff. Use ISTIO_HUB=docker.io/istio"
  fi
  [[ "${ISTIO_HUB}" == "${file_hub}" ]] \
    || info "note: ISTIO_HUB=${ISTIO_HUB} overrides deploy/versions.env (${file_hub}); it must serve pilot and proxyv2 at ${ISTIO_VERSION}"
  info "check Istio hub: ${ISTIO_HUB} (versions.env = istio-operator.yaml spec.hub; carries ${ISTIO_VERSION})"
}

# preflight_kind_version: the installed kind must be KIND_VERSION, the release the node image is
# published for (KIND_VERSION_MISMATCH_OK=1 to try another one anyway).
preflight_kind_version() {
  [[ "${KIND_NODE_IMAGE}" == *@sha256:* ]] \
    || die "KIND_NODE_IMAGE=${KIND_NODE_IMAGE} is not pinned by digest (deploy/versions.env)"
  local why="${KIND_NODE_IMAGE%%@*} is published for kind ${KIND_VERSION}"
  if dry_run; then
    printf '+ kind version\n' >&2
    info "check kind version: must be ${KIND_VERSION} (${why}); otherwise stop unless KIND_VERSION_MISMATCH_OK=1"
    return 0
  fi
  local out have
  out="$(kind version)" || die "'kind version' failed"
  have="$(awk '{print $2; exit}' <<<"${out}")"
  if [[ "${have}" == "${KIND_VERSION}" ]]; then
    info "kind ${have}"
  elif [[ "${KIND_VERSION_MISMATCH_OK:-0}" == 1 ]]; then
    info "warning: kind ${have:-?} installed, not ${KIND_VERSION} (${why}); going on because KIND_VERSION_MISMATCH_OK=1"
  else
    die "kind ${have:-?} installed, deploy/versions.env pins KIND_VERSION=${KIND_VERSION} (${why}). Install kind ${KIND_VERSION} (https://kind.sigs.k8s.io/docs/user/quick-start/#installation, or: go install sigs.k8s.io/kind@${KIND_VERSION}), or run with KIND_VERSION_MISMATCH_OK=1 to try this kind with that node image"
  fi
}

# preflight_gateway_url: GATEWAY_URL must be where deploy/kind/cluster.yaml publishes the
# gateway (hostPort of NodePort 30080); the port is chosen there, once.
preflight_gateway_url() {
  local want url hostport host port
  want="$(cluster_gateway_address)"
  [[ -n "${want}" ]] || die "deploy/kind/cluster.yaml maps no hostPort to containerPort 30080"
  url="${GATEWAY_URL#http://}"
  hostport="${url%%/*}"
  host="${hostport%:*}"
  port="${hostport##*:}"
  [[ "${hostport}" == *:* ]] || port=80
  if [[ "${GATEWAY_URL}" != http://* || "${port}" != "${want##*:}" ]] \
    || [[ "${host}" != "${want%:*}" && "${host}" != localhost ]]; then
    die "GATEWAY_URL=${GATEWAY_URL}, but deploy/kind/cluster.yaml publishes the gateway on ${want}: change hostPort (and listenAddress) there, then recreate the cluster (make kind-down), and leave GATEWAY_URL unset"
  fi
  info "check gateway: ${GATEWAY_URL} = deploy/kind/cluster.yaml's ${want} -> NodePort 30080"
}

# preflight_docker: the engine is reachable, buildx is there, and kind_load can export a single
# platform. The containerd image store needs `docker save --platform` (client and engine >= 28,
# API 1.48); Engine 27 with that store (Docker Desktop 4.34-4.37 fresh installs) cannot load
# pulled multi-platform images into kind at all (kind #3795), so it stops here. Sets
# DOCKER_SAVE_PLATFORM and, when the engine's kernel is WSL's, KIND_ON_WSL.
preflight_docker() {
  local need_platform_save="containerd image store: needs Docker client and Engine >= 28 (API >= 1.48) for 'docker save --platform', else stop (upgrade to Engine >= 28 / Docker Desktop >= 4.38, or switch off the containerd image store); classic store on Engine < 28: plain 'docker save'"
  if dry_run; then
    {
      printf "+ docker version --format '{{.Client.Version}} {{.Server.Version}} {{.Server.APIVersion}}'\n"
      printf "+ docker info --format '{{json .DriverStatus}}|{{.OperatingSystem}}|{{.KernelVersion}}'\n"
      [[ "${SKIP_BUILD:-0}" == 1 ]] || printf '+ docker buildx version\n'
    } >&2
    info "check Docker engine/image store: ${need_platform_save}"
    return 0
  fi
  local versions client server api details driver_status kernel store=classic
  versions="$(docker version --format '{{.Client.Version}} {{.Server.Version}} {{.Server.APIVersion}}')" \
    || die "the Docker engine is not reachable ('docker version' failed above)"
  read -r client server api <<<"${versions}"
  details="$(docker info --format '{{json .DriverStatus}}|{{.OperatingSystem}}|{{.KernelVersion}}')" \
    || die "'docker info' failed (above)"
  IFS='|' read -r driver_status DOCKER_OS kernel <<<"${details}"
  [[ "${driver_status}" == *io.containerd.snapshotter* ]] && store=containerd
  if [[ "${kernel}" == *[Mm]icrosoft* || "${kernel}" == *WSL* ]]; then
    export KIND_ON_WSL=1
  fi
  info "Docker client ${client}, Engine ${server} (API ${api}), ${store} image store, ${DOCKER_OS}, kernel ${kernel}"

  if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    docker buildx version >/dev/null \
      || die "'docker buildx' is required (the builds use --provenance/--sbom): install the docker-buildx plugin (Docker Engine packages: docker-buildx-plugin)"
  fi

  if version_at_least "${client}" 28 && version_at_least "${api}" 1.48; then
    DOCKER_SAVE_PLATFORM=1
  elif [[ "${store}" == classic ]]; then
    DOCKER_SAVE_PLATFORM=0
    info "classic image store on Docker < 28: images are exported with a plain 'docker save' (this store holds one platform per image)"
  else
    die "Docker client ${client} / Engine ${server} (API ${api}) with the containerd image store: kind cannot load images from it. Exporting one platform needs 'docker save --platform' (Docker >= 28, API 1.48); a plain save of a pulled multi-platform image fails in 'kind load' with 'content digest ... not found' (kind #3795). Docker Desktop 4.34-4.37 fresh installs are exactly this (Engine 27 + containerd store). Fix one of: upgrade to Docker Engine >= 28 / Docker Desktop >= 4.38 (client too); or switch off the containerd image store (Docker Desktop: Settings > General > untick 'Use containerd for pulling and storing images'; Docker Engine: remove \"containerd-snapshotter\" from \"features\" in /etc/docker/daemon.json and restart dockerd; images of the other store are not visible after the switch)"
  fi
}

# preflight_inotify: on Linux, kind's known issues: Ubuntu's defaults (8192 watches, 128
# instances) are not enough for multi-node clusters; three nodes and ~35 pods with sidecars
# crash-loop with "too many open files". Stops below kind's recommended 524288 / 512
# (KIND_INOTIFY_LOW_OK=1 to go on anyway). Under Docker Desktop the limits are its VM's.
preflight_inotify() {
  if [[ "$(uname -s)" != Linux ]]; then
    info "check inotify: not Linux ($(uname -s)): the limits are Docker Desktop's VM's, not checked"
    return 0
  fi
  if [[ "${DOCKER_OS:-}" == *"Docker Desktop"* ]]; then
    info "check inotify: Docker Desktop runs the nodes in its own VM; the host's limits do not apply, not checked"
    return 0
  fi
  local watches instances
  watches="$(cat /proc/sys/fs/inotify/max_user_watches)"
  instances="$(cat /proc/sys/fs/inotify/max_user_instances)"
  info "check inotify: fs.inotify.max_user_watches=${watches} (kind recommends >= 524288), fs.inotify.max_user_instances=${instances} (>= 512)"
  ((watches >= 524288 && instances >= 512)) && return 0
  local fix
  fix="$(
    cat <<FIX
inotify limits too low for a three-node kind cluster (pods crash-loop with "too many open files").
Raise them now:
    sudo sysctl fs.inotify.max_user_watches=524288
    sudo sysctl fs.inotify.max_user_instances=512
and keep them across reboots:
    printf 'fs.inotify.max_user_watches = 524288\\nfs.inotify.max_user_instances = 512\\n' | sudo tee /etc/sysctl.d/99-kind-inotify.conf
    sudo sysctl --system
(KIND_INOTIFY_LOW_OK=1 goes on without them.)
FIX
  )"
  if dry_run; then
    info "a real run stops here:"
    printf '      %s\n' "${fix//$'\n'/$'\n'      }"
  elif [[ "${KIND_INOTIFY_LOW_OK:-0}" == 1 ]]; then
    info "warning: inotify limits below kind's recommendation; going on because KIND_INOTIFY_LOW_OK=1"
  else
    die "${fix}"
  fi
}

# preflight_wsl: kindnet's NetworkPolicy enforcement fails on WSL2's kernel (kind #3705, #3789:
# its nftables rules do not load), so say up front that the smoke test's NetworkPolicy check
# will be reported as unsupported, and what to do instead.
preflight_wsl() {
  if ! on_wsl; then
    info "check WSL: not WSL ($(cat /proc/sys/kernel/osrelease 2>/dev/null || uname -r)); NetworkPolicy is enforced by kindnet"
    return 0
  fi
  cat <<'MSG'
    warning: WSL2 detected. kindnet cannot enforce NetworkPolicy on WSL2's kernel (kind issues
      #3705, #3789: its nftables rules fail to load), so the smoke test reports the NetworkPolicy
      check as UNSUPPORTED instead of failing; mTLS and AuthorizationPolicies (the 403 check) work.
      To see NetworkPolicy enforced: run on a Linux host or VM, or use a kind cluster with Calico
      (networking.disableDefaultCNI: true, then install Calico) - make kind-up does not do that.
MSG
}

# preflight_pull_limit_note: Docker Hub allows 10 anonymous pulls per hour per IP and a first
# run makes about 7 there; suggest logging in (never required).
preflight_pull_limit_note() {
  info "Docker Hub: anonymous pulls are limited to 10 per hour per IP and a first run makes about 7"
  info "(rust, postgres, curl, Jaeger, Prometheus, Istio's pilot + proxyv2). Shared IP or many re-runs: 'docker login' first."
}
