-- rewind.maintenance: put an environment under maintenance for the length of some work, and always
-- take it out again: on success, on failure, on Ctrl-C and SIGTERM (task.on_exit). A switch is
-- {on, off, method, token, timeout}: `on`/`off` are http(s) URLs (called with `method`, a bearer
-- token when given) or shell commands.
local exec = require("rewind.exec")
local http = require("rewind.http")
local log = require("rewind.log")
local task = require("rewind.task")
local time = require("rewind.time")

local M = {}

local function call(switch, what)
  local target = switch[what]
  if target:match("^https?://") then
    local headers = {}
    if switch.token and switch.token ~= "" then headers.Authorization = "Bearer " .. switch.token end
    http.request({ method = switch.method or "POST", url = target, headers = headers,
      timeout = switch.timeout or 60, retries = 3 })
  else
    exec.run({ target, shell = true, timeout = switch.timeout or 60 })
  end
end

local Window = {}
Window.__index = Window

--- Takes the environment out of maintenance (once; later calls do nothing). Returns the seconds it
--- was in, or raises when the off call fails (then it is still counted as ended: the error says so).
function Window:leave()
  if self.left or not self.switch then return self.seconds end
  self.left = true
  self.seconds = time.monotonic() - self.started
  local ok, err = pcall(call, self.switch, "off")
  if not ok then
    self.failed = tostring(err)
    log.error("could not take the environment out of maintenance: turn it off by hand", { error = self.failed })
    error("maintenance could not be turned off (turn it off by hand): " .. self.failed, 0)
  end
  log.info("maintenance off", { seconds = math.floor(self.seconds * 10) / 10 })
  return self.seconds
end

--- Puts the environment under maintenance and returns the window. The off call is registered before
--- the on call is made, so an on call that took effect but failed to answer is still undone.
--- A nil switch gives a window that does nothing (seconds 0).
function M.enter(switch)
  local w = setmetatable({ switch = switch, started = time.monotonic(), seconds = 0, left = false }, Window)
  if not switch then
    w.left = true
    return w
  end
  task.on_exit(function()
    if not w.left then pcall(w.leave, w) end
  end)
  local ok, err = pcall(call, switch, "on")
  if not ok then
    pcall(w.leave, w)
    error("could not put the environment under maintenance: " .. tostring(err), 0)
  end
  log.info("maintenance on")
  return w
end

--- Runs fn() under maintenance; returns its results and the seconds spent in maintenance. The window
--- is left whatever fn does; when fn fails, its error is raised (with a note if turning off failed too).
function M.during(switch, fn)
  local w = M.enter(switch)
  local res = table.pack(pcall(fn, w))
  local ok_off, off_err = pcall(w.leave, w)
  if not res[1] then
    local msg = tostring(res[2])
    if switch then
      msg = msg .. string.format("\n  maintenance: on for %.1f s, %s", w.seconds,
        ok_off and "turned off again" or ("NOT turned off: " .. tostring(off_err)))
    end
    error(msg, 0)
  end
  if not ok_off then error(off_err, 0) end
  return w.seconds, table.unpack(res, 2, res.n)
end

return M
