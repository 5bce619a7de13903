#!/usr/bin/env python3
"""A stateful fake Druid coordinator + overlord in one process (python3 stdlib only), following api-notes.md.

Usage: druid_cluster.py --segments FILE.json [--port 0] [--faults JSON]
Prints "PORT <n>" on stdout once listening. FILE.json is a list of segments
  {"id", "dataSource", "interval": "2019-12-01T00:00:00.000Z/2019-12-02T00:00:00.000Z", "version", "used", "payload"}
(the payload is Druid's DataSegment JSON: loadSpec, dimensions, metrics, shardSpec, binaryVersion, size...).
Every used segment counts as loaded and served (no historicals are modelled).

Coordinator:
- POST /druid/coordinator/v1/datasources/{ds}/markUnused   {"interval": I} | {"segmentIds": [..]}
- POST /druid/coordinator/v1/datasources/{ds}/markUsed     (same; both or neither key: 400)
    -> {"numChangedSegments": N}, N = segments whose flag actually changed. With an interval: the segments
    whose interval is contained in I. markUsed skips a segment overshadowed by a used one of a higher
    version whose interval contains it (Druid marks only non-overshadowed segments used). Unknown ids are
    not counted.
- POST /druid/coordinator/v1/metadata/datasources/{ds}/segments?full   body: [I, ...]
    -> used segments overlapping any I, as DataSegment JSON (the payload plus dataSource, interval, version,
    identifier). Without ?full: their ids.
- GET  /druid/coordinator/v1/datasources/{ds}/intervals/{start_end}  ("_" for "/")
    -> ids of the used segments contained in the interval (Druid's default answer); with ?simple
    {"<interval>": {"size", "count"}}; with ?full {"<interval>": {"<id>": {"metadata": DataSegment, "servers": []}}}
- GET  /druid/coordinator/v1/loadstatus -> {"<ds>": 100.0} for every datasource with a used segment
- GET  /status/health -> true
Overlord:
- POST /druid/indexer/v1/datasources/{ds}/markUnused|markUsed  (as on the coordinator; newer Druid)
- POST /druid/indexer/v1/task  {"type": "kill", "dataSource", "interval", "batchSize", "id"?} -> {"task": "<id>"}
    (an "id" already taken: 400 "Task [id] already exists", as Druid)
- GET  /druid/indexer/v1/task/{id}/status -> {"task": id, "status": {"id", "status", "statusCode", ...}}
    RUNNING for the first `polls_running` polls (default 1), then SUCCESS: the kill then deletes the
    UNUSED segments of its datasource contained in its interval (used ones are never deleted). Unknown task: 404.
Anything else: 404 with a JSON error, as Druid answers. Errors are {"error": "<text>"}.

Test hooks (not Druid):
- GET  /_fake/state    -> every segment: {"id", "dataSource", "interval", "version", "used"}
- GET  /_fake/requests -> every request so far except /_fake/ ones: {"method", "path", "body", "status"}
- POST /_fake/faults   {faults} -> replaces the faults (answers the new ones); GET shows them

Faults (--faults or /_fake/faults), a JSON object:
- {"<op>": {"fail_before": N}}  the next N <op> requests answer 500 and change nothing
- {"<op>": {"fail_after_apply": N, "mode": "500"|"drop"}}  the next N <op> requests are applied, then
    answered 500 (default) or the connection is closed without an answer: a success whose answer was lost
  <op> is one of markUnused, markUsed (coordinator and overlord paths alike), segments (metadata query),
  kill (task submission).
- {"overlord_not_leader": true | N}  every /druid/indexer/ request (or the next N) answers 503, as a
    non-leader overlord
- {"overlord_missing": true}  the overlord mark paths answer 404, as an older Druid
- {"kill": {"status": "FAILED", "polls_running": 3}}  kill tasks end FAILED (deleting nothing) and stay
    RUNNING for 3 polls; both may be combined with the counters above
"""
import argparse
import json
import sys
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

LOCK = threading.Lock()
STATE = {"segments": [], "faults": {}, "requests": [], "tasks": {}, "next_task": 0}


