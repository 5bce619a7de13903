#!/usr/bin/env bash
# Event backup benchmark (issue 17, "Speed and memory"): event-backup and event-restore between the fake event
# dispatcher (tests/fakes/dispatcher_fake.py) and moto's S3 server, against a plain copy of the same streams
# (`aws s3 cp --recursive`), in the same run:
#   0. the source fake is seeded: N events (default 100,000) over PAIRS (a/x,a/y,b/x,b/y: two sources, two
#      event types each), one stream reference per event, about STREAMS (30,000) distinct (source, label,
#      sha256), so ~70% of the references repeat. The backup de-duplicates per source and both sources draw
#      from one pool, so the pool is sized to give STREAMS distinct references (events_bench.py seed).
#      Sizes: a mixture, SIZES="weight:lo-hi,..." capped at MAX_SIZE; the default
#      80:1K-16K,15:16K-128K,5:128K-1M (mean ~46 KiB: ~1.4 GB of streams; the issue's 1 KiB-1 MiB uniform,
#      SIZES=100:1K-1M, would be ~15 GB, which moto keeps in memory twice: more than this machine has).
#   1. reference: every distinct stream is downloaded once from the fake into a directory (timed apart:
#      a sequential sample gives the fake's latency, then FETCH_THREADS threads its throughput), then
#      `aws s3 cp --recursive DIR s3://plain/` (aws-cli's max_concurrent_requests=AWS_CONCURRENCY, its
#      default 10) is timed.
#   2. `rewind run event-backup once=true` of every pair into s3://events (stream_workers=STREAM_WORKERS).
#      Bars: >= 20,000 events/s end to end (process wall time), peak RSS < 200 MB (benches/measure.py:
#      the largest process of the tree, rewind itself).
#   3. `rewind run event-restore` into a second, fresh fake (concurrency=CONCURRENCY); bar >= 20,000
#      events/s. Then /_fake/restored must hold every pair's events in order, each once, and every stream.
#   4. context (LOCAL=0 skips it): 2 and 3 with a local directory store instead of moto, into a third fake.
# For each step the CPU time of rewind (or aws, or the python client), the fake(s) and moto is printed as a
# share of the wall time (100% = one core busy): the two Python servers are single-threaded at heart (GIL;
# the fake also serializes every request behind one lock), so a server near 100% is the bottleneck.
# Env: REWIND=binary (default target/release/rewind; it must have event-backup), QUICK=1 (3,000 events,
# 900 streams, MAX_SIZE=128K: a smoke test), N, STREAMS, SIZES, MAX_SIZE, PAIRS, STREAM_WORKERS (8),
# CONCURRENCY (8), AWS_CONCURRENCY (10), FETCH_THREADS (8), STEP_TIMEOUT (s, per step), KEEP=1 (keep the
# work directory), FAKE_NODELAY (1, the default: the fakes answer with TCP_NODELAY, as tests/fakes/fake_control.py
# sets it; 0 turns it off, and each answer then waits ~40 ms for the client's delayed ACK: see start_fake). MB = 10^6 bytes. Exits non-zero when a
# step fails or the restore differs, not on a missed bar.
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  N=${N:-3000}; STREAMS=${STREAMS:-900}; MAX_SIZE=${MAX_SIZE:-128K}; STEP_TIMEOUT=${STEP_TIMEOUT:-300}
else
  N=${N:-100000}; STREAMS=${STREAMS:-30000}; MAX_SIZE=${MAX_SIZE:-1M}; STEP_TIMEOUT=${STEP_TIMEOUT:-3600}
fi
SIZES=${SIZES:-80:1K-16K,15:16K-128K,5:128K-1M}
PAIRS=${PAIRS:-a/x,a/y,b/x,b/y}
STREAM_WORKERS=${STREAM_WORKERS:-8}
CONCURRENCY=${CONCURRENCY:-8}
AWS_CONCURRENCY=${AWS_CONCURRENCY:-10}
FETCH_THREADS=${FETCH_THREADS:-8}
FAKE_NODELAY=${FAKE_NODELAY:-1}
REWIND=${REWIND:-target/release/rewind}
MOTO=${MOTO_SERVER:-$HOME/.cache/rewind-tests/moto/bin/moto_server}
[ -x "$REWIND" ] || { echo "no rewind binary at $REWIND (build it, or set REWIND=path)"; exit 1; }
"$REWIND" help event-backup >/dev/null 2>&1 ||
  { echo "$REWIND has no event-backup procedure: it predates issue 17 (rebuild it, or set REWIND=path)"; exit 1; }
