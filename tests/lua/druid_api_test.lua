-- rewind.druid_api: interval helpers, and the client against the stateful fake Druid cluster
-- (tests/fakes/druid_cluster.py: coordinator + overlord in one process, faults set per case).
local t = require("rewind.testing")
local druid_api = require("rewind.druid_api")
local exec = require("rewind.exec")
local fs = require("rewind.fs")
local http = require("rewind.http")
local json = require("rewind.json")
local task = require("rewind.task")

local fake = "tests/fakes/druid_cluster.py" -- run from the repository root, as tests/run.sh does
local V, OLD = "2019-12-02T10:00:00.000Z", "2019-11-01T00:00:00.000Z"
local DAY = "2019-12-01T00:00:00.000Z/2019-12-02T00:00:00.000Z"

local function segment(ds, day, version, part, used)
  local iv = druid_api.day_interval(day)
  local id = ds .. "_" .. iv:gsub("/", "_") .. "_" .. version .. (part > 0 and ("_" .. part) or "")
  return { id = id, dataSource = ds, interval = iv, version = version, used = used ~= false, payload = {
    dataSource = ds, interval = iv, version = version, identifier = id, binaryVersion = 9, size = 1000 + part,
    dimensions = "page,user", metrics = "count", shardSpec = { type = "numbered", partitionNum = part, partitions = 2 },
    loadSpec = { type = "local", path = "/opt/shared/segments/" .. ds .. "/" .. iv:gsub("/", "_") .. "/" .. version
      .. "/" .. part .. "/index.zip" } } }
end

-- A fresh fake per case (the runner calls on_exit handlers after each case); returns its base URL.
local function cluster(faults)
  local dir = fs.temp_dir("druid-api-test")
  fs.write(dir .. "/segments.json", json.encode({
    segment("events", "2019-11-30", V, 0), segment("events", "2019-12-01", V, 0),
    segment("events", "2019-12-01", V, 1),
    segment("events", "2019-12-01", OLD, 0, false), segment("events", "2019-12-02", V, 0),
    segment("clicks", "2019-12-01", V, 0),
  }))
  local p = exec.spawn({ "python3", fake, "--segments", dir .. "/segments.json",
    "--faults", json.encode(faults or {}) })
  task.on_exit(function() p:kill() end)
  local out, line = p:stdout(), ""
  while not line:find("\n") do
    local chunk = out:read(64)
    assert(chunk, "the fake Druid cluster exited before printing its port")
    line = line .. chunk
  end
  return "http://127.0.0.1:" .. line:match("%d+")
end

