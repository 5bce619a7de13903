-- rewind.shard: a procedure's share of its work when N copies of it run side by side, as the pods of a
-- Kubernetes Indexed Job do. The position comes from the params `index`/`count`, else from the
-- environment a pod gets: JOB_COMPLETION_INDEX (set by Kubernetes) and JOB_COMPLETION_COUNT (set in the
-- manifest to the Job's `completions`). Shares are contiguous slices whose sizes differ by at most one, so
-- together they cover the list without overlap or gap.
local env = require("rewind.env")
local errors = require("rewind.errors")

local M = {}

local function whole(v)
  return type(v) == "number" and v == math.floor(v)
end

---{index, count} (index from 0), or nil when the work is not split.
---@param p {index?: integer, count?: integer}
function M.position(p)
  local index, count = p.index, p.count
  local from_env = false
  if index == nil and count == nil then
    local i, c = env.get("JOB_COMPLETION_INDEX"), env.get("JOB_COMPLETION_COUNT")
    if i == nil and c == nil then
      return nil
    end
    index, count, from_env = tonumber(i or ""), tonumber(c or ""), true
  end
  local names = from_env and "JOB_COMPLETION_INDEX and JOB_COMPLETION_COUNT" or "index and count"
  if not whole(index) or not whole(count) then
    errors.usage(names .. " go together: both whole numbers (a Kubernetes Indexed Job sets the index; set the count to its completions)")
  end
  if count < 1 or index < 0 or index >= count then
    errors.usage(string.format("%s: need 0 <= index < count, got index %d of %d", names, index, count))
  end
  return { index = math.floor(index), count = math.floor(count) }
end

---The items of this position's share, in order (all of them when `pos` is nil).
---@generic T
---@param items T[]
---@param pos? {index: integer, count: integer}
---@return T[]
function M.share(items, pos)
  if not pos then
    return items
  end
  local n = #items
  local base, extra = n // pos.count, n % pos.count
  local first = pos.index * base + math.min(pos.index, extra) + 1
  local len = base + (pos.index < extra and 1 or 0)
  local out = {}
  for i = first, first + len - 1 do
    out[#out + 1] = items[i]
  end
  return out
end

---"2 of 8" (1-based, for logs and results), or nil.
function M.describe(pos)
  return pos and string.format("%d of %d", pos.index + 1, pos.count) or nil
end

return M
