#!/usr/bin/env bash
# A/B of rewind builds on one full backup: each binary backs up the same tree (full=true) into a fresh local
# store, plain and encrypted to an X25519 recipient, ROUNDS times, interleaved (the order of plain and age
# flips from round to round and binary to binary), printing wall, CPU (user + system) and peak RSS of each.
# For comparing two builds on a noisy disk, where runs minutes apart differ by more than the change does.
# Each backup starts SETTLE seconds (default 3) after a sync, as in benches/incremental.sh. BENCH_TMP=/dev/shm
# puts the stores in memory, which takes the disk out of the comparison (CPU-bound changes).
#   benches/backup_ab.sh TREE ROUNDS BINARY [BINARY...]
#   e.g. python3 benches/incremental.py gen /tmp/tree $((1<<30)) 10000
#        benches/backup_ab.sh /tmp/tree 3 /tmp/rewind-before target/release/rewind
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 TREE ROUNDS BINARY [BINARY...]" >&2; exit 2; }
TREE=$(realpath "$1"); ROUNDS=$2; shift 2
[ -d "$TREE" ] || { echo "$TREE: not a directory" >&2; exit 2; }
command -v /usr/bin/time >/dev/null || { echo "/usr/bin/time is missing: apt-get install time" >&2; exit 1; }
W=$(mktemp -d "${BENCH_TMP:-/tmp}/rewind-bench-ab.XXXXXX")
trap 'rm -rf "$W"' EXIT
export REWIND_PATH= RUST_LOG=warn REWIND_CONFIG=
PUB=$("$1" key new "$W/key.txt" 2>/dev/null)
printf '%-5s %-24s %-5s %8s %8s %8s\n' round binary mode wall cpu rss
for r in $(seq 1 "$ROUNDS"); do
  n=0
  for bin in "$@"; do
    n=$((n + 1))
    modes="plain age"; [ $(( (r + n) % 2 )) = 0 ] && modes="age plain"
    for m in $modes; do
      rm -rf "$W/store"; mkdir -p "$W/store"; sync; sleep "${SETTLE:-3}"
      extra=(); [ "$m" = age ] && extra=(encrypt="$PUB" identity="$W/key.txt")
      t0=$(date +%s.%N)
      /usr/bin/time -f '%U %S %M' -o "$W/t" "$bin" run -q --json backup-dir from="$TREE" store="$W/store" full=true \
        "${extra[@]}" > "$W/out"
      t1=$(date +%s.%N)
      read -r u s rss < "$W/t"
      printf '%-5s %-24s %-5s %7.2fs %7.2fs %5dMiB\n' "$r" "$bin" "$m" "$(echo "$t1 - $t0" | bc)" "$(echo "$u + $s" | bc)" $((rss / 1024))
    done
  done
done
