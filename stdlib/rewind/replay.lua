-- rewind.replay: one day of a replay (source document 002) as resumable steps whose state is kept in the
-- store, so that a run killed anywhere resumes where it stopped, never replays a committed day again and
-- never loses the backup of the day in progress.
--
-- A day's state (`<state>/days/<day>.json`) moves through these steps; each is written before the next
-- begins, and the dependents' backup is recorded in full before the first delete:
--
--   backing_up -> backed_up -> removed -> committing -> replayed -> done
--        \____________\____________\_______________________________> restoring -> failed
--
-- backing_up  copies of the day's dependent objects are being made (the originals are untouched)
-- backed_up   every copy is made and recorded (key, size, etag), with the day's used Druid segments
-- removed     the originals are deleted and the segments marked unused; the replay may start
-- committing  every event is sent; the Kafka transaction is being committed (the one uncertain moment)
-- replayed    the day's events are committed; what is left is cleaning up (backups, kill tasks, Slack)
-- restoring   something failed: copies are put back, segments marked used, then checked
local hash = require("rewind.hash")
local json = require("rewind.json")
local log = require("rewind.log")
local task = require("rewind.task")
local time = require("rewind.time")
local druid_api = require("rewind.druid_api")
local layout = require("rewind.archive_layout")

local M = {}

local function join(a, b)
  if a == nil or a == "" then return b end
  return (a:gsub("/+$", "")) .. "/" .. b
end

--- The replay context every step shares: store, state prefix, config entry, clients. Built by the script.
--- ctx: store, state_prefix, entry (replay_config), archive = {prefix, topic, template}, topic,
--- druid (druid_api client or nil), producer, transactional, concurrency, send (send_lines options).
function M.state_key(ctx, day) return join(ctx.state_prefix, "days/" .. day .. ".json") end
function M.backup_root(ctx, day) return join(ctx.state_prefix, "backup/" .. day) end

function M.load_state(ctx, day)
  local key = M.state_key(ctx, day)
  if not ctx.store:exists(key) then return nil end
  local ok, st = pcall(json.decode, ctx.store:get(key))
  if not ok or type(st) ~= "table" or st.day ~= day then
    error(string.format("replay state %s is damaged (%s): move it away to start the day afresh", key,
      ok and "not a day state" or tostring(st)), 0)
  end
  return st
end

function M.save_state(ctx, st)
  st.updated = time.format(time.now(), "%Y-%m-%dT%H:%M:%SZ")
  ctx.store:put(M.state_key(ctx, st.day), json.encode(st, { pretty = true }))
end

local function set_step(ctx, st, step)
  st.step = step
  M.save_state(ctx, st)
  log.info("replay day " .. st.day .. ": " .. step)
end

