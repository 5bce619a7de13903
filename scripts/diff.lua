-- diff: what changed between two snapshots of a prefix (added, removed, changed paths), from their indexes.
local encryption = require("rewind.encryption")
local json = require("rewind.json")
local files = require("rewind.snapshot_files")

return {
  description = "Compare two snapshots of a prefix: paths added, removed and changed (content, mode, type, link target); reads only their indexes",
  params = encryption.params({
    prefix = { type = "string", required = true, doc = "key prefix of the snapshots (e.g. dirs/data)" },
    store = { type = "string", doc = "store URL; default: REWIND_STORE, the config file's store, else ~/.local/share/rewind/store" },
    a = { type = "string", required = true, doc = "the older snapshot id YYYYMMDD-HHMMSS" },
    b = { type = "string", doc = "the newer snapshot id (default: the newest complete one)" },
    path = { type = "string", doc = "compare only this file or directory and what lies under it" },
  }),
  run = function(p)
    local s = encryption.open(p)
    local sa, ea = files.entries(s, p.prefix, p.a, { path = p.path })
    local sb, eb = files.entries(s, p.prefix, p.b, { path = p.path })
    local added, removed, changed = files.diff(ea, eb)
    for _, x in ipairs(added) do print("+ " .. x) end
    for _, x in ipairs(removed) do print("- " .. x) end
    for _, c in ipairs(changed) do print("M " .. c.path .. "  (" .. c.what .. ")") end
    return { a = sa.id, b = sb.id, added = json.array(added), removed = json.array(removed),
      changed = json.array(changed), counts = { added = #added, removed = #removed, changed = #changed } }
  end,
}
