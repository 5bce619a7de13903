"""Shared plumbing of es_fake.py, firebase_fake.py and maintenance_fake.py (python3 stdlib only).

Every fake built on it serves these control paths (never logged, never faulted, no auth):
  POST /_fake/fail          {"method": "PUT", "path_contains": "_snapshot", "status": 500, "after": false,
                             "count": 1, "body": optional}
      the next `count` requests whose method is `method` (any when absent) and whose path (without the
      query) contains `path_contains` (any when absent) fail with `status`. The body is the service's own
      error shape, or `body` when given (a string is sent as is, anything else as JSON). With "after":
      true the request is applied first and only its answer is replaced: the "lost answer" case. Status 0
      closes the connection without any answer (after applying it when "after" is true).
      Answers 200 {"faults": [the pending rules]}; a malformed rule answers 400 {"error": "..."}.
  POST /_fake/reset_faults  drops every pending rule -> {"faults": []}
  GET  /_fake/log           every other request so far, oldest first: {"method", "path", "query" (raw, with
                            the values of auth/access_token/token/key/password/secret replaced by ***),
                            "has_auth": bool, "body_bytes": n, "status": the status answered, 0 when the
                            connection was closed without an answer}
A service subclasses FakeHandler and implements route() and error_reply(); the server handles one request
at a time under LOCK (the fakes are small and it keeps their state consistent).
"""
import json
import sys
import threading
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote_plus, urlsplit

LOCK = threading.Lock()
SECRET_PARAMS = {"auth", "access_token", "token", "key", "password", "secret", "api_key"}


class Reply:
    """An answer: status, body bytes, content type and extra headers (a list: names may repeat)."""

    def __init__(self, status, body=b"", ctype="application/json", headers=None):
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.ctype = ctype
        self.headers = list(headers or [])


def json_reply(status, obj, headers=None):
    return Reply(status, json.dumps(obj), headers=headers)


def redact_query(query):
    """The raw query with the value of every secret-bearing parameter replaced by ***."""
    out = []
    for part in query.split("&") if query else []:
        name, eq, _ = part.partition("=")
        out.append(name + "=***" if eq and unquote_plus(name).lower() in SECRET_PARAMS else part)
    return "&".join(out)


class Control:
    def __init__(self):
        self.rules = []
        self.log = []

    def add_rule(self, spec):
        if not isinstance(spec, dict):
            raise ValueError("expected a JSON object")
        status, count = spec.get("status", 500), spec.get("count", 1)
        if not isinstance(status, int) or isinstance(status, bool) or not (status == 0 or 100 <= status <= 599):
            raise ValueError("status must be 0 or an HTTP status, got %r" % (status,))
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError("count must be a positive integer, got %r" % (count,))
        for k in ("method", "path_contains"):
            if spec.get(k) is not None and not isinstance(spec[k], str):
                raise ValueError("%s must be a string" % k)
        if not isinstance(spec.get("after", False), bool):
            raise ValueError("after must be a boolean")
        unknown = set(spec) - {"method", "path_contains", "status", "after", "count", "body"}
        if unknown:
            raise ValueError("unknown keys %s" % sorted(unknown))
        self.rules.append({"method": (spec.get("method") or "").upper() or None,
                           "path_contains": spec.get("path_contains"), "status": status,
                           "after": spec.get("after", False), "count": count, "body": spec.get("body")})

    def take(self, method, path):
        """The first pending rule matching this request, its count spent by one; None when none does."""
        for rule in self.rules:
            if (rule["method"] in (None, method)) and (rule["path_contains"] is None or rule["path_contains"] in path):
                rule["count"] -= 1
                if rule["count"] == 0:
                    self.rules.remove(rule)
                return rule
        return None

    def route(self, method, path, body):
        if method == "POST" and path == "/_fake/fail":
            try:
                self.add_rule(json.loads(body or b"null"))
            except ValueError as e:
                return json_reply(400, {"error": "fail rule: %s" % e})
            return json_reply(200, {"faults": self.rules})
        if method == "POST" and path == "/_fake/reset_faults":
            self.rules = []
            return json_reply(200, {"faults": []})
        if method == "GET" and path == "/_fake/log":
            return json_reply(200, self.log)
        return None


class FakeHandler(BaseHTTPRequestHandler):
    # Headers and body go out in separate writes; without TCP_NODELAY the body waits ~40 ms for the
    # client's delayed ACK on every answer.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    control = Control()
    chunk_over = None  # answers with more bytes than this are sent with Transfer-Encoding: chunked

    def log_message(self, *args):
        pass

    # --- what a service implements
    def route(self, method, path, query, body):
        """The service's answer to one request (a Reply)."""
        raise NotImplementedError

    def error_reply(self, status, message):
        """An error answer in the service's own shape (used for injected faults)."""
        return json_reply(status, {"error": message})

    def control_route(self, method, path, query, body):
        """Extra /_fake/ paths of one service (None: not one of them)."""
        return None

    def has_auth(self, query):
        return bool(self.headers.get("Authorization"))

    # --- plumbing
    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_reply(self, reply):
        self.send_response(reply.status)
        if reply.status != 204:
            self.send_header("Content-Type", reply.ctype)
        for name, value in reply.headers:
            self.send_header(name, value)
        chunked = self.chunk_over is not None and len(reply.body) > self.chunk_over
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif reply.status != 204:
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command == "HEAD" or reply.status == 204:
            return
        if not chunked:
            self.wfile.write(reply.body)
            return
        for i in range(0, len(reply.body), 16384):  # streamed in pieces, as the real service does
            piece = reply.body[i:i + 16384]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    def fault_reply(self, rule):
        status, body = rule["status"], rule["body"]
        if body is None:
            phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
            return self.error_reply(status, "%d %s (injected by the fake)" % (status, phrase))
        if not isinstance(body, str):
            return json_reply(status, body)
        try:
            json.loads(body)
            return Reply(status, body)
        except ValueError:  # e.g. a proxy's HTML page
            return Reply(status, body, ctype="text/html" if body.lstrip().startswith("<") else "text/plain")

    def handle_any(self):
        method, url = self.command, urlsplit(self.path)
        path, query = url.path, url.query
        try:
            body = self.read_body()
        except ValueError:
            self.close_connection = True
            return self.send_reply(json_reply(400, {"error": "unreadable request body"}))
        with LOCK:
            if path.startswith("/_fake/"):
                reply = self.control.route(method, path, body) or self.control_route(method, path, query, body) \
                    or json_reply(404, {"error": "no control path %s %s" % (method, path)})
                return self.send_reply(reply)
            entry = {"method": method, "path": path, "query": redact_query(query),
                     "has_auth": self.has_auth(query), "body_bytes": len(body), "status": None}
            self.control.log.append(entry)
            rule = self.control.take(method, path)
            reply = None
            if rule is None or rule["after"]:
                try:
                    reply = self.route(method, path, query, body)
                except Exception as e:  # a bug in the fake: say so rather than drop the connection
                    traceback.print_exc(file=sys.stderr)
                    reply = self.error_reply(500, "fake bug: %r" % (e,))
            if rule is not None:
                reply = self.fault_reply(rule) if rule["status"] else None
            entry["status"] = reply.status if reply else 0
        if reply is None:  # the answer is lost: close the connection without a byte
            self.close_connection = True
            return
        self.send_reply(reply)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = handle_any


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that went away is no news
            super().handle_error(request, client_address)


def serve(handler_class, port):
    """Listens on 127.0.0.1:port (0: any free port), prints the port on stdout and serves forever."""
    server = QuietServer(("127.0.0.1", port), handler_class)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
