---@meta
-- rewind.event_backup: the pipeline of the bundled event-backup script (source document 004): one worker
-- per (source, event type), a hit cache, a fixed number of stream workers, a failure cache, and the
-- ordered shutdown (event workers, then the hit cache, then the stream workers). See scripts/event-backup.lua
-- for the params.

local M = {}

---Runs a backup with event-backup's params; returns {events, pairs, streams, failure_cache, seconds}.
---Raises after the ordered shutdown when streams failed `max_consecutive_failures` times in a row or a
---pair's worker failed.
---@param p table
---@return table
function M.run(p) end

return M
