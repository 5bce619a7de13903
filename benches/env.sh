#!/usr/bin/env bash
# Environment backup benchmark, MySQL part (issue 15): env-backup and env-restore of one MariaDB database
# against mariadb-dump and the mariadb client, in the same run, alternating (reference, rewind, reference,
# rewind) and keeping the best of each; prints ratios. QUICK=1: small sizes (smoke). Needs Debian's MariaDB
# server (mariadbd, mariadb-install-db) and client (mariadb, mariadb-dump), zstd, python3.
#
# A throwaway MariaDB server in the work dir holds database `bench`: one table of realistic rows (int PK,
# VARCHARs of varied text, DATETIME, DECIMAL, a JSON TEXT column, one secondary index) making a dump of about
# 1 GiB (QUICK: 32 MiB; SIZE_MB=n to change). Every client connects over TCP as user bench, the password in
# MYSQL_PWD only.
# 1) backup: `rewind run env-backup mysql.databases=bench level=1` vs
#    `mariadb-dump --single-transaction --routines --events --triggers --hex-blob --quick bench | zstd -1 -T0`.
#    Bar: wall ≤ 1.1× the reference, peak RSS < 150 MB. Peak RSS is the sum over rewind's process tree
#    (rewind and the clients it runs), sampled every 50 ms; the largest single process (ru_maxrss, what
#    benches/measure.py and /usr/bin/time report) is printed beside it.
# 2) restore: `rewind run env-restore safety_backup=false force=true` (verifies the snapshot, drops and
#    recreates bench, loads the dump, compares row counts) vs drop + create database bench2, then
#    `zstd -d < dump | mariadb bench2`. Bar: wall ≤ 1.1× the reference.
# Each restored table is compared with the original (CHECKSUM TABLE, untimed). Exits non-zero on errors (a
# failed run, a restore that differs), not on a missed bar: the summary says MET or MISSED.
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then SIZE_MB=${SIZE_MB:-32}; else SIZE_MB=${SIZE_MB:-1024}; fi
export ROUNDS=${ROUNDS:-3}  # each measurement this many times, alternating; the best of each is compared
if [ -z "${REWIND:-}" ]; then cargo build --release --quiet; REWIND=$PWD/target/release/rewind; fi

