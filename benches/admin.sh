#!/usr/bin/env bash
# Admin page bars (issue 16): page times with a long history, and live-log followers' cost to a run.
# See benches/admin.py for what is measured. QUICK=1: smoke sizes. REWIND=path skips the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${REWIND:-}" ]; then cargo build --release --quiet; REWIND=$PWD/target/release/rewind; fi
args=()
[ "${QUICK:-0}" = 1 ] && args+=(--quick)
exec python3 benches/admin.py "$REWIND" "${args[@]}"
