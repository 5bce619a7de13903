#!/usr/bin/env python3
"""A small threaded HTTP server for rewind.http tests. Prints its port on the first stdout line.

Paths (KEY lets tests keep separate hit counters):
  GET  /json                 200 {"ok": true, "items": [], "big": 9007199254740993}
  ANY  /echo                 200, the request as JSON: method, path, query, headers, body
  GET  /ratelimit/KEY        429 with Retry-After: 1 on the first hit, then 200
  GET  /flaky/KEY            503 on the first two hits, then 200
  GET  /down/KEY             503 always, body "backend down"
  GET  /missing              404, body naming the path and echoing the Authorization header it got
  GET  /slow?secs=N          sleeps N seconds, then 200
  GET  /hits/KEY             200 {"hits": N}: how many requests any path ending in /KEY got
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

HITS = {}
LOCK = threading.Lock()


def hit(key):
    with LOCK:
        HITS[key] = HITS.get(key, 0) + 1
        return HITS[key]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, ctype="application/json", headers=None):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def handle_any(self):
        url = urlparse(self.path)
        parts = [p for p in url.path.split("/") if p]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        head = parts[0] if parts else ""
        key = parts[1] if len(parts) > 1 else ""
        n = hit(key) if key else 0
        if head == "json":
            self.send(200, json.dumps({"ok": True, "items": [], "big": 9007199254740993}))
        elif head == "echo":
            self.send(200, json.dumps({
                "method": self.command,
                "path": url.path,
                "query": {k: v[0] for k, v in parse_qs(url.query).items()},
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
            }))
        elif head == "ratelimit":
            if n == 1:
                self.send(429, '{"error":"slow down"}', headers={"Retry-After": "1"})
            else:
                self.send(200, json.dumps({"hits": n}))
        elif head == "flaky":
            if n <= 2:
                self.send(503, "try later", ctype="text/plain")
            else:
                self.send(200, json.dumps({"hits": n}))
        elif head == "down":
            self.send(503, "backend down", ctype="text/plain")
        elif head == "missing":
            auth = self.headers.get("Authorization", "")
            self.send(404, json.dumps({"error": "no such thing: " + url.path, "auth_seen": auth}))
        elif head == "slow":
            secs = float(parse_qs(url.query).get("secs", ["2"])[0])
            time.sleep(secs)
            self.send(200, json.dumps({"slept": secs}))
        elif head == "hits":
            with LOCK:
                self.send(200, json.dumps({"hits": HITS.get(key, 0) - 1}))
        else:
            self.send(404, "unknown path " + url.path, ctype="text/plain")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
