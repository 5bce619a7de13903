-- restore-dir: a snapshot made by backup-dir → a directory. Verifies size and sha256 while streaming;
-- extracts into a temporary directory beside the target and moves it in only when everything checked out.
-- Holds the prefix's lock (lock.target) while it reads, so no prune or backup of the prefix runs meanwhile.
local store = require("rewind.store")
local snapshot = require("rewind.snapshot")
local tar = require("rewind.tar")
local fs = require("rewind.fs")
local task = require("rewind.task")
local time = require("rewind.time")
local errors = require("rewind.errors")
local lock = require("rewind.lock")

local function parent(path)
  path = path:gsub("/+$", "")
  local dir = path:match("^(.*)/[^/]*$")
  if dir == nil then return "." end
  if dir == "" then return "/" end
  return dir
end

local function basename(path)
  return (path:gsub("/+$", "")):match("([^/]+)$")
end

return {
  description = "Restore a directory snapshot (default: the newest complete one) into a directory",
  params = {
    to = { type = "string", required = true, doc = "directory to restore into (must be empty or absent unless overwrite=true)" },
    prefix = { type = "string", required = true, doc = "key prefix of the snapshots (backup-dir's prefix, e.g. dirs/data)" },
    store = { type = "string", doc = "store URL; default: REWIND_STORE or ~/.local/share/rewind/store" },
    snapshot = { type = "string", doc = "snapshot id YYYYMMDD-HHMMSS (default: the newest complete one)" },
    overwrite = { type = "boolean", default = false, doc = "restore into a non-empty directory, replacing entries of the same name" },
    dry_run = { type = "boolean", default = false, doc = "only show what would be restored" },
    lock_ttl = { type = "duration", default = "2m", doc = "lease length of the prefix's lock (renewed while running; a backup or prune of the prefix started meanwhile is refused)" },
  },
  run = function(p)
    local s = store.open(p.store)
    local st = fs.stat(p.to)
    local existing = {}
    if st then
      if st.type ~= "dir" then errors.usage("to: " .. p.to .. " exists and is not a directory") end
      existing = fs.list(p.to)
      if #existing > 0 and not p.overwrite then
        errors.usage("to: " .. p.to .. " is not empty (" .. #existing .. " entries); pass overwrite=true to restore into it")
      end
    end
    local function tar_object(snap)
      for _, o in ipairs(snap.manifest.objects) do
        if o.ext:match("^tar") then return o end
      end
      error("snapshot " .. snap.id .. " has no tar object", 0)
    end
    if p.dry_run then
      local snap = snapshot.open(s, p.prefix, p.snapshot)
      local obj = tar_object(snap)
      return { dry_run = true, snapshot = snap.id, key = obj.key, size = obj.size, to = p.to }
    end
    -- Under the prefix's lock: a prune or backup on the same prefix waits its turn instead of deleting or
    -- adding snapshots while this one is read.
    return lock.with_target(s, p.prefix, function()
      local snap = snapshot.open(s, p.prefix, p.snapshot)
      local obj = tar_object(snap)
      local t0 = time.monotonic()
      local base = parent(p.to)
      fs.mkdir(base)
      local tmp = base .. "/.rewind-restore-" .. (basename(p.to) or "dir") .. "-" .. snap.id .. "-" .. math.random(1, 1e9)
      local done = false
      task.on_exit(function()
        if not done then fs.remove(tmp, { recursive = true }) end
      end)
      local ok, res = pcall(tar.extract, { from = snap:reader(obj.name), to = tmp })
      if not ok then
        fs.remove(tmp, { recursive = true })
        done = true
        error("restoring snapshot " .. snap.id .. " failed; " .. p.to .. " was not changed: " .. tostring(res), 0)
      end
      if not st or #existing == 0 then
        if st then fs.remove(p.to) end
        fs.rename(tmp, p.to)
      else
        for _, e in ipairs(fs.list(tmp)) do
          local dest = p.to .. "/" .. e.name
          if fs.exists(dest) then fs.remove(dest, { recursive = true }) end
          fs.rename(e.path, dest)
        end
        fs.remove(tmp, { recursive = true })
      end
      done = true
      return {
        snapshot = snap.id, key = obj.key, to = p.to, files = res.files, dirs = res.dirs,
        symlinks = res.symlinks, bytes = res.bytes, verified = true,
        seconds = math.floor((time.monotonic() - t0) * 100) / 100,
      }
    end, { owner = "restore-dir", ttl = p.lock_ttl })
  end,
}
