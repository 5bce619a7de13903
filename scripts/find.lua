-- find: files whose name matches a glob, in every snapshot of a prefix (or one), from their indexes.
local encryption = require("rewind.encryption")
local snapshot = require("rewind.snapshot")
local json = require("rewind.json")
local files = require("rewind.snapshot_files")

return {
  description = "Find files by name (a glob such as *.csv) in the snapshots of a prefix: snapshot, path, size, mtime; reads only their indexes",
  params = encryption.params({
    prefix = { type = "string", required = true, doc = "key prefix of the snapshots (e.g. dirs/data)" },
    name = { type = "string", required = true, doc = "glob on the file name (*.csv), or on the whole path when it contains '/' (reports/**/q?.csv)" },
    store = { type = "string", doc = "store URL; default: REWIND_STORE, the config file's store, else ~/.local/share/rewind/store" },
    snapshot = { type = "string", doc = "search only this snapshot id (default: every indexed snapshot)" },
  }),
  run = function(p)
    local s = encryption.open(p)
    local glob = p.name:find("/", 1, true) and p.name or ("**/" .. p.name)
    local ids = {}
    if p.snapshot then
      ids[1] = p.snapshot
    else
      for _, m in ipairs(snapshot.list(s, p.prefix)) do
        if m.index then ids[#ids + 1] = m.id end
      end
    end
    local found = {}
    for _, id in ipairs(ids) do
      local snap, entries = files.entries(s, p.prefix, id, { glob = glob })
      for _, e in ipairs(entries) do
        print(snap.id .. "  " .. files.line(e))
        found[#found + 1] = { snapshot = snap.id, path = e.path, type = e.type, size = e.size, mtime = e.mtime, sha256 = e.sha256 }
      end
    end
    return { snapshots = #ids, matches = #found, found = json.array(found) }
  end,
}
