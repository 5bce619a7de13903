#!/usr/bin/env python3
"""A fake Slack incoming-webhook endpoint, faithful to api-notes.md.

POST /services/<team>/<bot>/<secret> with Content-Type application/json and {"text": "..."}:
200 "ok" on success; plain-text errors: 400 invalid_payload (body not JSON, or no text/blocks),
403 action_prohibited, 404 channel_not_found, 410 channel_is_archived, 500 rollup_error.
Which error a webhook gets is chosen by its <bot> segment: B_PROHIBITED, B_GONE, B_ARCHIVED, B_ROLLUP;
anything else posts. Unknown paths answer 404 channel_not_found, like Slack does for revoked hooks.

Usage: slack_fake.py RECORD_FILE  -- prints the port on stdout, appends each accepted message (JSON) to
RECORD_FILE, one per line.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RECORD = sys.argv[1]
ERRORS = {
    "B_PROHIBITED": (403, "action_prohibited"),
    "B_GONE": (404, "channel_not_found"),
    "B_ARCHIVED": (410, "channel_is_archived"),
    "B_ROLLUP": (500, "rollup_error"),
}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, code, text):
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.answer(404, "channel_not_found")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        parts = self.path.strip("/").split("/")
        if len(parts) != 4 or parts[0] != "services":
            return self.answer(404, "channel_not_found")
        if parts[2] in ERRORS:
            return self.answer(*ERRORS[parts[2]])
        if "application/json" not in (self.headers.get("Content-Type") or ""):
            return self.answer(400, "invalid_payload")
        try:
            msg = json.loads(raw)
        except ValueError:
            return self.answer(400, "invalid_payload")
        if not isinstance(msg, dict) or not (isinstance(msg.get("text"), str) or "blocks" in msg):
            return self.answer(400, "invalid_payload")
        with open(RECORD, "a") as f:
            f.write(json.dumps({"path": self.path, "message": msg}) + "\n")
        self.answer(200, "ok")


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
