-- rewind.td: a Treasure Data client on top of rewind.http.
--
--   local td = require("rewind.td")
--   local c = td.client{ endpoint = "EU", apikey = key, concurrency = 16 }
--   local ps = c:get_parent_segment("164596")
--   local tree = c:by_folder(c:root_folder_id("164596"))
--
-- One `endpoint` setting chooses the region: a name (US, EU, JP, AP02, AP03), a REST host
-- (api.eu01.treasuredata.com) or a CDP host, or a URL. The CDP host (`api-cdp.*`) is derived from the REST
-- host; an explicit URL whose host is not a treasuredata one (a test server) is used for both.
-- The API key is registered as a secret: it is never logged, and redacted from every error.
-- Reads, PUTs, PATCHes and DELETEs are retried on 429, 5xx and lost connections by rewind.http. A POST that
-- creates something is never repeated blindly: it is repeated by itself only after a 429 (a refusal, nothing
-- was applied); after a 5xx or no answer at all (timeout, dropped connection) the request may have been
-- applied, so the create_* methods look the entity up by name first and repeat the POST only when nothing
-- is there (see `create_once`). Failed requests raise
-- "Treasure Data <METHOD> <path> answered <status>: <TD's message>" or
-- "Treasure Data <METHOD> <path> got no answer: <why>"; `td.status_of(err)` gives the status and
-- `td.uncertain(err)` says whether the request may have been applied.

local http = require("rewind.http")
local json = require("rewind.json")
local env = require("rewind.env")
local log = require("rewind.log")
local task = require("rewind.task")
local time = require("rewind.time")

local M = {}

M.JSONAPI = "application/vnd.treasuredata.v1+json"

local REGIONS = {
  us = "api.treasuredata.com",
  us01 = "api.treasuredata.com",
  eu = "api.eu01.treasuredata.com",
  eu01 = "api.eu01.treasuredata.com",
  jp = "api.treasuredata.co.jp",
  ap01 = "api.treasuredata.co.jp",
  ap02 = "api.ap02.treasuredata.com",
  ap03 = "api.ap03.treasuredata.com",
}

--- Resolves an endpoint setting to `{rest = base URL, cdp = base URL}`.
function M.resolve_endpoint(endpoint)
  endpoint = endpoint or "US"
  local region = REGIONS[endpoint:lower()]
  if region then
    return { rest = "https://" .. region, cdp = "https://" .. region:gsub("^api%.", "api-cdp.") }
  end
  local scheme, host, rest = endpoint:match("^(https?)://([^/]+)(.*)$")
  if not scheme then
    scheme, host, rest = "https", endpoint:match("^([^/]+)(.*)$")
  end
  if not host or host == "" then
    error("td: cannot understand endpoint '" .. endpoint .. "' (a region US, EU, JP, AP02, AP03, a host or a URL)")
  end
  rest = (rest or ""):gsub("/+$", "")
  local bare = host:gsub(":%d+$", "")
  if bare:match("treasuredata%.co") then
    local rest_host = host:gsub("^api%-cdp%.", "api.")
    local cdp_host = rest_host:gsub("^api%.", "api-cdp.")
    return { rest = scheme .. "://" .. rest_host .. rest, cdp = scheme .. "://" .. cdp_host .. rest }
  end
  local base = scheme .. "://" .. host .. rest
  return { rest = base, cdp = base }
end

--- The HTTP status in an error raised by this client, or nil.
function M.status_of(err)
  return tonumber(tostring(err):match("Treasure Data [A-Z]+ [^ ]* answered (%d%d%d)"))
end

--- Whether a request that raised `err` may still have been applied: a 5xx answer or none at all. A 4xx
--- answer is a refusal (nothing applied), and other errors never reached the service.
function M.uncertain(err)
  local e = tostring(err)
  if e:match("Treasure Data [A-Z]+ [^ ]* got no answer") then return true end
  local status = M.status_of(e)
  return status ~= nil and status >= 500
end

