---@meta
-- rewind.progress: a bar on a terminal, periodic log lines otherwise, nothing with -q.

---@class rewind.progress.Progress
local Progress = {}

---Adds `n` (default 1) to the count.
---@param n? integer
function Progress:add(n) end

---Ends the bar; returns the count.
---@return integer
function Progress:finish() end

local M = {}

---@param opts {label?: string, total?: integer, unit?: "bytes"|"items"}
---@return rewind.progress.Progress
function M.new(opts) end

return M
