# The documents are the truth: schemathesis checks each service's OpenAPI document against the
# service itself (issue 20). Included by the Makefile.
#
#   make test-contracts [CONTRACTS_SEED=1]   tenant-a and tenant-b × the four services, every
#                                            check and phase; fails on any finding (in `make test`)
#
# tests/src/bin/contracts.rs starts its own services (free loopback ports, fresh databases on the
# local PostgreSQL at TEST_DATABASE_URL) and stops them when it ends, passed, failed or
# interrupted; tests/contracts/ holds schemathesis' configuration and hooks. schemathesis comes
# from PyPI, pinned, into a venv of its own under .local/ (made once, again when this file
# changes). Reports: .local/contracts/logs/<tenant>-<service>.log.

CONTRACTS_DIR         := .local/contracts
CONTRACTS_VENV        := $(CONTRACTS_DIR)/venv
SCHEMATHESIS_PIN      := schemathesis==4.32.5
CONTRACTS_SEED        ?= 1

.PHONY: contracts-deps test-contracts

contracts-deps: $(CONTRACTS_VENV)/.installed ## install schemathesis (pinned, PyPI) into .local/contracts/venv
$(CONTRACTS_VENV)/.installed: mk/contracts.mk
	@test -x $(CONTRACTS_VENV)/bin/python || python3 -m venv $(CONTRACTS_VENV)
	$(CONTRACTS_VENV)/bin/pip install --quiet --disable-pip-version-check "$(SCHEMATHESIS_PIN)"
	@touch $@

test-contracts: db-up contracts-deps ## schemathesis against all eight services (2 tenants × 4), every check, stateful included
	cargo build --bins -p order-service -p payment-service -p inventory-service -p notify-service -p ordermesh-e2e
	ORDERMESH_BIN_DIR=$(CURDIR)/target/debug target/debug/contracts \
	  --schemathesis $(CURDIR)/$(CONTRACTS_VENV)/bin/schemathesis \
	  --config $(CURDIR)/tests/contracts/schemathesis.toml \
	  --logs $(CURDIR)/$(CONTRACTS_DIR)/logs --seed $(CONTRACTS_SEED)
