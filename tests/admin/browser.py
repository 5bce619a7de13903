"""The admin page in a real browser: Debian's Chromium driven by Playwright, against the real daemon.

Usage: browser.py --rewind BIN --out DIR CASE
Each case starts its own daemon (own state directory, jobs directory, users file and port) and its own
browser, saves a screenshot of every page it checks under DIR/CASE/, and exits non-zero on the first
failed check. Run through tests/admin_page.rs (one nextest test per case).
"""

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic",
]

HELLO_JOB = """script: hello
schedule: "every 1h"
params:
  name: admin page
overrides: [name]
"""

# A job that prints a line every 0.3 s for 6 s: long enough to be followed live on a busy machine.
SLOW_JOB = """local log = require("rewind.log")
local task = require("rewind.task")
return {
  description = "prints lines slowly",
  schedule = "every 1h",
  run = function()
    for i = 1, 20 do
      log.info("slow step " .. i .. " of 20")
      task.sleep(0.3)
    end
    return { steps = 20 }
  end,
}
"""

PASSWORDS = {"olivia": "correct horse battery", "victor": "viewer pass 123"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """A `rewind daemon --listen ... --users ...` in a fresh directory."""

    def __init__(self, rewind, work, extra=(), env=None, jobs_files=None):
        self.rewind, self.work = rewind, work
        jobs = os.path.join(work, "jobs")
        os.makedirs(jobs)
        for name, text in (jobs_files or {}).items():
            with open(os.path.join(jobs, name), "w") as f:
                f.write(text)
        with open(os.path.join(jobs, "hello.yaml"), "w") as f:
            f.write(HELLO_JOB)
        with open(os.path.join(jobs, "slow.lua"), "w") as f:
            f.write(SLOW_JOB)
        users = os.path.join(work, "users.yaml")
        with open(users, "w") as f:
            f.write("users:\n")
            for name, role in (("olivia", "operator"), ("victor", "viewer")):
                h = subprocess.run([rewind, "admin", "hash-password"], input=PASSWORDS[name] + "\n",
                                   capture_output=True, text=True, check=True).stdout.strip()
                f.write(f"  - name: {name}\n    password_hash: '{h}'\n    role: {role}\n")
        self.state = os.path.join(work, "state")
        self.port = free_port()
        self.ssl = None
        if "--tls-cert" in extra:
            self.ssl = ssl.create_default_context(cafile=extra[list(extra).index("--tls-cert") + 1])
        self.url = f"{'https' if self.ssl else 'http'}://127.0.0.1:{self.port}"
        self.log = open(os.path.join(work, "daemon.log"), "w")
        self.proc = subprocess.Popen(
            [rewind, "daemon", "--jobs", jobs, "--state", self.state, "--listen", f"127.0.0.1:{self.port}",
             "--users", users, *extra],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1, context=self.ssl).read()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the daemon did not start:\n{open(self.log.name).read()}")
                time.sleep(0.1)

    def audit(self):
        path = os.path.join(self.state, "audit.jsonl")
        if not os.path.exists(path):
            return []
        return [json.loads(l) for l in open(path) if l.strip()]

    def runs(self):
        d = os.path.join(self.state, "runs")
        out = []
        if os.path.isdir(d):
            for f in sorted(os.listdir(d)):
                if f.endswith(".json"):
                    out.append(json.load(open(os.path.join(d, f))))
        return out

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"  ok: {what}")


class Case:
    def __init__(self, args, name):
        self.args, self.name = args, name
        self.out = os.path.join(args.out, name)
        shutil.rmtree(self.out, ignore_errors=True)
        os.makedirs(self.out)
        self.work = tempfile.mkdtemp(prefix=f"rewind-admin-{name}-")
        self.shots = 0

    def daemon(self, *extra, env=None, jobs_files=None):
        self.d = Daemon(self.args.rewind, self.work, extra, env, jobs_files)
        return self.d

    def shot(self, page, label):
        self.shots += 1
        page.screenshot(path=os.path.join(self.out, f"{self.shots:02d}-{label}.png"), full_page=True)

    def login(self, page, user, password=None):
        page.goto(self.d.url + "/")
        check("/login" in page.url, "a visitor without a session is sent to the login page")
        page.get_by_test_id("login-user").fill(user)
        page.get_by_test_id("login-password").fill(PASSWORDS[user] if password is None else password)
        page.get_by_test_id("login-submit").click()
        page.wait_for_load_state()


