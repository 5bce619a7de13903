---@meta
-- rewind.snapshot_files: the files of indexed snapshots (incremental backup-dir), for the ls, diff and
-- find scripts.

local M = {}

---@class rewind.IndexEntry
---@field path string
---@field type "file"|"dir"|"symlink"
---@field size? integer
---@field mode? integer
---@field mtime? integer
---@field sha256? string
---@field link? string

---The opened snapshot (`id` nil: the newest) and its entries, filtered by `opts.path` (that entry and
---what lies under it) and `opts.glob` (on the whole path). A snapshot without an index is a usage error.
---@param store any
---@param prefix string
---@param id? string
---@param opts? {path?: string, glob?: string}
---@return table snap, rewind.IndexEntry[] entries
function M.entries(store, prefix, id, opts) end

---`ls -l`-like text of one entry.
---@param e rewind.IndexEntry
---@return string
function M.line(e) end

---What differs between two entries of one path: "type", "content", "mode", "target", or nil.
---@param a rewind.IndexEntry
---@param b rewind.IndexEntry
---@return string|nil
function M.change(a, b) end

---Added and removed paths and changed {path, what} from entries `a` to entries `b`.
---@param a rewind.IndexEntry[]
---@param b rewind.IndexEntry[]
---@return string[] added, string[] removed, {path: string, what: string}[] changed
function M.diff(a, b) end

return M
