-- verify: re-read every object of one snapshot (or all) and check size and sha256 against the manifest.
local store = require("rewind.store")
local snapshot = require("rewind.snapshot")

return {
  description = "Verify snapshots: re-read every object and check its size and sha256 (one snapshot, or all)",
  params = {
    prefix = { type = "string", required = true, doc = "key prefix of the snapshots (e.g. dirs/data)" },
    store = { type = "string", doc = "store URL; default: REWIND_STORE or ~/.local/share/rewind/store" },
    snapshot = { type = "string", doc = "snapshot id YYYYMMDD-HHMMSS, or 'all' (default: the newest complete one)" },
  },
  run = function(p)
    local s = store.open(p.store)
    local ids = {}
    if p.snapshot == "all" then
      for _, m in ipairs(snapshot.list(s, p.prefix)) do ids[#ids + 1] = m.id end
    else
      ids[1] = snapshot.open(s, p.prefix, p.snapshot).id
    end
    local results, bad = {}, {}
    for _, id in ipairs(ids) do
      local r = snapshot.open(s, p.prefix, id):verify()
      results[#results + 1] = r
      for _, o in ipairs(r.objects) do
        if not o.ok then bad[#bad + 1] = id .. ": " .. o.error end
      end
    end
    if #bad > 0 then
      error(#bad .. " object(s) failed verification:\n  " .. table.concat(bad, "\n  "), 0)
    end
    return { ok = true, verified = #results, snapshots = results }
  end,
}
