#!/usr/bin/env bash
# Incremental snapshots benchmark (issue 19): backup-dir and restore-dir against restic on the same tree, in the
# same run, one after the other (rewind first, then restic, `sync` before each); prints ratios and a table of
# every bar with PASS/FAIL.
#   benches/incremental.sh                   1 GiB in 10,000 files (SIZE, FILES to change)
#   benches/incremental.sh --quick           20 MiB in 500 files, every step (smoke; also QUICK=1)
# The fixture (benches/incremental.py gen) is deterministic and incompressible: AES-CTR bytes under a fixed key,
# sizes from a fixed seed (~10% tiny, ~88% about 100 KiB, ~2% 256 KiB-4 MiB), nested directories. Both tools
# back up the same local tree into a local directory (rewind's store=DIR, a restic repository made by
# `restic init`, RESTIC_PASSWORD set); "bytes added" is the growth of the regular files' sizes in that
# directory (what `du -sb` counts, without the directories themselves).
#   1. first backup, four rounds into a fresh store and repository each (rewind first, restic first, restic
#      first, rewind first): median wall (process), ratio rewind/restic, largest peak RSS (/usr/bin/time -f %M).
#      Bars: wall <= 0.5x restic's, peak RSS < 150 MB.
#   2. second backup, nothing changed: bytes added, wall against the first and against restic's second.
#      Bars: < 1% of the first backup's bytes, wall <= 0.1x the first and <= 1.0x restic's second.
#   3. 1% of the files rewritten with new bytes (same sizes), both back up again: bytes added / changed bytes.
#      Bar: <= 1.2x.
#   4. restore of one 10 KiB file from the newest snapshot (`restore-dir path=`), twice: a file unchanged since
#      the first backup (its bytes lie in the first snapshot's archive) and one changed in step 3; beside each
#      `restic restore latest --include FILE`. The restored bytes are compared with the source (cmp).
#      Bars: wall < 0.5 s, stored_bytes_read (from restore-dir's --json result) < 1% of the store's size.
#      Then the newest snapshot restored whole by both (timed, no bar); rewind's copy must equal the tree
#      (diff -r).
#   5. encryption: the same full backup (full=true) of the tree into a fresh store, plain and encrypted to an
#      X25519 recipient (encrypt=PUBLIC identity=KEY, key made by `rewind key new`), six rounds in
#      order plain-age, age-plain, age-plain, plain-age, plain-age, age-plain; the median of each kind
#      counts (the CPU is reported too). Then the encrypted snapshot restored whole beside the plain one
#      (diff -r against the tree; timed, no bar), and four more pairs into stores in memory (/dev/shm),
#      reported without a bar: the cost of encryption without the disk. Bar: encrypted wall <= 1.15x plain.
# restic is Debian's package (0.14 on bookworm): installed with apt-get when missing (needs root), as is GNU
# time. Env: REWIND=binary (default target/release/rewind, built when missing), SIZE (bytes, or 1G, 20M:
# powers of 1024), FILES, KEEP=1 (keep the work directory), SETTLE (seconds after each sync, default 3; 0
# with --quick). Exits non-zero when a rewind step fails or a restore differs from the source, not on a
# missed bar: the table says PASS or FAIL for each.
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=${QUICK:-0}
for a in "$@"; do
  case $a in
    --quick) QUICK=1 ;;
    *) echo "usage: [QUICK=1] [SIZE=1G] [FILES=10000] [REWIND=binary] $0 [--quick]" >&2; exit 2 ;;
  esac
