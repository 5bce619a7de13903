-- rewind.events_layout: where event-backup puts things in the store, and how event-restore finds them.
--   <prefix>/events/<source>/<event_type>/<YYYY-MM-DD>/<first timestamp, 15 digits>-<first id>.jsonl.gz
--   <prefix>/streams/<source>/<label>/<aa>/<sha256>.gz
--   <prefix>/cursors/<source>/<event_type>.json   (the pair's cursor, saved after each durable batch)
-- The timestamp is zero-padded so that key order is time order within a day.
local time = require("rewind.time")

local M = {}

local function join(...)
  local parts = {}
  for _, s in ipairs({ ... }) do
    s = tostring(s):gsub("^/+", ""):gsub("/+$", "")
    if s ~= "" then
      parts[#parts + 1] = s
    end
  end
  return table.concat(parts, "/")
end
M.join = join

-- A name part must not add or remove a folder level.
local function part(s)
  return (tostring(s):gsub("[/%c]", "_"))
end

function M.events_dir(prefix, source, event_type)
  return join(prefix, "events", part(source), part(event_type))
end

---The key of a batch whose first event is `first` (timestamp in ms).
function M.batch_key(prefix, source, event_type, first)
  local day = time.format(math.floor(first.timestamp / 1000), "%Y-%m-%d")
  return join(M.events_dir(prefix, source, event_type), day,
    string.format("%015d-%s.jsonl.gz", math.floor(first.timestamp), part(first.id)))
end

function M.streams_dir(prefix, source, label)
  return join(prefix, "streams", part(source), label and part(label) or nil)
end

---The stream's key: put_cas writes `<dir>/<aa>/<sha256>.gz` under streams_dir(prefix, source, label).
function M.stream_key(prefix, source, label, sha256)
  return join(M.streams_dir(prefix, source, label), sha256:sub(1, 2), sha256 .. ".gz")
end

---{source, label, sha256} of a stream key, or nil for another object.
function M.parse_stream_key(prefix, key)
  local rest = key:sub(#join(prefix, "streams") + 2)
  local source, label, sha = rest:match("^([^/]+)/([^/]+)/%x%x/(%x+)%.gz$")
  if sha and #sha == 64 then
    return { source = source, label = label, sha256 = sha }
  end
end

---{source, event_type, day, name} of a batch key, or nil for another object.
function M.parse_batch_key(prefix, key)
  local rest = key:sub(#join(prefix, "events") + 2)
  local source, event_type, day, name = rest:match("^([^/]+)/([^/]+)/(%d%d%d%d%-%d%d%-%d%d)/([^/]+%.jsonl%.gz)$")
  if source then
    return { source = source, event_type = event_type, day = day, name = name }
  end
end

function M.cursor_key(prefix, source, event_type)
  return join(prefix, "cursors", part(source), part(event_type) .. ".json")
end

---"source/event_type" → source, event_type (raises a usage error naming the bad entry).
function M.parse_pair(text)
  local source, event_type = tostring(text):match("^([^/%s]+)/([^/%s]+)$")
  if not source then
    require("rewind.errors").usage(string.format("pairs: %q is not source/event_type", tostring(text)))
  end
  return source, event_type
end

return M
