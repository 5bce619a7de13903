---@meta
-- rewind.log: structured log lines into tracing (human or JSON with --log-format); secrets are redacted.

local M = {}

---@param msg string
---@param fields? table<string, any>
function M.debug(msg, fields) end

---@param msg string
---@param fields? table<string, any>
function M.info(msg, fields) end

---@param msg string
---@param fields? table<string, any>
function M.warn(msg, fields) end

---@param msg string
---@param fields? table<string, any>
function M.error(msg, fields) end

return M
