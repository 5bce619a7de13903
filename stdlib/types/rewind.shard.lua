---@meta
-- rewind.shard: a procedure's share of its work when N copies run side by side (a Kubernetes Indexed Job):
-- `index`/`count` params, else JOB_COMPLETION_INDEX / JOB_COMPLETION_COUNT from the environment.

---@class rewind.shard.Position
---@field index integer  from 0
---@field count integer

local M = {}

---The position, or nil when the work is not split; a usage error (exit 2) for a bad or half-given one.
---@param p {index?: integer, count?: integer}
---@return rewind.shard.Position|nil
function M.position(p) end

---This position's contiguous share of `items` (sizes differ by at most one; all items when `pos` is nil).
---@generic T
---@param items T[]
---@param pos? rewind.shard.Position
---@return T[]
function M.share(items, pos) end

---"2 of 8" (1-based), or nil.
---@param pos? rewind.shard.Position
---@return string|nil
function M.describe(pos) end

return M
