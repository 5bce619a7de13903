#!/usr/bin/env python3
"""A fake Elasticsearch 8.15 node (python3 stdlib only), following api-notes.md "Elasticsearch snapshots".

Usage: es_fake.py --path-repo DIR [--path-repo DIR2 ..] [--user USER:PASS] [--port 0]; prints its port.
Indices live in memory. Snapshots are REAL FILES under the repository's location: index.json (the list of
snapshots, written last) and snap-<uuid>.json (each index's settings, state and documents); every snapshot
read (list, get, restore) reads them, so a test can tar the directory, wipe it, put it back and restore.
--user: every request but /_fake/* needs that basic auth, else 401 security_exception + WWW-Authenticate.
Errors: {"error":{"root_cause":[{"type","reason",..}],"type","reason",..},"status":N}. ?pretty indents.
  GET  /                            {"name","cluster_name","cluster_uuid","version":{"number":"8.15.0"},"tagline"}
  PUT  /{index} {"settings"?}       {"acknowledged",..}; 400 resource_already_exists_exception,
                                    400 invalid_index_name_exception
  GET|HEAD /{index}                 {name:{"aliases","mappings","settings"}}; 404 index_not_found_exception
  DELETE /{index}[,..]              {"acknowledged":true}; 404; wildcards: 400 illegal_argument_exception (as ES 8)
  PUT|POST /{index}/_doc/{id}, POST /{index}/_doc, PUT|POST /{index}/_create/{id}   201 created / 200 updated,
                                    auto-creates the index; _create on an existing id: 409
                                    version_conflict_engine_exception
  GET  /{index}/_doc/{id}           {"_id","_version","found":true,"_source",..}; 404 {"found":false}; DELETE likewise
  POST /_bulk, /{index}/_bulk       NDJSON index/create/delete -> {"errors","items":[{op:{..,"status"}}]}
  GET|POST /[{index}/]_count        {"count":N,"_shards"}
  GET|POST /[{index}/]_search       docs sorted by (_index,_id), from/size (size defaults to 10, as ES):
                                    {"hits":{"total":{"value","relation"},"hits":[{"_index","_id","_source"}]}}
  POST /[{index}/]_refresh, /{index}/_close, /{index}/_open   {"acknowledged",..} (_close adds "indices")
  GET  /_cat/indices[/{expr}]       ?format=json: [{"health":"green","status":"open|close","index","docs.count",..}]
                                    (counts are null for a closed index, as ES); else a text table
  PUT|POST /_snapshot/{repo} {"type":"fs","settings":{"location":L}}   {"acknowledged":true}, creates L; L outside
        every --path-repo (relative: under the first): 500 repository_exception "[repo] failed to create
        repository" caused by "[repo] location [L] doesn't match any of the locations specified by path.repo";
        no L: caused by "[repo] missing location"; type T != fs: 500 "[repo] repository type [T] does not exist"
  GET  /_snapshot[/{repo}]          {repo:{"type":"fs","settings":{"location":L,..}}} (values as strings, as ES);
                                    404 repository_missing_exception
  DELETE /_snapshot/{repo}          {"acknowledged":true} (the files stay)
  PUT|POST /_snapshot/{repo}/{snap}[?wait_for_completion=true] {"indices","ignore_unavailable","include_global_state"}
        200 {"snapshot":info} / 202 {"accepted":true} (complete at once either way); 404 repository_missing_exception,
        index_not_found_exception; 400 snapshot_name_already_in_use_exception "[repo:snap] Invalid snapshot name
        [snap], snapshot with the same name already exists" (ES >= 8.2; older ES: invalid_snapshot_name_exception,
        still the type for a bad name). Closed indices are snapshotted too and wildcards match them (ES 8).
  GET  /_snapshot/{repo}/{snap|_all|*|a,b}   {"snapshots":[info],"total","remaining":0}; 404 snapshot_missing_exception
        "[repo:snap] is missing". info: {"snapshot","uuid","repository","version","indices","include_global_state",
        "state":"SUCCESS","start_time(_in_millis)","end_time(_in_millis)","duration_in_millis","failures","shards"}
  DELETE /_snapshot/{repo}/{snap}   {"acknowledged":true}, removes its file; 404 snapshot_missing_exception
  A repository registered with "readonly": true refuses to create or delete snapshots: 500 repository_exception.
  POST /_snapshot/{repo}/{snap}/_restore[?wait_for_completion=true] {"indices","ignore_unavailable","rename_pattern",
        "rename_replacement"}: 200 {"snapshot":{"snapshot","indices","shards"}} / 202 {"accepted":true}; an OPEN
        target: 500 snapshot_restore_exception "[repo:snap/uuid] cannot restore index [x] because an open index
        with same name already exists in the cluster. ..." (nothing restored); a closed one is replaced, opened.
  Index expressions: comma lists, *, -exclusions; _count/_search/_close wildcards match open indices, _open's
  closed ones; naming a closed index in _count/_search/_doc/_refresh: 400 index_closed_exception.
  Unknown path: 400 {"error":"no handler found for uri [..] and method [..]"}; known path, other method: 405
  {"error":"Incorrect HTTP method for uri [..] and method [..], allowed: [..]","status":405}.
Control paths (/_fake/fail, /_fake/reset_faults, /_fake/log): see fake_control.py.
"""
import argparse
import base64
import json
import os
import re
import sys
import time
from datetime import datetime, timezone
from urllib.parse import parse_qs, unquote

