---@meta
-- rewind.lock: a lease object in the store (<prefix>/locks/<name>.json, conditional create), renewed while
-- held, taken over after expiry, released by release(), on error (with), on exit and on Ctrl-C.
local M = {}

---@class rewind.Lock
---@field key string
---@field token string
local Lock = {}
---Releases the lock if it is still ours; safe to call twice.
---@return boolean
function Lock:release() end
---Raises if the lease was lost (expired and taken over).
function Lock:check() end

---@class rewind.lock.Opts
---@field ttl? string|number   lease length (default "2m"); renewed every ttl/3
---@field prefix? string       the lease lives at <prefix>/locks/<name>.json
---@field owner? string        recorded as the holder (the procedure's name)
---@field label? string        how errors name the lock

---Takes the lock or raises "<name> is locked by <owner> on <host> (pid N) since <time>".
---@param store rewind.Store
---@param name string
---@param opts? rewind.lock.Opts
---@return rewind.Lock
function M.acquire(store, name, opts) end

---Runs fn(lock) holding the lock; releases it afterwards, also on error.
---@param store rewind.Store
---@param name string
---@param fn fun(l: rewind.Lock): any
---@param opts? rewind.lock.Opts
function M.with(store, name, fn, opts) end

---The lock of a snapshot prefix (<prefix>/locks/target.json): the one every bundled backup, restore and
---prune takes on its prefix, so no two of them run at once there. Errors name the lock by the prefix.
---@param store rewind.Store
---@param prefix string  non-empty
---@param opts? rewind.lock.Opts  (prefix is taken from the argument; label defaults to it)
---@return rewind.Lock
function M.target(store, prefix, opts) end

---Runs fn(lock) holding the lock of a snapshot prefix (see target); releases it afterwards, also on error.
---@param store rewind.Store
---@param prefix string
---@param fn fun(l: rewind.Lock): any
---@param opts? rewind.lock.Opts
function M.with_target(store, prefix, fn, opts) end

---The current lease record, or nil.
---@param store rewind.Store
---@param name string
---@param opts? {prefix?: string}
---@return table?
function M.holder(store, name, opts) end

return M
