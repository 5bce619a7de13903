#!/usr/bin/env python3
"""Helpers of benches/incremental.sh (issue 19).

  incremental.py gen TREE TOTAL_BYTES FILES     deterministic fixture; prints a JSON summary
  incremental.py change TREE FRACTION           rewrites that share of the files with new bytes; JSON summary
  incremental.py size DIR                       bytes of the regular files under DIR (apparent sizes)
  incremental.py get FILE KEY                   a field of a rewind --json result (empty when absent)
  incremental.py report RESULTS                 the table (RESULTS: key=value lines written by the script)

The bytes are incompressible and deterministic: AES-128-CTR of zeros with a fixed key (openssl enc), the
same on every run; sizes and names come from random.Random with a fixed seed. Sizes: ~10% tiny (0-4 KiB),
~88% about 100 KiB (64-136 KiB), ~2% larger (256 KiB-4 MiB, log-uniform), scaled so that the tree holds
TOTAL_BYTES exactly. Two files of exactly 10 KiB are named for the restore step: keep/note-keep.bin (never
changed) and edit/note-edit.bin (always among the changed files). Layout: dNN/eN/[gN/]fNNNNN.bin, about 25 files per dNN/eN."""
import json, os, random, subprocess, sys

KEEP, EDIT = "d07/e3/keep/note-keep.bin", "d21/e8/edit/note-edit.bin"


