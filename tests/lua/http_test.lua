-- rewind.http against a real local HTTP server (tests/fakes/http_fake.py).
local t = require("rewind.testing")
local http = require("rewind.http")
local exec = require("rewind.exec")
local task = require("rewind.task")
local time = require("rewind.time")

local fake = "tests/fakes/http_fake.py" -- run from the repository root, as tests/run.sh does
local base

local function server()
  if base then return base end
  local p = exec.spawn({ "python3", fake })
  -- the runner calls on_exit handlers after each case: each case gets a fresh server
  task.on_exit(function() base = nil; p:kill() end)
  local out, line = p:stdout(), ""
  while not line:find("\n") do
    local chunk = out:read(64)
    assert(chunk, "the fake HTTP server exited before printing its port")
    line = line .. chunk
  end
  base = "http://127.0.0.1:" .. line:match("%d+")
  return base
end

local function hits(key)
  return http.get(server() .. "/hits/" .. key).json.hits
end

t.test("GET decodes JSON, keeping [] and big integers", function()
  local r = http.get(server() .. "/json")
  t.eq(r.status, 200)
  t.eq(r.json.ok, true)
  t.eq(#r.json.items, 0)
  t.eq(require("rewind.json").encode(r.json.items), "[]")
  t.eq(r.json.big, 9007199254740993)
  t.contains(r.headers["content-type"], "application/json")
end)

t.test("POST/PUT/PATCH/DELETE send method, JSON body, headers and query", function()
  for _, m in ipairs({ "post", "put", "patch", "delete" }) do
    local r = http[m](server() .. "/echo", { json = { a = 1, list = { 1, 2 } }, headers = { ["X-Test"] = "yes" },
      query = { q = "x y" } })
    t.eq(r.json.method, m:upper())
    t.eq(require("rewind.json").decode(r.json.body), { a = 1, list = { 1, 2 } })
    t.eq(r.json.headers["x-test"], "yes")
    t.eq(r.json.headers["content-type"], "application/json")
    t.eq(r.json.query.q, "x y")
  end
end)

t.test("429 with Retry-After is retried after the delay it asks for", function()
  local start = time.monotonic()
  local r = http.get(server() .. "/ratelimit/a", { backoff = 0.01 })
  t.eq(r.status, 200)
  t.eq(hits("a"), 2)
  t.ok(time.monotonic() - start >= 0.9, "Retry-After: 1 was not honoured")
end)

t.test("503 twice then 200 succeeds after two retries", function()
  local r = http.get(server() .. "/flaky/b", { backoff = 0.01 })
  t.eq(r.status, 200)
  t.eq(r.json.hits, 3)
  t.eq(hits("b"), 3)
end)

t.test("retries are configurable and the final error carries status and body", function()
  local err = t.raises(function() http.get(server() .. "/down/c", { retries = 2, backoff = 0.01 }) end, "503")
  t.contains(err, "backend down")
  t.eq(hits("c"), 3)
  t.raises(function() http.get(server() .. "/flaky/d", { retries = 0 }) end, "503")
  t.eq(hits("d"), 1)
end)

t.test("404 raises with status and body; check=false returns it", function()
  local err = t.raises(function() http.get(server() .. "/missing") end, "404")
  t.contains(err, "no such thing: /missing")
  local r = http.get(server() .. "/missing", { check = false })
  t.eq(r.status, 404)
  t.contains(r.body, "no such thing")
end)

t.test("an Authorization header never appears in error text", function()
  local token = "Bearer tok-9f8e7d6c5b4a"
  local err = t.raises(function()
    http.get(server() .. "/missing", { headers = { Authorization = token } })
  end, "404")
  t.ok(not err:find("tok-9f8e7d6c5b4a", 1, true), "token leaked: " .. err)
  -- credentials in the URL are masked too
  local url = server():gsub("http://", "http://user:pw-1234567@") .. "/missing?api_key=k-7654321"
  err = t.raises(function() http.get(url) end, "404")
  t.ok(not err:find("pw-1234567", 1, true) and not err:find("k-7654321", 1, true), "URL secret leaked: " .. err)
end)

t.test("timeouts fire", function()
  local start = time.monotonic()
  local err = t.raises(function() http.get(server() .. "/slow?secs=3", { timeout = "300ms", retries = 0 }) end)
  t.contains(err:lower(), "timed out")
  t.ok(time.monotonic() - start < 2, "the timeout did not cut the request short")
end)

t.test("connection errors are retried, then raised", function()
  local err = t.raises(function() http.get("http://127.0.0.1:1/x", { retries = 1, backoff = 0.01 }) end)
  t.contains(err, "2 attempt")
end)

t.test("stream=true hands the body out as a reader", function()
  local r = http.get(server() .. "/json", { stream = true })
  t.eq(r.body, nil)
  t.contains(r.reader:read_all(), '"ok"')
end)
