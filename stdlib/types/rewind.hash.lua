---@meta
-- rewind.hash: sha256 of strings, files and readers (streaming, using the CPU's SHA extensions).
local M = {}

---@class rewind.Digest
---@field sha256 fun(self): string|nil  hex digest once the stream ended (nil with digest=false)
---@field size fun(self): integer        bytes seen so far
---@field done fun(self): boolean        whether the stream ended (reader) or was committed (writer)

--- sha256 of a string, as lowercase hex.
---@param s string
---@return string
function M.sha256(s) end

--- sha256 of a file, streaming.
---@param path string
---@return string hex
---@return integer size
function M.sha256_file(path) end

--- sha256 of a reader, consumed to its end.
---@param r rewind.Reader|string
---@return string hex
---@return integer size
function M.sha256_reader(r) end

--- Wraps a reader: hashes what passes through. With `size`/`sha256`, the reader fails at EOF on a mismatch.
--- `digest = false` only counts the size (for what age already authenticates); it cannot take `sha256`.
---@param r rewind.Reader|string
---@param opts? {size?: integer, sha256?: string, label?: string, digest?: boolean}
---@return rewind.Reader
---@return rewind.Digest
function M.reader(r, opts) end

--- Wraps a writer: its `close()` result also has `size` and `sha256`; the digest has them once committed
--- (also when another primitive, such as tar.create, consumed and committed the writer).
--- `digest = false` only counts the size: `close()` has `size` and no `sha256`.
---@param w rewind.Writer
---@param opts? {digest?: boolean}
---@return rewind.Writer
---@return rewind.Digest
function M.writer(w, opts) end

return M
