# The soak: the saga under injected faults, measured (tests/src/bin/soak.rs). Included by the
# Makefile.
#
#   make soak [SOAK_ORDERS=10000] [SOAK_RATE=60] [SOAK_SEED=1]   the full run; prints its table
#   make soak-short                                             ~500 orders, every fault kind once (in `make test`)
#
# It runs its own PostgreSQL cluster (Debian's binaries, as the postgres user, data in
# .local/soak/pg, port SOAK_PG_PORT) because it crashes it; never the shared one. The services
# are the release binaries on free loopback ports. A seed reproduces a run's choices and its
# fault schedule (printed at the start).

SOAK_ORDERS       ?= 10000
SOAK_RATE         ?= 60
SOAK_SEED         ?= 1
SOAK_PG_PORT      ?= 56432
SOAK_SHORT_ORDERS ?= 500
SOAK_SHORT_RATE   ?= 10

# Debian's PostgreSQL binaries (installed from its packages when missing), evaluated when used.
SOAK_PG_BIN        = $(shell find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)

soak_run = @test -n "$(SOAK_PG_BIN)" || { echo "installing PostgreSQL from Debian's packages" >&2; \
	DEBIAN_FRONTEND=noninteractive apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; }; \
	cargo build --release --workspace --bins && \
	TEST_DATABASE_URL=postgres://postgres@127.0.0.1:$(SOAK_PG_PORT)/postgres \
	ORDERMESH_BIN_DIR=$(CURDIR)/target/release \
	target/release/soak --pg-port $(SOAK_PG_PORT) --pg-bin "$(SOAK_PG_BIN)" --seed $(SOAK_SEED)

.PHONY: soak soak-short

soak: ## 10,000 orders over two tenants under every fault kind; 0 invariant violations or it fails
	$(soak_run) --orders $(SOAK_ORDERS) --rate $(SOAK_RATE)

soak-short: ## the soak, short: SOAK_SHORT_ORDERS orders, every fault kind at least once (in `make test`)
	$(soak_run) --orders $(SOAK_SHORT_ORDERS) --rate $(SOAK_SHORT_RATE)