def instant(s):
    s = s.strip()
    if len(s) == 10:
        s += "T00:00:00"
    t = datetime.fromisoformat(s.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def interval(s):
    try:
        a, b = s.split("/")
        return instant(a), instant(b)
    except (AttributeError, TypeError, ValueError):
        raise ValueError("Invalid interval [%s]" % s)


def contains(outer, inner):
    return outer[0] <= inner[0] and inner[1] <= outer[1]


def overlaps(a, b):
    return a[0] < b[1] and b[0] < a[1]


def segment_json(seg):
    out = dict(seg.get("payload") or {})
    out.update({"dataSource": seg["dataSource"], "interval": seg["interval"], "version": seg["version"],
                "identifier": seg["id"]})
    return out


def overshadowed(seg):
    iv = interval(seg["interval"])
    return any(o["used"] and o["dataSource"] == seg["dataSource"] and o["version"] > seg["version"]
               and contains(interval(o["interval"]), iv) for o in STATE["segments"])


class Fail(Exception):
    def __init__(self, mode):
        self.mode = mode


def fault_before(op):
    f = STATE["faults"].get(op) or {}
    if f.get("fail_before", 0) > 0:
        f["fail_before"] -= 1
        raise Fail("500")


def fault_after(op):
    f = STATE["faults"].get(op) or {}
    if f.get("fail_after_apply", 0) > 0:
        f["fail_after_apply"] -= 1
        raise Fail(f.get("mode", "500"))


def mark(ds, body, used):
    op = "markUsed" if used else "markUnused"
    if not isinstance(body, dict):
        return 400, {"error": "Invalid request payload: expected a JSON object"}
    has_i, has_s = body.get("interval") is not None, body.get("segmentIds") is not None
    if has_i == has_s:
        return 400, {"error": "Invalid request payload. Specify either 'interval' or 'segmentIds', but not both"}
    if has_i:
        try:
            iv = interval(body["interval"])
        except ValueError:
            return 400, {"error": "Invalid interval [%s]" % body["interval"]}
        chosen = [s for s in STATE["segments"] if s["dataSource"] == ds and contains(iv, interval(s["interval"]))]
    else:
        if not isinstance(body["segmentIds"], list):
            return 400, {"error": "Invalid request payload: segmentIds must be a list"}
        ids = set(body["segmentIds"])
        chosen = [s for s in STATE["segments"] if s["dataSource"] == ds and s["id"] in ids]
    fault_before(op)
    n = 0
    for s in chosen:
        if s["used"] != used and not (used and overshadowed(s)):
            s["used"] = used
            n += 1
    fault_after(op)
    return 200, {"numChangedSegments": n}


def submit(body):
    if not isinstance(body, dict) or body.get("type") != "kill":
        return 400, {"error": "this fake only runs kill tasks, got type %r" % (body or {}).get("type")}
    if not body.get("dataSource") or not body.get("interval"):
        return 400, {"error": "a kill task needs dataSource and interval"}
    try:
        interval(body["interval"])
    except ValueError:
        return 400, {"error": "Invalid interval [%s]" % body["interval"]}
    if body.get("id") in STATE["tasks"]:
        return 400, {"error": "Task [%s] already exists" % body["id"]}
    fault_before("kill")
    STATE["next_task"] += 1
    tid = body.get("id") or "api-issued_kill_%s_%s_%d" % (
        body["dataSource"], body["interval"].replace("/", "_"), STATE["next_task"])
    STATE["tasks"][tid] = {"ds": body["dataSource"], "interval": body["interval"], "polls": 0, "status": "RUNNING"}
    fault_after("kill")
    return 200, {"task": tid}


def status(tid):
    t = STATE["tasks"].get(tid)
    if t is None:
        return 404, {"task": tid, "error": "Task [%s] not found" % tid}
    kf = STATE["faults"].get("kill") or {}
    t["polls"] += 1
    if t["status"] == "RUNNING" and t["polls"] > kf.get("polls_running", 1):
        t["status"] = kf.get("status", "SUCCESS")
        if t["status"] == "SUCCESS":
            iv = interval(t["interval"])
            STATE["segments"] = [s for s in STATE["segments"] if not (
                s["dataSource"] == t["ds"] and not s["used"] and contains(iv, interval(s["interval"])))]
    st = {"id": tid, "type": "kill", "dataSource": t["ds"], "status": t["status"], "statusCode": t["status"],
          "runnerStatusCode": "RUNNING" if t["status"] == "RUNNING" else "NONE"}
    if t["status"] == "FAILED":
        st["errorMsg"] = "kill failed (injected by the fake)"
    return 200, {"task": tid, "status": st}


def route(method, path, query, body):
    p = [unquote(x) for x in path.strip("/").split("/")]
    if p[:2] == ["druid", "indexer"]:
        nl = STATE["faults"].get("overlord_not_leader")
        if nl:
            if nl is not True:
                STATE["faults"]["overlord_not_leader"] = nl - 1
            return 503, {"error": "This overlord is not the leader"}
    if method == "POST" and len(p) == 6 and p[3] == "datasources" and p[5] in ("markUsed", "markUnused") \
            and p[:3] in (["druid", "coordinator", "v1"], ["druid", "indexer", "v1"]):
        if p[1] == "indexer" and STATE["faults"].get("overlord_missing"):
            return 404, {"error": "Not Found", "path": path}
        return mark(p[4], body, p[5] == "markUsed")
    if method == "POST" and len(p) == 7 and p[:5] == ["druid", "coordinator", "v1", "metadata", "datasources"] \
            and p[6] == "segments":
        if not isinstance(body, list):
            return 400, {"error": "expected a JSON array of intervals"}
        try:
            ivs = [interval(i) for i in body]
        except ValueError:
            return 400, {"error": "Invalid interval in %s" % json.dumps(body)}
        fault_before("segments")
        segs = [s for s in STATE["segments"] if s["dataSource"] == p[5] and s["used"]
                and any(overlaps(iv, interval(s["interval"])) for iv in ivs)]
        segs.sort(key=lambda s: (interval(s["interval"])[0], s["id"]))
        fault_after("segments")
        return 200, [segment_json(s) if "full" in query else s["id"] for s in segs]
    if method == "GET" and len(p) == 7 and p[:4] == ["druid", "coordinator", "v1", "datasources"] \
            and p[5] == "intervals":
        try:
            iv = interval(p[6].replace("_", "/"))
        except ValueError:
            return 400, {"error": "Invalid interval [%s]" % p[6]}
        segs = [s for s in STATE["segments"] if s["dataSource"] == p[4] and s["used"]
                and contains(iv, interval(s["interval"]))]
        out = {}
        if "full" in query:
            for s in segs:
                out.setdefault(s["interval"], {})[s["id"]] = {"metadata": segment_json(s), "servers": []}
            return 200, out
        if "simple" in query:
            for s in segs:
                e = out.setdefault(s["interval"], {"size": 0, "count": 0})
                e["size"] += (s.get("payload") or {}).get("size", 0)
                e["count"] += 1
            return 200, out
        return 200, sorted(s["id"] for s in segs)
    if method == "POST" and p == ["druid", "indexer", "v1", "task"]:
        return submit(body)
    if method == "GET" and len(p) == 6 and p[:4] == ["druid", "indexer", "v1", "task"] and p[5] == "status":
        return status(p[4])
    if method == "GET" and p == ["druid", "coordinator", "v1", "loadstatus"]:
        return 200, {ds: 100.0 for ds in sorted({s["dataSource"] for s in STATE["segments"] if s["used"]})}
    if method == "GET" and p == ["status", "health"]:
        return 200, True
    return 404, {"error": "Not Found", "path": path}


def fake_route(method, path, body):
    if method == "GET" and path == "/_fake/state":
        return 200, [{k: s[k] for k in ("id", "dataSource", "interval", "version", "used")} for s in STATE["segments"]]
    if method == "GET" and path == "/_fake/requests":
        return 200, STATE["requests"]
    if path == "/_fake/faults":
        if method == "POST":
            if not isinstance(body, dict):
                return 400, {"error": "faults: expected a JSON object"}
            STATE["faults"] = body
        return 200, STATE["faults"]
    return 404, {"error": "Not Found", "path": path}


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        sys.stderr.write("fake-druid: " + (fmt % a) + "\n")

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self, method):
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with LOCK:
            if path.startswith("/_fake/"):
                status, out = fake_route(method, path, body)
                return self.answer(status, out)
            entry = {"method": method, "path": self.path, "body": body, "status": None}
            STATE["requests"].append(entry)
            if isinstance(body, str):
                status, out = 400, {"error": "Malformed JSON body"}
            else:
                try:
                    status, out = route(method, path, {q.split("=")[0] for q in query.split("&")}, body)
                except Fail as f:
                    if f.mode == "drop":
                        entry["status"] = "dropped"
                        self.close_connection = True
                        return
                    status, out = 500, {"error": "Internal server error (injected by the fake)"}
                except Exception as e:  # a bug in the fake: say so instead of dropping the connection
                    status, out = 500, {"error": "fake bug: %r" % e}
            entry["status"] = status
        self.answer(status, out)

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_DELETE(self):
        self.handle_any("DELETE")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--segments", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--faults", default="{}")
    args = ap.parse_args()
    with open(args.segments) as f:
        STATE["segments"] = [dict(s, used=s.get("used", True)) for s in json.load(f)]
    STATE["faults"] = json.loads(args.faults)
    if not isinstance(STATE["faults"], dict):
        sys.exit("--faults: expected a JSON object")
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), H)
    print("PORT %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
