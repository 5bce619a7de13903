#!/usr/bin/env bash
# Kafka benchmarks (issue 4), against one librdkafka mock cluster (rewind-mock-kafka) in the same run:
#   1. send_lines of a gzipped JSONL file vs `zcat file | kcat -P` (bar: rewind >= kcat), both without
#      message keys (what the reference does), ROUNDS rounds alternating, medians compared; then
#      send_lines with key_field (keyed messages spread over all 128 partitions) for reference
#   2. send_lines with a Lua transform callback: cost per record
#   3. topic-archive of the keyed topic (bar: >= 200,000 events/s, peak RSS < 200 MB)
# QUICK=1: small sizes (smoke test). N=... overrides the event count, ROUNDS=... the send rounds (3).
# The mock broker runs with group.initial.rebalance.delay.ms=0, as Kafka's own shipped
# config/server.properties sets it (the broker default, 3 s, would add a fixed wait before the first
# assignment of a new consumer group; that is broker configuration, not archive throughput).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
ROUNDS=${ROUNDS:-3}
[ "${QUICK:-0}" = 1 ] && { N=${N_QUICK:-20000}; ROUNDS=1; }
cargo build --release --quiet --bins
BIN=target/release
WORK=$(mktemp -d)
MOCK_PID=
cleanup() { [ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

# The mock cluster: stays up while its stdin (a fifo we hold open) is open. librdkafka's mock keeps only
# about 5 MB (and 100,000 messages) per partition and trims older ones, so the topics get 128 partitions
# to hold all 1,000,000 events (~300 MB); the archive is checked against the watermarks either way.
mkfifo "$WORK/hold"
$BIN/rewind-mock-kafka --brokers 1 --rebalance-delay-ms 0 ev_kcat:128 ev_plain:128 ev_rewind:128 ev_transform:128 >"$WORK/bs" <"$WORK/hold" 2>/dev/null &
MOCK_PID=$!
exec 3>"$WORK/hold"
for _ in $(seq 50); do [ -s "$WORK/bs" ] && break; sleep 0.1; done
B=$(head -1 "$WORK/bs")

echo "generating $N events of ~300 bytes..."
python3 - "$N" <<'PY' | gzip -1 >"$WORK/events.jsonl.gz"
import sys, json, random
n = int(sys.argv[1]); rnd = random.Random(1)
pad = "x" * 170
out = sys.stdout
for i in range(n):
    out.write('{"id":%d,"ts":"2024-05-01T12:%02d:%02d.%03dZ","user":"user-%d","type":"%s","page":"/p/%d","session":"%016x","pad":"%s"}\n'
              % (i, (i // 60000) % 60, (i // 1000) % 60, i % 1000, rnd.randrange(100000), ("click", "view", "buy")[i % 3], i % 977, rnd.getrandbits(64), pad))
PY
ls -l "$WORK/events.jsonl.gz" | awk '{print "input:", $5, "bytes gzipped"}'

secs() { python3 -c "import sys; print(f'{float(sys.argv[1]):.2f}')" "$1"; }
now() { date +%s.%N; }


cat >"$WORK/send.lua" <<LUA
local kafka = require("rewind.kafka")
local fs = require("rewind.fs")
return { params = { topic = { type = "string", doc = "t" }, transform = { type = "boolean", default = false, doc = "x" },
  keyed = { type = "boolean", default = true, doc = "key each message by its user field" } },
run = function(p)
  local prod = kafka.producer{ brokers = "$B" }
  local opts = { topic = p.topic, key_field = p.keyed and "user" or nil }
  if p.transform then opts.transform = function(r) r.seen = true; return r end end
  return prod:send_lines(fs.reader("$WORK/events.jsonl.gz"), opts)
end }
LUA
# 1. kcat and rewind, both unkeyed, alternating rounds (the mock trims old messages; only times count)
KCATS=(); PLAINS=()
for r in $(seq "$ROUNDS"); do
  t0=$(now)
  zcat "$WORK/events.jsonl.gz" | kcat -P -b "$B" -t ev_kcat -X queue.buffering.max.messages=100000 -X enable.idempotence=true -X acks=all
  t1=$(now)
  KCATS+=("$(python3 -c "print($t1 - $t0)")")
  t0=$(now)
  $BIN/rewind run --json "$WORK/send.lua" topic=ev_plain keyed=false >"$WORK/send_plain.json"
  t1=$(now)
  PLAINS+=("$(python3 -c "print($t1 - $t0)")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
KCAT=$(median "${KCATS[@]}"); PLAIN=$(median "${PLAINS[@]}")
# 2. keyed send_lines (the archive's input: keys spread the events over all 128 partitions)
t0=$(now)
$BIN/rewind run --json "$WORK/send.lua" topic=ev_rewind >"$WORK/send.json"
t1=$(now)
REW=$(python3 -c "print($t1 - $t0)")
# 3. with a Lua transform
t0=$(now)
$BIN/rewind run --json "$WORK/send.lua" topic=ev_transform transform=true >"$WORK/send_t.json"
t1=$(now)
REWT=$(python3 -c "print($t1 - $t0)")

# 4. topic-archive of ev_rewind
/usr/bin/time -f "%M" -o "$WORK/rss" $BIN/rewind run --json topic-archive brokers="$B" topics=ev_rewind \
  store="$WORK/store" once=true >"$WORK/archive.json" 2>"$WORK/archive.err" || { cat "$WORK/archive.err"; exit 1; }
ARCH=$(python3 -c "import json; print(json.load(open('$WORK/archive.json'))['records'])")
ARCH_T=$(grep -o '"seconds": *[0-9.]*' "$WORK/archive.json" | grep -o '[0-9.]*$' || true)

python3 - "$N" "$KCAT" "$REW" "$REWT" "$WORK" "$PLAIN" "${KCATS[*]}" "${PLAINS[*]}" <<'PY'
import json, sys
n, kcat, rew, rewt, work = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
plain = float(sys.argv[6])
kcats, plains = (" ".join(f"{float(x):.2f}" for x in a.split()) for a in sys.argv[7:9])
s = json.load(open(f"{work}/send.json")); st = json.load(open(f"{work}/send_t.json"))
a = json.load(open(f"{work}/archive.json")); rss = int(open(f"{work}/rss").read().split()[-1]) / 1024
assert s["sent"] == n and st["sent"] == n, (s, st)
assert a["records"] == n, ("the mock trimmed the topic (it keeps ~5 MB per partition)", a)
print(f"events: {n}")
print(f"kcat  (zcat | kcat -P):   {kcat:6.2f} s  {n/kcat:10.0f} events/s  (median; rounds: {kcats})")
print(f"rewind send_lines:        {plain:6.2f} s  {n/plain:10.0f} events/s  (median; rounds: {plains})  throughput ratio rewind/kcat = {kcat/plain:.2f}x (bar >= 1.0)")
print(f"send_lines, key_field:    {rew:6.2f} s  {n/rew:10.0f} events/s  (in-Rust {s['seconds']:.2f} s; keyed messages spread over 128 partitions)")
print(f"send_lines + transform:   {rewt:6.2f} s  {n/rewt:10.0f} events/s  transform cost {(st['seconds']-s['seconds'])/n*1e6:.2f} us/record")
print(f"topic-archive once:       {a['seconds']:6.2f} s  {n/a['seconds']:10.0f} events/s  peak RSS {rss:.0f} MB  ({a['batches']} objects)")
PY
