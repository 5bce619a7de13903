---@meta
-- rewind.archive_layout: keys of topic-archive batches, and where a day's archived objects are.
local M = {}

---`<prefix>/<topic>/<YYYY-MM-DD>/<HH>/<topic>-<partition>-<first offset, 20 digits>.jsonl.gz`
---@param prefix string
---@param batch {topic: string, partition: integer, first_offset: integer, first_timestamp?: number}
---@return string
function M.key(prefix, batch) end

---@param key string
---@return {topic: string, date: string, hour: string, partition: integer, first_offset: integer}|nil
function M.parse(key) end

---Day-folder templates of common sink layouts: "topic-archive", "daily", "secor", "kafka-connect".
---@type table<string, string>
M.PRESETS = {}

---The template for a preset name or a template string ({prefix}, {topic}, {yyyy}, {MM}, {dd},
---{yyyy-MM-dd}); raises naming an unknown preset or placeholder, or a template without a day.
---@param layout? string default "topic-archive"
---@return string
function M.template(layout) end

---The key prefix holding one day's objects.
---@param template string
---@param day string YYYY-MM-DD
---@param vars {prefix?: string, topic?: string}
---@return string
function M.day_prefix(template, day, vars) end

return M
