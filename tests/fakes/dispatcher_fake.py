#!/usr/bin/env python3
"""A fake event dispatcher (python3 stdlib only), following api-notes.md "Event dispatcher": what
event-backup reads and event-restore writes (issue 17).

Usage: dispatcher_fake.py [--port 0]; prints its port on the first stdout line.
  GET  /api/v1/events/{source}/{event_type}?cursor=C&limit=N
       200 {"events": [...], "next_cursor": "...", "more": bool}. No cursor: from the start. limit: default
       100, 1..1000 (else 400). more=false with an empty list: caught up for now. A cursor that is not one
       this fake gave for that pair: 400 {"error": "bad cursor"}. Unknown pair: 404.
  GET  /api/v1/streams/{source}/{label}/{sha256}
       200 the bytes (Content-Length, application/octet-stream); 404 {"error": "unknown stream"}.
  POST /api/v1/restore/streams/{source}/{label}    header X-Sha256, body the bytes
       201 {"sha256", "created": true}; 200 ... "created": false when already there; 400 {"error": "hash
       mismatch: ..."} when the body's sha256 is another; 400 without the header.
  POST /api/v1/restore/events/{source}/{event_type}   body a JSON array of events, in order
       200 {"accepted": N}, all applied; 409 {"missing_streams": [sha256, ...]} when an event refers to a
       stream this source has not been given (nothing applied); 400 for a body that is not such an array.
  Events: {"id", "timestamp" (ms), "streams": [{"sha256", "label", "size"}], "payload": {...}}.
  Restored events are kept as posted, duplicates included, so a test sees "exactly once"; they also join
  the pair's events (GET serves them), as a dispatcher serves what it is given.
Test hooks (no faults, not logged):
  POST /_fake/seed     {"pairs": [["src", "type"], ...], "events": N per pair, "streams": D distinct,
                        "refs": R references per event (default 1), "min_size": 16, "max_size": 4096,
                        "seed": 1, "labels": ["image", "audio"], "spacing_ms": 2000}: the events of every pair, referring to D
                        distinct streams (so with N*pairs*R > D most references repeat), each event 1..spacing_ms
                        after the one before (2023-11-14 22:13 UTC first) -> the counts
  POST /_fake/append   {"source", "event_type", "count"}: that many more events arrive for the pair
  POST /_fake/restart  {"source", "event_type", "replay": k}: the source restarts and serves its last k
                        served events again on the next page (what a real source may do)
  GET  /_fake/restored {"events": {"src/type": [ids in the order accepted]}, "streams": ["src/label/sha"],
                        "stream_posts": n, "event_posts": n}
  GET  /_fake/stats    {"stream_gets": {sha: n}, "event_pages": n, "events": {"src/type": total}}
Plus /_fake/fail, /_fake/reset_faults, /_fake/log from fake_control.py (503 "busy" answers, answers lost
after applying, dropped connections).
"""
import argparse
import base64
import hashlib
import json
import os
import random
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the test tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_control as fc  # noqa: E402

STATE = {
    "events": {},      # (source, type) -> [event]
    "served": {},      # (source, type) -> offset served up to (for restarts)
    "replay": {},      # (source, type) -> events to serve again on the next page
    "streams": {},     # sha -> (seed, index, size, label)
    "restored_events": {},   # (source, type) -> [id]
    "restored_streams": {},  # (source, label, sha) -> True
    "stream_posts": 0, "event_posts": 0, "event_pages": 0, "stream_gets": {},
    "epoch": random.randrange(1 << 30),  # makes cursors opaque and specific to this fake
    "next_id": 0, "clock": 1_700_000_000_000, "spacing_ms": 2000, "rng": random.Random(1), "pool": [],
}


def stream_bytes(seed, index, size):
    return random.Random(seed * 1_000_003 + index).randbytes(size)


