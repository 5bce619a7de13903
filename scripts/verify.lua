-- verify: re-read every object of one snapshot (or all) and check size and sha256 against the manifest.
-- An invalid manifest fails verification; so does a prefix without any snapshot. An indexed snapshot
-- (incremental backup-dir) is also composed whole from every object it reads, its ancestors' included,
-- and every file's sha256 is checked.
local encryption = require("rewind.encryption")
local snapshot = require("rewind.snapshot")
local increments = require("rewind.increments")
local hash = require("rewind.hash")

return {
  description = "Verify snapshots: re-read every object and check its size and sha256, and every file of an indexed snapshot (one snapshot, or all); invalid manifests fail",
  params = encryption.params({
    prefix = { type = "string", required = true, doc = "key prefix of the snapshots (e.g. dirs/data)" },
    store = { type = "string", doc = "store URL; default: REWIND_STORE, the config file's store, else ~/.local/share/rewind/store" },
    snapshot = { type = "string", doc = "snapshot id YYYYMMDD-HHMMSS, or 'all' (default: the newest complete one)" },
  }),
  run = function(p)
    local s = encryption.open(p)
    local ids, bad = {}, {}
    if p.snapshot == "all" then
      local valid, invalid = snapshot.list(s, p.prefix)
      if #valid == 0 and #invalid == 0 then
        snapshot.open(s, p.prefix) -- raises: "no snapshots under ..." (or "no complete snapshot ...")
      end
      for _, m in ipairs(valid) do ids[#ids + 1] = m.id end
      for _, i in ipairs(invalid) do bad[#bad + 1] = i.id .. ": invalid manifest (" .. i.key .. "): " .. i.error end
    else
      ids[1] = snapshot.open(s, p.prefix, p.snapshot).id
    end
    local results = {}
    for _, id in ipairs(ids) do
      local snap = snapshot.open(s, p.prefix, id)
      local r = snap:verify()
      if r.ok and snap.manifest.index then
        local ok, err = pcall(function()
          local _, bytes = hash.sha256_reader((increments.compose(snap)))
          r.files_checked, r.tar_bytes = snap.manifest.files, bytes
        end)
        if not ok then
          r.ok = false
          r.objects[#r.objects + 1] = { name = "files", ok = false, error = tostring(err) }
        end
      end
      results[#results + 1] = r
      for _, o in ipairs(r.objects) do
        if not o.ok then bad[#bad + 1] = id .. ": " .. o.error end
      end
    end
    if #bad > 0 then
      error(#bad .. " problem(s) found:\n  " .. table.concat(bad, "\n  "), 0)
    end
    return { ok = true, verified = #results, snapshots = results }
  end,
}
