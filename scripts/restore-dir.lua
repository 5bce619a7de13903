-- restore-dir: a snapshot made by backup-dir → a directory. Verifies size and sha256 while streaming;
-- extracts into a temporary directory beside the target, then puts it in place in one step: a rename
-- when the target is absent or empty, an atomic exchange (fs.swap) when it replaces a whole tree. A
-- restore killed at any point leaves the target either as it was or fully restored, plus at most one
-- `.rewind-restore-<name>-<pid>-<hex>` directory beside it, which the next restore into it removes.
-- Nothing is written (no lease, no directory) before the snapshot is known to exist and be valid; then
-- it holds the prefix's lock (lock.target) while it reads, so no prune or backup of the prefix runs meanwhile.
local encryption = require("rewind.encryption")
local snapshot = require("rewind.snapshot")
local tar = require("rewind.tar")
local fs = require("rewind.fs")
local task = require("rewind.task")
local time = require("rewind.time")
local errors = require("rewind.errors")
local lock = require("rewind.lock")
local log = require("rewind.log")
local env = require("rewind.env")

local LEFTOVER = ".rewind-restore-"

local function parent(path)
  local dir = path:match("^(.*)/[^/]*$")
  if dir == nil then return "." end
  if dir == "" then return "/" end
  return dir
end

