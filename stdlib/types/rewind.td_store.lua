---@meta
-- rewind.td_store: snapshots and restore state for the td-ps-* procedures (rewind.snapshot when present).
local M = {}
---@type boolean true when rewind.snapshot is available
M.native = false
---Opens a store by URL (nil: default local store).
function M.open(url) end
---Starts a snapshot (rewind.snapshot contract).
function M.begin(store, opts) end
---Opens a complete snapshot (newest when id is nil).
function M.open_snapshot(store, prefix, id) end
---Loads saved restore state or nil.
function M.load_state(store, key) end
---Saves restore state.
function M.save_state(store, key, state) end
return M
