-- rewind.dir_backup: the work of the bundled backup-dir script. By default one snapshot of all the
-- directories under one prefix; with each=true every directory is its own snapshot under its own prefix,
-- and copies side by side (the pods of a Kubernetes Indexed Job, rewind.shard) each take a contiguous share
-- of the directories. With batch=ID a prefix whose newest snapshot already carries tag batch=ID is skipped
-- ("already done"), so a rerun of the same batch (a retried pod) redoes only what it had not committed.
local store = require("rewind.store")
local snapshot = require("rewind.snapshot")
local lock = require("rewind.lock")
local tar = require("rewind.tar")
local fs = require("rewind.fs")
local env = require("rewind.env")
local time = require("rewind.time")
local errors = require("rewind.errors")
local shard = require("rewind.shard")
local json = require("rewind.json")
local log = require("rewind.log")
local increments = require("rewind.increments")

local M = {}

local EXT = { zstd = "tar.zst", gzip = "tar.gz", none = "tar" }

local function basename(path)
  path = path:gsub("/+$", "")
  local name = path:match("([^/]+)$") or ""
  if name == "" or name == "." or name == ".." then
    local pwd = env.get("PWD") or ""
    name = (pwd:gsub("/+$", "")):match("([^/]+)$") or "root"
  end
  return (name:gsub("[^%w%-%.]", "_"))
end

local function trim(prefix)
  return ((prefix:gsub("^/+", "")):gsub("/+$", ""))
end

-- The manifest's tags: tags=k=v,... plus batch=ID, which must not contradict them.
local function parse_tags(p)
  local tags = {}
  for _, kv in ipairs(p.tags or {}) do
    local k, v = kv:match("^([^=]+)=(.*)$")
    if not k then errors.usage("tags: expected key=value, got '" .. kv .. "'") end
    tags[k] = v
  end
  if p.batch then
    if p.batch == "" or p.batch:find("%c") then errors.usage("batch: expected a non-empty name") end
    -- Kubernetes leaves $(VAR) as it is when VAR is not defined: every run would then share one batch
    -- and skip everything after the first.
    if p.batch:find("$(", 1, true) then
      errors.usage("batch: '" .. p.batch .. "' looks like an unexpanded variable; define it in the container's env")
    end
    if tags.batch and tags.batch ~= p.batch then
      errors.usage("tags: batch=" .. tags.batch .. " contradicts batch=" .. p.batch .. "; give the batch once")
    end
    tags.batch = p.batch
  end
  return tags
end