sys.dont_write_bytecode = True  # no __pycache__ in the test tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_control as fc  # noqa: E402

VERSION, VERSION_ID = "8.15.0", 8512000
INDICES = {}  # name -> {"uuid","state":"open"|"close","shards","replicas","mappings","docs":{id: doc},"seq"}
REPOS = {}  # name -> {"location": as given, "path": absolute directory, "settings"}
CONF = {"path_repo": [], "user": None, "cluster_uuid": ""}
SHARDS_OK = {"total": 2, "successful": 1, "failed": 0}


class ESError(Exception):
    def __init__(self, status, etype, reason, caused_by=None, **extra):
        super().__init__(reason)
        self.status, self.cause, self.caused_by = status, dict({"type": etype, "reason": reason}, **extra), caused_by

    def body(self):
        top, root = dict(self.cause), self
        if self.caused_by:
            top["caused_by"] = self.caused_by.body()["error"]
            del top["caused_by"]["root_cause"]
        while root.caused_by:
            root = root.caused_by
        return {"error": dict({"root_cause": [root.cause]}, **top), "status": self.status}


def no_index(name):
    return ESError(404, "index_not_found_exception", "no such index [%s]" % name, **{
        "resource.type": "index_or_alias", "resource.id": name, "index_uuid": "_na_", "index": name})


def repo_missing(repo):
    return ESError(404, "repository_missing_exception", "[%s] missing" % repo)


def snap_missing(repo, snap):
    return ESError(404, "snapshot_missing_exception", "[%s:%s] is missing" % (repo, snap))


def now_ms():
    return int(time.time() * 1000)


def iso(ms):
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def es_uuid():
    return base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")


def flag(q, name):
    return q.get(name) in ("", "true")


def truthy(v):
    return v is True or v == "true"


def parse_json(body, required=False):
    if not body.strip():
        if required:
            raise ESError(400, "parse_exception", "request body is required")
        return {}
    try:
        return json.loads(body)
    except ValueError as e:
        raise ESError(400, "x_content_parse_exception", "[1:1] failed to parse request body",
                      ESError(400, "json_parse_exception", str(e)))


def wildcard(pattern, name):
    return re.fullmatch(".*".join(re.escape(p) for p in pattern.split("*")), name) is not None


def select(expr, names, states=None, ignore_unavailable=False, missing=no_index):
    """Resolves an expression against `names` as ES does: comma lists, * patterns (matching only indices
    whose state is in `states`), -exclusions after a pattern; an unknown explicit name raises missing()."""
    if not isinstance(expr, list):
        expr = (expr or "").split(",")
    out = []
    for part in [p.strip() for p in expr if p.strip()] or ["*"]:
        if part.startswith("-") and out:
            out = [n for n in out if not wildcard(part[1:], n)]
        elif "*" in part or part == "_all":
            out += [n for n in sorted(names) if wildcard(part.replace("_all", "*"), n) and n not in out
                    and (states is None or INDICES[n]["state"] in states)]
        elif part in names:
            out += [part] if part not in out else []
        elif not ignore_unavailable:
            raise missing(part)
    return out


