-- rewind.snapshot: a set of objects under a prefix, then a manifest written last.
--
--   objects:  <prefix>/<YYYYMMDD>/<name>_<HHMMSS>.<ext>    (UTC start time)
--   manifest: <prefix>/<YYYYMMDD>/manifest_<HHMMSS>.json  (written last; id = YYYYMMDD-HHMMSS)
--
-- A date/time group with objects but no manifest is an incomplete snapshot: `list` ignores it, `open`
-- refuses it, `incomplete` reports it. Readers from `open` check size and sha256 while streaming and fail
-- at the end of the stream on a mismatch.
--
-- An indexed archive written to an encrypted store (age) has `integrity = "age"` and no sha256 in its
-- entry: age authenticates every 64 KiB of it and its end (a changed or cut object fails to decrypt), and
-- every file read from it is checked against the index's sha256 (an older archive swapped in fails
-- there), so a sha256 pass over the whole of it (~0.6 s of CPU per GiB) would check nothing more. Such
-- entries are only read through a store opened with keys.
--
-- A manifest is checked before any of it is used (`check`): JSON, this format, the id its key names, a
-- plain prefix, and every object named `<name>_<HHMMSS>.<ext>` in the snapshot's own directory. One that
-- fails is invalid: `list` returns it apart, `open` refuses it, prune never deletes anything it names.
-- Objects are read where the manifest lies now: a snapshot directory copied or moved to another prefix is
-- a snapshot of that prefix (`moved_from` keeps the prefix it was written under).
--
--   local snap = snapshot.begin(store, {prefix = "dirs/data", procedure = "backup-dir", params = ...})
--   local w = snap:writer("data", "tar.zst")      -- or snap:put(name, ext, string|reader)
--   tar.create{from = {"./data"}, to = w}
--   local manifest = snap:commit({files = 10})

local time = require("rewind.time")
local json = require("rewind.json")
local hash = require("rewind.hash")
local env = require("rewind.env")
local task = require("rewind.task")

local M = {}
M.FORMAT = "rewind.snapshot/1"

local function trim(prefix)
  prefix = (prefix or ""):gsub("^/+", ""):gsub("/+$", "")
  return prefix
end

local function under(prefix, rest)
  if prefix == "" then return rest end
  return prefix .. "/" .. rest
end

local function check_name(what, s)
  if type(s) ~= "string" or s == "" or s:find("[/%c]") or s == "." or s == ".." then
    error(what .. " must be a non-empty name without '/', got " .. tostring(s), 3)
  end
end

local Snap = {}
Snap.__index = Snap

--- Starts a snapshot: picks its id from the current UTC time (waiting for the next second when that id
--- is taken) and returns a handle to add objects to.
function M.begin(store, opts)
  opts = opts or {}
  local prefix = trim(opts.prefix)
  if prefix == "" then error("snapshot.begin: prefix is required", 2) end
  local now, day, hms
  for _ = 1, 5 do
    now = time.now()
    day, hms = time.format(now, "%Y%m%d"), time.format(now, "%H%M%S")
    local taken = false
    for obj in store:list(under(prefix, day .. "/")) do
      if obj.key:find("_" .. hms .. "%.[^/]*$") then taken = true break end
    end
    if not taken then break end
    task.sleep(1.05 - (now % 1))
    hms = nil
  end
  if not hms then error("snapshot.begin: could not find a free snapshot id under " .. prefix, 2) end
  return setmetatable({
    store = store,
    prefix = prefix,
    id = day .. "-" .. hms,
    day = day,
    hms = hms,
    started = now,
    started_at = time.format(now),
    procedure = opts.procedure,
    target = opts.target,
    params = opts.params or {},
    tags = opts.tags or {},
    objects = {},
    pending = {},
    keys = {},
    names = {},
    committed = false,
  }, Snap)
end

function Snap:key(name, ext)
  return under(self.prefix, self.day .. "/" .. name .. "_" .. self.hms .. "." .. ext)
end

