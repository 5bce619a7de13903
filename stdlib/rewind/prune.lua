-- rewind.prune: the work of the prune procedure, for it and for procedures that prune after a backup
-- (env-backup keep_within=...).
-- Applies a retention policy (restic `forget` semantics, see stdlib/rewind/retention.lua) to the
-- snapshots under a prefix. Runs under the prefix's lock, so it never races a backup or a restore.
-- Deletes each removed snapshot's manifest FIRST, then its objects: a prune cut off half way leaves
-- objects without a manifest (an incomplete snapshot, removed by a later prune), never a manifest that
-- points at missing objects. It deletes only keys in a snapshot's own <prefix>/<YYYYMMDD>/ directory: a
-- manifest that is invalid (not JSON, not a rewind manifest, or naming anything else, see
-- snapshot.check) is reported and kept, and nothing it names is deleted.
local store = require("rewind.store")
local snapshot = require("rewind.snapshot")
local retention = require("rewind.retention")
local time = require("rewind.time")
local log = require("rewind.log")
local task = require("rewind.task")
local fs = require("rewind.fs")
local env = require("rewind.env")
local hash = require("rewind.hash")
local json = require("rewind.json")

-- One listing pass for both complete and incomplete snapshots (snapshot.scan). Manifests are read while
-- the listing goes on: each listed manifest that is not in the cache joins a chunk, and chunks are read
-- at once by background tasks, at most `concurrency` reads in flight, so the listing's page round trips
-- and the reads overlap. Manifests never change once written, so a local cache keyed by (key, etag, size)
-- spares re-reading thousands of them on every prune; the listing still decides what exists.
local function cache_path(st, prefix)
  local root = env.get("XDG_CACHE_HOME") or ((env.get("HOME") or "/tmp") .. "/.cache")
  return root .. "/rewind/manifests/" .. hash.sha256(tostring(st.url) .. "\n" .. prefix) .. ".json"
end

local function load_cache(path)
  if not path or not fs.exists(path) then return {} end
  local ok, c = pcall(function() return json.decode(fs.read(path)) end)
  return (ok and type(c) == "table") and c or {}
end

local CHUNK = 32

