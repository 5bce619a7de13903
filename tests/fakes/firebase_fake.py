#!/usr/bin/env python3
"""A fake Firebase Realtime Database REST API (python3 stdlib only), following api-notes.md.

Usage: firebase_fake.py --secret S [--token T] [--data FILE.json] [--port 0]; prints its port.
The database is one JSON tree in memory (FILE.json is its initial content, with ".priority" where wanted).
Auth: ?auth=S (a legacy database secret), or with --token T an OAuth access token as "Authorization:
Bearer T" or ?access_token=T. No credentials: 401 {"error" : "Permission denied"} (locked-down rules);
credentials but none valid: 401 {"error" : "Could not parse auth token."}. Errors are pretty printed as
the real service does: {\\n  "error" : "..."\\n}.
  GET    /<path>.json   the node, JSON null when missing. format=export keeps priorities: a node with one
                        carries ".priority", a leaf with one is {".value": v, ".priority": p}. shallow=true:
                        an object's keys mapped to true (a leaf: its value). Objects whose keys are all
                        integers and more than half filled come back as arrays, keys in Firebase's order.
  PUT    /<path>.json   replaces the node, answers the data written; the body must be JSON, else 400
                        {"error" : "Invalid data; couldn't parse JSON object, array, or value."}; null or {}
                        deletes; ".priority"/".value" keys store priorities; {".sv": "timestamp"} is the time
  PATCH  /<path>.json   merges the body's children (keys may be paths "a/b"; null deletes); the body must be
                        an object, else 400 "Invalid data; couldn't parse JSON object. Are you sending a
                        JSON object with valid key names?"
  POST   /<path>.json   adds a child under a new push id (time ordered) -> {"name": "<id>"}
  DELETE /<path>.json   -> null
  print=pretty indents, print=silent answers 204 with no body; X-HTTP-Method-Override on POST is honoured.
  A path segment with . $ # [ ]: 400 {"error" : "Invalid path: Invalid token in path"}; a key with
  . $ # [ ] / in a body: 400 "Invalid data; couldn't parse key ...". Query filters (orderBy, limitToFirst,
  startAt, ...) are not modelled: 400 naming the parameter. A path without .json: 404.
  Answers over 64 KiB are sent with Transfer-Encoding: chunked (the real service streams).
Test hooks (no auth, not logged): GET /_fake/tree -> the whole tree without priorities (?format=export:
with them); PUT /_fake/tree sets it. Plus /_fake/fail, /_fake/reset_faults, /_fake/log: see fake_control.py
(auth= and access_token= values show as *** in the log).
"""
import argparse
import json
import os
import random
import re
import sys
import time
from urllib.parse import parse_qs, unquote

sys.dont_write_bytecode = True  # no __pycache__ in the test tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_control as fc  # noqa: E402

STATE = {"tree": None, "secret": None, "token": None, "push": [0, [0] * 12]}
PUSH_CHARS = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
BAD_CHARS = set(".$#[]")
FILTERS = ("orderBy", "limitToFirst", "limitToLast", "startAt", "startAfter", "endAt", "endBefore", "equalTo")
BAD_JSON = "Invalid data; couldn't parse JSON object, array, or value."


class FirebaseError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def pretty(obj):
    return json.dumps(obj, indent=2, separators=(",", " : "), ensure_ascii=False) + "\n"


def error_body(status, message):
    return fc.Reply(status, pretty({"error": message}), ctype="application/json; charset=utf-8")


def push_id():
    """A 20-character push id: 8 characters of time, 12 random ones (incremented within a millisecond)."""
    now, (last, rand) = int(time.time() * 1000), STATE["push"]
    if now == last:
        i = 11
        while rand[i] == 63:
            rand[i], i = 0, i - 1
        rand[i] += 1
    else:
        rand[:] = [random.randrange(64) for _ in range(12)]
    STATE["push"][0] = now
    stamp = "".join(PUSH_CHARS[(now >> (6 * k)) & 63] for k in range(7, -1, -1))
    return stamp + "".join(PUSH_CHARS[r] for r in rand)