def resolve(expr, states, q, closed_fails=True):
    """Indices named by expr; an explicit closed one fails (400 index_closed_exception) when closed_fails."""
    names = select(expr, INDICES, states, flag(q, "ignore_unavailable"))
    if closed_fails:
        for n in names:
            if INDICES[n]["state"] == "close" and not flag(q, "ignore_unavailable"):
                raise ESError(400, "index_closed_exception", "closed", index_uuid=INDICES[n]["uuid"], index=n)
        names = [n for n in names if INDICES[n]["state"] == "open"]
    return names


def check_index_name(name):
    why = ("must be lowercase" if name != name.lower() else "must not start with '_', '-', or '+'"
           if name[:1] in "_-+" else "must not contain the following characters [ , \", *, \\, <, |, ,, >, /, ?]"
           if re.search(r'[ "*\\<|,>/?#:]', name) else None)
    if why:
        raise ESError(400, "invalid_index_name_exception", "Invalid index name [%s], %s" % (name, why),
                      index_uuid="_na_", index=name)


def create_index(name, body=None):
    check_index_name(name)
    if name in INDICES:
        raise ESError(400, "resource_already_exists_exception", "index [%s/%s] already exists" % (
            name, INDICES[name]["uuid"]), index_uuid=INDICES[name]["uuid"], index=name)
    s = (body or {}).get("settings") or {}
    s = dict(s, **s["index"]) if isinstance(s.get("index"), dict) else s  # {"index": {..}} or flat keys

    def setting(k):
        return int(s.get(k, s.get("index." + k, 1)))
    INDICES[name] = {"uuid": es_uuid(), "state": "open", "shards": setting("number_of_shards"),
                     "replicas": setting("number_of_replicas"), "mappings": (body or {}).get("mappings") or {},
                     "docs": {}, "seq": 0}


def settings_of(name):
    ix = INDICES[name]
    return {"index": {"number_of_shards": str(ix["shards"]), "number_of_replicas": str(ix["replicas"]),
                      "uuid": ix["uuid"], "provided_name": name, "version": {"created": str(VERSION_ID)}}}


def shards_of(names, **extra):
    n = sum(INDICES[x]["shards"] for x in names)
    return dict({"total": n, "successful": n, "failed": 0}, **extra)


def writable(name):
    if name not in INDICES:
        create_index(name)  # ES auto-creates the index of a new document
    return INDICES[resolve(name, None, {})[0]]


def put_doc(name, doc_id, source, op_create=False):
    ix = writable(name)
    if not isinstance(source, dict):
        raise ESError(400, "mapper_parsing_exception", "failed to parse, document is empty")
    doc_id, old = doc_id or es_uuid()[:20], ix["docs"].get(doc_id)
    if old and op_create:
        raise ESError(409, "version_conflict_engine_exception", "[%s]: version conflict, document already exists "
                      "(current version [%d])" % (doc_id, old["_version"]), index_uuid=ix["uuid"], shard="0",
                      index=name)
    ix["seq"] += 1
    ix["docs"][doc_id] = {"_source": source, "_version": old["_version"] + 1 if old else 1, "_seq_no": ix["seq"]}
    return (200 if old else 201), {"_index": name, "_id": doc_id, "_version": ix["docs"][doc_id]["_version"],
                                   "result": "updated" if old else "created", "_shards": SHARDS_OK,
                                   "_seq_no": ix["seq"], "_primary_term": 1}


def delete_doc(name, doc_id):
    ix = INDICES[resolve(name, None, {})[0]]
    d = ix["docs"].pop(doc_id, None)
    ix["seq"] += 1
    return (200 if d else 404), {"_index": name, "_id": doc_id, "_version": (d["_version"] + 1) if d else 1,
                                 "result": "deleted" if d else "not_found", "_shards": SHARDS_OK,
                                 "_seq_no": ix["seq"], "_primary_term": 1}