local function scan(st, prefix, concurrency, cache_file)
  local cache = load_cache(cache_file)
  local fresh, hits, manifests, invalid = {}, 0, {}, {}
  local function tag_of(obj) return tostring(obj.etag or "") .. ":" .. tostring(obj.size or "") end
  local function read(obj)
    -- A failed GET raises, so the prune stops before deleting anything.
    local m, why = snapshot.read_manifest(st, obj.key)
    if m then
      fresh[obj.key] = { tag = tag_of(obj), m = m }
      manifests[#manifests + 1] = m
    else
      invalid[#invalid + 1] = { id = snapshot.key_id(obj.key), key = obj.key, error = why }
    end
  end
  local size = math.max(1, math.min(CHUNK, concurrency))
  local max_running = math.max(1, concurrency // size)
  local running, chunk = {}, {}
  local function flush()
    if #chunk == 0 then return end
    local items = chunk
    chunk = {}
    if #running >= max_running then table.remove(running, 1):join() end
    running[#running + 1] = task.spawn(function() task.map(items, #items, read) end)
  end
  local found = snapshot.scan(st, prefix, { on_manifest = function(obj)
    local c = cache[obj.key]
    -- A cached manifest is checked again (no read): the rules may be newer than the cache.
    if c and c.tag == tag_of(obj) and type(c.m) == "table" and snapshot.check(c.m, obj.key) then
      hits = hits + 1
      fresh[obj.key] = c
      manifests[#manifests + 1] = c.m
      return
    end
    chunk[#chunk + 1] = obj
    if #chunk >= size then flush() end
  end })
  flush()
  for _, t in ipairs(running) do t:join() end
  if cache_file then
    local ok, err = pcall(function()
      fs.mkdir((cache_file:match("^(.*)/[^/]+$")))
      fs.write(cache_file, json.encode(fresh))
    end)
    if not ok then log.warn("could not write the manifest cache", { path = cache_file, error = tostring(err) }) end
  end
  table.sort(invalid, function(a, b) return a.id < b.id end)
  return manifests, found.incomplete, hits, invalid
end


-- Incremental snapshots read unchanged files from their ancestors' archives (manifest `references`).
-- A snapshot the policy would remove stays while a kept snapshot references one of its objects, and so
-- do the snapshots it references in turn (it stays restorable): moved from remove to keep, with the reason.
local function keep_referenced(plan)
  local owner = {}
  for _, e in ipairs(plan.remove) do
    for _, o in ipairs(e.manifest.objects or {}) do owner[o.key] = e end
  end
  local queue, kept = {}, {}
  for _, e in ipairs(plan.keep) do queue[#queue + 1] = e end
  while #queue > 0 do
    local e = table.remove(queue)
    for _, k in ipairs(e.manifest.reference_keys or {}) do
      local o = owner[k]
      if o and not kept[o] then
        kept[o] = true
        o.reasons = { "referenced by " .. e.manifest.id }
        queue[#queue + 1] = o
      end
    end
  end
  if next(kept) == nil then return 0 end
  local remove = {}
  for _, e in ipairs(plan.remove) do
    if kept[e] then plan.keep[#plan.keep + 1] = e else remove[#remove + 1] = e end
  end
  plan.remove = remove
  local n = 0
  for _ in pairs(kept) do n = n + 1 end
  return n
end

local M = {}

--- The retention policy of prune-style params.
function M.policy(p)
  return {
    keep_last = p.keep_last or 0, keep_hourly = p.keep_hourly or 0, keep_daily = p.keep_daily or 0,
    keep_weekly = p.keep_weekly or 0, keep_monthly = p.keep_monthly or 0, keep_yearly = p.keep_yearly or 0,
    keep_within = p.keep_within, keep_tags = p.tags or {}, timezone = p.timezone or "UTC", grace = p.grace or 6 * 3600,
  }
end

--- Prunes `p.prefix` of `st` by the policy in `p` (the prune script's params) while the caller holds
--- the prefix's lock `l`; prints the plan and returns the result.
function M.run(st, l, p)
  local defaults = { concurrency = 128, delete_concurrency = 4, cache = true, batch = 1000, grace = 6 * 3600, dry_run = false }
  for k, v in pairs(p) do defaults[k] = v end
  p = defaults
  local policy = M.policy(p)
  local t0 = time.monotonic()
  local prefix = (p.prefix:gsub("/+$", ""))
  local manifests, incomplete, hits, invalid = scan(st, prefix, p.concurrency, p.cache and cache_path(st, prefix) or nil)
  local t_list = time.monotonic() - t0
  local plan = retention.plan(manifests, policy, time.now(), incomplete)
  local referenced = keep_referenced(plan)
  local t_decide = time.monotonic() - t0
  log.info("prune plan", { prefix = p.prefix, snapshots = #manifests, incomplete = #incomplete, cached = hits,
    keep = #plan.keep, remove = #plan.remove, kept_for_references = referenced, list_seconds = t_list, decide_seconds = t_decide })

  local verb = p.dry_run and "would remove" or "remove"
  for _, e in ipairs(plan.keep) do
    print(string.format("keep         %s  %s  %s", e.manifest.id, e.group, table.concat(e.reasons, ", ")))
  end
  for _, e in ipairs(plan.remove) do
    print(string.format("%-12s %s  %s  %s", verb, e.manifest.id, e.group, table.concat(e.reasons, ", ")))
  end
  for _, e in ipairs(plan.incomplete_keep) do
    print(string.format("keep         %s  (incomplete)  %s", e.incomplete.id, table.concat(e.reasons, ", ")))
  end
  for _, e in ipairs(plan.incomplete_remove) do
    print(string.format("%-12s %s  (incomplete)  %s", verb, e.incomplete.id, table.concat(e.reasons, ", ")))
  end
  for _, i in ipairs(invalid) do
    print(string.format("%-12s %s  %s: %s; kept, nothing it names is deleted", "invalid", i.id, i.key, i.error))
    log.warn("invalid manifest: kept, nothing it names is deleted", { key = i.key, error = i.error })
  end

  local result = {
    prefix = p.prefix, dry_run = p.dry_run, snapshots = #manifests,
    kept = #plan.keep, removed = #plan.remove, kept_for_references = referenced,
    incomplete_kept = #plan.incomplete_keep, incomplete_removed = #plan.incomplete_remove,
    decide_seconds = t_decide, list_seconds = t_list, plan_seconds = t_decide - t_list, manifests_cached = hits, deleted_keys = 0, delete_batches = 0,
    invalid = #invalid, invalid_snapshots = json.array(invalid),
  }
  -- Temp files of writers killed mid-write (local store), once older than grace.
  local lo = st:leftovers(prefix, p.grace, { remove = not p.dry_run })
  result.leftovers_removed, result.leftover_bytes = lo.count, lo.bytes
  if p.dry_run then return result end

  -- 1) manifests first (the snapshots stop being complete), 2) then their objects and the incomplete ones.
  -- Batches of one kind go `delete_concurrency` at a time; all manifests are gone before any object goes.
  local function delete_all(keys)
    local batches = {}
    for i = 1, #keys, p.batch do
      batches[#batches + 1] = table.move(keys, i, math.min(i + p.batch - 1, #keys), 1, {})
    end
    local counts = task.map(batches, p.delete_concurrency, function(batch) l:check() return st:delete(batch) or #batch end)
    for _, n in ipairs(counts) do result.deleted_keys = result.deleted_keys + n end
    result.delete_batches = result.delete_batches + #batches
  end
  local manifests_keys, object_keys = {}, {}
  for _, e in ipairs(plan.remove) do
    -- Only keys in the snapshot's own directory (snapshot.check placed them there; checked again).
    local keys, why = snapshot.own_keys(e.manifest)
    if not keys then error("prune: snapshot " .. e.manifest.id .. ": " .. why .. "; nothing was deleted", 0) end
    manifests_keys[#manifests_keys + 1] = keys[1]
    for i = 2, #keys do object_keys[#object_keys + 1] = keys[i] end
  end
  for _, e in ipairs(plan.incomplete_remove) do
    for _, k in ipairs(e.incomplete.keys or {}) do object_keys[#object_keys + 1] = k end
  end
  delete_all(manifests_keys)
  delete_all(object_keys)
  result.delete_seconds = time.monotonic() - t0 - t_decide
  log.info("pruned", { prefix = p.prefix, removed = #plan.remove, incomplete = #plan.incomplete_remove,
    keys = result.deleted_keys, batches = result.delete_batches })
  return result
end

return M
