-- snapshots: list the snapshots under a prefix: valid ones, incomplete ones (objects, no manifest) and
-- those whose manifest is invalid (not JSON, not a rewind manifest, or lying about itself), each flagged.
local encryption = require("rewind.encryption")
local snapshot = require("rewind.snapshot")
local json = require("rewind.json")

return {
  description = "List snapshots under a prefix: id, time, size, objects; incomplete ones (no manifest) and invalid manifests are flagged; snapshot=ID shows one manifest",
  params = encryption.params({
    prefix = { type = "string", required = true, doc = "key prefix of the snapshots (e.g. dirs/data)" },
    store = { type = "string", doc = "store URL; default: REWIND_STORE, the config file's store, else ~/.local/share/rewind/store" },
    snapshot = { type = "string", doc = "one snapshot id: return its manifest instead of the list" },
  }),
  run = function(p)
    local s = encryption.open(p)
    if p.snapshot then
      local opened = snapshot.open(s, p.prefix, p.snapshot)
      return { store = s.url, prefix = p.prefix, id = opened.id, manifest = opened.manifest }
    end
    local out = {}
    local valid, invalid = snapshot.list(s, p.prefix)
    for _, m in ipairs(valid) do
      local size = 0
      for _, o in ipairs(m.objects) do size = size + o.size end
      out[#out + 1] = { id = m.id, started_at = m.started_at, finished_at = m.finished_at, size = size,
        objects = #m.objects, procedure = m.procedure, target = m.target, complete = true, tags = m.tags,
        moved_from = m.moved_from,
        note = m.moved_from and ("written under " .. m.moved_from .. "; read here") or nil }
    end
    for _, bad in ipairs(invalid) do
      out[#out + 1] = { id = bad.id, key = bad.key, complete = false, invalid = true, error = bad.error,
        note = "invalid manifest: " .. bad.error .. " (restore and verify refuse it; prune keeps it and deletes nothing it names)" }
    end
    for _, inc in ipairs(snapshot.incomplete(s, p.prefix)) do
      out[#out + 1] = { id = inc.id, started_at = inc.started_at, objects = #inc.keys, complete = false,
        note = "incomplete: no manifest (restore refuses it)" }
    end
    table.sort(out, function(a, b) return a.id < b.id end)
    return { store = s.url, prefix = p.prefix, snapshots = json.array(out) }
  end,
}