--- Every object under `prefix` (sorted by key): {key, size, etag}.
local function objects_under(store, prefix)
  local out = {}
  for o in store:list(prefix) do out[#out + 1] = { key = o.key, size = o.size, etag = o.etag } end
  table.sort(out, function(a, b) return a.key < b.key end)
  return out
end

--- The day's archived objects to replay (or only `file_path`).
function M.archived(ctx, day)
  if ctx.file_path then
    local h = ctx.store:head(ctx.file_path)
    if not h then error("replay: filePath " .. ctx.file_path .. " does not exist in " .. ctx.store.url, 0) end
    return { { key = ctx.file_path, size = h.size } }, ctx.file_path
  end
  local prefix = layout.day_prefix(ctx.archive.template, day, ctx.archive)
  return objects_under(ctx.store, prefix), prefix
end

--- The folder of a store dependent's output for `day`.
function M.dependent_prefix(ctx, dep, day)
  local tpl = dep.layout and layout.template(dep.layout) or ctx.dependent_template
  return layout.day_prefix(tpl, day, { prefix = dep.prefix, topic = ctx.archive.topic })
end

local function sum_sizes(objs)
  local n = 0
  for _, o in ipairs(objs) do n = n + (o.size or 0) end
  return n
end

--- What a day would do, without doing it (dry_run).
function M.plan(ctx, day)
  local files, prefix = M.archived(ctx, day)
  local p = { day = day, archive_prefix = prefix, files = #files, bytes = sum_sizes(files), dependents = {},
    segments = {} }
  for _, dep in ipairs(ctx.entry.stores) do
    local objs = objects_under(ctx.store, M.dependent_prefix(ctx, dep, day))
    p.dependents[dep.prefix] = { objects = #objs, bytes = sum_sizes(objs) }
  end
  if ctx.druid then
    for _, ds in ipairs(ctx.entry.druid) do
      p.segments[ds] = #ctx.druid:used_segments(ds, druid_api.day_interval(day), { within = true })
    end
  end
  return p
end

-- Step 1: copy the day's dependents aside and record them, with the day's used segments.
local function back_up(ctx, st)
  set_step(ctx, st, "backing_up")
  local root = M.backup_root(ctx, st.day)
  st.stores = {}
  for _, dep in ipairs(ctx.entry.stores) do
    local prefix = M.dependent_prefix(ctx, dep, st.day)
    local objs = objects_under(ctx.store, prefix)
    task.map(objs, ctx.concurrency, function(o) ctx.store:copy(o.key, join(root, o.key)) end)
    st.stores[#st.stores + 1] = { prefix = dep.prefix, day_prefix = prefix, objects = objs }
    log.info("backed up dependent", { day = st.day, prefix = prefix, objects = #objs })
  end
  st.druid = {}
  for _, ds in ipairs(ctx.entry.druid) do
    local interval = druid_api.day_interval(st.day)
    local segs = ctx.druid:used_segments(ds, interval, { within = true })
    local rec = {}
    for _, s in ipairs(segs) do rec[#rec + 1] = { id = s.id, version = s.version, interval = s.interval } end
    st.druid[#st.druid + 1] = { datasource = ds, interval = interval, segments = rec }
  end
  set_step(ctx, st, "backed_up")
end

local function ids_of(rec)
  local ids = {}
  for _, s in ipairs(rec.segments) do ids[#ids + 1] = s.id end
  return ids
end

-- Step 2: delete the originals and take the segments out of service.
local function remove(ctx, st)
  -- From here on a failure must put things back (before it, nothing was changed).
  st.removal_started = true
  M.save_state(ctx, st)
  st.metrics.deleted = {}
  for _, d in ipairs(st.stores) do
    local keys = {}
    for _, o in ipairs(d.objects) do keys[#keys + 1] = o.key end
    if #keys > 0 then ctx.store:delete(keys) end
    st.metrics.deleted[d.prefix] = #keys
  end
  st.metrics.segments = {}
  for _, rec in ipairs(st.druid) do
    local ids = ids_of(rec)
    if #ids > 0 then ctx.druid:mark_unused(rec.datasource, { segment_ids = ids }) end
    st.metrics.segments[rec.datasource] = #ids
  end
  set_step(ctx, st, "removed")
end

--- Sends `files` into the topic, in one transaction when the producer is transactional, counting into
--- `m` (events, bytes, malformed, files, transaction). `before_commit` runs once everything is sent and
--- before the commit. Raises on any failure, after aborting the transaction.
function M.send_files(ctx, files, m, label, before_commit)
  m.events, m.bytes, m.malformed, m.files = 0, 0, 0, 0
  local prog = require("rewind.progress").new({ label = label, total = #files, unit = "items" })
  if ctx.transactional then ctx.producer:begin_transaction(ctx.txn_timeout) end
  local ok, err = pcall(function()
    for _, f in ipairs(files) do
      local r = ctx.producer:send_lines(ctx.store:reader(f.key), ctx.send)
      m.events, m.bytes, m.malformed = m.events + r.sent, m.bytes + r.bytes, m.malformed + r.malformed
      m.files = m.files + 1
      prog:add(1)
    end
  end)
  prog:finish(ok)
  if not ok then
    if ctx.transactional then
      local aok, aerr = pcall(ctx.producer.abort_transaction, ctx.producer, ctx.txn_timeout)
      m.transaction = aok and "aborted" or ("abort failed: " .. tostring(aerr))
    end
    error(err, 0)
  end
  if ctx.transactional then
    if before_commit then before_commit() end
    local cok, cerr = pcall(ctx.producer.commit_transaction, ctx.producer, ctx.txn_timeout)
    if not cok then
      m.transaction = "aborted"
      error(cerr, 0)
    end
    m.transaction = "committed"
  end
end

-- Step 3: the day's events into the topic.
local function replay(ctx, st, files)
  M.send_files(ctx, files, st.metrics, "replay " .. st.day, function() set_step(ctx, st, "committing") end)
  set_step(ctx, st, "replayed")
end

-- Step 4 (success): drop the copies when asked, kill the day's unused segments.
local function finish(ctx, st)
  if ctx.delete_backups then
    local keys = {}
    for _, d in ipairs(st.stores) do
      for _, o in ipairs(d.objects) do keys[#keys + 1] = join(M.backup_root(ctx, st.day), o.key) end
    end
    if #keys > 0 then ctx.store:delete(keys) end
    st.metrics.backups_deleted = #keys
  end
  st.metrics.killed = {}
  for _, rec in ipairs(st.druid) do
    if #rec.segments > 0 then
      local k = ctx.druid:kill(rec.datasource, rec.interval, { timeout = ctx.kill_timeout })
      st.metrics.killed[rec.datasource] = #rec.segments
      log.info("druid segments killed", { datasource = rec.datasource, task = k.task, day = st.day })
    end
  end
  set_step(ctx, st, "done")
end

--- Whether object `o` (now in the store) has the bytes `want` had: the same etag, or, where a copy gets a
--- new etag (Azure, local), the same sha256 as the backup copy.
local function same_bytes(ctx, st, want, now)
  if now.size ~= want.size then return false end
  if want.etag and now.etag == want.etag then return true end
  local a = hash.sha256_reader(ctx.store:reader(now.key))
  local b = hash.sha256_reader(ctx.store:reader(join(M.backup_root(ctx, st.day), want.key)))
  return a == b
end

--- Checks that the day's dependents are exactly as recorded; returns a list of differences.
function M.differences(ctx, st)
  local diffs = {}
  for _, d in ipairs(st.stores or {}) do
    local now = {}
    for _, o in ipairs(objects_under(ctx.store, d.day_prefix)) do now[o.key] = o end
    for _, o in ipairs(d.objects) do
      local n = now[o.key]
      if not n then
        diffs[#diffs + 1] = "missing " .. o.key
      elseif not same_bytes(ctx, st, o, n) then
        diffs[#diffs + 1] = "changed " .. o.key
      end
      now[o.key] = nil
    end
    for key in pairs(now) do diffs[#diffs + 1] = "extra " .. key end
  end
  for _, rec in ipairs(st.druid or {}) do
    local want, got = {}, {}
    for _, id in ipairs(ids_of(rec)) do want[id] = true end
    for _, s in ipairs(ctx.druid:used_segments(rec.datasource, rec.interval, { within = true })) do
      got[s.id] = true
      if not want[s.id] then diffs[#diffs + 1] = "extra used segment " .. s.id end
    end
    for id in pairs(want) do
      if not got[id] then diffs[#diffs + 1] = "segment not used " .. id end
    end
  end
  table.sort(diffs)
  return diffs
end

-- On failure: put the copies back, remove what appeared meanwhile, mark the segments used, then check.
local function restore(ctx, st)
  set_step(ctx, st, "restoring")
  local root = M.backup_root(ctx, st.day)
  for _, d in ipairs(st.stores or {}) do
    local now = {}
    for _, o in ipairs(objects_under(ctx.store, d.day_prefix)) do now[o.key] = o end
    local todo, recorded = {}, {}
    for _, o in ipairs(d.objects) do
      recorded[o.key] = true
      local n = now[o.key]
      if not (n and n.size == o.size and o.etag and n.etag == o.etag) then todo[#todo + 1] = o end
    end
    task.map(todo, ctx.concurrency, function(o) ctx.store:copy(join(root, o.key), o.key) end)
    local extra = {}
    for key in pairs(now) do
      if not recorded[key] then extra[#extra + 1] = key end
    end
    if #extra > 0 then ctx.store:delete(extra) end
  end
  for _, rec in ipairs(st.druid or {}) do
    local ids = ids_of(rec)
    if #ids > 0 then ctx.druid:mark_used(rec.datasource, { segment_ids = ids }) end
    local want = {}
    for _, id in ipairs(ids) do want[id] = true end
    local extra = {}
    for _, s in ipairs(ctx.druid:used_segments(rec.datasource, rec.interval, { within = true })) do
      if not want[s.id] then extra[#extra + 1] = s.id end
    end
    if #extra > 0 then ctx.druid:mark_unused(rec.datasource, { segment_ids = extra }) end
  end
  local diffs = M.differences(ctx, st)
  if #diffs > 0 then
    st.restore_differences = diffs
    M.save_state(ctx, st)
    error(string.format("replay day %s: restoring the dependents left %d differences (%s%s); the copies are kept under %s",
      st.day, #diffs, table.concat(diffs, ", ", 1, math.min(#diffs, 5)), #diffs > 5 and ", ..." or "", root), 0)
  end
  if ctx.delete_backups then
    local keys = {}
    for _, d in ipairs(st.stores or {}) do
      for _, o in ipairs(d.objects) do keys[#keys + 1] = join(root, o.key) end
    end
    if #keys > 0 then ctx.store:delete(keys) end
  end
  st.restored = true
end

--- "1.5 MB".
function M.human_bytes(n)
  local units, i = { "B", "KB", "MB", "GB", "TB" }, 1
  while n >= 1000 and i < #units do n, i = n / 1000, i + 1 end
  return string.format(i == 1 and "%d %s" or "%.1f %s", n, units[i])
end

local function list_counts(t)
  local parts = {}
  for k, v in pairs(t or {}) do parts[#parts + 1] = k .. " " .. tostring(v) end
  table.sort(parts)
  return #parts > 0 and table.concat(parts, ", ") or "none"
end

--- The Slack message of a day: what the source asks for (events, files deleted per dependent, segments
--- killed, time taken, the day), or the error with the metrics so far.
function M.message(source, topic, st)
  local m = st.metrics or {}
  local done = st.step == "done"
  local base = string.format("%d events (%d files, %s, %d malformed lines) into %s; files deleted: %s; Druid segments %s: %s; %s",
    m.events or 0, m.files or 0, M.human_bytes(m.bytes or 0), m.malformed or 0, topic, list_counts(m.deleted),
    done and "killed" or "taken out", list_counts(done and m.killed or m.segments),
    time.format_duration(m.seconds or 0))
  if done then
    return string.format(":white_check_mark: replay of %s for %s done: %s", source, st.day, base)
  end
  return string.format(":x: replay of %s for %s FAILED: %s. The dependents were put back and checked. So far: %s",
    source, st.day, st.error or "?", base)
end

--- One line of a dry run's plan.
function M.plan_line(plan, topic)
  local deps = {}
  for k, v in pairs(plan.dependents) do deps[k] = v.objects .. " objects (" .. M.human_bytes(v.bytes) .. ")" end
  return string.format("%s: replay %d files (%s) from %s into %s; copy and delete %s; Druid segments to kill: %s",
    plan.day, plan.files, M.human_bytes(plan.bytes), plan.archive_prefix, topic, list_counts(deps),
    list_counts(plan.segments))
end

--- Runs (or resumes) one day. Returns its state: step "done", "failed" (restored, with `error`) or
--- "skipped" (no archived data). Raises only when the dependents could not be put back as they were, or
--- when the day was left committing (see `resolve`).
function M.run_day(ctx, day)
  local st = M.load_state(ctx, day)
  if st and st.step == "done" then
    log.info("replay day " .. day .. ": already done by an earlier run, not replayed again")
    st.resumed = "already done"
    return st
  end
  if st and st.step == "committing" then
    if ctx.resolve == "committed" then
      st.metrics.transaction = "committed (resolve=committed)"
      set_step(ctx, st, "replayed")
    elseif ctx.resolve == "replay" then
      st.step = "failed_to_commit"
    else
      error(string.format("replay day %s: an earlier run stopped while committing its Kafka transaction, so whether "
        .. "its events were committed is unknown. Check the topic, then run again with resolve=committed (keep "
        .. "them: finish the day) or resolve=replay (put the dependents back; the next run replays the day again)", day), 0)
    end
  end
  local files, prefix = M.archived(ctx, day)
  if not st or st.step == "failed" then
    if #files == 0 then
      log.warn("replay day " .. day .. ": no archived data under " .. prefix .. ", skipped (dependents untouched)")
      return { day = day, step = "skipped", reason = "no archived data under " .. prefix, metrics = {} }
    end
    st = { day = day, step = "new", started = time.format(time.now(), "%Y-%m-%dT%H:%M:%SZ"), metrics = {},
      attempt = ((st and st.attempt) or 0) + 1 }
  else
    st.resumed = st.step
    log.info("replay day " .. day .. ": resuming at step " .. st.step)
  end
  st.metrics = st.metrics or {}
  local t0 = time.monotonic()
  local ok, err = pcall(function()
    if st.step == "failed_to_commit" then error("resolve=replay: the earlier attempt's commit is treated as failed", 0) end
    if st.step == "restoring" then error(st.error or "an earlier run was restoring this day", 0) end
    if st.step == "new" or st.step == "backing_up" then back_up(ctx, st) end
    if st.step == "backed_up" then remove(ctx, st) end
    if st.step == "removed" then replay(ctx, st, files) end
    if st.step == "replayed" then finish(ctx, st) end
  end)
  st.metrics.seconds = (st.metrics.seconds or 0) + (time.monotonic() - t0)
  if ok then return st end
  st.error = tostring(err)
  log.error("replay day " .. day .. " failed: " .. st.error)
  if st.step == "replayed" or st.step == "done" then
    -- The events are committed: putting the old dependents back would double them. Stop instead.
    M.save_state(ctx, st)
    error(string.format("replay day %s: its events are committed but cleaning up failed: %s (run again to finish)",
      day, st.error), 0)
  end
  if st.removal_started then restore(ctx, st) end
  set_step(ctx, st, "failed")
  return st
end

return M
