-- rewind.env_firebase: a Firebase Realtime Database node through its REST API. Backup streams the
-- export (`<path>.json?format=export`, priorities kept) through zstd into the store and records the
-- sha256 of the export itself; restore streams it back with PUT (which replaces the node) and exports
-- again to compare the hash. The secret or token travels in the query or a header and is redacted.
local codec = require("rewind.codec")
local hash = require("rewind.hash")
local http = require("rewind.http")
local log = require("rewind.log")

local M = {}

M.EXT = "json.zst"

local function node_url(fb)
  local path = (fb.path or "/"):gsub("^/+", ""):gsub("/+$", "")
  return fb.url .. "/" .. path .. ".json"
end

local function auth(fb, query)
  local headers = {}
  if fb.token and fb.token ~= "" then
    headers.Authorization = "Bearer " .. fb.token
  else
    query.auth = fb.secret
  end
  return headers
end

-- Firebase's own error text ({"error": "..."}), else the status.
local function failed(what, r)
  local detail = type(r.json) == "table" and r.json.error or tostring(r.body or ""):sub(1, 300)
  error(string.format("Firebase %s answered %d: %s", what, r.status, tostring(detail)), 0)
end

--- An export of the node as a reader.
function M.export(fb)
  local query = { format = "export" }
  local headers = auth(fb, query)
  local r = http.get(node_url(fb), { query = query, headers = headers, stream = true, check = false, timeout = "1h" })
  if r.status ~= 200 then failed("export of " .. (fb.path or "/"), r) end
  return r.reader
end

--- Streams the export into the snapshot object `firebase`; returns the manifest record.
function M.backup(snap, fb, opts)
  local r, digest = hash.reader(M.export(fb))
  local entry = snap:put("firebase", M.EXT, codec.compress(r, { level = opts.level or 1 }))
  log.info("firebase exported", { bytes = digest:size() })
  return { path = fb.path or "/", object = entry.name, size = entry.size, export_bytes = digest:size(),
    export_sha256 = digest:sha256() }
end

--- Replaces the node with the export in `reader` (a verified snapshot reader, zstd).
function M.restore(fb, reader)
  local query = {}
  local headers = auth(fb, query)
  headers["Content-Type"] = "application/json"
  query.print = "silent"
  local r = http.put(node_url(fb), { query = query, headers = headers, body = codec.decompress(reader),
    check = false, timeout = "1h" })
  if r.status ~= 200 and r.status ~= 204 then failed("import of " .. (fb.path or "/"), r) end
end

--- nil, or how the node now differs from the recorded export (by sha256 of a fresh export).
function M.check(fb, record)
  local sum, size = hash.sha256_reader(M.export(fb))
  if sum == record.export_sha256 then return nil end
  return string.format("Firebase node %s differs from the backup: export of %d bytes with sha256 %s, expected %d bytes with %s",
    record.path, size, sum, record.export_bytes, record.export_sha256)
end

return M
