#!/usr/bin/env bash
# Treasure Data parent segments (issue 6): backup and restore of a parent segment with SEGMENTS segments in
# FOLDERS folders against the fake TD server (tests/fakes/td_server.py) with LATENCY_MS added per request.
# The reference is the source workflow's way of working, one request at a time (rewind with concurrency=1);
# rewind runs with CONCURRENCY (default 16). Prints wall times, peak memory and the ratio.
#   benches/td.sh            2,000 segments in 200 folders, 20 ms latency (the bar: backup < 10 s, restore < 30 s)
#   QUICK=1 benches/td.sh    smoke: 200 segments in 20 folders
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BENCH_BIN:-target/release/rewind}
[ -x "$BIN" ] || { cargo build --release --quiet; }
if [ "${QUICK:-0}" = 1 ]; then FOLDERS=${FOLDERS:-20}; SEGMENTS=${SEGMENTS:-200}; else FOLDERS=${FOLDERS:-200}; SEGMENTS=${SEGMENTS:-2000}; fi
LATENCY_MS=${LATENCY_MS:-20}
CONCURRENCY=${CONCURRENCY:-16}
REF=${REF:-1}   # 0 skips the sequential reference runs
export TD_API_KEY="1/0123456789abcdef0123456789abcdef01234567"
work=$(mktemp -d); fake_pid=
cleanup() { [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

python3 tests/fakes/td_server.py --apikey "$TD_API_KEY" --latency-ms "$LATENCY_MS" \
  --seed "bench:$FOLDERS:$SEGMENTS" > "$work/fake.out" &
fake_pid=$!
for _ in $(seq 50); do [ -s "$work/fake.out" ] && break; sleep 0.1; done
port=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["port"])' "$work/fake.out")
ms=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["seed"]["audience_id"])' "$work/fake.out")
ep="endpoint=http://127.0.0.1:$port"

# run LABEL CMD...: wall seconds and peak RSS (MB) of one command
run() {
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" > "$work/$label.out" 2> "$work/$label.err" \
    || { echo "$label failed:"; tail -5 "$work/$label.err"; exit 1; }
  read -r secs kb < "$work/time"
  printf '%-28s %8.2f s %8.1f MB\n' "$label" "$secs" "$(echo "$kb/1024" | bc -l)"
  echo "$secs" > "$work/$label.secs"
}

echo "parent segment with $SEGMENTS segments in $FOLDERS folders, ${LATENCY_MS} ms per request, concurrency $CONCURRENCY"
run backup "$BIN" run td-ps-backup "src_ms_id=$ms" "$ep" "store=$work/store" "concurrency=$CONCURRENCY" --json
run restore "$BIN" run td-ps-restore "src_ms_id=$ms" "$ep" "store=$work/store" ms_name=bench_restored \
  poll=0.1s "concurrency=$CONCURRENCY" --json
created=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["created"])' "$work/restore.out")
[ "$created" = "$SEGMENTS" ] || { echo "restore created $created segments, expected $SEGMENTS"; exit 1; }
if [ "$REF" = 1 ]; then
  run backup_sequential "$BIN" run td-ps-backup "src_ms_id=$ms" "$ep" "store=$work/store2" concurrency=1 --json
  run restore_sequential "$BIN" run td-ps-restore "src_ms_id=$ms" "$ep" "store=$work/store2" ms_name=bench_seq \
    poll=0.1s concurrency=1 --json
  for what in backup restore; do
    printf '%s: %.1fx faster than one request at a time\n' "$what" \
      "$(echo "$(cat "$work/${what}_sequential.secs") / $(cat "$work/$what.secs")" | bc -l)"
  done
fi
