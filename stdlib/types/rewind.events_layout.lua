---@meta
-- rewind.events_layout: where event-backup puts things in the store.
--   <prefix>/events/<source>/<event_type>/<YYYY-MM-DD>/<first timestamp, 15 digits>-<first id>.jsonl.gz
--   <prefix>/streams/<source>/<label>/<aa>/<sha256>.gz
--   <prefix>/cursors/<source>/<event_type>.json

local M = {}

---Joins key parts with "/", dropping empty ones and stray slashes.
---@param ... string
---@return string
function M.join(...) end

---@return string
function M.events_dir(prefix, source, event_type) end

---The key of a batch whose first event is `first` ({id, timestamp in ms}).
---@param first {id: string, timestamp: number}
---@return string
function M.batch_key(prefix, source, event_type, first) end

---The folder put_cas writes a source's (label's) streams under.
---@param label? string
---@return string
function M.streams_dir(prefix, source, label) end

---@return string
function M.stream_key(prefix, source, label, sha256) end

---@return {source: string, label: string, sha256: string}|nil
function M.parse_stream_key(prefix, key) end

---@return {source: string, event_type: string, day: string, name: string}|nil
function M.parse_batch_key(prefix, key) end

---@return string
function M.cursor_key(prefix, source, event_type) end

---"source/event_type" → source, event_type; a usage error (exit 2) names a bad entry.
---@param text string
---@return string source, string event_type
function M.parse_pair(text) end

return M
