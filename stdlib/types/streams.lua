---@meta
-- Userdata shared by many modules: byte streams that primitives hand to each other without the bytes
-- passing through Lua. A Reader or Writer can be consumed once.

---A readable byte stream (a file, a program's stdout, an HTTP body, an object in a store).
---@class rewind.Reader
local Reader = {}

---Reads up to `n` bytes (default 64 KiB); nil at the end of the stream. The slow, explicit path.
---@param n? integer
---@return string|nil
function Reader:read(n) end

---Reads the rest of the stream into a string. For small streams only.
---@return string
function Reader:read_all() end

---Closes the stream without reading the rest.
function Reader:close() end

---A writable byte stream. `close()` commits it (rename, multipart complete); one dropped or aborted
---before `close()` leaves nothing behind.
---@class rewind.Writer
local Writer = {}

---Writes bytes.
---@param data string
function Writer:write(data) end

---Flushes and commits; returns what the destination reports (path or key, bytes, sha256, ...).
---@return table info
function Writer:close() end

---Discards everything written so far.
function Writer:abort() end
