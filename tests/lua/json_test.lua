local t = require("rewind.testing")
local json = require("rewind.json")

t.test("null inside tables survives decode and encode", function()
  local v = json.decode('{"a":null,"b":[1,null,3]}')
  t.ok(json.is_null(v.a))
  t.eq(v.a, json.null)
  t.eq(#v.b, 3)
  t.ok(json.is_null(v.b[2]))
  t.eq(json.encode(v), '{"a":null,"b":[1,null,3]}')
  t.eq(json.encode({ x = json.null }), '{"x":null}')
  t.eq(json.is_null(nil), false)
end)

t.test("[] and {} stay apart", function()
  t.eq(json.encode(json.decode("[]")), "[]")
  t.eq(json.encode(json.decode("{}")), "{}")
  t.eq(json.encode(json.decode('{"a":[],"b":{}}')), '{"a":[],"b":{}}')
  t.eq(json.encode(json.array()), "[]")
  t.eq(json.encode({}), "{}")
  t.eq(json.encode({ 1, 2, 3 }), "[1,2,3]")
  local arr = json.decode("[]")
  arr[1] = "x"
  t.eq(json.encode(arr), '["x"]')
end)

t.test("big integers round-trip exactly", function()
  for _, text in ipairs({ "9007199254740993", "-9223372036854775808", "9223372036854775807" }) do
    local v = json.decode(text)
    t.eq(math.type(v), "integer", text)
    t.eq(json.encode(v), text)
    t.eq(json.encode(json.decode("[" .. text .. "]")), "[" .. text .. "]")
  end
  t.eq(json.decode("9007199254740993"), 9007199254740993)
  t.eq(json.decode("-9223372036854775808"), math.mininteger)
end)

t.test("floats and integral floats", function()
  t.eq(json.encode(1.5), "1.5")
  t.eq(json.encode(2.0), "2")
  t.eq(json.decode("1.25"), 1.25)
  t.eq(json.encode(0.1), "0.1")
end)

t.test("strings, unicode and escapes", function()
  local s = 'quote " backslash \\ newline \n tab \t é 日本'
  t.eq(json.decode(json.encode(s)), s)
  t.eq(json.decode('"\\u00e9"'), "é")
end)

t.test("nested structures round-trip; keys sorted", function()
  local text = '{"a":{"b":[{"c":true,"d":false}]},"z":"end"}'
  t.eq(json.encode(json.decode(text)), text)
  t.eq(json.encode({ z = 1, a = 2, m = 3 }), '{"a":2,"m":3,"z":1}')
  t.contains(json.encode({ a = 1 }, { pretty = true }), '\n  "a": 1\n')
end)

t.test("invalid JSON is a clear error", function()
  t.raises(function() json.decode("{bad") end, "invalid JSON")
  t.raises(function() json.decode('{"a":1,}') end, "invalid JSON")
  t.raises(function() json.decode("") end, "invalid JSON")
end)

t.test("values JSON cannot hold are errors", function()
  t.raises(function() json.encode({ f = function() end }) end, "cannot encode")
  local cyc = {}
  cyc.self = cyc
  t.raises(function() json.encode(cyc) end, "nested too deep")
  t.raises(function() json.encode(0 / 0) end, "cannot encode")
end)

t.test("numbers survive decode and encode exactly (found by fuzzing)", function()
  -- 22 ones is past every integer type: a float, parsed exactly so that it prints back the same.
  local once = json.encode(json.decode("1111111111111111111111"))
  t.eq(json.encode(json.decode(once)), once)
  t.eq(json.decode("0.1") + json.decode("0.2"), 0.1 + 0.2)
  t.eq(json.encode(json.decode("[1e300,-2.5e-8,123456789012345678]")), "[1e+300,-2.5e-8,123456789012345678]")
end)
