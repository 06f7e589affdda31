#!/usr/bin/env bash
# make kind-down: delete the kind cluster created by up.sh (nothing else on the host is touched;
# the downloaded Istio release and Gateway API CRD bundle stay cached in .local/kind).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need kind
if cluster_exists; then
  kind delete cluster --name "${KIND_CLUSTER}"
else
  info "no kind cluster named '${KIND_CLUSTER}'"
fi
rm -rf "${ORDERMESH_ROOT}/.local/kind/rendered"