done
if [ "$QUICK" = 1 ]; then SIZE=${SIZE:-20M}; FILES=${FILES:-500}; else SIZE=${SIZE:-1G}; FILES=${FILES:-10000}; fi
# Seconds to let the disk settle after the sync before each timed command: `sync` returns once the data left
# the page cache, but a virtual disk keeps flushing the previous command's gigabyte for a few seconds after,
# and whatever runs next would pay for it (1 GiB backups took 2.1-3.5 s right after one, 1.97-2.06 s
# three seconds later).
if [ "$QUICK" = 1 ]; then SETTLE=${SETTLE:-0}; else SETTLE=${SETTLE:-3}; fi
SIZE_BYTES=$(numfmt --from=iec "$SIZE")
B=benches
REWIND=${REWIND:-target/release/rewind}
[ -x "$REWIND" ] || cargo build --release --quiet
REWIND=$(realpath "$REWIND")
export REWIND_PATH= RUST_LOG=warn

need_pkg() {  # need_pkg COMMAND PACKAGE: installs Debian's PACKAGE when COMMAND is missing
  [ -x "$1" ] || command -v "$1" >/dev/null 2>&1 && return
  [ "$(id -u)" = 0 ] || { echo "$1 is missing: apt-get install $2 (as root)"; exit 1; }
  echo "installing $2 (apt-get)"
  apt-get install -y -qq "$2" >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq "$2" >/dev/null; }
}
need_pkg restic restic
need_pkg /usr/bin/time time
command -v openssl >/dev/null || need_pkg openssl openssl

