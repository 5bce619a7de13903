#!/usr/bin/env python3
"""A fake Treasure Data API for rewind's tests, faithful to ../shared/api-notes.md (Treasure Data).

Serves the REST parent-segment endpoints (/audiences), the Audience Studio v5 JSON:API entities
(/entities/...) and the v3 job and table-import endpoints on one port (the client is pointed at
http://127.0.0.1:PORT for both hosts). Python standard library only.

Start: td_server.py [--port 0] [--apikey KEY] [--latency-ms 20] [--no-v5] [--fail-every N]
                    [--fail-creates-after N] [--seed roundtrip|bench:FOLDERS:SEGMENTS]
Prints one JSON line on start: {"port":..., "seed": {...ids of the seeded parent segment...}}.

Control endpoints (no auth), for tests:
  GET  /_fake/state                     the whole state
  GET  /_fake/canon/{folderId}?skip=t,u  the tree under a folder with ids replaced by names (compare trees)
  GET  /_fake/counts                    number of entities per type, requests served, creations
  POST /_fake/config                    {"latency_ms", "fail_every", "fail_creates_after", "no_v5",
                                         "unique_audience_names", "fail_after_apply"}

Faults: `fail_every` and `fail_creates_after` refuse a request before it is applied (429/503, 500).
`fail_after_apply` is a list of rules {"method", "path" (a regex the whole path must match), "times",
"mode"}: a request that matches and succeeded is applied (the entity exists), and then its answer fails:
mode "500"/"502"/"503"/"504" answers that status (the error shape of the API family), "drop" closes the
connection without an answer, "hang" holds the answer for `hang_s` seconds (default 60) and then drops
it (a test kills the client meanwhile). Each rule fires `times` times (default 1).
api-notes.md does not say whether POST /audiences refuses a name already taken; `unique_audience_names`
(default true) picks the behaviour, so clients are tested against both.
"""
import argparse
import copy
import gzip
import json
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

sys.dont_write_bytecode = True  # no __pycache__ in the test tree
from td_data import canon, msgpack_unpack_all, seed_bench, seed_roundtrip, walk_refs  # noqa: E402

JSONAPI = "application/vnd.treasuredata.v1+json"
LOCK = threading.RLock()


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


class State:
    def __init__(self, apikey):
        self.apikey = apikey
        self.next_id = 1000
        self.audiences = {}
        self.executions = {}  # audience id -> [execution], newest first
        self.exec_polls = {}  # workflowSessionId -> polls seen
        self.ps_root = {}  # audience id -> root folder id (v5 enabled)
        self.entities = {}  # id -> entity
        self.children = {}  # folder id -> [child ids] in creation order
        self.databases = {}  # db -> {table -> [records]}
        self.jobs = {}
        self.requests = 0
        self.creations = 0
        self.config = {"latency_ms": 0, "fail_every": 0, "fail_creates_after": -1, "no_v5": False,
                       "unique_audience_names": True, "fail_after_apply": []}

    def new_id(self):
        self.next_id += 1
        return str(self.next_id)

    # ---- entities ----
    def add_entity(self, etype, attributes, parent_id):
        eid = self.new_id()
        attrs = dict(attributes)
        attrs["createdAt"] = attrs["updatedAt"] = now()
        ent = {
            "id": eid,
            "type": etype,
            "attributes": attrs,
            "relationships": {
                "parentFolder": {"data": {"id": parent_id, "type": "folder-segment"} if parent_id else None},
                "createdBy": {"data": {"id": "1", "type": "user"}},
                "updatedBy": {"data": {"id": "1", "type": "user"}},
            },
        }
        if etype in ("segment-batch", "segment-realtime"):
            attrs.setdefault("population", 0)
        self.entities[eid] = ent
        self.children.setdefault(eid, []) if etype == "folder-segment" else None
        if parent_id:
            self.children.setdefault(parent_id, []).append(eid)
        return ent

    def parent_of(self, ent):
        d = ent["relationships"].get("parentFolder", {}).get("data")
        return d["id"] if d else None

    def add_audience(self, body):
        aid = self.new_id()
        a = copy.deepcopy(body)
        a["id"] = aid
        a["createdAt"] = a["updatedAt"] = now()
        a["createdBy"] = {"id": "1", "name": "fake"}
        a["population"] = None
        for attr in a.get("attributes") or []:
            attr["audienceId"] = aid
        for i, b in enumerate(a.get("behaviors") or []):
            b["id"] = self.new_id()
        self.audiences[aid] = a
        return a


