---@meta
-- rewind.msgpack: MessagePack encoding and decoding (rmp-serde), for APIs that use it (TD v3 table import).
local M = {}

---Encodes one value as msgpack.
---@param value any
---@return string bytes
function M.encode(value) end

---Decodes exactly one msgpack value (maps need string keys; binary data is refused).
---@param bytes string
---@return any value
function M.decode(bytes) end

---gzip of the concatenated msgpack encodings of a list of records (a TD msgpack.gz import body).
---@param records table[]
---@return string bytes
function M.pack_gz(records) end

return M
