# ordermesh — every entry point. `make up` runs the platform locally, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:55432/postgres

.PHONY: help db-up db-down
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

db-up: ## start the local PostgreSQL (installs Debian's package when missing)
	@scripts/pg.sh start

db-down: ## stop the local PostgreSQL
	@scripts/pg.sh stop
