-- rewind.env_es: Elasticsearch through its snapshot API. Backup: register the fs repository when it is
-- missing, take a snapshot (waiting for it), record its indices with their document counts, then
-- keep the repository directory as a tar in the store, unless the repository is shared storage (then
-- only the name and indices are recorded). Restore: put the tar into a second, read-only repository
-- beside the first (the live one is never rewritten under Elasticsearch), close the indices that
-- exist, restore, and compare the document counts.
local http = require("rewind.http")
local log = require("rewind.log")
local fs = require("rewind.fs")
local tar = require("rewind.tar")

local M = {}

M.TAR_EXT = "tar.zst"

-- Elasticsearch's own reason for an error answer ("type: reason"), else the status and body.
local function reason(r)
  local e = type(r.json) == "table" and r.json.error
  if type(e) == "table" then
    local text = tostring(e.type) .. ": " .. tostring(e.reason)
    local cause = type(e.caused_by) == "table" and e.caused_by
      or (type(e.root_cause) == "table" and e.root_cause[1] ~= nil and e.root_cause[1]) or nil
    if cause and cause.reason and cause.reason ~= e.reason then text = text .. " (" .. tostring(cause.reason) .. ")" end
    return text
  end
  if type(e) == "string" then return e end
  return tostring(r.status) .. " " .. tostring(r.body):sub(1, 300)
end

--- One call; returns the decoded answer, raising with Elasticsearch's reason on an error answer.
--- opts.ok lists extra statuses that are answers (e.g. 404 for "is it there?").
function M.call(es, method, path, body, opts)
  opts = opts or {}
  local auth = (es.user and es.user ~= "") and { user = es.user, password = es.password } or nil
  local r = http.request({ method = method, url = es.url .. path, json = body, basic_auth = auth,
    check = false, timeout = opts.timeout or "30m", retries = opts.retries })
  if r.status >= 200 and r.status < 300 then return r.json, r.status end
  for _, s in ipairs(opts.ok or {}) do
    if r.status == s then return r.json, r.status end
  end
  error(string.format("Elasticsearch %s %s answered %d: %s", method, path, r.status, reason(r)), 0)
end

--- Registers the fs repository `name` at `location` unless it is there already (pointing at the same
--- place); a repository of that name elsewhere is an error.
function M.ensure_repository(es, name, location, readonly)
  local cur, status = M.call(es, "GET", "/_snapshot/" .. name, nil, { ok = { 404 } })
  if status == 200 and type(cur) == "table" and cur[name] then
    local loc = cur[name].settings and cur[name].settings.location
    if loc ~= location and not readonly then
      error(string.format("Elasticsearch repository %s points at %s, not %s (elasticsearch.location)", name, tostring(loc), location), 0)
    end
    if loc == location then return end
  end
  M.call(es, "PUT", "/_snapshot/" .. name, { type = "fs", settings = { location = location, readonly = readonly or nil } })
end

--- Document counts of the given indices: {index = count}.
function M.counts(es, indices)
  local out = {}
  for _, idx in ipairs(indices) do
    local c = M.call(es, "GET", "/" .. idx .. "/_count")
    out[idx] = c.count
  end
  return out
end

--- Takes a snapshot into the snapshot object `elasticsearch` (or only records it when shared).
function M.backup(snap, es, opts)
  local name = "rewind-" .. snap.id:lower()
  M.ensure_repository(es, es.repository, es.location)
  local res = M.call(es, "PUT", "/_snapshot/" .. es.repository .. "/" .. name .. "?wait_for_completion=true",
    { indices = es.indices, ignore_unavailable = true, include_global_state = false })
  local s = res and res.snapshot
  if type(s) ~= "table" or s.state ~= "SUCCESS" then
    error("Elasticsearch snapshot " .. name .. " did not succeed: " .. (s and tostring(s.state) or "no answer"), 0)
  end
  local indices = s.indices or {}
  table.sort(indices)
  local record = { repository = es.repository, snapshot = name, uuid = s.uuid, indices = indices,
    documents = M.counts(es, indices), shared = es.shared or false }
  if not es.shared then
    local w = snap:writer("elasticsearch", M.TAR_EXT)
    local t = tar.create({ from = es.dir, to = w, compression = "zstd", level = opts.level, flat = true })
    record.object, record.files = "elasticsearch", t.files
    -- The tar holds the snapshot now; the repository need not keep it.
    M.call(es, "DELETE", "/_snapshot/" .. es.repository .. "/" .. name, nil, { ok = { 404 } })
  end
  log.info("elasticsearch snapshot taken", { snapshot = name, indices = #indices })
  return record
end

--- The read-only repository a restore reads from: `<repository>-restore`, beside the live one.
function M.restore_repository(es)
  local loc = es.location:gsub("/+$", "") .. "-rewind-restore"
  local dir = es.dir:gsub("/+$", "") .. "-rewind-restore"
  return es.repository .. "-rewind-restore", loc, dir
end

--- Restores the recorded snapshot: indices that exist are closed first, then replaced.
function M.restore(es, record, reader)
  local repo, loc, dir = es.repository, nil, nil
  if not record.shared then
    repo, loc, dir = M.restore_repository(es)
    fs.remove(dir, { recursive = true })
    fs.mkdir(dir)
    tar.extract({ from = reader, to = dir })
    M.call(es, "DELETE", "/_snapshot/" .. repo, nil, { ok = { 404 } })
    M.ensure_repository(es, repo, loc, true)
  end
  local ok, err = pcall(function()
    local existing = M.call(es, "GET", "/_cat/indices?format=json")
    local open = {}
    for _, i in ipairs(existing or {}) do
      if i.status == "open" then open[i.index] = true end
    end
    for _, idx in ipairs(record.indices) do
      if open[idx] then M.call(es, "POST", "/" .. idx .. "/_close") end
    end
    M.call(es, "POST", "/_snapshot/" .. repo .. "/" .. record.snapshot .. "/_restore?wait_for_completion=true",
      { indices = table.concat(record.indices, ","), include_global_state = false })
  end)
  if not record.shared then
    pcall(M.call, es, "DELETE", "/_snapshot/" .. repo, nil, { ok = { 404 } })
    pcall(fs.remove, dir, { recursive = true })
  end
  if not ok then error(err, 0) end
end

--- nil, or what differs between the recorded and the current document counts.
function M.check(es, record)
  local diffs = {}
  for _, idx in ipairs(record.indices) do
    local ok, c = pcall(M.call, es, "GET", "/" .. idx .. "/_count")
    local n = ok and c.count or nil
    if n ~= record.documents[idx] then
      diffs[#diffs + 1] = string.format("%s: %s documents, expected %d", idx, ok and tostring(n) or tostring(c), record.documents[idx])
    end
  end
  if #diffs == 0 then return nil end
  return "Elasticsearch differs from the backup: " .. table.concat(diffs, "; ")
end

return M