WORK=$(mktemp -d /tmp/rewind-bench-incremental.XXXXXX)
MEM=/dev/shm/rewind-bench-incremental.$$  # step 5's stores in memory
cleanup() { rm -rf "$MEM"; if [ "${KEEP:-0}" = 1 ]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
TREE=$WORK/tree STORE=$WORK/store REPO=$WORK/restic
PREFIX=dirs/tree
export RESTIC_PASSWORD=rewind-bench RESTIC_CACHE_DIR=$WORK/restic-cache
RES=$WORK/results
: > "$RES"
: > "$WORK/commands"
put() { echo "$1=$2" >> "$RES"; }
fail() { echo "FAILED: $1"; [ -n "${2:-}" ] && [ -f "$2" ] && tail -20 "$2"; exit 1; }
size() { python3 $B/incremental.py size "$1"; }
get() { python3 $B/incremental.py get "$WORK/$1.out" "$2"; }
now() { date +%s.%N; }

# step NAME CMD...: runs CMD after a `sync` and SETTLE seconds (stdout to NAME.out, stderr to NAME.err) under /usr/bin/time;
# records NAME_wall (s), NAME_rss_kib, NAME_cpu (user + system, s) and the command. Any failure ends the bench.
step() {
  local name=$1; shift
  local t0 t1
  printf '%-8s %s\n' "$name" "$(printf '%q ' "$@" | sed "s|$WORK|\$WORK|g")" >> "$WORK/commands"
  sync
  sleep "$SETTLE"
  t0=$(now)
  /usr/bin/time -f '%M %U %S' -o "$WORK/$name.rss" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" ||
    fail "step $name: $*" "$WORK/$name.err"
  t1=$(now)
  put "${name}_wall" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')"
  read -r rss u s < <(tail -1 "$WORK/$name.rss")
  put "${name}_rss_kib" "$rss"
  put "${name}_cpu" "$(awk -v u="$u" -v s="$s" 'BEGIN {printf "%.2f", u + s}')"
}
wall() { grep "^$1_wall=" "$RES" | cut -d= -f2; }
cpu() { grep "^$1_cpu=" "$RES" | cut -d= -f2; }
# added NAME DIR BEFORE: records NAME_added, the growth of DIR since BEFORE bytes.
added() { put "$1_added" $(( $(size "$2") - $3 )); }

CMDLINE="SIZE=$SIZE FILES=$FILES SETTLE=$SETTLE REWIND=$REWIND benches/incremental.sh"
[ "$QUICK" = 1 ] && CMDLINE="QUICK=1 $CMDLINE"
echo "command: $CMDLINE"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rewind: $REWIND ($("$REWIND" --version 2>/dev/null || echo '?')); $(restic version | cut -d' ' -f1-2); work: $WORK"

# --- fixture -----------------------------------------------------------------------------------------------
t0=$(now)
python3 $B/incremental.py gen "$TREE" "$SIZE_BYTES" "$FILES" > "$WORK/fixture.json"
read -r NFILES TREE_BYTES KEEP_REL EDIT_REL < <(python3 -c "import json; f = json.load(open('$WORK/fixture.json')); print(f['files'], f['bytes'], f['keep'], f['edit'])")
put tree_bytes "$TREE_BYTES"
put quick "$QUICK"
echo "fixture: $(python3 -c "
import json; f = json.load(open('$WORK/fixture.json'))
print('%d files in %d directories, %d bytes (%.1f MiB); median %.1f KiB, %d of <= 4 KiB, %d of >= 256 KiB, largest %.1f MiB'
      % (f['files'], f['dirs'], f['bytes'], f['bytes'] / 2**20, f['median'] / 1024, f['tiny'], f['large'], f['max'] / 2**20))"), made in $(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}')s"
restic_init() { restic -r "$REPO" init >/dev/null 2>"$WORK/init.err" || fail "restic init" "$WORK/init.err"; }
restic_init
echo "restic repository: format version $(restic -r "$REPO" cat config 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')" \
  "(2 compresses with zstd; the fixture does not compress)"

# --- 1. first backup ---------------------------------------------------------------------------------------
# Four rounds into a fresh store and repository each, each tool first in two of them (what runs second
# meets the disk still busy with the first's gigabyte); the medians count (the wall of a 1 GiB write to
# one disk varies by +-20% from run to run), peak RSS is the largest. Steps 2-4 build on the last round's
# store and repository.
echo "== 1. first backup (four rounds)"
rewind1() { rm -rf "$STORE"; mkdir -p "$STORE"; step "rw1r$1" "$REWIND" run -q --json backup-dir from="$TREE" store="$STORE"; added "rw1r$1" "$STORE" 0; }
restic1() { rm -rf "$REPO"; restic_init; step "rs1r$1" restic -r "$REPO" backup "$TREE"; added "rs1r$1" "$REPO" 0; }
for i in 1 2 3 4; do
  if [ "$i" = 2 ] || [ "$i" = 3 ]; then restic1 $i; rewind1 $i; else rewind1 $i; restic1 $i; fi
  echo "round $i: rewind $(wall "rw1r$i")s (CPU $(cpu "rw1r$i")s), restic $(wall "rs1r$i")s (CPU $(cpu "rs1r$i")s)"
done
# median NAME KEY: the median of NAME{1,2,3,4}_KEY (the mean of the middle two); largest NAME KEY: the largest.
median() {
  for i in 1 2 3 4; do grep "^$1$i""_$2=" "$RES" | cut -d= -f2; done | sort -g | sed -n 2,3p |
    awk '{s += $1} END {printf "%.3f", s / 2}'
}
largest() { for i in 1 2 3 4; do grep "^$1$i""_$2=" "$RES" | cut -d= -f2; done | sort -g | tail -1; }
for t in rw1 rs1; do
  put "${t}_wall" "$(median "${t}r" wall)"; put "${t}_cpu" "$(median "${t}r" cpu)"
  put "${t}_rss_kib" "$(largest "${t}r" rss_kib)"; put "${t}_added" "$(grep "^${t}r4_added=" "$RES" | cut -d= -f2)"
done
cp "$WORK/rw1r4.out" "$WORK/rw1.out"
echo "medians: rewind $(wall rw1)s (CPU $(cpu rw1)s, peak RSS $(( $(largest rw1r rss_kib) / 1024 )) MiB, $(get rw1 files) files, chain $(get rw1 chain)), restic $(wall rs1)s (CPU $(cpu rs1)s)"

# --- 2. second backup, nothing changed ---------------------------------------------------------------------
echo "== 2. second backup, nothing changed"
before=$(size "$STORE"); step rw2 "$REWIND" run -q --json backup-dir from="$TREE" store="$STORE"; added rw2 "$STORE" "$before"
before=$(size "$REPO"); step rs2 restic -r "$REPO" backup "$TREE"; added rs2 "$REPO" "$before"
echo "rewind $(wall rw2)s (files_unchanged $(get rw2 files_unchanged), files_new $(get rw2 files_new), bytes_in $(get rw2 bytes_in), parent $(get rw2 parent)), restic $(wall rs2)s"
[ "$(get rw2 files_new)" = 0 ] || echo "note: rewind's second backup stored $(get rw2 files_new) files again"

# --- 3. 1% of the files changed ----------------------------------------------------------------------------
echo "== 3. 1% of the files rewritten"
python3 $B/incremental.py change "$TREE" 0.01 > "$WORK/change.json"
read -r CH_FILES CH_BYTES < <(python3 -c "import json; c = json.load(open('$WORK/change.json')); print(c['files'], c['bytes'])")
put changed_files "$CH_FILES"; put changed_bytes "$CH_BYTES"
before=$(size "$STORE"); step rw3 "$REWIND" run -q --json backup-dir from="$TREE" store="$STORE"; added rw3 "$STORE" "$before"
before=$(size "$REPO"); step rs3 restic -r "$REPO" backup "$TREE"; added rs3 "$REPO" "$before"
echo "$CH_FILES files ($CH_BYTES bytes) changed; rewind $(wall rw3)s (files_new $(get rw3 files_new), bytes_new $(get rw3 bytes_new), bytes_out $(get rw3 bytes_out)), restic $(wall rs3)s"
[ "$(get rw3 files_new)" = "$CH_FILES" ] || echo "note: rewind stored $(get rw3 files_new) files, $CH_FILES changed"
STORE_BYTES=$(size "$STORE")
put store_bytes "$STORE_BYTES"

# --- 4. restores from the newest snapshot ------------------------------------------------------------------
echo "== 4. restores from the newest snapshot"
for tag in keep edit; do
  if [ "$tag" = keep ]; then rel=$KEEP_REL; else rel=$EDIT_REL; fi
  step "rw4$tag" "$REWIND" run -q --json restore-dir prefix="$PREFIX" store="$STORE" to="$WORK/out-$tag" path="$rel"
  cmp "$TREE/$rel" "$WORK/out-$tag/$rel" || fail "restore-dir path=$rel: the restored file differs from the source"
  n=$(find "$WORK/out-$tag" -type f | wc -l)
  [ "$n" = 1 ] || fail "restore-dir path=$rel restored $n files, not 1"
  put "rw4${tag}_stored" "$(get "rw4$tag" stored_bytes_read)"
  put "rw4${tag}_ranges" "$(get "rw4$tag" ranges_read)"
  step "rs4$tag" restic -r "$REPO" restore latest --target "$WORK/rs-out-$tag" --include "$TREE/$rel"
  cmp -s "$TREE/$rel" "$WORK/rs-out-$tag/$TREE/$rel" || echo "note: restic's restore of $rel differs from the source"
  echo "$rel: rewind $(wall "rw4$tag")s (stored_bytes_read $(get "rw4$tag" stored_bytes_read), ranges_read $(get "rw4$tag" ranges_read)), restic $(wall "rs4$tag")s; restored bytes equal the source"
done
step rw4full "$REWIND" run -q --json restore-dir prefix="$PREFIX" store="$STORE" to="$WORK/out-full"
diff -r --no-dereference "$TREE" "$WORK/out-full" >"$WORK/diff.txt" 2>&1 ||
  fail "restore-dir of the newest snapshot differs from the tree" "$WORK/diff.txt"
rm -rf "$WORK/out-full"
step rs4full restic -r "$REPO" restore latest --target "$WORK/rs-out-full"
rm -rf "$WORK/rs-out-full"
echo "whole newest snapshot: rewind $(wall rw4full)s (equal to the tree: diff -r), restic $(wall rs4full)s"

# --- 5. encryption -----------------------------------------------------------------------------------------
echo "== 5. encryption (age, X25519), full backups into fresh stores"
PUB=$("$REWIND" key new "$WORK/key.txt" 2>/dev/null)
# backup5 KIND NAME STORE: the full backup of the tree into STORE (emptied first), plain or age.
backup5() {
  local extra=(); [ "$1" = age ] && extra=(encrypt="$PUB" identity="$WORK/key.txt")
  rm -rf "$3"; mkdir -p "$3"
  step "$2" "$REWIND" run -q --json backup-dir from="$TREE" store="$3" full=true "${extra[@]}"
}
# pair5 NAME I PLAIN AGE: round I's two backups, named NAME{plain,age}I; each kind first in half the rounds
# (ABBA repeated).
pair5() {
  case $(($2 % 4)) in
    2 | 3) backup5 age "$1age$2" "$4"; backup5 plain "$1plain$2" "$3" ;;
    *) backup5 plain "$1plain$2" "$3"; backup5 age "$1age$2" "$4" ;;
  esac
}
# Six rounds (two with --quick), each kind first in half of them (ABBAAB); the medians count. Each round is
# a pair run back to back, so a minute when the disk is slow slows both kinds.
if [ "$QUICK" = 1 ]; then R5=2; else R5=6; fi
put rounds5 "$R5"
for i in $(seq 1 "$R5"); do
  rm -rf "$WORK/plain" "$WORK/sealed"
  pair5 rw5 "$i" "$WORK/plain" "$WORK/sealed"
  echo "round $i: plain $(wall "rw5plain$i")s (CPU $(cpu "rw5plain$i")s), age $(wall "rw5age$i")s (CPU $(cpu "rw5age$i")s)"
