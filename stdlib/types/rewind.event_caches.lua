---@meta
-- rewind.event_caches: event-backup's two local, durable caches (rewind.dedupe files): the hit cache
-- (streams known to be stored: two bounded in-memory generations over a file with a ttl; a stream is
-- remembered only once stored) and the failure cache (requests of streams that could not be backed up).

---@class rewind.event_caches.Request
---@field source string
---@field label string
---@field sha256 string
---@field size? integer

---@class rewind.event_caches.HitCache
local HitCache = {}
---Whether "source/label/sha256" is known to be stored (memory first, then the file).
---@param id string
---@return boolean
function HitCache.known(id) end
---Remembers a stored stream; written to the file by the next `save`.
---@param id string
function HitCache.stored(id) end
---Writes what `stored` collected in one transaction.
function HitCache.save() end
---@return integer
function HitCache.count() end

---@class rewind.event_caches.FailureCache
---@field path string
local FailureCache = {}
---Records a request; durable when this returns.
---@param req rewind.event_caches.Request
function FailureCache.add(req) end
---@param req rewind.event_caches.Request
function FailureCache.remove(req) end
---@return rewind.event_caches.Request[]
function FailureCache.list() end
---@return integer
function FailureCache.count() end

local M = {}

---$XDG_STATE_HOME (else ~/.local/state)/rewind/<procedure>/<16 hex digits of sha256(store url, prefix)>.
---@return string
function M.default_dir(procedure, store_url, prefix) end

---@param dir string
---@param opts {size: integer, ttl: number}
---@return rewind.event_caches.HitCache
function M.hit_cache(dir, opts) end

---@param dir string
---@return rewind.event_caches.FailureCache
function M.failure_cache(dir) end

return M
