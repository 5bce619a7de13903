local t = require("rewind.testing")
local progress = require("rewind.progress")

t.test("counts items and bytes", function()
  local p = progress.new({ label = "copying", total = 10, unit = "bytes" })
  for _ = 1, 4 do p:add(2) end
  p:add()
  t.eq(p:finish(), 9)
  local q = progress.new({ label = "tables" })
  t.eq(q:finish(), 0)
  local r = progress.new({ label = "failing", total = 3 })
  r:add(2)
  t.eq(r:finish(false), 2)
end)
