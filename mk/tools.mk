# tools/: the Go verification tooling that uses Istio's own code (owned by tools/, included by
# the top-level Makefile). Binaries go to .local/bin, reports to .local/reports (git-ignored).
#
#   make check-deploy   render deploy/ (kustomize Go API), decode strictly, validate with Istio,
#                       run the istioctl analyzers, prove deploy/'s promises; non-zero on any failure;
#                       both routing variants (CHECK_DEPLOY_ROUTING=istio|gateway-api|both)
#   make test-tools     go vet + gofmt + go test in tools/ (adapter goldens, negative tests,
#                       the positive test on deploy/)
#   make tools-build    build the tools into .local/bin

TOOLS_DIR       := $(CURDIR)/tools
TOOLS_BIN       := $(CURDIR)/.local/bin
TOOLS_REPORTS   := $(CURDIR)/.local/reports
CHECK_DEPLOY    := $(TOOLS_BIN)/check-deploy
CHECK_DEPLOY_JSON ?= $(TOOLS_REPORTS)/check-deploy.json
CHECK_DEPLOY_ROUTING ?= both
GO              ?= go

.PHONY: tools-build check-deploy test-tools

tools-build: ## build .local/bin/check-deploy
	@mkdir -p $(TOOLS_BIN)
	cd $(TOOLS_DIR) && $(GO) build -o $(CHECK_DEPLOY) ./cmd/check-deploy

check-deploy: tools-build ## verify deploy/ with Istio's own code + deploy/'s promises (report + JSON)
	@mkdir -p $(TOOLS_REPORTS)
	$(CHECK_DEPLOY) -deploy $(CURDIR)/deploy -routing $(CHECK_DEPLOY_ROUTING) -json $(CHECK_DEPLOY_JSON)
	@echo "JSON report: $(CHECK_DEPLOY_JSON)"

test-tools: ## go vet, gofmt and go test in tools/ (adapter golden tests, check-deploy negative tests)
	cd $(TOOLS_DIR) && $(GO) vet ./... && $(GO) vet -tags mesh ./internal/meshtest/
	@unformatted="$$(cd $(TOOLS_DIR) && gofmt -l $$($(GO) list -tags mesh -f '{{.Dir}}' ./...))"; \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	cd $(TOOLS_DIR) && $(GO) test ./...
