---@meta
-- rewind.env: environment variables and secrets files. Values read as secrets are redacted from logs,
-- results and errors.

local M = {}

---An environment variable, or `default`.
---@param name string
---@param default? string
---@return string|nil
function M.get(name, default) end

---Like get, and the value is redacted everywhere from now on.
---@param name string
---@return string|nil
function M.secret(name) end

---The value, or an error naming the missing variable.
---@param name string
---@return string
function M.require(name) end

---Reads a secrets file (KEY=VALUE lines, or a YAML/JSON mapping); every value becomes a secret.
---@param path string
---@return table<string,string>
function M.secrets_file(path) end

---Redacts `value` everywhere from now on (a token obtained from an API); returns it.
---@param value string
---@return string
function M.mark_secret(value) end

---`text` with every registered secret replaced by `***`.
---@param text string
---@return string
function M.redact(text) end

---This machine's host name.
---@return string
function M.hostname() end

---rewind's version (manifests record it).
---@return string
function M.rewind_version() end

---This process's id.
---@return integer
function M.pid() end

---@class rewind.env.Process
---@field pid integer
---@field start? string    start time in clock ticks after boot (Linux): tells a reused pid apart
---@field boot_id? string  the kernel's boot id (Linux)
---@field pid_ns? string   the pid namespace, e.g. "pid:[4026531836]" (Linux)

---A running process (default: this one), or nil when none runs with that pid (a zombie counts as gone).
---@param pid? integer
---@return rewind.env.Process?
function M.process(pid) end

return M
