-- rewind.td_restore: restore a Treasure Data parent segment, its v5 folder tree and its segments from a
-- backup (the three documents td-ps-backup writes). Planning is pure (tested in Lua); `restore` drives a
-- rewind.td client.
--
-- backup = { ms_config = <parent segment>, folder_config = {data = {...entities...}},
--            all_segments_config = {data = {...segment entities, each whole...}} }

local json = require("rewind.json")
local errors = require("rewind.errors")
local log = require("rewind.log")
local task = require("rewind.task")
local time = require("rewind.time")

local M = {}

local REF_TYPES = { Reference = true, PredictiveScoreReference = true }
M.RESTORABLE = { ["segment-batch"] = true, ["segment-realtime"] = true, ["predictive-segment"] = true }
local SERVER_PS_FIELDS = { "id", "createdAt", "updatedAt", "createdBy", "updatedBy", "population" }
local SERVER_ATTRS = { id = true, createdAt = true, updatedAt = true, population = true, audienceId = true }

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = deep_copy(x) end
  local mt = getmetatable(v)
  if type(mt) == "table" then return setmetatable(out, mt) end
  if mt ~= nil then return json.array(out) end -- a protected metatable: the JSON array marker
  return out
end
M.deep_copy = deep_copy

local function parent_of(e)
  local pf = e.relationships and e.relationships.parentFolder
  local d = pf and pf.data
  if d == nil or json.is_null(d) then return nil end
  return tostring(d.id)
end
M.parent_of = parent_of

--- The parent segment body to POST: the backup without server-assigned fields, under `new_name`.
function M.clean_parent_segment(ps, new_name)
  local b = deep_copy(ps)
  for _, k in ipairs(SERVER_PS_FIELDS) do b[k] = nil end
  b.name = new_name
  for _, list in ipairs({ b.attributes or {}, b.behaviors or {} }) do
    for _, a in ipairs(list) do a.audienceId = nil; a.id = nil end
  end
  return b
end

