-- rewind.druid_api: a client for the Druid coordinator and overlord HTTP APIs (api-notes.md, "Apache
-- Druid"), for procedures that take a day of segments out of service and bring it back (replay).
--
--   local druid_api = require("rewind.druid_api")
--   local d = druid_api.client({ coordinator = "http://coord:8081",
--     overlord = { "http://ov1:8090", "http://ov2:8090" } })
--   local day = druid_api.day_interval("2019-12-01")     -- "2019-12-01T00:00:00.000Z/2019-12-02T00:00:00.000Z"
--   local segs = d:used_segments("events", day)          -- {id, datasource, interval, version, payload}
--   d:mark_unused("events", { interval = day })          -- numChangedSegments
--   d:kill("events", day, { timeout = "10m" })           -- deletes the UNUSED segments of the day for good
--   d:mark_used("events", { segment_ids = ids })
--
-- Which segments: used_segments lists those that OVERLAP the interval (Druid's metadata API), while
-- mark_unused/mark_used{interval=} and kill act on those CONTAINED in it; pass {within=true} to
-- used_segments to get the same set as the interval operations.
--
-- Retries: every request goes to the first endpoint that answers it. A connection error, a timeout, 429,
-- 500, 502 and 504 move on to the next endpoint, and the whole list is tried again (backoff doubling) up to
-- `retries` more times; a 503 from an overlord means "not the leader" and moves on at once. Marking is
-- idempotent (it sets a flag to a value), so repeating a request whose answer was lost, or sending it to
-- another endpoint, is safe; the count it returns is then a lower bound (the lost answer's changes are not
-- in it), which the second result says (`uncertain`). A kill task carries its own id, so a resubmission
-- after a lost answer is recognised ("already exists") instead of starting a second task.
local http = require("rewind.http")
local log = require("rewind.log")
local task = require("rewind.task")
local time = require("rewind.time")
local json = require("rewind.json")
local errors = require("rewind.errors")

local M = {}

local DAY = 86400
local MARK_PATHS = { coordinator = "/druid/coordinator/v1/datasources/", overlord = "/druid/indexer/v1/datasources/" }
-- Answers after which another endpoint (or a later round) is tried; the request may have been applied.
local TRANSIENT = { [429] = true, [500] = true, [502] = true, [504] = true }

--- "2019-12-01T00:00:00.000Z": a time (epoch seconds) in Druid's ISO form, milliseconds included.
function M.iso(t)
  return time.format(t, "%Y-%m-%dT%H:%M:%S%.3fZ")
end

local function parse_day(day, fn)
  local ok, t = pcall(time.parse, tostring(day))
  if type(day) ~= "string" or not day:match("^%d%d%d%d%-%d%d%-%d%d$") or not ok or time.date(t) ~= day then
    error(string.format("druid_api.%s: expected a day like 2019-12-01, got %s", fn, tostring(day)), 3)
  end
  return t
end

--- The Druid interval of one UTC day: "2019-12-01" → "2019-12-01T00:00:00.000Z/2019-12-02T00:00:00.000Z".
function M.day_interval(day)
  local t = parse_day(day, "day_interval")
  return M.iso(t) .. "/" .. M.iso(t + DAY)
end

--- The interval from the first day to the last, both included: ("2019-12-30", "2020-01-01") →
--- "2019-12-30T00:00:00.000Z/2020-01-02T00:00:00.000Z".
function M.days_interval(first, last)
  local a, b = parse_day(first, "days_interval"), parse_day(last, "days_interval")
  if b < a then error("druid_api.days_interval: " .. last .. " is before " .. first, 2) end
  return M.iso(a) .. "/" .. M.iso(b + DAY)
end

--- Start and end (epoch seconds) of an ISO interval "START/END".
function M.parse_interval(interval)
  local a, b = tostring(interval):match("^([^/]+)/([^/]+)$")
  local ok1, s = pcall(time.parse, a or "")
  local ok2, e = pcall(time.parse, b or "")
  if not (ok1 and ok2) or e < s then
    error("druid_api: expected an interval like 2019-12-01T00:00:00.000Z/2019-12-02T00:00:00.000Z, got "
      .. tostring(interval), 2)
  end
  return s, e
end

--- Whether interval `inner` lies within `outer` (both "START/END").
function M.contains(outer, inner)
  local os_, oe = M.parse_interval(outer)
  local is, ie = M.parse_interval(inner)
  return os_ <= is and ie <= oe
end

local function escape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function strip(url)
  return (tostring(url):gsub("/+$", ""))
end

-- Druid's error text: {"errorMessage"} (newer), {"error"} (older), else the body itself.
local function druid_error(res)
  local j = type(res.json) == "table" and res.json or {}
  local text = j.errorMessage or (type(j.error) == "string" and j.error ~= "druidException" and j.error) or j.message
  if type(text) ~= "string" or text == "" then
    text = (res.body or ""):gsub("%s+$", "")
    if #text > 500 then text = text:sub(1, 500) .. "..." end
  end
  return text ~= "" and text or "(empty answer)"
end

-- "druid markUnused of datasource events"
local function what_of(op, ds)
  return ds and ("druid " .. op .. " of datasource " .. tostring(ds)) or ("druid " .. op)
end

local function fail(op, ds, res, method)
  error(string.format("%s failed: %s %s answered %d: %s", what_of(op, ds), method, res.url, res.status,
    druid_error(res)), 0)
end

local function copy_array(list)
  local out = json.array()
  for i, v in ipairs(list) do out[i] = v end
  return out
end

local Client = {}
Client.__index = Client

--- A client. opts: coordinator (URL, required), overlord (URL or list of URLs: tried in order; kill needs
--- one, and uses the coordinator's address when none is given, as a coordinator running as overlord or a
--- router serves the overlord paths), timeout (per request, default "30s"), retries (rounds after the
--- first, default 3), backoff (seconds before the first retry round, doubled each round, default 1).
function M.client(opts)
  opts = opts or {}
  if type(opts.coordinator) ~= "string" or opts.coordinator == "" then
    error("druid_api.client: coordinator URL missing (like http://coordinator:8081)", 2)
  end
  local overlords = opts.overlord
  if type(overlords) == "string" then overlords = { overlords } end
  local self = setmetatable({
    coordinator = strip(opts.coordinator), overlords = {}, timeout = opts.timeout or "30s",
    retries = opts.retries or 3, backoff = opts.backoff or 1,
  }, Client)
  for _, u in ipairs(overlords or {}) do self.overlords[#self.overlords + 1] = strip(u) end
  return self
end

-- Sends one request to the first of `endpoints` ({url, overlord}) that answers it (see the retry notes
-- at the top). Returns the answer and {attempts, uncertain, endpoint}; a 404 from an overlord is passed
-- over when `skip_404` (an older Druid without the overlord paths). Raises when no endpoint answered.
function Client:_send(op, ds, method, endpoints, path, body, skip_404)
  local attempts, uncertain, notes = 0, false, {}
  for round = 1, self.retries + 1 do
    notes = {}
    for _, ep in ipairs(endpoints) do
      if not (skip_404 and ep.overlord and self.no_overlord_marks) then
        attempts = attempts + 1
        local ok, res = pcall(http.request, { method = method, url = ep.url .. path, json = body, check = false,
          retries = 0, timeout = self.timeout })
        if not ok then
          uncertain = true
          notes[#notes + 1] = errors.message(res)
        elseif res.status == 503 and ep.overlord then
          notes[#notes + 1] = res.url .. " answered 503 (not the leader overlord)"
        elseif res.status == 404 and ep.overlord and skip_404 then
          -- An older Druid: remember it, so later marks go straight to the coordinator.
          self.no_overlord_marks = true
          log.debug("overlord has no " .. op .. " path, using the coordinator", { url = res.url })
        elseif TRANSIENT[res.status] or (res.status == 503 and not ep.overlord) then
          uncertain = uncertain or res.status ~= 503
          notes[#notes + 1] = string.format("%s answered %d: %s", res.url, res.status, druid_error(res))
        else
          return res, { attempts = attempts, uncertain = uncertain, endpoint = ep.url }
        end
      end
    end
    if round <= self.retries then
      local delay = self.backoff * 2 ^ (round - 1)
      log.warn(what_of(op, ds) .. ": no endpoint answered, retrying", { round = round, delay = delay,
        last = table.concat(notes, "; ") })
      task.sleep(delay)
    end
  end
  error(string.format("%s failed after %d attempts: %s", what_of(op, ds), attempts, table.concat(notes, "; ")), 0)
end

function Client:_overlord_endpoints()
  local eps = {}
  for _, u in ipairs(self.overlords) do eps[#eps + 1] = { url = u, overlord = true } end
  if #eps == 0 then eps[1] = { url = self.coordinator, overlord = true } end
  return eps
end

function Client:_mark(op, ds, what)
  what = what or {}
  local body
  if what.interval and what.segment_ids then
    error(what_of(op, ds) .. ": give interval or segment_ids, not both", 3)
  elseif what.interval then
    M.parse_interval(what.interval)
    body = { interval = what.interval }
  elseif what.segment_ids then
    if #what.segment_ids == 0 then return 0, { attempts = 0, uncertain = false } end
    body = { segmentIds = copy_array(what.segment_ids) }
  else
    error(what_of(op, ds) .. ": give interval or segment_ids", 3)
  end
  local eps = {}
  for _, u in ipairs(self.overlords) do eps[#eps + 1] = { url = u .. MARK_PATHS.overlord, overlord = true } end
  eps[#eps + 1] = { url = self.coordinator .. MARK_PATHS.coordinator }
  local res, info = self:_send(op, ds, "POST", eps, escape(ds) .. "/" .. op, body, true)
  if res.status ~= 200 then fail(op, ds, res, "POST") end
  local n = type(res.json) == "table" and tonumber(res.json.numChangedSegments)
  if not n then
    error(string.format("%s: unexpected answer from %s: %s", what_of(op, ds), res.url, (res.body or ""):sub(1, 500)), 0)
  end
  log.info("druid " .. op, { datasource = ds, interval = what.interval, segments = what.segment_ids
    and #what.segment_ids, changed = n, uncertain = info.uncertain or nil })
  return math.tointeger(n) or n, info
end

--- Marks segments unused (Druid stops serving them; their files stay until a kill). `what`:
--- {interval = "START/END"} (segments contained in it) or {segment_ids = {...}}. Returns the number of
--- segments whose flag changed, and {attempts, uncertain, endpoint}.
function Client:mark_unused(ds, what)
  return self:_mark("markUnused", ds, what)
end

--- Marks segments used again (Druid loads them; overshadowed ones stay unused); as mark_unused.
function Client:mark_used(ds, what)
  return self:_mark("markUsed", ds, what)
end

--- The used segments of `ds` overlapping `interval` (a string or a list of them), sorted by start then id:
--- {id, datasource, interval, version, payload} where payload is Druid's whole segment JSON (loadSpec,
--- shardSpec, dimensions...). opts.within: only the segments contained in the interval(s).
function Client:used_segments(ds, interval, opts)
  local intervals = type(interval) == "table" and interval or { interval }
  for _, iv in ipairs(intervals) do M.parse_interval(iv) end
  local res = self:_send("used_segments", ds, "POST", { { url = self.coordinator } },
    "/druid/coordinator/v1/metadata/datasources/" .. escape(ds) .. "/segments?full",
    copy_array(intervals))
  if res.status == 204 then return {} end -- no such datasource, on some versions
  if res.status ~= 200 or type(res.json) ~= "table" then fail("used_segments", ds, res, "POST") end
  local out = {}
  for _, seg in ipairs(res.json) do
    local keep = true
    if opts and opts.within then
      keep = false
      for _, iv in ipairs(intervals) do keep = keep or M.contains(iv, seg.interval) end
    end
    if keep then
      out[#out + 1] = { id = seg.identifier or seg.id, datasource = seg.dataSource, interval = seg.interval,
        version = seg.version, payload = seg, start = M.parse_interval(seg.interval) }
    end
  end
  table.sort(out, function(a, b) return a.start < b.start or (a.start == b.start and a.id < b.id) end)
  for _, s in ipairs(out) do s.start = nil end
  return out
end

--- Ids of the segments of `ds` within `interval` that the cluster serves (GET .../intervals/{start_end}).
function Client:served_segment_ids(ds, interval)
  M.parse_interval(interval)
  local res = self:_send("served_segment_ids", ds, "GET", { { url = self.coordinator } },
    "/druid/coordinator/v1/datasources/" .. escape(ds) .. "/intervals/" .. escape(interval:gsub("/", "_")))
  if res.status == 204 then return {} end
  if res.status ~= 200 or type(res.json) ~= "table" then fail("served_segment_ids", ds, res, "GET") end
  local ids = {}
  for _, id in ipairs(res.json) do ids[#ids + 1] = id end
  table.sort(ids)
  return ids
end

--- The coordinator's loadstatus: {[datasource] = percent loaded}, 100.0 meaning fully available.
function Client:loadstatus()
  local res = self:_send("loadstatus", nil, "GET", { { url = self.coordinator } }, "/druid/coordinator/v1/loadstatus")
  if res.status ~= 200 or type(res.json) ~= "table" then fail("loadstatus", nil, res, "GET") end
  return res.json
end

--- Runs a kill task on the overlord and waits for it: deletes the UNUSED segments of `ds` contained in
--- `interval` for good (metadata rows and deep-storage files); used segments are never touched. opts:
--- timeout (default "30m"), poll (seconds between status polls, default 2), batch_size (default 100).
--- Returns {task = id, status = Druid's status object}; raises naming the task and the datasource when the
--- task fails or is still running at the timeout (it may still finish later: the error says how to look).
function Client:kill(ds, interval, opts)
  opts = opts or {}
  M.parse_interval(interval)
  local id = string.format("rewind_kill_%s_%s_%s_%06x", ds, interval:gsub("/", "_"),
    time.format(time.now(), "%Y%m%dT%H%M%S"), math.random(0, 0xffffff))
  local body = { type = "kill", id = id, dataSource = ds, interval = interval, batchSize = opts.batch_size or 100 }
  local eps = self:_overlord_endpoints()
  local res, info = self:_send("kill", ds, "POST", eps, "/druid/indexer/v1/task", body)
  local resubmitted = res.status == 400 and info.uncertain and druid_error(res):find("already exists", 1, true)
  if not resubmitted and (res.status ~= 200 or type(res.json) ~= "table" or not res.json.task) then
    fail("kill", ds, res, "POST")
  end
  id = resubmitted and id or res.json.task
  log.info("druid kill task submitted", { datasource = ds, interval = interval, task = id })
  local timeout = time.duration(opts.timeout or "30m")
  local poll = time.duration(opts.poll or 2)
  local deadline = time.monotonic() + timeout
  local last = "none yet"
  while true do
    local r = self:_send("kill (status of task " .. id .. ")", ds, "GET", eps,
      "/druid/indexer/v1/task/" .. escape(id) .. "/status")
    if r.status == 404 then
      error(string.format("druid kill of datasource %s: the overlord does not know task %s (404): %s", ds, id,
        druid_error(r)), 0)
    end
    if r.status ~= 200 or type(r.json) ~= "table" then fail("kill (task " .. id .. " status)", ds, r, "GET") end
    local st = type(r.json.status) == "table" and r.json.status or {}
    last = tostring(st.status or st.statusCode)
    if last == "SUCCESS" then
      log.info("druid kill task succeeded", { datasource = ds, interval = interval, task = id })
      return { task = id, status = st }
    elseif last == "FAILED" then
      error(string.format("druid kill task %s of datasource %s (interval %s) FAILED: %s", id, ds, interval,
        tostring(st.errorMsg or "no error message; see the task log on the overlord")), 0)
    end
    if time.monotonic() + poll > deadline then
      error(string.format("druid kill task %s of datasource %s (interval %s) still %s after %s; it may still "
        .. "finish: see GET /druid/indexer/v1/task/%s/status", id, ds, interval, last,
        time.format_duration(timeout), id), 0)
    end
    task.sleep(poll)
  end
end

return M