[ -x "$MOTO" ] || { echo "moto_server not found at $MOTO: run tests/run.sh (it installs moto[server])"; exit 1; }
command -v aws >/dev/null || { echo "the aws CLI is needed for the reference (aws s3 cp)"; exit 1; }
REWIND=$(realpath "$REWIND")
export REWIND_PATH= RUST_LOG=warn
B=benches
WORK=$(mktemp -d /tmp/rewind-bench-events.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
fail() { echo "$1"; [ -n "${2:-}" ] && tail -20 "$2"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_fake NAME: a fake dispatcher on a free port; sets FAKE_PID and FAKE_URL. The fake runs with TCP_NODELAY
# (FAKE_NODELAY=0: as it is): without it every answer waits ~40 ms for the client's delayed ACK (see
# events_bench.py fake), which would make the fake's Nagle stall, not rewind, the whole measurement.
start_fake() {
  python3 $B/events_bench.py fake "$FAKE_NODELAY" >"$WORK/$1.port" 2>"$WORK/$1.err" &
  FAKE_PID=$!; PIDS+=("$FAKE_PID")
  for _ in $(seq 1 100); do [ -s "$WORK/$1.port" ] && break; sleep 0.1; done
  [ -s "$WORK/$1.port" ] || fail "the fake dispatcher ($1) did not start:" "$WORK/$1.err"
  FAKE_URL=http://127.0.0.1:$(head -1 "$WORK/$1.port")
}

# CPU time (clock ticks) of a process so far, 0 when it is gone.
cpu_ticks() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s
  echo $(( ${12} + ${13} ))
}
TCK=$(getconf CLK_TCK)
SRC_PID=; DST_PID=; MOTO_PID=

# step NAME CMD...: runs CMD (stdout to NAME.out, stderr to NAME.err) under benches/measure.py (wall, peak RSS
# of the largest process) and bash's `time` (the CPU of CMD), and notes the CPU the fakes and moto spent
# meanwhile. Appends 'NAME wall rss_kib cpu_s src_cpu_s moto_cpu_s dst_cpu_s' to steps.txt.
step() {
  local name=$1; shift
  local cmd out s0 m0 d0 s1 m1 d1 u s lines0
  cmd=$(printf '%q ' "$@")
  lines0=$(wc -l < "$WORK/moto.log")
  s0=$(cpu_ticks "${SRC_PID:-0}"); m0=$(cpu_ticks "$MOTO_PID"); d0=$(cpu_ticks "${DST_PID:-0}")
  out=$(python3 $B/measure.py "TIMEFORMAT='%U %S'; { time timeout $STEP_TIMEOUT $cmd >$WORK/$name.out 2>$WORK/$name.err; } 2>$WORK/$name.cpu") ||
    fail "step $name failed (or took over ${STEP_TIMEOUT}s): $*" "$WORK/$name.err"
  s1=$(cpu_ticks "${SRC_PID:-0}"); m1=$(cpu_ticks "$MOTO_PID"); d1=$(cpu_ticks "${DST_PID:-0}")
  read -r u s < "$WORK/$name.cpu"
  echo "$name $out $(awk -v u="$u" -v s="$s" -v t="$TCK" -v a=$((s1 - s0)) -v b=$((m1 - m0)) -v c=$((d1 - d0)) \
    'BEGIN {printf "%.2f %.2f %.2f %.2f", u + s, a / t, b / t, c / t}')" >> "$WORK/steps.txt"
  # The requests moto answered meanwhile, by method (its log: one line per request, ANSI colours removed).
  echo "$name $(tail -n +$((lines0 + 1)) "$WORK/moto.log" | sed 's/\x1b\[[0-9;]*m//g' |
    grep -oE '"(GET|PUT|HEAD|POST|DELETE) ' | tr -d '" ' | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}')" \
    >> "$WORK/moto-requests.txt"
}

echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(free -g | awk '/Mem:/ {print $2}') GiB RAM;" \
  "rewind: $REWIND; fakes with TCP_NODELAY: $([ "$FAKE_NODELAY" = 1 ] && echo yes || echo no)"

