#!/usr/bin/env bash
# Daemon bars (issue 7). There is no reference scheduler to run beside it without root (cron needs a system
# daemon), so each number is printed beside its bar with the ratio measured/bar (< 1 passes).
#   1. an edit to a job file shows in `rewind jobs` within 1 s (max over 5 edits, with N jobs loaded);
#   2. N=1000 scheduled jobs, idle: RSS < 60 MB and CPU < 1% over IDLE seconds (/proc/PID/stat);
#   3. N=1000 jobs firing (6-field cron, staggered over the minute: ~17 runs/s): runs start within 1 s of
#      their scheduled time (max lateness from the run history: started - scheduled).
# QUICK=1: 100 jobs, short windows (a smoke test).
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then N=100; IDLE=5; LOAD=12; else N=1000; IDLE=30; LOAD=65; fi
BIN=${REWIND_BIN:-target/release/rewind}
[ -x "$BIN" ] || cargo build --release --quiet
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
tck=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
hwm_mb() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
now() { date +%s.%N; }
ratio() { python3 -c "print(f'{$1/$2:.3f}')"; }

start_daemon() { # jobs state
  "$BIN" daemon --jobs "$1" --state "$2" -q 2>"$work/daemon.err" &
  pid=$!
  for _ in $(seq 1 600); do
    if [ -f "$2/jobs.json" ] && python3 -c "import json,sys; sys.exit(0 if len(json.load(open('$2/jobs.json'))['jobs']) == $N else 1)" 2>/dev/null; then
      return
    fi
    sleep 0.1
  done
  echo "daemon did not load $N jobs" >&2; cat "$work/daemon.err" >&2; exit 1
}
stop_daemon() { kill -TERM "$pid"; wait "$pid" || true; pid=""; }

echo "== rewind daemon bars: N=$N jobs (QUICK=$QUICK), $(nproc) cores, $(uname -r)"

# --- 1 and 2: idle daemon with N nightly jobs ------------------------------------------------------------
mkdir -p "$work/idle"
for i in $(seq 1 "$N"); do printf 'script: hello\nschedule: "0 3 * * *"\nparams: {name: job%d}\n' "$i" > "$work/idle/job$i.yaml"; done
t0=$(now)
start_daemon "$work/idle" "$work/state-idle"
load_s=$(python3 -c "print(f'{$(now) - $t0:.2f}')")
echo "start-up: $N jobs loaded and visible in rewind jobs after ${load_s}s"

worst=0
for k in 1 2 3 4 5; do
  printf 'script: hello\nschedule: "0 %d * * *"\nparams: {name: job1}\n' "$k" > "$work/idle/job1.yaml.tmp"
  t0=$(now)
  mv "$work/idle/job1.yaml.tmp" "$work/idle/job1.yaml"
  while ! "$BIN" jobs --state "$work/state-idle" --json | grep -q "\"schedule\": \"0 $k \* \* \*\""; do sleep 0.01; done
  dt=$(python3 -c "print(f'{$(now) - $t0:.3f}')")
  worst=$(python3 -c "print(max($worst, $dt))")
done
echo "edit -> visible in rewind jobs: max ${worst}s over 5 edits (bar 1 s, ratio $(ratio "$worst" 1))"

sleep 2
c0=$(cpu_ticks "$pid"); t0=$(now)
sleep "$IDLE"
c1=$(cpu_ticks "$pid"); t1=$(now)
cpu=$(python3 -c "print(f'{($c1 - $c0) / $tck / ($t1 - $t0) * 100:.3f}')")
rss=$(rss_mb "$pid"); hwm=$(hwm_mb "$pid")
echo "idle, $N jobs: RSS ${rss} MB (peak ${hwm} MB during start-up; bar 60 MB, ratio $(ratio "$rss" 60)), CPU ${cpu}% over ${IDLE}s (bar 1%, ratio $(ratio "$cpu" 1))"
stop_daemon

# --- 3: N jobs firing, staggered over the minute ----------------------------------------------------------
mkdir -p "$work/busy"
for i in $(seq 1 "$N"); do printf 'script: hello\nschedule: "%d * * * * *"\nparams: {name: job%d}\n' "$((i % 60))" "$i" > "$work/busy/job$i.yaml"; done
start_daemon "$work/busy" "$work/state-busy"
c0=$(cpu_ticks "$pid"); t0=$(now)
sleep "$LOAD"
c1=$(cpu_ticks "$pid"); t1=$(now)
cpu=$(python3 -c "print(f'{($c1 - $c0) / $tck / ($t1 - $t0) * 100:.1f}')")
rss=$(rss_mb "$pid")
stop_daemon
python3 - "$work/state-busy/runs" "$cpu" "$rss" "$LOAD" <<'PY'
import json, os, sys
from datetime import datetime
d, cpu, rss, load = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
def t(s): return datetime.fromisoformat(s.replace("Z", "+00:00"))
late, status = [], {}
for f in os.listdir(d):
    if not f.endswith(".json"): continue
    r = json.load(open(os.path.join(d, f)))
    status[r["status"]] = status.get(r["status"], 0) + 1
    if r["trigger"] == "schedule" and r.get("scheduled") and r["status"] == "done":
        late.append((t(r["started"]) - t(r["scheduled"])).total_seconds())
late.sort()
if not late: sys.exit("no runs recorded")
p = lambda q: late[min(len(late) - 1, int(q * len(late)))]
print(f"firing, {len(late)} runs in {load}s ({status}): lateness p50 {p(0.5)*1000:.1f} ms, p99 {p(0.99)*1000:.1f} ms, "
      f"max {late[-1]*1000:.1f} ms (bar 1 s, ratio {late[-1]:.3f}); daemon CPU {cpu}% of one core, RSS {rss} MB")
PY
