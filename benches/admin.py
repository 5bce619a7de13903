"""Admin page bars (issue 16), against the real daemon on 127.0.0.1:
  1. with RUNS runs in the history (100 per job) and SNAPS snapshots under one prefix, the dashboard (/)
     and the runs page (/runs) answer in < 50 ms, p95 over 200 requests each (one keep-alive client, after
     a login; measured at the client, on loopback, so it includes the client's own overhead);
  2. FOLLOWERS concurrent live-log followers (server-sent events) of one run slow that run down by at most
     5 %: the same job run alternately without and with followers, best of ROUNDS each, run time from the
     daemon's run record (duration_ms).
There is no reference tool for a web page: each figure is printed beside its bar with the ratio.
Usage: admin.py REWIND [--quick]
"""

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

QUICK = "--quick" in sys.argv
REWIND = os.path.abspath(sys.argv[1])
JOBS = 20 if QUICK else 100
PER_JOB = 10 if QUICK else 100
SNAPS = 5 if QUICK else 50
REQUESTS = 40 if QUICK else 200
FOLLOWERS = 10 if QUICK else 50
ROUNDS = 1 if QUICK else 3
STEPS = 10 if QUICK else 40

# The followed job: CPU work in Rust (sha256 of 4 MiB, 16 times a step) with a log line per step.
WORK_JOB = """local log = require("rewind.log")
local hash = require("rewind.hash")
return {
  schedule = "manual",
  run = function()
    local data = string.rep("rewind admin page benchmark ", 150000)
    for i = 1, %d do
      for _ = 1, 16 do hash.sha256(data) end
      log.info("work step " .. i .. " done")
    end
    return { steps = %d }
  end,
}
""" % (STEPS, STEPS)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def history(state):
    """PER_JOB finished runs for each of JOBS jobs, as the daemon writes them."""
    runs = os.path.join(state, "runs")
    os.makedirs(runs)
    now = time.time()
    n = 0
    for j in range(JOBS):
        for k in range(PER_JOB):
            n += 1
            t = now - 86400 * 7 + n * 30
            started = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".000Z"
            finished = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t + 2)) + ".000Z"
            rid = time.strftime("%Y%m%dT%H%M%S", time.gmtime(t)) + f"000Z-job-{j:03d}-{k:04x}"
            status = "failed" if k % 17 == 0 else "done"
            rec = {"id": rid, "job": f"job-{j:03d}", "trigger": "schedule", "scheduled": started,
                   "started": started, "finished": finished, "status": status, "duration_ms": 2000,
                   "result": {"greetings": ["hello, world"]}, "error": "boom" if status == "failed" else None,
                   "notify_error": None}
            with open(os.path.join(runs, rid + ".json"), "w") as f:
                json.dump(rec, f)
    return n


class Client:
    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookies = {}

    def request(self, method, path, body=None):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if body is not None:
            body = urllib.parse.urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        data = r.read().decode()
        for h, v in r.getheaders():
            if h.lower() == "set-cookie":
                name, _, rest = v.partition("=")
                self.cookies[name] = rest.split(";")[0]
        return r.status, r.getheader("location"), data

    def login(self, user, password):
        _, _, page = self.request("GET", "/login")
        token = re.search(r'name="token" value="([0-9a-f]+)"', page).group(1)
        status, _, _ = self.request("POST", "/login", {"token": token, "next": "/", "user": user, "password": password})
        assert status == 303, f"login failed: {status}"


