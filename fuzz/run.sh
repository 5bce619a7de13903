#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for RUNS executions each (default 1,000,000) and prints one
# line per target: executions, time, corpus size, and whether it found a crash. Long mode, outside CI;
# CI runs the property-test versions of the same checks (tests/props.rs).
#
#   fuzz/run.sh                    # all targets, 10^6 executions each
#   RUNS=20000 fuzz/run.sh tar_extract
#
# Needs cargo-fuzz (installed when missing). It runs on the stable toolchain with RUSTC_BOOTSTRAP=1 (the
# sanitizer flags cargo fuzz passes are nightly-only); new corpus entries are kept under fuzz/corpus/,
# crashes under fuzz/artifacts/. Leak detection is off: the harness keeps one Lua state for the whole run on
# purpose (a growing leak still trips -rss_limit_mb).
set -euo pipefail
cd "$(dirname "$0")"
RUNS=${RUNS:-1000000}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode_json decode_yaml decode_msgpack params tar_extract manifest)
cargo fuzz build -O 2>&1 | grep -E "^(error|warning: unused)" -A5 || true
status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  start=$(date +%s)
  log=$(mktemp)
  if cargo fuzz run -O "$t" "corpus/$t" -- -runs="$RUNS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -detect_leaks=0 \
      -print_final_stats=1 >"$log" 2>&1; then found=no; else found=YES; status=1; fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  echo "$t: $execs executions in $(( $(date +%s) - start )) s, corpus $(ls "corpus/$t" | wc -l) inputs, crash found: $found"
  [ "$found" = no ] || tail -40 "$log"
  rm -f "$log"
done
exit $status
