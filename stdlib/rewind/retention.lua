-- rewind.retention: which snapshots a policy keeps, and why. Pure Lua, no I/O: the `prune` script lists
-- manifests, asks `plan`, prints the reasons and deletes.
--
-- Semantics follow restic's `forget`:
-- * snapshots are grouped by procedure and target; every rule applies to each group on its own;
-- * within a group, snapshots are taken newest first; `keep_last = N` keeps the N newest;
--   `keep_hourly|daily|weekly|monthly|yearly = N` keeps the newest snapshot of each of the N most recent
--   periods that have a snapshot (weeks are ISO weeks; periods are computed in `timezone`, UTC by default);
--   a count of -1 means "every period";
-- * `keep_within = seconds` keeps every snapshot taken within that duration of the group's NEWEST snapshot
--   (as restic does, so a group whose backups stopped is never emptied by time passing);
-- * `keep_tags = {"safety", ...}` keeps every snapshot carrying one of the tags, forever;
-- * rules are independent: a snapshot is kept when any rule keeps it, and every rule that kept it is named.
-- Safety rules on top of restic's:
-- * the newest complete snapshot of each group is always kept;
-- * with keep_within, the newest snapshot OLDER than the window is kept too, so every moment of the window
--   can still be restored to the state that was current then;
-- * incomplete snapshots (objects without a manifest) are removed only once older than `grace` seconds
--   (default 6h), so a backup that is still running is never pruned.

local time = require("rewind.time")
local json = require("rewind.json")

local M = {}

M.DEFAULT_GRACE = 6 * 3600

local RULES = {
  { key = "keep_hourly", label = "keep-hourly",
    bucket = function(p) return string.format("%04d-%02d-%02d %02dh", p.year, p.month, p.day, p.hour) end },
  { key = "keep_daily", label = "keep-daily",
    bucket = function(p) return string.format("%04d-%02d-%02d", p.year, p.month, p.day) end },
  { key = "keep_weekly", label = "keep-weekly",
    bucket = function(p) return string.format("%04d-W%02d", p.iso_year, p.iso_week) end },
  { key = "keep_monthly", label = "keep-monthly",
    bucket = function(p) return string.format("%04d-%02d", p.year, p.month) end },
  { key = "keep_yearly", label = "keep-yearly",
    bucket = function(p) return string.format("%04d", p.year) end },
}
M.RULES = RULES

local function to_time(v, what)
  if type(v) == "number" then return v end
  if type(v) == "string" then return time.parse(v) end
  error("retention: " .. what .. " has no usable time (started_at)", 0)
end

--- Parses a snapshot id `YYYYMMDD-HHMMSS` into epoch seconds (UTC), or nil.
function M.id_time(id)
  local y, mo, d, h, mi, s = tostring(id or ""):match("^(%d%d%d%d)(%d%d)(%d%d)%-(%d%d)(%d%d)(%d%d)$")
  if not y then return nil end
  return time.parse(string.format("%s-%s-%sT%s:%s:%s", y, mo, d, h, mi, s))
end

local function target_text(t)
  if t == nil then return "" end
  if type(t) == "table" then return json.encode(t) end
  return tostring(t)
end

--- The group a manifest belongs to: "procedure target".
function M.group_key(m)
  local tgt = target_text(m.target)
  return tostring(m.procedure or "?") .. (tgt ~= "" and (" " .. tgt) or "")
end

local function count_of(policy, key)
  local v = policy[key]
  if v == nil or v == false then return 0 end
  if v == "unlimited" or v == "all" then return -1 end
  local n = tonumber(v)
  if not n or n ~= math.floor(n) or n < -1 then
    error("retention: " .. key .. " must be a whole number (or -1 for unlimited), got " .. tostring(v), 0)
  end
  return n
end

local function duration_of(v, key)
  if v == nil or v == false then return nil end
  local ok, secs = pcall(time.duration, v)
  if not ok or type(secs) ~= "number" or secs < 0 then
    error("retention: " .. key .. " must be a duration like 60d, got " .. tostring(v), 0)
  end
  return secs
end

--- True when the policy keeps anything by rule (restic refuses to forget with an empty policy).
function M.has_rules(policy)
  policy = policy or {}
  if count_of(policy, "keep_last") ~= 0 then return true end
  for _, r in ipairs(RULES) do
    if count_of(policy, r.key) ~= 0 then return true end
  end
  if duration_of(policy.keep_within, "keep_within") then return true end
  return policy.keep_tags ~= nil and next(policy.keep_tags) ~= nil
end

local function has_tag(m, wanted)
  for _, t in ipairs(m.tags or {}) do
    if wanted[t] then return t end
  end
  return nil
end