# --- handlers: (path params, query, raw body) -> (status, json) or fc.Reply
def h_info(p, q, b):
    return 200, {"name": "fake-es-node", "cluster_name": "fake-es", "cluster_uuid": CONF["cluster_uuid"],
                 "version": {"number": VERSION, "build_flavor": "default", "build_type": "tar",
                             "lucene_version": "9.11.1", "minimum_wire_compatibility_version": "7.17.0",
                             "minimum_index_compatibility_version": "7.0.0"}, "tagline": "You Know, for Search"}


def h_create(p, q, b):
    create_index(p["index"], parse_json(b))
    return 200, {"acknowledged": True, "shards_acknowledged": True, "index": p["index"]}


def h_get_index(p, q, b):
    return 200, {n: {"aliases": {}, "mappings": INDICES[n]["mappings"], "settings": settings_of(n)}
                 for n in resolve(p["index"], {"open", "close"}, q, closed_fails=False)}


def h_delete_index(p, q, b):
    if "*" in p["index"] or "_all" in p["index"].split(","):  # action.destructive_requires_name: true in ES 8
        raise ESError(400, "illegal_argument_exception", "Wildcard expressions or all indices are not allowed")
    for n in resolve(p["index"], None, q, closed_fails=False):
        del INDICES[n]
    return 200, {"acknowledged": True}


def h_put_doc(p, q, b):
    create = "_create" in p["_segs"] or q.get("op_type") == "create"
    return put_doc(p["index"], p.get("id"), parse_json(b, True), create)


def h_get_doc(p, q, b):
    d = INDICES[resolve(p["index"], None, q)[0]]["docs"].get(p["id"])
    if d is None:
        return 404, {"_index": p["index"], "_id": p["id"], "found": False}
    return 200, {"_index": p["index"], "_id": p["id"], "_version": d["_version"], "_seq_no": d["_seq_no"],
                 "_primary_term": 1, "found": True, "_source": d["_source"]}


def h_bulk(p, q, b):
    lines, items = [x for x in b.decode().split("\n") if x.strip()], []
    while lines:
        try:
            (op, meta), = json.loads(lines.pop(0)).items()
            source = json.loads(lines.pop(0)) if op in ("index", "create") and lines else None
        except ValueError:
            raise ESError(400, "illegal_argument_exception", "Malformed action/metadata line, expected START_OBJECT")
        if op not in ("index", "create", "delete"):
            raise ESError(400, "illegal_argument_exception", "Malformed action/metadata line, expected field "
                          "[create], [delete], [index] or [update] but found [%s] (update: not in the fake)" % op)
        name = meta.get("_index") or p.get("index")
        try:
            status, res = delete_doc(name, meta.get("_id")) if op == "delete" else \
                put_doc(name, meta.get("_id"), source, op == "create")
            res["status"] = status
        except ESError as e:
            res = {"_index": name, "_id": meta.get("_id"), "status": e.status, "error": e.body()["error"]}
            del res["error"]["root_cause"]
        items.append({op: res})
    return 200, {"errors": any("error" in x[k] for x in items for k in x), "took": 1, "items": items}


def h_count(p, q, b):
    names = resolve(p.get("index"), {"open"}, q)
    return 200, {"count": sum(len(INDICES[n]["docs"]) for n in names), "_shards": shards_of(names, skipped=0)}


def h_search(p, q, b):
    names, body = resolve(p.get("index"), {"open"}, q), parse_json(b)
    start, size = int(q.get("from", body.get("from", 0))), int(q.get("size", body.get("size", 10)))
    hits = [{"_index": n, "_id": i, "_score": 1.0, "_source": d["_source"]}
            for n in sorted(names) for i, d in sorted(INDICES[n]["docs"].items())]
    return 200, {"took": 1, "timed_out": False, "_shards": shards_of(names, skipped=0),
                 "hits": {"total": {"value": len(hits), "relation": "eq"}, "max_score": 1.0 if hits else None,
                          "hits": hits[start:start + size]}}


