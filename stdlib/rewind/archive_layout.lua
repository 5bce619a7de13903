-- rewind.archive_layout: where topic-archive puts a batch, and how to read a key back.
--
--   <prefix>/<topic>/<YYYY-MM-DD>/<HH>/<topic>-<partition>-<first offset>.jsonl.gz
--
-- The date and hour are the UTC Kafka timestamp of the batch's FIRST record (not the wall clock), and the
-- first offset is zero-padded to 20 digits, so the key of a batch is a pure function of its first record:
-- re-archiving the same batch after a crash overwrites the same key instead of adding a duplicate, and
-- keys sort by offset within an hour.
local time = require("rewind.time")

local M = {}

local function join(prefix, rest)
  if prefix == nil or prefix == "" then
    return rest
  end
  return (prefix:gsub("/+$", "")) .. "/" .. rest
end

--- The key of a batch: `batch` has topic, partition, first_offset, first_timestamp (epoch seconds or nil).
function M.key(prefix, batch)
  local ts = batch.first_timestamp or 0
  local day = time.format(ts, "%Y-%m-%d")
  local hour = time.format(ts, "%H")
  local name = string.format("%s-%d-%020d.jsonl.gz", batch.topic, batch.partition, batch.first_offset)
  return join(prefix, string.format("%s/%s/%s/%s", batch.topic, day, hour, name))
end

--- Parses a key written by `key` back into {topic, date, hour, partition, first_offset}, or nil.
function M.parse(key)
  local topic, date, hour, name = key:match("([^/]+)/(%d%d%d%d%-%d%d%-%d%d)/(%d%d)/([^/]+)%.jsonl%.gz$")
  if not topic then
    return nil
  end
  local partition, offset = name:match("%-(%d+)%-(%d+)$")
  if not partition then
    return nil
  end
  return {
    topic = topic,
    date = date,
    hour = hour,
    partition = tonumber(partition),
    first_offset = tonumber(offset),
  }
end

-- Where a day's objects are, for procedures that read archives back (replay). A template names the
-- folder that holds one day of a sink's output; every object under it belongs to that day. Placeholders:
-- {prefix}, {topic}, {yyyy}, {MM}, {dd}, {yyyy-MM-dd}. Presets for the layouts sinks commonly write:
M.PRESETS = {
  -- rewind's topic-archive, with prefix = "<topic-archive prefix>/<topic>"
  ["topic-archive"] = "{prefix}/{yyyy-MM-dd}/",
  daily = "{prefix}/{yyyy}/{MM}/{dd}/",
  secor = "{prefix}/dt={yyyy-MM-dd}/",
  ["kafka-connect"] = "{prefix}/topics/{topic}/year={yyyy}/month={MM}/day={dd}/",
}

local PLACEHOLDERS = { prefix = true, topic = true, yyyy = true, MM = true, dd = true, ["yyyy-MM-dd"] = true }

--- The template for `layout` (a preset name or a template), or raises naming what is wrong with it.
function M.template(layout)
  layout = layout or "topic-archive"
  local t = M.PRESETS[layout] or layout
  if not t:find("{", 1, true) then
    local names = {}
    for k in pairs(M.PRESETS) do names[#names + 1] = k end
    table.sort(names)
    error(string.format("layout %q is neither a preset (%s) nor a template with {yyyy}, {MM}, {dd} placeholders",
      layout, table.concat(names, ", ")), 0)
  end
  for name in t:gmatch("{([^}]*)}") do
    if not PLACEHOLDERS[name] then
      error(string.format("layout %q: unknown placeholder {%s} (known: {prefix}, {topic}, {yyyy}, {MM}, {dd}, {yyyy-MM-dd})",
        layout, name), 0)
    end
  end
  if not (t:find("{yyyy", 1, true) and (t:find("{dd}", 1, true) or t:find("{yyyy-MM-dd}", 1, true))) then
    error(string.format("layout %q names no day: it needs {yyyy}/{MM}/{dd} or {yyyy-MM-dd}", layout), 0)
  end
  return t
end

--- The key prefix of one day's objects: `day` is "YYYY-MM-DD"; vars has prefix and topic. Empty
--- segments ({prefix} = "") collapse, and the result never starts with '/'.
function M.day_prefix(template, day, vars)
  local y, m, d = day:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  assert(y, "day_prefix: day must be YYYY-MM-DD, got " .. tostring(day))
  local values = { prefix = vars.prefix or "", topic = vars.topic or "", yyyy = y, MM = m, dd = d,
    ["yyyy-MM-dd"] = day }
  local out = template:gsub("{([^}]*)}", function(name) return values[name] end)
  out = out:gsub("//+", "/"):gsub("^/", "")
  return out
end

return M