local function used_ids(base, ds)
  local ids = {}
  for _, s in ipairs(http.get(base .. "/_fake/state").json) do
    if s.dataSource == ds and s.used then ids[#ids + 1] = s.id end
  end
  table.sort(ids)
  return ids
end

local function requests(base)
  local out = {}
  for _, r in ipairs(http.get(base .. "/_fake/requests").json) do
    local path = r.path:gsub("^/druid/", ""):gsub("datasources/events/", "")
    out[#out + 1] = r.method .. " " .. path .. " " .. tostring(r.status)
  end
  return out
end

local function client(base, opts)
  opts = opts or {}
  opts.coordinator, opts.backoff = base, 0.05
  return druid_api.client(opts)
end

t.test("day_interval rolls over months, years and leap days", function()
  t.eq(druid_api.day_interval("2019-12-01"), DAY)
  t.eq(druid_api.day_interval("2019-12-31"), "2019-12-31T00:00:00.000Z/2020-01-01T00:00:00.000Z")
  t.eq(druid_api.day_interval("2019-11-30"), "2019-11-30T00:00:00.000Z/2019-12-01T00:00:00.000Z")
  t.eq(druid_api.day_interval("2020-02-28"), "2020-02-28T00:00:00.000Z/2020-02-29T00:00:00.000Z")
  t.eq(druid_api.day_interval("2019-02-28"), "2019-02-28T00:00:00.000Z/2019-03-01T00:00:00.000Z")
  t.eq(druid_api.days_interval("2019-12-30", "2020-01-01"), "2019-12-30T00:00:00.000Z/2020-01-02T00:00:00.000Z")
  for _, bad in ipairs({ "2019-02-30", "2019-13-01", "20191201", "2019-12-01T00:00:00Z", "" }) do
    t.raises(function() druid_api.day_interval(bad) end, "expected a day like 2019-12-01", bad)
  end
  t.raises(function() druid_api.days_interval("2019-12-02", "2019-12-01") end, "is before")
end)

t.test("parse_interval and contains", function()
  local s, e = druid_api.parse_interval(DAY)
  t.eq({ s, e }, { 1575158400, 1575244800 })
  t.ok(druid_api.contains(druid_api.days_interval("2019-11-30", "2019-12-01"), DAY))
  t.ok(not druid_api.contains(DAY, druid_api.days_interval("2019-12-01", "2019-12-02")))
  t.raises(function() druid_api.parse_interval("2019-12-01") end, "expected an interval")
  t.raises(function() druid_api.parse_interval("2019-12-02/2019-12-01") end, "expected an interval")
end)

t.test("used_segments lists a day's used segments with their payloads", function()
  local d = client(cluster())
  local segs = d:used_segments("events", DAY)
  t.eq(#segs, 2)
  t.eq(segs[1].id, "events_" .. DAY:gsub("/", "_") .. "_" .. V)
  t.eq({ segs[1].datasource, segs[1].interval, segs[1].version }, { "events", DAY, V })
  t.contains(segs[2].payload.loadSpec.path, "/1/index.zip")
  t.eq(segs[2].payload.shardSpec.partitionNum, 1)
  -- overlap (Druid's metadata API) against within (the set mark/kill act on)
  local half = "2019-12-01T12:00:00.000Z/2019-12-02T00:00:00.000Z"
  t.eq(#d:used_segments("events", half), 2)
  t.eq(#d:used_segments("events", half, { within = true }), 0)
  t.eq(#d:used_segments("events", { DAY, druid_api.day_interval("2019-12-02") }), 3)
  t.eq(d:used_segments("nosuch", DAY), {})
  t.eq(#d:served_segment_ids("events", druid_api.days_interval("2019-12-01", "2019-12-02")), 3)
  t.eq(d:loadstatus(), { clicks = 100.0, events = 100.0 })
end)

t.test("mark_unused / mark_used count changed segments; overshadowed ones stay unused", function()
  local base = cluster()
  local d = client(base)
  t.eq(d:mark_unused("events", { interval = DAY }), 2)
  t.eq(d:mark_unused("events", { interval = DAY }), 0)
  t.eq(d:used_segments("events", DAY), {})
  t.eq(#used_ids(base, "clicks"), 1)
  t.eq(d:mark_used("events", { interval = DAY }), 2) -- the OLD version is overshadowed
  t.eq(#d:used_segments("events", DAY), 2)
  local id = d:used_segments("events", DAY)[1].id
  t.eq(d:mark_unused("events", { segment_ids = { id, "nosuch" } }), 1)
  t.eq(d:mark_used("events", { segment_ids = { id } }), 1)
  t.eq(d:mark_used("events", { segment_ids = {} }), 0)
  t.eq(requests(base)[1], "POST coordinator/v1/markUnused 200")
  t.raises(function() d:mark_used("events", { interval = DAY, segment_ids = { id } }) end, "not both")
  t.raises(function() d:mark_used("events", {}) end, "give interval or segment_ids")
end)

t.test("the overlord path first; a non-leader (503) passes to the next overlord, then the coordinator", function()
  local base = cluster({ overlord_not_leader = 1 })
  local d = client(base, { overlord = { base, base } })
  t.eq(d:mark_unused("events", { interval = DAY }), 2)
  t.eq(requests(base), { "POST indexer/v1/markUnused 503", "POST indexer/v1/markUnused 200" })
  http.post(base .. "/_fake/faults", { json = { overlord_not_leader = true } })
  t.eq(d:mark_used("events", { interval = DAY }), 2)
  t.eq({ table.unpack(requests(base), 3) }, { "POST indexer/v1/markUsed 503", "POST indexer/v1/markUsed 503",
    "POST coordinator/v1/markUsed 200" })
end)

t.test("an overlord without the mark paths (404, older Druid) falls back to the coordinator for good", function()
  local base = cluster({ overlord_missing = true })
  local d = client(base, { overlord = base })
  t.eq(d:mark_unused("events", { interval = DAY }), 2)
  t.eq(d:mark_used("events", { interval = DAY }), 2)
  t.eq(requests(base), { "POST indexer/v1/markUnused 404", "POST coordinator/v1/markUnused 200",
    "POST coordinator/v1/markUsed 200" })
end)

t.test("a lost answer (applied, then 500 or a dropped connection) is retried; the count says uncertain", function()
  for _, mode in ipairs({ "500", "drop" }) do
    local base = cluster({ markUnused = { fail_after_apply = 1, mode = mode } })
    local d = client(base)
    local n, info = d:mark_unused("events", { interval = DAY })
    t.eq({ n, info.uncertain, info.attempts }, { 0, true, 2 }, mode)
    t.eq(#d:used_segments("events", DAY), 0, mode)
  end
  local base = cluster({ markUsed = { fail_before = 2 } })
  local d = client(base, { overlord = "http://127.0.0.1:1" }) -- refused: counts as transient too
  d:mark_unused("events", { interval = DAY })
  local n, info = d:mark_used("events", { interval = DAY })
  t.eq({ n, info.uncertain }, { 2, true })
end)

t.test("errors name the operation, the datasource, the status and Druid's text", function()
  local base = cluster({ markUnused = { fail_before = 10 } })
  local d = client(base, { retries = 1 })
  local err = t.raises(function() d:mark_unused("events", { interval = DAY }) end)
  t.contains(err, "druid markUnused of datasource events failed after 2 attempts")
  t.contains(err, "answered 500: Internal server error (injected by the fake)")
  err = t.raises(function() client("http://127.0.0.1:1", { retries = 0 }):used_segments("events", DAY) end)
  t.contains(err, "druid used_segments of datasource events failed after 1 attempts")
  t.raises(function() druid_api.client({}) end, "coordinator URL missing")
end)

t.test("kill deletes the day's unused segments only, after the task reports SUCCESS", function()
  local base = cluster({ kill = { polls_running = 2 } })
  local d = client(base, { overlord = base })
  local r = d:kill("events", DAY, { poll = 0.05 })
  t.contains(r.task, "rewind_kill_events_")
  t.eq(r.status.status, "SUCCESS")
  t.eq(#d:used_segments("events", DAY), 2) -- used ones are never killed
  t.eq(#http.get(base .. "/_fake/state").json, 5) -- the unused OLD segment is gone
  d:mark_unused("events", { interval = DAY })
  d:kill("events", DAY, { poll = 0.05 })
  t.eq(#http.get(base .. "/_fake/state").json, 3)
  t.eq(used_ids(base, "clicks"), { "clicks_" .. DAY:gsub("/", "_") .. "_" .. V })
end)

t.test("kill: FAILED and timeout raise naming the task and the datasource", function()
  local base = cluster({ kill = { status = "FAILED" } })
  local d = client(base) -- no overlord given: the coordinator's address serves the overlord paths
  local err = t.raises(function() d:kill("events", DAY, { poll = 0.05 }) end, "FAILED")
  t.contains(err, "druid kill task rewind_kill_events_")
  t.contains(err, "of datasource events")
  t.contains(err, "kill failed (injected by the fake)")
  http.post(base .. "/_fake/faults", { json = { kill = { polls_running = 1000 } } })
  err = t.raises(function() d:kill("events", DAY, { poll = 0.05, timeout = 0.3 }) end, "still RUNNING after")
  t.contains(err, "of datasource events")
end)

t.test("kill: a submission whose answer was lost is recognised, not run twice", function()
  local base = cluster({ kill = { fail_after_apply = 1, mode = "drop" } })
  local d = client(base, { overlord = base })
  local r = d:kill("events", DAY, { poll = 0.05 })
  t.eq(r.status.status, "SUCCESS")
  local posts = {}
  for _, q in ipairs(http.get(base .. "/_fake/requests").json) do
    if q.method == "POST" then posts[#posts + 1] = q.body.id .. " " .. tostring(q.status) end
  end
  t.eq(posts, { r.task .. " dropped", r.task .. " 400" })
end)
