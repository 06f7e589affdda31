# Benchmarks: they print figures; nothing here asserts a timing. Included by the Makefile.
# Targets: bench loadgen bench-orders bench-platform
#
#   make bench            the order's cost against the database's ceiling, in one run: pgbench -N,
#                         closed-loop maximum and open loop at half of it at 10% and 100% tracing,
#                         CPU per order per process, transactions/statements per order, RSS, start-up
#                         time; one table, plus JSON and an SVG chart in .local/bench/ (≈ 4 min)
#   make bench-orders     end-to-end order saga on the local platform (`make up`): seeds stock,
#                         then a closed-loop and an open-loop run of loadgen against tenant-a
#   make bench-platform   criterion micro-benchmarks of the per-request hot paths (trace-context, platform)
#
# Override any BENCH_* on the command line, e.g.
#   make bench-orders BENCH_CONCURRENCY=32 BENCH_DURATION=30s BENCH_RATE=150
#   make bench-orders LOADGEN_ARGS='--decline-ratio 0.1 --json'
# Runs are bounded (loadgen refuses more than 10 minutes) and target loopback addresses only.

BENCH_PROFILE       ?= release
BENCH_TENANT        ?= tenant-a
BENCH_ORDER_URL     ?= http://127.0.0.1:8081
BENCH_INVENTORY_URL ?= http://127.0.0.1:8083
# Dedicated SKUs, so benchmarks never use up the demo stock `make up` seeds (SKU-001..005).
BENCH_SKUS          ?= BENCH-001,BENCH-002,BENCH-003,BENCH-004,BENCH-005,BENCH-006,BENCH-007,BENCH-008
BENCH_STOCK         ?= 1000000
BENCH_WARMUP        ?= 2s
BENCH_CONCURRENCY   ?= 16
BENCH_DURATION      ?= 20s
BENCH_RATE          ?= 100
BENCH_RATE_DURATION ?= 20s
LOADGEN_ARGS        ?=
BENCH_PLATFORM_ARGS ?=

LOADGEN          := target/release/loadgen
bench_comma      := ,
bench_sku_list   := $(subst $(bench_comma), ,$(BENCH_SKUS))
bench_target     := --target $(BENCH_TENANT)=$(BENCH_ORDER_URL)
bench_order_args := $(bench_target) --skus $(BENCH_SKUS) --warmup $(BENCH_WARMUP) $(LOADGEN_ARGS)

BENCH_SECONDS       ?= 15

.PHONY: bench loadgen bench-orders bench-platform bench-seed

bench: loadgen ## what an order costs against pgbench in the same run: table + .local/bench/latest.{json,svg}
	scripts/bench.py --seconds $(BENCH_SECONDS)

loadgen: ## build the load generator: target/release/loadgen (see target/release/loadgen --help)
	cargo build --release -p loadgen

bench-seed: loadgen
	$(LOADGEN) --seed-only $(bench_target) \
	  --inventory $(BENCH_TENANT)=$(BENCH_INVENTORY_URL) \
	  $(foreach sku,$(bench_sku_list),--seed-stock $(sku)=$(BENCH_STOCK))

bench-orders: loadgen ## end-to-end saga throughput/latency on `make up`: closed loop, then open loop
	PROFILE=$(BENCH_PROFILE) $(MAKE) --no-print-directory up
	@# `make up` leaves running services alone: say which build is being measured.
	@for pidfile in .local/run/$(BENCH_TENANT)-*.pid; do \
	  [ -e "$$pidfile" ] || continue; \
	  exe=$$(readlink "/proc/$$(cat "$$pidfile")/exe" 2>/dev/null) || continue; \
	  echo "under test: $$exe"; \
	  case "$$exe" in */target/$(BENCH_PROFILE)/*) ;; \
	    *) echo "note: not a $(BENCH_PROFILE) build; 'make down' first to measure $(BENCH_PROFILE) binaries";; esac; \
	done
	@$(MAKE) --no-print-directory bench-seed
	@echo
	@echo "==> closed loop: $(BENCH_CONCURRENCY) workers, $(BENCH_DURATION) after $(BENCH_WARMUP) warm-up ($$(nproc) cores, shared with the services)"
	$(LOADGEN) $(bench_order_args) --concurrency $(BENCH_CONCURRENCY) --duration $(BENCH_DURATION)
	@echo
	@echo "==> open loop: $(BENCH_RATE) orders/s, $(BENCH_RATE_DURATION) after $(BENCH_WARMUP) warm-up (latency from each order's intended start)"
	$(LOADGEN) $(bench_order_args) --rate $(BENCH_RATE) --duration $(BENCH_RATE_DURATION)

bench-platform: ## criterion micro-benchmarks: trace propagation, tenant check, problem+json (< 2 min)
	cargo bench -p trace-context --bench propagation -- $(BENCH_PLATFORM_ARGS)
	cargo bench -p platform --bench hot_paths -- $(BENCH_PLATFORM_ARGS)
