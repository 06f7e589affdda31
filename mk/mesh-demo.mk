# Demos and the benchmark on the local mesh (tools/internal/demo). Included by the Makefile.
# Each target brings the mesh up (or repairs it), runs, and leaves it up: `make mesh-down` ends.
#
#   make mesh-demo NAME=canary|circuit-breaker|retries|tenant-isolation|overload
#                      a bounded (≤ 1 min), narrated scenario with a per-second chart, ending
#                      with DESIGN.md's invariants checked in SQL on the mesh's databases
#   make bench-mesh    closed-loop capacity without and with the mesh; the same open-loop order
#                      load at half the meshed capacity without and with it (latency added, proxy
#                      CPU per order and per pass against a bare Envoy pass); 2× overload and
#                      recovery; RSS, config-push time; issue 19's goals with a verdict each
#                      (prints figures, asserts none)

BENCH_MESH_RATE     ?= 0
BENCH_MESH_DURATION ?= 20s
BENCH_MESH_WORKERS  ?= 8
BENCH_MESH_OVERLOAD ?= 60s

.PHONY: mesh-demo-bins mesh-demo bench-mesh

mesh-demo-bins: ## build what the demos drive: loadgen and check-invariants (release)
	cargo build --release -p loadgen -p ordermesh-e2e --bin loadgen --bin check-invariants

mesh-demo: mesh-up mesh-demo-bins ## a narrated scenario on the local mesh: make mesh-demo NAME=canary|circuit-breaker|retries|tenant-isolation|overload
	@test -n "$(NAME)" || { echo "mesh-demo: NAME=canary|circuit-breaker|retries|tenant-isolation|overload"; exit 2; }
	@$(MESH_BIN) demo -root $(CURDIR) -name $(NAME)

bench-mesh: mesh-up mesh-demo-bins ## capacity, cost at half capacity and 2x overload, with and without the mesh; issue 19 goal verdicts
	@$(MESH_BIN) bench -root $(CURDIR) -rate $(BENCH_MESH_RATE) -duration $(BENCH_MESH_DURATION) \
	  -workers $(BENCH_MESH_WORKERS) -overload $(BENCH_MESH_OVERLOAD)