def h_refresh(p, q, b):
    names = resolve(p.get("index"), {"open"}, q)
    return 200, {"_shards": shards_of(names, total=2 * sum(INDICES[n]["shards"] for n in names))}


def h_close_open(p, q, b):
    closing = p["_segs"][-1] == "_close"
    names = resolve(p["index"], {"open"} if closing else {"close"}, q, closed_fails=False)
    for n in names:
        INDICES[n]["state"] = "close" if closing else "open"
    out = {"acknowledged": True, "shards_acknowledged": True}
    return 200, dict(out, indices={n: {"closed": True} for n in names}) if closing else out


def h_cat(p, q, b):
    rows = []
    for n in resolve(p.get("expr"), {"open", "close"}, q, closed_fails=False):
        ix, is_open = INDICES[n], INDICES[n]["state"] == "open"
        size = "%db" % len(json.dumps([d["_source"] for d in ix["docs"].values()])) if is_open else None
        rows.append({"health": "green", "status": ix["state"], "index": n, "uuid": ix["uuid"],
                     "pri": str(ix["shards"]), "rep": str(ix["replicas"]),
                     "docs.count": str(len(ix["docs"])) if is_open else None, "docs.deleted": "0" if is_open else None,
                     "store.size": size, "pri.store.size": size, "dataset.size": size})
    if q.get("format") == "json":
        return 200, rows
    text = "".join(" ".join(str(r[k]) if r[k] is not None else "" for k in r) + "\n" for r in rows)
    return fc.Reply(200, text, ctype="text/plain; charset=UTF-8", headers=[("X-elastic-product", "Elasticsearch")])


# --- snapshot repositories: registrations in memory, snapshots as files under their location
def repo(name, writing=None):
    if name not in REPOS:
        raise repo_missing(name)
    if writing and REPOS[name]["settings"].get("readonly") == "true":
        raise ESError(500, "repository_exception", "[%s] cannot %s a readonly repository" % (name, writing))
    os.makedirs(REPOS[name]["path"], exist_ok=True)
    return REPOS[name]["path"]


def read_catalog(name):
    path = os.path.join(repo(name), "index.json")
    if not os.path.exists(path):
        return []
    try:
        with open(path) as f:
            return json.load(f)["snapshots"]
    except (ValueError, KeyError, OSError) as e:
        raise ESError(500, "repository_exception", "[%s] Unexpected exception when loading repository data" % name,
                      ESError(500, "exception", str(e)))


def write_json(path, obj):
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f)
    os.replace(path + ".tmp", path)  # a file is whole or absent, as a blob in a real repository


def h_put_repo(p, q, b):
    name, body = p["repo"], parse_json(b, True)
    if not body.get("type"):
        raise ESError(400, "action_request_validation_exception", "Validation Failed: 1: type is missing;")
    if body["type"] != "fs":
        raise ESError(500, "repository_exception", "[%s] repository type [%s] does not exist" % (name, body["type"]))
    loc = str((body.get("settings") or {}).get("location") or "")
    path = os.path.realpath(os.path.join(CONF["path_repo"][0], loc))
    cause = "missing location" if not loc else None if any(
        path == r or path.startswith(r + os.sep) for r in CONF["path_repo"]) else \
        "location [%s] doesn't match any of the locations specified by path.repo" % loc
    if cause:
        raise ESError(500, "repository_exception", "[%s] failed to create repository" % name,
                      ESError(500, "repository_exception", "[%s] %s" % (name, cause)))
    os.makedirs(path, exist_ok=True)
    settings = {k: json.dumps(v) if isinstance(v, bool) else v if isinstance(v, (str, dict, list)) else str(v)
                for k, v in (body.get("settings") or {}).items()}  # ES answers setting values as strings
    REPOS[name] = {"location": loc, "path": path, "settings": settings}
    return 200, {"acknowledged": True}


def h_get_repo(p, q, b):
    return 200, {n: {"type": "fs", "settings": dict(REPOS[n]["settings"], location=REPOS[n]["location"])}
                 for n in select(p.get("repo"), REPOS, missing=repo_missing)}


