local t = require("rewind.testing")
local shard = require("rewind.shard")

t.test("shares cover the list without overlap or gap, sizes within one", function()
  for _, n in ipairs({ 0, 1, 5, 31, 32 }) do
    for count = 1, 9 do
      local items = {}
      for i = 1, n do items[i] = i end
      local seen, sizes = {}, {}
      for index = 0, count - 1 do
        local part = shard.share(items, { index = index, count = count })
        sizes[#sizes + 1] = #part
        for _, v in ipairs(part) do
          t.eq(seen[v], nil, "item " .. v .. " in two shares")
          seen[v] = true
        end
        for i = 2, #part do t.eq(part[i], part[i - 1] + 1, "contiguous and in order") end
      end
      for i = 1, n do t.ok(seen[i], "item " .. i .. " in no share (n=" .. n .. ", count=" .. count .. ")") end
      t.ok(math.max(table.unpack(sizes)) - math.min(table.unpack(sizes)) <= 1)
    end
  end
  t.eq(shard.share({ 1, 2, 3 }, nil), { 1, 2, 3 })
end)

t.test("position: params, then nil; bad ones are usage errors", function()
  t.eq(shard.position({ index = 2, count = 4 }), { index = 2, count = 4 })
  t.eq(shard.describe({ index = 2, count = 4 }), "3 of 4")
  t.raises(function() shard.position({ index = 4, count = 4 }) end, "0 <= index < count")
  t.raises(function() shard.position({ index = 1 }) end, "go together")
  t.raises(function() shard.position({ index = 0, count = 0 }) end, "0 <= index < count")
end)
