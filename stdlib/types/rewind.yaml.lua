---@meta
-- rewind.yaml: YAML encode and decode, with the same value mapping as rewind.json.

local M = {}

---The null sentinel (the same value as `json.null`).
---@type lightuserdata
M.null = nil

---Encodes a Lua value as YAML.
---@param value any
---@return string
function M.encode(value) end

---Decodes YAML text; raises "invalid YAML: ..." on bad input.
---@param text string
---@return any
function M.decode(text) end

return M
