---@meta
-- rewind.event_restore: the bundled event-restore script's procedure: streams first, then events per
-- pair by day and time, with local checkpoints, in-doubt batches settled by reading the dispatcher, and
-- 409 missing streams sent again. See scripts/event-restore.lua for the params.

local M = {}

---Runs a restore (or with `dry_run`, counts it); returns the counts.
---@param p table
---@return table
function M.run(p) end

return M