--- Every id an entity references (rule references at any depth, a predictive segment's base segment).
function M.references(attrs)
  local out, seen = {}, {}
  local function add(id)
    id = tostring(id)
    if not seen[id] then seen[id] = true; out[#out + 1] = id end
  end
  local function walk(v)
    if type(v) ~= "table" then return end
    if REF_TYPES[v.type] and v.id ~= nil then add(v.id) end
    for _, x in pairs(v) do walk(x) end
  end
  walk(attrs and attrs.rule)
  if attrs and attrs.segmentId ~= nil and not json.is_null(attrs.segmentId) then add(attrs.segmentId) end
  return out
end

--- A copy of `attrs` with every reference rewritten through `map` (old id → new id); a missing id raises
--- via `on_missing(old_id)`. Returns the copy and a list of {from, to}.
function M.rewrite(attrs, map, on_missing)
  local out = deep_copy(attrs)
  local changes = {}
  local function new_id(old)
    local n = map[tostring(old)]
    if n == nil then
      if on_missing then on_missing(tostring(old)) end
      error("no new id for " .. tostring(old), 0)
    end
    changes[#changes + 1] = { from = tostring(old), to = n }
    return n
  end
  local function walk(v)
    if type(v) ~= "table" then return end
    if REF_TYPES[v.type] and v.id ~= nil then v.id = new_id(v.id) end
    for _, x in pairs(v) do walk(x) end
  end
  walk(out.rule)
  if out.segmentId ~= nil and not json.is_null(out.segmentId) then out.segmentId = new_id(out.segmentId) end
  return out, changes
end

--- Attributes to send on create: the backed-up ones without server-assigned fields, for `audience_id`.
function M.clean_attributes(attrs, audience_id)
  local out = {}
  for k, v in pairs(attrs or {}) do
    if not SERVER_ATTRS[k] then out[k] = deep_copy(v) end
  end
  out.audienceId = audience_id
  return out
end

local function name_of(e) return tostring(e.attributes and e.attributes.name or ("#" .. tostring(e.id))) end

--- Plans a restore. opts.only (list of segment names or ids). Returns
--- { root, folders = {levels of folder entries}, levels = {levels of entity entries}, skipped, count }.
--- Each entry: {id, type, name, parent, attributes, refs}. Raises on references outside the backup and on
--- reference cycles, naming the segments.
function M.plan(backup, opts)
  opts = opts or {}
  local folders, by_id, order = {}, {}, {}
  local root
  local function add(e, whole)
    local id = tostring(e.id)
    if by_id[id] then
      -- keep the whole entity from all_segments_config over the by-folder copy
      if whole and e.attributes then by_id[id].attributes = e.attributes end
      return
    end
    local entry = { id = id, type = e.type, name = name_of(e), parent = parent_of(e), attributes = e.attributes or {} }
    by_id[id] = entry
    order[#order + 1] = entry
  end
  for _, e in ipairs((backup.folder_config or {}).data or {}) do add(e) end
  for _, e in ipairs((backup.all_segments_config or {}).data or backup.all_segments_config or {}) do add(e, true) end
  for _, entry in ipairs(order) do
    if entry.type == "folder-segment" then
      folders[entry.id] = entry
      if entry.parent == nil or not by_id[entry.parent] then
        if root and root ~= entry.id then
          error("backup has two root folders (" .. root .. " and " .. entry.id .. ")", 0)
        end
        root = entry.id
      end
    end
  end
  if not root then error("backup has no root folder (folder_config has no folder without a parent)", 0) end

  local skipped, entities = {}, {}
  for _, entry in ipairs(order) do
    if entry.type ~= "folder-segment" then
      if M.RESTORABLE[entry.type] then
        entry.refs = M.references(entry.attributes)
        entities[entry.id] = entry
      else
        skipped[#skipped + 1] = { id = entry.id, type = entry.type, name = entry.name,
          reason = "entity type " .. tostring(entry.type) .. " cannot be restored" }
      end
    end
  end
  -- references must stay inside the backup
  for _, entry in ipairs(order) do
    local e = entities[entry.id]
    if e then
      for _, r in ipairs(e.refs) do
        if not entities[r] then
          local what = by_id[r] and ("a " .. by_id[r].type .. " that cannot be restored") or "an entity outside the backup"
          error(string.format("segment '%s' (%s, id %s) references %s (id %s)", e.name, e.type, e.id, what, r), 0)
        end
      end
    end
  end
  -- the subset
  local wanted
  if opts.only and #opts.only > 0 then
    wanted = {}
    local function want(id)
      if wanted[id] then return end
      wanted[id] = true
      for _, r in ipairs(entities[id].refs) do want(r) end
    end
    for _, sel in ipairs(opts.only) do
      local found = false
      for _, entry in ipairs(order) do
        local e = entities[entry.id]
        if e and (e.id == tostring(sel) or e.name == tostring(sel)) then want(e.id); found = true end
      end
      if not found then error("only_segments: no segment named or numbered '" .. tostring(sel) .. "' in the backup", 0) end
    end
  end
  -- levels (Kahn): an entity comes after everything it references
  local pending, levels, placed, count = {}, {}, {}, 0
  for _, entry in ipairs(order) do
    if entities[entry.id] and (not wanted or wanted[entry.id]) then pending[#pending + 1] = entities[entry.id] end
  end
  while #pending > 0 do
    local level, rest = {}, {}
    for _, e in ipairs(pending) do
      local ready = true
      for _, r in ipairs(e.refs) do
        if not placed[r] then ready = false; break end
      end
      if ready then level[#level + 1] = e else rest[#rest + 1] = e end
    end
    if #level == 0 then
      local names = {}
      for _, e in ipairs(rest) do names[#names + 1] = "'" .. e.name .. "' (id " .. e.id .. ")" end
      error("segments reference each other in a cycle, cannot order them: " .. table.concat(names, ", "), 0)
    end
    for _, e in ipairs(level) do placed[e.id] = true end
    count = count + #level
    levels[#levels + 1] = level
    pending = rest
  end
  -- folders needed: all of them, or the ancestors of the chosen entities
  local need = {}
  if wanted then
    for id in pairs(wanted) do
      local p = entities[id].parent
      while p and p ~= root and folders[p] and not need[p] do need[p] = true; p = folders[p].parent end
    end
  else
    for id in pairs(folders) do if id ~= root then need[id] = true end end
  end
  local depth = {}
  local function d(id)
    if id == root then return 0 end
    if depth[id] then return depth[id] end
    local f = folders[id]
    if not f or not f.parent or not folders[f.parent] then error("folder " .. id .. " is not under the root folder", 0) end
    depth[id] = d(f.parent) + 1
    return depth[id]
  end
  local flevels = {}
  for _, entry in ipairs(order) do
    if need[entry.id] then
      local k = d(entry.id)
      flevels[k] = flevels[k] or {}
      table.insert(flevels[k], folders[entry.id])
    end
  end
  local fl = {}
  for k = 1, #flevels do fl[k] = flevels[k] end
  return { root = root, root_name = folders[root].name, folders = fl, levels = levels, skipped = skipped, count = count }
end

--- A readable plan: lines in creation order.
function M.describe(plan, map)
  map = map or {}
  local lines = {}
  for _, level in ipairs(plan.folders) do
    for _, f in ipairs(level) do
      lines[#lines + 1] = string.format("folder %s '%s' (old id %s) under %s", map[f.id] and "reuse" or "create",
        f.name, f.id, f.parent)
    end
  end
  for i, level in ipairs(plan.levels) do
    for _, e in ipairs(level) do
      local refs = {}
      for _, r in ipairs(e.refs) do refs[#refs + 1] = r .. "→" .. (map[r] or "new") end
      lines[#lines + 1] = string.format("step %d: %s %s '%s' (old id %s) in folder %s%s", i,
        map[e.id] and "keep" or "create", e.type, e.name, e.id, e.parent,
        #refs > 0 and (", rewriting references " .. table.concat(refs, ", ")) or "")
    end
  end
  for _, s in ipairs(plan.skipped) do
    lines[#lines + 1] = string.format("skip %s '%s' (id %s): %s", s.type, s.name, s.id, s.reason)
  end
  return lines
end

local function same_content(a, b)
  local function norm(x)
    return json.encode({ rule = x.rule, segmentId = x.segmentId and tostring(x.segmentId), description = x.description })
  end
  return norm(a) == norm(b)
end

--- Restores folders and segments under `new_root` for parent segment `audience_id`.
--- opts: client, plan, state (table kept up to date: state.map old → new id), save (fn(state), called as
--- the map grows), on_conflict ("skip" or "suffix"), concurrency.
---
--- Never twice: a folder is looked up by name in its new parent before it is created. Before a level of
--- segments is created, their intents (old id → new parent) are saved; a run that finds intents left by
--- an earlier run (which crashed between a create and saving its id) looks those segments up by name
--- first and adopts the ones with the same content. A create whose answer is lost is looked up by the
--- client before it is sent again (td.create_once).
function M.restore_entities(opts)
  local c, plan, state = opts.client, opts.plan, opts.state
  local map = state.map
  local conc = opts.concurrency or 16
  local on_conflict = opts.on_conflict or "skip"
  map[plan.root] = tostring(opts.new_root)
  local result = { folders_created = 0, folders_reused = 0, created = 0, kept = 0, adopted = 0, conflicts = json.array(),
    skipped = plan.skipped }
  local last_save, saving = time.monotonic(), false
  local function maybe_save(force)
    if saving then return end
    if force or time.monotonic() - last_save >= 1 then
      saving = true
      local ok, err = pcall(opts.save, state)
      saving = false
      last_save = time.monotonic()
      if not ok then error(err, 0) end
    end
  end
  -- intents left by an earlier run: creates that may have happened without their id being saved
  state.intents = state.intents or {}
  local earlier = {}
  for old, np in pairs(state.intents) do earlier[old] = np end
  -- children of a target folder, by name (only asked for folders this run did not create)
  local created_here, listings = {}, {}
  local function children(new_parent)
    if created_here[new_parent] then return {} end
    if not listings[new_parent] then
      local items = {}
      local ans = c:by_folder_raw(new_parent, 2) -- 2: direct children however the service counts depth
      for _, e in ipairs(ans.data or {}) do
        if tostring(e.id) ~= new_parent and parent_of(e) == new_parent then
          items[name_of(e)] = items[name_of(e)] or {}
          table.insert(items[name_of(e)], e)
        end
      end
      listings[new_parent] = items
    end
    return listings[new_parent]
  end
  -- folders, level by level
  for _, level in ipairs(plan.folders) do
    local todo = {}
    for _, f in ipairs(level) do
      if not map[f.id] then todo[#todo + 1] = f else result.folders_reused = result.folders_reused + 1 end
    end
    -- list the parents first (one request each), then create in parallel
    local parents, plist = {}, {}
    for _, f in ipairs(todo) do
      local np = map[f.parent]
      if not parents[np] then parents[np] = true; plist[#plist + 1] = np end
    end
    task.map(plist, conc, function(np) children(np) end)
    task.map(todo, conc, function(f)
      local np = map[f.parent]
      local existing = children(np)[f.name]
      local hit
      for _, e in ipairs(existing or {}) do if e.type == "folder-segment" then hit = e; break end end
      if hit then
        map[f.id] = tostring(hit.id)
        result.folders_reused = result.folders_reused + 1
      else
        local attrs = M.clean_attributes(f.attributes, opts.audience_id)
        local made = c:create_folder(np, attrs)
        map[f.id] = tostring(made.id)
        created_here[map[f.id]] = true
        result.folders_created = result.folders_created + 1
      end
      maybe_save()
    end)
    maybe_save(true)
  end
  -- entities, level by level (everything in a level is independent)
  local total, done = plan.count, 0
  for li, level in ipairs(plan.levels) do
    local todo = {}
    for _, e in ipairs(level) do
      if map[e.id] then result.kept = result.kept + 1; done = done + 1 else todo[#todo + 1] = e end
    end
    -- the intents of this level, saved before any of its creates
    for _, e in ipairs(todo) do state.intents[e.id] = map[e.parent] end
    if #todo > 0 then opts.save(state) end
    task.map(todo, conc, function(e)
      local np = map[e.parent]
      local attrs = M.rewrite(M.clean_attributes(e.attributes, opts.audience_id), map)
      local ok, made, adopted = true, nil, false
      if earlier[e.id] == np then
        -- an earlier run meant to create it here and may have: look before creating
        for _, x in ipairs(children(np)[e.name] or {}) do
          if x.type == e.type and same_content(x.attributes or {}, attrs) then made = x; break end
        end
        adopted = made ~= nil
      end
      if not made then
        ok, made = pcall(function()
          local body = { type = e.type, attributes = attrs,
            relationships = { parentFolder = { data = { id = np, type = "folder-segment" } } } }
          return (c:create_entity(body))
        end)
      end
      if adopted then
        result.adopted = result.adopted + 1
      elseif not ok then
        local err = made
        if not tostring(err):find("Name has already been taken", 1, true) then
          error(string.format("creating %s '%s' (old id %s): %s", e.type, e.name, e.id, tostring(err)), 0)
        end
        listings[np] = nil
        created_here[np] = nil
        local hit
        for _, x in ipairs(children(np)[e.name] or {}) do
          if x.type == e.type then hit = x; break end
        end
        if hit and same_content(hit.attributes or {}, attrs) then
          made = hit -- already there with the same content (an interrupted run, or a restore in place)
          result.adopted = result.adopted + 1
        elseif on_conflict == "suffix" then
          local n = 2
          while true do
            local a2 = deep_copy(attrs)
            a2.name = string.format("%s (%d)", e.name, n)
            local ok2, m2 = pcall(c.create_entity, c, { type = e.type, attributes = a2,
              relationships = { parentFolder = { data = { id = np, type = "folder-segment" } } } })
            if ok2 then made = m2; break end
            if not tostring(m2):find("Name has already been taken", 1, true) or n > 50 then error(m2, 0) end
            n = n + 1
          end
          table.insert(result.conflicts, { id = e.id, name = e.name, action = "created as '" .. made.attributes.name .. "'" })
        else
          if not hit then error(err, 0) end
          made = hit
          table.insert(result.conflicts, { id = e.id, name = e.name, action = "skipped: an entity with this name exists (id " .. tostring(hit.id) .. ")" })
        end
      else
        result.created = result.created + 1
      end
      map[e.id] = tostring(made.id)
      state.intents[e.id] = nil
      done = done + 1
      maybe_save()
    end)
    maybe_save(true)
    log.info("restored segments", { step = li, of = #plan.levels, done = done, total = total })
  end
  return result
end

--- The whole restore: parent segment (create under `ms_name`, run, wait, find the v5 root folder), then
--- folders and segments. Resumable: `state` (from `load_state`) records each step; `save(state)` persists it.
--- opts: client, backup, ms_name, state, save, on_conflict, concurrency, only, run_timeout, poll,
--- root_folder_id (restore into this existing root instead of creating a parent segment).
function M.restore(opts)
  local c, state = opts.client, opts.state
  state.map = state.map or {}
  local plan = M.plan(opts.backup, { only = opts.only })
  local save = opts.save or function() end
  if opts.root_folder_id then
    state.root_folder_id = tostring(opts.root_folder_id)
    if not state.audience_id then
      local f = c:get_folder(state.root_folder_id)
      state.audience_id = tostring(f.attributes.audienceId)
    end
  end
  if not state.audience_id then
    -- The intent is saved before the create: a run that crashed after the create was applied but before
    -- its id was saved left it, and this run finds the parent segment by name instead of making another.
    local found = c:find_parent_segment(opts.ms_name)
    if found and not state.ps_intent then
      errors.usage(string.format("a parent segment named '%s' already exists (id %s) and this restore did not " ..
        "create it: choose another ms_name, or restore into it with root_folder_id=<its v5 root folder>",
        opts.ms_name, tostring(found.id)))
    end
    if found then
      log.info("found the parent segment an earlier run created", { id = tostring(found.id), name = opts.ms_name })
    else
      state.ps_intent = { name = opts.ms_name, at = time.format(time.now()) }
      save(state)
      found = c:create_parent_segment(M.clean_parent_segment(opts.backup.ms_config, opts.ms_name))
      log.info("created parent segment", { id = tostring(found.id), name = opts.ms_name })
    end
    state.audience_id = tostring(found.id)
    save(state)
  end
  if not state.root_folder_id then
    local root = c:root_folder_id(state.audience_id)
    if not root then
      if not state.run_session or state.run_failed then
        local ex
        if state.run_intent and not state.run_failed then
          -- an earlier run asked for a run and crashed before saving its session: that run is the newest
          ex = (c:executions(state.audience_id) or {})[1]
        end
        if not ex then
          state.run_intent, state.run_failed = true, nil
          save(state)
          ex = c:run_parent_segment(state.audience_id)
        end
        state.run_session = tostring(ex.workflowSessionId)
        state.run_failed = nil
        save(state)
      end
      local ok, err = pcall(c.wait_for_run, c, state.audience_id,
        { session = state.run_session, timeout = opts.run_timeout, poll = opts.poll })
      if not ok then
        if not tostring(err):find("still", 1, true) then state.run_failed = true end
        save(state)
        error(err, 0)
      end
      root = c:root_folder_id(state.audience_id)
    end
    if not root then
      state.run_failed = true -- a re-run starts a new run, which creates the root folder once v5 is on
      save(state)
      error(string.format("parent segment %s ('%s') ran successfully but has no Audience Studio v5 root folder: " ..
        "v5 is not enabled for this account or parent segment (ask Treasure Data support to enable the " ..
        "v5_endpoint flag for it). The parent segment was created; run the same command again once v5 is " ..
        "enabled and the restore resumes from here.", state.audience_id, opts.ms_name), 0)
    end
    state.root_folder_id = root
    save(state)
  end
  local r = M.restore_entities({ client = c, plan = plan, state = state, save = save, new_root = state.root_folder_id,
    audience_id = state.audience_id, on_conflict = opts.on_conflict, concurrency = opts.concurrency })
  r.parent_segment_id = state.audience_id
  r.root_folder_id = state.root_folder_id
  state.done = true
  save(state)
  return r
end

return M