def csrf_of(page):
    return page.locator('form[action="/logout"] input[name="csrf"]').get_attribute("value")


def case_login(c, page):
    c.daemon()
    resp = page.goto(c.d.url + "/login")
    h = resp.headers
    check(h.get("x-frame-options") == "DENY" and "frame-ancestors 'none'" in h.get("content-security-policy", "")
          and h.get("cache-control") == "no-store", "pages refuse framing, allow only their own scripts, are not cached")
    c.login(page, "olivia")
    check(page.get_by_test_id("user").inner_text().startswith("olivia"), "the dashboard names the user")
    check(page.get_by_test_id("job-hello").is_visible() and page.get_by_test_id("job-slow").is_visible(),
          "the dashboard lists both jobs")
    check(page.get_by_test_id("run-now-hello").is_visible(), "an operator sees Run now")
    c.shot(page, "dashboard")
    cookie = [k for k in page.context.cookies() if k["name"] == "rewind_session"][0]
    check(cookie["httpOnly"] and cookie["sameSite"] == "Strict", "the session cookie is HttpOnly and SameSite=Strict")
    check(any(e["action"] == "login" and e["user"] == "olivia" and e["addr"] == "127.0.0.1" for e in c.d.audit()),
          "the login is in the audit log with the address")
    page.get_by_test_id("logout").click()
    page.wait_for_load_state()
    page.goto(c.d.url + "/runs")
    check("/login" in page.url, "after logout the pages ask for a login again")


def case_wrong_password(c, page):
    c.daemon()
    c.login(page, "olivia", password="not the password")
    check(page.get_by_test_id("login-error").is_visible(), "a wrong password is refused with a message")
    check("/login" in page.url or page.get_by_test_id("login-user").is_visible(), "no session was given")
    c.shot(page, "login-refused")
    failed = [e for e in c.d.audit() if e["action"] == "login-failed"]
    check(len(failed) == 1 and failed[0]["user"] == "olivia" and failed[0]["addr"] == "127.0.0.1",
          "the failed login is audited with the name and the address")
    check("not the password" not in open(os.path.join(c.d.state, "audit.jsonl")).read(),
          "the password tried is not in the audit log")
    c.login(page, "olivia")
    page.get_by_test_id("nav-audit").click()
    page.wait_for_load_state()
    check(page.get_by_test_id("audit-login-failed").count() == 1, "the audit page shows the failed login")
    c.shot(page, "audit")
    # Five failures from one address within five minutes: the next try is refused outright.
    resp = None
    for _ in range(5):
        page.goto(c.d.url + "/login")
        page.get_by_test_id("login-user").fill("olivia")
        page.get_by_test_id("login-password").fill("wrong again")
        with page.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as info:
            page.get_by_test_id("login-submit").click()
        resp = info.value
    check(resp.status == 429, f"after five failed logins the next attempt is rate limited (got {resp.status})")
    check(int(resp.headers.get("retry-after", "0")) > 0, "with Retry-After")
    page.goto(c.d.url + "/login")
    page.get_by_test_id("login-user").fill("olivia")
    page.get_by_test_id("login-password").fill(PASSWORDS["olivia"])
    with page.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as info:
        page.get_by_test_id("login-submit").click()
    check(info.value.status == 429, "while limited, even the right password is refused")


def case_allowlist(c, page):
    c.daemon("--allow", "10.0.0.0/8")
    resp = page.goto(c.d.url + "/login")
    check(resp.status == 403, f"an address outside the allowlist gets 403 (got {resp.status})")
    check("allowlist" in page.content(), "the answer says why")
    c.shot(page, "forbidden")
    check(not any(e["action"] == "login" for e in c.d.audit()), "nothing was logged in")


