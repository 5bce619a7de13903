---@meta
-- rewind.codec: streaming compression. A reader goes in, a reader comes out; the bytes never pass
-- through Lua and memory stays bounded however large the stream.

---@class rewind.codec.Opts
---@field codec? "zstd"|"gzip"|"none"  default "zstd"
---@field level? integer               zstd 1..19 (default 3), gzip 0..9 (default 6)
---@field workers? integer             zstd worker threads (default 0: compress on one thread)

local M = {}

---Compresses a stream: `store:put(key, codec.compress(p:stdout(), {level = 1}))`.
---@param input rewind.Reader|string
---@param opts? rewind.codec.Opts
---@return rewind.Reader
function M.compress(input, opts) end

---Decompresses a stream; a damaged or truncated input fails the reader that reads the output.
---@param input rewind.Reader|string
---@param opts? {codec?: "zstd"|"gzip"|"none"}
---@return rewind.Reader
function M.decompress(input, opts) end

---The file extension of a codec: "zst", "gz", or "" for none.
---@param codec? string
---@return string
function M.ext(codec) end

return M