local function message_of(res)
  local j = res.json
  if type(j) == "table" then
    if type(j.errors) == "table" and j.errors[1] then
      local parts = {}
      for _, e in ipairs(j.errors) do
        parts[#parts + 1] = tostring(e.detail or e.title or json.encode(e))
      end
      return table.concat(parts, "; ")
    end
    if j.message or j.error then return tostring(j.message or j.error) end
  end
  local body = tostring(res.body or "")
  if #body > 500 then body = body:sub(1, 500) .. "..." end
  return body
end

local Client = {}
Client.__index = Client

--- Makes a client. opts: endpoint, apikey (required), concurrency (default 16), timeout (default "60s"),
--- retries (default 5).
function M.client(opts)
  opts = opts or {}
  if not opts.apikey or opts.apikey == "" then
    error("td: no API key (pass apikey=... or set TD_API_KEY)")
  end
  env.mark_secret(opts.apikey)
  local ep = M.resolve_endpoint(opts.endpoint)
  return setmetatable({
    rest = ep.rest,
    cdp = ep.cdp,
    concurrency = opts.concurrency or 16,
    timeout = opts.timeout or "60s",
    retries = opts.retries or 5,
    _auth = "TD1 " .. opts.apikey,
  }, Client)
end

--- Seconds to wait before attempt `n` + 1 of a request (0.5, 1, 2 ... at most 30), or the Retry-After
--- of a 429 answer.
local function backoff(n, res)
  local after = res and res.headers and tonumber(res.headers["retry-after"])
  if after then return math.min(math.max(after, 0), 60) end
  return math.min(0.5 * 2 ^ (n - 1), 30)
end

--- One request. `api` is "rest" or "cdp"; opts: json, query, form, body, headers, ok404 (nil on 404),
--- idempotent (default: true except for POST). A request that is not idempotent is repeated only after a
--- 429; any other failure raises at once (see `td.uncertain`).
function Client:request(api, method, path, opts)
  opts = opts or {}
  local headers = { Authorization = self._auth, Accept = "application/json" }
  if api == "cdp" then
    headers.Accept = M.JSONAPI .. ", application/json"
  end
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  local body = opts.body
  if opts.json ~= nil then
    body = json.encode(opts.json)
    headers["Content-Type"] = (api == "cdp") and M.JSONAPI or "application/json"
  end
  local idempotent = opts.idempotent
  if idempotent == nil then idempotent = method ~= "POST" end
  local res
  for attempt = 1, self.retries + 1 do
    local ok, r = pcall(http.request, {
      method = method, url = self[api] .. path, headers = headers, query = opts.query, form = opts.form,
      body = body, timeout = opts.timeout or self.timeout, retries = idempotent and self.retries or 0,
      check = false,
    })
    if not ok then
      error(string.format("Treasure Data %s %s got no answer: %s", method, path, tostring(r)), 0)
    end
    res = r
    if idempotent or res.status ~= 429 or attempt > self.retries then break end
    task.sleep(backoff(attempt, res))
  end
  if res.status == 404 and opts.ok404 then return nil, res end
  if res.status >= 400 then
    error(string.format("Treasure Data %s %s answered %d: %s", method, path, res.status, message_of(res)), 0)
  end
  local out = res.json
  if out == nil and res.body and #res.body > 0 and not opts.raw then
    local ok, v = pcall(json.decode, res.body)
    if ok then out = v end
  end
  if opts.raw then return res.body, res end
  return out, res
end

-- ---------------------------------------------------------------- parent segments (REST /audiences)

function Client:list_parent_segments() return (self:request("rest", "GET", "/audiences")) end
function Client:get_parent_segment(id) return (self:request("rest", "GET", "/audiences/" .. id)) end
--- The parent segment named `name`, or nil (the first one when the service let several share it).
function Client:find_parent_segment(name)
  for _, a in ipairs(self:list_parent_segments() or {}) do
    if a.name == name then return a end
  end
  return nil
end

--- Runs `post()` (a create) so that it takes effect at most once: when its answer is lost (td.uncertain),
--- `find()` looks for what it may have made, and only when nothing is there is it sent again (up to
--- `retries` times). Returns the created (or found) object and whether it was found after a lost answer.
function Client:create_once(what, post, find)
  local last
  for attempt = 1, self.retries + 1 do
    local ok, res = pcall(post)
    if ok then return res, false end
    if not M.uncertain(res) then error(res, 0) end
    last = res
    log.warn(what .. ": the answer to the create was lost, looking it up before trying again",
      { attempt = attempt, error = tostring(res) })
    local found = find()
    if found then
      log.info(what .. ": the lost create had been applied; using it", { id = tostring(found.id) })
      return found, true
    end
    if attempt <= self.retries then task.sleep(backoff(attempt)) end
  end
  error(last, 0)
end

--- Creates a parent segment (POST /audiences) at most once: a lost answer is followed by a lookup by name.
function Client:create_parent_segment(body)
  return self:create_once("parent segment '" .. tostring(body.name) .. "'", function()
    return (self:request("rest", "POST", "/audiences", { json = body }))
  end, function() return self:find_parent_segment(body.name) end)
end
function Client:update_parent_segment(id, body)
  return (self:request("rest", "PUT", "/audiences/" .. id, { json = body }))
end
function Client:delete_parent_segment(id) return (self:request("rest", "DELETE", "/audiences/" .. id)) end
--- Starts a run; answers the execution. A lost answer is followed by a look at the executions: a session
--- that was not there before is this run, and the POST is not sent again.
function Client:run_parent_segment(id)
  local before = {}
  for _, e in ipairs(self:executions(id) or {}) do before[tostring(e.workflowSessionId)] = true end
  return (self:create_once("run of parent segment " .. id, function()
    return (self:request("rest", "POST", "/audiences/" .. id .. "/run"))
  end, function()
    for _, e in ipairs(self:executions(id) or {}) do
      if not before[tostring(e.workflowSessionId)] then return e end
    end
    return nil
  end))
end
--- Executions, newest first.
function Client:executions(id) return (self:request("rest", "GET", "/audiences/" .. id .. "/executions")) end

--- Waits for an execution (the newest, or the one with `session` = workflowSessionId) to succeed.
--- opts: session, timeout (seconds, default 3600), poll (seconds, default 5). Logs progress lines.
function Client:wait_for_run(id, opts)
  opts = opts or {}
  local timeout, poll = opts.timeout or 3600, opts.poll or 5
  local start = time.monotonic()
  local last, last_log = nil, 0
  while true do
    local ex
    for _, e in ipairs(self:executions(id) or {}) do
      if opts.session == nil or tostring(e.workflowSessionId) == tostring(opts.session) then ex = e; break end
    end
    local status = ex and ex.status or "not started"
    local waited = time.monotonic() - start
    if status ~= last or waited - last_log >= 30 then
      log.info("parent segment run", { audience = id, status = status, waited = string.format("%.0fs", waited) })
      last, last_log = status, waited
    end
    if status == "success" then return ex end
    if status == "error" or status == "canceled" or status == "canceling" then
      error(string.format("parent segment %s: run %s ended with status %s", id,
        tostring(ex.workflowSessionId), status), 0)
    end
    if waited >= timeout then
      error(string.format("parent segment %s: run still %s after %.0fs (run_timeout)", id, status, waited), 0)
    end
    task.sleep(poll)
  end
end

-- ---------------------------------------------------------------- v5 entities (JSON:API)

--- The v5 parent-segment entity, or nil when the account has none for this id (v5 not enabled / not run).
function Client:parent_segment_entity(id)
  local j = self:request("cdp", "GET", "/entities/parent_segments/" .. id, { ok404 = true })
  return j and j.data
end

--- The v5 root folder id of a parent segment, or nil.
function Client:root_folder_id(id)
  local e = self:parent_segment_entity(id)
  local rel = e and e.relationships and e.relationships.parentSegmentFolder
  local d = rel and rel.data
  if d and not json.is_null(d) and d.id then return tostring(d.id) end
  return nil
end

--- The parent folder id of an entity, or nil for a root.
function M.parent_of(e)
  local pf = e.relationships and e.relationships.parentFolder
  local d = pf and pf.data
  if d == nil or json.is_null(d) then return nil end
  return tostring(d.id)
end

--- One by-folder request at a fixed depth: `{data, included}` as the API answers.
function Client:by_folder_raw(folder_id, depth)
  return (self:request("cdp", "GET", "/entities/by-folder/" .. folder_id, { query = { depth = depth } }))
end

--- Every entity under a folder (the folder first), however deep: asks `depth` levels at once (default 10)
--- and asks again from every folder at the boundary, so the tree is never cut at a fixed depth.
function Client:by_folder(folder_id, opts)
  opts = opts or {}
  local depth = opts.depth or 10
  local seen, data, included, inc_seen = {}, {}, {}, {}
  local frontier = { tostring(folder_id) }
  local asked = { [tostring(folder_id)] = true }
  while #frontier > 0 do
    local answers = task.map(frontier, self.concurrency, function(fid)
      return self:by_folder_raw(fid, depth)
    end)
    local next_frontier = {}
    for i, ans in ipairs(answers) do
      local level = { [frontier[i]] = 0 }
      local items = ans.data or {}
      -- depth of each entity relative to the folder asked (items come parents before children, but do not
      -- rely on it: resolve iteratively)
      local byid = {}
      for _, e in ipairs(items) do byid[tostring(e.id)] = e end
      local function lvl(id, guard)
        if level[id] then return level[id] end
        local e = byid[id]
        if not e or guard > 1000 then return nil end
        local p = M.parent_of(e)
        local pl = p and lvl(p, guard + 1)
        if pl == nil then return nil end
        level[id] = pl + 1
        return level[id]
      end
      local has_children = {}
      for _, e in ipairs(items) do
        local p = M.parent_of(e)
        if p then has_children[p] = true end
      end
      for _, e in ipairs(items) do
        local id = tostring(e.id)
        if not seen[id] then
          seen[id] = true
          data[#data + 1] = e
        end
        -- a folder at the boundary may have children the answer left out: ask from it again. Childless
        -- folders one level above count too, in case the service counts depth one lower than documented.
        local l = e.type == "folder-segment" and id ~= frontier[i] and lvl(id, 0)
        if l and (l >= depth or (l == depth - 1 and not has_children[id])) and not asked[id] then
          asked[id] = true
          next_frontier[#next_frontier + 1] = id
        end
      end
      for _, u in ipairs(ans.included or {}) do
        local k = tostring(u.type) .. ":" .. tostring(u.id)
        if not inc_seen[k] then inc_seen[k] = true; included[#included + 1] = u end
      end
    end
    frontier = next_frontier
  end
  return { data = data, included = included }
end

local ENDPOINTS = {
  ["folder-segment"] = "/entities/folders",
  ["segment-batch"] = "/entities/segments",
  ["segment-realtime"] = "/entities/segments",
  ["predictive-segment"] = "/entities/predictive_segments",
}
M.ENDPOINTS = ENDPOINTS

--- The collection path for an entity type, or nil when it cannot be created through this client.
function M.endpoint_for(etype) return ENDPOINTS[etype] end

--- The entity of type `etype` named `name` directly in folder `folder_id`, or nil.
function Client:find_child(folder_id, name, etype)
  local ans = self:by_folder_raw(folder_id, 2) -- 2: direct children however the service counts depth
  for _, e in ipairs(ans.data or {}) do
    if M.parent_of(e) == tostring(folder_id) and e.type == etype and e.attributes and e.attributes.name == name then
      return e
    end
  end
  return nil
end

--- Creates an entity `{type, attributes, relationships}` at most once; answers the created entity (with
--- its new id) and whether it was found by name after a lost answer (see `create_once`).
function Client:create_entity(entity)
  local path = ENDPOINTS[entity.type]
  if not path then error("td: cannot create entities of type " .. tostring(entity.type), 0) end
  local parent = M.parent_of(entity)
  local name = entity.attributes and entity.attributes.name
  return self:create_once(string.format("%s '%s'", entity.type, tostring(name)), function()
    return (self:request("cdp", "POST", path, { json = { data = entity } })).data
  end, function()
    if not parent or name == nil then return nil end
    return self:find_child(parent, name, entity.type)
  end)
end

local function crud(name, path)
  Client["get_" .. name] = function(self, id)
    return (self:request("cdp", "GET", path .. "/" .. id)).data
  end
  Client["update_" .. name] = function(self, id, attributes)
    return (self:request("cdp", "PATCH", path .. "/" .. id, { json = { data = { id = id, attributes = attributes } } })).data
  end
  Client["delete_" .. name] = function(self, id)
    self:request("cdp", "DELETE", path .. "/" .. id)
    return true
  end
end
crud("folder", "/entities/folders")
crud("segment", "/entities/segments")
crud("predictive_segment", "/entities/predictive_segments")

local function with_parent(etype, attributes, parent_id)
  return {
    type = etype,
    attributes = attributes,
    relationships = { parentFolder = { data = { id = tostring(parent_id), type = "folder-segment" } } },
  }
end

function Client:create_folder(parent_id, attributes)
  return self:create_entity(with_parent("folder-segment", attributes, parent_id))
end
function Client:create_segment(parent_id, attributes, etype)
  return self:create_entity(with_parent(etype or "segment-batch", attributes, parent_id))
end
function Client:create_predictive_segment(parent_id, attributes)
  return self:create_entity(with_parent("predictive-segment", attributes, parent_id))
end
--- Fetches one entity whole by type (folder, segment or predictive segment).
function Client:get_entity(etype, id)
  local path = ENDPOINTS[etype]
  if not path then error("td: cannot fetch entities of type " .. tostring(etype), 0) end
  return (self:request("cdp", "GET", path .. "/" .. id)).data
end

-- ---------------------------------------------------------------- REST v3: databases, tables, jobs

function Client:create_database(db, opts)
  -- a repeat after a lost answer finds the database: safe to retry when that counts as success
  local ok, err = pcall(self.request, self, "rest", "POST", "/v3/database/create/" .. db,
    { idempotent = opts and opts.exist_ok })
  if not ok and not (opts and opts.exist_ok and M.status_of(err) == 409) then error(err, 0) end
  return ok
end
function Client:create_table(db, tbl, opts)
  local ok, err = pcall(self.request, self, "rest", "POST", "/v3/table/create/" .. db .. "/" .. tbl .. "/log",
    { idempotent = opts and opts.exist_ok })
  if not ok and not (opts and opts.exist_ok and M.status_of(err) == 409) then error(err, 0) end
  return ok
end
function Client:list_tables(db) return (self:request("rest", "GET", "/v3/table/list/" .. db)).tables end

--- Imports records (each a table with a `time` field) into a table, as msgpack.gz.
function Client:import(db, tbl, records)
  local body = require("rewind.msgpack").pack_gz(records)
  return (self:request("rest", "PUT", "/v3/table/import/" .. db .. "/" .. tbl .. "/msgpack.gz", {
    body = body, headers = { ["Content-Type"] = "application/octet-stream" },
  }))
end

--- Issues a query job; answers the job id. opts: engine ("presto" or "hive"), priority, result, retry_limit.
function Client:issue_job(db, query, opts)
  opts = opts or {}
  local form = { query = query }
  if opts.priority then form.priority = tostring(opts.priority) end
  if opts.result then form.result = opts.result end
  if opts.retry_limit then form.retry_limit = tostring(opts.retry_limit) end
  -- a repeated query job only reads: safe to retry
  local j = self:request("rest", "POST", "/v3/job/issue/" .. (opts.engine or "presto") .. "/" .. db,
    { form = form, idempotent = true })
  return tostring(j.job_id or j.job)
end
function Client:job_status(id) return (self:request("rest", "GET", "/v3/job/status/" .. id)) end

--- Waits for a job to end; raises if it does not succeed. opts: timeout (s, default 3600), poll (s, default 2).
function Client:wait_job(id, opts)
  opts = opts or {}
  local start = time.monotonic()
  while true do
    local s = self:job_status(id)
    if s.status == "success" then return s end
    if s.status == "error" or s.status == "killed" then
      local why = s.debug and s.debug.stderr or ""
      error(string.format("Treasure Data job %s ended with status %s %s", id, s.status, why), 0)
    end
    if time.monotonic() - start > (opts.timeout or 3600) then
      error(string.format("Treasure Data job %s still %s after %ds", id, s.status, opts.timeout or 3600), 0)
    end
    task.sleep(opts.poll or 2)
  end
end

--- The rows of a finished job (each a list of column values).
function Client:job_result(id)
  local body = self:request("rest", "GET", "/v3/job/result/" .. id, { query = { format = "json" }, raw = true })
  local rows = {}
  for line in tostring(body or ""):gmatch("[^\n]+") do rows[#rows + 1] = json.decode(line) end
  return rows
end

--- Runs a query and answers its rows.
function Client:query(db, sql, opts)
  local id = self:issue_job(db, sql, opts)
  self:wait_job(id, opts)
  return self:job_result(id)
end

return M
