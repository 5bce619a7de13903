---@meta
-- rewind.fs: local files. Writes are atomic (a temporary file beside the target, then a rename).

---@class rewind.fs.Stat
---@field path string
---@field name? string   entry name (list only)
---@field rel? string    path relative to the walked directory (walk only)
---@field size integer
---@field type "file"|"dir"|"symlink"|"other"
---@field mode integer   permission bits
---@field mtime number   seconds since the epoch

local M = {}

---Reads a whole file.
---@param path string
---@return string data
function M.read(path) end

---Writes a file atomically (temp file + rename), creating parent directories.
---@param path string
---@param data string
function M.write(path, data) end

---Whether a path exists (without following a final symlink).
---@param path string
---@return boolean
function M.exists(path) end

---File information, or nil when the path does not exist.
---@param path string
---@return rewind.fs.Stat|nil
function M.stat(path) end

---Creates a directory and its parents.
---@param path string
function M.mkdir(path) end

---Removes a file or an empty directory (`{recursive=true}` for a tree); false when it did not exist.
---@param path string
---@param opts? {recursive?: boolean}
---@return boolean removed
function M.remove(path, opts) end

---Renames a file or directory.
---@param from string
---@param to string
function M.rename(from, to) end

---Exchanges two existing paths in one step (Linux renameat2 RENAME_EXCHANGE): afterwards each name
---holds what the other held, and at no moment is either missing. Both must be on one filesystem that
---supports it (ext4, xfs, btrfs, tmpfs, ...); otherwise it raises.
---@param a string
---@param b string
function M.swap(a, b) end

---The entries of one directory, sorted by name; `glob` filters on the entry name.
---@param dir string
---@param opts? {glob?: string}
---@return rewind.fs.Stat[]
function M.list(dir, opts) end

---Iterates over every entry below `dir`, depth first and sorted; `glob` matches the path relative to dir
---(`**/*.json`).
---@param dir string
---@param opts? {glob?: string}
---@return fun(): rewind.fs.Stat|nil
function M.walk(dir, opts) end

---A new private directory, removed with its contents when the script exits.
---@param prefix? string
---@return string path
function M.temp_dir(prefix) end

---A reader over a file, for other primitives to consume.
---@param path string
---@return rewind.Reader
function M.reader(path) end

---A writer to a file, committed atomically on `close()`.
---@param path string
---@return rewind.Writer
function M.writer(path) end

return M
