-- In its own file: task.stop() stays in effect for the rest of the state it was called in.
local t = require("rewind.testing")
local task = require("rewind.task")
local time = require("rewind.time")

t.test("stop: stopping() turns true and wait_stop wakes early", function()
  t.eq(task.stopping(), false)
  local woke
  local waiter = task.spawn(function()
    local start = time.monotonic()
    local stopped = task.wait_stop(30)
    woke = { stopped = stopped, after = time.monotonic() - start }
  end)
  task.sleep(0.05)
  task.stop()
  waiter:join()
  t.eq(woke.stopped, true)
  t.ok(woke.after < 5, "wait_stop did not wake on stop")
  t.eq(task.stopping(), true)
end)