def stream(key):
    """An endless pipe of deterministic random bytes (AES-128-CTR of /dev/zero under a fixed key)."""
    return subprocess.Popen(["openssl", "enc", "-aes-128-ctr", "-nosalt", "-K", key, "-iv", "0" * 32,
                             "-in", "/dev/zero"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)


def read_exact(pipe, n):
    parts, left = [], n
    while left > 0:
        b = pipe.read(min(left, 1 << 20))
        if not b:
            sys.exit("openssl stopped early")
        parts.append(b)
        left -= len(b)
    return b"".join(parts)


def write_files(tree, items, key):
    """items: [(rel, size)], written in order from the stream of `key`."""
    p = stream(key)
    try:
        for rel, size in items:
            path = os.path.join(tree, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                left = size
                while left > 0:
                    n = min(left, 1 << 20)
                    f.write(read_exact(p.stdout, n))
                    left -= n
    finally:
        p.kill()
        p.wait()


def gen(tree, total, files):
    rnd = random.Random(19)
    if files < 3:
        sys.exit("FILES must be at least 3")
    sizes = []
    for _ in range(files - 2):
        x = rnd.random()
        if x < 0.10:
            sizes.append(rnd.randint(0, 4096))
        elif x < 0.98:
            sizes.append(rnd.randint(64 << 10, 136 << 10))
        else:
            sizes.append(int(2 ** rnd.uniform(18, 22)))
    fixed = 2 * 10240 + sum(s for s in sizes if s <= 4096)
    scalable = sum(s for s in sizes if s > 4096)
    if total <= fixed or scalable == 0:
        sys.exit("SIZE too small for FILES")
    k = (total - fixed) / scalable
    sizes = [max(4097, int(s * k)) if s > 4096 else s for s in sizes]
    # The remainder goes to the largest file, so that the tree is TOTAL_BYTES exactly.
    big = max(range(len(sizes)), key=sizes.__getitem__)
    sizes[big] += total - fixed - sum(s for s in sizes if s > 4096)
    # About 25 files per directory pair dNN/eN, half of them one level further down (gN).
    pairs = max(4, files // 25)
    items = []
    for i, s in enumerate(sizes):
        j = i % pairs
        sub = "g%d/" % ((i // pairs) % 3) if i % 2 else ""
        items.append(("d%02d/e%d/%sf%05d.bin" % (j // 10, j % 10, sub, i), s))
    items += [(KEEP, 10240), (EDIT, 10240)]
    write_files(tree, items, "1919" * 8)
    got = sum(s for _, s in items)
    assert got == total, (got, total)
    dirs = {os.path.dirname(r) for r, _ in items}
    srt = sorted(s for _, s in items)
    print(json.dumps({"files": len(items), "bytes": got, "dirs": len(dirs), "median": srt[len(srt) // 2],
                      "tiny": sum(1 for s in srt if s <= 4096), "large": sum(1 for s in srt if s >= 256 << 10),
                      "max": srt[-1], "keep": KEEP, "edit": EDIT}))


def walk(tree):
    out = []
    for d, _, fs in os.walk(tree):
        for f in fs:
            out.append(os.path.relpath(os.path.join(d, f), tree))
    return sorted(out)


def change(tree, fraction):
    rels = [r for r in walk(tree) if r not in (KEEP, EDIT)]
    n = max(1, round((len(rels) + 2) * fraction))
    pick = random.Random(1919).sample(rels, n - 1) + [EDIT]
    items = [(r, os.path.getsize(os.path.join(tree, r))) for r in sorted(pick)]
    write_files(tree, items, "2020" * 8)
    print(json.dumps({"files": len(items), "bytes": sum(s for _, s in items)}))


def size(d):
    total = 0
    for root, _, fs in os.walk(d):
        for f in fs:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    print(total)


def get(path, key):
    text = open(path).read()
    try:
        r = json.loads(text[text.index("{"):])
    except ValueError:
        print("")
        return
    r = r.get("result", r) if isinstance(r, dict) else r
    v = r.get(key) if isinstance(r, dict) else None
    print("" if v is None else v)


def human(n):
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.2f %s" % (n, unit))
        n /= 1024


def report(path):
    r = {}
    for line in open(path):
        if "=" in line:
            k, v = line.rstrip("\n").split("=", 1)
            r[k] = v
    f = lambda k: float(r[k]) if r.get(k, "") != "" else None
    rows, missed = [], []

    def row(what, rewind, ref, ratio, bar, ok):
        res = "" if ok is None else ("PASS" if ok else "FAIL")
        if ok is False:
            missed.append(what)
        rows.append((what, rewind, ref, ratio, bar, res))

    def ratio(a, b):
        return "%.3fx" % (a / b) if a is not None and b else "n/a"

    t1, rt1 = f("rw1_wall"), f("rs1_wall")
    row("1. first backup, wall", "%.2f s" % t1, "%.2f s" % rt1, ratio(t1, rt1), "<= 0.5x restic", t1 <= 0.5 * rt1)
    row("1. first backup, CPU (user + system)", "%.2f s" % f("rw1_cpu"), "%.2f s" % f("rs1_cpu"),
        ratio(f("rw1_cpu"), f("rs1_cpu")), "", None)
    rss = f("rw1_rss_kib") / 1024
    row("1. first backup, peak RSS", "%.0f MiB" % rss, "%.0f MiB" % (f("rs1_rss_kib") / 1024),
        ratio(rss, f("rs1_rss_kib") / 1024), "< 150 MB", rss * 1048576 < 150e6)
    row("1. first backup, bytes stored", human(f("rw1_added")), human(f("rs1_added")),
        ratio(f("rw1_added"), f("rs1_added")), "(tree: %s)" % human(f("tree_bytes")), None)
    t2, rt2 = f("rw2_wall"), f("rs2_wall")
    a2, ra2 = f("rw2_added"), f("rs2_added")
    row("2. unchanged, bytes added", "%s (%.4f%%)" % (human(a2), 100 * a2 / f("rw1_added")),
        "%s (%.4f%%)" % (human(ra2), 100 * ra2 / f("rs1_added")), "", "< 1% of the first", a2 < 0.01 * f("rw1_added"))
    row("2. unchanged, wall vs the first", "%.2f s" % t2, "", ratio(t2, t1), "<= 0.1x the first", t2 <= 0.1 * t1)
    row("2. unchanged, wall vs restic's second", "%.2f s" % t2, "%.2f s" % rt2, ratio(t2, rt2), "<= 1.0x restic",
        t2 <= rt2)
    cb = f("changed_bytes")
    a3, ra3 = f("rw3_added"), f("rs3_added")
    row("3. 1%% changed (%d files, %s), bytes added" % (f("changed_files"), human(cb)),
        "%s = %.3fx changed" % (human(a3), a3 / cb), "%s = %.3fx changed" % (human(ra3), ra3 / cb),
        ratio(a3, ra3), "<= 1.2x changed", a3 <= 1.2 * cb)
    t3, rt3 = f("rw3_wall"), f("rs3_wall")
    row("3. 1% changed, wall", "%.2f s" % t3, "%.2f s" % rt3, ratio(t3, rt3), "", None)
    store = f("store_bytes")
    for tag, name in (("keep", "unchanged since the first backup"), ("edit", "changed in step 3")):
        tw, rtw, sb = f("rw4%s_wall" % tag), f("rs4%s_wall" % tag), f("rw4%s_stored" % tag)
        row("4. restore one 10 KiB file (%s), wall" % name, "%.3f s" % tw, "%.3f s" % rtw, ratio(tw, rtw),
            "< 0.5 s", tw < 0.5)
        if sb is None:
            row("4. ... stored bytes read", "not reported", "", "", "< 1% of the store", False)
        else:
            row("4. ... stored bytes read", "%s (ranges_read %s) = %.4f%% of the store (%s)" % (
                human(sb), r.get("rw4%s_ranges" % tag, "?"), 100 * sb / store, human(store)), "", "",
                "< 1% of the store", sb < 0.01 * store)
    tf, rtf = f("rw4full_wall"), f("rs4full_wall")
    row("4. restore the newest snapshot whole, wall", "%.2f s" % tf, "%.2f s" % rtf, ratio(tf, rtf),
        "(diff -r: equal)", None)
    # The median of the rounds (of an even number, the mean of the middle two): the wall of a 1 GiB write to
    # this disk varies by +-20% run to run.
    def median(name, key, n):
        v = sorted(f("%s%d_%s" % (name, i, key)) for i in range(1, n + 1))
        return (v[(n - 1) // 2] + v[n // 2]) / 2

    n5 = int(r.get("rounds5", "4"))
    best = lambda kind, key: median("rw5" + kind, key, n5)
    plain, sealed = best("plain", "wall"), best("age", "wall")
    row("5. full backup encrypted (age) vs plain, median wall (%d rounds)" % n5, "%.2f s vs %.2f s" % (sealed, plain),
        "", "", "<= 1.15x plain", sealed <= 1.15 * plain)
    rows[-1] = rows[-1][:3] + (ratio(sealed, plain) + " plain",) + rows[-1][4:]
    row("5. ... median CPU (user + system)", "%.2f s vs %.2f s" % (best("age", "cpu"), best("plain", "cpu")), "",
        ratio(best("age", "cpu"), best("plain", "cpu")) + " plain", "", None)
    if r.get("mem5") == "1":
        mp, ms = median("rw5mplain", "wall", 4), median("rw5mage", "wall", 4)
        row("5. ... the same into memory (/dev/shm, no disk), median wall", "%.2f s vs %.2f s" % (ms, mp), "",
            ratio(ms, mp) + " plain", "", None)
    row("5. ... bytes stored", "%s vs %s" % (human(f("sealed_bytes")), human(f("plain_bytes"))), "",
        ratio(f("sealed_bytes"), f("plain_bytes")) + " plain", "", None)
    rp, ra = f("rw5plainrestore_wall"), f("rw5agerestore_wall")
    row("5. restore whole, encrypted vs plain, wall", "%.2f s vs %.2f s" % (ra, rp), "", ratio(ra, rp) + " plain",
        "(diff -r: equal)", None)
    head = ("measure", "rewind", "restic", "rewind/restic", "bar", "result")
    w = [max(len(str(x[i])) for x in rows + [head]) for i in range(len(head))]
    line = lambda x: "| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(x)) + " |"
    print(line(head))
    print("|" + "|".join("-" * (n + 2) for n in w) + "|")
    for x in rows:
        print(line(x))
    print("bars: %d missed%s" % (len(missed), (": " + "; ".join(missed)) if missed else ""))
    if r.get("quick") == "1":
        print("QUICK=1 is a smoke run: the bars are meant for the full size (1 GiB in 10,000 files); here fixed "
              "costs (start-up, the index) dominate the times and the byte shares")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "gen":
        gen(args[0], int(args[1]), int(args[2]))
    elif cmd == "change":
        change(args[0], float(args[1]))
    elif cmd == "size":
        size(args[0])
    elif cmd == "get":
        get(args[0], args[1])
    elif cmd == "report":
        report(args[0])
    else:
        sys.exit(__doc__)
