-- env-restore: put an environment back from an env-backup snapshot (source document 003). Refused
-- while another backup or restore runs. Verifies the whole snapshot first; puts the environment under
-- maintenance; takes a safety snapshot of what is there now (tag safety; skipped only with
-- safety_backup=false force=true); then destroys and restores each part (databases dropped and
-- recreated, the config directory swapped atomically, Elasticsearch indices closed and restored, the
-- Firebase node replaced, the checkout moved when checkout=true, images printed or handed to
-- deploy_command), checks each against the manifest, and takes the environment out of maintenance.
local store = require("rewind.store")
local snapshot = require("rewind.snapshot")
local lock = require("rewind.lock")
local params = require("rewind.env_params")
local maintenance = require("rewind.maintenance")
local envsnap = require("rewind.env_snapshot")
local errors = require("rewind.errors")
local log = require("rewind.log")

local declared = params.declare()
declared.snapshot = { type = "string", doc = "snapshot id YYYYMMDD-HHMMSS (default: the newest complete one that is not a safety snapshot)" }
declared.parts = { type = "list", doc = "restore only these parts: config, deployment, mysql, elasticsearch, firebase (default: all in the snapshot)" }
declared.safety_backup = { type = "boolean", default = true, doc = "snapshot the current environment (tag safety) before destroying it; false needs force=true" }
declared.force = { type = "boolean", default = false, doc = "allow safety_backup=false, and a checkout over uncommitted changes" }
declared.checkout = { type = "boolean", default = false, doc = "move the git checkout (git.dir) to the recorded commit" }
declared.deploy_command = { type = "string", doc = "shell command run after the restore with REWIND_IMAGES and REWIND_GIT_COMMIT set" }

return {
  description = "Restore an environment from an env-backup snapshot: verify, maintenance, safety snapshot, destroy and restore each part, check",
  params = declared,
  run = function(p, ctx)
    if p.safety_backup == false and not p.force then
      errors.usage("safety_backup=false needs force=true: a restore without a safety snapshot cannot be undone")
    end
    local parts = params.parts(p)
    local switch = params.maintenance(p)
    local st = store.open(p.store)
    return lock.with_target(st, p.prefix, function()
      local id = p.snapshot or envsnap.newest(st, p.prefix)
      local s = snapshot.open(st, p.prefix, id)
      if not s.manifest.env then errors.usage("snapshot " .. s.id .. " under " .. p.prefix .. " is not an env-backup snapshot") end
      local selected = envsnap.select(s.manifest, parts, p.parts)
      local opts = { checkout = p.checkout, deploy_command = p.deploy_command, force = p.force }
      local plan = envsnap.plan(s.manifest, selected, opts)
      table.insert(plan, 1, "restore snapshot " .. s.id .. " (" .. tostring(s.manifest.started_at) .. ") from " .. p.prefix)
      table.insert(plan, 2, "verify every object (size + sha256) before changing anything")
      if switch then table.insert(plan, 3, "maintenance on until the restore ends") end
      table.insert(plan, switch and 4 or 3, p.safety_backup and "safety snapshot of the current environment (tag safety)"
        or "NO safety snapshot (safety_backup=false force=true)")
      if p.dry_run then
        for _, l in ipairs(plan) do print(l) end
        return { dry_run = true, snapshot = s.id, plan = plan }
      end
      s:verify_or_fail()
      local safety, restored
      local seconds = maintenance.during(switch, function()
        if p.safety_backup then
          local m = envsnap.take(st, envsnap.safety_parts(selected), { prefix = p.prefix, target = p.target,
            tags = { "safety" }, params = ctx.public_params, level = p.level, workers = p.workers,
            procedure = "env-restore", quiesced = switch ~= nil })
          safety = m.id
          log.info("safety snapshot taken", { snapshot = safety })
        end
        opts.safety = safety
        restored = envsnap.restore(s, selected, opts)
      end)
      return { snapshot = s.id, safety_snapshot = safety, restored = restored,
        maintenance_seconds = switch and seconds or nil }
    end, { ttl = p.lock_ttl, owner = "env-restore" })
  end,
}
