-- rewind.env_snapshot: one snapshot of a whole environment (source document 003), and its restore.
-- The callers (env-backup, env-restore) hold the prefix's lease and the maintenance window; this
-- module takes the parts in order, writes the manifest last, and on restore destroys and rebuilds
-- each part and checks it against the manifest's counts and hashes.
local snapshot = require("rewind.snapshot")
local params = require("rewind.env_params")
local mysql = require("rewind.env_mysql")
local es = require("rewind.env_es")
local firebase = require("rewind.env_firebase")
local deploy = require("rewind.env_deploy")
local log = require("rewind.log")
local time = require("rewind.time")
local errors = require("rewind.errors")
local fs = require("rewind.fs")

local M = {}

local BACKUP = {
  config = function(snap, part, opts) return deploy.backup_config(snap, part, opts) end,
  deployment = function(snap, part) return deploy.backup_deployment(snap, part) end,
  mysql = function(snap, part, opts)
    local dbs = {}
    for _, db in ipairs(part.databases) do dbs[#dbs + 1] = mysql.backup(snap, part, db, opts) end
    -- A safety snapshot remembers the databases that did not exist, so restoring it removes them.
    return { databases = dbs, absent = part.absent }
  end,
  elasticsearch = function(snap, part, opts) return es.backup(snap, part, opts) end,
  firebase = function(snap, part, opts) return firebase.backup(snap, part, opts) end,
}

--- Takes one snapshot of the given parts. opts: prefix, target, tags, params, level, workers,
--- procedure. Returns the manifest; a failing part aborts it (no manifest) and names the part.
function M.take(st, parts, opts)
  local snap = snapshot.begin(st, { prefix = opts.prefix, procedure = opts.procedure or "env-backup",
    target = opts.target, params = opts.params, tags = opts.tags })
  local record, current = { parts = params.names(parts) }, nil
  local ok, res = pcall(function()
    for _, name in ipairs(params.PARTS) do
      if parts[name] then
        current = name
        local t0 = time.monotonic()
        log.info("backing up " .. name)
        record[name] = BACKUP[name](snap, parts[name], opts)
        log.info(name .. " backed up", { seconds = math.floor((time.monotonic() - t0) * 10) / 10 })
      end
    end
    current = nil
    return snap:commit({ env = record })
  end)
  if not ok then
    pcall(snap.abort, snap)
    if current then error("backing up " .. current .. " failed, no snapshot was written: " .. tostring(res), 0) end
    error(res, 0)
  end
  return res
end

--- The newest complete snapshot that is not a safety snapshot (those are named by id).
function M.newest(st, prefix)
  local all = snapshot.list(st, prefix)
  for i = #all, 1, -1 do
    local safety = false
    for _, t in ipairs(all[i].tags or {}) do
      if t == "safety" then safety = true end
    end
    if not safety and all[i].env then return all[i].id end
  end
  errors.usage("no env-backup snapshot under " .. prefix .. " in " .. st.url .. " (name one with snapshot=ID)")
end

--- Which parts to restore and where: a list of {name, record, target} in order, from the manifest, the
--- configured parts and the `only` list. Missing or unconfigurable parts are usage errors.
function M.select(m, parts, only)
  local rec = m.env or {}
  local in_snapshot = {}
  for _, n in ipairs(rec.parts or {}) do in_snapshot[n] = true end
  local wanted = {}
  if only and #only > 0 then
    for _, n in ipairs(only) do
      if not BACKUP[n] then errors.usage("parts: unknown part " .. n .. " (one of " .. table.concat(params.PARTS, ", ") .. ")") end
      if not in_snapshot[n] then errors.usage("parts: snapshot " .. m.id .. " holds no " .. n .. " part") end
      wanted[n] = true
    end
  else
    wanted = in_snapshot
  end
  local out = {}
  for _, n in ipairs(params.PARTS) do
    if wanted[n] then
      local target = parts[n]
      if n == "config" then
        target = target or { dir = rec.config.dir }
      elseif n == "deployment" then
        target = target or {}
      elseif n == "mysql" then
        target = target or {}
      elseif not target then
        errors.usage(string.format("snapshot %s has a %s part but the params do not say where to restore it (%s.url)", m.id, n, n))
      end
      out[#out + 1] = { name = n, record = rec[n], target = target }
    end
  end
  return out
end

--- The parts a safety snapshot must hold before `selected` are destroyed: what exists now.
function M.safety_parts(selected)
  local parts = {}
  for _, s in ipairs(selected) do
    if s.name == "mysql" then
      local dbs, absent = {}, {}
      for _, d in ipairs(s.record.databases) do
        if mysql.exists(s.target, d.name) then dbs[#dbs + 1] = d.name else absent[#absent + 1] = d.name end
      end
      local t = {}
      for k, v in pairs(s.target) do t[k] = v end
      t.databases, t.absent = dbs, absent
      parts.mysql = t
    elseif s.name == "config" then
      if fs.exists(s.target.dir) then parts.config = s.target end
    elseif s.name == "deployment" then
      if s.target.git_dir or s.target.images or s.target.compose_file or s.target.images_command then
        parts.deployment = s.target
      end
    elseif s.name == "elasticsearch" then
      local t = {}
      for k, v in pairs(s.target) do t[k] = v end
      t.indices = table.concat(s.record.indices, ",")
      parts.elasticsearch = t
    else
      parts[s.name] = s.target
    end
  end
  return parts
end

--- Plan lines: what each part destroys and what it becomes.
function M.plan(m, selected, opts)
  local lines = {}
  for _, s in ipairs(selected) do
    local r, t = s.record, s.target
    if s.name == "config" then
      lines[#lines + 1] = string.format("config: replace %s with the backed-up directory (%d files)", t.dir, r.files or 0)
    elseif s.name == "deployment" then
      if r.git and opts.checkout and t.git_dir then
        lines[#lines + 1] = string.format("deployment: check out %s in %s (was %s)", r.git.commit, t.git_dir, r.git.branch or "detached")
      elseif r.git then
        lines[#lines + 1] = "deployment: recorded commit " .. r.git.commit .. " (checkout=true moves the checkout there)"
      end
      if r.images and #r.images > 0 then
        lines[#lines + 1] = "deployment: images " .. table.concat(r.images, ", ")
          .. (opts.deploy_command and " (passed to deploy_command)" or " (printed)")
      end
    elseif s.name == "mysql" then
      for _, d in ipairs(r.databases) do
        local tables, rows = 0, 0
        for _, n in pairs(d.tables or {}) do tables, rows = tables + 1, rows + n end
        local what = d.tables and string.format("%d tables, %d rows", tables, rows) or "row counts not recorded"
        lines[#lines + 1] = string.format("mysql: drop database %s and recreate it from the dump (%s)", d.name, what)
      end
      for _, name in ipairs(r.absent or {}) do
        lines[#lines + 1] = "mysql: drop database " .. name .. " (it did not exist when the snapshot was taken)"
      end
    elseif s.name == "elasticsearch" then
      local docs = 0
      for _, n in pairs(r.documents or {}) do docs = docs + n end
      lines[#lines + 1] = string.format("elasticsearch: close and replace indices %s from snapshot %s (%d documents)",
        table.concat(r.indices, ", "), r.snapshot, docs)
    elseif s.name == "firebase" then
      lines[#lines + 1] = string.format("firebase: replace node %s with the export (%d bytes)", r.path, r.export_bytes or 0)
    end
  end
  return lines
end

local RESTORE = {
  config = function(s, snap)
    deploy.restore_config(s.target.dir, snap:reader(s.record.object))
    local diff = deploy.check_config(s.target.dir, s.record)
    if diff then error(diff, 0) end
  end,
  deployment = function(s, _, opts)
    local r = s.record
    if r.git and opts.checkout then
      if not s.target.git_dir then errors.usage("checkout=true needs git.dir") end
      deploy.checkout(s.target.git_dir, r.git, opts.force)
    end
    if opts.deploy_command then
      deploy.deploy(opts.deploy_command, r)
    elseif r.images and #r.images > 0 then
      print("images of snapshot: " .. table.concat(r.images, " "))
    end
  end,
  mysql = function(s, snap)
    for _, d in ipairs(s.record.databases) do
      mysql.restore(s.target, d, snap:reader(d.object))
      local diff = mysql.check(s.target, d)
      if diff then error(diff, 0) end
    end
    for _, name in ipairs(s.record.absent or {}) do mysql.drop(s.target, name) end
  end,
  elasticsearch = function(s, snap)
    es.restore(s.target, s.record, not s.record.shared and snap:reader(s.record.object) or nil)
    local diff = es.check(s.target, s.record)
    if diff then error(diff, 0) end
  end,
  firebase = function(s, snap)
    firebase.restore(s.target, snap:reader(s.record.object))
    local diff = firebase.check(s.target, s.record)
    if diff then error(diff, 0) end
  end,
}

--- Restores the selected parts in order, checking each. Returns the names restored; on failure
--- raises naming the failing part, the parts restored before it and the ones left untouched.
function M.restore(snap, selected, opts)
  local done = {}
  for i, s in ipairs(selected) do
    log.info("restoring " .. s.name)
    local ok, err = pcall(RESTORE[s.name], s, snap, opts)
    if not ok then
      local left = {}
      for j = i + 1, #selected do left[#left + 1] = selected[j].name end
      local msg = string.format("restoring %s failed: %s\n  restored before it: %s\n  not restored: %s",
        s.name, tostring(err), #done > 0 and table.concat(done, ", ") or "none",
        #left > 0 and table.concat(left, ", ") or "none")
      if opts.safety then
        msg = msg .. string.format("\n  the environment as it was before this restore is safety snapshot %s: rewind run env-restore snapshot=%s",
          opts.safety, opts.safety)
      end
      error(msg, 0)
    end
    done[#done + 1] = s.name
    log.info(s.name .. " restored and checked")
  end
  return done
end

return M