done
put plain_bytes "$(size "$WORK/plain")"; put sealed_bytes "$(size "$WORK/sealed")"
if grep -rqa -- "$KEEP_REL" "$WORK/sealed"; then fail "a file name of the tree appears in the encrypted store"; fi
step rw5plainrestore "$REWIND" run -q --json restore-dir prefix="$PREFIX" store="$WORK/plain" to="$WORK/out-plain"
step rw5agerestore "$REWIND" run -q --json restore-dir prefix="$PREFIX" store="$WORK/sealed" to="$WORK/out-age" \
  identity="$WORK/key.txt"
diff -r --no-dereference "$TREE" "$WORK/out-age" >"$WORK/diff-age.txt" 2>&1 ||
  fail "restore-dir of the encrypted snapshot differs from the tree" "$WORK/diff-age.txt"
rm -rf "$WORK/out-plain" "$WORK/out-age" "$WORK/plain" "$WORK/sealed"
echo "restore whole: plain $(wall rw5plainrestore)s, age $(wall rw5agerestore)s (equal to the tree: diff -r)"
# The same pairs with both stores in memory (/dev/shm, when it is a tmpfs with room): no disk, so what is
# left is the CPU that encryption adds and how well the pipeline overlaps it. Reported, no bar.
if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] &&
   [ "$(df -B1 --output=avail /dev/shm | tail -1)" -gt $((SIZE_BYTES * 3)) ]; then
  put mem5 1
  # Each into an empty /dev/shm (one store path for both kinds): a store left in memory would make the
  # next backup write into fresh pages, which cost this VM up to 1 s of CPU more per GiB.
  for i in 1 2 3 4; do
    pair5 rw5m "$i" "$MEM" "$MEM"
    echo "in memory, round $i: plain $(wall "rw5mplain$i")s (CPU $(cpu "rw5mplain$i")s), age $(wall "rw5mage$i")s (CPU $(cpu "rw5mage$i")s)"
  done
  rm -rf "$MEM"
else
  echo "in memory: skipped (/dev/shm is not a tmpfs with room for three copies of the tree)"
fi

echo
python3 $B/incremental.py report "$RES"
echo
echo "commands (\$WORK = the work directory; each after a sync, under /usr/bin/time -f '%M %U %S'):"
cat "$WORK/commands"
