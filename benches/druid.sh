#!/usr/bin/env bash
# Druid backup and prune benchmarks (issue 5). Runs rewind and the reference tools in the same run and
# prints ratios. QUICK=1: small sizes (smoke). Needs PostgreSQL server binaries, zstd, GNU time, python3.
#
# 1) druid-backup of a deep-storage tree (2 GiB; QUICK: 64 MiB) + a metadata DB with 100,000 segment rows
#    (QUICK: 2,000) vs `pg_dump | zstd -1 -T0` then `tar -cf - | zstd -1 -T0`, one after the other, then
#    `sync -f` of both outputs (rewind fsyncs what it stores before it returns; without the sync the
#    reference's bytes are still in the page cache: that time is printed too).
#    Bar: wall ≤ 1.15× the reference, peak RSS < 150 MB.
# 2) prune over 10,000 snapshots (QUICK: 1,000) in an S3 server (Garage by default, see below): decide time
#    (listing + reading manifests + plan) with a cold and a warm manifest cache, and delete batches.
#    Bar: decide < 5 s. PRUNE_ONLY=1 runs only this part; PRUNE=0 skips it.
# 3) incremental deep storage (issue 19; INCREMENTAL=0 skips it), beside restic 0.14 (Debian's package,
#    installed when missing) backing up the same pg_dump (--stdin) and deep-storage directory:
#    the first druid-backup above against restic's first; a second with nothing changed; then one night of
#    Druid work (1% of the deep storage as new segments in a new interval directory, and a kill task
#    deleting 0.5% of the old ones) and a third. Bars (as backup-dir's): nothing changed, deep-storage bytes
#    stored < 1% of the first and wall <= 1.0x restic's second; one night, deep-storage bytes stored
#    <= 1.2x the new segments' bytes. The metadata dump is stored whole every night (reported apart).
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then GIB_MB=64; ROWS=2000; SNAPS=1000; else GIB_MB=2048; ROWS=100000; SNAPS=10000; fi
if [ -z "${REWIND:-}" ]; then cargo build --release --quiet; REWIND=$PWD/target/release/rewind; fi

