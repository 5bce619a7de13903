#!/usr/bin/env bash
# Replay benchmark (issue 14): 3 days x N events (~300 bytes each, gzipped JSONL, FILES files a day) in a
# local directory store, replayed into one librdkafka mock cluster (rewind-mock-kafka), in the same run:
#   1. reference: `zcat <every archived file> | kcat -P` (idempotent, acks=all, as in benches/kafka.sh)
#   2. `rewind run replay` over the 3 days, the whole procedure: per day back up and delete the dependents
#      (two store folders, DEP_FILES files each), replay the day's files with send_lines in one Kafka
#      transaction (transactional=auto: the mock supports them), delete the backups, tell Slack (the fake)
#      bar: throughput >= 1.0x the reference's; peak RSS < 200 MB (measure.py, the largest of the tree)
#   3. send_lines alone: a Lua script that send_lines every archived file into a topic (no transaction,
#      no bookkeeping, same options as the replay's), bar >= 1.5x the reference's
# ROUNDS rounds (default 3), the three alternating, medians compared. Before each replay round the day
# states are removed and the dependents put back (untimed), so every round does the full procedure.
# Each replay round's JSON log gives the time of its steps (bookkeeping vs send), printed per round.
# QUICK=1: 3 x 20,000 events, 1 round (smoke test). N=... events a day, FILES=... files a day (8),
# DEP_FILES=... files per dependent folder and day (4), DEP_KB=... their size (4096). KEEP=1 keeps the
# work directory (data, logs) for a look afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
ROUNDS=${ROUNDS:-3}
FILES=${FILES:-8}
DEP_FILES=${DEP_FILES:-4}
DEP_KB=${DEP_KB:-4096}
[ "${QUICK:-0}" = 1 ] && { N=${N_QUICK:-20000}; ROUNDS=1; FILES=4; DEP_KB=64; }
DAYS=(2024-05-01 2024-05-02 2024-05-03)
cargo build --release --quiet --bins
BIN=$(realpath target/release)
WORK=$(mktemp -d /tmp/rewind-replay-bench.XXXXXX)
MOCK_PID=; SLACK_PID=
cleanup() {
  [ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null
  [ -n "$SLACK_PID" ] && kill "$SLACK_PID" 2>/dev/null
  [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
export REWIND_PATH=

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
# The mock cluster (see benches/kafka.sh): it keeps only ~5 MB / 100,000 messages per partition and trims
# older ones, so the topics get 128 partitions; only times count here (the replay's and send_lines' own
# counts of sent events are checked).
mkfifo "$WORK/hold"
$BIN/rewind-mock-kafka --brokers 1 --rebalance-delay-ms 0 bench.kcat:128 bench.replay:128 bench.send:128 \
  >"$WORK/bs" <"$WORK/hold" 2>/dev/null &
MOCK_PID=$!
exec 3>"$WORK/hold"
for _ in $(seq 50); do [ -s "$WORK/bs" ] && break; sleep 0.1; done
B=$(head -1 "$WORK/bs")

# The Slack fake: prints its port, records each accepted message.
python3 tests/fakes/slack_fake.py "$WORK/slack.jsonl" >"$WORK/slack.port" 2>/dev/null &
SLACK_PID=$!
for _ in $(seq 50); do [ -s "$WORK/slack.port" ] && break; sleep 0.1; done
export SLACK_WEBHOOK="http://127.0.0.1:$(head -1 "$WORK/slack.port" | tr -dc 0-9)/services/T/B/x"

# The archive: <store>/raw/<day>/00/raw-<f>.jsonl.gz (the topic-archive layout of entry "raw"), and the
# dependents' output of each day kept aside in $WORK/deps (copied into the store before each replay round).
STORE=$WORK/store
echo "generating 3 days x $N events of ~300 bytes in $FILES gzip files a day..."
python3 - "$N" "$FILES" "$STORE" "${DAYS[@]}" <<'PY'
import os, random, subprocess, sys
n, files, store, days = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
pad = "x" * 170
for d, day in enumerate(days):
    rnd = random.Random(d)
    os.makedirs(f"{store}/raw/{day}/00", exist_ok=True)
    per = [n // files + (1 if f < n % files else 0) for f in range(files)]
    i = 0
    for f in range(files):
        with open(f"{store}/raw/{day}/00/raw-{f:02d}.jsonl.gz", "wb") as out:
            gz = subprocess.Popen(["gzip", "-1"], stdin=subprocess.PIPE, stdout=out)
            w = gz.stdin
            lines = []
            for _ in range(per[f]):
                lines.append('{"id":%d,"ts":"%sT%02d:%02d:%02d.%03dZ","user":"user-%d","type":"%s","page":"/p/%d","session":"%016x","pad":"%s"}\n'
                             % (i, day, (i // 3600000) % 24, (i // 60000) % 60, (i // 1000) % 60, i % 1000, rnd.randrange(100000),
                                ("click", "view", "buy")[i % 3], i % 977, rnd.getrandbits(64), pad))
                i += 1
                if len(lines) == 10000:
                    w.write("".join(lines).encode()); lines = []
            w.write("".join(lines).encode()); w.close()
            assert gz.wait() == 0
PY
for day in "${DAYS[@]}"; do
  for dep in unique channel; do
    mkdir -p "$WORK/deps/$dep/$day"
    for j in $(seq 0 $((DEP_FILES - 1))); do
      head -c $((DEP_KB * 1024)) /dev/urandom >"$WORK/deps/$dep/$day/part-$(printf %04d "$j").json.gz"
    done
  done
done
ARCHIVE_FILES=$(find "$STORE/raw" -name '*.jsonl.gz' | sort)
echo "archive: $(echo "$ARCHIVE_FILES" | wc -l) files, $(du -cb $ARCHIVE_FILES | tail -1 | cut -f1) bytes gzipped, $(zcat $ARCHIVE_FILES | wc -c) bytes of JSONL;" \
  "dependents: 2 folders x $DEP_FILES files x ${DEP_KB} KiB a day"
echo "$ARCHIVE_FILES" >"$WORK/files.txt"

cat >"$WORK/config.json" <<'JSON'
{"raw": {"outputKafkaTopic": "bench.replay",
         "dependentSinkSources": [{"type": "azure", "prefix": "unique"}, {"type": "azure", "prefix": "channel"}]}}
JSON

# send_lines alone: the replay's loop over the archived files without transaction or bookkeeping, with the
# options the replay passes (format jsonl, partition key, no key field).
cat >"$WORK/send.lua" <<LUA
local kafka = require("rewind.kafka")
local store = require("rewind.store")
return { params = { topic = { type = "string", doc = "t" } },
run = function(p)
  local st = store.open("$STORE")
  local prod = kafka.producer{ brokers = "$B" }
  local keys = {}
  for o in st:list("raw/") do keys[#keys + 1] = o.key end
  table.sort(keys)
  local sent, files = 0, 0
  for _, k in ipairs(keys) do
    local r = prod:send_lines(st:reader(k), { topic = p.topic, format = "jsonl", partition = "key" })
    sent, files = sent + r.sent, files + 1
  end
  return { sent = sent, files = files }
end }
LUA

m() { python3 benches/measure.py "$@"; }
KCATS=(); REPLAYS=(); SENDS=(); RSS=0
for r in $(seq "$ROUNDS"); do
  # untimed: a fresh replay (no day state, dependents back in place)
  rm -rf "$STORE/replay-state" "$STORE/unique" "$STORE/channel"
  cp -r "$WORK/deps/unique" "$WORK/deps/channel" "$STORE/"
  sync
  read -r t _ < <(m "zcat $(tr '\n' ' ' <"$WORK/files.txt") | kcat -P -b $B -t bench.kcat -X queue.buffering.max.messages=100000 -X enable.idempotence=true -X acks=all")
  KCATS+=("$t")
  read -r t rss < <(m "$BIN/rewind run --json --log-format=json replay store=$STORE config=$WORK/config.json source=raw startDate=${DAYS[0]} endDate=${DAYS[2]} brokers=$B >$WORK/replay.json 2>$WORK/replay.log")
  REPLAYS+=("$t"); [ "$rss" -gt "$RSS" ] && RSS=$rss
  cp "$WORK/replay.log" "$WORK/replay.$r.log"
  read -r t _ < <(m "$BIN/rewind run --json $WORK/send.lua topic=bench.send >$WORK/send.json")
  SENDS+=("$t")
  python3 - "$WORK" "$r" "${KCATS[-1]}" "${REPLAYS[-1]}" "${SENDS[-1]}" <<'PY'
import datetime, json, re, sys
work, r, kcat, rep, send = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
# step times from the replay's JSON log: "replay day D: <step>" lines, in order
ts = lambda s: datetime.datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", s).replace("Z", "+00:00")).timestamp()
steps = {}
for line in open(f"{work}/replay.{r}.log"):
    try: e = json.loads(line)
    except ValueError: continue
    msg = e.get("message") or (e.get("fields") or {}).get("message", "")
    if msg.startswith("replay day ") and ": " in msg:
        day, step = msg[len("replay day "):].split(": ", 1)
        steps.setdefault(day, []).append((step, ts(e["timestamp"])))
book = send_t = 0.0
for day, ss in steps.items():
    at = dict((s, t) for s, t in ss)
    # backing_up -> removed: backup + delete; removed -> committing: the sends; committing -> replayed:
    # the commit; replayed -> done: backup deletion
    if all(k in at for k in ("backing_up", "removed", "committing", "replayed", "done")):
        book += (at["removed"] - at["backing_up"]) + (at["done"] - at["replayed"])
        send_t += at["replayed"] - at["removed"]
print(f"round {r}: kcat {kcat:.2f} s, replay {rep:.2f} s (in the steps: backup+delete+cleanup {book:.2f} s, "
      f"send+commit {send_t:.2f} s, the rest - start, lock, transaction probe, Slack - {rep - book - send_t:.2f} s), "
      f"send_lines {send:.2f} s")
PY
done

python3 - "$N" "$WORK" "$RSS" "$ROUNDS" "${KCATS[*]}" "${REPLAYS[*]}" "${SENDS[*]}" <<'PY'
import json, sys
n, work, rss, rounds = 3 * int(sys.argv[1]), sys.argv[2], int(sys.argv[3]) / 1024, int(sys.argv[4])
kcats, reps, sends = ([float(x) for x in a.split()] for a in sys.argv[5:8])
med = lambda a: sorted(a)[(len(a) - 1) // 2]
kcat, rep, send = med(kcats), med(reps), med(sends)
fmt = lambda a: " ".join(f"{x:.2f}" for x in a)
res = json.load(open(f"{work}/replay.json"))
days = res["days"]
assert [d["status"] for d in days] == ["done"] * 3, days
assert all(d["transaction"] == "committed" for d in days), days
assert sum(d["events"] for d in days) == n, days
assert all(d["deleted"] == {"unique": d["deleted"]["unique"], "channel": d["deleted"]["channel"]} for d in days)
s = json.load(open(f"{work}/send.json"))
assert s["sent"] == n, s
slack = [json.loads(l) for l in open(f"{work}/slack.jsonl")]
assert len(slack) == 3 * rounds, len(slack)
print(f"events: {n} (3 days), transactional: {res['transactional']}, per day: "
      + "; ".join(f"{d['day']} {d['events']} events {d['files']} files, deleted {d['deleted']}, {d['seconds']:.2f} s" for d in days))
print(f"kcat (zcat | kcat -P):     {kcat:6.2f} s {n/kcat:10.0f} events/s  (median; rounds: {fmt(kcats)})")
print(f"rewind replay (3 days):    {rep:6.2f} s {n/rep:10.0f} events/s  (median; rounds: {fmt(reps)})  ratio replay/kcat = {kcat/rep:.2f}x (bar >= 1.0)")
print(f"send_lines alone:          {send:6.2f} s {n/send:10.0f} events/s  (median; rounds: {fmt(sends)})  ratio send_lines/kcat = {kcat/send:.2f}x (bar >= 1.5)")
print(f"replay peak RSS: {rss:.0f} MB (largest of {rounds} rounds; bar < 200 MB); Slack messages: {len(slack)} ({slack[-1]['message']['text'][:100]}...)")
PY
