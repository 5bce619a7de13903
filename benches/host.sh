#!/usr/bin/env bash
# Host benchmarks (issue 2): startup of `rewind run hello`, the cost of calling a Rust primitive from Lua,
# and 10,000 concurrent task.spawn'ed coroutines each sleeping 10 ms. Each is run beside a reference in
# the same run and reported as a ratio.
#
#   benches/host.sh            # full run (builds --release unless REWIND_BIN is set)
#   QUICK=1 benches/host.sh    # smoke mode: fewer runs, fewer calls
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${REWIND_BIN:-target/release/rewind}
if [ -z "${REWIND_BIN:-}" ]; then cargo build --release --quiet; fi
QUICK=${QUICK:-0}
RUNS=$([ "$QUICK" = 1 ] && echo 10 || echo 100)
CALLS=$([ "$QUICK" = 1 ] && echo 100000 || echo 1000000)
TASKS=10000
# /usr/bin/time (peak RSS) and hyperfine (startup) from Debian when missing; a timing loop replaces hyperfine.
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if [ ! -x /usr/bin/time ] || ! command -v hyperfine >/dev/null; then
  as_root apt-get install -y -qq time hyperfine >/dev/null 2>&1 || true
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "== 1. startup: rewind run hello ($RUNS runs) vs /bin/true"
if command -v hyperfine >/dev/null; then
  hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$WORK/start.json" \
    "$BIN -q run hello" "/bin/true" >/dev/null 2>&1
  python3 - "$WORK/start.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
rw, ref = r[0]["median"] * 1000, r[1]["median"] * 1000
print(f"rewind run hello: median {rw:.2f} ms   /bin/true: median {ref:.2f} ms   difference {rw - ref:.2f} ms   ratio {rw / ref:.1f}x")
print("bar (< 15 ms median):", "PASS" if rw < 15 else "FAIL")
PY
else
  python3 - "$BIN" "$RUNS" <<'PY'
import subprocess, sys, time, statistics
def med(cmd, n):
    ts = []
    for _ in range(n):
        t = time.perf_counter(); subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1000
rw = med([sys.argv[1], "-q", "run", "hello"], int(sys.argv[2])); ref = med(["/bin/true"], int(sys.argv[2]))
print(f"rewind run hello: median {rw:.2f} ms   /bin/true: median {ref:.2f} ms   (timing loop; install hyperfine for better numbers)")
print("bar (< 15 ms median):", "PASS" if rw < 15 else "FAIL")
PY
fi

echo
echo "== 2. calling a trivial Rust primitive (json.is_null) vs a pure-Lua function, $CALLS calls each"
cat > "$WORK/calls.lua" <<'LUA'
local json = require("rewind.json")
local time = require("rewind.time")
return {
  description = "primitive call cost",
  params = { n = { type = "integer", default = 1000000, doc = "calls" } },
  run = function(p)
    local n, x = p.n, 1
    local is_null = json.is_null
    local function lua_fn(v) return v == nil end
    local t0 = time.monotonic()
    for _ = 1, n do is_null(x) end
    local t1 = time.monotonic()
    for _ = 1, n do lua_fn(x) end
    local t2 = time.monotonic()
    for _ = 1, n do end
    local t3 = time.monotonic()
    local loop = (t3 - t2)
    return string.format("rust primitive: %.1f ns/call   pure Lua function: %.1f ns/call   empty loop: %.1f ns/iter   ratio %.1fx   bar (< 1000 ns): %s",
      (t1 - t0) / n * 1e9, (t2 - t1) / n * 1e9, loop / n * 1e9, (t1 - t0) / (t2 - t1),
      (t1 - t0) / n * 1e9 < 1000 and "PASS" or "FAIL")
  end,
}
LUA
"$BIN" -q run "$WORK/calls.lua" n="$CALLS"

echo
echo "== 3. $TASKS task.spawn'ed coroutines each sleeping 10 ms, vs python3 asyncio doing the same"
cat > "$WORK/tasks.lua" <<'LUA'
local task = require("rewind.task")
local time = require("rewind.time")
return {
  description = "many concurrent coroutines",
  params = { n = { type = "integer", default = 10000, doc = "tasks" } },
  run = function(p)
    local t0 = time.monotonic()
    local tasks = {}
    for i = 1, p.n do tasks[i] = task.spawn(function() task.sleep(0.01); return i end) end
    local sum = 0
    for i = 1, p.n do sum = sum + tasks[i]:join() end
    assert(sum == p.n * (p.n + 1) // 2)
    return string.format("%.0f", (time.monotonic() - t0) * 1000)
  end,
}
LUA
cat > "$WORK/tasks.py" <<'PY'
import asyncio, sys, time
async def one(i):
    await asyncio.sleep(0.01)
    return i
async def main(n):
    t0 = time.monotonic()
    r = await asyncio.gather(*(one(i) for i in range(1, n + 1)))
    assert sum(r) == n * (n + 1) // 2
    print(f"{(time.monotonic() - t0) * 1000:.0f}")
asyncio.run(main(int(sys.argv[1])))
PY
measure() { # prints "<inner ms> <wall ms> <peak RSS KiB>"
  local out
  out=$( { /usr/bin/time -f "TIME %e %M" "$@" 2>&1 1>&3; } 3>&1 )
  local inner wall rss
  inner=$(echo "$out" | grep -v '^TIME' | grep -E '^[0-9]+$' | tail -1)
  wall=$(echo "$out" | awk '/^TIME/{printf "%.0f", $2 * 1000}')
  rss=$(echo "$out" | awk '/^TIME/{print $3}')
  echo "$inner $wall $rss"
}
read -r r_in r_wall r_rss < <(measure "$BIN" -q run "$WORK/tasks.lua" n=$TASKS)
read -r p_in p_wall p_rss < <(measure python3 "$WORK/tasks.py" $TASKS)
echo "rewind:  spawn+sleep+join $r_in ms, process wall $r_wall ms, peak RSS $((r_rss / 1024)) MiB"
echo "python3: gather+sleep     $p_in ms, process wall $p_wall ms, peak RSS $((p_rss / 1024)) MiB"
python3 -c "print(f'ratio (wall) {$r_wall / max($p_wall, 1):.2f}x   ratio (RSS) {$r_rss / max($p_rss, 1):.2f}x')"
if [ "$r_wall" -lt 1000 ] && [ "$r_rss" -lt $((100 * 1024)) ]; then echo "bar (< 1 s, < 100 MB): PASS"; else echo "bar (< 1 s, < 100 MB): FAIL"; fi
