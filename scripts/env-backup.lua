-- env-backup: one snapshot of a whole application environment (source document 003): the
-- configuration directory, the deployment's git commit and image tags, MySQL/MariaDB databases,
-- Elasticsearch and Firebase, each part optional, configured in one YAML params file. The prefix's
-- lease refuses a second backup or a restore while this runs (naming the holder, its host and since
-- when) before anything changes; the environment is under maintenance for the work and always taken
-- out again (success, failure, Ctrl-C, SIGTERM). The manifest is written last.
local store = require("rewind.store")
local lock = require("rewind.lock")
local params = require("rewind.env_params")
local maintenance = require("rewind.maintenance")
local envsnap = require("rewind.env_snapshot")
local errors = require("rewind.errors")
local prune = require("rewind.prune")

local declared = params.declare()
declared.tags = { type = "list", doc = "tags recorded in the manifest (e.g. nightly)" }
declared.keep_within = { type = "duration",
  doc = "after the backup, prune snapshots older than this (e.g. 60d); safety snapshots are kept (prune tags=safety)" }

return {
  description = "Back up a whole environment (config dir, git version, images, MySQL, Elasticsearch, Firebase) as one snapshot, under maintenance",
  params = declared,
  run = function(p, ctx)
    local parts = params.parts(p)
    local names = params.names(parts)
    if #names == 0 then
      errors.usage("nothing to back up: configure at least one of config.dir, git.dir, images.*, mysql.databases, elasticsearch.url, firebase.url")
    end
    local switch = params.maintenance(p)
    if p.dry_run then
      local plan = { "parts: " .. table.concat(names, ", ") }
      if switch then plan[#plan + 1] = "maintenance on for the backup, off afterwards" end
      if p.keep_within then plan[#plan + 1] = "then prune snapshots older than keep_within (safety snapshots kept)" end
      plan[#plan + 1] = "snapshot under " .. p.prefix .. ", manifest written last"
      for _, l in ipairs(plan) do print(l) end
      return { dry_run = true, parts = names, plan = plan }
    end
    local st = store.open(p.store)
    return lock.with_target(st, p.prefix, function(l)
      local seconds, m = maintenance.during(switch, function()
        return envsnap.take(st, parts, { prefix = p.prefix, target = p.target, tags = p.tags or {},
          params = ctx.public_params, level = p.level, workers = p.workers, quiesced = switch ~= nil })
      end)
      local objects = {}
      for _, o in ipairs(m.objects) do objects[#objects + 1] = { name = o.name, size = o.size } end
      local dirty = m.env.deployment and m.env.deployment.git and m.env.deployment.git.dirty or nil
      local pruned
      if p.keep_within then
        local r = prune.run(st, l, { prefix = p.prefix, keep_within = p.keep_within, tags = { "safety" } })
        pruned = { kept = r.kept, removed = r.removed }
      end
      return { snapshot = m.id, prefix = p.prefix, parts = names, objects = objects,
        maintenance_seconds = switch and seconds or nil, dirty_checkout = dirty, pruned = pruned }
    end, { ttl = p.lock_ttl, owner = "env-backup" })
  end,
}
