---@meta
-- rewind.errors: errors with meaning for the host.

local M = {}

---Raises a usage error: the run exits with code 2 and prints `msg` (for bad input params cannot express).
---@param msg string
function M.usage(msg) end

---Whether a caught error is a usage error.
---@param err any
---@return boolean
function M.is_usage(err) end

---A caught error's message, without Lua's traceback; secrets redacted (for logs and summaries).
---@param err any
---@return string
function M.message(err) end
return M
