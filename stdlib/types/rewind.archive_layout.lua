---@meta
-- rewind.archive_layout: keys of topic-archive batches.
local M = {}

---`<prefix>/<topic>/<YYYY-MM-DD>/<HH>/<topic>-<partition>-<first offset, 20 digits>.jsonl.gz`
---@param prefix string
---@param batch {topic: string, partition: integer, first_offset: integer, first_timestamp?: number}
---@return string
function M.key(prefix, batch) end

---@param key string
---@return {topic: string, date: string, hour: string, partition: integer, first_offset: integer}|nil
function M.parse(key) end

return M
