#!/usr/bin/env python3
"""A fake Druid coordinator (python3 stdlib only), following api-notes.md.

Usage: druid_coordinator.py --datasources a,b [--ready-after N] [--stuck ds] [--port 0]
Prints "PORT <n>" on stdout once listening.

- GET  /druid/coordinator/v1/loadstatus -> {"<ds>": percent}; each datasource climbs to 100.0 after
  --ready-after polls (a --stuck datasource stays at 50.0). Unknown datasources are absent, as in Druid.
- POST /druid/coordinator/v1/datasources/{ds}/markUsed|markUnused with {"interval":..} or {"segmentIds":[..]}
  (both or neither: 400) -> {"numChangedSegments": N}
- GET  /status/health -> true
- anything else: 404 with a JSON error, as Druid answers.
"""
import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE = {"polls": 0, "lock": threading.Lock()}


def make_handler(args):
    datasources = [d for d in args.datasources.split(",") if d]
    stuck = set(d for d in (args.stuck or "").split(",") if d)

    class H(BaseHTTPRequestHandler):
        def log_message(self, fmt, *a):  # quiet
            sys.stderr.write("fake-coordinator: " + (fmt % a) + "\n")

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            path = self.path.split("?")[0]
            if path == "/druid/coordinator/v1/loadstatus":
                with STATE["lock"]:
                    STATE["polls"] += 1
                    n = STATE["polls"]
                out = {}
                for ds in datasources:
                    if ds in stuck:
                        out[ds] = 50.0
                    elif n > args.ready_after:
                        out[ds] = 100.0
                    else:
                        out[ds] = round(100.0 * n / (args.ready_after + 1), 1)
                return self.answer(200, out)
            if path == "/status/health":
                return self.answer(200, True)
            return self.answer(404, {"error": "Not Found", "path": path})

        def do_POST(self):
            path = self.path.split("?")[0]
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            parts = path.strip("/").split("/")
            if (len(parts) == 6 and parts[:4] == ["druid", "coordinator", "v1", "datasources"]
                    and parts[5] in ("markUsed", "markUnused")):
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    return self.answer(400, {"error": "invalid JSON"})
                has_i, has_s = "interval" in body, "segmentIds" in body
                if has_i == has_s:
                    return self.answer(400, {"error": "Exactly one of interval or segmentIds must be specified"})
                n = len(body["segmentIds"]) if has_s else 1
                return self.answer(200, {"numChangedSegments": n})
            return self.answer(404, {"error": "Not Found", "path": path})

    return H


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasources", default="")
    ap.add_argument("--ready-after", type=int, default=2)
    ap.add_argument("--stuck", default="")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args))
    print("PORT %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