def case_csrf(c, page):
    c.daemon()
    c.login(page, "olivia")
    resp = page.request.post(c.d.url + "/jobs/hello/run", form={"param.name": "forged"}, max_redirects=0)
    check(resp.status == 403, f"a POST without the CSRF token is refused (got {resp.status})")
    resp = page.request.post(c.d.url + "/jobs/hello/run", form={"csrf": "0" * 64}, max_redirects=0)
    check(resp.status == 403, "a POST with a wrong CSRF token is refused")
    time.sleep(0.5)
    check(c.d.runs() == [], "no run was started")
    refused = [e for e in c.d.audit() if e["action"] == "run-refused"]
    check(len(refused) == 2 and all("CSRF" in e["detail"] for e in refused), "both refusals are audited")
    page.goto(c.d.url + "/")
    check(page.get_by_test_id("run-now-hello").is_visible(), "the session still works after the refusals")


def case_viewer(c, page):
    c.daemon()
    c.login(page, "victor")
    check(page.get_by_test_id("user").inner_text().startswith("victor"), "the viewer is logged in")
    check(page.locator('[data-testid^="run-now-"]').count() == 0, "a viewer sees no Run now button")
    c.shot(page, "viewer-dashboard")
    page.goto(c.d.url + "/jobs/hello")
    check(page.get_by_test_id("run-form").count() == 0, "a viewer sees no run form on the job page")
    # A forged POST with the viewer's own, valid CSRF token: refused for the role.
    resp = page.request.post(c.d.url + "/jobs/hello/run", form={"csrf": csrf_of(page)}, max_redirects=0)
    check(resp.status == 403, f"a viewer's POST is refused with 403 (got {resp.status})")
    time.sleep(0.5)
    check(c.d.runs() == [], "no run was started")
    check(any(e["action"] == "run-refused" and e["user"] == "victor" for e in c.d.audit()), "the refusal is audited")


def case_run_now_live(c, page):
    c.daemon()
    c.login(page, "olivia")
    page.get_by_test_id("run-now-slow").click()
    page.wait_for_url(re.compile(r".*/runs/[^/]+$"))
    run_id = page.url.rsplit("/", 1)[1]
    log = page.get_by_test_id("run-log")
    # Lines appear while the run is still going (live), not only when the page is reloaded at the end.
    page.wait_for_function(
        "() => document.querySelector('[data-testid=run-log]').textContent.includes('slow step 3 of 20')", timeout=15000)
    check(page.get_by_test_id("run-status").inner_text() == "running", "the log shows lines while the run is running")
    c.shot(page, "live-log")
    page.wait_for_function("() => document.querySelector('[data-testid=run-log]').dataset.ended", timeout=30000)
    text = log.inner_text()
    check(all(f"slow step {i} of 20" in text for i in range(1, 21)), "the live log has every line of the job")
    check(text.rstrip().endswith("done"), "the live log ends with the run's status, done")
    check(all(text.count(f"slow step {i} of 20") == 1 for i in range(1, 21)), "no line is shown twice")
    check(page.get_by_test_id("run-status").inner_text() == "done", "the status changes to done")
    c.shot(page, "run-done")
    runs = c.d.runs()
    check(len(runs) == 1 and runs[0]["id"] == run_id and runs[0]["status"] == "done", "the daemon recorded the run")
    check(any(e["action"] == "run" and e["target"] == "slow" and run_id in e["detail"] for e in c.d.audit()),
          "the run is audited with its id")
    # The job page's override form: the param reaches the run.
    page.goto(c.d.url + "/jobs/hello")
    page.get_by_test_id("override-name").fill("browser")
    page.get_by_test_id("run-now-hello").click()
    page.wait_for_url(re.compile(r".*/runs/[^/]+$"))
    page.wait_for_function("() => document.querySelector('[data-testid=run-status]').textContent != 'running'"
                           " || document.querySelector('[data-testid=run-log]').dataset.ended", timeout=15000)
    page.reload()
    check("hello, browser" in page.get_by_test_id("run-result").inner_text(), "the overridden param reached the run")
    check(page.get_by_test_id("run-given").inner_text().strip() == "name=browser", "the run's page shows what it was given")
    page.goto(c.d.url + "/runs?job=slow")
    check(page.locator('[data-testid^="run-"]').filter(has_text="slow").count() >= 1, "the runs page filters by job")
    c.shot(page, "runs")


