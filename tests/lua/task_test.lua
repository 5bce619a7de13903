local t = require("rewind.testing")
local task = require("rewind.task")
local time = require("rewind.time")

t.test("map keeps the order of items and runs concurrently", function()
  local running, peak = 0, 0
  local start = time.monotonic()
  local items = {}
  for i = 1, 20 do items[i] = i end
  local out = task.map(items, 5, function(item, index)
    running = running + 1
    peak = math.max(peak, running)
    task.sleep((21 - item) * 0.005) -- later items finish first
    running = running - 1
    return item * 10 + index
  end)
  for i = 1, 20 do t.eq(out[i], i * 11) end
  t.eq(peak, 5)
  t.ok(time.monotonic() - start < 3.0, "map did not run concurrently")
end)

t.test("map raises the first error and starts nothing after it", function()
  local started = 0
  local items = {}
  for i = 1, 50 do items[i] = i end
  local err = t.raises(function()
    task.map(items, 2, function(item)
      started = started + 1
      task.sleep(0.01)
      if item == 3 then error("item 3 is bad") end
      return item
    end)
  end, "item 3 is bad")
  t.ok(started < 10, "kept starting calls after the error: " .. started)
  t.ok(err)
end)

t.test("map of an empty list", function()
  t.eq(#task.map({}, 4, function() return 1 end), 0)
end)

t.test("spawn and join return values; errors surface at join", function()
  local a = task.spawn(function(x, y) task.sleep(0.02); return x + y, "two" end, 1, 2)
  local b = task.spawn(function() task.sleep(0.01); error("boom in task") end)
  local s, two = a:join()
  t.eq(s, 3)
  t.eq(two, "two")
  t.ok(a:done())
  t.raises(function() b:join() end, "boom in task")
  t.raises(function() a:join() end, "already joined")
end)

t.test("spawned tasks interleave", function()
  local log = {}
  local x = task.spawn(function() for i = 1, 3 do log[#log + 1] = "x" .. i; task.sleep(0.01) end end)
  local y = task.spawn(function() for i = 1, 3 do log[#log + 1] = "y" .. i; task.sleep(0.01) end end)
  x:join(); y:join()
  t.eq(#log, 6)
  t.ok(table.concat(log, ","):find("x1,y1", 1, true) or table.concat(log, ","):find("y1,x1", 1, true))
end)

t.test("abort stops a task", function()
  local reached = false
  local k = task.spawn(function() task.sleep(0.2); reached = true end)
  task.sleep(0.01)
  k:abort()
  t.raises(function() k:join() end, "aborted")
  task.sleep(0.3)
  t.eq(reached, false)
end)

t.test("timeout", function()
  t.eq(task.timeout(1, function(v) task.sleep(0.01); return v end, "ok"), "ok")
  t.raises(function() task.timeout(0.05, function() task.sleep(1) end) end, "timed out after 50ms")
end)

local order = {}
t.test("on_exit handlers are registered", function()
  task.on_exit(function() order[#order + 1] = "first" end)
  task.on_exit(function() order[#order + 1] = "second" end)
  task.on_exit(function() error("a failing handler does not stop the others") end)
  t.eq(#order, 0)
end)

t.test("on_exit handlers ran after the case, newest first", function()
  t.eq(order, { "second", "first" })
end)

t.test("channel: bounded, many receivers, nil once closed and drained", function()
  local ch = task.channel(2)
  t.eq(ch:capacity(), 2)
  local sent = 0
  local producer = task.spawn(function()
    for i = 1, 10 do
      ch:send({ n = i })
      sent = sent + 1
    end
    ch:close()
  end)
  task.sleep(0.05)
  t.eq(sent, 2, "send waits while the channel is full")
  t.eq(ch:len(), 2)
  local got = {}
  local function consumer()
    while true do
      local v, why = ch:recv()
      if v == nil then
        t.eq(why, "closed")
        return
      end
      got[#got + 1] = v.n
      task.sleep(0.001)
    end
  end
  local a, b = task.spawn(consumer), task.spawn(consumer)
  a:join(); b:join(); producer:join()
  table.sort(got)
  t.eq(#got, 10, "every item exactly once across two receivers")
  for i = 1, 10 do t.eq(got[i], i) end
  t.eq(ch:closed(), true)
  t.raises(function() ch:send(1) end, "closed channel")
  local v, why = task.channel(1):recv(0.05)
  t.eq(v, nil)
  t.eq(why, "timeout")
  local c2 = task.channel(3)
  t.eq(c2:try_recv(), nil)
  c2:send("x")
  t.eq(c2:try_recv(), "x")
end)
