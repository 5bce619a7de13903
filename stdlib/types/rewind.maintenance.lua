---@meta
-- rewind.maintenance: an environment under maintenance for the length of some work, always taken out again (success, failure, Ctrl-C, SIGTERM).

---How maintenance is turned on and off: `on`/`off` are http(s) URLs (called with `method`, with a bearer
---token when given, 3 retries) or shell commands.
---@class rewind.maintenance.Switch
---@field on string
---@field off string
---@field method? string          HTTP method of the URLs (default "POST")
---@field token? string           bearer token for the URLs; a secret
---@field timeout? number|string  how long one call may take (default 60 s)

---A maintenance window, from `enter`.
---@class rewind.maintenance.Window
---@field seconds number   seconds the environment was under maintenance (0 until left; 0 for a nil switch)
---@field left boolean     whether the window was left (always true for a nil switch)
---@field failed? string   why the off call failed, when it did
local Window = {}
---Takes the environment out of maintenance (once; later calls do nothing). Returns the seconds it was in,
---or raises when the off call fails (the window then counts as left; the error says to turn it off by hand).
---@return number seconds
function Window:leave() end

local M = {}

---Puts the environment under maintenance and returns the window. The off call is registered (task.on_exit)
---before the on call is made, so an on call that took effect but failed to answer is still undone; a failed
---on call is undone at once and raises. A nil switch gives a window that does nothing (seconds 0).
---@param switch? rewind.maintenance.Switch
---@return rewind.maintenance.Window
function M.enter(switch) end

---Runs fn(window) under maintenance and leaves the window whatever fn does. Returns the seconds spent in
---maintenance, then fn's results. When fn fails its error is raised (with a note on whether maintenance
---was turned off again); when only the off call fails, that error is raised.
---@param switch? rewind.maintenance.Switch
---@param fn fun(w: rewind.maintenance.Window): ...
---@return number seconds
---@return any ... fn's results
function M.during(switch, fn) end

return M