server_program() { command -v "$1" 2>/dev/null || echo "/usr/sbin/$1"; }
MARIADBD=$(server_program mariadbd)
INSTALL_DB=$(server_program mariadb-install-db)
WORK=$(mktemp -d /tmp/rewind-bench-env.XXXXXX)
chmod 755 "$WORK"
SERVER_PID=
cleanup() {
  # Like pg_ctl -m immediate: the data goes with the directory, so the server is killed, not shut down.
  local pid
  pid=$(cat "$WORK/db/mariadbd.pid" 2>/dev/null || true)
  if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
as_mysql() { if [ "$(id -u)" = 0 ]; then runuser -u mysql -- "$@"; else "$@"; fi; }
# The administrator: socket authentication as root (or as the user who ran mariadb-install-db).
root_sql() { mariadb --no-defaults --socket="$WORK/db/sock" --user="$(id -un)" "$@"; }
fail() { echo "$1"; [ -n "${2:-}" ] && tail -20 "$2"; exit 1; }

# measure OUT CMD...: runs CMD (through bash -c when one argument), stdout to OUT.out, stderr to OUT.err;
# prints 'wall_s largest_rss_kib tree_rss_kib': ru_maxrss of the tree (its largest member, as
# benches/measure.py reports it) and the peak of the sum of every member's RSS, sampled every 50 ms.
cat > "$WORK/measure_tree.py" <<'PY'
import os, subprocess, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
page_kib = os.sysconf("SC_PAGE_SIZE") // 1024
def tree_rss(root):
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    s = f.read()
                children.setdefault(int(s[s.rindex(")") + 2:].split()[1]), []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open("/proc/%d/statm" % pid) as f:
                total += int(f.read().split()[1]) * page_kib
        except (OSError, ValueError, IndexError):
            pass
    return total
t = time.monotonic()
with open(out + ".out", "wb") as o, open(out + ".err", "wb") as e:
    p = subprocess.Popen(["bash", "-c", cmd[0]] if len(cmd) == 1 else cmd, stdout=o, stderr=e)
peak = 0
while True:
    pid, status, ru = os.wait4(p.pid, os.WNOHANG)
    if pid:
        break
    peak = max(peak, tree_rss(p.pid))
    time.sleep(0.05)
wall = time.monotonic() - t
p.returncode = os.waitstatus_to_exitcode(status)
if p.returncode != 0:
    sys.exit("command failed (exit %d): %s" % (p.returncode, " ".join(cmd)))
print("%.3f %d %d" % (wall, ru.ru_maxrss, max(peak, ru.ru_maxrss)))
PY
measure() { python3 "$WORK/measure_tree.py" "$@"; }

# The server.
mkdir -p "$WORK/db"
[ "$(id -u)" = 0 ] && chown mysql:mysql "$WORK/db"
as_mysql "$INSTALL_DB" --no-defaults --auth-root-authentication-method=socket --datadir="$WORK/db/data" \
  --skip-test-db --skip-name-resolve --tmpdir="$WORK/db" > "$WORK/install.log" 2>&1 || fail "mariadb-install-db failed:" "$WORK/install.log"
PORT=$(free_port)
as_mysql "$MARIADBD" --no-defaults --datadir="$WORK/db/data" --socket="$WORK/db/sock" \
  --pid-file="$WORK/db/mariadbd.pid" --log-error="$WORK/db/error.log" --tmpdir="$WORK/db" \
  --skip-networking=0 --port="$PORT" --bind-address=127.0.0.1 --skip-name-resolve \
  --innodb-flush-log-at-trx-commit=0 --innodb-buffer-pool-size=512M --skip-log-bin \
  --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci --local-infile=1 \
  > "$WORK/mariadbd.out" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
  kill -0 "$SERVER_PID" 2>/dev/null || fail "mariadbd exited during startup:" "$WORK/db/error.log"
  mariadb-admin --no-defaults --socket="$WORK/db/sock" --user="$(id -un)" --connect-timeout=2 ping >/dev/null 2>&1 && break
  sleep 0.2
done
mariadb-admin --no-defaults --socket="$WORK/db/sock" --user="$(id -un)" ping >/dev/null 2>&1 ||
  fail "mariadbd did not answer within 60 s:" "$WORK/db/error.log"
BENCH_PWD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
root_sql <<SQL
CREATE USER bench@localhost IDENTIFIED BY '$BENCH_PWD';
CREATE USER bench@'127.0.0.1' IDENTIFIED BY '$BENCH_PWD';
GRANT ALL PRIVILEGES ON *.* TO bench@localhost;
GRANT ALL PRIVILEGES ON *.* TO bench@'127.0.0.1';
CREATE DATABASE bench CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE TABLE bench.orders (
  id INT UNSIGNED NOT NULL PRIMARY KEY,
  customer VARCHAR(100) NOT NULL,
  email VARCHAR(150) NOT NULL,
  city VARCHAR(80) NOT NULL,
  status VARCHAR(20) NOT NULL,
  note VARCHAR(500) NOT NULL,
  created_at DATETIME NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  attrs TEXT NOT NULL,
  KEY created_at (created_at)
) ENGINE=InnoDB;
SQL
# Clients as rewind runs them: over TCP as bench, the password in MYSQL_PWD only.
CONN="--host=127.0.0.1 --port=$PORT --user=bench"
export BENCH_PWD
bench_env() { MYSQL_PWD=$BENCH_PWD "$@"; }

# The rows: tab-separated lines generated by python straight into LOAD DATA through a FIFO, until they make
# about SIZE_MB of dump. Names and cities with non-ASCII letters, notes of 3-40 words, 1-5 order items in the JSON.
cat > "$WORK/gen.py" <<'PY'
import random, sys, time
out, target = sys.argv[1], int(sys.argv[2])
rnd = random.Random(15)
first = ("Anna Ben Carla Dmitri Elif Farid Greta Hiro Ines Jonas Kemal Lea Marta Nils Olga Pablo Quentin Rosa Sven "
         "Tomás Ulla Vera Wei Yusuf Zoë Łukasz Ana Björn Chloé Dara").split()
last = ("Müller Schmidt Novak García Rossi Dubois Kowalski Silva Jensen Nakamura Öztürk Petrov Svensson Haddad O'Brien "
        "Fernández Costa Horvat Kim Nguyen Bauer Lindqvist Moreau Santos Weber Yılmaz Papadopoulos").split()
cities = ("Berlin Hamburg München Köln Zürich Wien Paris Lyon Madrid São_Paulo Lisboa Kraków Warszawa Praha Budapest "
          "Oslo Stockholm København Helsinki Tallinn Riga Vilnius Athína İstanbul Tokyo Osaka Seoul Toronto Montréal "
          "Chicago Austin").replace("_", " ").split()
domains = "example.com mail.example.org corp.example.net shop.example.de post.example.fr".split()
statuses = ["new", "paid", "shipped", "delivered", "cancelled", "refunded", "on_hold"]
words = ("order delivery package customer address requested changed please call before arriving leave at door "
         "neighbour fragile gift wrap invoice company vat number express standard return exchange size colour "
         "missing item damaged box refund partial discount voucher code applied support ticket reopened priority "
         "weekend morning evening floor lift stairs reception signature required tracking delayed customs warehouse "
         "backorder split shipment confirmed email phone note from agent escalated resolved pending payment card "
         "bank transfer paypal klarna installment first second third reminder").split()
sources = ["web", "ios", "android", "pos", "api", "marketplace"]
tags = ["vip", "b2b", "first_order", "newsletter", "promo", "loyalty", "gift", "express", "bulk", "international"]
uas = ["Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1",
       "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0", "okhttp/4.12.0", "Shop-iOS/7.3.1 CFNetwork/1496"]
t0 = 1577836800  # 2020-01-01
ch, cho, rint, rr = rnd.choice, rnd.choices, rnd.randrange, rnd.random
written, n, buf = 0, 0, []
with open(out, "w", encoding="utf-8", newline="\n") as f:
    while written < target:
        n += 1
        fn, ln = ch(first), ch(last)
        tm = time.gmtime(t0 + rint(5 * 365 * 86400))
        items = ",".join('{"sku":"SKU-%06d","qty":%d,"price":%d.%02d}' % (rint(1000000), rint(1, 6), rint(1, 400), rint(100))
                         for _ in range(rint(1, 6)))
        attrs = '{"source":"%s","ip":"10.%d.%d.%d","ua":"%s","items":[%s],"tags":[%s],"score":%.4f}' % (
            ch(sources), rint(256), rint(256), rint(256), ch(uas), items,
            ",".join('"%s"' % t for t in rnd.sample(tags, rint(5))), rr())
        line = "%d\t%s %s\t%s.%s%d@%s\t%s\t%s\t%s\t%04d-%02d-%02d %02d:%02d:%02d\t%d.%02d\t%s\n" % (
            n, fn, ln, fn.lower(), ln.lower().replace("'", ""), rint(1000), ch(domains), ch(cities), ch(statuses),
            " ".join(cho(words, k=rint(3, 41))), tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
            rint(1, 500000), rint(100), attrs)
        buf.append(line)
        written += len(line) + line.count('"') + 20  # as SQL: quotes, commas, escaped '"', UTF-8 letters
        if len(buf) == 5000:
            f.write("".join(buf))
            buf = []
    f.write("".join(buf))
print(n)
PY
mkfifo "$WORK/rows.tsv"
t0=$(date +%s.%N)
python3 "$WORK/gen.py" "$WORK/rows.tsv" $((SIZE_MB * 1048576)) > "$WORK/rows.count" &
GEN_PID=$!
if ! root_sql --local-infile=1 bench -e "LOAD DATA LOCAL INFILE '$WORK/rows.tsv' INTO TABLE orders
      CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\t' LINES TERMINATED BY '\n'; ANALYZE TABLE orders" >/dev/null; then
  kill "$GEN_PID" 2>/dev/null || true
  fail "loading the rows failed"
fi
wait "$GEN_PID"
ROWS=$(cat "$WORK/rows.count")
CHECKSUM=$(root_sql -N -e "CHECKSUM TABLE bench.orders" | cut -f2)
INNODB_BYTES=$(root_sql -N -e "SELECT data_length + index_length FROM information_schema.tables
  WHERE table_schema = 'bench' AND table_name = 'orders'")
echo "fixture: database bench, table orders: $ROWS rows, InnoDB $((INNODB_BYTES / 1048576)) MiB" \
  "(generated and loaded in $(python3 -c "import time; print(round(time.time() - $t0, 1))")s)"

# check_restored DATABASE: the restored table equals the original (rows and CHECKSUM TABLE), untimed.
check_restored() {
  local n sum
  n=$(root_sql -N -e "SELECT COUNT(*) FROM $1.orders")
  sum=$(root_sql -N -e "CHECKSUM TABLE $1.orders" | cut -f2)
  [ "$n" = "$ROWS" ] && [ "$sum" = "$CHECKSUM" ] ||
    fail "restore into $1 differs: $n rows, checksum $sum (expected $ROWS rows, checksum $CHECKSUM)"
}
mib() { awk -v b="$1" 'BEGIN {printf "%.0f", b / 1048576}'; }
best() { printf '%s\n' "$@" | sort -g | head -1; }
max() { printf '%s\n' "$@" | sort -g | tail -1; }
ERRORS=0
rewind_failed() { echo "  rewind $1 failed (exit non-zero):"; tail -20 "$WORK/$1.err"; ERRORS=$((ERRORS + 1)); }

# 1) Backup, alternating. Each run starts from nothing: the reference file and rewind's store are removed.
mkdir -p "$WORK/ref"
REF_B=(); RW_B=(); RW_B_LARGEST=(); RW_B_TREE=(); REF_B_TREE=(); RW_NC=()
for round in $(seq 1 "$ROUNDS"); do
  rm -rf "$WORK/ref/bench.sql.zst" "$WORK/store"; sync
  read -r t _ tree < <(bench_env measure "$WORK/ref-backup" "set -o pipefail; mariadb-dump $CONN --single-transaction \
    --routines --events --triggers --hex-blob --quick bench | zstd -q -1 -T0 > $WORK/ref/bench.sql.zst") ||
    fail "reference backup failed:" "$WORK/ref-backup.err"
  REF_B+=("$t"); REF_B_TREE+=("$tree")
  sync
  if out=$(bench_env measure "$WORK/backup" "$REWIND" run env-backup -q --json store="$WORK/store" prefix=bench \
    mysql.databases=bench mysql.host=127.0.0.1 mysql.port="$PORT" mysql.user=bench level=1); then
    read -r t largest tree <<< "$out"
    RW_B+=("$t"); RW_B_LARGEST+=("$largest"); RW_B_TREE+=("$tree")
    echo "  round $round: backup rewind ${t}s (peak RSS: tree $((tree / 1024)) MiB, largest process $((largest / 1024)) MiB)" \
      "vs mariadb-dump | zstd ${REF_B[-1]}s (tree $((REF_B_TREE[-1] / 1024)) MiB)"
  else
    rewind_failed backup
    echo "  round $round: backup reference mariadb-dump | zstd ${REF_B[-1]}s (tree $((REF_B_TREE[-1] / 1024)) MiB)"
  fi
  # For context: the same backup without its exact row counts (a COUNT(*) per table on the server).
  rm -rf "$WORK/store-nc"; sync
  if out=$(bench_env measure "$WORK/backup-nc" "$REWIND" run env-backup -q --json store="$WORK/store-nc" prefix=bench \
    mysql.databases=bench mysql.host=127.0.0.1 mysql.port="$PORT" mysql.user=bench level=1 mysql.count_rows=false); then
    read -r t _ _ <<< "$out"
    RW_NC+=("$t")
    echo "  round $round: backup rewind mysql.count_rows=false ${t}s"
  fi
done
DUMP_BYTES=$(zstd -q -d < "$WORK/ref/bench.sql.zst" | wc -c)
REF_ZST=$(stat -c %s "$WORK/ref/bench.sql.zst")
RW_ZST=$(python3 - "$WORK/backup.out" <<'PY' 2>/dev/null || echo "?"
import json, sys
text = open(sys.argv[1]).read()
r = json.loads(text[text.index("{"):])
r = r.get("result", r)
print(sum(o["size"] for o in r["objects"] if o["name"].startswith("mysql-")))
PY
)
echo "dump: $DUMP_BYTES bytes of SQL ($(mib "$DUMP_BYTES") MiB); zstd -1: reference $REF_ZST bytes ($(mib "$REF_ZST") MiB)," \
  "rewind's object $RW_ZST bytes"

# 2) Restore, alternating. The reference drops and creates its database too; rewind restores the snapshot of
# the last backup above into bench.
REF_R=(); RW_R=(); RW_R_LARGEST=(); RW_R_TREE=(); REF_R_TREE=()
for round in $(seq 1 "$ROUNDS"); do
  sync
  read -r t _ tree < <(bench_env measure "$WORK/ref-restore" "set -o pipefail; mariadb $CONN -e 'DROP DATABASE IF EXISTS bench2;
    CREATE DATABASE bench2 CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci' && zstd -q -d < $WORK/ref/bench.sql.zst | mariadb $CONN bench2") ||
    fail "reference restore failed:" "$WORK/ref-restore.err"
  REF_R+=("$t"); REF_R_TREE+=("$tree")
  check_restored bench2
  if [ "${#RW_B[@]}" = 0 ]; then
    echo "  round $round: restore reference zstd -d | mariadb ${REF_R[-1]}s (tree $((REF_R_TREE[-1] / 1024)) MiB;" \
      "rewind skipped: no backup)"
    continue
  fi
  sync
  if out=$(bench_env measure "$WORK/restore" "$REWIND" run env-restore -q --json store="$WORK/store" prefix=bench \
    mysql.databases=bench mysql.host=127.0.0.1 mysql.port="$PORT" mysql.user=bench safety_backup=false force=true); then
    read -r t largest tree <<< "$out"
    RW_R+=("$t"); RW_R_LARGEST+=("$largest"); RW_R_TREE+=("$tree")
    check_restored bench
    echo "  round $round: restore rewind ${t}s (peak RSS: tree $((tree / 1024)) MiB, largest process $((largest / 1024)) MiB)" \
      "vs zstd -d | mariadb ${REF_R[-1]}s (tree $((REF_R_TREE[-1] / 1024)) MiB)"
  else
    rewind_failed restore
    echo "  round $round: restore reference zstd -d | mariadb ${REF_R[-1]}s (tree $((REF_R_TREE[-1] / 1024)) MiB)"
  fi
done

# Summary.
python3 - "$QUICK" "$ROWS" "$DUMP_BYTES" "$REF_ZST" "$(nproc)" "$(best "${REF_B[@]}")" "$(best "${RW_B[@]:-}")" \
  "$(max "${RW_B_TREE[@]:-}")" "$(max "${RW_B_LARGEST[@]:-}")" "$(max "${REF_B_TREE[@]}")" \
  "$(best "${REF_R[@]}")" "$(best "${RW_R[@]:-}")" "$(max "${RW_R_TREE[@]:-}")" "$(max "${RW_R_LARGEST[@]:-}")" \
  "$(max "${REF_R_TREE[@]}")" <<'PY'
import os, sys
quick, rows, dump, ref_zst, cpus = sys.argv[1:6]
ref_b, rw_b, b_tree, b_largest, ref_b_tree, ref_r, rw_r, r_tree, r_largest, ref_r_tree = (
    float(a) if a else None for a in sys.argv[6:16])
def ratio_row(what, rw, ref):
    if rw is None:
        return [what, "FAILED", "%.2f s" % ref, "-", "<= 1.10", "-"]
    r = rw / ref
    return [what, "%.2f s" % rw, "%.2f s" % ref, "%.2f" % r, "<= 1.10", "MET" if r <= 1.10 else "MISSED"]
def rss_row(what, tree, largest, ref, bar):
    ref = "%.0f MB" % (ref * 1024 / 1e6)
    if tree is None:
        return [what, "FAILED", ref, "-", bar, "-"]
    return [what, "%.0f MB (largest process %.0f MB)" % (tree * 1024 / 1e6, largest * 1024 / 1e6),
            ref, "-", bar, "MET" if tree * 1024 < 150e6 else "MISSED"]
table = [["measurement", "rewind", "reference", "ratio", "bar", ""],
         ratio_row("backup wall (best of %s)" % os.environ["ROUNDS"], rw_b, ref_b),
         rss_row("backup peak RSS (process tree)", b_tree, b_largest, ref_b_tree, "< 150 MB"),
         ratio_row("restore wall (best of %s)" % os.environ["ROUNDS"], rw_r, ref_r),
         rss_row("restore peak RSS (process tree)", r_tree, r_largest, ref_r_tree, "(< 150 MB)")]
print("\n== summary: database bench, %s rows, %.0f MiB of SQL dump (zstd -1: %.0f MiB), %s CPUs%s" % (
    rows, int(dump) / 1048576, int(ref_zst) / 1048576, cpus, " (QUICK=1)" if quick == "1" else ""))
widths = [max(len(r[i]) for r in table) for i in range(6)]
for r in table:
    print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
PY
[ "$ERRORS" = 0 ] || { echo "$ERRORS rewind run(s) failed"; exit 1; }
if [ "${#RW_NC[@]}" -gt 0 ]; then
  python3 -c "import sys; nc, ref = float(sys.argv[1]), float(sys.argv[2]); print('backup without row counts (mysql.count_rows=false, context): %.2f s, ratio %.2f' % (nc, nc / ref))" \
    "$(best "${RW_NC[@]}")" "$(best "${REF_B[@]}")"
fi
