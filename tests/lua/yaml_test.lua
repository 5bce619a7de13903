local t = require("rewind.testing")
local yaml = require("rewind.yaml")
local json = require("rewind.json")

t.test("decodes a settings document", function()
  local v = yaml.decode([[
s3:
  bucket: backups
  prefix: td/daily
retries: 3
ratio: 0.5
enabled: true
tables: [a, b]
empty_list: []
nothing: null
big: 9007199254740993
]])
  t.eq(v.s3, { bucket = "backups", prefix = "td/daily" })
  t.eq(v.retries, 3)
  t.eq(math.type(v.retries), "integer")
  t.eq(v.ratio, 0.5)
  t.eq(v.enabled, true)
  t.eq(v.tables, { "a", "b" })
  t.eq(json.encode(v.empty_list), "[]")
  t.ok(json.is_null(v.nothing))
  t.eq(v.big, 9007199254740993)
end)

t.test("encode then decode round-trips", function()
  local v = { name = "x", list = { 1, 2, 3 }, nested = { a = json.null, b = json.array() } }
  local back = yaml.decode(yaml.encode(v))
  t.eq(back.name, "x")
  t.eq(back.list, { 1, 2, 3 })
  t.ok(yaml.null == json.null and json.is_null(back.nested.a))
  t.eq(json.encode(back.nested.b), "[]")
end)

t.test("invalid YAML is a clear error", function()
  t.raises(function() yaml.decode("a: [1, 2") end, "invalid YAML")
  t.raises(function() yaml.decode("a: b: c") end, "invalid YAML")
end)
