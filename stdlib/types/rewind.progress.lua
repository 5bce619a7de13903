---@meta
-- rewind.progress: a bar on a terminal, a log line every 10 s otherwise (REWIND_PROGRESS_EVERY), JSON
-- events on stderr with `run --json` or `--log-format json`, nothing with -q. Items count as the events'
-- files_done/files_total, bytes (unit = "bytes") as bytes_done/bytes_total; see README "Progress".

---@class rewind.progress.Progress
local Progress = {}

---Adds `n` (default 1) to the count.
---@param n? integer
function Progress:add(n) end

---Ends the progress: as done (the last JSON event has `"done": true`), or with `ok = false` as failed
---(`"done": false, "failed": true`); returns the count. One left unfinished ends as failed when collected.
---@param ok? boolean
---@return integer
function Progress:finish(ok) end

local M = {}

---@param opts {label?: string, total?: integer, unit?: "bytes"|"items"}
---@return rewind.progress.Progress
function M.new(opts) end

return M
