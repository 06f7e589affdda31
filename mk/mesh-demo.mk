# Demos and the benchmark on the local mesh (tools/internal/demo). Included by the Makefile.
# Each target brings the mesh up (or repairs it), runs, and leaves it up: `make mesh-down` ends.
#
#   make mesh-demo NAME=canary|circuit-breaker|retries|tenant-isolation
#                      a bounded (≤ 1 min), narrated scenario with a per-second chart, ending
#                      with DESIGN.md's invariants checked in SQL on the mesh's databases
#   make bench-mesh    the same open-loop order load without and with the mesh; latency added,
#                      proxy CPU per request, RSS, config-push time (prints figures, asserts none)

BENCH_MESH_RATE     ?= 20
BENCH_MESH_DURATION ?= 20s

.PHONY: mesh-demo-bins mesh-demo bench-mesh

mesh-demo-bins: ## build what the demos drive: loadgen and check-invariants (release)
	cargo build --release -p loadgen -p ordermesh-e2e --bin loadgen --bin check-invariants

mesh-demo: mesh-up mesh-demo-bins ## a narrated scenario on the local mesh: make mesh-demo NAME=canary|circuit-breaker|retries|tenant-isolation
	@test -n "$(NAME)" || { echo "mesh-demo: NAME=canary|circuit-breaker|retries|tenant-isolation"; exit 2; }
	@$(MESH_BIN) demo -root $(CURDIR) -name $(NAME)

bench-mesh: mesh-up mesh-demo-bins ## the same order load with and without the mesh: latency added, proxy CPU/RSS, push time
	@$(MESH_BIN) bench -root $(CURDIR) -rate $(BENCH_MESH_RATE) -duration $(BENCH_MESH_DURATION)