-- Leftovers of earlier restores into the same target whose process is gone (on this host): the partial
-- tree of a restore that was killed, or the old tree a killed restore had swapped out. Returns how many
-- it removed. A leftover of a restore still running is left alone.
local function clean_leftovers(base, tag)
  if not fs.exists("/proc/self") then return 0 end
  local start, removed = LEFTOVER .. tag .. "-", 0
  for _, e in ipairs(fs.list(base)) do
    if e.name:sub(1, #start) == start then
      local pid = e.name:sub(#start + 1):match("^(%d+)%-%x+$")
      if pid and not fs.exists("/proc/" .. pid) then
        log.info("removing the leftover of an interrupted restore", { path = e.path })
        fs.remove(e.path, { recursive = true })
        removed = removed + 1
      end
    end
  end
  return removed
end

return {
  description = "Restore a directory snapshot (default: the newest complete one) into a directory, replacing it in one step",
  params = encryption.params({
    to = { type = "string", required = true, doc = "directory to restore into (must be empty or absent unless overwrite=true)" },
    prefix = { type = "string", required = true, doc = "key prefix of the snapshots (backup-dir's prefix, e.g. dirs/data)" },
    store = { type = "string", doc = "store URL; default: REWIND_STORE, the config file's store, else ~/.local/share/rewind/store" },
    snapshot = { type = "string", doc = "snapshot id YYYYMMDD-HHMMSS (default: the newest complete one)" },
    overwrite = { type = "boolean", default = false, doc = "replace a non-empty directory as a whole (what the snapshot does not have is gone afterwards); the swap is atomic" },
    symlinks = { type = "string", default = "keep", choices = { "keep", "inside" }, doc = "keep: restore symlinks as they are, also those leading outside the tree (they are counted and named); inside: refuse a snapshot with such a symlink" },
    path = { type = "string", doc = "restore only this file or directory of the snapshot (relative to its root, e.g. sub/dir), reading only the parts of the store that hold it; needs an indexed snapshot (backup-dir with zstd)" },
    dry_run = { type = "boolean", default = false, doc = "only show what would be restored" },
    lock_ttl = { type = "duration", default = "2m", doc = "lease length of the prefix's lock (renewed while running; a backup or prune of the prefix started meanwhile is refused)" },
  }),
  run = function(p)
    local s = encryption.open(p)
    local to = p.to:gsub("/+$", "")
    local name = to:match("([^/]+)$")
    if not name or name == "." or name == ".." then
      errors.usage("to: name the directory to restore into, not '" .. p.to .. "' (it is put in place as a whole)")
    end
    -- nil: absent; "empty"; "full" (only with overwrite=true).
    local function state()
      local st = fs.stat(to)
      if not st then return nil end
      if st.type == "symlink" then errors.usage("to: " .. to .. " is a symlink; give the directory it points to") end
      if st.type ~= "dir" then errors.usage("to: " .. to .. " exists and is not a directory") end
      local n = #fs.list(to)
      if n > 0 and not p.overwrite then
        errors.usage("to: " .. to .. " is not empty (" .. n .. " entries); pass overwrite=true to replace it")
      end
      return n > 0 and "full" or "empty"
    end
    state()
    local function tar_object(snap)
      for _, o in ipairs(snap.manifest.objects) do
        if o.ext:match("^tar") then return o end
      end
      error("snapshot " .. snap.id .. " has no tar object", 0)
    end
    -- Read only, before anything is written: a prefix without snapshots, or whose newest manifest is
    -- invalid, ends here with no lease taken and no directory made.
    local snap = snapshot.open(s, p.prefix, p.snapshot)
    local obj = tar_object(snap)
    local path = p.path and p.path:gsub("^%./", ""):gsub("/+$", "") or nil
    if path == "" or path == "." then path = nil end
    if path and not snap.manifest.index then
      errors.usage("path=: snapshot " .. snap.id .. " has no index (made before indexed backups, or without zstd); restore it whole")
    end
    -- An indexed snapshot is composed from the objects that hold its files (its own archive and, for
    -- unchanged files, its ancestors'), every file's sha256 checked; otherwise its one archive is read.
    local counts
    local function source()
      if not snap.manifest.index then return snap:reader(obj.name) end
      local reader
      reader, counts = require("rewind.increments").compose(snap, path)
      return reader
    end
    if p.dry_run then
      local plan = { string.format("restore snapshot %s (%s, %d bytes) into %s%s", snap.id, obj.key, obj.size, to,
        p.overwrite and ", replacing what is there in one step" or "") }
      return { dry_run = true, snapshot = snap.id, key = obj.key, size = obj.size, to = to, path = path, plan = plan }
    end
    return lock.with_target(s, p.prefix, function()
      -- Again under the lock: a prune may have removed it since.
      snap = snapshot.open(s, p.prefix, snap.id)
      obj = tar_object(snap)
      local t0 = time.monotonic()
      local base = parent(to)
      fs.mkdir(base)
      local tag = name:sub(1, 100)
      local cleaned = clean_leftovers(base, tag)
      local tmp = string.format("%s/%s%s-%d-%08x", base, LEFTOVER, tag, env.pid(), math.random(0, 0x7fffffff))
      local done = false
      task.on_exit(function()
        if not done then fs.remove(tmp, { recursive = true }) end
      end)
      local ok, res = pcall(function()
        -- Totals from the manifest (or the index, for a path): the progress has its denominator at once.
        local totals = require("rewind.increments").totals(snap, path)
        return tar.extract({ from = source(), to = tmp, symlinks = p.symlinks,
          progress = { label = "restore-dir", files = totals.files, bytes = totals.bytes } })
      end)
      if not ok then
        fs.remove(tmp, { recursive = true })
        done = true
        error("restoring snapshot " .. snap.id .. " failed; " .. to .. " was not changed: " .. tostring(res), 0)
      end
      local now = state()
      if now == "full" then
        log.info("extracted; swapping it in", { to = to, snapshot = snap.id })
        fs.swap(tmp, to)
        log.info("swapped in; removing the replaced tree", { to = to, old = tmp })
        fs.remove(tmp, { recursive = true })
      else
        -- Absent, or an empty directory (which rename replaces): one step either way.
        fs.rename(tmp, to)
      end
      done = true
      local examples = {}
      for _, l in ipairs(res.outside) do examples[#examples + 1] = l.path .. " -> " .. l.target end
      if res.symlinks_outside > 0 then
        log.warn("restored symlinks that lead outside the restored tree, as they are",
          { count = res.symlinks_outside, first = examples[1] })
      end
      return {
        snapshot = snap.id, key = obj.key, to = to, path = path, files = res.files,
        ranges_read = counts and counts.ranges or nil, stored_bytes_read = counts and counts.stored_bytes or nil, dirs = res.dirs,
        symlinks = res.symlinks, hardlinks = res.hardlinks, bytes = res.bytes, verified = true,
        replaced = now == "full", leftovers_removed = cleaned > 0 and cleaned or nil,
        symlinks_outside = res.symlinks_outside, symlinks_outside_examples = #examples > 0 and examples or nil,
        seconds = math.floor((time.monotonic() - t0) * 100) / 100,
      }
    end, { owner = "restore-dir", ttl = p.lock_ttl })
  end,
}
