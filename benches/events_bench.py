#!/usr/bin/env python3
"""Helpers of benches/events.sh (issue 17), python3 stdlib only. Subcommands:

  seed URL PAIRS N STREAMS SIZES MAX_SIZE
      Seeds the fake dispatcher (tests/fakes/dispatcher_fake.py) at URL: PAIRS (a/x,a/y,...) get N events in
      all (N / len(PAIRS) each), one stream reference per event, chosen uniformly from a pool of distinct
      streams sized so that about STREAMS distinct (source, label, sha256) are referenced (the backup
      de-duplicates per source: every source draws from the same pool). SIZES is a mixture "w:lo-hi,..."
      (K/M suffixes, KiB/MiB): the pool is seeded bucket by bucket (the fake draws sizes uniformly in
      [min_size, max_size] per seed call), each bucket's ranges capped at MAX_SIZE. Prints JSON.
  fetch URL PAIRS DIR OUT THREADS
      Reads every event of PAIRS (pages of 1,000; timed), writes OUT (ids per pair, the distinct streams),
      then downloads each distinct stream once into DIR/<source>/<label>/<aa>/<sha256> with THREADS
      threads (timed; what the plain copy uploads), after a sequential sample of up to 500 (latency).
      Prints JSON.
  fake NODELAY
      Runs tests/fakes/dispatcher_fake.py --port 0 (prints its port), with TCP_NODELAY on its sockets when
      NODELAY is 1: http.server writes an answer's headers and body in two writes, and without TCP_NODELAY
      the body waits for the client's delayed ACK (~40 ms per answer on Linux), which would cap every
      connection at ~25 requests/s whatever the client. The fake itself is not changed (a class attribute
      of the stdlib's StreamRequestHandler, set before it serves).
  check URL OUT
      Compares the fake at URL's /_fake/restored with OUT: every pair's ids in the same order, each once;
      every distinct stream restored. Prints JSON; exits 1 when they differ.
"""
import hashlib
import http.client
import json
import math
import os
import sys
import threading
import time
from urllib.parse import urlsplit


def conn(url):
    u = urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=120)


def request(c, method, path, body=None):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    if r.status >= 300:
        raise SystemExit("%s %s: HTTP %d %s" % (method, path, r.status, data[:200]))
    return data


