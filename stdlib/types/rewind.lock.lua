---@meta
-- rewind.lock: a lease object in the store (<prefix>/locks/<name>.json), created, renewed (every ttl/3),
-- taken over and deleted only by compare-and-swap on its version. A lease that is lost (taken over,
-- removed, or not renewed before it expired) stops the run (task.abort) with "lost the lease on <label>:
-- ..." naming the new holder. Released by release(), on error (with), on exit and on Ctrl-C. A holder on
-- this host whose process is gone is taken over at once; any other once its lease expired.
local M = {}

---@class rewind.Lock
---@field key string
---@field token string     unique to this holder; the lease record carries it
---@field version string   the lease object's version after our last write
local Lock = {}
---Releases the lock (deletes the lease if it is still ours); safe to call twice. A store error is logged
---and the lease then expires on its own.
---@return boolean released
function Lock:release() end
---Raises, and stops the run, if the lease was lost: taken over, removed, or past its time. Reads the
---lease to be sure (when the store cannot be reached, a lease still within its time is ours). Call it
---right before anything that must not happen without the lease (a commit, a delete).
---@return true
function Lock:check() end

---@class rewind.lock.Opts
---@field ttl? string|number   lease length (default "2m", at least 3 s); renewed every ttl/3
---@field prefix? string       the lease lives at <prefix>/locks/<name>.json
---@field owner? string        recorded as the holder (the procedure's name)
---@field label? string        how errors name the lock

---@class rewind.lock.Holder
---@field owner string
---@field host string
---@field pid integer
---@field token string
---@field acquired_at string
---@field renewed_at string
---@field expires_at string
---@field expires number        epoch seconds
---@field garbage? boolean      the object is not a lease record

---@class rewind.lock.Info: rewind.lock.Holder
---@field key string
---@field version string
---@field expired boolean
---@field process "running"|"gone"|"unknown"  the holder's process, when it ran on this host

---Takes the lock or raises "<label> is locked by <owner> on <host> (pid N) since <time> (lease expires
---<time>)". An expired lease, one that is not a lease record, or one whose holder ran on this host and is
---gone, is taken over.
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

---When this run holds the lease of `prefix` in `store`, checks it (see Lock:check); else does nothing.
---Snapshot commits call it, so a job that lost its lease commits no manifest.
---@param store rewind.Store
---@param prefix string
function M.check_target(store, prefix) end

---The current lease record and its version, or nil. A store error raises (it never means "no lease").
---@param store rewind.Store
---@param name string
---@param opts? {prefix?: string}
---@return rewind.lock.Holder?
---@return string? version
function M.holder(store, name, opts) end

---The current lease with what is known of its holder (expired, process), or nil.
---@param store rewind.Store
---@param name string
---@param opts? {prefix?: string}
---@return rewind.lock.Info?
function M.inspect(store, name, opts) end

---Removes a lease whoever holds it (a holder that still runs stops at its next renewal: it lost the
---lease). Returns the record removed, or nil when there was none.
---@param store rewind.Store
---@param name string
---@param opts? {prefix?: string}
---@return rewind.lock.Holder?
function M.remove(store, name, opts) end

return M
