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

---A bounded queue between the coroutines of a run (many senders, many receivers). `send` waits while it
---is full, so a fast producer cannot outgrow memory; `recv` returns nil, "closed" once it is closed and
---drained, which is how a worker learns its stage is done.
---@class rewind.task.Channel
local Channel = {}
---Queues `v` (any Lua value), waiting while the channel is full; raises on a closed channel.
---@param v any
function Channel:send(v) end
---The next value; nil, "closed" when closed and empty; nil, "timeout" after `timeout` seconds.
---@param timeout? number
---@return any, ("closed"|"timeout")?
function Channel:recv(timeout) end
---The next value, or nil without waiting.
---@return any
function Channel:try_recv() end
---No more sends; receivers drain what is queued, then get nil.
function Channel:close() end
---@return boolean
function Channel:closed() end
---@return integer
function Channel:len() end
---@return integer
function Channel:capacity() end

---A bounded channel (default capacity 1).
---@param capacity? integer
---@return rewind.task.Channel
function M.channel(capacity) end

---True once the run was asked to stop: a signal reached a script with `drain_on_stop = true`, or
---`task.stop()` was called. Such a script then shuts down in its own order; a second signal ends it at once.
---@return boolean
function M.stopping() end

---Asks the run to stop, as a signal would (for a script's own ordered shutdown).
function M.stop() end

---Sleeps up to `secs`, waking early when the run is asked to stop; returns `stopping()`.
---@param secs number
---@return boolean
function M.wait_stop(secs) end

---Runs `fn(...)`, raising "timed out after ..." if it takes longer than `secs`.
---@param secs number
---@param fn function
---@param ... any
---@return any ...
function M.timeout(secs, fn, ...) end

return M
