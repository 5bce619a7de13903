-- backup-dir: one or more directories → one tar.zst object per snapshot in a store, under a lock.
local store = require("rewind.store")
local snapshot = require("rewind.snapshot")
local lock = require("rewind.lock")
local tar = require("rewind.tar")
local fs = require("rewind.fs")
local env = require("rewind.env")
local time = require("rewind.time")
local errors = require("rewind.errors")

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

return {
  description = "Back up directories to a store as a snapshot (one streaming tar + zstd object, manifest last)",
  params = {
    from = { type = "list", required = true, doc = "directories to back up (comma-separated)" },
    store = { type = "string", doc = "store URL (file:///path, s3://bucket/prefix, az://container/prefix); default: REWIND_STORE or ~/.local/share/rewind/store" },
    prefix = { type = "string", doc = "key prefix of the snapshots (default dirs/<name of the first directory>)" },
    compression = { type = "string", default = "zstd", choices = { "zstd", "gzip", "none" }, doc = "archive compression" },
    level = { type = "integer", doc = "compression level (zstd default 1, gzip default 6)" },
    exclude = { type = "list", doc = "globs of paths to leave out, relative to each directory (e.g. *.log,cache)" },
    tags = { type = "list", doc = "key=value tags recorded in the manifest (comma-separated)" },
    lock_ttl = { type = "duration", default = "2m", doc = "lease length of the target's lock (renewed while running)" },
    dry_run = { type = "boolean", default = false, doc = "only show what would be written" },
  },
  run = function(p, ctx)
    for _, dir in ipairs(p.from) do
      local st = fs.stat(dir)
      if not st then errors.usage("from: " .. dir .. " does not exist") end
      if st.type ~= "dir" then errors.usage("from: " .. dir .. " is not a directory") end
    end
    local name = basename(p.from[1])
    local prefix = p.prefix or ("dirs/" .. name)
    local tags = {}
    for _, kv in ipairs(p.tags or {}) do
      local k, v = kv:match("^([^=]+)=(.*)$")
      if not k then errors.usage("tags: expected key=value, got '" .. kv .. "'") end
      tags[k] = v
    end
    local s = store.open(p.store)
    local ext = EXT[p.compression]
    if p.dry_run then
      return { dry_run = true, store = s.url, prefix = prefix, from = p.from,
        would_write = prefix .. "/<YYYYMMDD>/" .. name .. "_<HHMMSS>." .. ext .. " and its manifest" }
    end
    local t0 = time.monotonic()
    local l = lock.target(s, prefix, { owner = "backup-dir", ttl = p.lock_ttl })
    local snap = snapshot.begin(s, {
      prefix = prefix, procedure = "backup-dir", target = table.concat(p.from, ","),
      params = ctx.public_params, tags = tags,
    })
    local flat = #p.from == 1
    local ok, res = pcall(function()
      return tar.create{
        from = p.from, to = snap:writer(name, ext), compression = p.compression, level = p.level,
        exclude = p.exclude, flat = flat,
      }
    end)
    if not ok then
      snap:abort()
      l:release()
      error(res, 0)
    end
    local m = snap:commit({
      layout = flat and "contents" or "named",
      files = res.files, dirs = res.dirs, symlinks = res.symlinks, bytes_in = res.bytes_in,
    })
    l:release()
    local secs = time.monotonic() - t0
    return {
      snapshot = m.id, store = s.url, prefix = prefix, key = m.objects[1].key,
      files = res.files, dirs = res.dirs, symlinks = res.symlinks, skipped = res.skipped,
      bytes_in = res.bytes_in, bytes_out = res.bytes_out,
      ratio = res.bytes_out > 0 and math.floor(res.bytes_in / res.bytes_out * 100) / 100 or nil,
      seconds = math.floor(secs * 100) / 100,
    }
  end,
}
