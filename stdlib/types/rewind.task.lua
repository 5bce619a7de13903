---@meta
-- rewind.task: concurrency inside one Lua state; I/O primitives are async, so coroutines interleave.

---A coroutine started with `task.spawn`.
---@class rewind.task.Task
local Task = {}

---Waits for the task; returns its results or raises its error.
---@return any ...
function Task:join() end

---Stops the task.
function Task:abort() end

---Whether the task has finished.
---@return boolean
function Task:done() end

local M = {}

---Runs `fn(...)` concurrently.
---@param fn function
---@param ... any
---@return rewind.task.Task
function M.spawn(fn, ...) end

---Waits `secs` seconds without blocking other tasks.
---@param secs number
function M.sleep(secs) end

---Calls `fn(item, index)` for each item, at most `concurrency` at once; results keep the order of items.
---The first error is raised once running calls end; no new call starts after it.
---@generic T, R
---@param items T[]
---@param concurrency integer
---@param fn fun(item: T, index: integer): R
---@return R[]
function M.map(items, concurrency, fn) end

---Registers `fn` to run when the script ends, fails or is cancelled (Ctrl-C, SIGTERM); newest first.
---@param fn fun()
function M.on_exit(fn) end

---Stops the whole run now, from any coroutine (a lost lease, say): the script's work and every coroutine
---it started stop, the `on_exit` handlers run, and the run fails with `reason`. Raises `reason` in the caller.
---@param reason string
function M.abort(reason) end

---Runs `fn(...)`, raising "timed out after ..." if it takes longer than `secs`.
---@param secs number
---@param fn function
---@param ... any
---@return any ...
function M.timeout(secs, fn, ...) end

return M
