-- snapshots: list the snapshots under a prefix (complete ones, and incomplete ones flagged).
local store = require("rewind.store")
local snapshot = require("rewind.snapshot")

return {
  description = "List snapshots under a prefix: id, time, size, objects; incomplete ones (no manifest) are flagged",
  params = {
    prefix = { type = "string", required = true, doc = "key prefix of the snapshots (e.g. dirs/data)" },
    store = { type = "string", doc = "store URL; default: REWIND_STORE or ~/.local/share/rewind/store" },
  },
  run = function(p)
    local s = store.open(p.store)
    local out = {}
    for _, m in ipairs(snapshot.list(s, p.prefix)) do
      local size = 0
      for _, o in ipairs(m.objects or {}) do size = size + (o.size or 0) end
      out[#out + 1] = { id = m.id, started_at = m.started_at, finished_at = m.finished_at, size = size,
        objects = #(m.objects or {}), procedure = m.procedure, complete = true, tags = m.tags }
    end
    for _, inc in ipairs(snapshot.incomplete(s, p.prefix)) do
      out[#out + 1] = { id = inc.id, started_at = inc.started_at, objects = #inc.keys, complete = false,
        note = "incomplete: no manifest (restore refuses it)" }
    end
    table.sort(out, function(a, b) return a.id < b.id end)
    return { store = s.url, prefix = p.prefix, snapshots = out }
  end,
}