--- Plans retention.
--- manifests: complete manifests (any order). policy: see the header. now: epoch seconds (default: now).
--- incomplete: optional list from `snapshot.incomplete` (`{id, keys, started_at}`), judged by `policy.grace`.
--- Returns {keep = { {manifest, reasons, group} }, remove = { {manifest, reasons, group} },
---          incomplete_keep = { {incomplete, reasons} }, incomplete_remove = { {incomplete, reasons} },
---          groups = {group key = {keep = n, remove = n}}}.
function M.plan(manifests, policy, now, incomplete)
  policy = policy or {}
  now = now or time.now()
  local tz = policy.timezone
  if tz == "" then tz = nil end
  local keep_last = count_of(policy, "keep_last")
  local within = duration_of(policy.keep_within, "keep_within")
  local grace = duration_of(policy.grace, "grace") or M.DEFAULT_GRACE
  local tags = {}
  for _, t in ipairs(policy.keep_tags or {}) do tags[t] = true end
  local counts = {}
  for _, r in ipairs(RULES) do counts[r.key] = count_of(policy, r.key) end
  -- Validate the timezone once, with a clear message.
  if tz then
    local ok, err = pcall(time.parts, 0, tz)
    if not ok then error("retention: " .. tostring(err), 0) end
  end

  -- Group, and sort each group newest first (ties broken by id, then key, so plans are deterministic).
  local groups, order = {}, {}
  for _, m in ipairs(manifests or {}) do
    local g = M.group_key(m)
    if not groups[g] then
      groups[g] = {}
      order[#order + 1] = g
    end
    local t = to_time(m.started_at or M.id_time(m.id), "snapshot " .. tostring(m.id))
    table.insert(groups[g], { m = m, t = t, reasons = {} })
  end
  table.sort(order)

  local result = { keep = {}, remove = {}, incomplete_keep = {}, incomplete_remove = {}, groups = {} }
  for _, g in ipairs(order) do
    local list = groups[g]
    table.sort(list, function(a, b)
      if a.t ~= b.t then return a.t > b.t end
      return tostring(a.m.id) > tostring(b.m.id)
    end)
    local newest = list[1].t
    -- keep_last
    if keep_last ~= 0 then
      for i, s in ipairs(list) do
        if keep_last ~= -1 and i > keep_last then break end
        s.reasons[#s.reasons + 1] = "keep-last " .. i
      end
    end
    -- period rules: each bucket keeps its newest; N buckets per rule.
    local need_parts = false
    for _, r in ipairs(RULES) do
      if counts[r.key] ~= 0 then need_parts = true end
    end
    if need_parts then
      for _, s in ipairs(list) do s.parts = time.parts(s.t, tz) end
      for _, r in ipairs(RULES) do
        local left = counts[r.key]
        if left ~= 0 then
          local last
          for _, s in ipairs(list) do
            if left == 0 then break end
            local b = r.bucket(s.parts)
            if b ~= last then
              s.reasons[#s.reasons + 1] = r.label .. " " .. b
              last = b
              if left > 0 then left = left - 1 end
            end
          end
        end
      end
    end
    -- keep_within, relative to the group's newest snapshot; plus the newest snapshot before the window.
    if within then
      local edge = newest - within
      local label = time.format_duration(within)
      local boundary_done = false
      for _, s in ipairs(list) do
        if s.t >= edge then
          s.reasons[#s.reasons + 1] = "keep-within " .. label
        elseif not boundary_done then
          s.reasons[#s.reasons + 1] = "keep-within boundary (newest before the " .. label .. " window)"
          boundary_done = true
        end
      end
    end
    -- tags
    if next(tags) then
      for _, s in ipairs(list) do
        local t = has_tag(s.m, tags)
        if t then s.reasons[#s.reasons + 1] = "keep-tag " .. t end
      end
    end
    -- safety: the newest complete snapshot of the group
    local first = list[1]
    if #first.reasons == 0 then first.reasons[1] = "newest of its group (always kept)" end

    local gc = { keep = 0, remove = 0 }
    for _, s in ipairs(list) do
      if #s.reasons > 0 then
        result.keep[#result.keep + 1] = { manifest = s.m, reasons = s.reasons, group = g }
        gc.keep = gc.keep + 1
      else
        result.remove[#result.remove + 1] = { manifest = s.m, reasons = { "no rule keeps it" }, group = g }
        gc.remove = gc.remove + 1
      end
    end
    result.groups[g] = gc
  end

  for _, inc in ipairs(incomplete or {}) do
    local t = inc.started_at and to_time(inc.started_at, "incomplete snapshot " .. tostring(inc.id))
      or M.id_time(inc.id)
    if not t then error("retention: incomplete snapshot " .. tostring(inc.id) .. " has no start time", 0) end
    local age = now - t
    if age >= grace then
      result.incomplete_remove[#result.incomplete_remove + 1] = { incomplete = inc,
        reasons = { "incomplete, " .. time.format_duration(age) .. " old (grace " .. time.format_duration(grace) .. ")" } }
    else
      result.incomplete_keep[#result.incomplete_keep + 1] = { incomplete = inc,
        reasons = { "incomplete but within the grace period (" .. time.format_duration(grace) .. "): may still be running" } }
    end
  end
  return result
end

return M