# moto, with two buckets: plain (the reference) and events (rewind).
MPORT=$(free_port)
mkdir -p "$WORK/moto-tmp"
(cd "$WORK" && TMPDIR=$WORK/moto-tmp exec "$MOTO" -H 127.0.0.1 -p "$MPORT" >"$WORK/moto.log" 2>&1) &
MOTO_PID=$!; PIDS+=("$MOTO_PID")
for _ in $(seq 1 150); do curl -s -o /dev/null "http://127.0.0.1:$MPORT" && break; sleep 0.2; done
for b in plain events; do
  curl -sf -X PUT "http://127.0.0.1:$MPORT/$b" >/dev/null || fail "moto did not start (or refused bucket $b):" "$WORK/moto.log"
done
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing-secret AWS_REGION=us-east-1 \
  AWS_DEFAULT_REGION=us-east-1 AWS_ENDPOINT_URL=http://127.0.0.1:$MPORT AWS_EC2_METADATA_DISABLED=true
# The aws CLI's settings, explicit (these are its defaults but for the concurrency, which AWS_CONCURRENCY sets).
export AWS_CONFIG_FILE=$WORK/aws-config AWS_SHARED_CREDENTIALS_FILE=$WORK/aws-credentials
printf '[default]\nregion = us-east-1\ns3 =\n    max_concurrent_requests = %s\n    multipart_threshold = 8MB\n' \
  "$AWS_CONCURRENCY" > "$AWS_CONFIG_FILE"
: > "$AWS_SHARED_CREDENTIALS_FILE"

# The source fake, seeded.
start_fake src; SRC_PID=$FAKE_PID; SRC_URL=$FAKE_URL
python3 $B/events_bench.py seed "$SRC_URL" "$PAIRS" "$N" "$STREAMS" "$SIZES" "$MAX_SIZE" > "$WORK/seed.json" ||
  fail "seeding the fake failed" "$WORK/src.err"

# 1. Reference: download every distinct stream once (its own timing), then aws s3 cp --recursive.
step fetch python3 $B/events_bench.py fetch "$SRC_URL" "$PAIRS" "$WORK/plain" "$WORK/expected.json" "$FETCH_THREADS"
python3 - "$WORK" "$N" <<'PY'
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
s, f = json.load(open(work + "/seed.json")), json.load(open(work + "/fetch.out"))
print("fixture: %d events over %d pairs (%d each), %d stream references, %d distinct (source, label, sha256) "
      "from a pool of %d streams: %.1f%% of the references repeat" % (
          f["events"], s["events"] // s["per_pair"], s["per_pair"], f["refs"],
          f["streams"], s["pool"], 100 * (1 - f["streams"] / f["refs"])))
print("  sizes (uniform within each range): the pool holds %s; the distinct streams make %.1f MB, min %d B, "
      "median %d B, max %d B, mean %.1f KiB (seeded in %.1fs)" % (
          ", ".join("%d of %g-%g KiB" % (b["streams"], b["min_size"] / 1024, b["max_size"] / 1024) for b in s["buckets"]),
          f["bytes"] / 1e6, f["min"], f["median"], f["max"], f["bytes"] / f["streams"] / 1024, s["seconds"]))
print("  the fake serves: %d events in %.2fs (%.0f events/s, pages of 1,000); streams one at a time: %d in %.2fs "
      "(%.1f ms each, %.0f MB/s); %d threads: %d in %.2fs (%.0f streams/s, %.0f MB/s)" % (
          f["events"], f["events_seconds"], f["events"] / f["events_seconds"], f["sample"], f["sample_seconds"],
          1000 * f["sample_seconds"] / max(1, f["sample"]), f["sample_bytes"] / 1e6 / f["sample_seconds"],
          f["threads"], f["streams"], f["seconds"], f["streams"] / f["seconds"], f["bytes"] / 1e6 / f["seconds"]))
if f["events"] != s["events"]:
    sys.exit("the fake served %d events, seeded %d" % (f["events"], s["events"]))