def case_session_expires(c, page):
    c.daemon("--session-idle", "2s")
    c.login(page, "olivia")
    check(page.get_by_test_id("user").is_visible(), "logged in")
    time.sleep(3)
    page.goto(c.d.url + "/runs")
    check("/login" in page.url, "after 2 s idle the session has expired and the login page is shown")
    c.shot(page, "expired")


def wait_run_end(page, timeout=60000):
    page.wait_for_url(re.compile(r".*/runs/[^/]+$"))
    page.wait_for_function(
        "() => document.querySelector('[data-testid=run-log]').dataset.ended"
        " || document.querySelector('[data-testid=run-status]').textContent != 'running'", timeout=timeout)
    page.reload()
    return page.get_by_test_id("run-status").inner_text()


def tree(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            out[os.path.relpath(p, root)] = open(p, "rb").read()
    return out


def case_snapshots_restore(c, page):
    data = os.path.join(c.work, "data")
    os.makedirs(os.path.join(data, "sub"))
    for i in range(20):
        with open(os.path.join(data, "sub" if i % 2 else "", f"file-{i}.bin"), "wb") as f:
            f.write(os.urandom(1000 * i + 1))
    store = os.path.join(c.work, "store")
    restored = os.path.join(c.work, "restored")
    jobs = {
        "data-backup.yaml": f"script: backup-dir\nschedule: 'every 1h'\nparams:\n  from: [{data}]\n"
                            f"  store: 'file://{store}'\n  prefix: dirs/data\n",
        "data-restore.yaml": f"script: restore-dir\nschedule: manual\nparams:\n  store: 'file://{store}'\n"
                             f"  prefix: dirs/data\n  to: {restored}\n  overwrite: true\n",
        # No prefix given: druid-restore's default (druid) names the place.
        "druid-restore.yaml": f"script: druid-restore\nschedule: manual\nparams:\n  store: 'file://{store}'\n",
    }
    c.daemon(jobs_files=jobs, env={"REWIND_DAEMON_TOKEN": "api-token-for-tests"})
    c.login(page, "olivia")
    check(page.get_by_test_id("job-data-restore").inner_text().count("manual") == 1, "a manual job shows its schedule")
    check(page.get_by_test_id("run-now-data-restore").count() == 0 and page.get_by_test_id("restore-data-restore").is_visible(),
          "a restore job has no bare Run now, only Restore… (through the plan and the typed id)")
    resp = page.request.post(c.d.url + "/jobs/data-restore/run", form={"csrf": csrf_of(page)}, max_redirects=0)
    check(resp.status == 400 and not os.path.exists(restored), "a Run now forged for a restore job is refused")
    page.get_by_test_id("run-now-data-backup").click()
    check(wait_run_end(page) == "done", "the backup ran")
    page.get_by_test_id("nav-snapshots").click()
    page.wait_for_load_state()
    druid = page.get_by_test_id("place-druid")
    check(druid.is_visible() and "Restored by druid-restore" in druid.inner_text() and "No snapshots yet" in druid.inner_text(),
          "a restore job without a prefix param is listed under its script's default prefix")
    rows = page.get_by_test_id("place-dirs/data").locator('[data-testid^="snapshot-"]')
    check(rows.count() == 1, "the snapshots page lists the one snapshot of dirs/data")
    snap_id = rows.first.get_attribute("data-testid")[len("snapshot-"):]
    check("backup-dir" in rows.first.inner_text() and "complete" in rows.first.inner_text(), "with its procedure and state")
    c.shot(page, "snapshots")
    rows.first.get_by_role("link").click()
    page.wait_for_load_state()
    manifest = json.loads(page.get_by_test_id("manifest").inner_text())
    check(manifest["id"] == snap_id and manifest["procedure"] == "backup-dir", "the snapshot page shows its manifest")
    c.shot(page, "snapshot")
    snapshot_url = page.url
    page.get_by_test_id("verify").click()
    check(wait_run_end(page) == "done", "verify ran as a run and passed")
    result = json.loads(page.get_by_test_id("run-result").inner_text())
    check(result["ok"] is True and result["verified"] == 1, "its result is shown: one snapshot verified")
    page.goto(snapshot_url)
    page.get_by_test_id("restore-with-data-restore").click()
    page.wait_for_load_state()
    plan = page.get_by_test_id("plan").inner_text()
    check(snap_id in plan and restored in plan, "the restore first shows the job's dry-run plan")
    check(not os.path.exists(restored), "the plan changed nothing")
    c.shot(page, "restore-plan")
    plan_url = page.url
    page.get_by_test_id("confirm-id").fill("20000101-000000")
    with page.expect_response(lambda r: r.url.endswith("/restore") and r.request.method == "POST") as info:
        page.get_by_test_id("restore-submit").click()
    check(info.value.status == 400 and "does not match" in page.get_by_test_id("problem").inner_text(),
          "a mistyped id is refused")
    check(not os.path.exists(restored), "and nothing was restored")
    page.goto(plan_url)
    page.get_by_test_id("confirm-id").fill(snap_id)
    page.get_by_test_id("restore-submit").click()
    check(wait_run_end(page) == "done", "the typed id starts the restore, followed to done")
    check(tree(restored) == tree(data), "the restored files equal the originals, byte for byte")
    check(f"snapshot={snap_id}" in page.get_by_test_id("run-given").inner_text(), "the restore run records its snapshot id")
    actions = [e["action"] for e in c.d.audit()]
    check("verify" in actions and "restore" in actions and "restore-refused" in actions,
          "verify, the refused restore and the restore are audited")
    page.get_by_test_id("logout").click()
    c.login(page, "victor")
    page.goto(snapshot_url)
    check(page.get_by_test_id("verify").count() == 0 and page.locator('[data-testid^="restore-with-"]').count() == 0,
          "a viewer sees the manifest but no verify or restore button")
    resp = page.request.post(c.d.url + "/restore", form={"csrf": csrf_of(page), "job": "data-restore",
                                                         "snapshot": snap_id, "confirm": snap_id}, max_redirects=0)
    check(resp.status == 403, "a viewer's forged restore is refused")
    resp = page.request.get(c.d.url + "/snapshots/show?store=file:///etc&prefix=x&id=1", max_redirects=0)
    check(resp.status == 404, "a store and prefix no job names cannot be browsed")
    # The JSON API, for automation, still runs a restore job (the newest snapshot, unconfirmed).
    conn = http.client.HTTPConnection("127.0.0.1", c.d.port, timeout=10)
    conn.request("POST", "/api/jobs/data-restore/run", body="{}",
                 headers={"Authorization": "Bearer api-token-for-tests", "Content-Type": "application/json"})
    r = conn.getresponse()
    check(r.status == 202 and "run_id" in r.read().decode(), "the API still runs a restore job")


def case_tls(c, page):
    cert, key = os.path.join(c.work, "cert.pem"), os.path.join(c.work, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    # A key that does not parse: a usage error naming the file, exit code 2, nothing served.
    bad = os.path.join(c.work, "bad.pem")
    with open(bad, "w") as f:
        f.write("not a key\n")
    r = subprocess.run([c.args.rewind, "daemon", "--jobs", c.work, "--state", os.path.join(c.work, "s2"),
                        "--listen", "127.0.0.1:0", "--token-file", cert, "--tls-cert", cert, "--tls-key", bad],
                       capture_output=True, text=True, timeout=20)
    check(r.returncode == 2 and "--tls-key" in r.stderr and bad in r.stderr, f"a bad key file is named, exit 2 ({r.stderr.strip()})")
    c.daemon("--tls-cert", cert, "--tls-key", key)
    conn = http.client.HTTPSConnection("127.0.0.1", c.d.port, timeout=10, context=c.d.ssl)
    conn.request("GET", "/login")
    resp = conn.getresponse()
    resp.read()
    check(resp.status == 200, "the login page is served over TLS with the given certificate")
    cookie = resp.getheader("set-cookie") or ""
    check("Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie, f"cookies are Secure over TLS ({cookie})")
    plain = http.client.HTTPConnection("127.0.0.1", c.d.port, timeout=5)
    try:
        plain.request("GET", "/login")
        answered = plain.getresponse().status
    except (http.client.HTTPException, OSError):
        answered = None
    check(answered is None, "plain HTTP gets no page from the TLS listener")
    # And a browser logs in over it (Chromium told to accept this test certificate).
    ctx = page.context.browser.new_context(ignore_https_errors=True)
    p2 = ctx.new_page()
    c.login(p2, "olivia")
    check(p2.get_by_test_id("user").inner_text().startswith("olivia"), "a browser logs in over HTTPS")
    ctx.close()


def case_hash_password_tty(c, page):
    """`rewind admin hash-password` on a terminal: asks twice without echo; a mismatch hashes nothing."""
    import pty

    def converse(first, second):
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(c.args.rewind, [c.args.rewind, "admin", "hash-password"])
        out = b""
        for answer in (first, second):
            while b": " not in out.split(b"\n")[-1]:
                out += os.read(fd, 1024)
            time.sleep(0.3)  # the prompt is printed just before echo is turned off
            os.write(fd, answer.encode() + b"\n")
            out += b"\n"
        while True:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), out.decode(errors="replace")

    code, out = converse("tty secret 1", "tty secret 1")
    check(code == 0 and "$argon2id$" in out, "two equal answers print an argon2id hash")
    check("tty secret 1" not in out, "the password is not echoed")
    code, out = converse("tty secret 1", "tty secret 2")
    check(code == 2 and "differ" in out and "$argon2id$" not in out, "two different answers: exit 2, no hash")


def get(d, path, source="127.0.0.1", headers=None):
    """A plain GET from a chosen loopback source address: (status, location, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10, source_address=(source, 0))
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    body = r.read().decode()
    conn.close()
    return r.status, r.getheader("location") or "", body


def case_trust_proxy(c, page):
    # The proxy is 127.0.0.2; the browser-side client is 127.0.0.1.
    c.daemon("--trust-proxy", "127.0.0.2", env={"REWIND_DAEMON_TOKEN": "api-token-for-tests"})
    status, _, body = get(c.d, "/", source="127.0.0.2", headers={"Remote-User": "olivia"})
    check(status == 200 and "olivia (operator)" in body, "Remote-User from the proxy's address is the user, with the file's role")
    check('data-testid="run-now-hello"' in body, "an operator through the proxy sees Run now")
    status, _, body = get(c.d, "/", source="127.0.0.2", headers={"Remote-User": "mallory"})
    check(status == 200 and "mallory (viewer)" in body and "run-now-" not in body,
          "a user the file does not list is a viewer")
    status, loc, _ = get(c.d, "/", source="127.0.0.1", headers={"Remote-User": "olivia"})
    check(status == 303 and loc.startswith("/login"), "the header from any other address is ignored")
    status, loc, _ = get(c.d, "/", source="127.0.0.1", headers={"Cookie": "rewind_session=proxy:olivia"})
    check(status == 303 and loc.startswith("/login"), "a cookie cannot name a proxy user's session")
    status, _, _ = get(c.d, "/api/jobs", source="127.0.0.2", headers={"Remote-User": "olivia"})
    check(status == 401, "the JSON API does not take the proxy's user: it needs the bearer token")
    status, loc, _ = get(c.d, "/", headers={"Authorization": "Bearer api-token-for-tests"})
    check(status == 303 and loc.startswith("/login"), "the pages do not take the API's bearer token")
    status, _, body = get(c.d, "/api/jobs", headers={"Authorization": "Bearer api-token-for-tests"})
    check(status == 200 and '"hello"' in body, "the bearer token keeps working for the JSON API")


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rewind", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("case", choices=sorted(CASES))
    args = ap.parse_args()
    c = Case(args, args.case)
    print(f"case {args.case}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        page = browser.new_context().new_page()
        try:
            CASES[args.case](c, page)
        except Exception:
            try:
                c.shot(page, "failure")
            except Exception:
                pass
            if hasattr(c, "d"):
                print("--- daemon log ---\n" + open(c.d.log.name).read(), file=sys.stderr)
            raise
        finally:
            browser.close()
            if hasattr(c, "d"):
                c.d.stop()
    shutil.rmtree(c.work, ignore_errors=True)
    print(f"case {args.case}: passed ({c.shots} screenshots in {c.out})")


if __name__ == "__main__":
    main()
