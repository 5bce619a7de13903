-- prune: apply a retention policy (restic `forget` semantics, see stdlib/rewind/retention.lua) to the
-- snapshots under a prefix. Runs under the prefix's lock, so it never races a backup or a restore.
-- Deletes each removed snapshot's manifest FIRST, then its objects: a prune cut off half way leaves
-- objects without a manifest (an incomplete snapshot, removed by a later prune), never a manifest that
-- points at missing objects. It deletes only keys in a snapshot's own <prefix>/<YYYYMMDD>/ directory: a
-- manifest that is invalid (not JSON, not a rewind manifest, or naming anything else, see
-- snapshot.check) is reported and kept, and nothing it names is deleted.
local encryption = require("rewind.encryption")
local store = require("rewind.store")
local lock = require("rewind.lock")
local retention = require("rewind.retention")
local errors = require("rewind.errors")
local prune = require("rewind.prune")

local function count_param(name, doc)
  return { type = "integer", default = 0, doc = doc .. " (0: rule off, -1: unlimited)" }
end

return {
  description = "Delete old snapshots by a retention policy (keep-last/hourly/daily/weekly/monthly/yearly/within, tags)",
  params = encryption.params({
    store = { type = "string", doc = "store URL (default: REWIND_STORE, the config file's store, else the local store)" },
    prefix = { type = "string", required = true, doc = "snapshot prefix to prune (e.g. druid)" },
    keep_last = count_param("keep_last", "keep the N newest snapshots of each group"),
    keep_hourly = count_param("keep_hourly", "keep the newest snapshot of each of the last N hours that have one"),
    keep_daily = count_param("keep_daily", "keep the newest snapshot of each of the last N days that have one"),
    keep_weekly = count_param("keep_weekly", "keep the newest snapshot of each of the last N ISO weeks that have one"),
    keep_monthly = count_param("keep_monthly", "keep the newest snapshot of each of the last N months that have one"),
    keep_yearly = count_param("keep_yearly", "keep the newest snapshot of each of the last N years that have one"),
    keep_within = { type = "duration", doc = "keep every snapshot within this duration of the group's newest (e.g. 60d)" },
    tags = { type = "list", doc = "snapshots carrying any of these tags are kept forever (e.g. safety)" },
    timezone = { type = "string", default = "UTC", doc = "IANA timezone for hour/day/week/month/year buckets" },
    grace = { type = "duration", default = "6h", doc = "incomplete snapshots are removed only when older than this" },
    dry_run = { type = "boolean", default = false, doc = "print what would be kept and removed, delete nothing" },
    concurrency = { type = "integer", default = 128, doc = "manifests read at once (reads overlap the listing)" },
    delete_concurrency = { type = "integer", default = 4, doc = "delete requests (of `batch` keys each) in flight at once" },
    cache = { type = "boolean", default = true, doc = "cache manifests locally (~/.cache/rewind/manifests; they never change)" },
    batch = { type = "integer", default = 1000, doc = "keys per delete request (1..1000; S3's DeleteObjects takes at most 1000)" },
    lock_ttl = { type = "duration", default = "2m", doc = "lease length of the prefix's lock (renewed while running; a lost lease stops the prune before its next delete)" },
  }),
  run = function(p)
    local policy = prune.policy(p)
    if p.batch < 1 or p.batch > 1000 then errors.usage("prune: batch must be between 1 and 1000, got " .. p.batch) end
    if p.delete_concurrency < 1 then errors.usage("prune: delete_concurrency must be at least 1, got " .. p.delete_concurrency) end
    if not retention.has_rules(policy) then
      errors.usage("prune: no retention policy given (set keep_last, keep_daily, keep_within, tags, ...); refusing to remove everything")
    end
    local st = encryption.open(p)
    -- Decrypted manifests are not cached in clear on local disk.
    if encryption.active(p) then p.cache = false end
    return lock.with_target(st, p.prefix, function(l) return prune.run(st, l, p) end,
      { ttl = p.lock_ttl, owner = "prune" })
  end,
}
