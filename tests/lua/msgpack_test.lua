local t = require("rewind.testing")
local msgpack = require("rewind.msgpack")
local json = require("rewind.json")

t.test("decode reads back what encode wrote", function()
  local v = { id = 9007199254740993, name = "a", tags = json.array({ "x", "y" }), nested = { ok = true, n = 1.5 } }
  t.eq(json.encode(msgpack.decode(msgpack.encode(v))), json.encode(v))
end)

t.test("bad input is a clear error", function()
  t.raises(function() msgpack.decode("\xc1") end, "invalid msgpack")
  t.raises(function() msgpack.decode(msgpack.encode(1) .. "\x01") end, "1 bytes after the value")
  t.raises(function() msgpack.decode("\xc4\x01a") end, "invalid msgpack")
end)

t.test("nesting deeper than encode accepts is refused (found by fuzzing)", function()
  local deep = string.rep("\x91", 300) .. "\x01"
  t.raises(function() msgpack.decode(deep) end, "invalid msgpack")
  local ok = string.rep("\x91", 100) .. "\x01"
  t.eq(msgpack.decode(msgpack.encode(msgpack.decode(ok))) ~= nil, true)
end)
