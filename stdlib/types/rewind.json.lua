---@meta
-- rewind.json: JSON encode and decode. `json.null` stands for null inside tables; decoded arrays are
-- marked so `[]` encodes back as `[]`; integers stay 64-bit.

local M = {}

---The JSON null sentinel (a light userdata).
---@type lightuserdata
M.null = nil

---Encodes a Lua value as JSON. Object keys are sorted.
---@param value any
---@param opts? {pretty?: boolean}
---@return string
function M.encode(value, opts) end

---Decodes JSON text; raises "invalid JSON: ..." on bad input.
---@param text string
---@return any
function M.decode(text) end

---Marks a table (or a new empty one) as a JSON array, so an empty one encodes as `[]`.
---@param t? table
---@return table
function M.array(t) end

---Whether a value is `json.null`.
---@param v any
---@return boolean
function M.is_null(v) end

return M