function Snap:_claim(name, ext)
  if self.committed then error("snapshot " .. self.id .. " is already committed", 3) end
  check_name("object name", name)
  check_name("object extension", ext)
  if name == "manifest" then error("'manifest' is reserved for the snapshot's manifest", 3) end
  if self.names[name] then error("snapshot " .. self.id .. " already has an object named " .. name, 3) end
  self.names[name] = true
  local key = self:key(name, ext)
  self.keys[#self.keys + 1] = key
  return key
end

--- Stores a string or streams a reader as one object; returns its manifest entry.
function Snap:put(name, ext, data)
  local key = self:_claim(name, ext)
  local entry
  if type(data) == "string" then
    self.store:put(key, data)
    entry = { name = name, key = key, size = #data, sha256 = hash.sha256(data), ext = ext }
  else
    local r, digest = hash.reader(data)
    self.store:put(key, r)
    entry = { name = name, key = key, size = digest:size(), sha256 = digest:sha256(), ext = ext }
  end
  self.objects[#self.objects + 1] = entry
  return entry
end

--- A writer for one object; size and sha256 are recorded when it is closed (by Lua or by a primitive
--- that consumed it, such as tar.create). `opts.indexed`: an archive whose files an index checks; in an
--- encrypted store it is not hashed as a whole (see the top of this file).
function Snap:writer(name, ext, opts)
  local key = self:_claim(name, ext)
  local sealed = (opts or {}).indexed and self.store.encrypted or false
  local w, digest = hash.writer(self.store:writer(key), { digest = not sealed })
  self.pending[#self.pending + 1] = { name = name, key = key, ext = ext, digest = digest, sealed = sealed }
  return w
end

--- Writes the manifest (last) and returns it. `extra` fields are added to the manifest.
function Snap:commit(extra)
  if self.committed then error("snapshot " .. self.id .. " is already committed", 2) end
  for _, p in ipairs(self.pending) do
    if not p.digest:done() then
      error("snapshot " .. self.id .. ": object " .. p.name .. " was never closed; nothing committed", 2)
    end
    self.objects[#self.objects + 1] = { name = p.name, key = p.key, size = p.digest:size(), sha256 = p.digest:sha256(),
      ext = p.ext, integrity = p.sealed and "age" or nil }
  end
  self.pending = {}
  table.sort(self.objects, function(a, b) return a.name < b.name end)
  local now = time.now()
  local manifest = {
    format = M.FORMAT,
    id = self.id,
    prefix = self.prefix,
    procedure = self.procedure,
    target = self.target,
    host = env.hostname(),
    started_at = self.started_at,
    finished_at = time.format(now),
    duration_seconds = math.floor((now - self.started) * 1000) / 1000,
    params = self.params,
    tags = self.tags,
    rewind_version = env.rewind_version(),
    objects = json.array(self.objects),
  }
  for k, v in pairs(extra or {}) do
    if manifest[k] ~= nil then error("snapshot:commit: extra field '" .. k .. "' would replace a manifest field", 2) end
    manifest[k] = v
  end
  local key = under(self.prefix, self.day .. "/manifest_" .. self.hms .. ".json")
  -- A job that lost the prefix's lease stops here (rewind.lock); idempotent: a create whose answer was
  -- lost and that the store client sent again finds our own manifest, which counts as written.
  require("rewind.lock").check_target(self.store, self.prefix)
  if not self.store:create_if_absent(key, json.encode(manifest, { pretty = true }), { idempotent = true }) then
    error("snapshot " .. self.id .. ": a manifest already exists at " .. key, 2)
  end
  self.committed = true
  return manifest
end

--- Deletes what this snapshot wrote (an uncommitted snapshot leaves nothing behind).
function Snap:abort()
  if self.committed then return 0 end
  local n = 0
  if #self.keys > 0 then n = self.store:delete(self.keys) end
  self.keys, self.objects, self.pending = {}, {}, {}
  return n
end

local function parse_id(id)
  local day, hms = tostring(id):match("^(%d%d%d%d%d%d%d%d)%-(%d%d%d%d%d%d)$")
  return day, hms
end

local function manifest_key(prefix, id)
  local day, hms = parse_id(id)
  if not day then
    local errors = require("rewind.errors")
    errors.usage("snapshot id must look like YYYYMMDD-HHMMSS, got '" .. tostring(id) .. "'")
  end
  return under(prefix, day .. "/manifest_" .. hms .. ".json")
end

-- A key or prefix made of plain names separated by single slashes.
local function plain_path(s)
  if type(s) ~= "string" or s == "" then return false end
  for c in (s .. "/"):gmatch("([^/]*)/") do
    if c == "" or c == "." or c == ".." or c:find("%c") then return false end
  end
  return true
end

local function plain_name(s)
  return type(s) == "string" and s ~= "" and s ~= "." and s ~= ".." and not s:find("[/%c]")
end

--- Where a manifest key puts its snapshot: prefix, day, hms (nil when it is not a manifest key).
local function key_parts(key)
  local prefix, day, hms = tostring(key):match("^(.*)/(%d%d%d%d%d%d%d%d)/manifest_(%d%d%d%d%d%d)%.json$")
  if not prefix then
    prefix = ""
    day, hms = tostring(key):match("^(%d%d%d%d%d%d%d%d)/manifest_(%d%d%d%d%d%d)%.json$")
  end
  if not day then return nil end
  return prefix, day, hms
end

--- The id a manifest key names (YYYYMMDD-HHMMSS), or the key itself when it names none.
function M.key_id(key)
  local _, day, hms = key_parts(key)
  return day and (day .. "-" .. hms) or key
end

--- Checks a decoded manifest found at `key`. Returns it ready for use (`manifest_key` set, each object's
--- key in the manifest's own directory) or nil and why it is invalid.
function M.check(m, key)
  local prefix, day, hms = key_parts(key)
  if not prefix then return nil, "'" .. tostring(key) .. "' is not a manifest key" end
  if type(m) ~= "table" or m.format == nil then return nil, "not a rewind manifest (it has no format)" end
  if m.format ~= M.FORMAT then
    return nil, "its format '" .. tostring(m.format) .. "' is not " .. M.FORMAT
  end
  local id = day .. "-" .. hms
  if m.id ~= id then return nil, "its id '" .. tostring(m.id) .. "' is not " .. id .. ", the id its key names" end
  if not plain_path(m.prefix) then
    return nil, "its prefix '" .. tostring(m.prefix) .. "' is not a key prefix (plain names joined by '/')"
  end
  for _, f in ipairs({ "procedure", "host" }) do
    if m[f] ~= nil and type(m[f]) ~= "string" then return nil, "its " .. f .. " is not a string" end
  end
  if m.tags ~= nil and type(m.tags) ~= "table" then return nil, "its tags are not a list or a table" end
  if m.started_at ~= nil and not (type(m.started_at) == "string" and pcall(time.parse, m.started_at)) then
    return nil, "its started_at '" .. tostring(m.started_at) .. "' is not a time"
  end
  local count = 0
  if type(m.objects) == "table" then for _ in pairs(m.objects) do count = count + 1 end end
  if type(m.objects) ~= "table" or count ~= #m.objects then return nil, "its objects are not a list" end
  local names = {}
  for i, o in ipairs(m.objects) do
    if type(o) ~= "table" then return nil, "its object " .. i .. " is not a table" end
    if not plain_name(o.name) or o.name == "manifest" then
      return nil, "object name '" .. tostring(o.name) .. "' is not a plain name"
    end
    if names[o.name] then return nil, "object name '" .. o.name .. "' appears twice" end
    names[o.name] = true
    if not plain_name(o.ext) then return nil, "object '" .. o.name .. "': its ext '" .. tostring(o.ext) .. "' is not a plain name" end
    if math.type(o.size) ~= "integer" or o.size < 0 then return nil, "object '" .. o.name .. "': its size is not a byte count" end
    if o.integrity ~= nil and o.integrity ~= "age" then
      return nil, "object '" .. o.name .. "': its integrity '" .. tostring(o.integrity) .. "' is not age"
    end
    if type(o.sha256) ~= "string" and not (o.integrity == "age" and o.sha256 == nil) then
      return nil, "object '" .. o.name .. "': its sha256 is not a string"
    end
    local expected = m.prefix .. "/" .. day .. "/" .. o.name .. "_" .. hms .. "." .. o.ext
    if o.key ~= expected then
      return nil, "object '" .. o.name .. "': its key '" .. tostring(o.key) .. "' is not " .. expected
        .. " (a snapshot's objects lie in its own directory)"
    end
  end
  if m.index ~= nil and not names[m.index] then
    return nil, "its index '" .. tostring(m.index) .. "' is not one of its objects"
  end
  -- An incremental snapshot reads unchanged files from its ancestors' archives: their keys relative to
  -- the prefix, each in a snapshot directory of the prefix.
  if m.references ~= nil then
    local n = 0
    if type(m.references) == "table" then for _ in pairs(m.references) do n = n + 1 end end
    if type(m.references) ~= "table" or n ~= #m.references then return nil, "its references are not a list" end
    for _, r in ipairs(m.references) do
      if type(r) ~= "string" or not r:match("^%d%d%d%d%d%d%d%d/[^/]+_%d%d%d%d%d%d%.[^/]+$") or not plain_name(r:match("/(.*)$")) then
        return nil, "its reference '" .. tostring(r) .. "' is not a snapshot object of its prefix (YYYYMMDD/NAME_HHMMSS.EXT)"
      end
    end
  end
  if m.prefix ~= prefix then m.moved_from, m.prefix = m.prefix, prefix end
  for _, o in ipairs(m.objects) do o.key = under(prefix, day .. "/" .. o.name .. "_" .. hms .. "." .. o.ext) end
  m.reference_keys = {}
  for _, r in ipairs(m.references or {}) do m.reference_keys[#m.reference_keys + 1] = under(prefix, r) end
  m.manifest_key = key
  return m
end

--- Decodes and checks a manifest's text (see `check`): the manifest, or nil and why it is invalid.
function M.parse(body, key)
  local ok, m = pcall(json.decode, body)
  if not ok then
    local msg = tostring(m):match("^[^\n]*"):gsub("^runtime error: ", ""):gsub("^invalid JSON: ", "")
    return nil, "not JSON (" .. msg .. ")"
  end
  return M.check(m, key)
end

--- The keys a snapshot may delete: its manifest's and its objects', each checked to lie in the
--- manifest's own directory (nil and why otherwise).
function M.own_keys(m)
  local key = m.manifest_key
  local dir = type(key) == "string" and key:match("^(.*/)manifest_%d+%.json$") or ""
  local keys = { key }
  for _, o in ipairs(m.objects or {}) do
    local k = tostring(o.key)
    if k:sub(1, #dir) ~= dir or k:sub(#dir + 1):find("/") or not plain_name(k:sub(#dir + 1)) then
      return nil, "object key '" .. k .. "' is outside " .. dir
    end
    keys[#keys + 1] = k
  end
  return keys
end

--- One listing pass over `prefix`: the manifest objects (`{key, size, etag, ...}`, in key order) and the
--- incomplete snapshots (date/time groups with objects but no manifest: `{ {id, keys, started_at} }`, oldest
--- first). Reads no manifest; `list` and prune build on it. `opts.on_manifest(obj)`, when given, is called
--- for each manifest object as soon as its listing page arrives (prune starts reading manifests while the
--- rest is still being listed); it may yield (wait on tasks).
function M.scan(store, prefix, opts)
  local on_manifest = opts and opts.on_manifest
  prefix = trim(prefix)
  local base = prefix == "" and "" or (prefix:gsub("%p", "%%%0") .. "/")
  local manifest_objects, groups, order, has_manifest = {}, {}, {}, {}
  for obj in store:list(prefix == "" and "" or (prefix .. "/")) do
    local day, rest = obj.key:match("^" .. base .. "(%d%d%d%d%d%d%d%d)/([^/]+)$")
    if day then
      local mh = rest:match("^manifest_(%d%d%d%d%d%d)%.json$")
      if mh then
        manifest_objects[#manifest_objects + 1] = obj
        has_manifest[day .. "-" .. mh] = true
        if on_manifest then on_manifest(obj) end
      else
        local hms = rest:match("^.+_(%d%d%d%d%d%d)%.[^/]+$")
        if hms then
          local id = day .. "-" .. hms
          if not groups[id] then groups[id] = {}; order[#order + 1] = id end
          table.insert(groups[id], obj.key)
        end
      end
    end
  end
  local incomplete = {}
  table.sort(order)
  for _, id in ipairs(order) do
    if not has_manifest[id] then
      local day, hms = parse_id(id)
      local t = time.parse(day .. hms, "%Y%m%d%H%M%S")
      incomplete[#incomplete + 1] = { id = id, keys = groups[id], started_at = time.format(t) }
    end
  end
  return { manifest_objects = manifest_objects, incomplete = incomplete }
end

--- Reads and checks one manifest object: the manifest, or nil and why it is invalid. A failed read
--- (network, permissions) raises: deciding without a snapshot that exists could pick an older one to
--- restore, or let prune remove what a rule would keep.
function M.read_manifest(store, key)
  return M.parse(store:get(key), key)
end

--- The manifest of the newest snapshot under `prefix`, reading only that one (one listing, one read):
--- nil when there is no complete snapshot; nil and why when its manifest is invalid. For a cheap look at
--- the newest, e.g. whether a batch already wrote it (backup-dir batch=ID); `latest` reads them all.
function M.newest_manifest(store, prefix)
  local newest_key
  for _, obj in ipairs(M.scan(store, prefix).manifest_objects) do
    if not newest_key or obj.key > newest_key then newest_key = obj.key end
  end
  if not newest_key then return nil end
  return M.read_manifest(store, newest_key)
end

--- Every valid snapshot's manifest under `prefix`, oldest first; second, the invalid ones
--- (`{ {id, key, error} }`, oldest first).
function M.list(store, prefix)
  local out, invalid = {}, {}
  for _, obj in ipairs(M.scan(store, prefix).manifest_objects) do
    local m, why = M.read_manifest(store, obj.key)
    if m then
      out[#out + 1] = m
    else
      invalid[#invalid + 1] = { id = M.key_id(obj.key), key = obj.key, error = why }
    end
  end
  table.sort(out, function(a, b) return a.id < b.id end)
  table.sort(invalid, function(a, b) return a.id < b.id end)
  return out, invalid
end

--- Date/time groups with objects but no manifest: `{ {id, keys, started_at} }`, oldest first.
function M.incomplete(store, prefix)
  return M.scan(store, prefix).incomplete
end

-- The newest valid manifest (or nil), or nil and why when the newest snapshot's manifest is invalid.
local function newest(store, prefix)
  prefix = trim(prefix)
  local valid, invalid = M.list(store, prefix)
  local v, bad = valid[#valid], invalid[#invalid]
  if bad and (not v or bad.id > v.id) then
    return nil, string.format("the newest snapshot under %s, %s, has an invalid manifest (%s): %s; name another one with snapshot=ID%s",
      prefix, bad.id, bad.key, bad.error, v and (" (the newest valid one is " .. v.id .. ")") or "")
  end
  return v
end

--- The newest valid snapshot's manifest, or nil when there is none. Raises when the newest snapshot
--- has an invalid manifest (using an older one instead would be a silent substitution).
function M.latest(store, prefix)
  local v, why = newest(store, prefix)
  if why then error(why, 2) end
  return v
end

local Opened = {}
Opened.__index = Opened

--- Opens a valid snapshot (the newest when id is nil). An id without a manifest, or with an invalid
--- one, is refused.
function M.open(store, prefix, id)
  prefix = trim(prefix)
  local manifest
  if id == nil or id == "" then
    local why
    manifest, why = newest(store, prefix)
    if why then error(why, 2) end
    if not manifest then
      local inc = M.incomplete(store, prefix)
      if #inc > 0 then
        error(string.format("no complete snapshot under %s in %s (%d incomplete, the newest %s: no manifest)",
          prefix, store.url, #inc, inc[#inc].id), 2)
      end
      error("no snapshots under " .. prefix .. " in " .. store.url, 2)
    end
  else
    local key = manifest_key(prefix, id)
    if not store:exists(key) then
      local errors = require("rewind.errors")
      for _, inc in ipairs(M.incomplete(store, prefix)) do
        if inc.id == id then
          error("snapshot " .. id .. " under " .. prefix .. " is incomplete (no manifest); refusing to use it", 2)
        end
      end
      errors.usage("no snapshot " .. id .. " under " .. prefix)
    end
    local why
    manifest, why = M.read_manifest(store, key)
    if not manifest then
      error("snapshot " .. id .. " under " .. prefix .. " has an invalid manifest (" .. key .. "): " .. why, 2)
    end
  end
  local by_name = {}
  for _, o in ipairs(manifest.objects) do by_name[o.name] = o end
  return setmetatable({ store = store, prefix = prefix, id = manifest.id, manifest = manifest, by_name = by_name }, Opened)
end

function Opened:object(name)
  local o = self.by_name[name]
  if not o then error("snapshot " .. self.id .. " has no object named " .. tostring(name), 2) end
  return o
end

--- A reader over one object that fails at its end if size or sha256 differ from the manifest.
function Opened:reader(name)
  local o = self:object(name)
  self:_readable(o)
  local r = hash.reader(self.store:reader(o.key), { size = o.size, sha256 = o.sha256, label = o.key,
    digest = o.sha256 ~= nil })
  return r
end

-- An entry without sha256 relies on age's authentication: read only through a store with keys.
function Opened:_readable(o)
  if o.sha256 == nil and not self.store.encrypted then
    error(string.format("%s: its manifest entry has no sha256 (integrity: age) but the store is not opened with "
      .. "age keys (identity= or passphrase=), so nothing would check it", o.key), 0)
  end
end

--- One object as a verified string (small objects).
function Opened:get(name)
  return self:reader(name):read_all()
end

--- Re-reads every object, checking size and sha256.
function Opened:verify()
  local result = { ok = true, id = self.id, objects = {} }
  for _, o in ipairs(self.manifest.objects or {}) do
    local entry = { name = o.name, key = o.key, ok = true }
    local ok, err = pcall(function()
      self:_readable(o)
      -- Without sha256 (integrity: age), reading it whole is the check: decryption authenticates it.
      local sum, size = hash.sha256_reader(self.store:reader(o.key))
      if size ~= o.size then
        error(string.format("%s is corrupt: %d bytes where %d were expected", o.key, size, o.size), 0)
      end
      if o.sha256 and sum ~= o.sha256 then
        error(string.format("%s is corrupt: sha256 %s where %s was expected", o.key, sum, o.sha256), 0)
      end
    end)
    if not ok then
      entry.ok, entry.error = false, tostring(err)
      result.ok = false
    end
    result.objects[#result.objects + 1] = entry
  end
  return result
end

--- Verifies every object and raises, naming each bad one, unless all are intact. Restores call it
--- before they change anything.
function Opened:verify_or_fail()
  local v = self:verify()
  if v.ok then return v end
  local bad = {}
  for _, o in ipairs(v.objects) do
    if not o.ok then bad[#bad + 1] = o.name .. ": " .. tostring(o.error) end
  end
  error("snapshot " .. self.id .. " failed verification, nothing was changed:\n  " .. table.concat(bad, "\n  "), 0)
end

--- Deletes a snapshot: its manifest first (so it turns incomplete, never half-listed), then its objects.
--- Also removes an incomplete snapshot's objects.
function M.delete(store, prefix, id)
  prefix = trim(prefix)
  local key = manifest_key(prefix, id)
  local deleted = 0
  if store:exists(key) then deleted = store:delete(key) end
  for _, inc in ipairs(M.incomplete(store, prefix)) do
    if inc.id == id then deleted = deleted + store:delete(inc.keys) end
  end
  return { id = id, deleted = deleted }
end

return M
