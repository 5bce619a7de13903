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

return M
