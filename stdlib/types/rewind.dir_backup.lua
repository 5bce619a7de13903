---@meta
-- rewind.dir_backup: the work of the bundled backup-dir script: one snapshot of the directories under one
-- prefix, or with each=true one snapshot per directory under its own prefix and lease, this copy's share
-- of them (rewind.shard), skipping prefixes whose newest snapshot carries tag batch=ID. See
-- scripts/backup-dir.lua for the params.

local M = {}

---Runs backup-dir with its params. One snapshot: {status, snapshot, store, prefix, key, files, dirs,
---symlinks, skipped, bytes_in, bytes_out, ratio, seconds, batch}. each=true: {store, share, batch,
---prefixes = {{prefix, from, status = "done"|"already done", snapshot, ...}}, done, already_done, seconds};
---raises at the end, naming them, when prefixes failed. Bad params raise a usage error before anything
---is written.
---@param p table
---@param ctx table
---@return table
function M.run(p, ctx) end

return M
