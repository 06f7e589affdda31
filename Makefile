# ordermesh — every entry point. `make up` runs the platform locally, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:55432/postgres

.PHONY: help up down db-up db-down trace jaeger build test test-rust test-e2e lint fmt clippy deny clean-test-dbs

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

up: ## run PostgreSQL, Jaeger and tenant-a + tenant-b (4 services each) locally; prints the URLs
	@scripts/up.sh

down: ## stop exactly what `make up` started
	@scripts/down.sh

db-up: ## start the local PostgreSQL (installs Debian's package when missing)
	@scripts/pg.sh start

db-down: ## stop the local PostgreSQL
	@scripts/pg.sh stop

trace: ## print one trace as a tree: make trace ID=<trace_id> [JAEGER=<query URL, e.g. the mesh's>]
	@scripts/trace.py "$(ID)" $(JAEGER)

jaeger: ## build Jaeger from its pinned Go module into .local/bin/jaeger
	@scripts/build-jaeger.sh

build: ## build every Rust binary (debug)
	cargo build --workspace --bins

test: test-rust test-contracts check-deploy test-tools test-rules test-observe test-kind-dry-run test-mesh test-observe-mesh fuzz-short soak-short ## every test: Rust unit/integration/e2e, schemathesis against every service, check-deploy and its negative tests, Prometheus rules and dashboards (static, and on live traffic through make up and the mesh), the kind dry run, the local mesh, short fuzz and soak runs

test-rust: db-up jaeger build clean-test-dbs ## Rust unit, integration (real PostgreSQL) and end-to-end tests
	JAEGER_BIN=$(CURDIR)/.local/bin/jaeger cargo test --workspace --no-fail-fast

clean-test-dbs: ## drop databases left by earlier test runs
	@psql "$(TEST_DATABASE_URL)" -tAc "SELECT datname FROM pg_database WHERE datname LIKE 'test\_%'" \
	  | while read -r db; do psql "$(TEST_DATABASE_URL)" -qc "DROP DATABASE IF EXISTS \"$$db\" WITH (FORCE)"; done

lint: fmt clippy deny lint-deploy ## formatting, clippy, cargo deny, go vet, shellcheck, hadolint, compose-spec check
	cd tools && go vet ./... && go vet -tags mesh ./internal/meshtest/

fmt:
	cargo fmt --all -- --check
	@test -z "$$(cd tools && gofmt -l .)" || { echo "gofmt:"; cd tools && gofmt -l .; exit 1; }

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

# The RustSec advisory database comes from github.com; where that is unreachable (the development
# machine) the advisories check is skipped with a message, and the three offline checks still run.
ADVISORY_DB := https://github.com/rustsec/advisory-db
deny: ## cargo deny: licences, duplicate versions and sources (offline), advisories when GitHub is reachable
	@command -v cargo-deny >/dev/null || cargo install --locked cargo-deny
	cargo deny check licenses bans sources
	@if timeout 15 git ls-remote $(ADVISORY_DB) HEAD >/dev/null 2>&1; then \
	  cargo deny check advisories; \
	else \
	  echo "cargo deny: advisories NOT checked: the RustSec advisory DB ($(ADVISORY_DB)) is unreachable"; \
	fi

include mk/deploy.mk mk/tools.mk mk/mesh.mk mk/mesh-demo.mk mk/fuzz.mk mk/soak.mk mk/observe.mk mk/contracts.mk $(wildcard mk/bench.mk)
