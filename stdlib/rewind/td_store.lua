-- rewind.td_store: where td-ps-backup and td-ps-restore keep snapshots and restore state.
-- Uses rewind.store + rewind.snapshot (the shared contract). When those modules are not in this build
-- yet, falls back to a local directory laid out the same way (objects, then the manifest last at
-- <prefix>/<YYYYMMDD>/manifest_<HHMMSS>.json), so the procedures run end to end on a local store.

local json = require("rewind.json")
local time = require("rewind.time")
local fs = require("rewind.fs")
local env = require("rewind.env")

local M = {}

local has_store, store_mod = pcall(require, "rewind.store")
local has_snap, snap_mod = pcall(require, "rewind.snapshot")
M.native = has_store and has_snap

-- ------------------------------------------------------------ local fallback
local Local = {}
Local.__index = Local

local function local_root(url)
  if url == nil or url == "" then
    url = env.get("REWIND_STORE") or ((env.get("HOME") or ".") .. "/.local/share/rewind/store")
  end
  if url:match("^%a[%w+.-]*://") and not url:match("^file://") then
    error("store " .. url .. ": only local stores are available in this build (rewind.store is missing)", 0)
  end
  return (url:gsub("^file://", ""))
end

local function open_local(url)
  return setmetatable({ root = local_root(url), url = url or local_root(url) }, Local)
end
function Local:path(key) return self.root .. "/" .. key end
function Local:put(key, data)
  local p = self:path(key)
  fs.mkdir(p:match("^(.*)/[^/]*$"))
  fs.write(p .. ".tmp", data)
  fs.rename(p .. ".tmp", p)
  return { key = key, size = #data }
end
function Local:get(key) return fs.read(self:path(key)) end
function Local:exists(key) return fs.exists(self:path(key)) end

--- Opens a store: { url, native = store or nil }.
function M.open(url)
  if M.native then return store_mod.open(url ~= "" and url or nil) end
  return open_local(url)
end

--- Starts a snapshot. Returns an object with :put(name, ext, string), :commit(extra) → manifest, id.
function M.begin(store, o)
  if M.native then return snap_mod.begin(store, o) end
  local started = time.now()
  local day, hms = time.format(started, "%Y%m%d"), time.format(started, "%H%M%S")
  local snap = { id = day .. "-" .. hms, started_at = time.format(started), objects = {} }
  function snap:put(name, ext, data)
    local key = string.format("%s/%s/%s_%s.%s", o.prefix, day, name, hms, ext)
    store:put(key, data)
    local entry = { name = name, key = key, size = #data, ext = ext }
    self.objects[#self.objects + 1] = entry
    return entry
  end
  function snap:commit(extra)
    local m = { format = "rewind.snapshot/1", id = self.id, prefix = o.prefix, procedure = o.procedure,
      target = o.target, host = env.hostname(), started_at = self.started_at, finished_at = time.format(time.now()),
      params = o.params, tags = o.tags or {}, objects = self.objects }
    for k, v in pairs(extra or {}) do m[k] = v end
    store:put(string.format("%s/%s/manifest_%s.json", o.prefix, day, hms), json.encode(m, { pretty = true }))
    return m
  end
  function snap:abort() end
  return snap
end

--- Opens a complete snapshot (newest when id is nil): an object with .manifest and :get(name).
function M.open_snapshot(store, prefix, id)
  if M.native then return snap_mod.open(store, prefix, id) end
  local manifests = {}
  local base = store.root .. "/" .. prefix
  if fs.exists(base) then
    for _, day in ipairs(fs.list(base)) do
      local dname = type(day) == "table" and day.name or day
      if tostring(dname):match("^%d%d%d%d%d%d%d%d$") and fs.exists(base .. "/" .. dname) then
        for _, f in ipairs(fs.list(base .. "/" .. dname)) do
          local fname = type(f) == "table" and f.name or f
          local hms = tostring(fname):match("^manifest_(%d%d%d%d%d%d)%.json$")
          if hms then manifests[#manifests + 1] = dname .. "-" .. hms end
        end
      end
    end
  end
  table.sort(manifests)
  if #manifests == 0 then error("no complete snapshot under " .. prefix .. " in store " .. store.url, 0) end
  local want = id or manifests[#manifests]
  local day, hms = want:match("^(%d+)-(%d+)$")
  if not day or not store:exists(string.format("%s/%s/manifest_%s.json", prefix, day, hms)) then
    error("no complete snapshot " .. tostring(want) .. " under " .. prefix .. " (have: " .. table.concat(manifests, ", ") .. ")", 0)
  end
  local m = json.decode(store:get(string.format("%s/%s/manifest_%s.json", prefix, day, hms)))
  local s = { manifest = m }
  function s:get(name)
    for _, o in ipairs(m.objects) do if o.name == name then return store:get(o.key) end end
    error("snapshot " .. m.id .. " has no object " .. name, 0)
  end
  return s
end

--- Restore state (old → new id map and progress), kept in the store under `key`.
function M.load_state(store, key)
  if store:exists(key) then return json.decode(store:get(key)) end
  return nil
end
function M.save_state(store, key, state)
  store:put(key, json.encode(state))
end

return M