PY
sync
step aws-cp aws s3 cp --recursive --quiet --only-show-errors "$WORK/plain" s3://plain/ --endpoint-url "$AWS_ENDPOINT_URL"
PLAIN_KEYS=$(aws s3 ls --recursive s3://plain/ --endpoint-url "$AWS_ENDPOINT_URL" | wc -l)

# 2. rewind event-backup.
BACKUP_CMD=("$REWIND" run -q --json event-backup url="$SRC_URL" pairs="$PAIRS" store=s3://events prefix=events
  once=true cache_dir="$WORK/cache-backup" stream_workers="$STREAM_WORKERS")
step backup "${BACKUP_CMD[@]}"

# 3. rewind event-restore into a fresh fake.
start_fake dst; DST_PID=$FAKE_PID; DST_URL=$FAKE_URL
RESTORE_CMD=("$REWIND" run -q --json event-restore url="$DST_URL" store=s3://events prefix=events
  cache_dir="$WORK/cache-restore" concurrency="$CONCURRENCY")
step restore "${RESTORE_CMD[@]}"
CHECK_OK=1
python3 $B/events_bench.py check "$DST_URL" "$WORK/expected.json" > "$WORK/check.json" || CHECK_OK=0

# 4. Context (LOCAL=1, the default): the same backup into a local directory store and its restore into a
# third fake, without moto: what rewind and the fake reach when S3 is not the limit.
if [ "${LOCAL:-1}" = 1 ]; then
  step backup-local "$REWIND" run -q --json event-backup url="$SRC_URL" pairs="$PAIRS" store="$WORK/local-store" \
    prefix=events once=true cache_dir="$WORK/cache-backup-local" stream_workers="$STREAM_WORKERS"
  kill "$DST_PID" 2>/dev/null || true
  start_fake dst-local; DST_PID=$FAKE_PID; DST_LOCAL_URL=$FAKE_URL
  step restore-local "$REWIND" run -q --json event-restore url="$DST_LOCAL_URL" store="$WORK/local-store" prefix=events \
    cache_dir="$WORK/cache-restore-local" concurrency="$CONCURRENCY"
  python3 $B/events_bench.py check "$DST_LOCAL_URL" "$WORK/expected.json" > "$WORK/check-local.json" || CHECK_OK=0
fi

# Summary.
SUMMARY_OK=1
python3 - "$WORK" "$QUICK" "$PLAIN_KEYS" "$AWS_CONCURRENCY" "$(nproc)" <<'PY' || SUMMARY_OK=0
import json, sys
work, quick, plain_keys, aws_conc, cpus = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4], sys.argv[5]
steps = {}
for line in open(work + "/steps.txt"):
    name, wall, rss, cpu, src, moto, dst = line.split()
    steps[name] = dict(wall=float(wall), rss=int(rss) * 1024 / 1e6, cpu=float(cpu), src=float(src), moto=float(moto),
                       dst=float(dst))
def result(name):
    text = open("%s/%s.out" % (work, name)).read()
    r = json.loads(text[text.index("{"):])
    return r.get("result", r)
f = json.load(open(work + "/fetch.out"))
b, r, chk = result("backup"), result("restore"), json.load(open(work + "/check.json"))
n, streams, nbytes = f["events"], f["streams"], f["bytes"]
errors = []
if plain_keys != streams:
    errors.append("aws s3 cp stored %d objects, expected %d" % (plain_keys, streams))
bs = b["streams"]
if b["events"] != n or bs["downloaded"] != streams or bs["failed"] or bs["cached"]:
    errors.append("backup: %d events (expected %d), streams %s (expected %d downloaded)" % (b["events"], n, bs, streams))
if r["events"] != n or r["streams"] != streams:
    errors.append("restore: %d events, %d streams (expected %d, %d)" % (r["events"], r["streams"], n, streams))
if not chk["ok"]:
    errors.append("the restored dispatcher differs: " + "; ".join(chk["problems"]))

def share(s, key):
    return "%3.0f%%" % (100 * s[key] / s["wall"])
print("\n== steps (CPU as a share of the step's wall time, 100%% = one core of %s)" % cpus)
print("  %-26s %8s  %-30s %-30s" % ("step", "wall", "throughput", "CPU: client / src fake / moto / dst fake"))
a, k, rs = steps["aws-cp"], steps["backup"], steps["restore"]
fe = steps["fetch"]
rows = [
    ("fetch (python, %d threads)" % f["threads"], fe, "%.0f streams/s (whole step)" % (streams / fe["wall"])),
    ("aws s3 cp --recursive", a, "%.0f streams/s, %.1f MB/s" % (streams / a["wall"], nbytes / 1e6 / a["wall"])),
    ("rewind event-backup", k, "%.0f events/s, %.0f streams/s" % (n / k["wall"], streams / k["wall"])),
    ("rewind event-restore", rs, "%.0f events/s, %.0f streams/s" % (n / rs["wall"], streams / rs["wall"])),
]
if "backup-local" in steps:
    kl, rl = steps["backup-local"], steps["restore-local"]
    rows += [("backup, local store", kl, "%.0f events/s, %.0f streams/s" % (n / kl["wall"], streams / kl["wall"])),
             ("restore, local store", rl, "%.0f events/s, %.0f streams/s" % (n / rl["wall"], streams / rl["wall"]))]
    cl = json.load(open(work + "/check-local.json"))
    bl, rr = result("backup-local"), result("restore-local")
    if bl["events"] != n or bl["streams"]["downloaded"] != streams or not cl["ok"] or rr["events"] != n:
        errors.append("the local-store run differs: backup %d events, %s streams; restore %d events; %s" % (
            bl["events"], bl["streams"]["downloaded"], rr["events"], "; ".join(cl["problems"])))