def parse_size(text):
    text = text.strip().upper().rstrip("B").rstrip("I")
    mult = {"K": 1024, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(float(text.rstrip("KMG")) * mult)


def parse_sizes(spec, cap):
    buckets = []
    for part in spec.split(","):
        w, rng = part.split(":")
        lo, hi = (parse_size(x) for x in rng.split("-"))
        if lo < cap or lo == hi <= cap:  # a range starting at the cap or above is left out
            buckets.append((float(w), lo, min(hi, cap)))
    if not buckets:
        raise SystemExit("SIZES %r leaves no size range under MAX_SIZE %d" % (spec, cap))
    return buckets


def pool_size(refs_per_source, target):
    """D such that sum over sources of D * (1 - exp(-r / D)) = target (expected distinct references)."""
    def expected(d):
        return sum(d * (1 - math.exp(-r / d)) for r in refs_per_source)
    if target >= sum(refs_per_source):
        raise SystemExit("STREAMS (%d) must be fewer than the references (%d)" % (target, sum(refs_per_source)))
    lo, hi = 1.0, 1e9
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if expected(mid) < target else (lo, mid)
    return max(1, round(hi))


def cmd_seed(url, pairs, n, streams, sizes, max_size):
    pairs = [p.split("/", 1) for p in pairs.split(",")]
    per_pair = n // len(pairs)
    refs = {}
    for source, _ in pairs:
        refs[source] = refs.get(source, 0) + per_pair
    pool = pool_size(list(refs.values()), streams)
    buckets = parse_sizes(sizes, parse_size(max_size))
    total_w = sum(w for w, _, _ in buckets)
    c = conn(url)
    t = time.monotonic()
    seeded, left = [], pool
    for i, (w, lo, hi) in enumerate(buckets):
        count = left if i == len(buckets) - 1 else round(pool * w / total_w)
        left -= count
        request(c, "POST", "/_fake/seed", json.dumps({"streams": count, "min_size": lo, "max_size": hi, "seed": i + 1}))
        seeded.append({"streams": count, "min_size": lo, "max_size": hi})
    res = json.loads(request(c, "POST", "/_fake/seed", json.dumps({
        "pairs": pairs, "events": per_pair, "streams": 0, "seed": 17})))
    mean = sum(w * (lo + hi) / 2 for w, lo, hi in buckets) / total_w
    print(json.dumps({"pool": pool, "buckets": seeded, "events": res["events"], "per_pair": per_pair,
                      "mean_size": mean, "seconds": round(time.monotonic() - t, 2)}))


def cmd_fetch(url, pairs, out_dir, out_json, threads):
    pairs = [p.split("/", 1) for p in pairs.split(",")]
    c = conn(url)
    ids, streams, refs = {}, {}, 0
    t = time.monotonic()
    for source, etype in pairs:
        cursor, got = None, []
        while True:
            q = "limit=1000" + ("&cursor=" + cursor if cursor else "")
            page = json.loads(request(c, "GET", "/api/v1/events/%s/%s?%s" % (source, etype, q)))
            for e in page["events"]:
                got.append(e["id"])
                for s in e["streams"]:
                    refs += 1
                    streams[(source, s["label"], s["sha256"])] = s["size"]
            cursor = page["next_cursor"]
            if not page["more"] or not page["events"]:
                break
        ids["%s/%s" % (source, etype)] = got
    events_s = time.monotonic() - t
    todo = sorted(streams)
    with open(out_json, "w") as f:
        json.dump({"ids": ids, "streams": ["/".join(k) for k in todo]}, f)

    def get(c, key):
        source, label, sha = key
        data = request(c, "GET", "/api/v1/streams/%s/%s/%s" % (source, label, sha))
        if hashlib.sha256(data).hexdigest() != sha:
            raise SystemExit("stream %s: bytes do not match the sha256" % "/".join(key))
        d = os.path.join(out_dir, source, label, sha[:2])
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, sha), "wb") as f:
            f.write(data)
        return len(data)

    # Sequential sample: the fake's latency per stream, one request at a time (files rewritten below).
    sample = todo[:500]
    t = time.monotonic()
    for key in sample:
        get(c, key)
    seq_s = time.monotonic() - t
    # Everything, THREADS at a time.
    lock, nbytes, it = threading.Lock(), [0], iter(todo)

    def worker():
        c = conn(url)
        while True:
            with lock:
                key = next(it, None)
            if key is None:
                return
            n = get(c, key)
            with lock:
                nbytes[0] += n
    t = time.monotonic()
    ws = [threading.Thread(target=worker) for _ in range(threads)]
    for w in ws:
        w.start()
    for w in ws:
        w.join()
    par_s = time.monotonic() - t
    total = sum(streams.values())
    if nbytes[0] != total:
        raise SystemExit("downloaded %d bytes, the events say %d" % (nbytes[0], total))
    sizes = sorted(streams.values())
    print(json.dumps({
        "events": sum(len(v) for v in ids.values()), "refs": refs, "streams": len(todo), "bytes": total,
        "min": sizes[0], "median": sizes[len(sizes) // 2], "max": sizes[-1],
        "events_seconds": round(events_s, 3), "sample": len(sample), "sample_seconds": round(seq_s, 3),
        "sample_bytes": sum(streams[k] for k in sample), "threads": threads, "seconds": round(par_s, 3)}))


def cmd_check(url, out_json):
    want = json.load(open(out_json))
    got = json.loads(request(conn(url), "GET", "/_fake/restored"))
    problems = []
    for pair, ids in want["ids"].items():
        have = got["events"].get(pair, [])
        if have != ids:
            dup = len(have) - len(set(have))
            problems.append("%s: %d events restored (%d duplicates), %d expected, %s" % (
                pair, len(have), dup, len(ids), "same order" if sorted(have) == sorted(ids) else "different set"))
    extra = set(got["events"]) - set(want["ids"])
    if extra:
        problems.append("events for pairs never backed up: %s" % sorted(extra))
    if set(got["streams"]) != set(want["streams"]):
        problems.append("streams: %d restored, %d expected, %d missing" % (
            len(got["streams"]), len(want["streams"]), len(set(want["streams"]) - set(got["streams"]))))
    print(json.dumps({"ok": not problems, "problems": problems,
                      "events": sum(len(v) for v in got["events"].values()), "streams": len(got["streams"]),
                      "stream_posts": got["stream_posts"], "event_posts": got["event_posts"]}))
    sys.exit(1 if problems else 0)


def cmd_fake(nodelay):
    fakes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fakes")
    sys.path.insert(0, fakes)
    import fake_control  # the module dispatcher_fake.py imports (the same object: sys.modules)
    fake_control.FakeHandler.disable_nagle_algorithm = nodelay
    sys.argv = ["dispatcher_fake.py", "--port", "0"]
    import runpy
    runpy.run_path(os.path.join(fakes, "dispatcher_fake.py"), run_name="__main__")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "fake":
        cmd_fake(args[0] == "1")
    elif cmd == "seed":
        cmd_seed(args[0], args[1], int(args[2]), int(args[3]), args[4], args[5])
    elif cmd == "fetch":
        cmd_fetch(args[0], args[1], args[2], args[3], int(args[4]))
    elif cmd == "check":
        cmd_check(args[0], args[1])
    else:
        raise SystemExit(__doc__)
