-- rewind.td_store: where td-ps-backup and td-ps-restore keep snapshots and restore state.
-- Uses rewind.store, and rewind.snapshot (the shared contract) when it is in this build; until then a
-- minimal stand-in on top of rewind.store writes the same layout (objects, then the manifest last at
-- <prefix>/<YYYYMMDD>/manifest_<HHMMSS>.json) and reads the newest complete snapshot back.

local json = require("rewind.json")
local time = require("rewind.time")
local env = require("rewind.env")

local M = {}

local store_mod = require("rewind.store")
local has_snap, snap_mod = pcall(require, "rewind.snapshot")
M.native = has_snap

--- Opens a store by URL (nil or "": the default store).
function M.open(url)
  return store_mod.open(url ~= "" and url or nil)
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
  for o in store:list(prefix .. "/") do
    local day, hms = o.key:match("(%d%d%d%d%d%d%d%d)/manifest_(%d%d%d%d%d%d)%.json$")
    if day then manifests[#manifests + 1] = day .. "-" .. hms end
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