moto_reqs = {}
for line in open(work + "/moto-requests.txt"):
    name, *counts = line.split()
    moto_reqs[name] = " ".join(counts)
names = ["fetch", "aws-cp", "backup", "restore", "backup-local", "restore-local"]
for (what, s, tp), name in zip(rows, names):
    print("  %-26s %7.2fs  %-30s %s / %s / %s / %s   (peak RSS %.0f MB)%s" % (
        what, s["wall"], tp, share(s, "cpu"), share(s, "src"), share(s, "moto"), share(s, "dst"), s["rss"],
        "  moto: " + moto_reqs[name] if moto_reqs.get(name) else ""))
print("  backup result: %s s inside rewind; streams %s" % (b["seconds"], json.dumps(bs, sort_keys=True)))
print("  restore result: %s s inside rewind; %d batches, %d streams (%d created), in doubt %d" % (
    r["seconds"], r["batches"], r["streams"], r["streams_created"], r["in_doubt"]))
print("  restored dispatcher: %d events, %d streams, %d stream posts, %d event posts: %s" % (
    chk["events"], chk["streams"], chk["stream_posts"], chk["event_posts"],
    "every pair's events in order, each once; every stream" if chk["ok"] else "DIFFERS"))

def met(ok):
    return "MET" if ok else "MISSED"
table = [["measurement", "rewind", "reference / bar", ""],
         ["backup, end to end", "%.0f events/s (%.2f s)" % (n / k["wall"], k["wall"]), ">= 20,000 events/s",
          met(n / k["wall"] >= 20000)],
         ["backup peak RSS", "%.0f MB" % k["rss"], "< 200 MB", met(k["rss"] < 200)],
         ["backup vs plain copy", "%.2fx aws s3 cp's time" % (k["wall"] / a["wall"]),
          "aws s3 cp %.2f s (%.2fx with the download, %.2f s)" % (a["wall"], k["wall"] / (a["wall"] + f["seconds"]),
                                                                  a["wall"] + f["seconds"]), "-"],
         ["restore, end to end", "%.0f events/s (%.2f s)" % (n / rs["wall"], rs["wall"]), ">= 20,000 events/s",
          met(n / rs["wall"] >= 20000)],
         ["restore peak RSS", "%.0f MB" % rs["rss"], "(< 200 MB)", met(rs["rss"] < 200)]]
if "backup-local" in steps:
    table += [["(context) local store", "backup %.0f, restore %.0f events/s" % (n / kl["wall"], n / rl["wall"]),
               ">= 20,000 events/s", "%s / %s" % (met(n / kl["wall"] >= 20000), met(n / rl["wall"] >= 20000))],
              ["(context) local, RSS", "backup %.0f MB, restore %.0f MB" % (kl["rss"], rl["rss"]), "< 200 MB",
               met(max(kl["rss"], rl["rss"]) < 200)]]
print("\n== summary: %d events, %d distinct streams (%.1f MB), moto, %s CPUs%s" % (
    n, streams, nbytes / 1e6, cpus, " (QUICK=1: not the issue's sizes)" if quick else ""))
widths = [max(len(row[i]) for row in table) for i in range(4)]
for row in table:
    print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
if errors:
    print("\nERRORS:\n  " + "\n  ".join(errors))
    sys.exit(1)
PY
echo
echo "command: QUICK=$QUICK N=$N STREAMS=$STREAMS SIZES=$SIZES MAX_SIZE=$MAX_SIZE PAIRS=$PAIRS" \
  "STREAM_WORKERS=$STREAM_WORKERS CONCURRENCY=$CONCURRENCY AWS_CONCURRENCY=$AWS_CONCURRENCY REWIND=$REWIND benches/events.sh"
echo "  backup:  ${BACKUP_CMD[*]}"
echo "  restore: ${RESTORE_CMD[*]}"
echo "  (aws s3 cp: max_concurrent_requests=$AWS_CONCURRENCY; moto at 127.0.0.1:$MPORT, fakes at $SRC_URL and $DST_URL)"
[ "$CHECK_OK" = 1 ] && [ "$SUMMARY_OK" = 1 ] || exit 1
