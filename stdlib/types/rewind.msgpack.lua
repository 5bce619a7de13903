---@meta
-- rewind.msgpack: MessagePack encoding (rmp-serde), for APIs that take it (TD v3 table import).
local M = {}

---Encodes one value as msgpack.
---@param value any
---@return string bytes
function M.encode(value) end

---gzip of the concatenated msgpack encodings of a list of records (a TD msgpack.gz import body).
---@param records table[]
---@return string bytes
function M.pack_gz(records) end

return M
