-- Bench helper: writes N complete snapshots (one small object + a manifest each, one per hour) under a
-- prefix, straight through rewind.store, so `prune` has something to decide over.
local store = require("rewind.store")
local json = require("rewind.json")
local task = require("rewind.task")
local time = require("rewind.time")

return {
  description = "bench helper: seed N fake druid-backup snapshots for prune",
  params = {
    store = { type = "string", doc = "store URL" },
    prefix = { type = "string", default = "bench", doc = "prefix" },
    n = { type = "integer", default = 10000, doc = "number of snapshots" },
    concurrency = { type = "integer", default = 32, doc = "parallel puts" },
  },
  run = function(p)
    local st = store.open(p.store)
    local base = time.parse("2025-01-01T00:00:00Z")
    local items = {}
    for i = 1, p.n do items[i] = i end
    task.map(items, p.concurrency, function(i)
      local t = base + (i - 1) * 3600
      local day, hms = time.format(t, "%Y%m%d"), time.format(t, "%H%M%S")
      local key = string.format("%s/%s/druid_shared_%s.tar.zst", p.prefix, day, hms)
      st:put(key, "x")
      local m = { format = "rewind.snapshot/1", id = day .. "-" .. hms, prefix = p.prefix, procedure = "druid-backup",
        target = "druid", host = "bench", started_at = time.format(t), finished_at = time.format(t),
        params = {}, tags = json.array(), rewind_version = "bench",
        objects = { { name = "druid_shared", key = key, size = 1, sha256 = "", ext = "tar.zst" } } }
      st:put(string.format("%s/%s/manifest_%s.json", p.prefix, day, hms), json.encode(m))
    end)
    return { seeded = p.n }
  end,
}