def p95(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def timed_pages(client, path):
    times = []
    for _ in range(REQUESTS):
        t = time.perf_counter()
        status, _, body = client.request("GET", path)
        times.append((time.perf_counter() - t) * 1000)
        assert status == 200, f"{path}: {status}"
    return times, len(body)


def follow(port, cookie, run_id, out, idx):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", f"/runs/{run_id}/events?from=0", headers={"Cookie": cookie})
    r = conn.getresponse()
    lines = 0
    ended = None
    buf = b""
    while True:
        chunk = r.read1(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            text = event.decode()
            if "event: end" in text:
                ended = text.split("data:", 1)[1].strip()
            elif "event: log" in text:
                lines += text.count("data:")
        if ended:
            break
    out[idx] = (lines, ended)
    conn.close()


def run_work(client, port, followers):
    status, loc, _ = client.request("POST", "/jobs/work/run", {"csrf": client.csrf})
    assert status == 303, f"run now: {status}"
    run_id = loc.rsplit("/", 1)[1]
    out = [None] * followers
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    threads = [threading.Thread(target=follow, args=(port, cookie, run_id, out, i)) for i in range(followers)]
    for t in threads:
        t.start()
    while True:
        _, _, body = client.request("GET", f"/runs/{run_id}")
        if 'data-testid="run-status">running<' not in body:
            break
        time.sleep(0.2)
    for t in threads:
        t.join(60)
    rec = json.load(open(os.path.join(client.state, "runs", run_id + ".json")))
    assert rec["status"] == "done", rec
    for lines, ended in out:
        assert ended == "done" and lines >= STEPS, f"a follower saw {lines} lines, end {ended}; log: {open(os.path.join(client.state, 'runs', run_id + '.log')).read()[:500]}"
    return rec["duration_ms"] / 1000


def main():
    work = tempfile.mkdtemp(prefix="rewind-bench-admin-")
    daemon = None
    try:
        jobs = os.path.join(work, "jobs")
        os.makedirs(jobs)
        for j in range(JOBS):
            with open(os.path.join(jobs, f"job-{j:03d}.yaml"), "w") as f:
                f.write("script: hello\nschedule: 'every 24h'\n")
        with open(os.path.join(jobs, "work.lua"), "w") as f:
            f.write(WORK_JOB)
        data = os.path.join(work, "data")
        os.makedirs(data)
        for i in range(20):
            with open(os.path.join(data, f"f{i}"), "wb") as f:
                f.write(os.urandom(2000))
        store = os.path.join(work, "store")
        with open(os.path.join(jobs, "data-backup.yaml"), "w") as f:
            f.write(f"script: backup-dir\nschedule: manual\nparams: {{from: [{data}], store: 'file://{store}', prefix: dirs/data}}\n")
        t0 = time.time()
        for i in range(SNAPS):
            subprocess.run([REWIND, "run", "-q", "backup-dir", f"from={data}", f"store=file://{store}", "prefix=dirs/data"],
                           check=True, stdout=subprocess.DEVNULL)
            time.sleep(max(0, (t0 + i + 1.05) - time.time()))  # snapshot ids have one-second resolution
        state = os.path.join(work, "state")
        n = history(state)
        pw = "bench password"
        h = subprocess.run([REWIND, "admin", "hash-password"], input=pw + "\n", capture_output=True, text=True,
                           check=True).stdout.strip()
        users = os.path.join(work, "users.yaml")
        with open(users, "w") as f:
            f.write(f"users:\n  - name: op\n    password_hash: '{h}'\n    role: operator\n")
        port = free_port()
        log = open(os.path.join(work, "daemon.log"), "w")
        daemon = subprocess.Popen([REWIND, "daemon", "-q", "--jobs", jobs, "--state", state, "--listen",
                                   f"127.0.0.1:{port}", "--users", users], stdout=log, stderr=log)
        c = Client(port)
        c.state = state
        for _ in range(200):
            try:
                c.request("GET", "/healthz")
                break
            except OSError:
                c.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                time.sleep(0.1)
        c.login("op", pw)
        _, _, page = c.request("GET", "/")
        c.csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
        print(f"history: {n} runs of {JOBS} jobs; {SNAPS} snapshots under dirs/data; {REQUESTS} requests per page")
        rows = []
        for path, bar in (("/", 50), ("/runs", 50), ("/runs?job=job-007&status=failed", 50), ("/snapshots", None)):
            times, size = timed_pages(c, path)
            q = p95(times)
            rows.append((f"GET {path} p95 ({size // 1024} KiB page)", f"{q:.1f} ms",
                         f"< {bar} ms" if bar else "(context)", f"{q / bar:.2f}" if bar else "-",
                         ("MET" if q < bar else "MISSED") if bar else ""))
            print(f"  {path}: p50 {sorted(times)[len(times) // 2]:.1f} ms, p95 {q:.1f} ms, max {max(times):.1f} ms")
        alone, followed = [], []
        for r in range(ROUNDS):
            alone.append(run_work(c, port, 0))
            followed.append(run_work(c, port, FOLLOWERS))
            print(f"  round {r + 1}: work run alone {alone[-1]:.3f} s, with {FOLLOWERS} followers {followed[-1]:.3f} s")
        a, b = min(alone), min(followed)
        rows.append((f"run time with {FOLLOWERS} live-log followers (best of {ROUNDS})", f"{b:.3f} s vs {a:.3f} s alone",
                     "<= 1.05x", f"{b / a:.3f}", "MET" if b / a <= 1.05 else "MISSED"))
        print("\n== summary" + (" (QUICK: smoke sizes, not the bars' conditions)" if QUICK else ""))
        print(f"{'measurement':58} {'value':28} {'bar':10} {'ratio':6} result")
        for row in rows:
            print(f"{row[0]:58} {row[1]:28} {row[2]:10} {row[3]:6} {row[4]}")
    finally:
        if daemon:
            daemon.terminate()
            daemon.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