def normalize(v):
    """Stored form of a written value: arrays become objects, nulls and empty objects vanish, server
    values are resolved, a priority stays as ".priority" (a leaf with one as {".value", ".priority"})."""
    if isinstance(v, list):
        v = {str(i): x for i, x in enumerate(v)}
    if not isinstance(v, dict):
        return v
    if v.get(".sv") == "timestamp":
        return int(time.time() * 1000)
    pri = v.get(".priority")
    if ".value" in v:
        val = normalize(v[".value"])
        return {".value": val, ".priority": pri} if pri is not None and not isinstance(val, dict) else val
    out = {}
    for k, x in v.items():
        if k == ".priority":
            continue
        if not k or BAD_CHARS & set(k) or "/" in k or any(ord(c) < 32 or ord(c) == 127 for c in k):
            raise FirebaseError(400, "Invalid data; couldn't parse key beginning at %s. Key names can't contain "
                                "\".\", \"#\", \"$\", \"/\", \"[\", or \"]\"" % json.dumps(k))
        x = normalize(x)
        if x is not None:
            out[k] = x
    if out and pri is not None:
        out[".priority"] = pri
    return out or None


def key_order(k):
    """Firebase's key order: keys that are 32-bit integers first, numerically; then the others as strings."""
    if re.fullmatch(r"-?(0|[1-9][0-9]{0,9})", k) and -2 ** 31 <= int(k) < 2 ** 31:
        return (0, int(k), "")
    return (1, 0, k)


def arrays(v):
    """The answered form: keys in Firebase's order; objects whose keys are all integers, more than half of
    0..max present, as arrays (as Firebase answers them)."""
    if not isinstance(v, dict):
        return v
    v = {k: arrays(v[k]) for k in sorted(v, key=key_order)}
    keys = [k for k in v if not k.startswith(".")]
    if keys and all(k.isdigit() and (k == "0" or not k.startswith("0")) for k in keys) and ".priority" not in v:
        top = max(int(k) for k in keys)
        if 2 * len(keys) > top + 1:
            return [v.get(str(i)) for i in range(top + 1)]
    return v


def plain(v):
    """A stored value without its priorities (what a GET without format=export answers)."""
    if isinstance(v, dict):
        return plain(v[".value"]) if ".value" in v else {k: plain(x) for k, x in v.items() if k != ".priority"}
    return v


def get_at(node, segs):
    for s in segs:
        if not isinstance(node, dict) or ".value" in node:
            return None
        node = node.get(s)
    return node


def set_at(node, segs, value):
    """The tree with the node at segs replaced by value (already normalized); emptied parents vanish."""
    if not segs:
        return value
    node = dict(node) if isinstance(node, dict) and ".value" not in node else {}
    child = set_at(node.get(segs[0]), segs[1:], value)
    if child is None:
        node.pop(segs[0], None)
    else:
        node[segs[0]] = child
    return node if [k for k in node if k != ".priority"] else None


def write(segs, value):
    STATE["tree"] = set_at(STATE["tree"], segs, normalize(value))


def parse_body(body):
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise FirebaseError(400, BAD_JSON)


def path_segments(path):
    segs = [unquote(s) for s in path[:-len(".json")].split("/") if s]
    if any(BAD_CHARS & set(s) for s in segs):
        raise FirebaseError(400, "Invalid path: Invalid token in path")
    return segs


