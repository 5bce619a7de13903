# Part 3 of benches/druid.sh (sourced there, after the first druid-backup into $WORK/store): incremental
# deep storage beside restic. Uses WORK, DEEP, REWIND, RW (the first backup's wall) and the PG* variables.
if ! command -v restic >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "restic is missing: apt-get install restic (as root)"; exit 1; }
  echo "installing restic (apt-get)"
  apt-get install -y -qq restic >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq restic >/dev/null; }
fi
export RESTIC_PASSWORD=rewind-bench RESTIC_CACHE_DIR=$WORK/restic-cache
REPO=$WORK/restic
restic -r "$REPO" init >/dev/null
# obj FILE NAME: the size of object NAME in a druid-backup --json result; field FILE KEY: a result field.
obj() { python3 - "$1" "$2" <<'PY'
import json, sys
t = open(sys.argv[1]).read(); r = json.loads(t[t.index("{"):]); r = r.get("result", r)
print(sum(o["size"] for o in r["objects"] if o["name"] == sys.argv[2]))
PY
}
field() { python3 -c "import json, sys; t = open(sys.argv[1]).read(); r = json.loads(t[t.index('{'):]); r = r.get('result', r); print(r.get(sys.argv[2], ''))" "$1" "$2"; }
store_size() { du -sb "$1" | cut -f1; }
timed() { local t0 t1; sync; t0=$(secs); "$@"; t1=$(secs); python3 -c "print(round($t1-$t0,3))"; }
restic_backup() {
  pg_dump | restic -r "$REPO" backup -q --stdin --stdin-filename druid.sql >/dev/null
  restic -r "$REPO" backup -q "$DEEP" >/dev/null
}
rewind_backup() { "$REWIND" run druid-backup -q --json store="$WORK/store" deep_storage="$DEEP" >"$WORK/$1.json"; }

echo "== 3. incremental deep storage (druid-backup; restic: pg_dump --stdin, then the deep-storage directory)"
RS1=$(timed restic_backup)
DEEP1=$(obj "$WORK/rw1.json" druid_shared); DUMP1=$(obj "$WORK/rw1.json" druid_metadata_dump)
echo "first: rewind ${RW}s (deep storage $DEEP1 bytes stored, dump $DUMP1), restic ${RS1}s ($(store_size "$REPO") bytes)"

# round N: druid-backup, then restic, once more; sets RWN RSN (walls), DEEPN DUMPN (object sizes), ADDN
# RADDN (store and repository growth).
round() {
  local before rbefore
  before=$(store_size "$WORK/store"); rbefore=$(store_size "$REPO")
  printf -v "RW$1" %s "$(timed rewind_backup "rw$1")"
  printf -v "RS$1" %s "$(timed restic_backup)"
  printf -v "DEEP$1" %s "$(obj "$WORK/rw$1.json" druid_shared)"
  printf -v "DUMP$1" %s "$(obj "$WORK/rw$1.json" druid_metadata_dump)"
  printf -v "ADD$1" %s $(( $(store_size "$WORK/store") - before ))
  printf -v "RADD$1" %s $(( $(store_size "$REPO") - rbefore ))
}
round 2
echo "nothing changed: rewind ${RW2}s (files_new $(field "$WORK/rw2.json" files_new), deep storage $DEEP2 bytes," \
  "dump $DUMP2, store +$ADD2), restic ${RS2}s (repository +$RADD2)"

# One night: new segments in a new interval (1% of the deep storage), a kill task removes 0.5% of the old.
NEWDIR=$DEEP/segments/wikipedia/2019-12-04T00:00:00.000Z_2019-12-05T00:00:00.000Z/2019-12-05T01:00:00.000Z
mkdir -p "$NEWDIR"
NEW_MB=$(( GIB_MB / 100 > 0 ? GIB_MB / 100 : 1 ))
head -c $((NEW_MB * 1024 * 1024)) /dev/urandom | split -b 1048576 -a 3 - "$NEWDIR/index_"
old=("$DEEP"/segments/wikipedia/index_*)
rm "${old[@]:0:$(( GIB_MB / 200 > 0 ? GIB_MB / 200 : 1 ))}"
NEW_BYTES=$((NEW_MB * 1024 * 1024))
round 3
echo "one night ($NEW_BYTES bytes of new segments): rewind ${RW3}s (files_new $(field "$WORK/rw3.json" files_new)," \
  "deep storage $DEEP3 bytes, dump $DUMP3, store +$ADD3), restic ${RS3}s (repository +$RADD3)"

# Every file of every snapshot composes from the archives that hold it, sha256 checked (tests/druid.rs
# restores an incremental deep storage byte for byte; here its metadata rows name no real files).
"$REWIND" run verify -q store="$WORK/store" prefix=druid >"$WORK/verify.out" 2>&1 ||
  { echo "verify failed:"; tail -5 "$WORK/verify.out"; exit 1; }
echo "verify (every file of the three snapshots composed and hashed): ok"

python3 - "$RW" "$RS1" "$DEEP1" "$RW2" "$RS2" "$DEEP2" "$DUMP2" "$DEEP3" "$DUMP3" "$NEW_BYTES" "$RW3" "$RS3" <<'PY'
import sys
rw1, rs1, deep1, rw2, rs2, deep2, dump2, deep3, dump3, new, rw3, rs3 = map(float, sys.argv[1:])
rows = [
    ("first backup, wall", f"{rw1:.2f} s", f"{rs1:.2f} s", f"{rw1 / rs1:.3f}x", "", ""),
    ("nothing changed, deep-storage bytes stored", f"{deep2:.0f} B ({100 * deep2 / deep1:.4f}%)", "", "",
     "< 1% of the first", "PASS" if deep2 < 0.01 * deep1 else "FAIL"),
    ("nothing changed, wall", f"{rw2:.2f} s ({rw2 / rw1:.3f}x the first)", f"{rs2:.2f} s", f"{rw2 / rs2:.3f}x",
     "<= 1.0x restic", "PASS" if rw2 <= rs2 else "FAIL"),
    ("nothing changed, metadata dump stored whole", f"{dump2:.0f} B", "", "", "", ""),
    ("one night, deep-storage bytes stored", f"{deep3:.0f} B = {deep3 / new:.3f}x the new", "", "",
     "<= 1.2x the new", "PASS" if deep3 <= 1.2 * new else "FAIL"),
    ("one night, wall", f"{rw3:.2f} s", f"{rs3:.2f} s", f"{rw3 / rs3:.3f}x", "", ""),
]
head = ("measure (Druid-shaped)", "rewind", "restic", "rewind/restic", "bar", "result")
w = [max(len(r[i]) for r in rows + [head]) for i in range(6)]
for r in [head, tuple("-" * n for n in w)] + rows:
    print("| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(r)) + " |")
PY
