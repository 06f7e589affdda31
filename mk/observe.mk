# What people look at: Prometheus' rules and alerts (deploy/observability/prometheus), Grafana's
# dashboards (deploy/observability/grafana), one source for every Prometheus and Grafana that
# watches the platform, and a local Prometheus to watch it with. Included by the Makefile.
#
#   make observe        Debian's Prometheus on 127.0.0.1:9090 (OBSERVE_PORT) scraping whatever
#                       runs — make up's services, the local mesh's Envoys and apps — found from
#                       their records (scripts/observe.sh, scripts/observe-agent.py); data in
#                       .local/observe. Stopped by make observe-down, make down and make mesh-down.
#   make test-rules     promtool check rules + promtool test rules (synthetic series: every alert
#                       has a case that must fire and one that must not), and every dashboard
#                       query and rule parsed, naming only recorded series or metrics the apps
#                       (their code), Envoy (a real one, configured as kind's sidecars) or Istio
#                       (its pinned module) export; part of `make test`
#   make test-observe   the discovery agent's mesh half on a pod of its own (a network namespace,
#                       a real Envoy: scripts/test-observe-agent.py, root); then, live: orders
#                       through make up's platform (started and stopped again if
#                       not running), then every rule and dashboard query evaluated on a
#                       Prometheus of its own; part of `make test`. OBSERVE_ON=mesh does the same
#                       through the running local mesh (make mesh-up first)
#   make test-observe-mesh  the mesh variant with the mesh brought up and down; then the canary
#                       demo run with its printed Prometheus graph opened in headless Chromium
#                       (scripts/test-canary-screenshot.py): the page must draw both subsets;
#                       part of `make test`
#
# promtool and prometheus are Debian's (package prometheus), chromium-headless-shell Debian's
# too; each installed when missing.

PROM_RULES := deploy/observability/prometheus/rules.yaml
PROM_TESTS := $(wildcard deploy/observability/prometheus/tests/*.yaml)
OBSERVE_ON ?= platform

.PHONY: prometheus-deps browser-deps observe-py-deps test-rules observe observe-down test-observe test-observe-mesh

prometheus-deps: ## install Debian's Prometheus (prometheus, promtool) when missing
	@command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || { \
	  echo "installing Prometheus from Debian's packages" >&2; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

browser-deps: ## install Debian's headless Chromium (chromium-headless-shell) when missing
	@command -v chromium-headless-shell >/dev/null 2>&1 || { \
	  echo "installing headless Chromium from Debian's packages" >&2; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium-headless-shell >/dev/null; }

observe-py-deps: ## PyYAML for the checks (PyPI), when missing
	@python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore pyyaml

test-rules: prometheus-deps observe-py-deps mesh-deps ## check deploy/'s Prometheus rules (promtool), their unit tests, and every dashboard query and metric name
	promtool check rules $(PROM_RULES)
	promtool test rules $(PROM_TESTS)
	python3 scripts/check-observability.py

observe: prometheus-deps ## a local Prometheus watching what runs (make up, the local mesh) with deploy/'s rules; prints its URL
	@scripts/observe.sh start

observe-down: ## stop make observe's Prometheus
	@scripts/observe.sh stop

# The platform's and the mesh's down targets stop the Prometheus watching them first.
down: observe-down
mesh-down: observe-down

test-observe: prometheus-deps observe-py-deps mesh-deps ## live: orders through make up (OBSERVE_ON=mesh: the local mesh), every rule and dashboard query evaluated on a local Prometheus
	python3 scripts/test-observe-agent.py
	python3 scripts/test-observe.py --on $(OBSERVE_ON)

# The same through the local mesh, where the Envoy series must have data too: brings the mesh
# up and takes it down again, whatever the outcome (as test-mesh does). Part of `make test`.
test-observe-mesh: prometheus-deps browser-deps observe-py-deps mesh-deps mesh-build mesh-apps mesh-demo-bins jaeger ## live: every rule and dashboard query on traffic through the local mesh, and the canary demo's graph in headless Chromium (brings the mesh up and down)
	@$(MESH_BIN) up -root $(CURDIR)
	@python3 scripts/test-observe.py --on mesh && python3 scripts/test-canary-screenshot.py --mesh $(MESH_BIN); \
	  rc=$$?; $(MESH_BIN) down -root $(CURDIR) || rc=1; exit $$rc
