-- rewind.increments: incremental, indexed archives inside snapshots (backup-dir, druid-backup's deep
-- storage). The snapshot's manifest names the archive's index (`index`), the snapshot it builds on
-- (`parent`), how many in a row build on their parent (`chain`, 0 for a full copy) and the ancestors'
-- archives it reads (`references`, prefix-relative); prune keeps what kept snapshots reference.
local snapshot = require("rewind.snapshot")
local log = require("rewind.log")
local json = require("rewind.json")
local tar = require("rewind.tar")

local M = {}

--- The snapshot to build on: the newest under `prefix` when it has an index and its chain is shorter
--- than `opts.max_chain`; nil for a full copy (`opts.full`, none yet, or one without an index).
function M.parent(store, prefix, opts)
  if opts.full then return nil end
  local m, why = snapshot.newest_manifest(store, prefix)
  if why then
    log.warn("the newest snapshot's manifest is invalid; making a full copy", { prefix = prefix, error = why })
    return nil
  end
  if not m or not m.index then return nil end
  if (m.chain or 0) + 1 >= (opts.max_chain or 30) then
    log.info(string.format("%s: a full copy (the chain reached max_chain=%d)", prefix, opts.max_chain or 30))
    return nil
  end
  return m
end

--- The tar.create options that make the archive `name`.`ext` of `snap` indexed, built on `parent`'s.
function M.tar_options(store, snap, name, ext, parent)
  return {
    index = snap:writer(name .. "-index", "jsonl.zst"),
    object = snap.day .. "/" .. name .. "_" .. snap.hms .. "." .. ext,
    parent = parent and snapshot.open(store, snap.prefix, parent.id):reader(parent.index) or nil,
  }
end

--- The manifest fields of an indexed archive `name` that tar.create reported as `res`.
function M.manifest_fields(name, parent, res)
  return {
    index = name .. "-index",
    parent = parent and parent.id or nil,
    chain = parent and ((parent.chain or 0) + 1) or 0,
    references = json.array(res.referenced or {}),
    files_new = res.files_new, files_unchanged = res.files_unchanged,
    bytes_new = res.bytes_new, bytes_unchanged = res.bytes_unchanged,
  }
end

--- A reader of the tar stream of an opened snapshot's indexed archive (composed from every archive it
--- reads, each file's sha256 checked), limited to `path` when given; second, its live counts.
function M.compose(opened, path)
  return tar.compose{ store = opened.store, base = opened.prefix,
    index = opened:reader(opened.manifest.index), path = path }
end

--- The files and bytes a restore of an opened snapshot's archive writes (of `path` alone when given), for
--- its progress: from the manifest, or for a path from the index (counted as it streams); nil if unknown.
function M.totals(opened, path)
  local m = opened.manifest
  if path and m.index then
    local s = tar.index({ index = opened:reader(m.index), path = path, summary = true })
    return { files = s.files, bytes = s.bytes }
  end
  if m.index and m.files_new then
    return { files = m.files_new + (m.files_unchanged or 0), bytes = (m.bytes_new or 0) + (m.bytes_unchanged or 0) }
  end
  return { files = m.files, bytes = m.bytes_in }
end

return M
