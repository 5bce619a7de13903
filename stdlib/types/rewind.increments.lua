---@meta
-- rewind.increments: incremental, indexed archives inside snapshots (backup-dir, druid-backup's deep
-- storage): the manifest names the archive's index, the parent snapshot, the chain length and the
-- ancestors' archives it reads (`references`); prune keeps what kept snapshots reference.

local M = {}

---The snapshot to build on (the newest under `prefix` when it has an index and its chain is shorter than
---`opts.max_chain`, default 30), or nil for a full copy (`opts.full`, none yet, or one without an index).
---@param store any
---@param prefix string
---@param opts {full?: boolean, max_chain?: integer}
---@return table|nil manifest
function M.parent(store, prefix, opts) end

---The tar.create options (index, object, parent) that make the archive `name`.`ext` of `snap` indexed.
---@param store any
---@param snap table
---@param name string
---@param ext string
---@param parent table|nil
---@return table
function M.tar_options(store, snap, name, ext, parent) end

---The manifest fields (index, parent, chain, references, files_new, ...) for tar.create's result `res`.
---@param name string
---@param parent table|nil
---@param res table
---@return table
function M.manifest_fields(name, parent, res) end

---A reader of an opened snapshot's composed tar stream (every file's sha256 checked), limited to `path`;
---second, its live counts (files, bytes, ranges, stored_bytes).
---@param opened table
---@param path? string
---@return any reader, table counts
function M.compose(opened, path) end

---The files and bytes a restore of an opened snapshot's archive writes (of `path` alone when given): from
---the manifest (an indexed one's files_new + files_unchanged, bytes_new + bytes_unchanged; else files,
---bytes_in), or for a path from its index (`tar.index{summary = true}`); nil where the manifest lacks them.
---The totals of a restore's progress (`tar.extract{progress = ...}`).
---@param opened table
---@param path? string
---@return {files?: integer, bytes?: integer}
function M.totals(opened, path) end

return M