class ApiError(Exception):
    def __init__(self, status, message, jsonapi=False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.jsonapi = jsonapi


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    st = None

    def log_message(self, *a):
        pass

    def send_json(self, status, obj, ctype="application/json", sort=False):
        body = json.dumps(obj, sort_keys=sort).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype + "; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def json_body(self, jsonapi=False):
        raw = self.body()
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            raise ApiError(400, "request body is not valid JSON", jsonapi)

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def dispatch(self, method):
        st = self.st
        url = urlparse(self.path)
        path = url.path
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        jsonapi = path.startswith("/entities")
        if path.startswith("/_fake/"):
            return self.control(method, path, q)
        if jsonapi and method in ("POST", "PATCH"):
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype not in (JSONAPI, "application/json"):
                self.body()
                return self.send_json(415, {"errors": [{"status": "415", "title": "Unsupported Media Type",
                                                        "detail": "Content-Type must be %s" % JSONAPI}]}, JSONAPI)
        with LOCK:
            st.requests += 1
            n = st.requests
            cfg = dict(st.config)
        if cfg["latency_ms"]:
            time.sleep(cfg["latency_ms"] / 1000.0)
        try:
            auth = self.headers.get("Authorization")  # email.message lookups are case-insensitive
            if auth is None or auth.strip() != "TD1 " + st.apikey:
                raise ApiError(401, "Authentication failed: invalid API key", jsonapi)
            if cfg["fail_every"] and n % cfg["fail_every"] == 0:
                self.body()
                status = 429 if (n // cfg["fail_every"]) % 2 else 503
                if status == 429:
                    self.send_response(429)
                    self.send_header("Retry-After", "0")
                    self.send_header("Content-Type", "application/json")
                    b = b'{"error":"Too Many Requests","message":"rate limit exceeded"}'
                    self.send_header("Content-Length", str(len(b)))
                    self.end_headers()
                    self.wfile.write(b)
                    return
                raise ApiError(503, "Service Unavailable", jsonapi)
            with LOCK:
                status, obj, ctype = self.route(method, path, q, jsonapi)
                fault = self.after_apply_fault(method, path) if status < 400 else None
            if fault:
                return self.fail_answer(fault, jsonapi)
            if ctype == "text":
                body = obj.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif status == 204:
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_json(status, obj, JSONAPI if jsonapi else "application/json")
        except ApiError as e:
            if e.jsonapi:
                self.send_json(e.status, {"errors": [{"status": str(e.status), "title": e.message,
                                                      "detail": e.message}]}, JSONAPI)
            else:
                self.send_json(e.status, {"error": e.message, "message": e.message, "status": e.status})

    def after_apply_fault(self, method, path):
        """The first fail_after_apply rule matching this (applied) request, used up by one."""
        for rule in self.st.config.get("fail_after_apply") or []:
            if rule.get("method", method) == method and re.fullmatch(rule.get("path", ".*"), path) \
                    and rule.get("times", 1) > 0:
                rule["times"] = rule.get("times", 1) - 1
                return rule
        return None

    def fail_answer(self, rule, jsonapi):
        mode = str(rule.get("mode", "500"))
        if mode == "hang":
            time.sleep(float(rule.get("hang_s", 60)))
            mode = "drop"
        if mode == "drop":
            # The request was applied; the client never hears about it.
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        status = int(mode)
        message = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
                   504: "Gateway Timeout"}.get(status, "Error")
        if jsonapi:
            self.send_json(status, {"errors": [{"status": str(status), "title": message, "detail": message}]},
                           JSONAPI)
        else:
            self.send_json(status, {"error": message, "message": message, "status": status})

    def control(self, method, path, q):
        st = self.st
        with LOCK:
            if path == "/_fake/state":
                return self.send_json(200, {"audiences": st.audiences, "executions": st.executions,
                                            "ps_root": st.ps_root, "entities": st.entities,
                                            "databases": st.databases, "requests": st.requests,
                                            "creations": st.creations, "config": st.config})
            if path == "/_fake/counts":
                counts = {}
                for e in st.entities.values():
                    counts[e["type"]] = counts.get(e["type"], 0) + 1
                return self.send_json(200, {"entities": counts, "audiences": len(st.audiences),
                                            "requests": st.requests, "creations": st.creations})
            m = re.fullmatch(r"/_fake/canon/(\w+)", path)
            if m:
                skip = [s for s in q.get("skip", "").split(",") if s]
                return self.send_json(200, canon(st, m.group(1), skip), sort=True)
            if path == "/_fake/config" and method == "POST":
                st.config.update(json.loads(self.body() or b"{}"))
                return self.send_json(200, st.config)
        self.send_json(404, {"error": "no such control endpoint"})

    # ------------------------------------------------------------------ routes
    def route(self, method, path, q, jsonapi):
        st = self.st
        # ---- parent segments (REST) ----
        if path == "/audiences":
            if method == "GET":
                return 200, list(st.audiences.values()), None
            if method == "POST":
                b = self.json_body()
                if not b.get("name"):
                    raise ApiError(400, "Name can't be blank")
                if st.config["unique_audience_names"] and any(a["name"] == b["name"] for a in st.audiences.values()):
                    raise ApiError(400, "Name has already been taken")
                b.pop("id", None)
                return 201, st.add_audience(b), None  # api-notes: 200 vs 201 unconfirmed; clients take both
        m = re.fullmatch(r"/audiences/(\w+)(/run|/executions)?", path)
        if m:
            aid, sub = m.group(1), m.group(2)
            a = st.audiences.get(aid)
            if a is None:
                raise ApiError(404, "Audience not found: %s" % aid)
            if sub is None and method == "GET":
                return 200, a, None
            if sub is None and method == "PUT":
                b = self.json_body()
                for k in ("id", "createdAt", "createdBy"):
                    b.pop(k, None)
                if "master" in b:
                    for k in ("attributes", "behaviors", "audienceFilters"):
                        a[k] = b.get(k) or []
                a.update(b)
                a["updatedAt"] = now()
                return 200, a, None
            if sub is None and method == "DELETE":
                del st.audiences[aid]
                return 200, a, None
            if sub == "/run" and method == "POST":
                self.body()
                sid = st.new_id()
                ex = {"workflowId": "wf" + aid, "workflowSessionId": sid, "workflowAttemptId": st.new_id(),
                      "createdAt": now(), "finishedAt": None, "status": "queued", "audienceId": aid}
                st.executions.setdefault(aid, []).insert(0, ex)
                st.exec_polls[sid] = 0
                return 200, ex, None
            if sub == "/executions" and method == "GET":
                for ex in st.executions.get(aid, []):
                    self.advance(ex)
                return 200, st.executions.get(aid, []), None
        # ---- v5 entities ----
        m = re.fullmatch(r"/entities/parent_segments/(\w+)", path)
        if m and method == "GET":
            aid = m.group(1)
            if aid not in st.audiences or aid not in st.ps_root:
                raise ApiError(404, "Parent segment not found: %s" % aid, True)
            a = st.audiences[aid]
            return 200, {"data": {"id": aid, "type": "parent-segment",
                                  "attributes": {"name": a["name"], "description": a.get("description")},
                                  "relationships": {"parentSegmentFolder": {"data": {
                                      "id": st.ps_root[aid], "type": "folder-segment"}}}}}, None
        m = re.fullmatch(r"/entities/by-folder/(\w+)", path)
        if m and method == "GET":
            fid = m.group(1)
            if "depth" not in q:
                raise ApiError(400, "depth is required", True)
            try:
                depth = int(q["depth"])
            except ValueError:
                raise ApiError(400, "depth must be an integer", True)
            f = st.entities.get(fid)
            if f is None or f["type"] != "folder-segment":
                raise ApiError(404, "Folder not found: %s" % fid, True)
            data = [f]

            def below(pid, d):
                if d > depth:
                    return
                for cid in st.children.get(pid, []):
                    data.append(st.entities[cid])
                    if st.entities[cid]["type"] == "folder-segment":
                        below(cid, d + 1)

            below(fid, 1)
            return 200, {"data": data, "included": [{"id": "1", "type": "user", "attributes": {"name": "fake"}}]}, None
        kinds = {"folders": ("folder-segment",), "segments": ("segment-batch", "segment-realtime"),
                 "predictive_segments": ("predictive-segment",)}
        m = re.fullmatch(r"/entities/(folders|segments|predictive_segments)(?:/(\w+))?(/run)?", path)
        if m:
            kind, eid, run = m.group(1), m.group(2), m.group(3)
            if eid is None and method == "POST":
                return self.create(kind, kinds[kind])
            if eid is not None:
                e = st.entities.get(eid)
                if e is None or e["type"] not in kinds[kind]:
                    raise ApiError(404, "Not found: %s" % eid, True)
                if run and method == "POST" and kind == "predictive_segments":
                    return 200, {"data": {"id": eid, "type": "predictive-segment-run", "attributes": {"status": "queued"}}}, None
                if method == "GET":
                    return 200, {"data": e}, None
                if method == "PATCH":
                    b = self.json_body(True).get("data") or {}
                    attrs = b.get("attributes") or {}
                    if "name" in attrs and attrs["name"] != e["attributes"]["name"]:
                        self.check_name(st.parent_of(e), attrs["name"])
                    e["attributes"].update(attrs)
                    e["attributes"]["updatedAt"] = now()
                    return 200, {"data": e}, None
                if method == "DELETE":
                    if kind == "folders" and st.children.get(eid):
                        raise ApiError(409, "Folder is not empty", True)
                    del st.entities[eid]
                    p = st.parent_of(e)
                    if p and eid in st.children.get(p, []):
                        st.children[p].remove(eid)
                    return 204, None, None
        # ---- v3 ----
        m = re.fullmatch(r"/v3/database/create/(\w+)", path)
        if m and method == "POST":
            self.body()
            if m.group(1) in st.databases:
                raise ApiError(409, "Database %s already exists" % m.group(1))
            st.databases[m.group(1)] = {}
            return 200, {"database": m.group(1)}, None
        m = re.fullmatch(r"/v3/table/create/(\w+)/(\w+)/log", path)
        if m and method == "POST":
            self.body()
            db, tbl = m.groups()
            if db not in st.databases:
                raise ApiError(404, "Database %s not found" % db)
            if tbl in st.databases[db]:
                raise ApiError(409, "Table %s already exists" % tbl)
            st.databases[db][tbl] = []
            return 200, {"database": db, "table": tbl, "type": "log"}, None
        m = re.fullmatch(r"/v3/table/list/(\w+)", path)
        if m and method == "GET":
            db = m.group(1)
            if db not in st.databases:
                raise ApiError(404, "Database %s not found" % db)
            return 200, {"database": db, "tables": [{"name": t, "type": "log", "count": len(r)}
                                                    for t, r in st.databases[db].items()]}, None
        m = re.fullmatch(r"/v3/table/import/(\w+)/(\w+)/msgpack\.gz", path)
        if m and method == "PUT":
            db, tbl = m.groups()
            raw = self.body()
            if db not in st.databases or tbl not in st.databases[db]:
                raise ApiError(404, "Table %s.%s not found" % (db, tbl))
            try:
                recs = msgpack_unpack_all(gzip.decompress(raw))
            except Exception as e:  # noqa: BLE001
                raise ApiError(400, "bad msgpack.gz body: %s" % e)
            for r in recs:
                if not isinstance(r, dict) or "time" not in r:
                    raise ApiError(400, "every record needs a time field")
            st.databases[db][tbl].extend(recs)
            return 200, {"database": db, "table": tbl, "elapsed_time": 0.01}, None
        m = re.fullmatch(r"/v3/job/issue/(presto|hive)/(\w+)", path)
        if m and method == "POST":
            form = {k: v[0] for k, v in parse_qs(self.body().decode()).items()}
            db = m.group(2)
            if db not in st.databases:
                raise ApiError(404, "Database %s not found" % db)
            jid = st.new_id()
            st.jobs[jid] = {"db": db, "query": form.get("query", ""), "polls": 0, "created_at": now()}
            return 200, {"job": jid, "database": db, "job_id": jid}, None
        m = re.fullmatch(r"/v3/job/status/(\w+)", path)
        if m and method == "GET":
            j = st.jobs.get(m.group(1))
            if j is None:
                raise ApiError(404, "Job not found")
            j["polls"] += 1
            status = ["queued", "running", "success"][min(j["polls"] - 1, 2)]
            if status == "success" and "rows" not in j:
                try:
                    j["rows"] = self.run_query(j["db"], j["query"])
                except ApiError as e:
                    j["rows"], j["error"] = [], e.message
            if j.get("error"):
                status = "error"
            return 200, {"job_id": m.group(1), "status": status, "created_at": j["created_at"],
                         "start_at": j["created_at"], "end_at": now() if status in ("success", "error") else None,
                         "duration": 1, "num_records": len(j.get("rows", [])), "result_size": 0,
                         "debug": {"stderr": j.get("error", "")}}, None
        m = re.fullmatch(r"/v3/job/result/(\w+)", path)
        if m and method == "GET":
            j = st.jobs.get(m.group(1))
            if j is None or "rows" not in j:
                raise ApiError(404, "Job result not found")
            return 200, "".join(json.dumps(r) + "\n" for r in j["rows"]), "text"
        raise ApiError(404, "Not found: %s %s" % (method, path), jsonapi)

    def run_query(self, db, query):
        # Supports what rewind issues: SELECT cols FROM tbl [WHERE col = 'x'] [ORDER BY time DESC] [LIMIT n]
        m = re.fullmatch(r"\s*SELECT\s+(.+?)\s+FROM\s+(\w+)(?:\s+WHERE\s+(\w+)\s*=\s*'([^']*)')?"
                         r"(?:\s+ORDER\s+BY\s+time\s+DESC)?(?:\s+LIMIT\s+(\d+))?\s*;?\s*", query, re.I | re.S)
        if not m:
            raise ApiError(400, "fake: unsupported query: " + query)
        cols, tbl, wcol, wval, limit = m.groups()
        rows = self.st.databases[db].get(tbl)
        if rows is None:
            raise ApiError(400, "Table not found: %s" % tbl)
        rows = [r for r in rows if wcol is None or str(r.get(wcol)) == wval]
        rows = sorted(rows, key=lambda r: r["time"], reverse=True)
        if limit:
            rows = rows[:int(limit)]
        names = [c.strip() for c in cols.split(",")]
        return [[r.get(c) for c in names] for r in rows]

    def advance(self, ex):
        st = self.st
        sid = ex["workflowSessionId"]
        if ex["status"] in ("success", "error"):
            return
        st.exec_polls[sid] += 1
        p = st.exec_polls[sid]
        if p >= 3:
            ex["status"] = "success"
            ex["finishedAt"] = now()
            aid = ex["audienceId"]
            if not st.config["no_v5"] and aid not in st.ps_root:
                a = st.audiences[aid]
                root = st.add_entity("folder-segment", {"audienceId": aid, "name": a["name"] + " Root",
                                                        "description": None}, None)
                st.ps_root[aid] = root["id"]
        elif p >= 2:
            ex["status"] = "running"

    def check_name(self, parent_id, name):
        st = self.st
        for cid in st.children.get(parent_id, []):
            if st.entities[cid]["attributes"].get("name") == name:
                raise ApiError(400, "Name has already been taken", True)

    def create(self, kind, allowed):
        st = self.st
        b = self.json_body(True)
        d = b.get("data") if isinstance(b.get("data"), dict) else b
        etype = d.get("type")
        if etype not in allowed:
            raise ApiError(400, "type must be one of %s" % ", ".join(allowed), True)
        attrs = d.get("attributes") or {}
        if not attrs.get("name"):
            raise ApiError(400, "Name can't be blank", True)
        pf = ((d.get("relationships") or {}).get("parentFolder") or {}).get("data")
        if not pf or pf.get("id") not in st.entities or st.entities[pf["id"]]["type"] != "folder-segment":
            raise ApiError(400, "parentFolder must be an existing folder", True)
        folder = st.entities[pf["id"]]
        if str(attrs.get("audienceId")) != str(folder["attributes"]["audienceId"]):
            raise ApiError(400, "audienceId does not match the parent folder's parent segment", True)
        self.check_name(pf["id"], attrs["name"])
        missing = []
        walk_refs(attrs.get("rule"), lambda r: missing.append(r["id"]) if r["id"] not in st.entities else None)
        if kind == "predictive_segments" and attrs.get("segmentId") not in st.entities:
            missing.append(attrs.get("segmentId"))
        if missing:
            raise ApiError(400, "Referenced entity not found: %s" % ", ".join(map(str, missing)), True)
        lim = st.config["fail_creates_after"]
        if lim is not None and lim >= 0 and st.creations >= lim:
            raise ApiError(500, "Internal Server Error (injected)", True)
        st.creations += 1
        attrs = {k: v for k, v in attrs.items() if k not in ("createdAt", "updatedAt", "population")}
        return 200, {"data": st.add_entity(etype, attrs, pf["id"])}, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--apikey", default="1/0123456789abcdef0123456789abcdef01234567")
    ap.add_argument("--latency-ms", type=float, default=0)
    ap.add_argument("--fail-every", type=int, default=0)
    ap.add_argument("--fail-creates-after", type=int, default=-1)
    ap.add_argument("--no-v5", action="store_true")
    ap.add_argument("--seed", default="")
    args = ap.parse_args()
    st = State(args.apikey)
    st.config.update({"latency_ms": args.latency_ms, "fail_every": args.fail_every,
                      "fail_creates_after": args.fail_creates_after, "no_v5": args.no_v5})
    seed = {}
    if args.seed == "roundtrip":
        seed = seed_roundtrip(st)
    elif args.seed.startswith("bench:"):
        _, nf, ns = args.seed.split(":")
        seed = seed_bench(st, int(nf), int(ns))
    Handler.st = st

    class Server(ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            if isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError)):
                return  # a client killed mid-request (the tests do that on purpose)
            super().handle_error(request, client_address)

    srv = Server(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    srv.request_queue_size = 128
    print(json.dumps({"port": srv.server_address[1], "seed": seed}), flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
