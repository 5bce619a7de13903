-- The store API suite against a remote store (S3 or Azure), run by tests/store_s3.rs and
-- tests/store_azure.rs with STORE_TEST_URL (e.g. s3://bucket) and STORE_TEST_OPTS (JSON) set.
local t = require("rewind.testing")
local store = require("rewind.store")
local env = require("rewind.env")
local json = require("rewind.json")

local base = env.get("STORE_TEST_URL")
local opts = json.decode(env.get("STORE_TEST_OPTS") or "{}")
local n = 0

local function open()
  n = n + 1
  return store.open(string.format("%s/t%d-%d-%d", base, os.time(), math.random(1, 1e9), n), opts)
end

dofile("tests/lua/store_suite.lua")(t, open)

t.test("the store URL carries the prefix; keys are relative to it", function()
  local s = open()
  s:put("x/y", "1")
  local root = store.open(base, opts)
  local found = false
  for o in root:list(s.url:sub(#base + 2) .. "/") do
    if o.key == s.url:sub(#base + 2) .. "/x/y" then found = true end
  end
  t.ok(found, "object under the prefix")
end)