def h_delete_repo(p, q, b):
    for n in select(p["repo"], REPOS, missing=repo_missing):
        del REPOS[n]
    return 200, {"acknowledged": True}


def h_create_snap(p, q, b):
    name, snap, body = p["repo"], p["snap"], parse_json(b)
    why = ("must be lowercase" if snap != snap.lower() else "must not start with '_'" if snap.startswith("_")
           else "must not contain whitespace" if re.search(r"\s", snap) else None)
    if why:
        raise ESError(400, "invalid_snapshot_name_exception", "[%s:%s] Invalid snapshot name [%s], %s" % (
            name, snap, snap, why))
    repo(name, "create snapshot in")
    catalog = read_catalog(name)
    if any(s["snapshot"] == snap for s in catalog):
        raise ESError(400, "snapshot_name_already_in_use_exception", "[%s:%s] Invalid snapshot name [%s], "
                      "snapshot with the same name already exists" % (name, snap, snap))
    # ES 8 expands wildcards to open and closed indices and snapshots closed ones as well
    names = select(body.get("indices"), INDICES, {"open", "close"}, truthy(body.get("ignore_unavailable")))
    start, uuid = now_ms(), es_uuid()
    content = {n: {"settings": settings_of(n), "mappings": INDICES[n]["mappings"], "shards": INDICES[n]["shards"],
                   "replicas": INDICES[n]["replicas"], "state": INDICES[n]["state"],
                   "docs": {i: {"_source": d["_source"], "_version": d["_version"]}
                            for i, d in INDICES[n]["docs"].items()}}
               for n in names}
    end = now_ms() + 1
    entry = {"snapshot": snap, "uuid": uuid, "version_id": VERSION_ID, "version": VERSION, "indices": names,
             "data_streams": [], "include_global_state": body.get("include_global_state", True), "state": "SUCCESS",
             "start_time": iso(start), "start_time_in_millis": start, "end_time": iso(end), "end_time_in_millis": end,
             "duration_in_millis": end - start, "failures": [], "shards": shards_of(names), "feature_states": []}
    if body.get("metadata") is not None:
        entry["metadata"] = body["metadata"]
    write_json(os.path.join(repo(name), "snap-%s.json" % uuid), {"snapshot": entry, "indices": content})
    write_json(os.path.join(repo(name), "index.json"), {"snapshots": catalog + [entry]})  # the commit point
    if flag(q, "wait_for_completion"):
        return 200, {"snapshot": dict(entry, repository=name)}
    return 202, {"accepted": True}


def pick_snaps(name, expr, q):
    catalog = {s["snapshot"]: s for s in read_catalog(name)}
    chosen = select(expr, catalog, None, flag(q, "ignore_unavailable"), lambda s: snap_missing(name, s))
    return sorted((catalog[s] for s in chosen), key=lambda s: (s["start_time_in_millis"], s["snapshot"]))


def h_get_snap(p, q, b):
    snaps = [] if p["snap"] == "_current" else pick_snaps(p["repo"], p["snap"], q)
    return 200, {"snapshots": [dict(s, repository=p["repo"]) for s in snaps], "total": len(snaps), "remaining": 0}


def h_delete_snap(p, q, b):
    repo(p["repo"], "delete snapshots from")
    gone = {s["uuid"] for s in pick_snaps(p["repo"], p["snap"], {})}
    write_json(os.path.join(repo(p["repo"]), "index.json"),
               {"snapshots": [s for s in read_catalog(p["repo"]) if s["uuid"] not in gone]})
    for uuid in gone:
        if os.path.exists(os.path.join(repo(p["repo"]), "snap-%s.json" % uuid)):
            os.remove(os.path.join(repo(p["repo"]), "snap-%s.json" % uuid))
    return 200, {"acknowledged": True}


def java_expand(repl, m):
    """Java's Matcher.replaceAll replacement syntax ($1, ${name}, \\x) applied to the match m."""
    def one(t):
        if t.group(1) is not None:
            return t.group(1)
        return m.group(int(t.group(2)) if t.group(2) else t.group(3)) or ""
    return re.sub(r"\\(.)|\$(\d+)|\$\{(\w+)\}", one, repl)


