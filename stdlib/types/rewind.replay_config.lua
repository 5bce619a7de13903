---@meta
-- rewind.replay_config: the dependents config of a replay (source document 002), checked before any work.
local M = {}

---@class replay.Entry
---@field name string
---@field topic string         outputKafkaTopic
---@field stores {prefix: string, layout?: string}[]  `azure` (store) dependents
---@field druid string[]       `druid` dependents (datasources)

---Checks one entry; raises `replay config entry "NAME": ...` naming the field that is wrong.
---@param name string
---@param entry table
---@return replay.Entry
function M.check_entry(name, entry) end

---Reads a config file (JSON as the document writes it, or YAML) into its raw entries.
---@param path string
---@return table<string, table>
function M.read_file(path) end

---Checks every entry and returns the one named `source` (optional when there is only one).
---@param entries table<string, table>
---@param source? string
---@return replay.Entry
function M.pick(entries, source) end

return M
