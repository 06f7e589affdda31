# Fuzzing: every parser of bytes from the network, with cargo-fuzz on the stable toolchain
# (`--sanitizer none`). Included by the Makefile.
#
#   make fuzz [FUZZ_SECONDS=600] [FUZZ_TARGETS='traceparent tenancy']   every (or the named) target
#   make fuzz-short                  each target for FUZZ_SHORT_SECONDS (part of `make test`)
#
# Targets and their properties: fuzz/fuzz_targets/*.rs; seed corpus: fuzz/corpus/<target>;
# discoveries and crashes: .local/fuzz/. cargo-fuzz is installed (cargo install --locked) when missing.

FUZZ_SECONDS       ?= 60
FUZZ_SHORT_SECONDS ?= 10
FUZZ_TARGETS       ?=

.PHONY: fuzz fuzz-short

fuzz: ## run every fuzz target for FUZZ_SECONDS each; prints executions and crashes per target
	@scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-short: ## every fuzz target for FUZZ_SHORT_SECONDS (what `make test` runs)
	@scripts/fuzz.sh $(FUZZ_SHORT_SECONDS)
