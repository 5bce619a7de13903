-- ls: the files of one snapshot (incremental backup-dir's index), optionally under one path.
local encryption = require("rewind.encryption")
local files = require("rewind.snapshot_files")

return {
  description = "List the files of a snapshot (type, mode, size, mtime, path), or those under path=; reads only its index",
  params = encryption.params({
    prefix = { type = "string", required = true, doc = "key prefix of the snapshots (e.g. dirs/data)" },
    store = { type = "string", doc = "store URL; default: REWIND_STORE, the config file's store, else ~/.local/share/rewind/store" },
    snapshot = { type = "string", doc = "snapshot id YYYYMMDD-HHMMSS (default: the newest complete one)" },
    path = { type = "string", doc = "only this file or directory and what lies under it" },
  }),
  run = function(p)
    local s = encryption.open(p)
    local snap, entries = files.entries(s, p.prefix, p.snapshot, { path = p.path })
    local count, bytes = { file = 0, dir = 0, symlink = 0 }, 0
    for _, e in ipairs(entries) do
      print(files.line(e))
      count[e.type] = (count[e.type] or 0) + 1
      bytes = bytes + (e.size or 0)
    end
    return { snapshot = snap.id, prefix = snap.prefix, path = p.path, files = count.file, dirs = count.dir,
      symlinks = count.symlink, bytes = bytes }
  end,
}
