-- unlock: shows who holds a snapshot prefix's lease (<prefix>/locks/target.json), and removes it only
-- with force=true. A lease whose holder died is taken over by the next job on its own (at once when the
-- holder ran on the same host, else once it expires); force is for a holder known to be gone that the
-- next job cannot tell is gone (another host, a lease far from expiry). A holder that still runs loses
-- its lease and stops at its next renewal.
local store = require("rewind.store")
local lock = require("rewind.lock")
local errors = require("rewind.errors")
local log = require("rewind.log")

local SHOWN = { "owner", "host", "pid", "acquired_at", "renewed_at", "expires_at", "expired", "process" }

return {
  description = "Show the holder of a snapshot prefix's lease; remove the lease with force=true",
  params = {
    prefix = { type = "string", required = true, doc = "snapshot prefix whose lease to show (e.g. dirs/data, druid)" },
    store = { type = "string", doc = "store URL (default: REWIND_STORE, the config file's store, else the local store)" },
    force = { type = "boolean", default = false, doc = "remove the lease; a holder that still runs stops at its next renewal (it lost its lease)" },
  },
  run = function(p)
    local prefix = (p.prefix:gsub("^/+", ""):gsub("/+$", ""))
    if prefix == "" then errors.usage("unlock: prefix must not be empty") end
    local s = store.open(p.store)
    local key = prefix .. "/locks/target.json"
    local info = lock.inspect(s, "target", { prefix = prefix })
    if not info then
      return { prefix = prefix, key = key, held = false, removed = false, note = "no lease: nothing holds " .. prefix }
    end
    local holder = {}
    for _, k in ipairs(SHOWN) do holder[k] = info[k] end
    if info.garbage then holder.owner = "(not a lease record)" end
    local res = { prefix = prefix, key = key, held = true, holder = holder, removed = false }
    if not p.force then
      res.note = string.format("kept: %s is held by %s on %s (pid %s), lease expires %s%s; use force=true to remove it",
        prefix, tostring(holder.owner), tostring(holder.host), tostring(holder.pid), tostring(holder.expires_at),
        info.process == "running" and " (that process is running)" or "")
      return res
    end
    local removed = lock.remove(s, "target", { prefix = prefix })
    res.removed = removed ~= nil
    res.note = res.removed and ("removed the lease of " .. prefix) or ("the lease of " .. prefix .. " was already gone")
    log.warn(res.note, { key = key, holder = tostring(holder.owner) .. " on " .. tostring(holder.host) .. " (pid " .. tostring(holder.pid) .. ")" })
    return res
  end,
}