def h_restore(p, q, b):
    name, body = p["repo"], parse_json(b)
    entry = next((s for s in read_catalog(name) if s["snapshot"] == p["snap"]), None)
    if entry is None:
        raise snap_missing(name, p["snap"])
    tag = "[%s:%s/%s]" % (name, entry["snapshot"], entry["uuid"])
    try:
        with open(os.path.join(repo(name), "snap-%s.json" % entry["uuid"])) as f:
            content = json.load(f)["indices"]
    except (OSError, ValueError, KeyError) as e:
        raise ESError(500, "snapshot_restore_exception", "%s failed to read snapshot [%s]" % (tag, e))
    targets = {}
    for n in select(body.get("indices"), content, None, truthy(body.get("ignore_unavailable"))):
        t = n
        if body.get("rename_pattern") is not None and body.get("rename_replacement") is not None:
            t = re.sub(body["rename_pattern"], lambda m: java_expand(body["rename_replacement"], m), n)
        if t in targets.values():
            raise ESError(500, "snapshot_restore_exception", "%s indices [%s] and [%s] are renamed into the same "
                          "index [%s]" % (tag, [k for k, v in targets.items() if v == t][0], n, t))
        check_index_name(t)
        cur = INDICES.get(t)
        if cur and cur["state"] != "close":
            raise ESError(500, "snapshot_restore_exception", "%s cannot restore index [%s] because an open index with "
                          "same name already exists in the cluster. Either close or delete the existing index or "
                          "restore the index under a different name by providing a rename pattern and replacement "
                          "name" % (tag, t))
        if cur and cur["shards"] != content[n]["shards"]:
            raise ESError(500, "snapshot_restore_exception", "%s cannot restore index [%s] with [%d] shards from a "
                          "snapshot of index [%s] with [%d] shards" % (tag, t, cur["shards"], n, content[n]["shards"]))
        targets[n] = t
    for n, t in targets.items():  # every check passed: restore them all, opened
        src, cur = content[n], INDICES.get(t)
        docs = {i: {"_source": d["_source"], "_version": d["_version"], "_seq_no": k}
                for k, (i, d) in enumerate(sorted(src["docs"].items()))}
        INDICES[t] = {"uuid": cur["uuid"] if cur else es_uuid(), "state": "open", "shards": src["shards"],
                      "replicas": src["replicas"], "mappings": src["mappings"], "docs": docs, "seq": len(docs)}
    if not flag(q, "wait_for_completion"):
        return 202, {"accepted": True}
    return 200, {"snapshot": {"snapshot": entry["snapshot"], "indices": list(targets.values()),
                              "shards": shards_of(list(targets.values()))}}


GET_POST = ("GET", "POST")
ROUTES = [  # (path pattern, {method: handler}); the most literal pattern matching a path answers it
    ((), {"GET": h_info}),
    (("_bulk",), dict.fromkeys(("POST", "PUT"), h_bulk)),
    (("_count",), dict.fromkeys(GET_POST, h_count)),
    (("_search",), dict.fromkeys(GET_POST, h_search)),
    (("_refresh",), dict.fromkeys(GET_POST, h_refresh)),
    (("_cat", "indices"), {"GET": h_cat}),
    (("_cat", "indices", "{expr}"), {"GET": h_cat}),
    (("_snapshot",), {"GET": h_get_repo}),
    (("_snapshot", "{repo}"), {"GET": h_get_repo, "PUT": h_put_repo, "POST": h_put_repo, "DELETE": h_delete_repo}),
    (("_snapshot", "{repo}", "{snap}"), {"GET": h_get_snap, "PUT": h_create_snap, "POST": h_create_snap,
                                         "DELETE": h_delete_snap}),
    (("_snapshot", "{repo}", "{snap}", "_restore"), {"POST": h_restore}),
    (("{index}",), {"PUT": h_create, "GET": h_get_index, "DELETE": h_delete_index}),
    (("{index}", "_doc"), {"POST": h_put_doc}),
    (("{index}", "_doc", "{id}"), {"GET": h_get_doc, "PUT": h_put_doc, "POST": h_put_doc,
                                   "DELETE": lambda p, q, b: delete_doc(p["index"], p["id"])}),
    (("{index}", "_create", "{id}"), dict.fromkeys(("PUT", "POST"), h_put_doc)),
    (("{index}", "_bulk"), dict.fromkeys(("POST", "PUT"), h_bulk)),
    (("{index}", "_count"), dict.fromkeys(GET_POST, h_count)),
    (("{index}", "_search"), dict.fromkeys(GET_POST, h_search)),
    (("{index}", "_refresh"), dict.fromkeys(GET_POST, h_refresh)),
    (("{index}", "_close"), {"POST": h_close_open}),
    (("{index}", "_open"), {"POST": h_close_open}),
]


