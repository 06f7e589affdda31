# What people look at: Prometheus' rules and alerts (deploy/observability/prometheus), one source
# for every Prometheus that watches the platform. Included by the Makefile.
#
#   make test-rules   promtool check rules + promtool test rules (synthetic series: every alert
#                     has a case that must fire and one that must not); part of `make test`
#
# promtool is Debian's (package prometheus), installed when missing; nothing is started.

PROM_RULES := deploy/observability/prometheus/rules.yaml
PROM_TESTS := $(wildcard deploy/observability/prometheus/tests/*.yaml)

.PHONY: prometheus-deps test-rules

prometheus-deps: ## install Debian's Prometheus (promtool) when missing
	@command -v promtool >/dev/null 2>&1 || { \
	  echo "installing Prometheus (promtool) from Debian's packages" >&2; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

test-rules: prometheus-deps ## check deploy/'s Prometheus rules and run their unit tests (promtool)
	promtool check rules $(PROM_RULES)
	promtool test rules $(PROM_TESTS)