class Handler(fc.FakeHandler):
    chunk_over = 64 * 1024

    def error_reply(self, status, message):
        return error_body(status, message)

    def credentials(self, query):
        q = parse_qs(query, keep_blank_values=True)
        header = self.headers.get("Authorization") or ""
        return q.get("auth", []), q.get("access_token", []) + ([header[7:].strip()] if header[:7].lower() ==
                                                                  "bearer " else []), header

    def has_auth(self, query):
        secrets, tokens, header = self.credentials(query)
        return bool(secrets or tokens or header)

    def check_auth(self, query):
        secrets, tokens, header = self.credentials(query)
        if STATE["secret"] in secrets or (STATE["token"] and STATE["token"] in tokens):
            return
        if not (secrets or tokens):
            raise FirebaseError(401, "Permission denied")
        raise FirebaseError(401, "Could not parse auth token.")

    def answer(self, obj, q, status=200):
        if q.get("print", [""])[-1] == "silent":
            return fc.Reply(204)
        text = pretty(obj) if q.get("print", [""])[-1] == "pretty" else json.dumps(
            obj, separators=(",", ":"), ensure_ascii=False)
        return fc.Reply(status, text.encode("utf-8"), ctype="application/json; charset=utf-8",
                        headers=[("Cache-Control", "no-cache"), ("Access-Control-Allow-Origin", "*")])

    def route(self, method, path, query, body):
        try:
            return self.serve_db(method, path, query, body)
        except FirebaseError as e:
            return error_body(e.status, str(e))

    def serve_db(self, method, path, query, body):
        if not path.endswith(".json"):
            raise FirebaseError(404, "fake: REST paths end in .json (the real service shows its console here)")
        segs = path_segments(path)
        self.check_auth(query)
        q = parse_qs(query, keep_blank_values=True)
        if method == "POST" and self.headers.get("X-HTTP-Method-Override"):
            method = self.headers["X-HTTP-Method-Override"].upper()
        for f in FILTERS:
            if f in q:
                raise FirebaseError(400, "fake: query parameter %s is not modelled" % f)
        if method in ("GET", "HEAD"):
            node = get_at(STATE["tree"], segs)
            if q.get("shallow", [""])[-1] == "true" and isinstance(node, dict) and ".value" not in node:
                return self.answer({k: True for k in node if k != ".priority"}, q)
            export = q.get("format", [""])[-1] == "export"
            return self.answer(arrays(node if export else plain(node)), q)
        if method == "PUT":
            value = normalize(parse_body(body))
            write(segs, value)
            return self.answer(arrays(value), q)
        if method == "PATCH":
            patch = parse_body(body) if body.strip() else None
            if not isinstance(patch, dict):
                raise FirebaseError(400, "Invalid data; couldn't parse JSON object. Are you sending a JSON "
                                         "object with valid key names?")
            for key in patch:  # every key is checked before anything is written
                path_segments("/" + key + ".json")
            changes = {key: normalize(x) for key, x in patch.items()}
            for key, x in changes.items():
                write(segs + [s for s in key.split("/") if s], x)
            return self.answer(arrays({k: x for k, x in changes.items()}), q)
        if method == "POST":
            value, key = normalize(parse_body(body)), push_id()
            write(segs + [key], value)
            return self.answer({"name": key}, q)
        if method == "DELETE":
            write(segs, None)
            return self.answer(None, q)
        raise FirebaseError(405, "Method not allowed")

    def control_route(self, method, path, query, body):
        if path != "/_fake/tree":
            return None
        if method == "PUT":
            try:
                STATE["tree"] = normalize(parse_body(body))
            except FirebaseError as e:
                return error_body(e.status, str(e))
        export = parse_qs(query).get("format", [""])[-1] == "export"
        return fc.json_reply(200, arrays(STATE["tree"] if export else plain(STATE["tree"])))


def main():
    ap = argparse.ArgumentParser(description="a fake Firebase Realtime Database")
    ap.add_argument("--secret", required=True, help="the legacy database secret, accepted as ?auth=")
    ap.add_argument("--token", help="an OAuth access token: Authorization: Bearer T or ?access_token=T")
    ap.add_argument("--data", help="a JSON file with the initial tree")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    STATE["secret"], STATE["token"] = args.secret, args.token
    if args.data:
        with open(args.data) as f:
            STATE["tree"] = normalize(json.load(f))
    fc.serve(Handler, args.port)


if __name__ == "__main__":
    main()