PRUNE_ONLY=${PRUNE_ONLY:-0}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
WORK=$(mktemp -d /tmp/rewind-bench-druid.XXXXXX)
chmod 755 "$WORK"
cleanup() {
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

secs() { python3 -c 'import time; print(time.time())'; }

if [ "$PRUNE_ONLY" != 1 ]; then
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$WORK/pg"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$WORK/pg"
as_pg "$PGBIN/initdb" -D "$WORK/pg/data" -U druid -A trust -E UTF8 --locale=C --no-sync >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w \
  -o "-c listen_addresses='' -c unix_socket_directories='$WORK/pg' -p 5433 -c fsync=off" start >/dev/null
export PGHOST=$WORK/pg PGPORT=5433 PGUSER=druid PGDATABASE=druid
"$PGBIN/psql" -q -d postgres -c "create database druid"
python3 - "$ROWS" > "$WORK/schema.sql" <<'PY'
import sys
rows = int(sys.argv[1])
print(open("tests/common/pg.rs").read().split('DRUID_SCHEMA: &str = r#"')[1].split('"#;')[0])
print(f"""insert into druid_segments
select 'wikipedia_' || i, 'wikipedia', '2019-12-03T10:00:00.000Z',
  to_char(timestamp '2019-01-01' + i * interval '1 hour', 'YYYY-MM-DD"T"HH24:MI:SS.000Z'),
  to_char(timestamp '2019-01-01' + (i + 1) * interval '1 hour', 'YYYY-MM-DD"T"HH24:MI:SS.000Z'),
  true, 'v1', true,
  convert_to(json_build_object('dataSource','wikipedia','version','v1','binaryVersion',9,'size',1048576,
    'dimensions','page,user,country,city,channel,namespace','metrics','count,added,deleted,delta',
    'shardSpec',json_build_object('type','numbered','partitionNum',0,'partitions',1),
    'loadSpec',json_build_object('type','local','path','/opt/shared/segments/wikipedia/' || i || '/index.zip'))::text, 'UTF8'),
  '2019-12-03T10:00:00.000Z'
from generate_series(1, {rows}) i;""")
PY
"$PGBIN/psql" -q -v ON_ERROR_STOP=1 -f "$WORK/schema.sql" >/dev/null
# Deep storage: 1 MiB incompressible files (segments are zips) plus some compressible indexing logs.
DEEP=$WORK/shared
mkdir -p "$DEEP/segments/wikipedia" "$DEEP/indexing-logs"
head -c $((GIB_MB * 1024 * 1024)) /dev/urandom | split -b 1048576 -a 5 - "$DEEP/segments/wikipedia/index_"
for i in $(seq 1 50); do seq 1 20000 > "$DEEP/indexing-logs/task_$i.log"; done
sync
echo "fixture: $(du -sh "$DEEP" | cut -f1) deep storage, $ROWS segment rows"

# Reference: pg_dump | zstd, then tar | zstd.
mkdir -p "$WORK/ref"
t0=$(secs)
pg_dump | zstd -q -1 -T0 > "$WORK/ref/dump.sql.zst"
tar -C "$DEEP" -cf - . | zstd -q -1 -T0 > "$WORK/ref/shared.tar.zst"
t1=$(secs)
# rewind's backup is on disk when it returns (fsync before the manifest); the reference's only once synced.
sync -f "$WORK/ref/dump.sql.zst" "$WORK/ref/shared.tar.zst"
t2=$(secs)
REF_CACHED=$(python3 -c "print(round($t1-$t0,3))")
REF=$(python3 -c "print(round($t2-$t0,3))")
# rewind
t0=$(secs)
/usr/bin/time -f "%M" -o "$WORK/rss" "$REWIND" run druid-backup -q --json store="$WORK/store" deep_storage="$DEEP" >"$WORK/rw1.json"
t1=$(secs)
RW=$(python3 -c "print(round($t1-$t0,3))")
RSS_MB=$(( $(cat "$WORK/rss") / 1024 ))
RATIO=$(python3 -c "print(round($RW/$REF,3))")
echo "druid-backup: rewind ${RW}s vs pg_dump|zstd + tar|zstd + sync ${REF}s -> ratio ${RATIO} (bar <= 1.15); peak RSS ${RSS_MB} MB (bar < 150)"
echo "  (the reference before its sync, data still in the page cache: ${REF_CACHED}s, ratio $(python3 -c "print(round($RW/$REF_CACHED,3))"))"
echo "sizes: rewind $(du -sb "$WORK/store" | cut -f1) bytes, reference $(du -sb "$WORK/ref" | cut -f1) bytes"
rm -rf "$WORK/ref"
if [ "${INCREMENTAL:-1}" = 1 ]; then
  . benches/druid_incremental.sh
fi
fi

[ "${PRUNE:-1}" = 1 ] || exit 0
# Prune: in an S3 server. S3_BENCH_URL (s3://bucket/prefix, AWS_* variables for the endpoint) picks one;
# else PRUNE_S3=garage (the default: Garage from crates.io, a real S3 server with an indexed listing,
# installed into ~/.cache/rewind-tests/garage when missing, a ~30 min build on 2 cores), PRUNE_S3=moto
# (moto's server, installed by tests/run.sh: it lists ~1,700 keys/s and serves ~130 GETs/s, so it cannot
# show the 5 s bar), PRUNE_S3=local (the local store). Without Garage: moto, then the local store.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SERVER_PID=
trap 'if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi; cleanup' EXIT
GARAGE_VERSION=2.5.0
GARAGE=${GARAGE_BIN:-$HOME/.cache/rewind-tests/garage/bin/garage}
MOTO=${MOTO_SERVER:-$HOME/.cache/rewind-tests/moto/bin/moto_server}
WANT=${PRUNE_S3:-garage}
if [ -z "${S3_BENCH_URL:-}" ] && [ "$WANT" = garage ] && [ ! -x "$GARAGE" ]; then
  echo "installing Garage $GARAGE_VERSION from crates.io into ~/.cache/rewind-tests/garage (once; ~30 min on 2 cores)"
  cargo install garage --version "$GARAGE_VERSION" --locked --quiet --no-default-features \
    --features bundled-libs,lmdb,sqlite --root "$HOME/.cache/rewind-tests/garage" >"$WORK/garage-install.log" 2>&1 ||
    { echo "Garage install failed, falling back to moto:"; tail -5 "$WORK/garage-install.log"; WANT=moto; }
fi
if [ -n "${S3_BENCH_URL:-}" ]; then
  PSTORE=$S3_BENCH_URL; KIND="S3 server ($S3_BENCH_URL)"
elif [ "$WANT" = garage ] && [ -x "$GARAGE" ]; then
  # Single node: --single-node lays out the cluster, --default-bucket creates the key and the bucket
  # before the S3 API listens. Garage ignores If-None-Match on PutObject (rewind.lock's create_if_absent
  # always wins there): fine for this single-writer bench, not for concurrent writers.
  GPORT=$(free_port); RPORT=$(free_port)
  mkdir -p "$WORK/garage"
  cat > "$WORK/garage/garage.toml" <<EOF
metadata_dir = "$WORK/garage/meta"
data_dir = "$WORK/garage/data"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$RPORT"
rpc_public_addr = "127.0.0.1:$RPORT"
rpc_secret = "$(python3 -c 'import secrets; print(secrets.token_hex(32))')"

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:$GPORT"
EOF
  GARAGE_DEFAULT_ACCESS_KEY=GKrewindbench GARAGE_DEFAULT_SECRET_KEY=rewind-bench-secret-key \
    GARAGE_DEFAULT_BUCKET=bench RUST_LOG=warn \
    "$GARAGE" -c "$WORK/garage/garage.toml" server --single-node --default-bucket >"$WORK/garage.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 150); do curl -s -o /dev/null "http://127.0.0.1:$GPORT" && break; sleep 0.2; done
  export AWS_ACCESS_KEY_ID=GKrewindbench AWS_SECRET_ACCESS_KEY=rewind-bench-secret-key AWS_REGION=us-east-1 \
    AWS_ENDPOINT_URL=http://127.0.0.1:$GPORT AWS_EC2_METADATA_DISABLED=true
  PSTORE=s3://bench/rewind
  KIND="S3 server (Garage $("$GARAGE" --version 2>/dev/null | grep -o '[0-9][0-9.]*' | head -1), single node, LMDB)"
elif [ "$WANT" != local ] && [ -x "$MOTO" ]; then
  MPORT=$(free_port)
  (cd "$WORK" && exec "$MOTO" -H 127.0.0.1 -p "$MPORT" >"$WORK/moto.log" 2>&1) &
  SERVER_PID=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$MPORT" && break; sleep 0.2; done
  curl -s -X PUT "http://127.0.0.1:$MPORT/bench" >/dev/null
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing-secret AWS_REGION=us-east-1 \
    AWS_ENDPOINT_URL=http://127.0.0.1:$MPORT AWS_EC2_METADATA_DISABLED=true
  PSTORE=s3://bench/rewind; KIND="S3 server (moto)"
else
  PSTORE=$WORK/prune-store; KIND="LOCAL store (no S3 server available)"
fi
t0=$(secs)
"$REWIND" run benches/druid_seed.lua -q store="$PSTORE" prefix=bench n="$SNAPS" >/dev/null
t1=$(secs)
echo "seeded $SNAPS snapshots (object + manifest each) in the $KIND in $(python3 -c "print(round($t1-$t0,1))")s"
export XDG_CACHE_HOME=$WORK/cache
POLICY="keep_daily=7 keep_weekly=4 keep_monthly=12 keep_within=2d"
# Cold: a dry run with no manifest cache (every manifest is read, then cached: manifests never change);
# warm: the real prune, manifests from the cache, the listing still deciding what exists.
# shellcheck disable=SC2086
for f in prune-cold prune; do
  if [ "$f" = prune-cold ]; then extra=dry_run=true; else extra=; fi
  t0=$(secs)
  "$REWIND" run prune -q --json store="$PSTORE" prefix=bench $POLICY $extra > "$WORK/$f.json" 2>"$WORK/$f.err" \
    || { echo "prune ($f) failed:"; tail -5 "$WORK/$f.err"; exit 1; }
  t1=$(secs)
  python3 - "$WORK/$f.json" "$KIND" "$f" "$(python3 -c "print(round($t1-$t0,2))")" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
r = json.loads(text[text.index("\n{") + 1:] if not text.startswith("{") else text)
r = r.get("result", r)
what = "dry run, cold manifest cache" if sys.argv[3] == "prune-cold" else "real prune, warm manifest cache"
print(f"prune ({what}) over {r['snapshots']} snapshots in the {sys.argv[2]}: decided in {r['decide_seconds']:.2f}s "
      f"(listing+reading {r['list_seconds']:.2f}s with {r['manifests_cached']} manifests from cache, plan {r['plan_seconds']:.2f}s; bar < 5 s), "
      f"kept {r['kept']}, removed {r['removed']}, deleted {r['deleted_keys']} keys in {r['delete_batches']} batches, "
      f"delete {r.get('delete_seconds', 0):.2f}s; whole run {sys.argv[4]}s")
PY
done