def match(pattern, segs):
    if len(pattern) != len(segs) or any(w != g for w, g in zip(pattern, segs) if not w.startswith("{")):
        return None
    return dict({w[1:-1]: g for w, g in zip(pattern, segs) if w.startswith("{")}, _segs=segs)


class Handler(fc.FakeHandler):
    def error_reply(self, status, message):
        etype = {400: "illegal_argument_exception", 401: "security_exception", 403: "security_exception",
                 404: "resource_not_found_exception", 429: "es_rejected_execution_exception",
                 503: "cluster_block_exception"}.get(status, "exception")
        return self.es_reply(ESError(status, etype, message).body(), status)

    def es_reply(self, obj, status, headers=None, q=None):
        text = json.dumps(obj, indent=2) if flag(q or {}, "pretty") else json.dumps(obj, separators=(",", ":"))
        return fc.Reply(status, text, headers=[("X-elastic-product", "Elasticsearch")] + (headers or []))

    def auth_error(self, uri):
        got, user = self.headers.get("Authorization") or "", None
        if not CONF["user"]:
            return None
        if got.startswith("Basic "):
            try:
                user = base64.b64decode(got[6:].strip()).decode()
            except ValueError:
                user = ""
            if user == CONF["user"]:
                return None
        reason = ("missing authentication credentials for REST request [%s]" % uri if user is None else
                  "unable to authenticate user [%s] for REST request [%s]" % (user.partition(":")[0], uri))
        challenges = ['Basic realm="security", charset="UTF-8"', 'Bearer realm="security"', "ApiKey"]
        err = ESError(401, "security_exception", reason, header={"WWW-Authenticate": challenges})
        return fc.Reply(401, json.dumps(err.body(), separators=(",", ":")),
                        headers=[("WWW-Authenticate", c) for c in challenges])

    def route(self, method, path, query, body):
        uri = path + ("?" + query if query else "")
        denied = self.auth_error(uri)
        if denied:
            return denied
        q = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        segs = [unquote(s) for s in path.split("/") if s]
        found = sorted((r for r in ROUTES if match(r[0], segs)), key=lambda r: -sum(
            not s.startswith("{") for s in r[0]))
        if not found:
            return self.es_reply({"error": "no handler found for uri [%s] and method [%s]" % (uri, method)}, 400)
        pattern, methods = found[0]
        handler = methods.get("GET" if method == "HEAD" else method)
        if handler is None:
            allowed = ", ".join(sorted(methods))
            return self.es_reply({"error": "Incorrect HTTP method for uri [%s] and method [%s], allowed: [%s]" % (
                uri, method, allowed), "status": 405}, 405, [("Allow", allowed)])
        try:
            out = handler(match(pattern, segs), q, body)
        except ESError as e:
            return self.es_reply(e.body(), e.status, q=q)
        return out if isinstance(out, fc.Reply) else self.es_reply(out[1], out[0], q=q)


def main():
    ap = argparse.ArgumentParser(description="a fake Elasticsearch 8 node")
    ap.add_argument("--path-repo", action="append", required=True, help="like path.repo (repeatable)")
    ap.add_argument("--user", help="USER:PASS: require HTTP basic auth")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    CONF["path_repo"] = [os.path.realpath(d) for d in args.path_repo]
    CONF["user"], CONF["cluster_uuid"] = args.user, es_uuid()
    fc.serve(Handler, args.port)


if __name__ == "__main__":
    main()