-- What to back up: { {prefix, name, from} }. By default one snapshot of all the directories; with
-- each=true one per directory, under <prefix or dirs>/<its name>. Decided from the whole of `from`, so that
-- every copy of a split run sees the same list and refuses the same bad input.
local function plan(p)
  if not p.each then
    local name = basename(p.from[1])
    return { { prefix = p.prefix or ("dirs/" .. name), name = name, from = p.from } }
  end
  local parent = trim(p.prefix or "dirs")
  if parent == "" then errors.usage("prefix: with each=true it is the parent of the prefixes; it cannot be empty") end
  local items, seen = {}, {}
  for _, dir in ipairs(p.from) do
    local name = basename(dir)
    local prefix = parent .. "/" .. name
    if seen[prefix] then
      errors.usage(string.format("from: %s and %s would both be backed up to %s (each=true names the prefix after the directory); back them up in separate runs with different prefixes",
        seen[prefix], dir, prefix))
    end
    seen[prefix] = dir
    items[#items + 1] = { prefix = prefix, name = name, from = { dir } }
  end
  return items
end

-- The newest snapshot under the prefix when it belongs to `batch` (so this batch already wrote it).
local function done_in_batch(s, prefix, batch)
  if not batch then return nil end
  local m, why = snapshot.newest_manifest(s, prefix)
  if why then log.warn("the newest snapshot's manifest is invalid; backing up again", { prefix = prefix, error = why }) end
  if m and type(m.tags) == "table" and m.tags.batch == batch then return m end
  return nil
end

local function human_bytes(n)
  if n < 1024 then return n .. " B" end
  if n < 1024 * 1024 then return string.format("%.1f KiB", n / 1024) end
  return string.format("%.1f MiB", n / 1024 / 1024)
end

-- Backs up one item under its prefix's lease: its record for the result.
local function back_up(s, item, p, ctx, tags)
  local t0 = time.monotonic()
  return lock.with_target(s, item.prefix, function()
    -- Looked at under the lease: a backup of the prefix still committing cannot be missed.
    local done = done_in_batch(s, item.prefix, p.batch)
    if done then
      log.info(string.format("backup-dir %s: already done (snapshot %s of batch %s)", item.prefix, done.id, p.batch))
      return { prefix = item.prefix, status = "already done", snapshot = done.id }
    end
    local ext = EXT[p.compression]
    local indexed = p.compression == "zstd"
    local parent = indexed and increments.parent(s, item.prefix, p) or nil
    local snap = snapshot.begin(s, {
      prefix = item.prefix, procedure = "backup-dir", target = table.concat(item.from, ","),
      params = ctx.public_params, tags = tags,
    })
    local flat = #item.from == 1
    local ok, res = pcall(function()
      local opts = {
        from = item.from, to = snap:writer(item.name, ext, { indexed = indexed }), compression = p.compression, level = p.level,
        exclude = p.exclude, flat = flat,
        progress = { label = p.each and ("backup-dir " .. item.prefix) or "backup-dir" },
      }
      -- zstd archives are indexed: every file's sha256 and where its bytes lie, so that the next backup
      -- stores only what changed and a restore can read one file alone.
      if indexed then
        for k, v in pairs(increments.tar_options(s, snap, item.name, ext, parent)) do opts[k] = v end
      end
      return tar.create(opts)
    end)
    if not ok then
      snap:abort()
      error(res, 0)
    end
    local extra = {
      layout = flat and "contents" or "named",
      files = res.files, dirs = res.dirs, symlinks = res.symlinks, bytes_in = res.bytes_in,
    }
    if indexed then
      for k, v in pairs(increments.manifest_fields(item.name, parent, res)) do extra[k] = v end
    end
    local m = snap:commit(extra)
    local secs = time.monotonic() - t0
    log.info(string.format("backup-dir %s: snapshot %s (files: %d, %s read in %.1fs)", item.prefix, m.id, res.files,
      human_bytes(res.bytes_in), secs))
    return {
      status = "done", snapshot = m.id, store = s.url, prefix = item.prefix, key = m.objects[1].key,
      parent = m.parent, chain = m.chain, files_new = m.files_new, files_unchanged = m.files_unchanged,
      bytes_new = m.bytes_new, bytes_unchanged = m.bytes_unchanged,
      files = res.files, dirs = res.dirs, symlinks = res.symlinks, skipped = res.skipped,
      bytes_in = res.bytes_in, bytes_out = res.bytes_out,
      ratio = res.bytes_out > 0 and math.floor(res.bytes_in / res.bytes_out * 100) / 100 or nil,
      seconds = math.floor(secs * 100) / 100,
    }
  end, { owner = "backup-dir", ttl = p.lock_ttl })
end

-- each=true: this copy's share, one prefix after the other. A prefix that fails does not stop the
-- others (they are independent); the run fails at the end, naming it.
local function back_up_share(s, items, p, ctx, tags, pos)
  local t0 = time.monotonic()
  local records, counts, failed = {}, { done = 0, ["already done"] = 0, failed = 0 }, {}
  for _, item in ipairs(items) do
    local ok, r = pcall(back_up, s, item, p, ctx, tags)
    if not ok then
      if errors.is_usage(r) then error(r, 0) end
      local msg = errors.message(r)
      log.error(string.format("backup-dir %s: failed: %s", item.prefix, msg))
      r = { prefix = item.prefix, status = "failed", error = msg }
      failed[#failed + 1] = item.prefix .. " (" .. msg .. ")"
    end
    r.from, r.store = item.from[1], nil
    counts[r.status] = counts[r.status] + 1
    records[#records + 1] = r
  end
  if #failed > 0 then
    error(string.format("backup-dir: %d of %d prefixes failed (%d done, %d already done): %s", #failed, #items,
      counts.done, counts["already done"], table.concat(failed, "; ")), 0)
  end
  return {
    store = s.url, share = shard.describe(pos), batch = p.batch, prefixes = json.array(records),
    done = counts.done, already_done = counts["already done"],
    seconds = math.floor((time.monotonic() - t0) * 100) / 100,
  }
end

---Runs backup-dir with its params (see scripts/backup-dir.lua).
function M.run(p, ctx)
  p.max_chain = p.max_chain or 30
  if p.max_chain < 1 then errors.usage("max_chain must be at least 1, got " .. p.max_chain) end
  for _, dir in ipairs(p.from) do
    local st = fs.stat(dir)
    if not st then errors.usage("from: " .. dir .. " does not exist") end
    if st.type ~= "dir" then errors.usage("from: " .. dir .. " is not a directory") end
  end
  local tags = parse_tags(p)
  local items = plan(p)
  -- Without each=true there is one snapshot to write: nothing to split, and the environment of a pod
  -- (JOB_COMPLETION_*) is not looked at, as before.
  if not p.each and (p.index or p.count) then
    errors.usage("index/count split the directories of each=true; without it every copy would write the same snapshot")
  end
  local pos = p.each and shard.position(p) or nil
  items = shard.share(items, pos)
  local s = require("rewind.encryption").open(p)
  local ext = EXT[p.compression]
  if p.dry_run then
    local plans = {}
    for _, item in ipairs(items) do
      local done = done_in_batch(s, item.prefix, p.batch)
      plans[#plans + 1] = { prefix = item.prefix, from = p.each and item.from[1] or item.from,
        status = done and "already done" or nil, snapshot = done and done.id or nil,
        would_write = not done and (item.prefix .. "/<YYYYMMDD>/" .. item.name .. "_<HHMMSS>." .. ext .. " and its manifest") or nil }
    end
    if not p.each then
      local r = plans[1]
      r.dry_run, r.store = true, s.url
      return r
    end
    return { dry_run = true, store = s.url, share = shard.describe(pos), batch = p.batch, prefixes = json.array(plans) }
  end
  if p.each then return back_up_share(s, items, p, ctx, tags, pos) end
  local r = back_up(s, items[1], p, ctx, tags)
  r.store, r.batch = s.url, p.batch
  return r
end

return M
