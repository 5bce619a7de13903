-- rewind.snapshot_files: the files of indexed snapshots (incremental backup-dir), for ls, diff and find.
-- An index lists every entry of a snapshot (dirs, files, symlinks) with size, mode, mtime and, for files,
-- sha256; reading it reads neither the archive nor the ancestors' archives.
local snapshot = require("rewind.snapshot")
local tar = require("rewind.tar")
local time = require("rewind.time")
local errors = require("rewind.errors")

local M = {}

--- The entries of snapshot `id` (the newest when nil) under `prefix`, filtered by `opts.path` (that entry
--- and what lies under it) and `opts.glob` (on the whole path); returns the opened snapshot and the entries.
--- A snapshot without an index is a usage error naming it.
function M.entries(store, prefix, id, opts)
  opts = opts or {}
  local snap = snapshot.open(store, prefix, id)
  if not snap.manifest.index then
    errors.usage("snapshot " .. snap.id .. " under " .. prefix .. " has no index of its files (made before indexed backups, or without zstd)")
  end
  local entries = tar.index{ index = snap:reader(snap.manifest.index), path = opts.path, glob = opts.glob }
  return snap, entries
end

--- `ls -l`-like text of one entry: type and mode, size, mtime (UTC), path (-> target for symlinks).
function M.line(e)
  local kind = ({ dir = "d", symlink = "l" })[e.type] or "-"
  return string.format("%s%04o %12d  %s  %s%s", kind, (e.mode or 0) % 4096, e.size or 0,
    time.format(e.mtime or 0, "%Y-%m-%d %H:%M:%S"), e.path, e.link and (" -> " .. e.link) or "")
end

--- What differs between two entries of one path ("type", "content", "mode", "target"), or nil.
function M.change(a, b)
  if a.type ~= b.type then return "type" end
  if a.type == "file" and (a.size ~= b.size or a.sha256 ~= b.sha256) then return "content" end
  if a.type == "symlink" and a.link ~= b.link then return "target" end
  if (a.mode or 0) ~= (b.mode or 0) then return "mode" end
  return nil
end

--- Added, removed and changed paths from entries `a` to entries `b` (each sorted by path).
function M.diff(a, b)
  local by_path = {}
  for _, e in ipairs(a) do by_path[e.path] = e end
  local added, removed, changed = {}, {}, {}
  for _, e in ipairs(b) do
    local old = by_path[e.path]
    if not old then
      added[#added + 1] = e.path
    else
      local why = M.change(old, e)
      if why then changed[#changed + 1] = { path = e.path, what = why } end
      by_path[e.path] = nil
    end
  end
  for _, e in ipairs(a) do
    if by_path[e.path] then removed[#removed + 1] = e.path end
  end
  table.sort(added)
  table.sort(removed)
  table.sort(changed, function(x, y) return x.path < y.path end)
  return added, removed, changed
end

return M
