#!/usr/bin/env python3
"""A fake application maintenance switch (python3 stdlib only): what a backup turns on around its work.

Usage: maintenance_fake.py [--token T] [--port 0]; prints its port on the first stdout line.
  POST /maintenance/on    200 {"maintenance": true}   (with --token: needs "Authorization: Bearer T", else
  POST /maintenance/off   200 {"maintenance": false}   401 {"error": "unauthorized"}; nothing changes then)
  GET  /maintenance       200 {"maintenance": bool, "history": [{"state": "on"|"off", "at": ISO-8601 UTC time,
                          "has_auth": bool}]}: every accepted switch, oldest first (no auth needed)
  anything else           404 {"error": "not found"}; a known path with another method: 405 {"error":
                          "method not allowed"} with an Allow header
Errors are {"error": "..."}. Plus /_fake/fail, /_fake/reset_faults, /_fake/log: see fake_control.py (an
"after": true fault on POST /maintenance/on switches maintenance on and then loses the answer).
"""
import argparse
import os
import sys
from datetime import datetime, timezone

sys.dont_write_bytecode = True  # no __pycache__ in the test tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_control as fc  # noqa: E402

STATE = {"on": False, "history": [], "token": None}


class Handler(fc.FakeHandler):
    def route(self, method, path, query, body):
        allowed = {"/maintenance": "GET", "/maintenance/on": "POST", "/maintenance/off": "POST"}.get(path.rstrip("/"))
        if allowed is None:
            return fc.json_reply(404, {"error": "not found"})
        if method != allowed and not (allowed == "GET" and method == "HEAD"):
            return fc.json_reply(405, {"error": "method not allowed"}, headers=[("Allow", allowed)])
        if allowed == "GET":
            return fc.json_reply(200, {"maintenance": STATE["on"], "history": STATE["history"]})
        auth = self.headers.get("Authorization") or ""
        if STATE["token"] and auth != "Bearer " + STATE["token"]:
            return fc.json_reply(401, {"error": "unauthorized"}, headers=[("WWW-Authenticate", "Bearer")])
        STATE["on"] = path.rstrip("/").endswith("/on")
        at = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        STATE["history"].append({"state": "on" if STATE["on"] else "off", "at": at, "has_auth": bool(auth)})
        return fc.json_reply(200, {"maintenance": STATE["on"]})


def main():
    ap = argparse.ArgumentParser(description="a fake maintenance switch")
    ap.add_argument("--token", help="the bearer token that on/off need")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    STATE["token"] = args.token
    fc.serve(Handler, args.port)


if __name__ == "__main__":
    main()