def cursor(pair, offset):
    raw = json.dumps({"p": "/".join(pair), "o": offset, "e": STATE["epoch"]}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_cursor(pair, text):
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        c = json.loads(raw)
        if c["p"] == "/".join(pair) and c["e"] == STATE["epoch"] and isinstance(c["o"], int) and c["o"] >= 0:
            return c["o"]
    except (ValueError, KeyError, TypeError):
        pass
    return None


def new_event(pair, refs):
    STATE["next_id"] += 1
    STATE["clock"] += STATE["rng"].randrange(1, STATE["spacing_ms"])
    pool = STATE["pool"]
    chosen = [pool[STATE["rng"].randrange(len(pool))] for _ in range(refs)] if pool else []
    return {"id": "%s-%s-%07d" % (pair[0], pair[1], STATE["next_id"]), "timestamp": STATE["clock"],
            "streams": [{"sha256": sha, "label": STATE["streams"][sha][3], "size": STATE["streams"][sha][2]}
                        for sha in chosen],
            "payload": {"n": STATE["next_id"], "kind": pair[1]}}


def seed(spec):
    rng = random.Random(spec.get("seed", 1))
    STATE["rng"] = rng
    STATE["spacing_ms"] = max(2, spec.get("spacing_ms", 2000))
    labels = spec.get("labels", ["image", "audio"])
    lo, hi = spec.get("min_size", 16), spec.get("max_size", 4096)
    for i in range(spec.get("streams", 0)):
        size = rng.randrange(lo, hi + 1)
        sha = hashlib.sha256(stream_bytes(spec.get("seed", 1), i, size)).hexdigest()
        STATE["streams"][sha] = (spec.get("seed", 1), i, size, labels[i % len(labels)])
        STATE["pool"].append(sha)
    refs = spec.get("refs", 1)
    for source, etype in spec.get("pairs", []):
        pair = (source, etype)
        STATE["events"].setdefault(pair, [])
        for _ in range(spec.get("events", 0)):
            STATE["events"][pair].append(new_event(pair, refs))
    return {"pairs": len(spec.get("pairs", [])), "streams": len(STATE["streams"]),
            "events": sum(len(v) for v in STATE["events"].values())}


def valid_event(e):
    return isinstance(e, dict) and isinstance(e.get("id"), str) and isinstance(e.get("timestamp"), int) \
        and isinstance(e.get("streams"), list) and all(isinstance(s, dict) and isinstance(s.get("sha256"), str)
                                                      and isinstance(s.get("label"), str) for s in e["streams"])


class Handler(fc.FakeHandler):
    def route(self, method, path, query, body):
        parts = [p for p in path.split("/") if p]
        q = dict(kv.partition("=")[::2] for kv in query.split("&") if kv)
        if method == "GET" and len(parts) == 5 and parts[:3] == ["api", "v1", "events"]:
            return self.events(tuple(parts[3:5]), q)
        if method == "GET" and len(parts) == 6 and parts[:3] == ["api", "v1", "streams"]:
            meta = STATE["streams"].get(parts[5])
            if meta is None or meta[3] != parts[4]:
                return fc.json_reply(404, {"error": "unknown stream"})
            STATE["stream_gets"][parts[5]] = STATE["stream_gets"].get(parts[5], 0) + 1
            return fc.Reply(200, stream_bytes(meta[0], meta[1], meta[2]), ctype="application/octet-stream")
        if method == "POST" and len(parts) == 6 and parts[:4] == ["api", "v1", "restore", "streams"]:
            return self.restore_stream(parts[4], parts[5], body)
        if method == "POST" and len(parts) == 6 and parts[:4] == ["api", "v1", "restore", "events"]:
            return self.restore_events((parts[4], parts[5]), body)
        return fc.json_reply(404, {"error": "not found: %s %s" % (method, path)})

    def events(self, pair, q):
        if pair not in STATE["events"]:
            return fc.json_reply(404, {"error": "unknown source or event type"})
        try:
            limit = int(q.get("limit", "100"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            return fc.json_reply(400, {"error": "limit must be 1..1000"})
        offset = 0
        if q.get("cursor"):
            offset = parse_cursor(pair, q["cursor"])
            if offset is None:
                return fc.json_reply(400, {"error": "bad cursor"})
        replay = STATE["replay"].pop(pair, 0)
        offset = max(0, offset - replay)
        evs = STATE["events"][pair]
        page = evs[offset:offset + limit]
        end = offset + len(page)
        STATE["served"][pair] = max(STATE["served"].get(pair, 0), end)
        STATE["event_pages"] += 1
        return fc.json_reply(200, {"events": page, "next_cursor": cursor(pair, end), "more": end < len(evs)})

    def restore_stream(self, source, label, body):
        want = (self.headers.get("X-Sha256") or "").strip().lower()
        if not want:
            return fc.json_reply(400, {"error": "X-Sha256 header required"})
        got = hashlib.sha256(body).hexdigest()
        if got != want:
            return fc.json_reply(400, {"error": "hash mismatch: header %s, body %s" % (want, got)})
        STATE["stream_posts"] += 1
        key = (source, label, got)
        created = key not in STATE["restored_streams"]
        STATE["restored_streams"][key] = True
        return fc.json_reply(201 if created else 200, {"sha256": got, "created": created})

    def restore_events(self, pair, body):
        try:
            evs = json.loads(body or b"null")
        except ValueError:
            evs = None
        if not isinstance(evs, list) or not all(valid_event(e) for e in evs):
            return fc.json_reply(400, {"error": "expected a JSON array of events with id, timestamp, streams"})
        have = STATE["restored_streams"]
        missing = sorted({s["sha256"] for e in evs for s in e["streams"]
                          if (pair[0], s["label"], s["sha256"]) not in have})
        if missing:
            return fc.json_reply(409, {"missing_streams": missing})
        STATE["event_posts"] += 1
        STATE["restored_events"].setdefault(pair, []).extend(e["id"] for e in evs)
        # A dispatcher serves what it is given: restored events join the pair's events.
        STATE["events"].setdefault(pair, []).extend(evs)
        return fc.json_reply(200, {"accepted": len(evs)})

    def control_route(self, method, path, query, body):
        try:
            spec = json.loads(body or b"{}")
        except ValueError:
            return fc.json_reply(400, {"error": "expected JSON"})
        if method == "POST" and path == "/_fake/seed":
            return fc.json_reply(200, seed(spec))
        if method == "POST" and path == "/_fake/append":
            pair = (spec["source"], spec["event_type"])
            STATE["events"].setdefault(pair, [])
            for _ in range(spec.get("count", 1)):
                STATE["events"][pair].append(new_event(pair, spec.get("refs", 1)))
            return fc.json_reply(200, {"events": len(STATE["events"][pair])})
        if method == "POST" and path == "/_fake/restart":
            pair = (spec["source"], spec["event_type"])
            STATE["replay"][pair] = spec.get("replay", 1)
            return fc.json_reply(200, {"replay": STATE["replay"][pair]})
        if method == "GET" and path == "/_fake/restored":
            return fc.json_reply(200, {
                "events": {"/".join(p): ids for p, ids in STATE["restored_events"].items()},
                "streams": sorted("/".join(k) for k in STATE["restored_streams"]),
                "stream_posts": STATE["stream_posts"], "event_posts": STATE["event_posts"]})
        if method == "GET" and path == "/_fake/stats":
            return fc.json_reply(200, {"stream_gets": STATE["stream_gets"], "event_pages": STATE["event_pages"],
                                       "events": {"/".join(p): len(v) for p, v in STATE["events"].items()}})
        return None


def main():
    ap = argparse.ArgumentParser(description="a fake event dispatcher")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    fc.serve(Handler, args.port)


if __name__ == "__main__":
    main()
