---@meta
-- rewind.dedupe: a persistent set of keys with expiry (the "hit cache": skip content already sent recently).
-- Every add/remove is a durable transaction: a key whose add returned survives a crash.
local M = {}

---@class rewind.Dedupe
local D = {}
--- True when the key was added and has not expired.
---@param key string
---@return boolean
function D:seen(key) end
--- Adds (or refreshes) one key or a list of keys in one transaction; returns how many were new.
---@param key string|string[]
---@return integer
function D:add(key) end
--- Removes keys; returns how many existed.
---@param key string|string[]
---@return integer
function D:remove(key) end
--- Deletes entries older than the ttl; returns how many.
---@return integer
function D:expire() end
--- Up to `limit` keys that count as seen, in key order (a failure cache lists what to retry).
---@param limit? integer
---@return string[]
function D:keys(limit) end
--- Entries that count as seen.
---@return integer
function D:count() end
---@return string
function D:path() end

--- Opens (creating if needed) a dedupe cache file. ttl: seconds or a duration ("7d"); nil = never expire.
---@param path string
---@param opts? {ttl?: number|string}
---@return rewind.Dedupe
function M.open(path, opts) end

return M
