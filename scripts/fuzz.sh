#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for FUZZ_SECONDS each (cargo-fuzz, libFuzzer, stable toolchain
# with `--sanitizer none`) and prints executions and crashes per target; exits non-zero on any
# crash. The seed corpus in fuzz/corpus/<target> is read, never written: what a run discovers
# goes to .local/fuzz/corpus/<target> (kept between runs), crashes to .local/fuzz/artifacts/.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-${FUZZ_SECONDS:-60}}
shift || true
CARGO_FUZZ_VERSION=0.13.2

# Read whole, then matched: piping into an early-exiting grep fails under pipefail (SIGPIPE).
if [[ "$(cargo fuzz --version 2>/dev/null || true)" != *"$CARGO_FUZZ_VERSION"* ]]; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi

# One build for every target (they share their dependencies).
(cd fuzz && cargo fuzz build -s none >&2)

printf '%-16s %14s %8s %8s\n' target executions exec/s crashes
total=0 failed=0
for target in "${targets[@]}"; do
  work=$root/.local/fuzz/corpus/$target artifacts=$root/.local/fuzz/artifacts/$target
  log=$root/.local/fuzz/$target.log
  mkdir -p "$work" "$artifacts"
  status=0
  (cd fuzz && cargo fuzz run -s none "$target" "$work" "$root/fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$artifacts/") >"$log" 2>&1 || status=$?
  runs=$(grep -oE 'stat::number_of_executed_units: +[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1 || true)
  rate=$(grep -oE 'stat::average_exec_per_sec: +[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1 || true)
  crashes=0
  if [ "$status" -ne 0 ]; then
    crashes=1 failed=1
    echo "--- $target failed (exit $status); its log: $log" >&2
    grep -E 'panicked|ERROR|SUMMARY|artifact' "$log" | head -20 >&2 || true
  fi
  total=$((total + ${runs:-0}))
  printf '%-16s %14s %8s %8s\n' "$target" "${runs:-?}" "${rate:-?}" "$crashes"
done
printf '%-16s %14s\n' total "$total"
exit "$failed"
